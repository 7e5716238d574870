"""Stand-in for CDI's DataVolume controllers at containerized-data-importer v1.65.0 for import sources
(http, registry, s3, gcs, blank) and PVC clones: the DataVolume controllers (pkg/controller/datavolume/
controller-base.go, import-controller.go, pvc-clone-controller.go, clone-controller-base.go, conditions.go,
util.go) and the controllers that run their pods (pkg/controller/import-controller.go, upload-controller.go,
clone-controller.go). No data is copied: the importer / clone pods are not created, their phases (Pending,
Running, Succeeded) are written to the PVC's annotations one step apart, as those controllers write them
from the real pods (updatePvcFromPod), and the DataVolume follows them.

Paths this lab takes, and why:
* No CDI populators: shouldUseCDIPopulator (controller-base.go) uses them only when the StorageClass's
  provisioner has a CSIDriver object (util.go storageClassCSIDriverExists); the lab driver registers
  none, so DataVolumes take the legacy path (PVC created and bound at once, importer pod on it; clones
  host-assisted, DV annotation cdi.kubevirt.io/cloneType "copy") and get annotation
  cdi.kubevirt.io/storage.usePopulator "false" (updateDataVolumeUseCDIPopulator).
* Immediate binding classes: no WaitForFirstConsumer / PendingPopulation phases.
* Progress stays "N/A" until Succeeded ("100.0%"): real CDI reads the importer pod's metrics meanwhile.
* Clones: no clone token (CDI's webhook adds and the controller checks it), no size-detection pod (a clone
  without a size gets the source claim's capacity), no wait while the source is in use by a running pod.
* Upload sources: the upload controller (pkg/controller/upload-controller.go reconcilePVC) names the upload
  pod on the claim (cdi.kubevirt.io/storage.uploadPodName), then its phase Pending, then Running with
  cdi.kubevirt.io/storage.pod.ready "true"; the DataVolume follows (datavolume/upload-controller.go
  updateStatusPhase: UploadScheduled, UploadReady, Succeeded). The upload itself goes through the upload
  proxy stand-in (cdi_upload.py), which writes the content and then the pod's Succeeded, as the upload server
  exits after a complete upload.
* Content: the importer writes the volume's bytes when its pod would terminate, the clone copies them
  (volume_data.py says what is written for each source).
* Snapshot, imageio and VDDK sources are not handled (their DataVolumes keep no status).
* CDI's DataVolume webhook refuses spec updates ("Cannot update DataVolume Spec",
  pkg/apiserver/webhooks/datavolume-validate.go; served by the stand-in, cdi_webhook.py). CDI never resizes a
  DataVolume: growing a disk means growing its PVC (spec.resources.requests.storage).
"""

import logging
import math
import os
import time
from typing import Dict, List, Optional

from .. import paths
from ..kube import JSON, Kube, KubeError, object_path
from . import volume_data
from .runtime import Manager
from .admission import quantity
from .storage import DEFAULT_CLASS_ANNOTATION, Storage, cdi_filesystem_overhead, now, record_event, storage_bytes

log = logging.getLogger("standin.datavolume")

DV_API = "cdi.kubevirt.io/v1beta1"
IMPORT_SOURCES = ("http", "registry", "s3", "gcs", "blank", "upload")
# pkg/controller/common/util.go annotations
ANN = "cdi.kubevirt.io"
ANN_POD_PHASE = f"{ANN}/storage.pod.phase"
ANN_POD_RESTARTS = f"{ANN}/storage.pod.restarts"
ANN_POD_SCHEDULABLE = f"{ANN}/storage.pod.schedulable"
ANN_IMPORT_POD = f"{ANN}/storage.import.importPodName"
ANN_SOURCE = f"{ANN}/storage.import.source"
ANN_ENDPOINT = f"{ANN}/storage.import.endpoint"
ANN_CONTENT_TYPE = f"{ANN}/storage.contentType"
ANN_CREATED_FOR_DV = f"{ANN}/createdForDataVolume"
ANN_PREALLOCATION = f"{ANN}/storage.preallocation.requested"
ANN_USE_POPULATOR = f"{ANN}/storage.usePopulator"
ANN_RUNNING = f"{ANN}/storage.condition.running"
ANN_RUNNING_MESSAGE = f"{ANN}/storage.condition.running.message"
ANN_RUNNING_REASON = f"{ANN}/storage.condition.running.reason"
ANN_BOUND = f"{ANN}/storage.condition.bound"
ANN_BOUND_MESSAGE = f"{ANN}/storage.condition.bound.message"
ANN_BOUND_REASON = f"{ANN}/storage.condition.bound.reason"
ANN_REGISTRY_IMPORT_METHOD = f"{ANN}/storage.import.registryImportMethod"
ANN_SOURCE_RUNNING = f"{ANN}/storage.condition.source.running"
ANN_SOURCE_RUNNING_MESSAGE = f"{ANN}/storage.condition.source.running.message"
ANN_SOURCE_RUNNING_REASON = f"{ANN}/storage.condition.source.running.reason"
ANN_CLONE_TYPE = f"{ANN}/cloneType"
ANN_CLONE_REQUEST = "k8s.io/CloneRequest"
ANN_CLONE_OF = "k8s.io/CloneOf"
ANN_PRE_POPULATED = f"{ANN}/storage.prePopulated"  # common/util.go AnnPrePopulated
ANN_POPULATED_FOR = f"{ANN}/storage.populatedFor"  # common/util.go AnnPopulatedFor
ANN_UPLOAD_REQUEST = f"{ANN}/storage.upload.target"  # common/util.go AnnUploadRequest
ANN_UPLOAD_POD = f"{ANN}/storage.uploadPodName"  # upload-controller.go AnnUploadPod
ANN_POD_READY = f"{ANN}/storage.pod.ready"  # common/util.go AnnPodReady
# pkg/util/util.go DefaultAlignBlockSize
DEFAULT_VIRT_CLASS_ANNOTATION = "storageclass.kubevirt.io/is-default-virt-class"  # common/util.go AnnDefaultVirtStorageClass
ALIGN = 1024 * 1024
POD_RUNNING_REASON = "Pod is running"  # pkg/controller/util.go PodRunningReason
# import-controller.go importControllerName: the event source of the import DataVolume controller
COMPONENT = "datavolume-import-controller"


def required_space(overhead: float, size: int) -> int:
    """pkg/util/util.go GetRequiredSpace: aligned to 1MiB, plus the filesystem overhead."""
    aligned = -(-size // ALIGN) * ALIGN
    return int(math.ceil(aligned * (1 + overhead)))


def scaled_quantity(size: int) -> str:
    """resource.NewScaledQuantity(size, 0).String(): a DecimalSI quantity in its canonical form ("1138166334",
    "2G"), as CDI writes a claim's inflated request (pkg/controller/common/util.go InflateSizeWithOverhead)."""
    return str(quantity(str(size)))


def find_condition(conditions: List[JSON], kind: str) -> Optional[JSON]:
    return next((c for c in conditions if c.get("type") == kind), None)


def update_condition(conditions: List[JSON], kind: str, status: str, message: str, reason: str) -> List[JSON]:
    """conditions.go updateCondition."""
    cond = find_condition(conditions, kind)
    if cond is None:
        cond = {"type": kind}
        conditions.append(cond)
    stamp = now()
    if cond.get("status") != status:
        cond.update(lastTransitionTime=stamp, lastHeartbeatTime=stamp, message=message, reason=reason)
    elif cond.get("message", "") != message or cond.get("reason", "") != reason:
        cond.update(message=message, reason=reason, lastHeartbeatTime=stamp)
    cond["status"] = status
    return conditions


class DataVolumes:
    def __init__(self, manager: Manager, kube: Kube, storage: Storage):
        self.kube = kube
        self.storage = storage
        self.step = float(os.environ.get("LAB_VMI_STEP_SECONDS", "0.3"))
        self.dvs = manager.informer("datavolumes", object_path(DV_API, "datavolumes"), ("DataVolume",))
        self.since: Dict[str, float] = {}
        manager.reconciler("DataVolume", self.reconcile_dv)
        manager.reconciler("Import", self.reconcile_import)

    # -- DataVolume controller (controller-base.go) ---------------------------------------------------

    def _dv_path(self, dv: JSON) -> str:
        return object_path(DV_API, "datavolumes", dv["metadata"]["name"], dv["metadata"]["namespace"])

    def reconcile_dv(self, namespace: str, name: str) -> Optional[float]:
        dv = self.dvs.get(namespace, name)
        if dv is None or dv["metadata"].get("deletionTimestamp"):
            return None
        source = (dv.get("spec") or {}).get("source") or {}
        clone = source.get("pvc") is not None
        if not clone and not any(k in source for k in IMPORT_SOURCES):
            return None
        if ANN_USE_POPULATOR not in (dv["metadata"].get("annotations") or {}):
            # util.go updateDataVolumeUseCDIPopulator: false, no CSIDriver object for the lab driver
            self.kube.merge_patch(self._dv_path(dv), {"metadata": {"annotations": {ANN_USE_POPULATOR: "false"}}})
            return None
        pvc = self.storage.pvcs.get(namespace, name)
        if pvc is None and ANN_PRE_POPULATED in (dv["metadata"].get("annotations") or {}):
            # controller-base.go handlePvcCreation: CDI makes no claim for a prePopulated DataVolume (e.g. one
            # Velero restores before its claim); shouldSetDataVolumePending keeps it Pending until the claim is there
            return self._update_status(dv, None)
        if pvc is not None and (pvc["metadata"].get("annotations") or {}).get(ANN_POPULATED_FOR) == name and not any(
                ref.get("controller") and ref.get("uid") == dv["metadata"]["uid"]
                for ref in pvc["metadata"].get("ownerReferences") or []):
            # controller-base.go validatePVC: a claim populated for this DataVolume (pvcRequiresWork false, e.g. one
            # Velero restored without its ownerReferences) is adopted: addOwnerRef, SetControllerReference
            refs = [r for r in pvc["metadata"].get("ownerReferences") or [] if not r.get("controller")]
            refs.append({"apiVersion": DV_API, "kind": "DataVolume", "name": name, "uid": dv["metadata"]["uid"],
                         "controller": True, "blockOwnerDeletion": True})
            self.kube.merge_patch(object_path("v1", "persistentvolumeclaims", name, namespace),
                                  {"metadata": {"ownerReferences": refs}})
        if pvc is None:
            source_pvc = None
            if clone:
                # pvc-clone-controller.go validateCloneAndSourcePVC: no source -> conditions say so, phase kept
                source_pvc = self.storage.pvcs.get(source["pvc"].get("namespace") or namespace, source["pvc"]["name"])
                if source_pvc is None:
                    return self._update_status(dv, None, ("CloneWithoutSource",
                                                          f"The source pvc {source['pvc']['name']} doesn't exist"))
            try:
                spec = self._render_pvc_spec(dv, source_pvc)
            except ValueError as err:
                # util.go renderPvcSpecVolumeModeAndAccessModesAndStorageClass records it on the DataVolume
                record_event(self.kube, dv, "DataVolume", DV_API, "Warning", "ErrClaimNotValid", str(err),
                             COMPONENT)
                spec = None
            if spec is not None:
                pvc = self._create_pvc(dv, spec, source)
        if clone and pvc is not None and (dv["metadata"].get("annotations") or {}).get(ANN_CLONE_TYPE) != "copy":
            # pvc-clone-controller.go syncClone without populators: host-assisted clone
            self.kube.merge_patch(self._dv_path(dv), {"metadata": {"annotations": {ANN_CLONE_TYPE: "copy"}}})
            return None
        return self._update_status(dv, pvc)

    def _default_class(self, content_type: str) -> Optional[JSON]:
        """pkg/controller/common/util.go getFallbackStorageClass: for kubevirt content the virt default class
        first, then the Kubernetes default (GetPlatformDefaultStorageClass: newest, then by name)."""
        keys = ([DEFAULT_VIRT_CLASS_ANNOTATION] if content_type == "kubevirt" else []) + [DEFAULT_CLASS_ANNOTATION]
        for key in keys:
            found = self._newest_default(key)
            if found is not None:
                return found
        return None

    def _newest_default(self, key: str) -> Optional[JSON]:
        defaults = [sc for sc in self.storage.classes.list()
                    if (sc["metadata"].get("annotations") or {}).get(key) == "true"]
        defaults.sort(key=lambda sc: (sc["metadata"].get("creationTimestamp", ""), sc["metadata"]["name"]))
        if not defaults:
            return None
        newest = defaults[-1]["metadata"].get("creationTimestamp", "")
        return min((sc for sc in defaults if sc["metadata"].get("creationTimestamp", "") == newest),
                   key=lambda sc: sc["metadata"]["name"])

    def _claim_property_sets(self, class_name: str) -> List[JSON]:
        profile = self.storage.profiles.get("", class_name) or {}
        return (profile.get("status") or {}).get("claimPropertySets") or []

    def _render_pvc_spec(self, dv: JSON, source_pvc: Optional[JSON] = None) -> Optional[JSON]:
        """util.go renderPvcSpec: spec.pvc as given; spec.storage completed from the StorageProfile."""
        spec = dv.get("spec") or {}
        if spec.get("pvc") is not None:
            return dict(spec["pvc"])
        storage = spec.get("storage")
        if storage is None:
            raise ValueError("datavolume one of {pvc, storage} field is required")
        pvc = {k: storage[k] for k in ("accessModes", "selector", "resources", "volumeName", "storageClassName",
                                       "volumeMode", "dataSource", "dataSourceRef") if storage.get(k) is not None}
        # renderPvcSpecVolumeModeAndAccessModesAndStorageClass
        class_name = pvc.get("storageClassName")
        sc = self.storage.classes.get("", class_name) if class_name else \
            self._default_class(spec.get("contentType") or "kubevirt")
        if sc is None:
            if not pvc.get("accessModes"):
                raise ValueError("PVC spec is missing accessMode and no storageClass to choose profile")
        else:
            pvc["storageClassName"] = sc["metadata"]["name"]
            sets = self._claim_property_sets(sc["metadata"]["name"])
            if not pvc.get("volumeMode") and not pvc.get("accessModes"):
                if not sets or not sets[0].get("accessModes"):
                    raise ValueError("Spec is missing accessMode and volumeMode, cannot get access mode from "
                                     f"StorageProfile {sc['metadata']['name']}")
                pvc["accessModes"] = list(sets[0]["accessModes"])
                if sets[0].get("volumeMode"):
                    pvc["volumeMode"] = sets[0]["volumeMode"]
            elif not pvc.get("accessModes"):
                match = next((s for s in sets if s.get("volumeMode") == pvc["volumeMode"] and s.get("accessModes")),
                             None)
                if match is None:
                    raise ValueError("Spec is missing accessMode and cannot get access mode from "
                                     f"StorageProfile {sc['metadata']['name']}")
                pvc["accessModes"] = list(match["accessModes"])
            elif not pvc.get("volumeMode"):
                match = next((s for s in sets if set(s.get("accessModes") or []) & set(pvc["accessModes"])), None)
                if match and match.get("volumeMode"):
                    pvc["volumeMode"] = match["volumeMode"]
        # renderPvcSpecVolumeSize: InflateSizeWithOverhead for filesystem volumes
        requested = ((pvc.get("resources") or {}).get("requests") or {}).get("storage")
        if requested is None and source_pvc is not None:
            # A clone without a size: CDI detects it (pvc-clone-controller.go detectCloneSize, with a size
            # detection pod for filesystem images); the lab takes the source claim's capacity as it is.
            capacity = ((source_pvc.get("status") or {}).get("capacity") or {}).get("storage") or \
                source_pvc["spec"]["resources"]["requests"]["storage"]
            pvc["resources"] = {**(pvc.get("resources") or {}), "requests": {"storage": capacity}}
            return pvc
        if requested is None:
            raise ValueError("PVC Spec is not valid - missing storage size")
        size = storage_bytes(requested)
        if size < ALIGN:
            raise ValueError("PVC Spec is not valid - storage size should be at least 1MiB")
        # pkg/controller/common/util.go InflateSizeWithOverhead: filesystem claims get the CDIConfig's overhead for
        # their class (GetFilesystemOverheadForStorageClass); block claims keep the size; both as DecimalSI.
        if (pvc.get("volumeMode") or "Filesystem") == "Filesystem":
            overhead = cdi_filesystem_overhead(self.storage, pvc.get("storageClassName"))
            size = required_space(float(overhead), size)
        pvc["resources"] = {**(pvc.get("resources") or {}),
                            "requests": {**pvc["resources"]["requests"], "storage": scaled_quantity(size)}}
        return pvc

    def _create_pvc(self, dv: JSON, spec: JSON, source: JSON) -> Optional[JSON]:
        """controller-base.go newPersistentVolumeClaim with import-controller.go updateAnnotations."""
        meta = dv["metadata"]
        labels = {"app": "containerized-data-importer", "app.kubernetes.io/component": "storage",
                  "app.kubernetes.io/managed-by": "cdi-controller"}
        if (spec.get("volumeMode") or "Filesystem") == "Filesystem":
            # common.KubePersistentVolumeFillingUpSuppressLabelKey
            labels["alerts.k8s.io/KubePersistentVolumeFillingUp"] = "disabled"
        labels.update(meta.get("labels") or {})
        annotations = dict(meta.get("annotations") or {})
        annotations.update({ANN_POD_RESTARTS: "0", ANN_CONTENT_TYPE: (dv["spec"].get("contentType") or "kubevirt"),
                            ANN_PREALLOCATION: "false", ANN_CREATED_FOR_DV: meta["uid"]})
        if "pvc" in source:
            # pvc-clone-controller.go updateAnnotations
            annotations[ANN_CLONE_REQUEST] = f"{source['pvc'].get('namespace') or meta['namespace']}/{source['pvc']['name']}"
        elif "upload" in source:
            annotations[ANN_UPLOAD_REQUEST] = ""  # datavolume/upload-controller.go updateAnnotations
        elif "http" in source:
            annotations[ANN_ENDPOINT] = source["http"].get("url", "")
            annotations[ANN_SOURCE] = "http"
        elif "registry" in source:
            annotations[ANN_ENDPOINT] = source["registry"].get("url", "")
            annotations[ANN_SOURCE] = "registry"
            if source["registry"].get("pullMethod"):
                annotations[ANN_REGISTRY_IMPORT_METHOD] = source["registry"]["pullMethod"]
        elif "s3" in source or "gcs" in source:
            kind = "s3" if "s3" in source else "gcs"
            annotations[ANN_ENDPOINT] = source[kind].get("url", "")
            annotations[ANN_SOURCE] = kind
        else:
            annotations[ANN_SOURCE] = "none"  # cc.SourceNone for blank
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                            "annotations": annotations,
                            "ownerReferences": [{"apiVersion": DV_API, "kind": "DataVolume", "name": meta["name"],
                                                 "uid": meta["uid"], "controller": True,
                                                 "blockOwnerDeletion": True}]},
               "spec": spec}
        try:
            return self.kube.create(object_path("v1", "persistentvolumeclaims", namespace=meta["namespace"]), pvc)
        except KubeError as err:
            if err.status == 409 or (err.status == 403 and "being terminated" in str(err)):
                return None
            if err.status in (400, 422):
                record_event(self.kube, dv, "DataVolume", DV_API, "Warning", "ErrClaimNotValid",
                             err.body.get("message", "") if isinstance(err.body, dict) else str(err), COMPONENT)
                return None
            raise

    def _update_status(self, dv: JSON, pvc: Optional[JSON], sync: Optional[tuple] = None) -> Optional[float]:
        """controller-base.go updateStatus, updateConditions and emitEvent; `sync` (reason, message) is a
        syncDataVolumeStatusPhaseWithEvent that keeps the phase (updateDataVolumeStatusPhaseWithEvent)."""
        status = dict(dv.get("status") or {})
        current = status.get("phase", "")
        phase = current
        conditions = [dict(c) for c in status.get("conditions") or []]
        events: List[tuple] = []
        if sync is not None:
            pass
        elif pvc is None or pvc["metadata"].get("deletionTimestamp"):
            if pvc is None:
                phase = "Pending"  # shouldSetDataVolumePending
        else:
            status["claimName"] = pvc["metadata"]["name"]
            annotations = pvc["metadata"].get("annotations") or {}
            pod_phase = annotations.get(ANN_POD_PHASE)
            pvc_phase = (pvc.get("status") or {}).get("phase")
            if annotations.get(ANN_POPULATED_FOR) == dv["metadata"]["name"] and pvc_phase in ("Pending", "Bound"):
                # controller-base.go updateStatus: pvcRequiresWork is false for a claim populated for this
                # DataVolume (AnnPopulatedFor, as the kubevirt-velero-plugin marks a backed-up claim): Succeeded
                phase = "Succeeded"
            elif pod_phase == "Succeeded":
                phase = self._import_phase(pvc, phase, events)
            elif pvc_phase == "Pending":
                phase = "Pending"  # updateStatusPVCPending: not populators, not WaitForFirstConsumer
            elif pvc_phase == "Bound":
                if phase in ("", "Pending", "WaitForFirstConsumer", "Unknown"):
                    phase = "PVCBound"
                phase = self._import_phase(pvc, phase, events)
            elif pvc_phase == "Lost":
                phase = "Failed"
                events.append(("Warning", "ErrClaimLost", f"PVC {pvc['metadata']['name']} lost"))
            # reconcileProgressUpdate
            if not status.get("progress"):
                status["progress"] = "N/A"
        if phase:
            status["phase"] = phase
        if phase == "Succeeded":
            status["progress"] = "100.0%"
        original = [dict(c) for c in conditions]
        conditions = self._conditions(conditions, phase, pvc, *(sync or ("", "")))
        status["conditions"] = conditions
        if status == (dv.get("status") or {}):
            return None
        self.kube.merge_patch(self._dv_path(dv) + "/status",
                              {"metadata": {"resourceVersion": dv["metadata"]["resourceVersion"]}, "status": status})
        # emitEvent: the phase's event, then a changed Bound condition's
        if phase != current:
            for event_type, reason, message in events:
                record_event(self.kube, dv, "DataVolume", DV_API, event_type, reason, message, COMPONENT)
        bound, before = find_condition(conditions, "Bound"), find_condition(original, "Bound")
        if bound and (before is None or any(bound.get(k) != before.get(k) for k in ("status", "reason", "message"))):
            record_event(self.kube, dv, "DataVolume", DV_API, "Normal", bound.get("reason", ""),
                         bound.get("message", ""), COMPONENT)
        return None

    @staticmethod
    def _import_phase(pvc: JSON, phase: str, events: list) -> str:
        """import-controller.go (datavolume) updateStatusPhase; clone-controller-base.go updateStatusPhase."""
        annotations = pvc["metadata"].get("annotations") or {}
        if ANN_CLONE_REQUEST in annotations:
            return DataVolumes._clone_phase(pvc, phase, events)
        if ANN_UPLOAD_REQUEST in annotations:
            return DataVolumes._upload_phase(pvc, phase, events)
        pod_phase = annotations.get(ANN_POD_PHASE)
        name = pvc["metadata"]["name"]
        if pod_phase != "Succeeded" and not (ANN_IMPORT_POD in annotations
                                             and (pvc.get("status") or {}).get("phase") == "Bound"):
            return phase
        if pod_phase is None:
            return "ImportScheduled"
        if pod_phase == "Pending":
            events.append(("Normal", "ImportScheduled", f"Import into {name} scheduled"))
            return "ImportScheduled"
        if pod_phase == "Running":
            events.append(("Normal", "ImportInProgress", f"Import into {name} in progress"))
            return "ImportInProgress"
        if pod_phase == "Succeeded":
            events.append(("Normal", "ImportSucceeded", f"Successfully imported into PVC {name}"))
            return "Succeeded"
        return "ImportScheduled"

    @staticmethod
    def _upload_phase(pvc: JSON, phase: str, events: list) -> str:
        """datavolume/upload-controller.go updateStatusPhase (MessageUploadScheduled / Ready / Succeeded)."""
        annotations = pvc["metadata"].get("annotations") or {}
        pod_phase = annotations.get(ANN_POD_PHASE)
        name = pvc["metadata"]["name"]
        if pod_phase != "Succeeded" and (pvc.get("status") or {}).get("phase") != "Bound":
            return phase
        if pod_phase == "Pending":
            events.append(("Normal", "UploadScheduled", f"Upload into {name} scheduled"))
        elif pod_phase == "Running" and annotations.get(ANN_POD_READY) == "true":
            events.append(("Normal", "UploadReady", f"Upload into {name} ready"))
            return "UploadReady"
        elif pod_phase == "Failed":
            events.append(("Warning", "UploadFailed", f"Upload into {name} failed"))
        elif pod_phase == "Succeeded":
            events.append(("Normal", "UploadSucceeded", f"Successfully uploaded into {name}"))
            return "Succeeded"
        return "UploadScheduled"

    @staticmethod
    def _clone_phase(pvc: JSON, phase: str, events: list) -> str:
        """clone-controller-base.go updateStatusPhase, host-assisted (not populators)."""
        annotations = pvc["metadata"].get("annotations") or {}
        pod_phase = annotations.get(ANN_POD_PHASE)
        if pod_phase != "Succeeded":
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return phase
            phase = "CloneScheduled"
        source_ns, source_name = annotations[ANN_CLONE_REQUEST].split("/", 1)
        where = (source_ns, source_name, pvc["metadata"]["namespace"], pvc["metadata"]["name"])
        if pod_phase == "Pending":
            events.append(("Normal", "CloneScheduled", "Cloning from %s/%s into %s/%s scheduled" % where))
            return "CloneScheduled"
        if pod_phase == "Running":
            events.append(("Normal", "CloneInProgress", "Cloning from %s/%s into %s/%s in progress" % where))
            return "CloneInProgress"
        if pod_phase == "Succeeded":
            events.append(("Normal", "CloneSucceeded", "Successfully cloned from %s/%s into %s/%s" % where))
            return "Succeeded"
        return phase

    @staticmethod
    def _conditions(conditions: List[JSON], phase: str, pvc: Optional[JSON], reason: str = "",
                    message: str = "") -> List[JSON]:
        """controller-base.go updateConditions with conditions.go updateBoundCondition / updateRunningCondition."""
        anno = (pvc or {}).get("metadata", {}).get("annotations") or {}
        ready = {"Succeeded": "True", "Unknown": "Unknown"}.get(phase, "False")
        if pvc is not None:
            name = pvc["metadata"]["name"]
            pvc_phase = (pvc.get("status") or {}).get("phase")
            bound_ann = anno.get(ANN_BOUND)
            ann_ok = bound_ann is None or bound_ann.lower() == "true"
            if pvc_phase == "Bound":
                if ann_ok:
                    update_condition(conditions, "Bound", "True", f"PVC {name} Bound", "Bound")
                else:
                    update_condition(conditions, "Bound", "False", anno.get(ANN_BOUND_MESSAGE, ""),
                                     anno.get(ANN_BOUND_REASON, ""))
                    update_condition(conditions, "Ready", "False", "", "")
            elif pvc_phase == "Pending":
                if ann_ok:
                    update_condition(conditions, "Bound", "False", f"PVC {name} Pending", "Pending")
                else:
                    update_condition(conditions, "Bound", "False",
                                     f"target PVC {name} Pending and {anno.get(ANN_BOUND_MESSAGE, '')}",
                                     anno.get(ANN_BOUND_REASON, ""))
                update_condition(conditions, "Ready", "False", "", "")
            elif pvc_phase == "Lost":
                update_condition(conditions, "Bound", "False", "Claim Lost", "ClaimLost")
                update_condition(conditions, "Ready", "False", "", "")
            else:
                update_condition(conditions, "Bound", "False", "", "")
                update_condition(conditions, "Ready", "False", "", "")
        else:
            update_condition(conditions, "Bound", "False", message or "No PVC found", reason or "NotFound")
            update_condition(conditions, "Ready", "False", "", "")
        update_condition(conditions, "Ready", ready, message, reason)
        # updateRunningCondition
        if anno.get(ANN_POD_SCHEDULABLE) == "false":
            update_condition(conditions, "Running", "False", "Importer pod cannot be scheduled", "Unschedulable")
        elif ANN_RUNNING in anno:
            value = anno[ANN_RUNNING].lower()
            source = anno.get(ANN_SOURCE_RUNNING, "").lower() if ANN_SOURCE_RUNNING in anno else None
            target_msg, target_reason = anno.get(ANN_RUNNING_MESSAGE, ""), anno.get(ANN_RUNNING_REASON, "")
            source_msg, source_reason = anno.get(ANN_SOURCE_RUNNING_MESSAGE, ""), anno.get(ANN_SOURCE_RUNNING_REASON, "")
            if value == "true":
                # updateWithTargetRunning
                if source is None or source == "true":
                    update_condition(conditions, "Running", "True", target_msg, target_reason)
                    update_condition(conditions, "Ready", "False", "", "TransferRunning")
                elif source == "false":
                    update_condition(conditions, "Running", "False", source_msg, source_reason)
                else:
                    update_condition(conditions, "Running", "Unknown", source_msg, source_reason)
            elif value == "false":
                # updateWithTargetNotRunning
                if source is None or source == "true":
                    update_condition(conditions, "Running", "False", target_msg, target_reason)
                else:
                    update_condition(conditions, "Running", "False" if source == "false" else "Unknown",
                                     f"{target_msg} and {source_msg}", f"{target_reason} and {source_reason}")
            else:
                update_condition(conditions, "Running", "Unknown", anno.get(ANN_RUNNING_MESSAGE, ""),
                                 anno.get(ANN_RUNNING_REASON, ""))
        else:
            update_condition(conditions, "Running", "False", anno.get(ANN_RUNNING_MESSAGE, ""),
                             anno.get(ANN_RUNNING_REASON, ""))
        return conditions

    # -- import controller (pkg/controller/import-controller.go) --------------------------------------

    def reconcile_import(self, namespace: str, name: str) -> Optional[float]:
        pvc = self.storage.pvcs.get(namespace, name)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return None
        annotations = pvc["metadata"].get("annotations") or {}
        if ANN_CLONE_REQUEST in annotations and (pvc.get("status") or {}).get("phase") == "Bound":
            return self._host_assisted_clone(pvc, annotations)
        if ANN_UPLOAD_REQUEST in annotations and (pvc.get("status") or {}).get("phase") == "Bound":
            return self._upload_pod(pvc, annotations)
        # shouldReconcilePVC: an import PVC (endpoint or source annotation), bound, not done yet
        if ANN_SOURCE not in annotations or (pvc.get("status") or {}).get("phase") != "Bound":
            return None
        pod_phase = annotations.get(ANN_POD_PHASE, "")
        if pod_phase == "Succeeded":
            return None
        key = f"{pvc['metadata']['uid']}:{pod_phase}"
        since = self.since.setdefault(key, time.monotonic())
        wait = since + self.step - time.monotonic()
        if wait > 0:
            return wait
        if ANN_IMPORT_POD not in annotations:
            # initPvcPodName: naming.GetResourceName(common.ImporterPodName, pvc name)
            patch = {ANN_IMPORT_POD: f"importer-{name}"}
        elif not pod_phase:
            # the importer pod is created and Pending (no container statuses yet)
            patch = {ANN_POD_PHASE: "Pending", ANN_POD_SCHEDULABLE: "true"}
        elif pod_phase == "Pending":
            # setAnnotationsFromPodWithPrefix: all containers running
            patch = {ANN_POD_PHASE: "Running", ANN_RUNNING: "true", ANN_RUNNING_MESSAGE: "",
                     ANN_RUNNING_REASON: POD_RUNNING_REASON}
        else:
            # terminated: the importer's termination message and the container's reason; before that it wrote
            # the volume's content (volume_data.py)
            handle = self._volume_handle(pvc)
            if handle is None:
                return 0.5
            volume_data.import_content(handle, annotations.get(ANN_SOURCE, ""), annotations.get(ANN_ENDPOINT, ""),
                                       str(paths.state_dir() / "pki" / "ca.crt"))
            patch = {ANN_POD_PHASE: "Succeeded", ANN_RUNNING: "false", ANN_RUNNING_MESSAGE: "Import Complete",
                     ANN_RUNNING_REASON: "Completed"}
        self.kube.merge_patch(object_path("v1", "persistentvolumeclaims", name, namespace),
                              {"metadata": {"resourceVersion": pvc["metadata"]["resourceVersion"],
                                            "annotations": patch}})
        return None

    def _volume_handle(self, pvc: JSON) -> Optional[str]:
        """The CSI volume behind a bound claim (volume_data.py keeps its bytes)."""
        volume = (pvc.get("spec") or {}).get("volumeName")
        return volume_data.volume_handle(self.storage.pvs.get("", volume)) if volume else None

    def _upload_pod(self, pvc: JSON, annotations: JSON) -> Optional[float]:
        """pkg/controller/upload-controller.go reconcilePVC: the pod's name on the claim (AnnUploadPod,
        createUploadResourceName "cdi-upload-<claim>"), then its phase and readiness as the pod reports them
        (AnnPodPhase, AnnPodReady), one step apart. Succeeded is written by the upload proxy stand-in once the
        upload is complete (cdi_upload.py), as the upload server pod exits then."""
        pod_phase = annotations.get(ANN_POD_PHASE, "")
        if pod_phase in ("Running", "Succeeded") and ANN_UPLOAD_POD in annotations:
            return None
        key = f"{pvc['metadata']['uid']}:upload:{pod_phase}"
        since = self.since.setdefault(key, time.monotonic())
        wait = since + self.step - time.monotonic()
        if wait > 0:
            return wait
        if ANN_UPLOAD_POD not in annotations:
            patch = {ANN_UPLOAD_POD: f"cdi-upload-{pvc['metadata']['name']}"}
        elif not pod_phase:
            patch = {ANN_POD_PHASE: "Pending", ANN_POD_READY: "false"}
        else:
            patch = {ANN_POD_PHASE: "Running", ANN_POD_READY: "true", ANN_RUNNING: "true", ANN_RUNNING_MESSAGE: "",
                     ANN_RUNNING_REASON: POD_RUNNING_REASON}
        meta = pvc["metadata"]
        self.kube.merge_patch(object_path("v1", "persistentvolumeclaims", meta["name"], meta["namespace"]),
                              {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": patch}})
        return None

    def _host_assisted_clone(self, pvc: JSON, annotations: JSON) -> Optional[float]:
        """The host-assisted clone: the upload controller's target pod (pkg/controller/upload-controller.go)
        writes the target PVC's pod phase and running condition, the clone controller
        (pkg/controller/clone-controller.go updatePvcFromPod) the source pod's running condition and, once both
        finished, k8s.io/CloneOf "true" with event CloneSucceeded "Clone Complete" on the PVC."""
        if annotations.get(ANN_CLONE_OF) == "true":
            return None
        pod_phase = annotations.get(ANN_POD_PHASE, "")
        key = f"{pvc['metadata']['uid']}:clone:{pod_phase}"
        since = self.since.setdefault(key, time.monotonic())
        wait = since + self.step - time.monotonic()
        if wait > 0:
            return wait
        if not pod_phase:
            patch = {ANN_POD_PHASE: "Pending"}
        elif pod_phase == "Pending":
            patch = {ANN_POD_PHASE: "Running", ANN_RUNNING: "true", ANN_RUNNING_MESSAGE: "",
                     ANN_RUNNING_REASON: POD_RUNNING_REASON, ANN_SOURCE_RUNNING: "true",
                     ANN_SOURCE_RUNNING_MESSAGE: "", ANN_SOURCE_RUNNING_REASON: POD_RUNNING_REASON}
        else:
            # both pods terminated without a termination message: the containers' reason only; the source
            # pod streamed the source claim's content into the target (volume_data.py)
            source_ns, source_name = annotations[ANN_CLONE_REQUEST].split("/", 1)
            source_pvc = self.storage.pvcs.get(source_ns, source_name)
            source, target = self._volume_handle(source_pvc or {}), self._volume_handle(pvc)
            if target is None:
                return 0.5
            if source is not None and volume_data.exists(source):
                volume_data.copy(source, target)
            patch = {ANN_POD_PHASE: "Succeeded", ANN_RUNNING: "false", ANN_RUNNING_MESSAGE: "",
                     ANN_RUNNING_REASON: "Completed", ANN_SOURCE_RUNNING: "false", ANN_SOURCE_RUNNING_MESSAGE: "",
                     ANN_SOURCE_RUNNING_REASON: "Completed", ANN_CLONE_OF: "true"}
        meta = pvc["metadata"]
        updated = self.kube.merge_patch(object_path("v1", "persistentvolumeclaims", meta["name"], meta["namespace"]),
                                        {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": patch}})
        if patch.get(ANN_CLONE_OF):
            record_event(self.kube, updated, "PersistentVolumeClaim", "v1", "Normal", "CloneSucceeded",
                         "Clone Complete", "clone-controller")
        return None
