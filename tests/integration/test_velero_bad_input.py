"""Bad input to velero_backup and velero_restore: a clear error naming the object and the field, and not one write."""

import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER
from tests.lab.tests.helpers import Waiter

BACKUP = "palette.vmo.velero_backup"
RESTORE = "palette.vmo.velero_restore"
RESOURCES = ("backups", "restores", "downloadrequests", "virtualmachines", "namespaces")
SUFFIX = uuid.uuid4().hex[:6]


def finished(obj):
    return obj is not None and (obj.get("status") or {}).get("phase") in (
        "Completed", "PartiallyFailed", "Failed", "FailedValidation")


@pytest.fixture(scope="module")
def bad_ns(admin, run_module):
    """A namespace with a VM "web", a Completed backup of it, a backup that failed validation and a restore."""
    name = f"velero-bad-input-{SUFFIX}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    result = run_module("palette.vmo.kubevirt_vm", {
        "namespace": name, "memory": "128Mi", "wait": True, "wait_timeout": 120,
        "vms": [{"name": "web", "state": "stopped",
                 "disks": [{"name": "root", "data_volume": {"size": "1Gi", "blank": True}}]}]})
    assert result.get("failed") is not True, result.get("msg")
    good = run_module(BACKUP, {"name": f"good-{SUFFIX}", "included_namespaces": [name]})
    assert good.get("failed") is not True, good.get("msg")
    admin.create(object_path("velero.io/v1", "backups", namespace="velero"), {
        "apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": f"invalid-{SUFFIX}", "namespace": "velero"},
        "spec": {"includedNamespaces": [name], "storageLocation": "nowhere"}})
    Waiter(admin).until(object_path("velero.io/v1", "backups", f"invalid-{SUFFIX}", "velero"), finished, 60)
    restored = run_module(RESTORE, {"name": f"done-{SUFFIX}", "backup": f"good-{SUFFIX}",
                                    "namespace_mapping": {name: f"{name}-copy"}})
    assert restored.get("failed") is not True, restored.get("msg")
    # backup_controller.go: a namespace labelled exclude-from-backup and named in includedNamespaces fails validation
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": f"{name}-nobackup", "labels": {"velero.io/exclude-from-backup": "true"}}})
    yield name
    admin.delete(object_path("v1", "namespaces", f"{name}-nobackup"))
    admin.delete(object_path("v1", "namespaces", f"{name}-copy"))
    admin.delete(object_path("v1", "namespaces", name))


def _writes(audit, mark):
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") in RESOURCES]


GOOD, INVALID, DONE = f"good-{SUFFIX}", f"invalid-{SUFFIX}", f"done-{SUFFIX}"

# (id, module, task options, substrings the error must contain); {ns} is the namespace of the VM
CASES = [
    ("backup-bad-name", BACKUP, {"name": "Nightly_1", "included_namespaces": ["{ns}"]},
     ["Backup velero/Nightly_1: name: 'Nightly_1' is not a valid name"]),
    ("backup-nothing-chosen", BACKUP, {"name": "{b}"},
     ["Backup velero/{b}: included_namespaces: give included_namespaces (['*'] for all) or vms"]),
    ("backup-bad-ttl", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "ttl": "3 days"},
     ["Backup velero/{b}: ttl: '3 days' is not a duration"]),
    ("backup-missing-location", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "storage_location": "nowhere"},
     ["Backup velero/{b}: storage_location: no BackupStorageLocation 'nowhere' in namespace velero"]),
    ("backup-missing-namespace", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}", "ghost-ns"]},
     ["Backup velero/{b}: included_namespaces: namespace 'ghost-ns' does not exist"]),
    ("backup-bad-namespace-name", BACKUP, {"name": "{b}", "included_namespaces": ["Bad_NS"]},
     ["Backup velero/{b}: included_namespaces: 'Bad_NS' is not a valid namespace name"]),
    ("backup-missing-vm", BACKUP, {"name": "{b}", "namespace": "{ns}", "vms": ["web", "ghost"]},
     ["VM {ns}/ghost: name: no such VirtualMachine in namespace {ns}"]),
    ("backup-vm-twice", BACKUP, {"name": "{b}", "namespace": "{ns}", "vms": ["web", "{ns}/web"]},
     ["VM {ns}/web: name: is named more than once"]),
    ("backup-vm-bad-namespace", BACKUP, {"name": "{b}", "vms": ["Bad_NS/web"]},
     ["VM Bad_NS/web: namespace: 'Bad_NS' is not a valid namespace name"]),
    ("backup-vm-without-namespace", BACKUP, {"name": "{b}", "vms": ["web"]},
     ["Backup velero/{b}: vms[0] (web): namespace: give namespace/name, or the namespace option"]),
    ("backup-vm-unknown-option", BACKUP, {"name": "{b}", "namespace": "{ns}", "vms": [{"name": "web", "node": "n1"}]},
     ["Backup velero/{b}: vms[0]: unsupported parameters: node"]),
    ("backup-selector-syntax", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "label_selector": "tier in (web"},
     ["Backup velero/{b}: label_selector: cannot read 'tier in (web'"]),
    ("backup-vms-and-namespaces", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "vms": ["{ns}/web"]},
     ["parameters are mutually exclusive: included_namespaces|vms"]),
    ("backup-negative-wait-timeout", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "wait_timeout": -5},
     ["wait_timeout: -5 is out of range, give 0 or more seconds"]),
    ("backup-exists-with-another-spec", BACKUP, {"name": GOOD, "included_namespaces": ["{ns}", "default"]},
     [f"Backup velero/{GOOD}: exists with another spec (includedNamespaces: [\"{{ns}}\"], not [\"{{ns}}\", \"default\"])",
      "give a new name"]),
    ("backup-question-mark-namespace", BACKUP, {"name": "{b}", "included_namespaces": ["web-?"]},
     ["Backup velero/{b}: included_namespaces: 'web-?' is not a valid namespace name (only '*' alone selects all)"]),
    ("backup-namespace-pattern", BACKUP, {"name": "{b}", "included_namespaces": ["velero-bad-*"]},
     ["Backup velero/{b}: included_namespaces: 'velero-bad-*' is a pattern; Velero 1.17 takes each entry but '*'"]),
    ("backup-star-with-others", BACKUP, {"name": "{b}", "included_namespaces": ["*", "{ns}"]},
     ["Backup velero/{b}: included_namespaces: '*' must be the only entry"]),
    ("backup-resources-star-with-others", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"],
                                                   "included_resources": ["*", "virtualmachines"]},
     ["Backup velero/{b}: included_resources: '*' must be the only entry"]),
    ("backup-exclude-star", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"], "excluded_resources": ["*"]},
     ["Backup velero/{b}: excluded_resources: '*' cannot be excluded"]),
    ("backup-resource-in-both-lists", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}"],
                                               "included_resources": ["pods", "secrets"], "excluded_resources": ["pods"]},
     ["Backup velero/{b}: excluded_resources: 'pods' is also in included_resources"]),
    ("backup-namespace-labelled-excluded", BACKUP, {"name": "{b}", "included_namespaces": ["{ns}", "{ns}-nobackup"]},
     ["Backup velero/{b}: included_namespaces: namespace '{ns}-nobackup' is labelled velero.io/exclude-from-backup=true"]),
    ("restore-star-with-others", RESTORE, {"name": "{r}", "backup": GOOD, "included_namespaces": ["*", "{ns}"]},
     ["Restore velero/{r}: included_namespaces: '*' must be the only entry"]),
    ("restore-non-restorable", RESTORE, {"name": "{r}", "backup": GOOD, "included_resources": ["nodes"]},
     ["Restore velero/{r}: included_resources: nodes are non-restorable resources"]),
    ("restore-bad-name", RESTORE, {"name": "Restore_1", "backup": GOOD},
     ["Restore velero/Restore_1: name: 'Restore_1' is not a valid name"]),
    ("restore-missing-backup", RESTORE, {"name": "{r}", "backup": "ghost"},
     ["Restore velero/{r}: backup: no Backup 'ghost' in namespace velero"]),
    ("restore-backup-not-restorable", RESTORE, {"name": "{r}", "backup": INVALID},
     [f"Restore velero/{{r}}: backup: Backup '{INVALID}' is FailedValidation, a restore needs it Completed"]),
    ("restore-mapping-bad-target", RESTORE, {"name": "{r}", "backup": GOOD, "namespace_mapping": {"{ns}": "Bad_NS"}},
     ["Restore velero/{r}: namespace_mapping.{ns}: 'Bad_NS' is not a valid namespace name"]),
    ("restore-mapping-not-in-backup", RESTORE, {"name": "{r}", "backup": GOOD, "namespace_mapping": {"other": "copy"}},
     [f"Restore velero/{{r}}: namespace_mapping.other: backup '{GOOD}' holds no namespace 'other' (it holds {{ns}})"]),
    ("restore-mapping-two-to-one", RESTORE, {"name": "{r}", "backup": GOOD,
                                             "namespace_mapping": {"{ns}": "copy", "default": "copy"}},
     ["Restore velero/{r}: namespace_mapping.{ns}: 'copy' is also the target of 'default'; one namespace per target"]),
    ("restore-exists-with-another-spec", RESTORE, {"name": DONE, "backup": GOOD},
     [f"Restore velero/{DONE}: exists with another spec (namespaceMapping: {{\"{{ns}}\": \"{{ns}}-copy\"}}, not null)"]),
    ("restore-bad-policy", RESTORE, {"name": "{r}", "backup": GOOD, "existing_resource_policy": "overwrite"},
     ["existing_resource_policy", "overwrite"]),
]


def _fill(value, ns):
    if isinstance(value, str):
        return value.replace("{ns}", ns).replace("{b}", f"b-{SUFFIX}").replace("{r}", f"r-{SUFFIX}")
    if isinstance(value, list):
        return [_fill(v, ns) for v in value]
    if isinstance(value, dict):
        return {_fill(k, ns): _fill(v, ns) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_id,module,options,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_before_any_write(run_module, audit, bad_ns, case_id, module, options, expected):
    mark = audit.mark()
    result = run_module(module, _fill(options, bad_ns))
    assert result.get("failed") is True, f"{case_id}: {result}"
    for text in expected:
        assert _fill(text, bad_ns) in result["msg"], f"{case_id}: {result['msg']}"
    assert result.get("changed") is not True
    assert _writes(audit, mark) == []
