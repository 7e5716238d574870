"""Stand-in for the external-snapshotter (kubernetes-csi/external-snapshotter v8.4.0, the CRDs of its client/v8
module the lab registers): the common snapshot-controller and the CSI driver's csi-snapshotter sidecar for the
lab driver (storage.PROVISIONER, csi.lab.palette.vmo), plus the lab's VolumeSnapshotClass.

What it does follows:

* pkg/common-controller/snapshot_controller_base.go checkAndUpdateSnapshotClass and snapshot_controller.go
  SetDefaultSnapshotClass: a VolumeSnapshot without spec.volumeSnapshotClassName gets the one default class
  (annotation snapshot.storage.kubernetes.io/is-default-class "true") of its PV's driver.
* snapshot_controller.go syncSnapshot -> checkandAddSnapshotFinalizers (volumesnapshot-as-source-protection,
  then volumesnapshot-bound-protection once bound to a content with deletionPolicy Delete) -> syncUnreadySnapshot
  -> createSnapshotContent: ensurePVCFinalizer (pvc-as-source-protection on the source claim), a
  VolumeSnapshotContent named snapcontent-<snapshot uid> (utils.go GetDynamicSnapshotContentNameForSnapshot) with
  volumeSnapshotRef, source.volumeHandle of the claim's PV, the class name, its deletionPolicy and driver;
  updateSnapshotStatus copies boundVolumeSnapshotContentName, creationTime (from the content's unix nanoseconds),
  readyToUse, restoreSize (resource.NewQuantity(BinarySI)) and error. checkandRemovePVCFinalizer drops the
  claim's finalizer once no unready snapshot uses it (isPVCBeingUsed).
* syncContent (common): addContentFinalizer (volumesnapshotcontent-bound-protection) once the ref has a uid.
* processSnapshotWithDeletionTimestamp / checkandRemoveSnapshotFinalizersAndCheckandDeleteContent: a deleted
  snapshot with a bound content waits while a Pending claim restores from it (isVolumeBeingCreatedFromSnapshot),
  sets snapshot.storage.kubernetes.io/volumesnapshot-being-deleted on the content, deletes it when its policy is
  Delete, removes the as-source finalizer and, once the content is gone, the bound finalizer.
* pkg/sidecar-controller/snapshot_controller.go syncContent: createSnapshotWrapper (annotation
  volumesnapshot-being-created, the driver's CreateSnapshot, updateSnapshotContentStatus with snapshotHandle,
  readyToUse, creationTime in unix nanoseconds and restoreSize in bytes, annotation removed);
  checkandUpdateContentStatus until ready; shouldDelete -> deleteCSISnapshot (clearVolumeContentStatus) and
  removeContentFinalizer.
* The lab driver's CreateSnapshot cuts the snapshot at once (handle lab-snap-<VolumeSnapshot uid>, size the
  source volume's capacity) and reports it ready to use one step later, as drivers with an upload phase do.

external-provisioner (v6.3.0 pkg/controller/controller.go getSnapshotSource) side of a claim whose dataSource
is a VolumeSnapshot is `snapshot_source_error` here; storage.py's provisioner calls it.
"""

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Optional

from ..kube import JSON, Kube, KubeError, object_path
from . import volume_data
from .runtime import Manager
from .storage import PROVISIONER, binary_si, record_event, storage_bytes

log = logging.getLogger("standin.snapshot")

API = "snapshot.storage.k8s.io/v1"
GROUP = "snapshot.storage.k8s.io"
# pkg/utils/util.go
CONTENT_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
BOUND_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
AS_SOURCE_FINALIZER = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
PVC_FINALIZER = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
DEFAULT_CLASS_ANNOTATION = "snapshot.storage.kubernetes.io/is-default-class"
ANN_BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
ANN_BEING_CREATED = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
# The lab's class, as a CSI driver's installation ships one (the VMO pack's snapshot controller has none).
SNAPSHOT_CLASS = "lab-snapclass"
# Event sources: snapshot-controller's recorder component "snapshot-controller", the sidecar's
# "csi-snapshotter <driver>" (cmd/csi-snapshotter/main.go).
CONTROLLER_COMPONENT = "snapshot-controller"
SIDECAR_COMPONENT = "csi-snapshotter " + PROVISIONER


# client-go's record.EventRecorder hands events to its broadcaster, which posts them from its own goroutine
# (StartRecordingToSink): a controller's sync never waits for an event. The snapshot stand-ins do the same.
_EVENT_SENDER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="snapshot-events")


def emit_event(*args) -> None:
    """record_event(...) in the background, as client-go's broadcaster sends it."""
    _EVENT_SENDER.submit(record_event, *args)


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def nanos_to_time(value: int) -> str:
    return datetime.fromtimestamp(value / 1e9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_class() -> JSON:
    return {"apiVersion": API, "kind": "VolumeSnapshotClass",
            "metadata": {"name": SNAPSHOT_CLASS, "annotations": {DEFAULT_CLASS_ANNOTATION: "true"}},
            "driver": PROVISIONER, "deletionPolicy": "Delete"}


def content_name(snapshot: JSON) -> str:
    """utils.go GetDynamicSnapshotContentNameForSnapshot."""
    return "snapcontent-" + snapshot["metadata"]["uid"]


def _ready(obj: Optional[JSON]) -> bool:
    return bool(((obj or {}).get("status") or {}).get("readyToUse"))


class VolumeSnapshots:
    """snapshot-controller + csi-snapshotter of the lab driver."""

    def __init__(self, manager: Manager, kube: Kube, storage, step: float = 0.3):
        self.kube, self.storage, self.queue, self.step = kube, storage, manager.queue, step
        self.snapshots = manager.watch("volumesnapshots", object_path(API, "volumesnapshots"),
                                       self._snapshot_changed)
        self.contents = manager.watch("volumesnapshotcontents", object_path(API, "volumesnapshotcontents"),
                                      self._content_changed)
        self.classes = manager.watch("volumesnapshotclasses", object_path(API, "volumesnapshotclasses"),
                                     lambda obj: None)
        # A claim restoring from a snapshot ends its Pending phase: a deleted snapshot waiting for it goes on.
        first = storage.pvcs.on_change

        def pvc_changed(obj: JSON) -> None:
            first(obj)
            source = (obj.get("spec") or {}).get("dataSource") or {}
            if source.get("kind") == "VolumeSnapshot":
                self.queue.add(("VolumeSnapshot", obj["metadata"].get("namespace", ""), source.get("name", "")))
        storage.pvcs.on_change = pvc_changed
        manager.reconciler("VolumeSnapshot", self.reconcile_snapshot)
        manager.reconciler("VolumeSnapshotContent", self.reconcile_content)
        manager.reconciler("VolumeSnapshotClass", self.reconcile_class)
        self.queue.add(("VolumeSnapshotClass", "", SNAPSHOT_CLASS))

    def _snapshot_changed(self, obj: JSON) -> None:
        self.queue.add(("VolumeSnapshot", obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    def _content_changed(self, obj: JSON) -> None:
        self.queue.add(("VolumeSnapshotContent", "", obj["metadata"]["name"]))
        ref = (obj.get("spec") or {}).get("volumeSnapshotRef") or {}
        if ref.get("name"):
            self.queue.add(("VolumeSnapshot", ref.get("namespace", ""), ref["name"]))

    # -- the lab's VolumeSnapshotClass ---------------------------------------------------------------

    def reconcile_class(self, _namespace: str, name: str) -> Optional[float]:
        try:
            self.kube.apply(object_path(API, "volumesnapshotclasses", name), snapshot_class(), "lab-storage",
                            force=True)
        except KubeError as err:
            if err.status == 404:
                return 5.0  # the snapshot CRDs are not registered yet (a bare lab)
            raise
        return None

    # -- common controller: VolumeSnapshot -----------------------------------------------------------

    def _default_class(self, snapshot: JSON) -> Optional[str]:
        """SetDefaultSnapshotClass: the one default class whose driver is the source PV's."""
        pv = self._source_pv(snapshot)
        driver = ((pv or {}).get("spec") or {}).get("csi", {}).get("driver")
        defaults = [c for c in self.classes.list()
                    if (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS_ANNOTATION) == "true"
                    and c.get("driver") == driver]
        if len(defaults) != 1:
            self._error(snapshot, "SetDefaultSnapshotClassFailed", "Failed to set default snapshot class with error " +
                        ("cannot find default snapshot class" if not defaults
                         else f"{len(defaults)} default snapshot classes were found"), False)
            return None
        return defaults[0]["metadata"]["name"]

    def _source_pvc(self, snapshot: JSON) -> Optional[JSON]:
        name = (snapshot["spec"].get("source") or {}).get("persistentVolumeClaimName")
        return self.storage.pvcs.get(snapshot["metadata"]["namespace"], name) if name else None

    def _source_pv(self, snapshot: JSON) -> Optional[JSON]:
        """getVolumeFromVolumeSnapshot: the bound PV of the source claim."""
        pvc = self._source_pvc(snapshot)
        volume = ((pvc or {}).get("spec") or {}).get("volumeName")
        return self.storage.pvs.get("", volume) if volume else None

    def _error(self, snapshot: JSON, reason: str, message: str, set_ready_false: bool) -> None:
        """updateSnapshotErrorStatusWithEvent."""
        status = dict(snapshot.get("status") or {})
        error = status.get("error") or {}
        if error.get("message") != message:
            status["error"] = {"message": message, "time": now()}
            if set_ready_false:
                status["readyToUse"] = False
            path = object_path(API, "volumesnapshots", snapshot["metadata"]["name"], snapshot["metadata"]["namespace"])
            self.kube.merge_patch(path + "/status", {"status": status})
            emit_event(self.kube, snapshot, "VolumeSnapshot", API, "Warning", reason, message, CONTROLLER_COMPONENT)

    def reconcile_snapshot(self, namespace: str, name: str) -> Optional[float]:
        snapshot = self.snapshots.get(namespace, name)
        if snapshot is None:
            return None
        meta, spec = snapshot["metadata"], snapshot.get("spec") or {}
        source = spec.get("source") or {}
        path = object_path(API, "volumesnapshots", name, namespace)
        self._check_pvc_finalizer(snapshot)
        if meta.get("deletionTimestamp"):
            return self._delete_snapshot(snapshot, path)
        if bool(source.get("persistentVolumeClaimName")) == bool(source.get("volumeSnapshotContentName")):
            self._error(snapshot, "SnapshotValidationError",
                        "Exactly one of PersistentVolumeClaimName and VolumeSnapshotContentName should be specified",
                        True)
            return None
        if source.get("volumeSnapshotContentName"):
            return None  # pre-provisioned snapshots: not used by the lab
        # checkAndUpdateSnapshotClass
        if not spec.get("volumeSnapshotClassName"):
            class_name = self._default_class(snapshot)
            if class_name is None:
                return 2.0
            self.kube.json_patch(path, [{"op": "replace", "path": "/spec/volumeSnapshotClassName", "value": class_name}])
            return None
        content = self.contents.get("", content_name(snapshot))
        # checkandAddSnapshotFinalizers
        finalizers = list(meta.get("finalizers") or [])
        wanted = list(finalizers)
        if AS_SOURCE_FINALIZER not in wanted:
            wanted.append(AS_SOURCE_FINALIZER)
        status = snapshot.get("status") or {}
        if content is not None and status.get("boundVolumeSnapshotContentName") and \
                content["spec"].get("deletionPolicy") == "Delete" and BOUND_FINALIZER not in wanted:
            wanted.append(BOUND_FINALIZER)
        if wanted != finalizers:
            self.kube.json_patch(path, [{"op": "replace", "path": "/metadata/resourceVersion",
                                         "value": meta["resourceVersion"]},
                                        {"op": "add", "path": "/metadata/finalizers", "value": wanted}])
            return None
        if _ready(snapshot) and status.get("boundVolumeSnapshotContentName"):
            return None  # syncReadySnapshot: binding verified, nothing to do
        if content is None:
            content = self._create_content(snapshot)
            if content is None:
                return 2.0
        self._update_status(snapshot, content)
        return None

    def _create_content(self, snapshot: JSON) -> Optional[JSON]:
        """createSnapshotContent (with ensurePVCFinalizer and getCreateSnapshotInput)."""
        meta = snapshot["metadata"]
        pvc = self._source_pvc(snapshot)
        if pvc is None:
            self._error(snapshot, "SnapshotContentCreationFailed", "Failed to create snapshot content with error "
                        "failed to get input parameters to create snapshot " + meta["name"] +
                        f': "failed to retrieve PVC {snapshot["spec"]["source"]["persistentVolumeClaimName"]} '
                        'from the lister"', True)
            return None
        if PVC_FINALIZER not in (pvc["metadata"].get("finalizers") or []):
            if pvc["metadata"].get("deletionTimestamp"):
                return None
            self.kube.json_patch(object_path("v1", "persistentvolumeclaims", pvc["metadata"]["name"], meta["namespace"]),
                                 [{"op": "replace", "path": "/metadata/resourceVersion",
                                   "value": pvc["metadata"]["resourceVersion"]},
                                  {"op": "add", "path": "/metadata/finalizers",
                                   "value": (pvc["metadata"].get("finalizers") or []) + [PVC_FINALIZER]}])
        class_name = snapshot["spec"]["volumeSnapshotClassName"]
        sc = self.classes.get("", class_name)
        if sc is None:
            self._error(snapshot, "SnapshotContentCreationFailed", "Failed to create snapshot content with error "
                        f'failed to get input parameters to create snapshot {meta["name"]}: '
                        f'"volumesnapshotclass.snapshot.storage.k8s.io \\"{class_name}\\" not found"', True)
            return None
        pv = self._source_pv(snapshot)
        if pv is None or pvc.get("status", {}).get("phase") != "Bound":
            # getVolumeFromVolumeSnapshot: "the PVC %s is not yet bound to a PV, will not attempt to take a snapshot"
            self._error(snapshot, "SnapshotContentCreationFailed", "Failed to create snapshot content with error "
                        f'failed to get input parameters to create snapshot {meta["name"]}: '
                        f'"the PVC {pvc["metadata"]["name"]} is not yet bound to a PV, will not attempt to take a '
                        'snapshot"', True)
            return None
        csi = (pv.get("spec") or {}).get("csi")
        if not csi:
            self._error(snapshot, "SnapshotContentCreationFailed",
                        f"Failed to create snapshot content with error cannot find CSI PersistentVolumeSource for "
                        f"volume {pv['metadata']['name']}", True)
            return None
        content = {"apiVersion": API, "kind": "VolumeSnapshotContent",
                   "metadata": {"name": content_name(snapshot)},
                   "spec": {"volumeSnapshotRef": {"kind": "VolumeSnapshot", "apiVersion": API,
                                                  "namespace": meta["namespace"], "name": meta["name"],
                                                  "uid": meta["uid"], "resourceVersion": meta["resourceVersion"]},
                            "source": {"volumeHandle": csi["volumeHandle"]},
                            "volumeSnapshotClassName": class_name,
                            "deletionPolicy": sc.get("deletionPolicy"), "driver": sc.get("driver"),
                            # --prevent-volume-mode-conversion is on by default since v7
                            "sourceVolumeMode": pv["spec"].get("volumeMode") or "Filesystem"}}
        try:
            content = self.kube.create(object_path(API, "volumesnapshotcontents"), content)
            self.contents.remember(content)  # createSnapshotContent's storeContentUpdate
        except KubeError as err:
            if err.status != 409:  # AlreadyExists is reused, and the event recorded all the same
                raise
        emit_event(self.kube, snapshot, "VolumeSnapshot", API, "Normal", "CreatingSnapshot",
                   f"Waiting for a snapshot {meta['namespace']}/{meta['name']} to be created by the CSI driver.",
                   CONTROLLER_COMPONENT)
        return content

    def _update_status(self, snapshot: JSON, content: JSON) -> None:
        """updateSnapshotStatus."""
        meta = snapshot["metadata"]
        cstatus = content.get("status") or {}
        status = dict(snapshot.get("status") or {})
        before = dict(status)
        status.setdefault("boundVolumeSnapshotContentName", content["metadata"]["name"])
        if not status.get("creationTime") and cstatus.get("creationTime"):
            status["creationTime"] = nanos_to_time(int(cstatus["creationTime"]))
        ready = bool(cstatus.get("readyToUse"))
        if status.get("readyToUse") != ready:
            status["readyToUse"] = ready
            if ready:
                status.pop("error", None)
        if cstatus.get("restoreSize") and not status.get("restoreSize"):
            status["restoreSize"] = binary_si(int(cstatus["restoreSize"]))
        if cstatus.get("error"):
            status["error"] = cstatus["error"]
        if status == before:
            return
        path = object_path(API, "volumesnapshots", meta["name"], meta["namespace"])
        self.kube.json_patch(path + "/status", [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
            {"op": "add", "path": "/status", "value": status}])
        key = f"{meta['namespace']}/{meta['name']}"
        if not before.get("creationTime") and status.get("creationTime"):
            emit_event(self.kube, snapshot, "VolumeSnapshot", API, "Normal", "SnapshotCreated",
                       f"Snapshot {key} was successfully created by the CSI driver.", CONTROLLER_COMPONENT)
        if not before.get("readyToUse") and ready:
            emit_event(self.kube, snapshot, "VolumeSnapshot", API, "Normal", "SnapshotReady",
                       f"Snapshot {key} is ready to use.", CONTROLLER_COMPONENT)

    def _check_pvc_finalizer(self, snapshot: JSON) -> None:
        """checkandRemovePVCFinalizer / isPVCBeingUsed."""
        pvc = self._source_pvc(snapshot)
        if pvc is None or PVC_FINALIZER not in (pvc["metadata"].get("finalizers") or []):
            return
        namespace, claim = pvc["metadata"]["namespace"], pvc["metadata"]["name"]
        for snap in self.snapshots.list():
            if snap["metadata"].get("namespace") == namespace and \
                    (snap["spec"].get("source") or {}).get("persistentVolumeClaimName") == claim and not _ready(snap):
                return
        current = self.kube.get_or_none(object_path("v1", "persistentvolumeclaims", claim, namespace))
        if current is None or PVC_FINALIZER not in (current["metadata"].get("finalizers") or []):
            return
        rest = [f for f in current["metadata"]["finalizers"] if f != PVC_FINALIZER]
        self.kube.json_patch(object_path("v1", "persistentvolumeclaims", claim, namespace), [
            {"op": "test", "path": "/metadata/finalizers", "value": current["metadata"]["finalizers"]},
            {"op": "replace", "path": "/metadata/finalizers", "value": rest}])

    def _delete_snapshot(self, snapshot: JSON, path: str) -> Optional[float]:
        """processSnapshotWithDeletionTimestamp + checkandRemoveSnapshotFinalizersAndCheckandDeleteContent."""
        meta = snapshot["metadata"]
        finalizers = meta.get("finalizers") or []
        if AS_SOURCE_FINALIZER not in finalizers and BOUND_FINALIZER not in finalizers:
            return None  # IsSnapshotDeletionCandidate
        name = (snapshot.get("status") or {}).get("boundVolumeSnapshotContentName") or content_name(snapshot)
        content = self.contents.get("", name)
        ref = ((content or {}).get("spec") or {}).get("volumeSnapshotRef") or {}
        if content is not None and ref.get("uid") != meta["uid"]:
            content = None
        delete_content = content is not None and content["spec"].get("deletionPolicy") == "Delete"
        if content is not None:
            for pvc in self.storage.pvcs.list():
                source = (pvc.get("spec") or {}).get("dataSource") or {}
                if pvc["metadata"].get("namespace") == meta["namespace"] and source.get("kind") == "VolumeSnapshot" \
                        and source.get("apiGroup") == GROUP and source.get("name") == meta["name"] \
                        and (pvc.get("status") or {}).get("phase") == "Pending":
                    emit_event(self.kube, snapshot, "VolumeSnapshot", API, "Warning", "SnapshotDeletePending",
                               "Snapshot is being used to restore a PVC", CONTROLLER_COMPONENT)
                    return None  # the claim's change re-queues the snapshot
            annotations = content["metadata"].get("annotations") or {}
            if ANN_BEING_DELETED not in annotations:
                self.kube.merge_patch(object_path(API, "volumesnapshotcontents", content["metadata"]["name"]),
                                      {"metadata": {"annotations": {ANN_BEING_DELETED: "yes"}}})
            if delete_content and not content["metadata"].get("deletionTimestamp"):
                self.kube.delete(object_path(API, "volumesnapshotcontents", content["metadata"]["name"]))
        remove = [AS_SOURCE_FINALIZER] + ([] if delete_content else [BOUND_FINALIZER])
        rest = [f for f in finalizers if f not in remove]
        if rest != finalizers:
            self.kube.json_patch(path, [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                                        {"op": "replace", "path": "/metadata/finalizers", "value": rest}])
        return None

    # -- VolumeSnapshotContent: common syncContent + the csi-snapshotter sidecar ------------------------

    def reconcile_content(self, _namespace: str, name: str) -> Optional[float]:
        content = self.contents.get("", name)
        if content is None:
            return None
        meta, spec = content["metadata"], content.get("spec") or {}
        path = object_path(API, "volumesnapshotcontents", name)
        finalizers = meta.get("finalizers") or []
        # common syncContent: NeedToAddContentFinalizer
        if (spec.get("volumeSnapshotRef") or {}).get("uid") and not meta.get("deletionTimestamp") \
                and CONTENT_FINALIZER not in finalizers:
            self.contents.remember(self.kube.json_patch(path, [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "add", "path": "/metadata/finalizers", "value": finalizers + [CONTENT_FINALIZER]}]))
            return None
        if spec.get("driver") != PROVISIONER:
            return None  # another driver's sidecar
        annotations = meta.get("annotations") or {}
        if meta.get("deletionTimestamp"):
            # shouldDelete: not while being created; with volumesnapshot-being-deleted
            if ANN_BEING_CREATED in annotations or ANN_BEING_DELETED not in annotations:
                return None
            status = content.get("status") or {}
            if spec.get("deletionPolicy") == "Delete" and status.get("snapshotHandle"):
                # deleteCSISnapshotOperation: the driver's DeleteSnapshot, then clearVolumeContentStatus
                volume_data.remove(status["snapshotHandle"])
                cleared = {k: v for k, v in status.items()
                           if k not in ("snapshotHandle", "readyToUse", "creationTime", "restoreSize")}
                self.kube.json_patch(path + "/status", [{"op": "add", "path": "/status", "value": cleared}])
                return None
            if CONTENT_FINALIZER in finalizers:
                self.kube.json_patch(path, [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                                            {"op": "replace", "path": "/metadata/finalizers",
                                             "value": [f for f in finalizers if f != CONTENT_FINALIZER]}])
            return None
        source = spec.get("source") or {}
        status = content.get("status")
        if source.get("volumeHandle") and status is None:
            return self._create_csi_snapshot(content, path)
        if _ready(content):
            if ANN_BEING_CREATED in annotations:
                self.contents.remember(self.kube.json_patch(path, [
                    {"op": "remove", "path": "/metadata/annotations/" + ANN_BEING_CREATED.replace("/", "~1")}]))
            return None
        # checkandUpdateContentStatusOperation: the driver reports the snapshot ready one step after it was cut
        created = int((status or {}).get("creationTime") or 0)
        wait = created / 1e9 + self.step - time.time()
        if wait > 0:
            return wait
        self.contents.remember(self.kube.json_patch(path + "/status", [
            {"op": "add", "path": "/status", "value": {**(status or {}), "readyToUse": True}}]))
        return None

    def _create_csi_snapshot(self, content: JSON, path: str) -> Optional[float]:
        """createSnapshotWrapper with the lab driver's CreateSnapshot."""
        meta, spec = content["metadata"], content["spec"]
        if ANN_BEING_CREATED not in (meta.get("annotations") or {}):
            # the sidecar keeps what it wrote (storeContentUpdate): its next round must not cut the snapshot again
            content = self.kube.merge_patch(path, {"metadata": {"annotations": {ANN_BEING_CREATED: "yes"}}})
            self.contents.remember(content)
        handle = spec["source"]["volumeHandle"]
        pv = next((p for p in self.storage.pvs.list()
                   if ((p.get("spec") or {}).get("csi") or {}).get("volumeHandle") == handle), None)
        if pv is None:
            # codes.NotFound from the driver: a final error, the annotation is removed and the error recorded
            message = f'Failed to create snapshot: failed to take snapshot of the volume {handle}: "rpc error: ' \
                      f'code = NotFound desc = volume {handle} not found"'
            self.kube.json_patch(path, [{"op": "remove",
                                         "path": "/metadata/annotations/" + ANN_BEING_CREATED.replace("/", "~1")}])
            self.kube.json_patch(path + "/status", [{"op": "add", "path": "/status", "value": {
                "error": {"message": message, "time": now()}, "readyToUse": False}}])
            emit_event(self.kube, content, "VolumeSnapshotContent", API, "Warning", "SnapshotCreationFailed",
                       message, SIDECAR_COMPONENT)
            return 5.0
        size = storage_bytes(pv["spec"]["capacity"]["storage"])
        created = time.time_ns()
        status = {"snapshotHandle": f"lab-snap-{spec['volumeSnapshotRef']['uid']}", "readyToUse": False,
                  "creationTime": created, "restoreSize": size}
        # The driver's CreateSnapshot keeps the volume's blocks as they are now (volume_data.py).
        if volume_data.exists(handle):
            volume_data.copy(handle, status["snapshotHandle"])
        self.contents.remember(self.kube.json_patch(path + "/status", [{"op": "add", "path": "/status",
                                                                        "value": status}]))
        return self.step


def snapshot_handle(kube: Kube, pvc: JSON) -> Optional[str]:
    """The driver's handle of the snapshot a claim is provisioned from (getSnapshotSource's
    content.Status.SnapshotHandle, passed to the driver's CreateVolume as its content source)."""
    name = ((pvc.get("spec") or {}).get("dataSource") or {}).get("name", "")
    snap = kube.get_or_none(object_path(API, "volumesnapshots", name, pvc["metadata"]["namespace"]))
    bound = ((snap or {}).get("status") or {}).get("boundVolumeSnapshotContentName")
    content = kube.get_or_none(object_path(API, "volumesnapshotcontents", bound)) if bound else None
    return ((content or {}).get("status") or {}).get("snapshotHandle")


def snapshot_source_error(kube: Kube, pvc: JSON, sc: JSON) -> Optional[str]:
    """external-provisioner controller.go getSnapshotSource: why a claim cannot be provisioned from its
    VolumeSnapshot data source yet (None: it can)."""
    source = (pvc.get("spec") or {}).get("dataSource") or {}
    namespace = pvc["metadata"]["namespace"]
    snap = kube.get_or_none(object_path(API, "volumesnapshots", source.get("name", ""), namespace))
    if snap is None:
        return f'error getting snapshot {source.get("name")} from api server: volumesnapshots.snapshot.storage.k8s.io ' \
               f'"{source.get("name")}" not found'
    name = snap["metadata"]["name"]
    # prepareProvision adds provisioner.storage.kubernetes.io/volumesnapshot-as-source-protection for the time
    # of the provisioning and removes it after; a snapshot deleted before that is refused.
    if snap["metadata"].get("deletionTimestamp"):
        return f"snapshot {name} is being deleted"
    status = snap.get("status") or {}
    bound = status.get("boundVolumeSnapshotContentName")
    if not bound:
        return f"snapshot {name} not bound"
    content = kube.get_or_none(object_path(API, "volumesnapshotcontents", bound))
    if content is None:
        return f"error getting snapshotcontent {bound} for snapshot {name}"
    ref = content["spec"].get("volumeSnapshotRef") or {}
    if ref.get("uid") != snap["metadata"]["uid"] or ref.get("name") != name or ref.get("namespace") != namespace:
        return f"snapshotcontent {bound} for snapshot {name} is bound to a different snapshot"
    if content["spec"].get("driver") != sc.get("provisioner"):
        return f"snapshotcontent {bound} for snapshot {name} is not handled by CSI driver of StorageClass " \
               f"{sc['metadata']['name']}"
    if not status.get("readyToUse"):
        return f"snapshot {name} is not Ready"
    if not (content.get("status") or {}).get("snapshotHandle"):
        return f"snapshot handle {name} is not available"
    if status.get("restoreSize"):
        requested = storage_bytes(((pvc["spec"].get("resources") or {}).get("requests") or {}).get("storage"))
        restore = storage_bytes(status["restoreSize"])
        if requested < restore:
            return f"requested volume size {requested} is less than the size {restore} for the source snapshot {name}"
    mode = content["spec"].get("sourceVolumeMode")
    wanted = pvc["spec"].get("volumeMode") or "Filesystem"
    if mode and mode != wanted:
        allow = (content["metadata"].get("annotations") or {}).get("snapshot.storage.kubernetes.io/allow-volume-mode-change")
        if allow != "true":
            return f"requested volume {namespace}/{pvc['metadata']['name']} modifies the mode of the source volume " \
                   f"but does not have permission to do so. snapshot.storage.kubernetes.io/allow-volume-mode-change " \
                   f"annotation is not present on snapshotcontent {bound}"
    return None


def register(manager: Manager, kube: Kube, storage, step: float = 0.3) -> VolumeSnapshots:
    return VolumeSnapshots(manager, kube, storage, step)
