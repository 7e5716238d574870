"""velero_backup and velero_restore against the lab's Velero: a namespace of VMs backed up, deleted and restored with
its DataVolumes; chosen VMs; a mapped namespace; idempotence by name; check mode."""

import uuid

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER
from tests.lab.tests.helpers import Waiter

BACKUP = "palette.vmo.velero_backup"
RESTORE = "palette.vmo.velero_restore"
DV_API = "cdi.kubevirt.io/v1beta1"


def make_vms(run_module, namespace, names, running=("web",)):
    result = run_module("palette.vmo.kubevirt_vm", {
        "namespace": namespace, "memory": "128Mi", "wait": True, "wait_timeout": 120,
        "vms": [{"name": name, "state": "started" if name in running else "stopped",
                 "disks": [{"name": "root", "data_volume": {"size": "1Gi", "blank": True}}]} for name in names]})
    assert result.get("failed") is not True, result.get("msg")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def names_of(items, kind, namespace):
    return sorted(i["name"] for i in items if i["kind"] == kind and i["namespace"] == namespace)


def dv_succeeded(dv):
    return dv is not None and (dv.get("status") or {}).get("phase") == "Succeeded"


def test_namespace_backed_up_deleted_and_restored_with_its_datavolumes(run_module, admin, namespace):
    make_vms(run_module, namespace, ["web", "db"])
    waiter = Waiter(admin)
    name = unique("ns")
    result = run_module(BACKUP, {"name": name, "included_namespaces": [namespace], "ttl": "24h"})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    backup = result["backup"]
    # Velero writes back the spec it prepared: ttl in Go's form, the CSI VolumeSnapshot resources excluded
    assert backup["phase"] == "Completed" and backup["storage_location"] == "default" and backup["ttl"] == "24h0m0s"
    spec = admin.get(object_path("velero.io/v1", "backups", name, "velero"))["spec"]
    assert spec["excludedResources"] == ["volumesnapshots.snapshot.storage.k8s.io",
                                         "volumesnapshotcontents.snapshot.storage.k8s.io"]
    assert backup["progress"]["itemsBackedUp"] == backup["progress"]["totalItems"] > 0
    items = result["items"]
    assert names_of(items, "VirtualMachine", namespace) == ["db", "web"]
    assert names_of(items, "DataVolume", namespace) == ["db-root", "web-root"]
    assert names_of(items, "PersistentVolumeClaim", namespace) == ["db-root", "web-root"]
    assert len([i for i in items if i["kind"] == "PersistentVolume" and i["namespace"] is None]) == 2

    again = run_module(BACKUP, {"name": name, "included_namespaces": [namespace], "ttl": "24h"})
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False and again["backup"]["phase"] == "Completed"
    assert again["items"] == items

    admin.delete(object_path("v1", "namespaces", namespace))
    waiter.gone(object_path("v1", "namespaces", namespace), timeout=120)

    restored = run_module(RESTORE, {"name": f"{name}-restore", "backup": name})
    assert restored.get("failed") is not True, restored.get("msg")
    assert restored["changed"] is True
    assert restored["restore"]["phase"] == "Completed" and restored["restore"]["errors"] == 0
    created = {(i["kind"], i["name"]) for i in restored["items"] if i["namespace"] == namespace
               and i["action"] == "created"}
    assert {("VirtualMachine", "web"), ("VirtualMachine", "db"), ("DataVolume", "web-root"),
            ("DataVolume", "db-root"), ("PersistentVolumeClaim", "web-root")} <= created
    for vm in ("web", "db"):
        dv = waiter.until(object_path(DV_API, "datavolumes", f"{vm}-root", namespace), dv_succeeded, 60)
        assert dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.prePopulated"] == f"{vm}-root"
        assert dv["metadata"]["labels"]["velero.io/backup-name"] == name
        vm_obj = admin.get(object_path("kubevirt.io/v1", "virtualmachines", vm, namespace))
        assert vm_obj["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"] == f"{vm}-root"
    waiter.printable(namespace, "web", "Running", 60)
    waiter.printable(namespace, "db", "Stopped", 60)

    rerun = run_module(RESTORE, {"name": f"{name}-restore", "backup": name})
    assert rerun.get("failed") is not True, rerun.get("msg")
    assert rerun["changed"] is False and rerun["restore"]["phase"] == "Completed"


def test_backup_of_chosen_vms_holds_them_with_their_datavolumes_and_pvcs_only(run_module, admin, namespace):
    make_vms(run_module, namespace, ["web", "db", "cache"])
    name = unique("vms")
    result = run_module(BACKUP, {"name": name, "namespace": namespace, "vms": ["web", {"name": "db"}]})
    assert result.get("failed") is not True, result.get("msg")
    assert result["backup"]["vms"] == [f"{namespace}/web", f"{namespace}/db"]
    items = result["items"]
    assert names_of(items, "VirtualMachine", namespace) == ["db", "web"]
    assert names_of(items, "DataVolume", namespace) == ["db-root", "web-root"]
    assert names_of(items, "PersistentVolumeClaim", namespace) == ["db-root", "web-root"]
    assert names_of(items, "VirtualMachineInstance", namespace) == ["web"]
    assert "cache" not in names_of(items, "VirtualMachine", namespace)
    vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "web", namespace))
    assert vm["metadata"]["labels"]["velero.vmo.palette.io/backup"] == name

    again = run_module(BACKUP, {"name": name, "namespace": namespace, "vms": ["web", {"name": "db"}]})
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False


def test_restore_into_a_mapped_namespace_keeps_the_original(run_module, admin, namespace):
    make_vms(run_module, namespace, ["web"])
    name = unique("map")
    backup = run_module(BACKUP, {"name": name, "included_namespaces": [namespace]})
    assert backup.get("failed") is not True, backup.get("msg")
    target = f"{namespace[:40]}-copy"
    try:
        result = run_module(RESTORE, {"name": name, "backup": name, "namespace_mapping": {namespace: target},
                                      "vm_run_strategy": "Halted"})
        assert result.get("failed") is not True, result.get("msg")
        assert result["restore"]["namespace_mapping"] == {namespace: target}
        assert {i["namespace"] for i in result["items"] if i["kind"] == "VirtualMachine"} == {target}
        Waiter(admin).until(object_path(DV_API, "datavolumes", "web-root", target), dv_succeeded, 60)
        copy = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "web", target))
        assert copy["spec"]["runStrategy"] == "Halted"  # the plugin's restore-run-strategy label
        original = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "web", namespace))
        assert original["metadata"]["uid"] != copy["metadata"]["uid"]
    finally:
        admin.delete(object_path("v1", "namespaces", target))


def test_check_mode_writes_nothing(run_module, admin, audit, namespace):
    make_vms(run_module, namespace, ["web"])
    existing = unique("existing")
    done = run_module(BACKUP, {"name": existing, "included_namespaces": [namespace]})
    assert done.get("failed") is not True, done.get("msg")
    mark = audit.mark()
    name = unique("check")
    backup = run_module(BACKUP, {"name": name, "namespace": namespace, "vms": ["web"]}, check=True, diff=True)
    assert backup.get("failed") is not True, backup.get("msg")
    assert backup["changed"] is True and backup["items"] == []
    assert backup["diff"]["after"]["spec"]["labelSelector"] == {"matchLabels": {"velero.vmo.palette.io/backup": name}}
    restore = run_module(RESTORE, {"name": name, "backup": existing}, check=True)
    assert restore.get("failed") is not True, restore.get("msg")
    assert restore["changed"] is True
    assert audit.mutations(mark, user=ADMIN_USER) == []
    assert admin.get_or_none(object_path("velero.io/v1", "backups", name, "velero")) is None
    vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "web", namespace))
    assert "velero.vmo.palette.io/backup" not in (vm["metadata"].get("labels") or {})


def test_a_running_vm_without_its_instance_fails_the_backup_partially_and_says_why(run_module, namespace):
    make_vms(run_module, namespace, ["web", "db"])
    name = unique("partial")
    result = run_module(BACKUP, {"name": name, "included_namespaces": [namespace],
                                 "included_resources": ["virtualmachines", "datavolumes", "persistentvolumeclaims"]})
    assert result.get("failed") is True
    assert result["changed"] is True  # the Backup was created
    assert result["backup"]["phase"] == "PartiallyFailed" and result["backup"]["errors"] == 1
    assert f"Backup velero/{name} is PartiallyFailed: namespace {namespace}: error executing custom action " \
        f"(groupResource=virtualmachines.kubevirt.io, namespace={namespace}, name=web): VM cannot be safely backed up" \
        in result["msg"]
    # item_backupper.go records an item before its actions run: web failed, and is still listed as Velero lists it
    assert names_of(result["items"], "VirtualMachine", namespace) == ["db", "web"]


def test_state_absent_deletes_the_backup_and_its_restores_once(run_module, admin, audit, namespace):
    make_vms(run_module, namespace, ["db"], running=())
    name = unique("gone")
    made = run_module(BACKUP, {"name": name, "included_namespaces": [namespace]})
    assert made.get("failed") is not True, made.get("msg")
    target = f"{namespace[:40]}-gone"
    restored = run_module(RESTORE, {"name": name, "backup": name, "namespace_mapping": {namespace: target}})
    assert restored.get("failed") is not True, restored.get("msg")
    try:
        mark = audit.mark()
        check = run_module(BACKUP, {"name": name, "state": "absent"}, check=True)
        assert check.get("failed") is not True, check.get("msg")
        assert check["changed"] is True and audit.mutations(mark, user=ADMIN_USER) == []
        deleted = run_module(BACKUP, {"name": name, "state": "absent"})
        assert deleted.get("failed") is not True, deleted.get("msg")
        assert deleted["changed"] is True and deleted["backup"]["phase"] == "absent"
        assert deleted["deletion_request"].startswith(f"{name}-")
        assert admin.get_or_none(object_path("velero.io/v1", "backups", name, "velero")) is None
        assert admin.get_or_none(object_path("velero.io/v1", "restores", name, "velero")) is None
        again = run_module(BACKUP, {"name": name, "state": "absent"})
        assert again.get("failed") is not True, again.get("msg")
        assert again["changed"] is False
    finally:
        admin.delete(object_path("v1", "namespaces", target))


def test_rerun_is_unchanged_after_velero_rewrote_the_spec(run_module, admin, namespace):
    """backup_controller.go prepareBackupRequest rewrites the spec (excludedResources, ttl, a zero ttl defaulted):
    the same task again is the same backup."""
    make_vms(run_module, namespace, ["db"], running=())
    name = unique("rerun")
    task = {"name": name, "included_namespaces": [namespace], "ttl": "0s", "excluded_resources": ["secrets"],
            "included_resources": ["virtualmachines", "datavolumes", "persistentvolumeclaims", "persistentvolumes",
                                   "volumesnapshots.snapshot.storage.k8s.io"]}
    first = run_module(BACKUP, task)
    assert first.get("failed") is not True, first.get("msg")
    spec = admin.get(object_path("velero.io/v1", "backups", name, "velero"))["spec"]
    assert spec["ttl"] == "720h0m0s"  # Velero's default, not an immediate expiry
    assert spec["excludedResources"] == ["secrets", "volumesnapshots.snapshot.storage.k8s.io",
                                         "volumesnapshotcontents.snapshot.storage.k8s.io"]
    assert "volumesnapshots.snapshot.storage.k8s.io" not in spec["includedResources"]
    again = run_module(BACKUP, task)
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False and again["backup"]["phase"] == "Completed"
    longer = run_module(BACKUP, dict(task, ttl="90m"))
    assert longer.get("failed") is True and "exists with another spec (ttl: " in longer["msg"]


def test_without_a_default_location_the_one_named_default_is_used(run_module, admin, namespace):
    """backup_controller.go prepareBackupRequest: no location marked default -> the server's default name."""
    path = object_path("velero.io/v1", "backupstoragelocations", "default", "velero")
    admin.merge_patch(path, {"spec": {"default": False}})
    try:
        make_vms(run_module, namespace, ["db"], running=())
        result = run_module(BACKUP, {"name": unique("nodefault"), "included_namespaces": [namespace]})
        assert result.get("failed") is not True, result.get("msg")
        assert result["backup"]["phase"] == "Completed" and result["backup"]["storage_location"] == "default"
    finally:
        admin.merge_patch(path, {"spec": {"default": True}})
