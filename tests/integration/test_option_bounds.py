"""Negative timeouts and a concurrency below 1 are refused before anything is written, in every module."""

import uuid

import pytest

from tests.lab.state import ADMIN_USER


def test_vmo_profile_negative_wait_timeout_is_refused_before_create_and_attach(run_module, palette):
    name = "vmo-bounds-%s" % uuid.uuid4().hex[:6]
    result = run_module("palette.vmo.vmo_profile", dict(palette.connection(), name=name, pack_tag="4.9.9",
                                                        clusters=[palette.cluster], wait_timeout=-1))
    assert result.get("failed") is True, result
    assert result["msg"] == ("invalid input, nothing was changed: wait_timeout: -1 is out of range, give 0 or more "
                             "seconds"), result["msg"]
    # Other tests share the simulator, so the proof is per profile: none of this name was made.
    absent = run_module("palette.vmo.vmo_profile", dict(palette.connection(), name=name, state="absent"), check=True)
    assert absent.get("failed") is not True and absent["changed"] is False, absent


def test_vmo_profile_keeps_validate_certs_as_its_palette_tls_switch(run_module, palette, tmp_path):
    from tests.lab import pki

    other = tmp_path / "other-ca"
    pki.make_ca(other, "not-the-lab-ca")
    args = dict(palette.connection(), palette_ca_cert=str(other.with_suffix(".crt")), name="vmo-bounds-tls",
                state="absent")
    refused = run_module("palette.vmo.vmo_profile", args, check=True)
    assert refused.get("failed") is True and "TLS verification of" in refused["msg"], refused
    for switch in ("validate_certs", "palette_validate_certs"):
        insecure = run_module("palette.vmo.vmo_profile", dict(args, **{switch: False}), check=True)
        assert insecure.get("failed") is not True, insecure


@pytest.mark.parametrize("module, args, expected", [
    ("palette.vmo.kubevirt_vm_info", {"namespace": "default", "wait": True, "wait_timeout": -1},
     "wait_timeout: -1 is out of range, give 0 or more seconds"),
    ("palette.vmo.kubevirt_install", {"kubevirt_operator_manifest": "/nonexistent/k.yaml",
                                      "cdi_operator_manifest": "/nonexistent/c.yaml", "concurrency": 0,
                                      "wait_timeout": -5},
     "concurrency: 0 is out of range, give at least 1; wait_timeout: -5 is out of range, give 0 or more seconds"),
], ids=["kubevirt_vm_info", "kubevirt_install"])
def test_kubernetes_modules_refuse_out_of_range_options(run_module, audit, module, args, expected):
    mark = audit.mark()
    result = run_module(module, args)
    assert result.get("failed") is True and expected in result["msg"], result
    assert [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") in (None, "", "kubevirt", "cdi")] == []
