"""The stand-in's VirtualMachineRestore and VirtualMachineClone controllers and their webhooks, against
KubeVirt v1.9.0's behaviour (pkg/storage/snapshot/restore.go, pkg/virt-controller/watch/clone,
pkg/storage/admitters/vmrestore.go, admitters/vmclone-admitter.go, mutators/clone-create-mutator.go)."""

import pytest

from tests.lab.kube import KubeError, object_path
from tests.lab.kubevirt import vm_clone, vm_restore

from .helpers import vm_path, vmi_path
from .test_kubevirt_snapshot import (bound, claim, pvc_path, ready, vm_snapshot_manifest, vm_with_claim,
                                     vmsnap_path)

SNAP_API = "snapshot.kubevirt.io/v1beta1"
CLONE_API = "clone.kubevirt.io/v1beta1"


def restore_path(namespace, name=""):
    return object_path(SNAP_API, "virtualmachinerestores", name, namespace)


def clone_path(namespace, name=""):
    return object_path(CLONE_API, "virtualmachineclones", name, namespace)


def restore_manifest(name, target, snapshot, **spec):
    return {"apiVersion": SNAP_API, "kind": "VirtualMachineRestore", "metadata": {"name": name},
            "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": target},
                     "virtualMachineSnapshotName": snapshot, **spec}}


def complete(obj):
    return bool(obj and (obj.get("status") or {}).get("complete"))


def snapshotted_vm(admin, wait, namespace, name="vm", run_strategy="Halted"):
    admin.create(pvc_path(namespace), claim(name + "-disk"))
    bound(wait, namespace, name + "-disk")
    vm = vm_with_claim(name, namespace, name + "-disk", run_strategy)
    vm["metadata"]["labels"] = {"app": "db", "tier": "data"}
    admin.create(vm_path(namespace), vm)
    if run_strategy == "Always":
        wait.printable(namespace, name, "Running", 60)
    wait.until(vm_path(namespace, name), lambda v: bool((v.get("status") or {}).get("volumeSnapshotStatuses")), 30)
    admin.create(vmsnap_path(namespace), vm_snapshot_manifest(name + "-snap", name))
    wait.until(vmsnap_path(namespace, name + "-snap"), ready, 60, "snapshot ready")


def test_restore_to_a_new_vm_makes_claims_from_the_volume_snapshots(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace)
    admin.create(restore_path(namespace), restore_manifest("r1", "copy", "vm-snap"))
    restore = wait.until(restore_path(namespace, "r1"), complete, 60, "restore complete")
    status = restore["status"]
    assert [c["type"] for c in status["conditions"]] == ["Progressing", "Ready"]
    assert {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]} == {
        "Progressing": ("False", "Operation complete"), "Ready": ("True", "Operation complete")}
    assert status["restoreTime"]
    (item,) = status["restores"]
    assert item["persistentVolumeClaim"] == "restore-%s-root" % restore["metadata"]["uid"]
    pvc = admin.get(pvc_path(namespace, item["persistentVolumeClaim"]))
    assert pvc["spec"]["dataSource"] == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                                         "name": item["volumeSnapshotName"]}
    assert pvc["metadata"]["labels"][vm_restore.SOURCE_NAME_LABEL] == "vm"
    assert pvc["metadata"]["annotations"][vm_restore.RESTORE_NAME_ANNOTATION] == "r1"
    assert pvc["metadata"]["annotations"][vm_restore.LAST_RESTORE] == "r1-%s" % restore["metadata"]["uid"]
    copy = admin.get(vm_path(namespace, "copy"))
    assert copy["spec"]["runStrategy"] == "Halted"
    assert copy["metadata"]["labels"] == {"app": "db", "tier": "data"}
    assert copy["spec"]["template"]["spec"]["volumes"] == [
        {"name": "root", "persistentVolumeClaim": {"claimName": item["persistentVolumeClaim"]}}]
    # a new VM is not the snapshot's VM: no legacy firmware UUID is set on it
    assert "firmware" not in copy["spec"]["template"]["spec"]["domain"]
    # the restore is not owned by a target that did not exist when it started; no finalizer is left behind
    assert restore["metadata"].get("finalizers") == [vm_restore.FINALIZER]
    admin.delete(restore_path(namespace, "r1"))
    wait.gone(restore_path(namespace, "r1"))


def test_in_place_restore_waits_for_a_running_vm_and_stop_target_stops_it(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace, run_strategy="Always")
    admin.merge_patch(vm_path(namespace, "vm"), {"spec": {"template": {"spec": {"domain": {
        "memory": {"guest": "256Mi"}}}}}})
    admin.create(restore_path(namespace), restore_manifest("wait", "vm", "vm-snap"))
    waiting = wait.until(restore_path(namespace, "wait"), lambda r: any(
        c.get("reason") == vm_restore.WAIT_GRACE for c in (r.get("status") or {}).get("conditions") or []), 30)
    assert waiting["status"]["complete"] is False
    assert waiting["metadata"]["ownerReferences"][0]["name"] == "vm"
    # the admitter refuses a second restore of a target while one is in progress
    with pytest.raises(KubeError) as err:
        admin.create(restore_path(namespace), restore_manifest("second", "vm", "vm-snap"))
    assert 'VirtualMachineRestore \\"wait\\" in progress' in str(err.value) or \
        'VirtualMachineRestore "wait" in progress' in str(err.value)
    admin.delete(restore_path(namespace, "wait"))
    wait.gone(restore_path(namespace, "wait"))

    admin.create(restore_path(namespace), restore_manifest("stop", "vm", "vm-snap", targetReadinessPolicy="StopTarget"))
    restore = wait.until(restore_path(namespace, "stop"), complete, 90, "restore complete")
    assert admin.get_or_none(vmi_path(namespace, "vm")) is None
    vm = admin.get(vm_path(namespace, "vm"))
    assert vm["spec"]["runStrategy"] == "Halted"
    assert vm["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"
    assert vm["metadata"]["annotations"][vm_restore.LAST_RESTORE] == "stop-%s" % restore["metadata"]["uid"]
    # setLegacyFirmwareUUID: restored onto the snapshot's own VM
    assert vm["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"] == vm_restore.legacy_firmware_uuid("vm")
    assert not (vm.get("status") or {}).get("restoreInProgress")


def test_fail_immediate_fails_a_restore_of_a_running_vm(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace, run_strategy="Always")
    admin.create(restore_path(namespace), restore_manifest("now", "vm", "vm-snap", targetReadinessPolicy="FailImmediate"))
    restore = wait.until(restore_path(namespace, "now"), vm_restore.restore_failed, 30)
    failure = [c for c in restore["status"]["conditions"] if c["type"] == "Failure"][0]
    assert failure["reason"] == vm_restore.TARGET_NOT_READY_FAILURE
    assert admin.get(vm_path(namespace, "vm"))["spec"]["template"]["spec"]["volumes"][0][
        "persistentVolumeClaim"]["claimName"] == "vm-disk"


def test_the_restore_admitter_refuses_what_kubevirt_refuses(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace)
    bad_patch = '{"op": "replace", "path": "/metadata/name", "value": "x"}'
    cases = [
        (restore_manifest("a", "vm", "vm-snap", patches=[bad_patch]), "patching is valid only for elements under /spec/ only"),
        (restore_manifest("f", "vm", "s", volumeOwnershipPolicy="VM"), 'volume ownership policy "VM" doesn\'t exist'),
        ({**restore_manifest("b", "vm", "s"), "spec": {"target": {"kind": "VirtualMachine", "name": "vm"},
                                                       "virtualMachineSnapshotName": "s"}}, "missing apiGroup"),
        ({**restore_manifest("c", "vm", "s"), "spec": {"target": {"apiGroup": "kubevirt.io", "kind": "Pod",
                                                                  "name": "vm"}, "virtualMachineSnapshotName": "s"}},
         "invalid kind"),
        (restore_manifest("d", "vm", "s", volumeRestorePolicy="Shuffle"), 'volume restore policy "Shuffle" doesn\'t exist'),
        (restore_manifest("e", "vm", "s", volumeRestoreOverrides=[{"volumeName": "root"}]),
         "must provide at least one overriden field"),
    ]
    for manifest, message in cases:
        with pytest.raises(KubeError) as err:
            admin.create(restore_path(namespace), manifest)
        assert err.value.status == 422 and message in str(err.value), (manifest, err.value)
    # accepted as KubeVirt accepts them: the policy "Vm" (VolumeOwnershipPolicyVm), and patch causes dropped when
    # the snapshot does not exist (validateTargetVM returns nil, nil)
    admin.create(restore_path(namespace), restore_manifest("g", "other-1", "vm-snap", volumeOwnershipPolicy="Vm"))
    admin.create(restore_path(namespace), restore_manifest("h", "other-2", "missing", patches=[bad_patch]))


def test_another_restore_named_in_the_vm_status_only_delays_the_restore(admin, wait, namespace):
    """restore.go:269-272: the "vm restore X in progress" error of UpdateRestoreInProgress is returned as it is
    (a retry), without doUpdateError: no condition on the restore, no event."""
    snapshotted_vm(admin, wait, namespace)
    vm = admin.get(vm_path(namespace, "vm"))
    vm["status"]["restoreInProgress"] = "elsewhere"
    admin.request("PUT", vm_path(namespace, "vm") + "/status", vm)
    admin.create(restore_path(namespace), restore_manifest("later", "vm", "vm-snap"))
    wait.until(restore_path(namespace, "later"), lambda r: vm_restore.FINALIZER in (r["metadata"].get("finalizers") or []),
               30, "finalizer")
    waiting = admin.get(restore_path(namespace, "later"))
    assert {c["reason"] for c in waiting["status"]["conditions"]} == {"Initializing VirtualMachineRestore"}
    assert admin.get(vm_path(namespace, "vm"))["status"]["restoreInProgress"] == "elsewhere"
    vm = admin.get(vm_path(namespace, "vm"))
    del vm["status"]["restoreInProgress"]
    admin.request("PUT", vm_path(namespace, "vm") + "/status", vm)
    done = wait.until(restore_path(namespace, "later"), complete, 60, "restore complete")
    assert {c["reason"] for c in done["status"]["conditions"]} == {"Operation complete"}
    events = admin.get(object_path("v1", "events", namespace=namespace))["items"]
    assert not [e for e in events if "in progress" in (e.get("message") or "")]


def test_a_clone_of_a_vm_goes_through_snapshot_and_restore_and_cleans_up(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace)
    admin.create(clone_path(namespace), {
        "apiVersion": CLONE_API, "kind": "VirtualMachineClone", "metadata": {"name": "c"},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"},
                 "labelFilters": ["*", "!tier"], "newMacAddresses": {"default": "02-aa-00-00-00-01"}}})
    created = admin.get(clone_path(namespace, "c"))
    target = created["spec"]["target"]["name"]  # the mutator's clone-<source>-<suffix>
    assert target.startswith("clone-vm-") and len(target) == len("clone-vm-") + 5
    done = wait.until(clone_path(namespace, "c"), lambda c: (c.get("status") or {}).get("phase") == "Succeeded"
                      and not c["status"].get("restoreName"), 90, "clone Succeeded and cleaned up")
    assert done["status"]["targetName"] == target
    assert {c["type"]: (c["status"], c["reason"]) for c in done["status"]["conditions"]} == {
        "Progressing": ("False", "Ready"), "Ready": ("True", "Ready")}
    vm = admin.get(vm_path(namespace, target))
    assert vm["metadata"]["labels"] == {"app": "db"}
    assert vm["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] == "02-aa-00-00-00-01"
    uid = done["metadata"]["uid"]
    wait.gone(vmsnap_path(namespace, "tmp-snapshot-%s" % uid))
    wait.gone(restore_path(namespace, "tmp-restore-%s" % uid))
    # a Succeeded clone whose VM is deleted is deleted too (execute)
    admin.delete(vm_path(namespace, target))
    wait.gone(clone_path(namespace, "c"), 60)


def test_kubevirts_restore_admitter_refuses_a_clone_mac_written_with_colons(admin, wait, namespace):
    """KubeVirt v1.9.0: validatePatches splits each restore patch at ':' (kubevirt/kubevirt#18618), so the
    clone's restore with a colon-separated MAC is refused and the clone stays in RestoreInProgress."""
    snapshotted_vm(admin, wait, namespace)
    admin.create(clone_path(namespace), {
        "apiVersion": CLONE_API, "kind": "VirtualMachineClone", "metadata": {"name": "colons"},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"},
                 "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "colons-vm"},
                 "newMacAddresses": {"default": "02:aa:00:00:00:01"}}})
    events = object_path("v1", "events", namespace=namespace)
    wait.until(events, lambda listing: any(e.get("reason") == vm_clone.RESTORE_CREATION_FAILED
                                           for e in listing.get("items") or []), 60, "RestoreCreationFailed event")
    clone = admin.get(clone_path(namespace, "colons"))
    assert clone["status"]["phase"] == "RestoreInProgress" and not clone["status"].get("restoreName")
    assert admin.get_or_none(vm_path(namespace, "colons-vm")) is None


def test_the_clone_admitter_refuses_what_kubevirt_refuses(admin, namespace):
    def manifest(**spec):
        base = {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}}
        return {"apiVersion": CLONE_API, "kind": "VirtualMachineClone", "metadata": {"name": "x"},
                "spec": dict(base, **spec)}

    cases = [
        (manifest(target={"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}),
         "Target name cannot be equal to source name when both are VirtualMachines"),
        (manifest(labelFilters=["!"]), "a negation character is not a valid filter"),
        (manifest(annotationFilters=["a*b"]), "spec.annotations filter a*b is invalid: cannot contain a wildcard"),
        (manifest(newMacAddresses={"eth0": "not-a-mac"}), "interface eth0 has malformed MAC address (not-a-mac)."),
        (manifest(patches=["{not json"]), "patch is not valid JSON ({not json)"),
    ]
    for body, message in cases:
        with pytest.raises(KubeError) as err:
            admin.create(clone_path(namespace), body)
        assert err.value.status == 422 and message in str(err.value), (body, err.value)


def test_in_place_volume_policy_replaces_the_claim_under_its_own_name(admin, wait, namespace):
    snapshotted_vm(admin, wait, namespace)
    before = admin.get(pvc_path(namespace, "vm-disk"))
    admin.create(restore_path(namespace), restore_manifest("inplace", "vm", "vm-snap", volumeRestorePolicy="InPlace"))
    restore = wait.until(restore_path(namespace, "inplace"), complete, 90, "restore complete")
    assert restore["status"]["restores"][0]["persistentVolumeClaim"] == "vm-disk"
    after = admin.get(pvc_path(namespace, "vm-disk"))
    assert after["metadata"]["uid"] != before["metadata"]["uid"]
    assert after["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    assert after["metadata"]["annotations"][vm_restore.LAST_RESTORE] == "inplace-%s" % restore["metadata"]["uid"]
    vm = admin.get(vm_path(namespace, "vm"))
    assert vm["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "vm-disk"
    # the restored claim is owned by the VM it was restored into (createRestorePVC: target.Own)
    assert [r["name"] for r in after["metadata"].get("ownerReferences") or []] == ["vm"]
