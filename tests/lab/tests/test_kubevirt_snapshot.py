"""Snapshots in the lab: the external-snapshotter stand-in (VolumeSnapshot -> VolumeSnapshotContent, ready to
use, restore size, claims provisioned from a snapshot) and KubeVirt's VirtualMachineSnapshot controller and
admitter (content with the VM's spec and volume backups, phases, indications, source lock, deadline)."""

import pytest

from tests.lab.kube import KubeError, object_path
from tests.lab.kubevirt import handler, snapshot, vm_snapshot, volume_data

from .helpers import vm_manifest, vm_path, vmi_path

VS_API = "snapshot.storage.k8s.io/v1"
VM_SNAP_API = "snapshot.kubevirt.io/v1beta1"


def pvc_path(namespace, name=""):
    return object_path("v1", "persistentvolumeclaims", name, namespace)


def vs_path(namespace, name=""):
    return object_path(VS_API, "volumesnapshots", name, namespace)


def vmsnap_path(namespace, name=""):
    return object_path(VM_SNAP_API, "virtualmachinesnapshots", name, namespace)


def content_path(namespace, name=""):
    return object_path(VM_SNAP_API, "virtualmachinesnapshotcontents", name, namespace)


def claim(name, size="1Gi", data_source=None):
    spec = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}},
            "storageClassName": "lab-rwo"}
    if data_source:
        spec["dataSource"] = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": data_source}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def bound(wait, namespace, name, timeout=30.0):
    return wait.until(pvc_path(namespace, name), lambda p: p and p.get("status", {}).get("phase") == "Bound",
                      timeout, f"PVC {namespace}/{name} Bound")


def volume_snapshot(name, claim_name, class_name=None):
    spec = {"source": {"persistentVolumeClaimName": claim_name}}
    if class_name:
        spec["volumeSnapshotClassName"] = class_name
    return {"apiVersion": VS_API, "kind": "VolumeSnapshot", "metadata": {"name": name}, "spec": spec}


def vm_with_claim(name, namespace, claim_name, run_strategy="Halted"):
    vm = vm_manifest(name, namespace, run_strategy)
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    spec["volumes"] = [{"name": "root", "persistentVolumeClaim": {"claimName": claim_name}}]
    return vm


def vm_snapshot_manifest(name, vm_name, **spec):
    return {"apiVersion": VM_SNAP_API, "kind": "VirtualMachineSnapshot", "metadata": {"name": name},
            "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm_name}, **spec}}


def ready(obj):
    return bool(obj and (obj.get("status") or {}).get("readyToUse"))


def test_the_lab_volume_snapshot_class_is_the_default_of_the_lab_driver(admin):
    vsc = admin.get(object_path(VS_API, "volumesnapshotclasses", snapshot.SNAPSHOT_CLASS))
    assert vsc["driver"] == "csi.lab.palette.vmo"
    assert vsc["deletionPolicy"] == "Delete"
    assert vsc["metadata"]["annotations"][snapshot.DEFAULT_CLASS_ANNOTATION] == "true"


def test_a_volume_snapshot_gets_the_default_class_a_content_and_becomes_ready(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("data", "2Gi"))
    pvc = bound(wait, namespace, "data")
    admin.create(vs_path(namespace), volume_snapshot("snap", "data"))
    vs = wait.until(vs_path(namespace, "snap"), ready, what="VolumeSnapshot ready")
    assert vs["spec"]["volumeSnapshotClassName"] == snapshot.SNAPSHOT_CLASS
    status = vs["status"]
    assert status["boundVolumeSnapshotContentName"] == "snapcontent-" + vs["metadata"]["uid"]
    assert status["restoreSize"] == "2Gi" and status["creationTime"]
    assert set(vs["metadata"]["finalizers"]) == {snapshot.AS_SOURCE_FINALIZER, snapshot.BOUND_FINALIZER}
    content = admin.get(object_path(VS_API, "volumesnapshotcontents", status["boundVolumeSnapshotContentName"]))
    pv = admin.get(object_path("v1", "persistentvolumes", pvc["spec"]["volumeName"]))
    assert content["spec"]["source"] == {"volumeHandle": pv["spec"]["csi"]["volumeHandle"]}
    assert content["spec"]["volumeSnapshotRef"]["uid"] == vs["metadata"]["uid"]
    assert content["spec"]["deletionPolicy"] == "Delete" and content["spec"]["driver"] == "csi.lab.palette.vmo"
    assert content["status"]["restoreSize"] == 2 << 30 and content["status"]["readyToUse"] is True
    assert content["status"]["snapshotHandle"] == "lab-snap-" + vs["metadata"]["uid"]
    assert snapshot.CONTENT_FINALIZER in content["metadata"]["finalizers"]
    assert snapshot.ANN_BEING_CREATED not in (content["metadata"].get("annotations") or {})
    # the source claim's finalizer is dropped once no unready snapshot uses it
    wait.until(pvc_path(namespace, "data"),
               lambda p: snapshot.PVC_FINALIZER not in (p["metadata"].get("finalizers") or []),
               what="pvc-as-source-protection removed")


def handle_of(admin, namespace, name):
    pvc = admin.get(pvc_path(namespace, name))
    return volume_data.volume_handle(admin.get(object_path("v1", "persistentvolumes", pvc["spec"]["volumeName"])))


def test_a_claim_is_provisioned_from_a_snapshot_and_a_smaller_one_is_refused(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("data", "2Gi"))
    bound(wait, namespace, "data")
    volume_data.write(handle_of(admin, namespace, "data"), b"before the snapshot")
    admin.create(vs_path(namespace), volume_snapshot("snap", "data"))
    wait.until(vs_path(namespace, "snap"), ready, what="VolumeSnapshot ready")
    volume_data.write(handle_of(admin, namespace, "data"), b"after the snapshot")
    admin.create(pvc_path(namespace), claim("restored", "2Gi", data_source="snap"))
    restored = bound(wait, namespace, "restored")
    assert restored["spec"]["dataSource"]["name"] == "snap"
    # The new volume holds the blocks the snapshot kept, not the source volume's later ones.
    assert b"".join(volume_data.read_stream(handle_of(admin, namespace, "restored"))) == b"before the snapshot"
    admin.create(pvc_path(namespace), claim("small", "1Gi", data_source="snap"))
    path = object_path("v1", "events", namespace=namespace)
    found = wait.until(path, lambda listing: any(e["involvedObject"]["name"] == "small"
                                                 and e["reason"] == "ProvisioningFailed" for e in listing["items"]),
                       what="ProvisioningFailed on the small claim")
    message = next(e["message"] for e in found["items"]
                   if e["involvedObject"]["name"] == "small" and e["reason"] == "ProvisioningFailed")
    assert f"requested volume size {1 << 30} is less than the size {2 << 30} for the source snapshot snap" in message
    assert admin.get(pvc_path(namespace, "small"))["status"]["phase"] == "Pending"


def test_deleting_a_volume_snapshot_deletes_its_content(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("data"))
    bound(wait, namespace, "data")
    vs = admin.create(vs_path(namespace), volume_snapshot("snap", "data"))
    wait.until(vs_path(namespace, "snap"), ready, what="VolumeSnapshot ready")
    admin.delete(vs_path(namespace, "snap"))
    wait.gone(vs_path(namespace, "snap"))
    wait.gone(object_path(VS_API, "volumesnapshotcontents", "snapcontent-" + vs["metadata"]["uid"]))


def test_a_snapshot_of_a_missing_class_reports_the_error(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("data"))
    bound(wait, namespace, "data")
    admin.create(vs_path(namespace), volume_snapshot("snap", "data", class_name="no-such-class"))
    vs = wait.until(vs_path(namespace, "snap"), lambda v: (v.get("status") or {}).get("error"),
                    what="VolumeSnapshot error")
    assert "no-such-class" in vs["status"]["error"]["message"] and vs["status"]["readyToUse"] is False


# -- KubeVirt VirtualMachineSnapshot ---------------------------------------------------------------------

def test_an_offline_vm_snapshot_copies_the_vm_and_snapshots_its_volume(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("root-disk"))
    bound(wait, namespace, "root-disk")
    vm = admin.create(vm_path(namespace), vm_with_claim("vm1", namespace, "root-disk"))
    admin.create(vmsnap_path(namespace), vm_snapshot_manifest("snap1", "vm1"))
    snap = wait.until(vmsnap_path(namespace, "snap1"), lambda s: (s.get("status") or {}).get("phase") == "Succeeded"
                      and ready(s), what="VirtualMachineSnapshot Succeeded")
    status = snap["status"]
    assert status["sourceUID"] == vm["metadata"]["uid"]
    assert status["virtualMachineSnapshotContentName"] == "vmsnapshot-content-" + snap["metadata"]["uid"]
    assert status["snapshotVolumes"] == {"includedVolumes": ["root"]}
    assert "indications" not in status  # offline
    conds = {c["type"]: c for c in status["conditions"]}
    assert conds["Ready"]["status"] == "True" and conds["Progressing"]["reason"] == "Operation complete"
    assert vm_snapshot.SNAPSHOT_FINALIZER in snap["metadata"]["finalizers"]
    content = admin.get(content_path(namespace, status["virtualMachineSnapshotContentName"]))
    source_vm = content["spec"]["source"]["virtualMachine"]
    assert source_vm["metadata"]["name"] == "vm1" and "managedFields" not in source_vm["metadata"]
    assert source_vm["spec"]["template"]["spec"]["volumes"] == vm["spec"]["template"]["spec"]["volumes"]
    [backup] = content["spec"]["volumeBackups"]
    vs_name = f"vmsnapshot-{snap['metadata']['uid']}-volume-root"
    assert backup["volumeName"] == "root" and backup["volumeSnapshotName"] == vs_name
    assert backup["persistentVolumeClaim"]["metadata"]["name"] == "root-disk"
    assert content["status"]["readyToUse"] is True
    assert content["status"]["volumeSnapshotStatus"][0]["volumeSnapshotName"] == vs_name
    vs = admin.get(vs_path(namespace, vs_name))
    assert vs["metadata"]["labels"] == {vm_snapshot.SOURCE_NAME_LABEL: "vm1",
                                        vm_snapshot.SOURCE_NAMESPACE_LABEL: namespace}
    assert vs["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachineSnapshotContent"
    # the source is unlocked again and the VM reports its volumes as snapshot-able
    vm = wait.until(vm_path(namespace, "vm1"), lambda v: not (v.get("status") or {}).get("snapshotInProgress")
                    and vm_snapshot.SOURCE_FINALIZER not in (v["metadata"].get("finalizers") or []),
                    what="VM unlocked")
    assert vm["status"]["volumeSnapshotStatuses"] == [{"name": "root", "enabled": True}]


def agent_connected(vmi):
    return any(c.get("type") == "AgentConnected" for c in (vmi.get("status") or {}).get("conditions") or [])


@pytest.mark.parametrize("agent", [True, False])
def test_an_online_snapshot_has_the_online_indications_and_the_revision_spec(admin, wait, namespace, agent):
    admin.create(pvc_path(namespace), claim("root-disk"))
    bound(wait, namespace, "root-disk")
    vm = vm_with_claim("vm1", namespace, "root-disk", "Always")
    if not agent:
        vm["spec"]["template"]["metadata"]["annotations"] = {handler.LAB_NO_AGENT_ANNOTATION: "true"}
    admin.create(vm_path(namespace), vm)
    wait.until(vmi_path(namespace, "vm1"), lambda v: v and (v.get("status") or {}).get("phase") == "Running"
               and (v.get("status") or {}).get("virtualMachineRevisionName") and agent_connected(v) == agent,
               what="VMI running")
    admin.create(vmsnap_path(namespace), vm_snapshot_manifest("snap1", "vm1"))
    snap = wait.until(vmsnap_path(namespace, "snap1"), ready, what="VirtualMachineSnapshot ready")
    # updateSnapshotSourceIndications: Online, and GuestAgent (filesystems frozen) or NoGuestAgent
    assert snap["status"]["indications"] == ["GuestAgent", "Online"] if agent else ["NoGuestAgent", "Online"]
    assert [(i["indication"], i["message"]) for i in snap["status"]["sourceIndications"]] == [
        (i, vm_snapshot.INDICATION_MESSAGES[i]) for i in snap["status"]["indications"]]
    vmi = admin.get(vmi_path(namespace, "vm1"))
    assert (vmi.get("status") or {}).get("fsFreezeStatus") is None  # unfrozen after the snapshot was cut
    # the content keeps the spec of the revision the VMI started from, with the VM's current volumes
    content = admin.get(content_path(namespace, snap["status"]["virtualMachineSnapshotContentName"]))
    source_vm = content["spec"]["source"]["virtualMachine"]
    assert source_vm["spec"]["runStrategy"] == "Always"
    assert source_vm["spec"]["template"]["spec"]["volumes"] == vm["spec"]["template"]["spec"]["volumes"]


def test_a_snapshot_of_a_vm_with_an_unbound_claim_waits_and_fails_at_its_deadline(admin, wait, namespace):
    bad = claim("pending", "1Gi")
    bad["spec"]["storageClassName"] = "no-such-class"
    admin.create(pvc_path(namespace), bad)
    admin.create(vm_path(namespace), vm_with_claim("vm1", namespace, "pending"))
    admin.create(vmsnap_path(namespace), vm_snapshot_manifest("snap1", "vm1", failureDeadline="3s"))
    snap = wait.until(vmsnap_path(namespace, "snap1"), lambda s: (s.get("status") or {}).get("phase") == "Failed",
                      timeout=30.0, what="VirtualMachineSnapshot Failed")
    conds = {c["type"]: c for c in snap["status"]["conditions"]}
    assert conds["Failure"]["status"] == "True" and conds["Failure"]["reason"] == "snapshot deadline exceeded"
    assert conds["Progressing"]["reason"] == "Operation failed"
    vm = admin.get(vm_path(namespace, "vm1"))
    assert not (vm.get("status") or {}).get("snapshotInProgress")


def test_deleting_a_vm_snapshot_deletes_its_content_and_volume_snapshots(admin, wait, namespace):
    admin.create(pvc_path(namespace), claim("root-disk"))
    bound(wait, namespace, "root-disk")
    admin.create(vm_path(namespace), vm_with_claim("vm1", namespace, "root-disk"))
    snap = admin.create(vmsnap_path(namespace), vm_snapshot_manifest("snap1", "vm1"))
    wait.until(vmsnap_path(namespace, "snap1"), ready, what="VirtualMachineSnapshot ready")
    admin.delete(vmsnap_path(namespace, "snap1"))
    wait.gone(vmsnap_path(namespace, "snap1"))
    wait.gone(content_path(namespace, "vmsnapshot-content-" + snap["metadata"]["uid"]))
    wait.gone(vs_path(namespace, f"vmsnapshot-{snap['metadata']['uid']}-volume-root"))


@pytest.mark.parametrize("source, field, message", [
    ({"kind": "VirtualMachine", "name": "vm1"}, "spec.source.apiGroup", "missing apiGroup"),
    ({"apiGroup": "kubevirt.io", "kind": "VirtualMachineInstance", "name": "vm1"}, "spec.source.kind", "invalid kind"),
    ({"apiGroup": "apps", "kind": "VirtualMachine", "name": "vm1"}, "spec.source.apiGroup", "invalid apiGroup"),
])
def test_the_admitter_refuses_a_bad_source(admin, namespace, source, field, message):
    body = vm_snapshot_manifest("snap1", "vm1")
    body["spec"]["source"] = source
    with pytest.raises(KubeError) as err:
        admin.create(vmsnap_path(namespace), body)
    assert err.value.status == 422
    assert err.value.body["details"]["causes"][0]["field"] == field
    assert message in err.value.body["message"]


def test_the_admitter_keeps_the_spec_immutable(admin, wait, namespace):
    admin.create(vm_path(namespace), vm_manifest("vm1", namespace, "Halted"))
    admin.create(vmsnap_path(namespace), vm_snapshot_manifest("snap1", "vm1"))
    with pytest.raises(KubeError) as err:
        admin.merge_patch(vmsnap_path(namespace, "snap1"), {"spec": {"source": {"name": "vm2"}}})
    assert err.value.status == 422 and "spec in immutable after creation" in err.value.body["message"]


def test_a_vm_locked_by_a_snapshot_keeps_its_volumes_and_run_strategy(admin, wait, namespace):
    """vm-storage-status.go validateSnapshotStatus: virt-api refuses those updates while status.snapshotInProgress
    names a snapshot; other changes go through."""
    admin.create(vm_path(namespace), vm_manifest("vm1", namespace, "Halted"))
    admin.merge_patch(vm_path(namespace, "vm1") + "/status", {"status": {"snapshotInProgress": "snap1"}})
    for patch, message in (
            ({"spec": {"runStrategy": "Always"}}, 'Cannot update vm running state until snapshot "snap1" completes'),
            ({"spec": {"template": {"spec": {"volumes": [{"name": "extra", "emptyDisk": {"capacity": "1Gi"}}]}}}},
             'Cannot update vm disks or volumes until snapshot "snap1" completes')):
        with pytest.raises(KubeError) as err:
            admin.merge_patch(vm_path(namespace, "vm1"), patch)
        assert err.value.status == 422 and message in err.value.body["message"]
    admin.merge_patch(vm_path(namespace, "vm1"), {"metadata": {"labels": {"tier": "web"}}})
    admin.merge_patch(vm_path(namespace, "vm1") + "/status", {"status": {"snapshotInProgress": None}})
    admin.merge_patch(vm_path(namespace, "vm1"), {"spec": {"runStrategy": "Always"}})
