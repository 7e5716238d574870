"""Storage in the lab: StorageClasses, the CSI stand-in's provisioning and expansion on the real
kube-controller-manager and kube-apiserver, CDI's StorageProfiles and DataVolumes."""

import dataclasses

import pytest

from tests.lab import cli, controlplane
from tests.lab.kube import KubeError, object_path
from tests.lab.kubevirt import storage

from .helpers import vm_manifest, vm_path, vmi_path

GI = 1 << 30
FORBIDDEN_CLASS = ("only dynamically provisioned pvc can be resized and the storageclass that provisions "
                   "the pvc must support resize")


def pvc_path(namespace, name=""):
    return object_path("v1", "persistentvolumeclaims", name, namespace)


def dv_path(namespace, name=""):
    return object_path("cdi.kubevirt.io/v1beta1", "datavolumes", name, namespace)


def pvc(name, size="1Gi", modes=("ReadWriteOnce",), storage_class=None, volume_mode=None):
    spec = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    if volume_mode:
        spec["volumeMode"] = volume_mode
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": spec}


def conditions(obj):
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def wait_reasons(wait, namespace, name, reasons, kind=None):
    """Waits until the object's events include every reason (events are posted after the state they report, as
    client-go's recorder posts them); returns the object's events."""
    path = object_path("v1", "events", namespace=namespace)

    def mine(listing):
        return [e for e in listing["items"] if e["involvedObject"]["name"] == name
                and (kind is None or e["involvedObject"]["kind"] == kind)]
    found = wait.until(path, lambda listing: set(reasons) <= {e["reason"] for e in mine(listing)},
                       what=f"events {sorted(reasons)} on {namespace}/{name}")
    return mine(found)


def wait_event(wait, admin, namespace, name, reason):
    path = object_path("v1", "events", namespace=namespace)
    found = wait.until(path, lambda listing: any(e["involvedObject"]["name"] == name and e["reason"] == reason
                                                 for e in listing["items"]),
                       what=f"event {reason} on {namespace}/{name}")
    return [e for e in found["items"] if e["involvedObject"]["name"] == name and e["reason"] == reason]


def wait_bound(wait, namespace, name):
    return wait.until(pvc_path(namespace, name), lambda p: p and p.get("status", {}).get("phase") == "Bound",
                      what=f"PVC {namespace}/{name} Bound")


def create_bound(admin, wait, namespace, name, **kwargs):
    admin.create(pvc_path(namespace), pvc(name, **kwargs))
    return wait_bound(wait, namespace, name)


def expand(admin, namespace, name, size):
    return admin.merge_patch(pvc_path(namespace, name), {"spec": {"resources": {"requests": {"storage": size}}}})


# -- StorageClasses and StorageProfiles ---------------------------------------------------------------

def test_the_controller_manager_runs_the_volume_controllers_and_an_older_lab_is_started_again(lab):
    assert {"persistentvolume-binder-controller", "persistentvolume-expander-controller",
            "persistentvolumeclaim-protection-controller"} <= set(controlplane.CONTROLLERS.split(","))
    assert cli._controllers_current(lab)  # pylint: disable=protected-access
    older = dataclasses.replace(lab, processes={**lab.processes, "controller-manager": lab.processes["etcd"]})
    assert not cli._controllers_current(older)  # pylint: disable=protected-access


def test_the_lab_storage_classes_are_seeded_and_seeding_again_changes_nothing(admin):
    classes = {name: admin.get(object_path("storage.k8s.io/v1", "storageclasses", name))
               for name in ("lab-rwo", "lab-rwx", "lab-fixed")}
    for sc in classes.values():
        assert sc["provisioner"] == storage.PROVISIONER == "csi.lab.palette.vmo"
        assert sc["volumeBindingMode"] == "Immediate" and sc["reclaimPolicy"] == "Delete"
    assert classes["lab-rwo"]["allowVolumeExpansion"] is True
    assert classes["lab-rwx"]["allowVolumeExpansion"] is True
    assert classes["lab-fixed"]["allowVolumeExpansion"] is False
    defaults = [name for name, sc in classes.items()
                if sc["metadata"]["annotations"][storage.DEFAULT_CLASS_ANNOTATION] == "true"]
    assert defaults == ["lab-rwo"]
    storage.ensure_storage_classes(admin)
    for name, sc in classes.items():
        again = admin.get(object_path("storage.k8s.io/v1", "storageclasses", name))
        assert again["metadata"]["resourceVersion"] == sc["metadata"]["resourceVersion"]


@pytest.mark.parametrize("name,modes", [("lab-rwo", ["ReadWriteOnce"]), ("lab-rwx", ["ReadWriteMany"]),
                                        ("lab-fixed", ["ReadWriteOnce"])])
def test_cdi_has_a_storage_profile_per_class(admin, wait, name, modes):
    profile = wait.until(object_path("cdi.kubevirt.io/v1beta1", "storageprofiles", name),
                         lambda p: p and (p.get("status") or {}).get("claimPropertySets"),
                         what=f"StorageProfile {name}")
    status = profile["status"]
    assert status["storageClass"] == name and status["provisioner"] == storage.PROVISIONER
    assert status["claimPropertySets"] == [{"accessModes": modes, "volumeMode": "Filesystem"}]
    assert status["cloneStrategy"] == "copy" and status["dataImportCronSourceFormat"] == "pvc"
    recognized = conditions(profile)["Recognized"]
    assert (recognized["status"], recognized["reason"]) == ("False", "UnrecognizedProvisioner")


# -- provisioning (external-provisioner stand-in, real PV controller) ----------------------------------

def test_a_claim_without_class_gets_the_default_and_is_bound_to_a_provisioned_volume(admin, namespace, wait):
    claim = create_bound(admin, wait, namespace, "data", size="3Gi")
    assert claim["spec"]["storageClassName"] == "lab-rwo"  # DefaultStorageClass admission
    assert claim["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == storage.PROVISIONER
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert claim["status"]["capacity"] == {"storage": "3Gi"}
    assert claim["status"]["accessModes"] == ["ReadWriteOnce"]
    pv = admin.get(object_path("v1", "persistentvolumes", claim["spec"]["volumeName"]))
    assert pv["metadata"]["name"] == f"pvc-{claim['metadata']['uid']}"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == storage.PROVISIONER
    assert pv["metadata"]["annotations"]["volume.kubernetes.io/provisioner-deletion-secret-name"] == ""
    assert pv["metadata"]["annotations"]["volume.kubernetes.io/provisioner-deletion-secret-namespace"] == ""
    assert storage.PV_FINALIZER in pv["metadata"]["finalizers"]
    assert pv["spec"]["csi"]["driver"] == storage.PROVISIONER and pv["spec"]["csi"]["fsType"] == "ext4"
    assert pv["spec"]["capacity"] == {"storage": "3Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert pv["status"]["phase"] == "Bound"
    wait_reasons(wait, namespace, "data", {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"})


def test_read_write_many_is_provisioned_on_lab_rwx(admin, namespace, wait):
    claim = create_bound(admin, wait, namespace, "shared", modes=("ReadWriteMany",), storage_class="lab-rwx")
    assert claim["status"]["accessModes"] == ["ReadWriteMany"]


def test_read_write_many_on_lab_rwo_fails_as_the_driver_refuses_it(admin, namespace, wait):
    admin.create(pvc_path(namespace), pvc("wide", modes=("ReadWriteMany",), storage_class="lab-rwo"))
    failed = wait_event(wait, admin, namespace, "wide", "ProvisioningFailed")
    assert failed[0]["type"] == "Warning"
    assert failed[0]["message"].startswith("Volume provisioning failed with infeasible error. Retries will be "
                                           "delayed. rpc error: code = InvalidArgument desc = ")
    claim = admin.get(pvc_path(namespace, "wide"))
    assert claim["status"]["phase"] == "Pending" and not claim["spec"].get("volumeName")
    assert admin.get_or_none(object_path("v1", "persistentvolumes", f"pvc-{claim['metadata']['uid']}")) is None
    # The apiserver's validation refuses to change the request of a claim that is not bound.
    with pytest.raises(KubeError) as err:
        expand(admin, namespace, "wide", "2Gi")
    assert err.value.status == 422
    assert "spec: Forbidden: spec is immutable after creation except resources.requests and " \
        "volumeAttributesClassName for bound claims" in err.value.body["message"]


def test_deleting_a_claim_deletes_its_volume(admin, namespace, wait):
    claim = create_bound(admin, wait, namespace, "scratch")
    admin.delete(pvc_path(namespace, "scratch"))
    wait.gone(object_path("v1", "persistentvolumes", claim["spec"]["volumeName"]))
    wait.gone(pvc_path(namespace, "scratch"))


# -- expansion (apiserver admission, external-resizer stand-in, kubelet) -----------------------------

def test_the_apiserver_refuses_expansion_on_a_class_without_it(admin, namespace, wait):
    create_bound(admin, wait, namespace, "fixed", storage_class="lab-fixed")
    with pytest.raises(KubeError) as err:
        expand(admin, namespace, "fixed", "2Gi")
    assert err.value.status == 403 and err.value.reason == "Forbidden"
    assert FORBIDDEN_CLASS in err.value.body["message"]


def test_the_apiserver_refuses_shrinking(admin, namespace, wait):
    create_bound(admin, wait, namespace, "big", size="2Gi")
    with pytest.raises(KubeError) as err:
        expand(admin, namespace, "big", "1Gi")
    assert err.value.status == 422 and err.value.reason == "Invalid"
    assert "spec.resources.requests.storage: Forbidden: field can not be less than status.capacity" \
        in err.value.body["message"]


def test_expanding_an_unused_filesystem_claim_waits_for_the_node(admin, namespace, wait):
    claim = create_bound(admin, wait, namespace, "grow")
    expand(admin, namespace, "grow", "2Gi")
    claim = wait.until(pvc_path(namespace, "grow"),
                       lambda p: "FileSystemResizePending" in conditions(p), what="FileSystemResizePending")
    status = claim["status"]
    assert status["capacity"] == {"storage": "1Gi"}
    assert status["allocatedResources"] == {"storage": "2Gi"}
    assert status["allocatedResourceStatuses"] == {"storage": "NodeResizePending"}
    conds = conditions(claim)
    assert conds["Resizing"]["status"] == "True"
    assert conds["FileSystemResizePending"]["message"] == \
        "Waiting for user to (re-)start a pod to finish file system resize of volume on node."
    pv = admin.get(object_path("v1", "persistentvolumes", claim["spec"]["volumeName"]))
    assert pv["spec"]["capacity"] == {"storage": "2Gi"}
    wait_reasons(wait, namespace, "grow", {"ExternalExpanding", "Resizing", "FileSystemResizeRequired"})

    # A VM that mounts the claim: the kubelet expands the filesystem online and the resize is over.
    vm = vm_manifest("user", namespace)
    template = vm["spec"]["template"]["spec"]
    template["domain"]["devices"]["disks"] = [{"name": "data", "disk": {"bus": "virtio"}}]
    template["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "grow"}}]
    admin.create(vm_path(namespace), vm)
    wait.printable(namespace, "user", "Running")
    claim = wait.until(pvc_path(namespace, "grow"),
                       lambda p: p["status"].get("capacity") == {"storage": "2Gi"}, what="capacity 2Gi")
    assert not claim["status"].get("allocatedResourceStatuses")
    assert claim["status"]["allocatedResources"] == {"storage": "2Gi"}
    assert not set(conditions(claim)) & {"Resizing", "FileSystemResizePending"}

    # Grown again while in use: online, straight through.
    expand(admin, namespace, "grow", "3Gi")
    claim = wait.until(pvc_path(namespace, "grow"),
                       lambda p: p["status"].get("capacity") == {"storage": "3Gi"}, what="capacity 3Gi")
    assert not claim["status"].get("allocatedResourceStatuses") and not conditions(claim)
    assert admin.get(vmi_path(namespace, "user"))["status"]["phase"] == "Running"


def test_expanding_a_block_claim_needs_no_node_step(admin, namespace, wait):
    create_bound(admin, wait, namespace, "raw", volume_mode="Block", modes=("ReadWriteMany",), storage_class="lab-rwx")
    expand(admin, namespace, "raw", "5Gi")
    claim = wait.until(pvc_path(namespace, "raw"),
                       lambda p: p["status"].get("capacity") == {"storage": "5Gi"}, what="capacity 5Gi")
    assert claim["metadata"]["annotations"][storage.ANN_NODE_EXPANSION_NOT_REQUIRED] == "true"
    assert not claim["status"].get("allocatedResourceStatuses") and not conditions(claim)
    wait_reasons(wait, namespace, "raw", {"Resizing", "VolumeResizeSuccessful"})


# -- CDI DataVolumes ------------------------------------------------------------------------------------

def datavolume(name, source, storage_spec=None, pvc_spec=None):
    spec = {"source": source}
    if pvc_spec is not None:
        spec["pvc"] = pvc_spec
    else:
        spec["storage"] = storage_spec if storage_spec is not None else {"resources": {"requests": {"storage": "1Gi"}}}
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": name}, "spec": spec}


def wait_dv(wait, namespace, name, phase):
    return wait.until(dv_path(namespace, name), lambda dv: dv and (dv.get("status") or {}).get("phase") == phase,
                      what=f"DataVolume {namespace}/{name} {phase}")


def test_a_blank_datavolume_imports_into_a_claim_sized_and_shaped_by_the_storage_profile(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume("blank", {"blank": {}}))
    dv = wait_dv(wait, namespace, "blank", "Succeeded")
    assert dv["status"]["progress"] == "100.0%" and dv["status"]["claimName"] == "blank"
    conds = conditions(dv)
    assert (conds["Bound"]["status"], conds["Bound"]["reason"], conds["Bound"]["message"]) == \
        ("True", "Bound", "PVC blank Bound")
    assert conds["Ready"]["status"] == "True"
    assert (conds["Running"]["status"], conds["Running"]["reason"], conds["Running"]["message"]) == \
        ("False", "Completed", "Import Complete")
    claim = admin.get(pvc_path(namespace, "blank"))
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "DataVolume"
    assert claim["metadata"]["ownerReferences"][0]["uid"] == dv["metadata"]["uid"]
    assert claim["spec"]["storageClassName"] == "lab-rwo"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"] and claim["spec"]["volumeMode"] == "Filesystem"
    # CDI's filesystem overhead (6 %) on the 1 MiB aligned size
    assert claim["spec"]["resources"]["requests"]["storage"] == str(-(-GI * 106 // 100))
    annotations = claim["metadata"]["annotations"]
    assert annotations["cdi.kubevirt.io/storage.import.source"] == "none"
    assert annotations["cdi.kubevirt.io/storage.pod.phase"] == "Succeeded"
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.usePopulator"] == "false"
    # ImportScheduled has no event here: the phase is already ImportScheduled (importer pod named) when the
    # pod's Pending phase arrives, and CDI emits phase events only on a phase change (emitEvent).
    wait_reasons(wait, namespace, "blank", {"ImportInProgress", "ImportSucceeded", "Bound"}, kind="DataVolume")


def cdi_config_path():
    return object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config")


def test_cdi_keeps_its_config_with_the_filesystem_overhead_of_every_class(admin, wait):
    config = wait.until(cdi_config_path(), lambda c: c and ((c.get("status") or {}).get("filesystemOverhead") or {})
                        .get("storageClass", {}).get("lab-fixed"), what="CDIConfig filesystemOverhead")
    overhead = config["status"]["filesystemOverhead"]
    assert overhead["global"] == "0.06"
    assert {name: overhead["storageClass"][name] for name in storage.STORAGE_CLASSES} == \
        {"lab-rwo": "0.06", "lab-rwx": "0.06", "lab-fixed": "0.06"}
    assert config["status"]["defaultPodResourceRequirements"] == {
        "limits": {"cpu": "750m", "memory": "600M"}, "requests": {"cpu": "100m", "memory": "60M"}}
    assert config["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "cdi-controller"
    # What virt-controller reads for a claim (vmi/storage.go getFilesystemOverhead): the class's value with one CDI
    assert len(admin.get(object_path("cdi.kubevirt.io/v1beta1", "cdis"))["items"]) == 1
    claim = pvc("any", storage_class="lab-rwx")
    assert storage.filesystem_overhead(admin, claim) == "0.06"
    assert storage.filesystem_overhead(admin, pvc("raw", storage_class="lab-rwx", volume_mode="Block")) == "0"
    assert storage.claim_filesystem_overhead(claim, 0, None) == "0.055"


def test_a_class_overhead_in_the_cdi_config_sizes_the_datavolume_claim(admin, namespace, wait):
    admin.merge_patch(cdi_config_path(), {"spec": {"filesystemOverhead": {"storageClass": {"lab-rwx": "0.1"}}}})
    try:
        wait.until(cdi_config_path(), lambda c: c["status"]["filesystemOverhead"]["storageClass"]["lab-rwx"] == "0.1",
                   what="CDIConfig lab-rwx overhead 0.1")
        admin.create(dv_path(namespace), datavolume(
            "roomy", {"blank": {}}, storage_spec={"storageClassName": "lab-rwx",
                                                  "resources": {"requests": {"storage": "1Gi"}}}))
        wait_dv(wait, namespace, "roomy", "Succeeded")
        claim = admin.get(pvc_path(namespace, "roomy"))
        assert claim["spec"]["resources"]["requests"]["storage"] == str(-(-GI * 110 // 100))
    finally:
        admin.merge_patch(cdi_config_path(), {"spec": {"filesystemOverhead": None}})
    wait.until(cdi_config_path(), lambda c: c["status"]["filesystemOverhead"]["storageClass"]["lab-rwx"] == "0.06",
               what="CDIConfig lab-rwx overhead back to 0.06")


def test_a_block_datavolume_claim_keeps_the_size_in_decimal_form(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume(
        "raw", {"blank": {}}, storage_spec={"storageClassName": "lab-rwx", "volumeMode": "Block",
                                            "accessModes": ["ReadWriteMany"],
                                            "resources": {"requests": {"storage": "2Gi"}}}))
    wait_dv(wait, namespace, "raw", "Succeeded")
    claim = admin.get(pvc_path(namespace, "raw"))
    # InflateSizeWithOverhead: resource.NewScaledQuantity(bytes, 0), DecimalSI
    assert claim["spec"]["resources"]["requests"]["storage"] == "2147483648"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]


def test_a_registry_datavolume_with_a_pvc_spec_uses_it_as_given(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume(
        "disk", {"registry": {"url": "docker://quay.io/containerdisks/fedora:41"}},
        pvc_spec={"accessModes": ["ReadWriteMany"], "storageClassName": "lab-rwx",
                  "resources": {"requests": {"storage": "2Gi"}}}))
    wait_dv(wait, namespace, "disk", "Succeeded")
    claim = admin.get(pvc_path(namespace, "disk"))
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["cdi.kubevirt.io/storage.import.endpoint"] == \
        "docker://quay.io/containerdisks/fedora:41"
    assert claim["metadata"]["annotations"]["cdi.kubevirt.io/storage.import.source"] == "registry"


def test_an_http_datavolume_on_lab_rwx_gets_the_profiles_access_mode(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume(
        "web", {"http": {"url": "https://images.example/disk.qcow2"}},
        storage_spec={"storageClassName": "lab-rwx", "resources": {"requests": {"storage": "1Gi"}}}))
    wait_dv(wait, namespace, "web", "Succeeded")
    claim = admin.get(pvc_path(namespace, "web"))
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["metadata"]["annotations"]["cdi.kubevirt.io/storage.import.source"] == "http"


def test_a_datavolume_whose_claim_cannot_be_provisioned_stays_pending(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume(
        "stuck", {"blank": {}},
        storage_spec={"accessModes": ["ReadWriteMany"], "storageClassName": "lab-rwo",
                      "resources": {"requests": {"storage": "1Gi"}}}))
    wait_event(wait, admin, namespace, "stuck", "ProvisioningFailed")
    dv = wait.until(dv_path(namespace, "stuck"), lambda d: "Bound" in conditions(d), what="DV Bound condition")
    assert dv["status"]["phase"] == "Pending" and dv["status"]["progress"] == "N/A"
    bound = conditions(dv)["Bound"]
    assert (bound["status"], bound["reason"], bound["message"]) == ("False", "Pending", "PVC stuck Pending")
    assert conditions(dv)["Ready"]["status"] == "False"


def test_deleting_a_datavolume_deletes_its_claim(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume("gone", {"blank": {}}))
    wait_dv(wait, namespace, "gone", "Succeeded")
    admin.delete(dv_path(namespace, "gone"))
    wait.gone(pvc_path(namespace, "gone"))  # the garbage collector follows the owner reference


def test_a_datavolume_the_storage_profile_cannot_complete_gets_no_claim(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume(
        "blocky", {"blank": {}},
        storage_spec={"volumeMode": "Block", "resources": {"requests": {"storage": "1Gi"}}}))
    invalid = wait_event(wait, admin, namespace, "blocky", "ErrClaimNotValid")
    assert invalid[0]["type"] == "Warning"
    assert invalid[0]["message"] == "Spec is missing accessMode and cannot get access mode from StorageProfile lab-rwo"
    dv = wait.until(dv_path(namespace, "blocky"), lambda d: "Bound" in conditions(d), what="DV Bound condition")
    assert dv["status"]["phase"] == "Pending"
    bound = conditions(dv)["Bound"]
    assert (bound["status"], bound["reason"], bound["message"]) == ("False", "NotFound", "No PVC found")
    assert admin.get_or_none(pvc_path(namespace, "blocky")) is None


def test_a_datavolume_disk_grows_through_its_claim(admin, namespace, wait):
    """CDI never resizes a DataVolume (its webhook refuses spec updates): the PVC is what grows."""
    admin.create(dv_path(namespace), datavolume("root", {"blank": {}}))
    wait_dv(wait, namespace, "root", "Succeeded")
    expand(admin, namespace, "root", "4Gi")
    claim = wait.until(pvc_path(namespace, "root"),
                       lambda p: "FileSystemResizePending" in conditions(p), what="FileSystemResizePending")
    assert claim["status"]["allocatedResources"] == {"storage": "4Gi"}
    pv = admin.get(object_path("v1", "persistentvolumes", claim["spec"]["volumeName"]))
    assert pv["spec"]["capacity"] == {"storage": "4Gi"}
    dv = admin.get(dv_path(namespace, "root"))
    assert dv["status"]["phase"] == "Succeeded"
    assert dv["spec"]["storage"]["resources"]["requests"]["storage"] == "1Gi"


def test_cdi_webhook_refuses_a_datavolume_spec_update_and_admits_metadata(admin, namespace, wait):
    webhook = admin.get(object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                    "cdi-api-datavolume-validate"))
    assert [w["name"] for w in webhook["webhooks"]] == ["datavolume-validate.cdi.kubevirt.io"]
    assert webhook["webhooks"][0]["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    admin.create(dv_path(namespace), datavolume("fixed-spec", {"blank": {}}))
    wait_dv(wait, namespace, "fixed-spec", "Succeeded")
    with pytest.raises(KubeError) as err:
        admin.merge_patch(dv_path(namespace, "fixed-spec"),
                          {"spec": {"storage": {"resources": {"requests": {"storage": "2Gi"}}}}})
    assert err.value.status == 422
    assert err.value.body["message"] == ('admission webhook "datavolume-validate.cdi.kubevirt.io" denied the '
                                         'request:  Cannot update DataVolume Spec')
    assert err.value.body["details"]["causes"] == [
        {"reason": "FieldValueDuplicate", "message": "Cannot update DataVolume Spec", "field": "DataVolume.Spec"}]
    labelled = admin.merge_patch(dv_path(namespace, "fixed-spec"), {"metadata": {"labels": {"team": "db"}}})
    assert labelled["metadata"]["labels"] == {"team": "db"}


def test_a_pvc_datavolume_clones_host_assisted(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume("golden", {"blank": {}},
                                                storage_spec={"resources": {"requests": {"storage": "2Gi"}}}))
    wait_dv(wait, namespace, "golden", "Succeeded")
    source = admin.get(pvc_path(namespace, "golden"))
    admin.create(dv_path(namespace), datavolume("copy", {"pvc": {"namespace": namespace, "name": "golden"}},
                                                storage_spec={}))
    dv = wait_dv(wait, namespace, "copy", "Succeeded")
    assert dv["status"]["progress"] == "100.0%"
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/cloneType"] == "copy"
    running = conditions(dv)["Running"]
    assert (running["status"], running["reason"]) == ("False", "Completed and Completed")
    claim = admin.get(pvc_path(namespace, "copy"))
    assert claim["metadata"]["annotations"]["k8s.io/CloneRequest"] == f"{namespace}/golden"
    assert claim["metadata"]["annotations"]["k8s.io/CloneOf"] == "true"
    # No size given: the source's capacity.
    assert claim["spec"]["resources"]["requests"]["storage"] == source["status"]["capacity"]["storage"]
    wait_reasons(wait, namespace, "copy", {"CloneInProgress", "CloneSucceeded"}, kind="DataVolume")


def test_a_clone_without_its_source_says_so_and_creates_nothing(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume("orphan", {"pvc": {"namespace": namespace, "name": "missing"}}))
    dv = wait.until(dv_path(namespace, "orphan"), lambda d: "Bound" in conditions(d), what="DV Bound condition")
    bound = conditions(dv)["Bound"]
    assert (bound["status"], bound["reason"], bound["message"]) == \
        ("False", "CloneWithoutSource", "The source pvc missing doesn't exist")
    assert not dv["status"].get("phase")
    assert admin.get_or_none(pvc_path(namespace, "orphan")) is None


def test_a_running_vm_grows_its_datavolume_disk_online(admin, namespace, wait):
    admin.create(dv_path(namespace), datavolume("disk", {"blank": {}}))
    wait_dv(wait, namespace, "disk", "Succeeded")
    vm = vm_manifest("runner", namespace)
    template = vm["spec"]["template"]["spec"]
    template["domain"]["devices"]["disks"] = [{"name": "disk", "disk": {"bus": "virtio"}}]
    template["volumes"] = [{"name": "disk", "dataVolume": {"name": "disk"}}]
    admin.create(vm_path(namespace), vm)
    wait.printable(namespace, "runner", "Running")
    expand(admin, namespace, "disk", "3Gi")
    claim = wait.until(pvc_path(namespace, "disk"),
                       lambda p: p["status"].get("capacity") == {"storage": "3Gi"}, what="capacity 3Gi")
    assert not claim["status"].get("allocatedResourceStatuses") and not conditions(claim)


# -- virt-controller and a VM's DataVolumes ---------------------------------------------------------------

def vm_with_dv_template(name, namespace, dv_name, storage_spec=None, dv_labels=None):
    vm = vm_manifest(name, namespace)
    template = vm["spec"]["template"]["spec"]
    template["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    template["volumes"] = [{"name": "root", "dataVolume": {"name": dv_name}}]
    vm["spec"]["dataVolumeTemplates"] = [{
        "metadata": {"name": dv_name, "labels": dv_labels or {}, "annotations": {"example.com/note": "kept"}},
        "spec": {"source": {"blank": {}},
                 "storage": storage_spec or {"resources": {"requests": {"storage": "1Gi"}}}}}]
    return vm


def test_a_vm_creates_its_templated_datavolume_and_starts_once_it_is_populated(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_with_dv_template("tmpl", namespace, "tmpl-root", dv_labels={"tier": "db"}))
    vm = wait.printable(namespace, "tmpl", "Running")
    dv = admin.get(dv_path(namespace, "tmpl-root"))
    assert dv["status"]["phase"] == "Succeeded"
    meta = dv["metadata"]
    assert meta["labels"] == {"tier": "db", "kubevirt.io/created-by": vm["metadata"]["uid"]}
    assert meta["annotations"]["example.com/note"] == "kept"
    assert meta["annotations"]["cdi.kubevirt.io/allowClaimAdoption"] == "true"
    assert meta["ownerReferences"] == [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": "tmpl",
                                        "uid": vm["metadata"]["uid"], "controller": True,
                                        "blockOwnerDeletion": True}]
    created = [e for e in wait_reasons(wait, namespace, "tmpl", {"SuccessfulDataVolumeCreate"})
               if e["reason"] == "SuccessfulDataVolumeCreate"]
    assert [e["message"] for e in created] == ["Created DataVolume tmpl-root"]
    assert created[0]["source"]["component"] == "virtualmachine-controller"
    assert admin.get(pvc_path(namespace, "tmpl-root"))["status"]["phase"] == "Bound"

    # The garbage collector deletes the DataVolume (and its claim) with the VM.
    admin.delete(vm_path(namespace, "tmpl"))
    wait.gone(dv_path(namespace, "tmpl-root"), timeout=60)
    wait.gone(pvc_path(namespace, "tmpl-root"), timeout=60)


def test_a_vm_whose_datavolume_cannot_be_provisioned_stays_provisioning_without_an_instance(admin, namespace, wait):
    stuck = {"accessModes": ["ReadWriteMany"], "storageClassName": "lab-rwo",
             "resources": {"requests": {"storage": "1Gi"}}}
    admin.create(vm_path(namespace), vm_with_dv_template("held", namespace, "held-root", storage_spec=stuck))
    wait_event(wait, admin, namespace, "held-root", "ProvisioningFailed")
    vm = wait.printable(namespace, "held", "Provisioning")
    assert admin.get(dv_path(namespace, "held-root"))["status"]["phase"] == "Pending"
    assert admin.get_or_none(vmi_path(namespace, "held")) is None
    assert "created" not in vm["status"] and "ready" not in vm["status"]


def test_an_instance_waits_for_its_claim_to_appear(admin, namespace, wait):
    vm = vm_manifest("late", namespace)
    template = vm["spec"]["template"]["spec"]
    template["domain"]["devices"]["disks"] = [{"name": "data", "disk": {"bus": "virtio"}}]
    template["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "late-data"}}]
    admin.create(vm_path(namespace), vm)
    found = wait_event(wait, admin, namespace, "late", "FailedPvcNotFound")
    assert found[0]["message"] == f"PVC {namespace}/late-data does not exist, waiting for it to appear"
    assert found[0]["involvedObject"]["kind"] == "VirtualMachineInstance"
    assert admin.get(vmi_path(namespace, "late"))["status"].get("phase", "Pending") == "Pending"
    create_bound(admin, wait, namespace, "late-data")
    wait.printable(namespace, "late", "Running")
