"""Stand-in for a CSI driver's controller sidecars and the kubelet's volume expansion, on the lab's real
kube-controller-manager (persistentvolume-binder and -expander controllers) and kube-apiserver (admission
plugins PersistentVolumeClaimResize, DefaultStorageClass, StorageObjectInUseProtection, on by default).

The lab's driver is `PROVISIONER` (csi.lab.palette.vmo). What it does follows:

* kubernetes-csi/external-provisioner (pkg/controller/controller.go csiProvisioner.Provision and its library
  sig-storage-lib-external-provisioner/v13 controller.go provisionClaimOperation / volume_store.go): for a
  Pending PVC that kube-controller-manager annotated `volume.kubernetes.io/storage-provisioner: <driver>`
  (pkg/controller/volume/persistentvolume/pv_controller.go provisionClaim -> setClaimProvisioner), create a
  PV named pvc-<claim uid> with a CSI source, the request as capacity, the claim's access and volume
  modes, the class's reclaim policy and mount options, claimRef and `pv.kubernetes.io/provisioned-by`;
  the real kube-controller-manager then binds the pair. A Released PV with reclaim policy Delete is
  deleted (controller.go deleteVolumeOperation).
* the lab driver's CreateVolume: a StorageClass without parameter `shared: "true"` serves single-node
  volumes only; a multi-node access mode (ReadWriteMany, ReadOnlyMany) fails with gRPC InvalidArgument,
  which the library reports as an infeasible error (provisionClaimOperation isInfeasibleError).
* kubernetes-csi/external-resizer (pkg/controller/expand_and_recover.go expandAndRecover, resize_status.go):
  PVC request above the PV's capacity -> allocatedResources and allocatedResourceStatuses
  ControllerResizeInProgress with condition Resizing, PV capacity updated, then for filesystem volumes
  NodeResizePending with conditions Resizing + FileSystemResizePending (markForPendingNodeExpansion),
  for block volumes capacity and conditions finished at once (markOverallExpansionAsFinished).
* the kubelet's online expansion (k8s pkg/volume/util/resize_util.go MarkNodeExpansionInProgress,
  MarkNodeExpansionFinishedWithRecovery, called from operationexecutor nodeExpandVolume): only while a
  running VMI (its virt-launcher pod) uses the claim; status.capacity becomes the PV's capacity.
* CDI's storage-profile controller (containerized-data-importer v1.65.0 pkg/controller/storageprofile-
  controller.go reconcileStorageProfile): one StorageProfile per StorageClass. CDI knows no claim
  properties for an unrecognised provisioner (pkg/storagecapabilities), so the lab seeds the profiles'
  spec.claimPropertySets as an administrator does, and status copies them.
"""

import logging
import random
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Dict, List, Optional

from ..kube import JSON, Kube, KubeError, object_path
from .admission import quantity
from .runtime import Informer, Manager, object_key

log = logging.getLogger("standin.storage")

PROVISIONER = "csi.lab.palette.vmo"
FIELD_MANAGER = "lab-storage"
# Classes: name -> (allowVolumeExpansion, default, shared (multi-node access modes), CDI claim property sets)
STORAGE_CLASSES = {
    "lab-rwo": (True, True, False, [{"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}]),
    "lab-rwx": (True, False, True, [{"accessModes": ["ReadWriteMany"], "volumeMode": "Filesystem"}]),
    "lab-fixed": (False, False, False, [{"accessModes": ["ReadWriteOnce"], "volumeMode": "Filesystem"}]),
}
DEFAULT_CLASS_ANNOTATION = "storageclass.kubernetes.io/is-default-class"
# k8s pkg/controller/volume/persistentvolume/util (AnnStorageProvisioner, AnnDynamicallyProvisioned)
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
# sig-storage-lib-external-provisioner controller.go finalizerPV (csi-provisioner sets AddFinalizer(true))
PV_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
# external-provisioner controller.go provisionerIDKey
PROVISIONER_ID_KEY = "storage.kubernetes.io/csiProvisionerIdentity"
# external-provisioner pkg/controller/controller.go annDeletionProvisionerSecretRefName / -Namespace
ANN_DELETION_SECRET_NAME = "volume.kubernetes.io/provisioner-deletion-secret-name"
ANN_DELETION_SECRET_NAMESPACE = "volume.kubernetes.io/provisioner-deletion-secret-namespace"
# sig-storage-lib-external-provisioner controller.go DefaultRetryIntervalMax (csi-provisioner --retry-interval-max
# default): how long slowSet holds back a claim whose provisioning failed as infeasible.
RETRY_INTERVAL_MAX = 300.0
# containerized-data-importer pkg/common/common.go ConfigName, DefaultGlobalOverhead; KubeVirt
# pkg/storage/types/cdi.go DefaultFSOverhead (the overhead virt-controller assumes without exactly one CDI)
CDI_CONFIG = "config"
CDI_DEFAULT_GLOBAL_OVERHEAD = "0.06"
KUBEVIRT_DEFAULT_FS_OVERHEAD = "0.055"
# CDI pkg/controller/config-controller.go defaultCPULimit, defaultMemLimit, defaultCPURequest, defaultMemRequest
CDI_POD_RESOURCES = {"limits": {"cpu": "750m", "memory": "600M"}, "requests": {"cpu": "100m", "memory": "60M"}}
# external-resizer pkg/util/util.go NodeExpansionNotRequired
ANN_NODE_EXPANSION_NOT_REQUIRED = "volume.kubernetes.io/node-expansion-not-required"
RESIZE_CONDITIONS = ("FileSystemResizePending", "Resizing", "ControllerResizeError", "NodeResizeError")
# Event sources: sig-storage-lib-external-provisioner controller.go NewProvisionController (<driver>_<host>_<uuid>),
# external-resizer pkg/controller/controller.go NewResizeController ("external-resizer <driver>").
PROVISIONER_COMPONENT = f"{PROVISIONER}_lab-csi-controller_{uuid.uuid4()}"
RESIZER_COMPONENT = "external-resizer " + PROVISIONER


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def storage_bytes(value) -> int:
    return quantity(value).value()


def binary_si(size: int) -> str:
    """resource.NewQuantity(bytes, BinarySI).String(), the form CSI sidecars write capacities in."""
    if size >= 1024:
        for exp, suffix in ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")):
            if size % (1 << exp) == 0:
                return f"{size >> exp}{suffix}"
    return str(size)


def storage_class(name: str) -> JSON:
    expandable, default, shared, _sets = STORAGE_CLASSES[name]
    # Immediate binding: the lab has no kube-scheduler to set volume.kubernetes.io/selected-node, which
    # WaitForFirstConsumer waits for; and CDI then imports at once (no WaitForFirstConsumer phase).
    obj = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
           "metadata": {"name": name, "annotations": {DEFAULT_CLASS_ANNOTATION: "true" if default else "false"}},
           "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
           "allowVolumeExpansion": expandable,
           "parameters": {"csi.storage.k8s.io/fstype": "ext4", "shared": "true" if shared else "false"}}
    return obj


def storage_profile_spec(name: str) -> JSON:
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "StorageProfile", "metadata": {"name": name},
            "spec": {"claimPropertySets": STORAGE_CLASSES[name][3]}}


def ensure_storage_classes(kube: Kube) -> None:
    """The lab's StorageClasses, as the CSI driver's installation creates them (idempotent)."""
    for name in STORAGE_CLASSES:
        # StorageClass parameters are immutable: apply keeps an existing class as it is when equal.
        kube.apply(object_path("storage.k8s.io/v1", "storageclasses", name), storage_class(name),
                   FIELD_MANAGER, force=True)


def record_event(kube: Kube, obj: JSON, kind: str, api_version: str, event_type: str, reason: str,
                 message: str, component: str) -> None:
    """An event as client-go's record.EventRecorder posts it (core/v1 Event on the object)."""
    meta = obj["metadata"]
    namespace = meta.get("namespace") or "default"
    stamp = now()
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta['name']}.{int(time.time() * 1e9):x}", "namespace": namespace},
             "involvedObject": {"apiVersion": api_version, "kind": kind, "name": meta["name"],
                                "namespace": meta.get("namespace", ""), "uid": meta.get("uid", ""),
                                "resourceVersion": meta.get("resourceVersion", "")},
             "reason": reason, "message": message, "type": event_type, "count": 1,
             "firstTimestamp": stamp, "lastTimestamp": stamp, "source": {"component": component},
             "reportingComponent": component, "reportingInstance": ""}
    try:
        kube.create(object_path("v1", "events", namespace=namespace), event)
    except KubeError as err:
        log.warning("event %s on %s/%s: %s", reason, namespace, meta["name"], err)


def condition(obj: Optional[JSON], kind: str) -> Optional[JSON]:
    for cond in (obj or {}).get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def merge_resize_conditions(old: List[JSON], new: List[JSON], keep_old: bool) -> List[JSON]:
    """external-resizer pkg/util/util.go MergeResizeConditionsOfPVC (and k8s MergeResizeConditionOnPVC)."""
    wanted = {c["type"]: c for c in new}
    result = []
    for cond in old:
        if cond.get("type") not in RESIZE_CONDITIONS:
            result.append(cond)
        elif cond["type"] in wanted:
            result.append(wanted.pop(cond["type"]))
        elif keep_old:
            result.append(cond)
    return result + list(wanted.values())


class Storage:
    """The CSI provisioner, resizer and node expansion of the lab driver, and CDI's StorageProfiles."""

    def __init__(self, manager: Manager, kube: Kube):
        self.kube = kube
        self.queue = manager.queue
        # cmd/csi-provisioner/csi-provisioner.go: <start time ms>-<random below 10000>-<driver>
        self.identity = f"{int(time.time() * 1000)}-{random.randint(0, 9999)}-{PROVISIONER}"
        # slowSet: claim uid -> (when its provisioning failed as infeasible, the StorageClass uid then)
        self.slow: Dict[str, tuple] = {}
        self.lock = threading.Lock()
        self.classes = manager.watch("storageclasses", object_path("storage.k8s.io/v1", "storageclasses"),
                                     self._class_changed)
        # A claim's change wakes the provisioner/resizer, the DataVolume of the same name and its import.
        self.pvcs = manager.informer("pvcs", object_path("v1", "persistentvolumeclaims"),
                                     ("PVC", "DataVolume", "Import"))
        self._watch_claim_sizes(self.pvcs)
        self.configs = manager.watch("cdiconfigs", object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs"),
                                     lambda obj: self.queue.add(("CDIConfig", "", CDI_CONFIG)))
        self.pvs = manager.watch("pvs", object_path("v1", "persistentvolumes"), self._pv_changed)
        self.vmis = manager.watch("storage-vmis", object_path("kubevirt.io/v1", "virtualmachineinstances"),
                                  self._vmi_changed)
        self.profiles = manager.watch("storageprofiles",
                                      object_path("cdi.kubevirt.io/v1beta1", "storageprofiles"),
                                      lambda obj: self.queue.add(("StorageProfile", "", obj["metadata"]["name"])))
        manager.reconciler("PVC", self.reconcile_pvc)
        manager.reconciler("PV", self.reconcile_pv)
        manager.reconciler("StorageProfile", self.reconcile_profile)
        manager.reconciler("CDIConfig", self.reconcile_cdi_config)

    def _class_changed(self, obj: JSON) -> None:
        self.queue.add(("StorageProfile", "", obj["metadata"]["name"]))
        # CDI config-controller.go: the StorageClass watch reconciles the CDIConfig (per-class overhead)
        self.queue.add(("CDIConfig", "", CDI_CONFIG))

    def _watch_claim_sizes(self, informer: Informer) -> None:
        """KubeVirt pkg/virt-controller/watch/vmi/storage.go addPVC / updatePVC: a new claim, or a claim whose
        status.capacity or spec.resources.requests changed, re-queues every VMI using it (listVMIsMatchingDV);
        the VMI's volume status is kept by its VM's sync in the lab (hotplug.py), so ("VM", ns, name) is queued."""
        first = informer.on_change
        sizes: Dict[tuple, tuple] = {}

        def on_change(obj: JSON) -> None:
            first(obj)
            meta = obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            size = ((obj.get("status") or {}).get("capacity"), (obj.get("spec") or {}).get("resources", {}).get("requests"))
            if meta.get("deletionTimestamp") or sizes.get(key) == size:
                return
            sizes[key] = size
            for vmi in self.vmis.list():
                if vmi["metadata"].get("namespace") == key[0] and key[1] in vmi_claims(vmi):
                    self.queue.add(("VM", key[0], vmi["metadata"]["name"]))
                    self.queue.add(("VMI", key[0], vmi["metadata"]["name"]))

        informer.on_change = on_change

    def _pv_changed(self, obj: JSON) -> None:
        self.queue.add(("PV", "", obj["metadata"]["name"]))
        ref = obj.get("spec", {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(("PVC", ref.get("namespace", ""), ref["name"]))

    def _vmi_changed(self, obj: JSON) -> None:
        namespace = obj["metadata"].get("namespace", "")
        for claim in vmi_claims(obj):
            self.queue.add(("PVC", namespace, claim))

    # -- external-provisioner ---------------------------------------------------------------------

    def reconcile_pvc(self, namespace: str, name: str) -> Optional[float]:
        pvc = self.pvcs.get(namespace, name)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return None
        phase = pvc.get("status", {}).get("phase")
        if phase == "Pending" and not pvc.get("spec", {}).get("volumeName"):
            return self._provision(pvc)
        if phase == "Bound":
            return self._resize(pvc)
        return None

    def _provision(self, pvc: JSON) -> Optional[float]:
        meta = pvc["metadata"]
        annotations = meta.get("annotations") or {}
        # csiProvisioner.Provision: only claims the PV controller handed to this driver.
        if annotations.get(ANN_STORAGE_PROVISIONER, annotations.get(ANN_BETA_STORAGE_PROVISIONER)) != PROVISIONER:
            return None
        class_name = pvc.get("spec", {}).get("storageClassName") or ""
        sc = self.classes.get("", class_name)
        if sc is None:
            return 1.0  # provisionClaimOperation: the class may come later; retried
        # controller.go makeVolumeName with --volume-name-prefix=pvc and no UUID truncation
        pv_name = f"pvc-{meta['uid']}"
        if self.pvs.get("", pv_name) is not None:
            return None  # provisionClaimOperation: "PersistentVolume already exists, skipping"
        # delayProvisioningIfRecentlyInfeasible: held back for the slow set's interval, unless the class changed
        slow = self.slow.get(meta["uid"])
        if slow is not None:
            remaining = slow[0] + RETRY_INTERVAL_MAX - time.monotonic()
            if slow[1] == sc["metadata"].get("uid") and remaining > 0:
                return remaining
            with self.lock:
                self.slow.pop(meta["uid"], None)
        record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Normal", "Provisioning",
                     f'External provisioner is provisioning volume for claim "{meta["namespace"]}/{meta["name"]}"',
                     PROVISIONER_COMPONENT)
        modes = pvc["spec"].get("accessModes") or []
        shared = (sc.get("parameters") or {}).get("shared") == "true"
        multi = [m for m in modes if m in ("ReadWriteMany", "ReadOnlyMany")]
        if multi and not shared:
            # The lab driver's CreateVolume refuses multi-node capabilities on a single-node pool with
            # codes.InvalidArgument; provisionClaimOperation reports it as infeasible and slows retries.
            error = (f"rpc error: code = InvalidArgument desc = volume capability access mode {multi[0]} is not "
                     f"supported by StorageClass {class_name!r}: it provisions single-node volumes")
            with self.lock:
                self.slow[meta["uid"]] = (time.monotonic(), sc["metadata"].get("uid"))  # markForSlowRetry
            record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Warning", "ProvisioningFailed",
                         "Volume provisioning failed with infeasible error. Retries will be delayed. " + error,
                         PROVISIONER_COMPONENT)
            return RETRY_INTERVAL_MAX
        source = pvc["spec"].get("dataSource") or {}
        if source.get("kind") == "VolumeSnapshot" and source.get("apiGroup") == "snapshot.storage.k8s.io":
            # controller.go prepareProvision -> getVolumeContentSource -> getSnapshotSource (snapshot.py); the
            # library reports the error as ProvisioningFailed and retries the claim.
            from .snapshot import snapshot_source_error
            error = snapshot_source_error(self.kube, pvc, sc)
            if error is not None:
                record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Warning", "ProvisioningFailed",
                             f'failed to provision volume with StorageClass "{class_name}": error getting handle for '
                             f'DataSource Type VolumeSnapshot by Name {source.get("name")}: {error}',
                             PROVISIONER_COMPONENT)
                return 1.0
        size = storage_bytes(((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage"))
        volume_mode = pvc["spec"].get("volumeMode") or "Filesystem"
        csi = {"driver": PROVISIONER, "volumeHandle": f"lab-vol-{meta['uid']}",
               "volumeAttributes": {PROVISIONER_ID_KEY: self.identity}}
        fs_type = (sc.get("parameters") or {}).get("csi.storage.k8s.io/fstype")
        if fs_type and volume_mode != "Block":
            csi["fsType"] = fs_type
        pv = {"apiVersion": "v1", "kind": "PersistentVolume",
              # controller.go Provision: the deletion secret annotations, "" without a deletion secret
              "metadata": {"name": pv_name, "annotations": {ANN_PROVISIONED_BY: PROVISIONER,
                                                            ANN_DELETION_SECRET_NAME: "",
                                                            ANN_DELETION_SECRET_NAMESPACE: ""},
                           "finalizers": [PV_FINALIZER]},
              "spec": {"accessModes": modes, "capacity": {"storage": binary_si(size)}, "csi": csi,
                       "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
                       "storageClassName": class_name, "volumeMode": volume_mode,
                       # provisionClaimOperation: ref.GetReference(claim)
                       "claimRef": {"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                                    "namespace": meta["namespace"], "name": meta["name"], "uid": meta["uid"],
                                    "resourceVersion": meta["resourceVersion"]}}}
        if sc.get("mountOptions"):
            pv["spec"]["mountOptions"] = sc["mountOptions"]
        if source.get("kind") == "VolumeSnapshot" and source.get("apiGroup") == "snapshot.storage.k8s.io":
            # The driver's CreateVolume with a snapshot content source: the new volume holds the snapshot's blocks.
            from . import volume_data
            from .snapshot import snapshot_handle
            handle = snapshot_handle(self.kube, pvc)
            if handle and volume_data.exists(handle):
                volume_data.copy(handle, csi["volumeHandle"])
        try:
            self.kube.create(object_path("v1", "persistentvolumes"), pv)
        except KubeError as err:
            if err.status != 409:  # volume_store.go: AlreadyExists is a success
                raise
        record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Normal", "ProvisioningSucceeded",
                     f"Successfully provisioned volume {pv_name}", PROVISIONER_COMPONENT)
        return None

    def reconcile_pv(self, _namespace: str, name: str) -> Optional[float]:
        pv = self.pvs.get("", name)
        if pv is None or (pv.get("spec", {}).get("csi") or {}).get("driver") != PROVISIONER:
            return None
        finalizers = pv["metadata"].get("finalizers") or []
        # controller.go shouldDelete: Released, reclaim policy Delete, our finalizer not yet removed
        if pv.get("status", {}).get("phase") != "Released" or \
                pv["spec"].get("persistentVolumeReclaimPolicy") != "Delete":
            return None
        if pv["metadata"].get("deletionTimestamp") and PV_FINALIZER not in finalizers:
            return None
        # deleteVolumeOperation: the driver's DeleteVolume, then the PV, then our finalizer.
        path = object_path("v1", "persistentvolumes", name)
        self.kube.delete(path)
        current = self.kube.get_or_none(path)
        if current and PV_FINALIZER in (current["metadata"].get("finalizers") or []):
            rest = [f for f in current["metadata"]["finalizers"] if f != PV_FINALIZER]
            try:
                self.kube.json_patch(path, [
                    {"op": "test", "path": "/metadata/finalizers", "value": current["metadata"]["finalizers"]},
                    {"op": "replace", "path": "/metadata/finalizers", "value": rest}])
            except KubeError as err:
                if err.status != 422:  # the pv-protection controller changed the finalizers meanwhile
                    raise
                return 0.2
        return None

    # -- external-resizer and the kubelet's expansion ---------------------------------------------

    def _patch_pvc_status(self, pvc: JSON, status: JSON, annotations: Optional[JSON] = None) -> JSON:
        """util.PatchClaim(..., addResourceVersionCheck=true) on the status subresource."""
        meta = pvc["metadata"]
        patch: JSON = {"metadata": {"resourceVersion": meta["resourceVersion"]}, "status": status}
        if annotations is not None:
            patch["metadata"]["annotations"] = annotations
        return self.kube.merge_patch(
            object_path("v1", "persistentvolumeclaims", meta["name"], meta["namespace"]) + "/status", patch)

    def _resize(self, pvc: JSON) -> Optional[float]:
        pv = self.pvs.get("", pvc["spec"].get("volumeName") or "")
        if pv is None or (pv.get("spec", {}).get("csi") or {}).get("driver") != PROVISIONER:
            return None
        ref = pv["spec"].get("claimRef") or {}
        if ref.get("uid") != pvc["metadata"]["uid"]:
            return None
        status = pvc.get("status") or {}
        spec_size = storage_bytes(pvc["spec"]["resources"]["requests"]["storage"])
        pv_size = storage_bytes(pv["spec"]["capacity"]["storage"])
        resize_status = (status.get("allocatedResourceStatuses") or {}).get("storage", "")
        allocated = (status.get("allocatedResources") or {}).get("storage")
        # expand_and_recover.go expandAndRecover: which size to ask the driver for, if any
        if resize_status in ("NodeResizePending", "NodeResizeInProgress"):
            if pv_size >= storage_bytes(allocated or 0):
                return self._node_expand(pvc, pv)
            new_size = allocated
        elif pv_size < spec_size:
            new_size = allocated if resize_status == "ControllerResizeInProgress" and allocated else \
                pvc["spec"]["resources"]["requests"]["storage"]
        else:
            return None
        meta = pvc["metadata"]
        # resize_status.go markControllerResizeInProgress
        progress = {"type": "Resizing", "status": "True", "lastProbeTime": None, "lastTransitionTime": now()}
        annotations = {ANN_NODE_EXPANSION_NOT_REQUIRED: None} \
            if ANN_NODE_EXPANSION_NOT_REQUIRED in (meta.get("annotations") or {}) else None
        pvc = self._patch_pvc_status(pvc, {
            "conditions": merge_resize_conditions(status.get("conditions") or [], [progress], False),
            "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"},
            "allocatedResources": {"storage": new_size}}, annotations)
        record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Normal", "Resizing",
                     f"External resizer is resizing volume {pv['metadata']['name']}", RESIZER_COMPONENT)
        # csi_resizer.go Resize: ControllerExpandVolume returns the bytes and whether the node must expand
        # the filesystem (the lab driver: for filesystem volumes, as block-storage drivers do).
        updated = binary_si(storage_bytes(new_size))
        fs_resize = (pv["spec"].get("volumeMode") or "Filesystem") == "Filesystem"
        # controller.go updatePVCapacity
        self.kube.merge_patch(object_path("v1", "persistentvolumes", pv["metadata"]["name"]),
                              {"spec": {"capacity": {"storage": updated}}})
        status = pvc.get("status") or {}
        if fs_resize:
            # resize_status.go markForPendingNodeExpansion
            pending = {"type": "FileSystemResizePending", "status": "True", "lastProbeTime": None,
                       "lastTransitionTime": now(),
                       "message": "Waiting for user to (re-)start a pod to finish file system resize of volume on node."}
            self._patch_pvc_status(pvc, {
                "conditions": merge_resize_conditions(status.get("conditions") or [], [pending], True),
                "allocatedResourceStatuses": {"storage": "NodeResizePending"}})
            record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Normal", "FileSystemResizeRequired",
                         "Require file system resize of volume on node", RESIZER_COMPONENT)
            return None
        # resize_status.go markOverallExpansionAsFinished
        self._patch_pvc_status(pvc, {
            "capacity": {"storage": updated},
            "conditions": merge_resize_conditions(status.get("conditions") or [], [], False) or None,
            "allocatedResourceStatuses": {"storage": None}}, {ANN_NODE_EXPANSION_NOT_REQUIRED: "true"})
        record_event(self.kube, pvc, "PersistentVolumeClaim", "v1", "Normal", "VolumeResizeSuccessful",
                     "Resize volume succeeded", RESIZER_COMPONENT)
        return None

    def _in_use(self, pvc: JSON) -> bool:
        """A running VMI's launcher pod mounts the claim: the kubelet expands it online."""
        namespace, name = object_key(pvc)
        for vmi in self.vmis.list():
            if vmi["metadata"].get("namespace") == namespace and \
                    vmi.get("status", {}).get("phase") == "Running" and name in vmi_claims(vmi):
                return True
        return False

    def _node_expand(self, pvc: JSON, pv: JSON) -> Optional[float]:
        if not self._in_use(pvc):
            return None  # stays FileSystemResizePending until a pod uses it, as on a cluster
        status = pvc.get("status") or {}
        # resize_util.go MarkNodeExpansionInProgress, then (NodeExpandVolume done) MarkNodeExpansionFinishedWithRecovery
        if (status.get("allocatedResourceStatuses") or {}).get("storage") != "NodeResizeInProgress":
            pvc = self._patch_pvc_status(pvc, {"allocatedResourceStatuses": {"storage": "NodeResizeInProgress"}})
            status = pvc.get("status") or {}
        self._patch_pvc_status(pvc, {
            "capacity": {"storage": pv["spec"]["capacity"]["storage"]},
            "conditions": merge_resize_conditions(status.get("conditions") or [], [], False) or None,
            "allocatedResourceStatuses": {"storage": None}})
        return None

    # -- CDI storage profiles -----------------------------------------------------------------------

    def reconcile_profile(self, _namespace: str, name: str) -> Optional[float]:
        sc = self.classes.get("", name)
        path = object_path("cdi.kubevirt.io/v1beta1", "storageprofiles", name)
        if sc is None:
            return None  # CDI deletes the profile with its class (owner-less; left as it is here)
        profile = self.profiles.get("", name)
        if profile is None:
            body = storage_profile_spec(name) if name in STORAGE_CLASSES else \
                {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "StorageProfile", "metadata": {"name": name},
                 "spec": {}}
            body["metadata"]["labels"] = {"app": "containerized-data-importer",
                                          "app.kubernetes.io/component": "storage",
                                          "app.kubernetes.io/managed-by": "cdi-controller"}
            try:
                profile = self.kube.create(object_path("cdi.kubevirt.io/v1beta1", "storageprofiles"), body)
            except KubeError as err:
                if err.status == 404:
                    return 5.0  # CDI's CRDs not registered yet (a bare lab, or CDI not deployed)
                if err.status != 409:
                    raise
                return 0.5
        spec = profile.get("spec") or {}
        sets = spec.get("claimPropertySets") or []
        if any(not s.get("volumeMode") or not s.get("accessModes") for s in sets):
            # reconcileStorageProfile: "each ClaimPropertySet must provide both volume mode and access modes"
            return None
        recognized = {"type": "Recognized", "status": "False", "reason": "UnrecognizedProvisioner",
                      "message": "Provisioner is not recognized"}
        previous = next((c for c in (profile.get("status") or {}).get("conditions") or []
                         if c.get("type") == "Recognized"), None)
        stamp = previous.get("lastTransitionTime") if previous and previous.get("status") == "False" else now()
        wanted = {"storageClass": name, "provisioner": sc.get("provisioner"),
                  "cloneStrategy": spec.get("cloneStrategy") or "copy",
                  "dataImportCronSourceFormat": spec.get("dataImportCronSourceFormat") or "pvc",
                  "claimPropertySets": sets,
                  "conditions": [{**recognized, "lastTransitionTime": stamp,
                                  "lastHeartbeatTime": (previous or {}).get("lastHeartbeatTime") or stamp}]}
        if all((profile.get("status") or {}).get(k) == v for k, v in wanted.items()):
            return None
        # The StorageProfile CRD has a status subresource.
        self.kube.merge_patch(path + "/status", {"status": wanted})
        return None

    # -- CDI's config controller (pkg/controller/config-controller.go) -------------------------------------

    def reconcile_cdi_config(self, _namespace: str, name: str) -> Optional[float]:
        """CDIConfigReconciler.Reconcile: createCDIConfig, then the status the reconcile functions compute
        (preallocation, reconcileStorageClass, reconcileDefaultPodResourceRequirements, reconcileImagePullSecrets,
        reconcileFilesystemOverhead, reconcileUploadProxy from the override); no import proxy in the lab."""
        path = object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", name)
        config = self.configs.get("", name)
        if config is None:
            # MakeEmptyCDIConfigSpec + SetRecommendedLabels("cdi-controller"); SetOwnerRuntime finds no cdi-config
            # ConfigMap in the lab and assigns no owner.
            body = {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "CDIConfig",
                    "metadata": {"name": name, "labels": {
                        "app": "containerized-data-importer", "cdi.kubevirt.io": "",
                        "app.kubernetes.io/component": "storage", "app.kubernetes.io/managed-by": "cdi-controller"}},
                    "spec": {}}
            try:
                config = self.kube.create(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs"), body)
            except KubeError as err:
                if err.status == 404:
                    return 5.0  # CDI's CRDs not registered yet: cdi-controller is not running
                if err.status != 409:
                    raise
                return 0.5
        spec = config.get("spec") or {}
        wanted: JSON = {}
        if spec.get("preallocation"):
            wanted["preallocation"] = True
        scratch = spec.get("scratchSpaceStorageClass")
        if scratch and self.classes.get("", scratch) is not None:
            wanted["scratchSpaceStorageClass"] = scratch
        resources = {k: dict(v) for k, v in CDI_POD_RESOURCES.items()}
        for kind in ("limits", "requests"):
            for res in ("cpu", "memory"):
                value = ((spec.get("podResourceRequirements") or {}).get(kind) or {}).get(res)
                if value is not None:
                    resources[kind][res] = value
        wanted["defaultPodResourceRequirements"] = resources
        if spec.get("imagePullSecrets"):
            wanted["imagePullSecrets"] = spec["imagePullSecrets"]
        # reconcileFilesystemOverhead: the spec's valid global value or DefaultGlobalOverhead, each class its own
        # value from the spec or the global one
        overhead = spec.get("filesystemOverhead") or {}
        global_overhead = overhead.get("global") if _valid_overhead(overhead.get("global")) \
            else CDI_DEFAULT_GLOBAL_OVERHEAD
        per_class = overhead.get("storageClass") or {}
        classes = {}
        for sc in self.classes.list():
            sc_name = sc["metadata"]["name"]
            if sc_name in per_class:
                if not _valid_overhead(per_class[sc_name]):
                    return None  # "the reconcile returns the regexp's error": the status stays as it was
                classes[sc_name] = per_class[sc_name]
            else:
                classes[sc_name] = global_overhead
        wanted["filesystemOverhead"] = {"global": global_overhead, "storageClass": classes}
        # config-controller.go reconcileUploadProxy: status.uploadProxyURL is the spec's override (the lab has no
        # Ingress or Route to the upload proxy, whose host the controller would otherwise take)
        if spec.get("uploadProxyURLOverride"):
            wanted["uploadProxyURL"] = spec["uploadProxyURLOverride"]
        status = config.get("status") or {}
        if status == wanted:
            return None
        # The CDIConfig CRD has no status subresource: r.client.Update writes the whole object (the status
        # replaced as computed, classes that are gone dropped).
        self.kube.json_patch(path, [
            {"op": "test", "path": "/metadata/resourceVersion", "value": config["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/status", "value": wanted}])
        return None


def _valid_overhead(value) -> bool:
    """CDI config-controller.go validOverhead."""
    return isinstance(value, str) and re.fullmatch(r"(0(?:\.\d{1,3})?|1)", value) is not None


def cdi_filesystem_overhead(storage: "Storage", class_name: Optional[str]) -> str:
    """CDI pkg/controller/common/util.go GetFilesystemOverheadForStorageClass, what CDI inflates a filesystem
    DataVolume's claim by: "0" for an explicit empty class or without a CDIConfig; the class (or, when it is
    not found, the default class) from status.filesystemOverhead.storageClass, else the global value."""
    if class_name == "":
        return "0"
    config = storage.configs.get("", CDI_CONFIG)
    if config is None:
        return "0"
    overhead = (config.get("status") or {}).get("filesystemOverhead")
    sc = storage.classes.get("", class_name) if class_name else None
    if sc is None:
        sc = default_storage_class(storage)
        if sc is None:
            return (overhead or {}).get("global", "0")
    if overhead is None:
        return "0"
    return (overhead.get("storageClass") or {}).get(sc["metadata"]["name"], overhead.get("global", "0"))


def default_storage_class(storage: "Storage") -> Optional[JSON]:
    """The Kubernetes default StorageClass (GetPlatformDefaultStorageClass: the newest, then by name)."""
    defaults = [sc for sc in storage.classes.list()
                if (sc["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"]
    if not defaults:
        return None
    newest = max(sc["metadata"].get("creationTimestamp", "") for sc in defaults)
    return min((sc for sc in defaults if sc["metadata"].get("creationTimestamp", "") == newest),
               key=lambda sc: sc["metadata"]["name"])


def claim_filesystem_overhead(pvc: JSON, cdi_count: int, cdi_config: Optional[JSON]) -> str:
    """KubeVirt pkg/virt-controller/watch/vmi/storage.go getFilesystemOverhead with pkg/storage/types/cdi.go
    GetFilesystemOverhead: the overhead (a Percent string) virt-controller reserves on a claim, e.g. in a VMI's
    volumeStatus persistentVolumeClaimInfo.filesystemOverhead. Without exactly one CDI CR DefaultFSOverhead
    "0.055"; a block claim "0"; else the CDIConfig's status.filesystemOverhead.storageClass[<the claim's
    class>], falling back to its global value. A CDI whose CDIConfig has no status is an error in KubeVirt
    ("CDI config not initialized"); it reads "0" here."""
    if cdi_count != 1:
        return KUBEVIRT_DEFAULT_FS_OVERHEAD
    spec = pvc.get("spec") or {}
    if spec.get("volumeMode") == "Block":
        return "0"
    overhead = ((cdi_config or {}).get("status") or {}).get("filesystemOverhead")
    if overhead is None:
        return "0"
    class_name = spec.get("storageClassName")
    if class_name is None:
        return overhead.get("global") or "0"
    return (overhead.get("storageClass") or {}).get(class_name, overhead.get("global") or "0")


def filesystem_overhead(kube: Kube, pvc: JSON) -> str:
    """claim_filesystem_overhead with the CDI CRs and the CDIConfig read from the apiserver."""
    try:
        cdis = len(kube.get(object_path("cdi.kubevirt.io/v1beta1", "cdis")).get("items") or [])
    except KubeError as err:
        if err.status != 404:
            raise
        cdis = 0
    config = kube.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", CDI_CONFIG)) if cdis == 1 else None
    return claim_filesystem_overhead(pvc, cdis, config)


def vmi_claims(vmi: JSON) -> List[str]:
    """The claims a VMI's pod mounts: persistentVolumeClaim and dataVolume volumes (a DV's PVC has its name)."""
    names = []
    for volume in (vmi.get("spec") or {}).get("volumes") or []:
        if volume.get("persistentVolumeClaim"):
            names.append(volume["persistentVolumeClaim"].get("claimName"))
        elif volume.get("dataVolume"):
            names.append(volume["dataVolume"].get("name"))
    return [n for n in names if n]


def register(manager: Manager, kube: Kube) -> Dict[str, object]:
    """The lab's storage on the stand-in: StorageClasses, CSI sidecars, StorageProfiles, DataVolumes."""
    from .datavolume import DataVolumes
    from . import snapshot, vm_datavolumes

    ensure_storage_classes(kube)
    storage = Storage(manager, kube)
    datavolumes = DataVolumes(manager, kube, storage)
    return {"storage": storage, "datavolumes": datavolumes,
            "vm-datavolumes": vm_datavolumes.register(manager, kube, datavolumes.dvs, storage.pvcs),
            # the external-snapshotter and the lab's VolumeSnapshotClass (snapshot.py)
            "volume-snapshots": snapshot.register(manager, kube, storage)}
