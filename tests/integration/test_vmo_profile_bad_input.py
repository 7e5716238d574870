"""Bad input to vmo_profile: a clear error naming the field and the reason, and not one write to Palette."""

import pytest

MODULE = "palette.vmo.vmo_profile"
PACK = "virtual-machine-orchestrator"


def profile(**overrides):
    return dict({"name": "vmo-bad-input", "pack_tag": "4.9.9"}, **overrides)


CASES = [
    ("unknown-pack-tag", profile(pack_tag="9.9.9"),
     ["pack_tag: %s has no tag '9.9.9' in registry 'Public Repo'" % PACK, "4.9.9"]),
    ("unknown-pack", profile(pack_name="not-vmo"), ["pack_name: registry 'Public Repo' has no pack 'not-vmo'"]),
    ("unknown-registry", profile(registry_name="Private Repo"),
     ["registry_name: pack registry 'Private Repo' does not exist", "Public Repo"]),
    ("values-not-yaml", profile(values="charts: [unclosed"), ["values: not YAML"]),
    ("values-not-a-mapping", profile(values="- a\n- b\n"), ["values: must be a YAML mapping, not list"]),
    ("convenience-on-a-scalar", profile(values={"charts": {PACK: {"kubevirt": "off"}}}, use_emulation=True),
     ["values: charts.%s.kubevirt must be a mapping" % PACK]),
    ("unknown-cluster", profile(clusters=["no-such-cluster"]),
     ["clusters: cluster 'no-such-cluster' does not exist in project lab"]),
    ("cluster-of-another-project", profile(palette_project="empty", clusters=["lab-cluster"]),
     ["cluster 'lab-cluster' does not exist in project empty"]),
    ("unknown-project", profile(palette_project="mars"),
     ["palette_project: project 'mars' does not exist (projects: empty, lab)"]),
    ("bad-version", profile(version="1.0"), ["version: '1.0' is not a profile version"]),
    ("bad-name", profile(name="VMO_Profile"), ["name: 'VMO_Profile' is not a profile name"]),
    ("bad-feature-gate", profile(feature_gates_extra=["not a gate"]), ["feature_gates_extra: 'not a gate'"]),
    ("bad-namespace", profile(vm_namespaces=["Bad_NS"]), ["vm_namespaces: 'Bad_NS' is not a valid namespace name"]),
    ("manifest-without-kind", profile(manifests=[{"name": "tpl", "content": "apiVersion: v1\nmetadata: {name: x}\n"}]),
     ["manifests[0] (tpl): content: document 1 needs apiVersion, kind and metadata.name"]),
    ("manifest-not-yaml", profile(manifests=[{"name": "tpl", "content": "kind: [x"}]),
     ["manifests[0] (tpl): content: not YAML"]),
    ("manifest-named-like-the-pack", profile(manifests=[{"name": PACK, "content": {"apiVersion": "v1",
                                                                                   "kind": "Namespace",
                                                                                   "metadata": {"name": "a"}}}]),
     ["is used by another layer of the profile"]),
    ("options-of-present-with-absent", profile(state="absent", use_emulation=True),
     ["pack_tag: only applies with state=present", "use_emulation: only applies with state=present"]),
    ("missing-pack-tag", {"name": "vmo-bad-input"}, ["state is present but all of the following are missing: pack_tag"]),
    ("missing-name", {"pack_tag": "4.9.9"}, ["missing required arguments: name"]),
    ("unknown-update-mode", profile(update_mode="sideways"), ["update_mode", "sideways"]),
]


@pytest.mark.parametrize("case_id, options, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_profile_options(run_module, palette, case_id, options, expected):
    mark = palette.mark()
    result = run_module(MODULE, dict(palette.connection(), **options))
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], (text, result["msg"])
    assert palette.writes_since(mark) == []


def test_every_problem_is_reported_at_once(run_module, palette):
    mark = palette.mark()
    result = run_module(MODULE, dict(palette.connection(), **profile(version="one", vm_namespaces=["A"],
                                                                     values="a: [")))
    assert result.get("failed") is True and len(result["errors"]) == 3, result
    assert result["msg"].startswith("invalid input, nothing was changed: ")
    assert palette.requests_since(mark) == []


def test_project_scope_needs_a_project(run_module, palette):
    connection = {k: v for k, v in palette.connection().items() if k != "palette_project"}
    mark = palette.mark()
    result = run_module(MODULE, dict(connection, scope="project", **profile()))
    assert result.get("failed") is True and "scope: project scope needs palette_project" in result["msg"]
    assert palette.requests_since(mark) == []


def test_bad_api_key(run_module, palette):
    wrong = "not-the-lab-key-0123456789"
    mark = palette.mark()
    result = run_module(MODULE, dict(palette.connection(), palette_api_key=wrong, **profile()))
    assert result.get("failed") is True and "HTTP 401: bad API key" in result["msg"], result
    assert wrong not in result["_stdout"]
    assert palette.writes_since(mark) == []


def test_api_key_from_the_environment_is_not_logged(run_module, palette):
    connection = {k: v for k, v in palette.connection().items() if k != "palette_api_key"}
    result = run_module(MODULE, dict(connection, **profile()), check=True,
                        env_extra={"PALETTE_API_KEY": palette.api_key})
    assert result.get("failed") is not True and result["changed"] is True, result
    assert palette.api_key not in result["_stdout"]


def test_wrong_ca(run_module, palette, tmp_path):
    from tests.lab import pki

    other = tmp_path / "other-ca"
    pki.make_ca(other, "not-the-lab-ca")
    mark = palette.mark()
    result = run_module(MODULE, dict(palette.connection(), palette_ca_cert=str(other.with_suffix(".crt")),
                                     **profile()))
    assert result.get("failed") is True and "TLS verification of" in result["msg"], result
    assert palette.requests_since(mark) == []
