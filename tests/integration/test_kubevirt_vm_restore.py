"""palette.vmo.kubevirt_vm_restore and palette.vmo.kubevirt_vm_clone against the lab: restores in place and into
new VMs, clones of VMs and of snapshots, idempotence, check and diff mode, and bad inputs refused before any
write. Snapshots are made by the lab's VirtualMachineSnapshot controller."""

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER
from tests.lab.tests.helpers import Waiter, vm_manifest, vm_path

RESTORE = "palette.vmo.kubevirt_vm_restore"
CLONE = "palette.vmo.kubevirt_vm_clone"
SNAP_API = "snapshot.kubevirt.io/v1beta1"
DV_API = "cdi.kubevirt.io/v1beta1"


def writes_in(audit, mark, namespace):
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") == namespace]


def disk_vm(name, namespace, run_strategy="Halted", memory="128Mi", labels=None, annotations=None):
    vm = vm_manifest(name, namespace, run_strategy=run_strategy, memory=memory)
    vm["metadata"]["labels"] = dict(labels or {})
    vm["metadata"]["annotations"] = dict(annotations or {})
    vm["spec"]["dataVolumeTemplates"] = [{"metadata": {"name": name + "-root"},
                                          "spec": {"source": {"blank": {}},
                                                   "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}]
    template = vm["spec"]["template"]["spec"]
    template["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    template["volumes"] = [{"name": "root", "dataVolume": {"name": name + "-root"}}]
    return vm


def make_vms(admin, namespace, names, **kwargs):
    waiter = Waiter(admin)
    for name in names:
        admin.create(vm_path(namespace), disk_vm(name, namespace, **kwargs))
    for name in names:
        waiter.until(object_path(DV_API, "datavolumes", name + "-root", namespace),
                     lambda dv: dv is not None and (dv.get("status") or {}).get("phase") == "Succeeded", 120,
                     "DataVolume %s-root Succeeded" % name)


def snapshot(admin, namespace, vm, name):
    admin.create(object_path(SNAP_API, "virtualmachinesnapshots", namespace=namespace), {
        "apiVersion": SNAP_API, "kind": "VirtualMachineSnapshot", "metadata": {"name": name},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}})


def wait_snapshots(admin, namespace, names):
    waiter = Waiter(admin)
    for name in names:
        waiter.until(object_path(SNAP_API, "virtualmachinesnapshots", name, namespace),
                     lambda s: s is not None and (s.get("status") or {}).get("readyToUse"), 120,
                     "snapshot %s ready" % name)


def memory_of(admin, namespace, name):
    return admin.get(vm_path(namespace, name))["spec"]["template"]["spec"]["domain"]["memory"]["guest"]


def test_changed_vms_restored_in_place_get_their_old_spec_back_in_one_task(run_module, admin, audit, ns):
    names = ["db-%d" % i for i in range(3)]
    make_vms(admin, ns, names)
    for name in names:
        snapshot(admin, ns, name, name + "-snap")
    wait_snapshots(admin, ns, [n + "-snap" for n in names])
    for name in names:
        admin.merge_patch(vm_path(ns, name), {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "256Mi"}}}}}})
    args = {"namespace": ns, "restores": [{"vm": n, "snapshot": n + "-snap"} for n in names], "wait_timeout": 180}

    mark = audit.mark()
    check = run_module(RESTORE, args, check=True, diff=True)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True
    assert {r["action"] for r in check["restores"]} == {"created"}
    assert writes_in(audit, mark, ns) == []
    diff = check["diff"][0]
    assert diff["before"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "256Mi"
    assert diff["after"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"

    first = run_module(RESTORE, args)
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True
    for item in first["restores"]:
        assert item["action"] == "created" and item["complete"] is True, item
        assert item["restore"] == "%s-%s-snap" % (item["vm"], item["vm"])
        assert item["restore_time"]
        assert [v["volume"] for v in item["volumes"]] == ["root"]
        assert item["volumes"][0]["data_volume"].startswith("restore-")
        assert item["deleted_data_volumes"] == [item["vm"] + "-root"]
    for name in names:
        assert memory_of(admin, ns, name) == "128Mi"
        vm = admin.get(vm_path(ns, name))
        assert vm["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"].startswith("restore-")
        assert not (vm.get("status") or {}).get("restoreInProgress")
    created = [e for e in writes_in(audit, mark, ns)
               if e["objectRef"]["resource"] == "virtualmachinerestores" and e["verb"] == "create"]
    assert len(created) == 3

    mark = audit.mark()
    second = run_module(RESTORE, args)
    assert second.get("failed") is not True, second.get("msg")
    assert second["changed"] is False
    assert {r["action"] for r in second["restores"]} == {"unchanged"}
    assert writes_in(audit, mark, ns) == []


def test_restore_into_a_new_vm_leaves_the_source_alone(run_module, admin, audit, ns):
    make_vms(admin, ns, ["app"], labels={"tier": "web"})
    snapshot(admin, ns, "app", "app-snap")
    wait_snapshots(admin, ns, ["app-snap"])
    admin.merge_patch(vm_path(ns, "app"), {"spec": {"template": {"spec": {"domain": {"memory": {"guest": "256Mi"}}}}}})
    args = {"namespace": ns, "vm": "app", "snapshot": "app-snap", "target": "app-copy",
            "volume_restore_policy": "PrefixTargetName"}

    result = run_module(RESTORE, args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    item = result["restores"][0]
    assert item["new_vm"] is True and item["complete"] is True and item["target"] == "app-copy"
    # KubeVirt's PrefixTargetName: <target>-<volume>
    assert item["volumes"][0]["claim"] == item["volumes"][0]["data_volume"] == "app-copy-root"
    # the restored DataVolume as GenerateDataVolumeFromTemplate makes it, pre-populated by the restored claim
    dv = admin.get(object_path(DV_API, "datavolumes", "app-copy-root", ns))
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/allowClaimAdoption"] == "true"
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.prePopulated"] == "true"
    copy = admin.get(vm_path(ns, "app-copy"))
    assert copy["spec"]["runStrategy"] == "Halted"
    assert copy["metadata"]["labels"] == {"tier": "web"}
    assert copy["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"
    assert memory_of(admin, ns, "app") == "256Mi"  # the source keeps its current spec
    assert admin.get(vm_path(ns, "app"))["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"] == "app-root"

    mark = audit.mark()
    again = run_module(RESTORE, args)
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False and again["restores"][0]["action"] == "unchanged"
    assert writes_in(audit, mark, ns) == []


def test_a_running_vm_is_refused_unless_stop_vm_lets_kubevirt_stop_it(run_module, admin, audit, ns):
    make_vms(admin, ns, ["live"], run_strategy="Always")
    Waiter(admin).until(vm_path(ns, "live"), lambda vm: (vm.get("status") or {}).get("printableStatus") == "Running",
                        120, "VM live Running")
    snapshot(admin, ns, "live", "live-snap")
    wait_snapshots(admin, ns, ["live-snap"])
    args = {"namespace": ns, "vm": "live", "snapshot": "live-snap"}

    mark = audit.mark()
    refused = run_module(RESTORE, args)
    assert refused.get("failed") is True
    assert "nothing was changed" in refused["msg"]
    assert "VM %s/live: stop_vm: the VM is running" % ns in refused["msg"]
    assert refused.get("changed") is not True
    assert writes_in(audit, mark, ns) == []

    # a restore that failed on the running VM (FailImmediate) is never complete, and KubeVirt's restore admitter
    # refuses any new restore of the VM while it exists: the preflight names it and says to delete it
    failed_path = object_path(SNAP_API, "virtualmachinerestores", "live-failed", ns)
    admin.create(object_path(SNAP_API, "virtualmachinerestores", namespace=ns), {
        "apiVersion": SNAP_API, "kind": "VirtualMachineRestore", "metadata": {"name": "live-failed"},
        "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "live"},
                 "virtualMachineSnapshotName": "live-snap", "targetReadinessPolicy": "FailImmediate"}})
    Waiter(admin).until(failed_path, lambda r: any(c.get("type") == "Failure" for c in (r.get("status") or {}).get(
        "conditions") or []), 60, "restore live-failed failed")
    for check in (True, False):
        mark = audit.mark()
        refused = run_module(RESTORE, dict(args, stop_vm=True, restore_id="retry"), check=check)
        assert refused.get("failed") is True and refused.get("changed") is not True
        assert ("VM %s/live: target: VirtualMachineRestore live-failed of it failed (Restore target VMI must be powered "
                "off before restore operation); KubeVirt refuses any new restore of the VM while a failed one exists - "
                "delete VirtualMachineRestore %s/live-failed, then run again" % (ns, ns)) in refused["msg"]
        assert writes_in(audit, mark, ns) == []
    admin.delete(failed_path)
    Waiter(admin).gone(failed_path)

    result = run_module(RESTORE, dict(args, stop_vm=True))
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["restores"][0]["complete"] is True
    vm = admin.get(vm_path(ns, "live"))
    assert vm["spec"]["runStrategy"] == "Halted"  # KubeVirt's stop, kept by the restore
    assert admin.get_or_none(object_path("kubevirt.io/v1", "virtualmachineinstances", "live", ns)) is None


def test_bad_restores_are_refused_before_any_write_naming_the_restore_and_option(run_module, admin, audit, ns):
    make_vms(admin, ns, ["one", "two"])
    snapshot(admin, ns, "one", "one-snap")
    wait_snapshots(admin, ns, ["one-snap"])
    cases = [
        ({"vm": "one", "snapshot": "nope"},
         "VM %s/one: snapshot: VirtualMachineSnapshot nope does not exist in namespace %s" % (ns, ns)),
        ({"vm": "one", "snapshot": "one-snap", "target": "two"},
         "VM %s/two: target: VirtualMachine two exists and is not the source of snapshot one-snap" % ns),
        ({"vm": "ghost", "snapshot": "one-snap"},
         "VM %s/ghost: vm: no such VirtualMachine in namespace %s" % (ns, ns)),
        ({"vm": "One_Bad", "snapshot": "one-snap"}, "vm: 'One_Bad' is not a valid name"),
        ({"restores": [{"vm": "one", "snapshot": "one-snap"}, {"vm": "one", "snapshot": "one-snap"}]},
         "VM %s/one: target: restored twice in this task" % ns),
        ({"restores": [{"vm": "one", "snapshot": "one-snap", "stop_vm": "maybe"}]}, "restores[0] (one): argument 'stop_vm'"),
        ({"vm": "one", "snapshot": "one-snap", "volume_restore_policy": "Sideways"}, "volume_restore_policy"),
        ({"vm": "one", "snapshot": "one-snap", "wait_timeout": -1}, "wait_timeout: -1 is out of range"),
    ]
    for args, expected in cases:
        mark = audit.mark()
        result = run_module(RESTORE, dict({"namespace": ns}, **args))
        assert result.get("failed") is True, (args, result)
        assert expected in result["msg"], (args, result["msg"])
        assert result.get("changed") is not True
        assert writes_in(audit, mark, ns) == [], args


def test_a_wait_that_times_out_names_the_pending_restore_and_still_reports_changed(run_module, admin, ns):
    make_vms(admin, ns, ["slow"])
    snapshot(admin, ns, "slow", "slow-snap")
    wait_snapshots(admin, ns, ["slow-snap"])
    result = run_module(RESTORE, {"namespace": ns, "vm": "slow", "snapshot": "slow-snap", "target": "slow-copy",
                                  "wait_timeout": 0})
    assert result.get("failed") is True
    assert result["changed"] is True  # the restore was created before the wait ended
    assert "timed out after 0s waiting for 1 of 1: %s/slow-copy-slow-snap (waiting for complete" % ns in result["msg"]
    assert "last seen: " in result["msg"]
    assert result["restores"][0]["action"] == "created"
    # the next run follows the same restore to its end instead of making another
    again = run_module(RESTORE, {"namespace": ns, "vm": "slow", "snapshot": "slow-snap", "target": "slow-copy"})
    assert again.get("failed") is not True, again.get("msg")
    assert again["restores"][0]["action"] in ("adopted", "unchanged") and again["restores"][0]["complete"] is True


def test_the_collections_modules_together_snapshot_change_restore_and_clone_a_running_vm(run_module, admin, ns):
    """kubevirt_vm makes a running VM, kubevirt_vm_snapshot snapshots it online, kubevirt_vm changes it, then
    kubevirt_vm_restore (stop_vm) brings the old spec back and kubevirt_vm_clone starts a copy of the snapshot."""
    vm_args = {"namespace": ns, "name": "app", "memory": "128Mi", "state": "started", "wait": True, "wait_timeout": 240,
               "disks": [{"name": "root", "data_volume": {"size": "1Gi", "storage_class": "lab-rwo", "blank": True}}]}
    made = run_module("palette.vmo.kubevirt_vm", vm_args)
    assert made.get("failed") is not True, made.get("msg")
    snap = run_module("palette.vmo.kubevirt_vm_snapshot", {"namespace": ns, "name": "app", "snapshot_id": "before",
                                                           "wait_timeout": 240})
    assert snap.get("failed") is not True, snap.get("msg")
    name = snap["snapshots"][0]["snapshot"]
    assert name == "app-before"
    changed = run_module("palette.vmo.kubevirt_vm", dict(vm_args, memory="256Mi", state="stopped"))
    assert changed.get("failed") is not True, changed.get("msg")
    assert memory_of(admin, ns, "app") == "256Mi"

    restored = run_module(RESTORE, {"namespace": ns, "vm": "app", "snapshot": name, "stop_vm": True})
    assert restored.get("failed") is not True, restored.get("msg")
    assert restored["restores"][0]["complete"] is True
    assert memory_of(admin, ns, "app") == "128Mi"

    cloned = run_module(CLONE, {"namespace": ns, "source_snapshot": name, "target": "app-copy", "start": True,
                                "wait_timeout": 240})
    assert cloned.get("failed") is not True, cloned.get("msg")
    assert cloned["clones"][0]["started"] is True
    copy = admin.get(vm_path(ns, "app-copy"))
    assert copy["status"]["printableStatus"] == "Running"
    assert copy["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"
