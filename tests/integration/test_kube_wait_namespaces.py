"""The shared wait across namespaces with the smallest concurrency: one watch per namespace, none of them
holding a connection that requests wait for, each one closed when the wait ends."""

import uuid

import pytest

from tests.lab.kube import object_path


@pytest.fixture
def other_ns(admin, ns):
    name = f"{ns[:50]}-b{uuid.uuid4().hex[:4]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


def test_concurrency_one_waits_on_vms_in_two_namespaces(run_module, ns, other_ns):
    vms = [{"name": "one", "namespace": ns}, {"name": "two", "namespace": other_ns}]
    started = run_module("palette.vmo.kubevirt_vm", {"memory": "128Mi", "concurrency": 1, "wait": True,
                                                     "wait_timeout": 120, "vms": vms})
    assert started.get("failed") is not True, started.get("msg")
    assert started["changed"] is True

    # A wait, then requests on the same client: the stop writes after a read that follows the first wait.
    stopped = run_module("palette.vmo.kubevirt_vm", {"memory": "128Mi", "concurrency": 1, "wait": True,
                                                     "wait_timeout": 120, "run_strategy": "Halted", "vms": vms})
    assert stopped.get("failed") is not True, stopped.get("msg")
    assert stopped["changed"] is True

    for namespace, name in ((ns, "one"), (other_ns, "two")):
        info = run_module("palette.vmo.kubevirt_vm_info", {"namespace": namespace, "name": name, "wait": True,
                                                           "wait_for": "stopped", "wait_timeout": 60})
        assert info.get("failed") is not True, info.get("msg")
        assert info["vms"][0]["printable_status"] == "Stopped"

    again = run_module("palette.vmo.kubevirt_vm", {"memory": "128Mi", "concurrency": 1, "wait": True,
                                                   "wait_timeout": 120, "run_strategy": "Halted", "vms": vms})
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False
