"""Bad input to kubevirt_vm_migration and kubevirt_migration_policy: a clear error naming the object and the field,
and not one write."""

import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MIGRATION = "palette.vmo.kubevirt_vm_migration"
POLICY = "palette.vmo.kubevirt_migration_policy"
RESOURCES = ("virtualmachines", "virtualmachineinstances", "virtualmachineinstancemigrations", "migrationpolicies")


@pytest.fixture(scope="module")
def bad_ns(admin, run_module):
    """A namespace with one running VM ("up") and one stopped VM ("down")."""
    name = f"migration-bad-input-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    result = run_module("palette.vmo.kubevirt_vm", {
        "namespace": name, "memory": "128Mi", "wait": True, "wait_timeout": 120,
        "vms": [{"name": "up", "state": "started"}, {"name": "down", "state": "stopped"}]})
    assert result.get("failed") is not True, result.get("msg")
    yield name
    admin.delete(object_path("v1", "namespaces", name))


def _writes(audit, mark, namespace):
    """What the module's user wrote to VMs, migrations and policies since the mark."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") in RESOURCES
            and (e.get("objectRef") or {}).get("namespace") in (namespace, None)]


# (id, module, task options, substrings the error must contain)
CASES = [
    ("nothing-named", MIGRATION, {}, ["name: one of name, vms or label_selector is required"]),
    ("name-and-vms", MIGRATION, {"name": "up", "vms": ["up"]}, ["parameters are mutually exclusive: name|vms|label_selector"]),
    ("item-bad-name", MIGRATION, {"vms": ["up", "Web_1"]}, ["VM {ns}/Web_1: name: 'Web_1' is not a valid name"]),
    ("item-twice", MIGRATION, {"vms": ["up", {"name": "up"}]}, ["VM {ns}/up: name: is named more than once"]),
    ("item-unknown-option", MIGRATION, {"vms": [{"name": "up", "node": "lab-node-1"}]},
     ["vms[0] (up): unsupported parameters: node"]),
    ("selector-bad-key", MIGRATION, {"name": "up", "node_selector": {"rack b": "1"}},
     ["VM {ns}/up: node_selector.rack b: 'rack b' is not a valid label key"]),
    ("selector-value-not-a-string", MIGRATION, {"vms": [{"name": "up", "node_selector": {"gpu": True}}]},
     ["VM {ns}/up: node_selector.gpu: True must be a string"]),
    ("bad-migration-id", MIGRATION, {"name": "up", "migration_id": "change 4711"},
     ["migration_id: 'change 4711' is not a valid label value"]),
    ("zero-unschedulable-timeout", MIGRATION, {"name": "up", "unschedulable_timeout": 0},
     ["unschedulable_timeout: 0 is out of range, give at least 1 second"]),
    ("cancel-with-node-selector", MIGRATION, {"name": "up", "state": "cancelled", "node_selector": {"a": "b"}},
     ["node_selector: only applies to state=migrated, not to state=cancelled"]),
    ("label-selector-without-namespace", MIGRATION, {"label_selector": "tier=web", "namespace": None},
     ["namespace: required with label_selector"]),
    ("label-selector-syntax", MIGRATION, {"label_selector": "tier in (web"}, ["label_selector: 'tier in (web'"]),
    ("negative-wait-timeout", MIGRATION, {"name": "up", "wait_timeout": -5},
     ["wait_timeout: -5 is out of range, give 0 or more seconds"]),
    ("no-such-vm", MIGRATION, {"vms": ["up", "ghost"]}, ["VM {ns}/ghost: name: no such VirtualMachine in namespace {ns}"]),
    ("vm-not-running", MIGRATION, {"vms": ["up", "down"]},
     ["preflight refused the batch, nothing was changed: VM {ns}/down: name: is not running (printableStatus Stopped"]),
    ("selector-matches-no-node", MIGRATION, {"vms": ["up"], "node_selector": {"gpu": "a100"}},
     ["VM {ns}/up: node_selector: no schedulable, uncordoned node other than its current node",
      "among the nodes with gpu=a100"]),
    ("policy-negative-bandwidth", POLICY, {"name": "p-{ns}", "bandwidth_per_migration": "-64Mi"},
     ["MigrationPolicy p-{ns}: bandwidth_per_migration: '-64Mi' must not be negative"]),
    ("policy-bandwidth-not-a-quantity", POLICY, {"name": "p-{ns}", "bandwidth_per_migration": "fast"},
     ["MigrationPolicy p-{ns}: bandwidth_per_migration: 'fast' is not a Kubernetes quantity"]),
    ("policy-negative-timeout", POLICY, {"name": "p-{ns}", "completion_timeout_per_gib": -1},
     ["MigrationPolicy p-{ns}: completion_timeout_per_gib: -1 must not be negative"]),
    ("policy-bad-name", POLICY, {"name": "Prod_DBs"}, ["MigrationPolicy Prod_DBs: name: 'Prod_DBs' is not a valid name"]),
    ("policy-twice", POLICY, {"policies": [{"name": "p-{ns}"}, {"name": "p-{ns}"}]},
     ["MigrationPolicy p-{ns}: name: is declared more than once"]),
    ("policy-selector-bad-value", POLICY, {"name": "p-{ns}", "vmi_selector": {"tier": "web tier"}},
     ["MigrationPolicy p-{ns}: vmi_selector.tier: 'web tier' is not a valid label value"]),
    ("policy-item-unknown-option", POLICY, {"policies": [{"name": "p-{ns}", "max_downtime": 5}]},
     ["policies[0] (p-{ns}): unsupported parameters: max_downtime"]),
    ("policy-without-name", POLICY, {"allow_post_copy": True}, ["MigrationPolicy ?: name: is required"]),
]


def _fill(value, namespace):
    if isinstance(value, str):
        return value.replace("{ns}", namespace)
    if isinstance(value, list):
        return [_fill(v, namespace) for v in value]
    if isinstance(value, dict):
        return {_fill(k, namespace): _fill(v, namespace) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_id, module, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_without_writing(run_module, audit, bad_ns, case_id, module, args, expected):
    args = _fill(dict({"namespace": bad_ns} if module == MIGRATION else {}, **args), bad_ns)
    args = {k: v for k, v in args.items() if v is not None}
    mark = audit.mark()
    result = run_module(module, args)
    assert result.get("failed") is True, result
    for text in _fill(expected, bad_ns):
        assert text in result["msg"], (text, result["msg"])
    assert _writes(audit, mark, bad_ns) == []
