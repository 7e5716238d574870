"""Bad input to kubevirt_vm_snapshot: a clear error naming the object and the field, and not one write."""

import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_vm_snapshot"
API = "snapshot.kubevirt.io/v1beta1"
RESOURCES = ("virtualmachines", "virtualmachinesnapshots", "virtualmachinesnapshotcontents", "volumesnapshots")


@pytest.fixture(scope="module")
def bad_ns(admin, run_module):
    """A namespace with one stopped VM ("web") and a snapshot "web-by-hand" palette.vmo did not make."""
    name = f"snapshot-bad-input-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    result = run_module("palette.vmo.kubevirt_vm", {"namespace": name, "name": "web", "memory": "128Mi",
                                                    "state": "stopped"})
    assert result.get("failed") is not True, result.get("msg")
    admin.create(object_path(API, "virtualmachinesnapshots", namespace=name), {
        "apiVersion": API, "kind": "VirtualMachineSnapshot", "metadata": {"name": "web-by-hand"},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web"}}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


def _writes(audit, mark, namespace):
    """What the module's user wrote to VMs and snapshots since the mark."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") in RESOURCES
            and (e.get("objectRef") or {}).get("namespace") in (namespace, None)]


# (id, task options, substrings the error must contain)
CASES = [
    ("nothing-named", {"snapshot_id": "s1"}, ["name: one of name, vms or label_selector is required"]),
    ("name-and-vms", {"name": "web", "vms": ["web"], "snapshot_id": "s1"},
     ["parameters are mutually exclusive: name|vms|label_selector"]),
    ("bad-snapshot-id", {"name": "web", "snapshot_id": "Nightly 1"}, ["snapshot_id: 'Nightly 1' is not a valid id"]),
    ("no-snapshot-id", {"name": "web"}, ["snapshot_id: is required with state=present"]),
    ("item-bad-name", {"vms": ["web", "Web_1"], "snapshot_id": "s1"}, ["VM {ns}/Web_1: name: 'Web_1' is not a valid name"]),
    ("item-twice", {"vms": ["web", {"name": "web"}], "snapshot_id": "s1"}, ["VM {ns}/web: name: is named more than once"]),
    ("item-unknown-option", {"vms": [{"name": "web", "id": "x"}], "snapshot_id": "s1"},
     ["vms[0] (web): unsupported parameters: id"]),
    ("retention-keep-zero", {"name": "web", "snapshot_id": "s1", "retention": {"keep": 0}},
     ["retention.keep: 0 is out of range, give at least 1"]),
    ("retention-bad-age", {"name": "web", "snapshot_id": "s1", "retention": {"max_age": "a week"}},
     ["retention.max_age: 'a week' is not an age"]),
    ("retention-empty", {"name": "web", "snapshot_id": "s1", "retention": {}}, ["retention: give keep, max_age or both"]),
    ("bad-failure-deadline", {"name": "web", "snapshot_id": "s1", "failure_deadline": "5 minutes"},
     ["failure_deadline: '5 minutes' is not a duration"]),
    ("bad-label-key", {"name": "web", "snapshot_id": "s1", "labels": {"backup tier": "gold"}},
     ["labels.backup tier: 'backup tier' is not a valid label key"]),
    ("reserved-label", {"name": "web", "snapshot_id": "s1", "labels": {"app.kubernetes.io/managed-by": "me"}},
     ["labels.app.kubernetes.io/managed-by: is reserved"]),
    ("absent-with-retention", {"name": "web", "snapshot_id": "s1", "state": "absent", "retention": {"keep": 2}},
     ["retention: only applies to state=present, not to state=absent"]),
    ("no-such-vm", {"vms": ["web", "ghost"], "snapshot_id": "s1"},
     ["VM {ns}/ghost: name: no such VirtualMachine in namespace {ns}"]),
    ("foreign-snapshot-of-that-name", {"vms": ["web"], "snapshot_id": "by-hand"},
     ["refused, nothing was changed: VM {ns}/web: snapshot_id: VirtualMachineSnapshot {ns}/web-by-hand exists and "
      "was not made by palette.vmo"]),
    ("label-selector-syntax", {"label_selector": "tier in (web", "snapshot_id": "s1"}, ["label_selector: 'tier in (web'"]),
    ("negative-wait-timeout", {"name": "web", "snapshot_id": "s1", "wait_timeout": -5},
     ["wait_timeout: -5 is out of range, give 0 or more seconds"]),
    ("api-version-not-served", {"name": "web", "snapshot_id": "s1", "api_version": "v9"},
     ["api_version snapshot.kubevirt.io/v9 is not served"]),
]


def _fill(value, namespace):
    if isinstance(value, str):
        return value.replace("{ns}", namespace)
    if isinstance(value, list):
        return [_fill(v, namespace) for v in value]
    if isinstance(value, dict):
        return {_fill(k, namespace): _fill(v, namespace) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_id, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_without_writing(run_module, audit, admin, bad_ns, case_id, args, expected):
    args = _fill(dict({"namespace": bad_ns}, **args), bad_ns)
    before = sorted(s["metadata"]["name"] for s in
                    admin.get(object_path(API, "virtualmachinesnapshots", namespace=bad_ns))["items"])
    mark = audit.mark()
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    for text in _fill(expected, bad_ns):
        assert text in result["msg"], (text, result["msg"])
    assert _writes(audit, mark, bad_ns) == []
    after = sorted(s["metadata"]["name"] for s in
                   admin.get(object_path(API, "virtualmachinesnapshots", namespace=bad_ns))["items"])
    assert after == before == ["web-by-hand"]
