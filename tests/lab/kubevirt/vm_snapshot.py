"""Stand-in for KubeVirt's VirtualMachineSnapshot controller (virt-controller) and its admitter (virt-api), as in
KubeVirt v1.9.0:

- pkg/storage/snapshot/snapshot.go VMSnapshotController.updateVMSnapshot (finalizer, lock the source, create
  the content, delete it when terminating, updateSnapshotStatus: phases InProgress / Succeeded / Failed /
  Deleting, conditions Progressing / Ready / Failure, indications Online / GuestAgent / NoGuestAgent / Paused,
  sourceIndications with IndicationMessage's texts, snapshotVolumes, failureDeadline (DefaultFailureDeadline 5m,
  "snapshot deadline exceeded")); updateVMSnapshotContent (a VolumeSnapshot per volume backup, named
  vmsnapshot-<snapshot uid>-volume-<volume>, owned by the content, labelled with the source VM; the content's
  status from the VolumeSnapshots: creationTime once all are cut, readyToUse once all are ready, errors,
  "VolumeSnapshots (...) missing"); createContent (vmsnapshot-content-<snapshot uid>, finalizer
  snapshot.kubevirt.io/vmsnapshotcontent-protection, spec.source.virtualMachine a copy of the VM with
  getSimplifiedMetaObject's metadata, volumeBackups with the claim's metadata + spec and volumeSnapshotName);
  getVolumeSnapshotClassName (the StorageProfile's status.snapshotClass, else the one class of the storage
  class's provisioner, else its default); updateVolumeSnapshotStatuses (VM status.volumeSnapshotStatuses).
- pkg/storage/snapshot/source.go vmSnapshotSource: UpdateSourceState (online = a VMI exists, paused = condition
  Paused True, guest agent = condition AgentConnected, locked = status.snapshotInProgress is this snapshot and
  the VM has finalizer snapshot.kubevirt.io/snapshot-source-protection), Lock (verifyVolumes: exists, not being
  deleted, Bound, populated (CDI IsPopulated: an owning DataVolume Succeeded); another snapshot in progress),
  Unlock, Spec (online: the VM revision the VMI started from, with the VM's current volumes, disks and
  dataVolumeTemplates; offline: the VM's spec), Freeze / Unfreeze (only with a guest agent and not paused).
- pkg/storage/admitters/vmsnapshot.go VMSnapshotAdmitter.Admit (Snapshot feature gate, apiGroup/kind of the
  source, spec immutable), served on components/webhooks.go VMSnapshotValidatePath.

The lab has no virt-handler freeze: what virt-handler reports after the guest agent froze the filesystems
(VMI status.fsFreezeStatus "frozen") is written here, and removed on unfreeze. The lab has no pods, so the
offline check "pods using PVCs" finds none. Backend (persistent TPM/EFI) volumes are not snapshotted.
"""

import copy
import logging
import re
import time
from datetime import datetime, timezone
from typing import Dict, List, Optional

from ..kube import JSON, Kube, KubeError, object_path
from . import admission
from .runtime import Manager
from .snapshot import API as VS_API, DEFAULT_CLASS_ANNOTATION, emit_event

log = logging.getLogger("standin.vm_snapshot")

API = "snapshot.kubevirt.io/v1beta1"
GROUP = "snapshot.kubevirt.io"
# snapshot.go / source.go constants
SNAPSHOT_FINALIZER = "snapshot.kubevirt.io/vmsnapshot-protection"
CONTENT_FINALIZER = "snapshot.kubevirt.io/vmsnapshotcontent-protection"
SOURCE_FINALIZER = "snapshot.kubevirt.io/snapshot-source-protection"
SOURCE_NAME_LABEL = "snapshot.kubevirt.io/source-vm-name"
SOURCE_NAMESPACE_LABEL = "snapshot.kubevirt.io/source-vm-namespace"
CONTENT_CREATE_EVENT = "SuccessfulVirtualMachineSnapshotContentCreate"
VOLUME_SNAPSHOT_CREATE_EVENT = "SuccessfulVolumeSnapshotCreate"
VOLUME_SNAPSHOT_MISSING_EVENT = "VolumeSnapshotMissing"
DEADLINE_EXCEEDED = "snapshot deadline exceeded"
SNAPSHOT_RETRY_INTERVAL = 5.0
CONTENT_DELETION_INTERVAL = 5.0
# api snapshot/v1beta1 types.go DefaultFailureDeadline
DEFAULT_FAILURE_DEADLINE = 5 * 60.0
INDICATION_MESSAGES = {
    "Online": "Snapshot taken while the VM was running. Consistency depends on guest-agent quiescing.",
    "GuestAgent": "Guest agent was active and attempted to quiesce the filesystem for application consistency.",
    "NoGuestAgent": "Guest agent was not available. Snapshot is crash-consistent and may not be "
                    "application-consistent.",
    "QuiesceTimeout": "Guest agent quiesced the filesystem, but the freeze window timed out before completion. "
                      "Snapshot is crash-consistent and may not be application-consistent.",
    "Paused": "Snapshot taken while the VM was paused. Snapshot is crash-consistent and may not be "
              "application-consistent.",
    "PartialSnapshot": "Not all snapshotable volumes were included in the snapshot. Check status.snapshotVolumes "
                       "for excluded volumes and VM VolumeSnapshotStatus for details.",
}
COMPONENT = "virt-controller"


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> float:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def parse_duration(value) -> float:
    """metav1.Duration as JSON: a Go duration string such as "1m30s"."""
    if value is None:
        return DEFAULT_FAILURE_DEADLINE
    total, units = 0.0, {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    for number, unit in re.findall(r"([0-9.]+)(h|ms|us|µs|ns|m|s)", str(value)):
        total += float(number) * units[unit]
    return total


def content_name(snap: JSON) -> str:
    """snapshot.go GetVMSnapshotContentName."""
    name = (snap.get("status") or {}).get("virtualMachineSnapshotContentName")
    return name or f"vmsnapshot-content-{snap['metadata']['uid']}"


def _status(obj: Optional[JSON]) -> JSON:
    return (obj or {}).get("status") or {}


def failed(snap: JSON) -> bool:
    return _status(snap).get("phase") == "Failed"


def succeeded(snap: JSON) -> bool:
    return _status(snap).get("phase") == "Succeeded"


def progressing(snap: JSON) -> bool:
    return not failed(snap) and not succeeded(snap)


def deleting(snap: Optional[JSON]) -> bool:
    return bool(snap and snap["metadata"].get("deletionTimestamp"))


def time_until_deadline(snap: JSON) -> float:
    """util.go timeUntilDeadline: 0 for a deadline of 0 (none)."""
    deadline = parse_duration((snap.get("spec") or {}).get("failureDeadline"))
    if deadline == 0:
        return 0.0
    return parse_time(snap["metadata"]["creationTimestamp"]) + deadline - time.time()


def deadline_exceeded(snap: JSON) -> bool:
    if failed(snap):
        return True
    if not progressing(snap):
        return False
    return time_until_deadline(snap) < 0


def terminating(snap: JSON) -> bool:
    return deleting(snap) or deadline_exceeded(snap)


def content_ready(content: Optional[JSON]) -> bool:
    return bool(_status(content).get("readyToUse"))


def should_delete_content(snap: JSON, content: JSON) -> bool:
    policy = (snap.get("spec") or {}).get("deletionPolicy")
    return policy in (None, "Delete") or not content_ready(content)


def simplified_meta(meta: JSON) -> JSON:
    """util.go getSimplifiedMetaObject: the object's metadata without managedFields."""
    result = copy.deepcopy(meta)
    result.pop("managedFields", None)
    return result


def update_condition(conditions: List[JSON], cond: JSON) -> List[JSON]:
    """util.go updateCondition: replaced only when status or reason changed."""
    for i, current in enumerate(conditions):
        if current.get("type") == cond["type"]:
            if current.get("status") != cond["status"] or current.get("reason") != cond["reason"]:
                conditions[i] = cond
            return conditions
    conditions.append(cond)
    return conditions


def new_condition(kind: str, status: str, reason: str) -> JSON:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": now()}


def vm_claims(vm: JSON) -> Dict[str, str]:
    """storagetypes.GetPVCsFromVolumes(GetVolumes(vm, WithRegularVolumes)): volume name -> claim name."""
    claims = {}
    for volume in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []:
        for key, field in (("persistentVolumeClaim", "claimName"), ("dataVolume", "name"), ("memoryDump", "claimName")):
            if volume.get(key) and volume[key].get(field):
                claims[volume["name"]] = volume[key][field]
                break
    return claims


def snapshot_source_vm(snap: JSON) -> List[str]:
    """The "vm" index value: the source VM's name when the source is a kubevirt.io VirtualMachine."""
    source = (snap.get("spec") or {}).get("source") or {}
    if source.get("apiGroup") == "kubevirt.io" and source.get("kind") == "VirtualMachine":
        return [source.get("name", "")]
    return []


def _has_condition(vmi: Optional[JSON], kind: str, status: Optional[str] = None) -> bool:
    for cond in _status(vmi).get("conditions") or []:
        if cond.get("type") == kind and (status is None or cond.get("status") == status):
            return True
    return False


class Source:
    """source.go vmSnapshotSource with its sourceState."""

    def __init__(self, ctrl: "VMSnapshots", vm: JSON, snap: JSON):
        self.ctrl, self.vm, self.snap = ctrl, vm, snap
        namespace = vm["metadata"]["namespace"]
        self.vmi = ctrl.vmis.get(namespace, vm["metadata"]["name"])
        self.online = self.vmi is not None
        self.paused = _has_condition(self.vmi, "Paused", "True")
        self.guest_agent = _has_condition(self.vmi, "AgentConnected")
        self.locked = _status(vm).get("snapshotInProgress") == snap["metadata"]["name"] and \
            SOURCE_FINALIZER in (vm["metadata"].get("finalizers") or [])
        self.lock_msg = "Source locked and operation in progress" if self.locked else "Source not locked"
        self.frozen = self.online and _status(self.vmi).get("fsFreezeStatus") == "frozen"

    @property
    def path(self) -> str:
        meta = self.vm["metadata"]
        return object_path("kubevirt.io/v1", "virtualmachines", meta["name"], meta["namespace"])

    def _verify_volumes(self, claims: List[str]) -> Optional[str]:
        namespace = self.vm["metadata"]["namespace"]
        for claim in sorted(claims):
            pvc = self.ctrl.pvcs.get(namespace, claim)
            if pvc is None:
                return f"volume doesnt exist: {claim}"
            if pvc["metadata"].get("deletionTimestamp"):
                return f"volume is being deleted: {claim}"
            if _status(pvc).get("phase") != "Bound":
                return f"volume not bound: {claim}"
            # CDI IsPopulated: a claim a DataVolume controls is populated once the DataVolume Succeeded
            owner = next((o for o in pvc["metadata"].get("ownerReferences") or []
                          if o.get("controller") and o.get("kind") == "DataVolume"), None)
            if owner is not None:
                dv = self.ctrl.dvs.get(namespace, owner["name"])
                if dv is None or _status(dv).get("phase") != "Succeeded":
                    return f"volume not populated: {claim}"
        return None

    def lock(self) -> bool:
        if self.locked:
            return True
        meta = self.vm["metadata"]
        problem = self._verify_volumes(list(vm_claims(self.vm).values()))
        if problem:
            self.lock_msg += f" source {meta['namespace']}/{meta['name']} {problem}"
            return False
        in_progress = _status(self.vm).get("snapshotInProgress")
        if in_progress and in_progress != self.snap["metadata"]["name"]:
            self.lock_msg += f' snapshot "{in_progress}" in progress'
            return False
        kube = self.ctrl.kube
        vm = self.vm
        if not in_progress:
            vm = kube.json_patch(self.path + "/status", [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": meta["resourceVersion"]},
                {"op": "add", "path": "/status/snapshotInProgress", "value": self.snap["metadata"]["name"]}])
        finalizers = vm["metadata"].get("finalizers") or []
        if SOURCE_FINALIZER not in finalizers:
            vm = kube.json_patch(self.path, [{"op": "test", "path": "/metadata/finalizers", "value": finalizers or None},
                                             {"op": "add", "path": "/metadata/finalizers",
                                              "value": finalizers + [SOURCE_FINALIZER]}])
        self.vm, self.locked = vm, True
        self.lock_msg = "Source locked and operation in progress"
        return True

    def unlock(self) -> bool:
        if _status(self.vm).get("snapshotInProgress") != self.snap["metadata"]["name"]:
            return False
        kube = self.ctrl.kube
        finalizers = self.vm["metadata"].get("finalizers") or []
        vm = self.vm
        if SOURCE_FINALIZER in finalizers:
            vm = kube.json_patch(self.path, [{"op": "test", "path": "/metadata/finalizers", "value": finalizers},
                                             {"op": "replace", "path": "/metadata/finalizers",
                                              "value": [f for f in finalizers if f != SOURCE_FINALIZER]}])
        # UpdateStatus of the cached VM: a stale copy is a 409 Conflict, retried with the next copy
        self.vm = kube.merge_patch(self.path + "/status", {
            "metadata": {"resourceVersion": vm["metadata"]["resourceVersion"]}, "status": {"snapshotInProgress": None}})
        self.locked = False
        return True

    def spec(self) -> JSON:
        """Spec(): the VM as the content keeps it."""
        vm = self.vm
        source: JSON = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                        "metadata": simplified_meta(vm["metadata"])}
        if self.online:
            revision = _status(self.vmi).get("virtualMachineRevisionName", "")
            rev = self.ctrl.kube.get_or_none(object_path("apps/v1", "controllerrevisions", revision,
                                                         vm["metadata"]["namespace"])) if revision else None
            if rev is None:
                raise RuntimeError(f"vm revision {revision} doesn't exist" if revision
                                   else "can't get vm revision, vmi doesn't exist")
            spec = copy.deepcopy((rev.get("data") or {}).get("spec") or {})
            template = spec.setdefault("template", {}).setdefault("spec", {})
            current = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
            template["volumes"] = copy.deepcopy(current.get("volumes"))
            template.setdefault("domain", {}).setdefault("devices", {})["disks"] = \
                copy.deepcopy(((current.get("domain") or {}).get("devices") or {}).get("disks"))
            spec["dataVolumeTemplates"] = copy.deepcopy((vm.get("spec") or {}).get("dataVolumeTemplates"))
            source["spec"] = {k: v for k, v in spec.items() if v is not None}
        else:
            source["spec"] = copy.deepcopy(vm.get("spec") or {})
        source["status"] = {}
        return {"virtualMachine": source}

    def _set_freeze(self, frozen: bool) -> None:
        meta = self.vmi["metadata"]
        self.ctrl.kube.merge_patch(object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"],
                                               meta["namespace"]),
                                   {"status": {"fsFreezeStatus": "frozen" if frozen else None}})
        self.frozen = frozen

    def freeze(self) -> None:
        if not self.locked:
            raise RuntimeError("attempting to freeze unlocked VM")
        if self.frozen or self.paused or not self.guest_agent:
            return  # paused / no guest agent: snapshot without freezing (crash-consistent)
        self._set_freeze(True)

    def unfreeze(self) -> None:
        if not self.locked or not self.guest_agent or self.paused or self.vmi is None:
            return
        if self.frozen:
            self._set_freeze(False)


class VMSnapshots:
    """VMSnapshotController (snapshot_base.go Init: its informers and handlers)."""

    def __init__(self, manager: Manager, kube: Kube, parts: Dict[str, object]):
        self.kube, self.queue = kube, manager.queue
        storage, volume_snapshots = parts["storage"], parts["volume-snapshots"]
        self.pvcs, self.classes, self.profiles = storage.pvcs, storage.classes, storage.profiles
        self.dvs = parts["datavolumes"].dvs
        self.volume_snapshots, self.snapshot_classes = volume_snapshots.snapshots, volume_snapshots.classes
        self.snapshots = manager.watch("vmsnapshots", object_path(API, "virtualmachinesnapshots"),
                                       self._snapshot_changed)
        self.contents = manager.watch("vmsnapshotcontents",
                                      object_path(API, "virtualmachinesnapshotcontents"), self._content_changed)
        self.vms = manager.watch("vms-snapshot", object_path("kubevirt.io/v1", "virtualmachines"),
                                 self._vm_changed)
        self.vmis = manager.watch("vmis-snapshot", object_path("kubevirt.io/v1", "virtualmachineinstances"),
                                  self._vmi_changed)
        # virtinformers.go GetVirtualMachineSnapshotInformerIndexers / ...ContentInformerIndexers
        self.snapshots.add_index("vm", snapshot_source_vm)
        self.contents.add_index("volumeSnapshot", lambda content: [
            b["volumeSnapshotName"] for b in (content.get("spec") or {}).get("volumeBackups") or []
            if b.get("volumeSnapshotName")])
        self.vms.add_index("claim", lambda vm: list(vm_claims(vm).values()))
        self.volume_snapshots.add_handler(self._volume_snapshot_changed)
        self.snapshot_classes.add_handler(lambda obj: [self.queue.add(("VMSnapshotStatus",) + k)
                                                       for k in self._vm_keys()])
        self.pvcs.add_handler(self._claim_changed)
        self.dvs.add_handler(self._claim_changed)
        manager.reconciler("VMSnapshot", self.reconcile_snapshot)
        manager.reconciler("VMSnapshotContent", self.reconcile_content)
        manager.reconciler("VMSnapshotStatus", self.reconcile_vm_status)

    def _vm_keys(self):
        return [(vm["metadata"]["namespace"], vm["metadata"]["name"]) for vm in self.vms.list()]

    def _snapshots_of(self, namespace: str, vm_name: str) -> List[JSON]:
        """The "vm" index of the VMSnapshot informer."""
        return self.snapshots.by_index("vm", namespace, vm_name)

    def _snapshot_changed(self, obj: JSON) -> None:
        self.queue.add(("VMSnapshot", obj["metadata"]["namespace"], obj["metadata"]["name"]))

    def _content_changed(self, obj: JSON) -> None:
        namespace = obj["metadata"]["namespace"]
        owner = (obj.get("spec") or {}).get("virtualMachineSnapshotName")
        if owner:
            self.queue.add(("VMSnapshot", namespace, owner))
        self.queue.add(("VMSnapshotContent", namespace, obj["metadata"]["name"]))

    def _vm_changed(self, obj: JSON) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for snap in self._snapshots_of(namespace, name):
            self.queue.add(("VMSnapshot", namespace, snap["metadata"]["name"]))
        self.queue.add(("VMSnapshotStatus", namespace, name))

    def _vmi_changed(self, obj: JSON) -> None:
        namespace, name = obj["metadata"]["namespace"], obj["metadata"]["name"]
        for snap in self._snapshots_of(namespace, name):
            self.queue.add(("VMSnapshot", namespace, snap["metadata"]["name"]))

    def _volume_snapshot_changed(self, obj: JSON) -> None:
        """handleVolumeSnapshot: the contents whose volume backups name it (the "volumeSnapshot" index)."""
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        for content in self.contents.by_index("volumeSnapshot", namespace, name):
            self.queue.add(("VMSnapshotContent", namespace, content["metadata"]["name"]))

    def _claim_changed(self, obj: JSON) -> None:
        """handleDV / handlePVC: VMs using the claim (the "dv" and "pvc" indexes) get their volume statuses."""
        namespace, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
        for vm in self.vms.by_index("claim", namespace, name):
            self.queue.add(("VMSnapshotStatus", namespace, vm["metadata"]["name"]))

    # -- helpers ----------------------------------------------------------------------------------------

    def _source(self, snap: JSON) -> Optional[Source]:
        """getSnapshotSource: only kind VirtualMachine."""
        source = (snap.get("spec") or {}).get("source") or {}
        if source.get("kind") != "VirtualMachine":
            raise RuntimeError(f"unknown source {source}")
        vm = self.vms.get(snap["metadata"]["namespace"], source.get("name", ""))
        return Source(self, copy.deepcopy(vm), snap) if vm is not None else None

    def _content(self, snap: JSON) -> Optional[JSON]:
        return self.contents.get(snap["metadata"]["namespace"], content_name(snap))

    def _snapshot_path(self, snap: JSON) -> str:
        return object_path(API, "virtualmachinesnapshots", snap["metadata"]["name"], snap["metadata"]["namespace"])

    def _finalizer(self, path: str, obj: JSON, finalizer: str, add: bool) -> JSON:
        """generateFinalizerPatch: test + replace of metadata.finalizers."""
        finalizers = obj["metadata"].get("finalizers") or []
        if (finalizer in finalizers) == add:
            return obj
        wanted = finalizers + [finalizer] if add else [f for f in finalizers if f != finalizer]
        ops = [{"op": "test", "path": "/metadata/finalizers", "value": finalizers}] if finalizers else \
            [{"op": "replace", "path": "/metadata/resourceVersion", "value": obj["metadata"]["resourceVersion"]}]
        return self.kube.json_patch(path, ops + [{"op": "add", "path": "/metadata/finalizers", "value": wanted}])

    def snapshot_class_for(self, storage_class: str) -> Optional[str]:
        """snapshot.go getVolumeSnapshotClassName ("" -> None; an ambiguous choice raises)."""
        sc = self.classes.get("", storage_class)
        if sc is None:
            return None
        profile = self.profiles.get("", storage_class)
        wanted = _status(profile).get("snapshotClass")
        if wanted:
            return wanted if self.snapshot_classes.get("", wanted) is not None else None
        matches = [c for c in self.snapshot_classes.list() if c.get("driver") == sc.get("provisioner")]
        if not matches:
            return None
        if len(matches) == 1:
            return matches[0]["metadata"]["name"]
        for match in matches:
            if DEFAULT_CLASS_ANNOTATION in (match["metadata"].get("annotations") or {}):
                return match["metadata"]["name"]
        raise RuntimeError(f"{len(matches)} matching VolumeSnapshotClasses for {storage_class}")

    # -- VirtualMachineSnapshot ---------------------------------------------------------------------------

    def reconcile_snapshot(self, namespace: str, name: str) -> Optional[float]:
        """snapshot.go updateVMSnapshot."""
        snap = self.snapshots.get(namespace, name)
        if snap is None:
            return None
        snap = copy.deepcopy(snap)
        source = self._source(snap)
        content = self._content(snap)
        ending = terminating(snap)
        path = self._snapshot_path(snap)
        if not ending:
            snap = self._finalizer(path, snap, SNAPSHOT_FINALIZER, True)
        retry = 0.0
        can_remove_finalizer = True
        if snap.get("status") is not None and source is not None:
            if progressing(snap) and not ending:
                if not source.locked:
                    locked = source.lock()
                    log.debug("attempt to lock source returned %s", locked)
                    retry = SNAPSHOT_RETRY_INTERVAL
                elif content is None:
                    self._create_content(snap, source)
                can_remove_finalizer = False
            else:
                # canUnlockSource
                if not progressing(snap) or (ending and (content is None or not should_delete_content(snap, content))):
                    source.unlock()
                can_remove_finalizer = not source.locked
        if ending and content is not None and should_delete_content(snap, content):
            try:
                self.kube.delete(object_path(API, "virtualmachinesnapshotcontents", content["metadata"]["name"],
                                             namespace))
            except KubeError as err:
                if err.status != 404:
                    raise
        snap = self._update_status(snap, source, path)
        if deleting(snap) and can_remove_finalizer:
            self._finalizer(path, snap, SNAPSHOT_FINALIZER, False)
        if retry:
            return retry
        wait = time_until_deadline(snap)
        return wait if wait > 0 and progressing(snap) else None

    def _create_content(self, snap: JSON, source: Source) -> None:
        """snapshot.go createContent."""
        namespace = snap["metadata"]["namespace"]
        backups = []
        for volume, claim in vm_claims(source.vm).items():
            pvc = self._snapshot_pvc(namespace, claim)
            if pvc is None:
                log.warning("No snapshot PVC for %s/%s", namespace, claim)
                continue
            backups.append({"volumeName": volume,
                            "persistentVolumeClaim": {"metadata": simplified_meta(pvc["metadata"]),
                                                      "spec": copy.deepcopy(pvc["spec"])},
                            "volumeSnapshotName": f"vmsnapshot-{snap['metadata']['uid']}-volume-{volume}"})
        content = {"apiVersion": API, "kind": "VirtualMachineSnapshotContent",
                   "metadata": {"name": content_name(snap), "namespace": namespace,
                                "finalizers": [CONTENT_FINALIZER]},
                   "spec": {"virtualMachineSnapshotName": snap["metadata"]["name"], "source": source.spec(),
                            "volumeBackups": backups}}
        try:
            self.kube.create(object_path(API, "virtualmachinesnapshotcontents", namespace=namespace), content)
        except KubeError as err:
            if err.status != 409:
                raise
        emit_event(self.kube, snap, "VirtualMachineSnapshot", API, "Normal", CONTENT_CREATE_EVENT,
                   f"Successfully created VirtualMachineSnapshotContent {content['metadata']['name']}", COMPONENT)

    def _snapshot_pvc(self, namespace: str, claim: str) -> Optional[JSON]:
        """snapshot.go getSnapshotPVC: Bound, with a storage class that has a VolumeSnapshotClass."""
        pvc = self.pvcs.get(namespace, claim)
        if pvc is None or _status(pvc).get("phase") != "Bound":
            return None
        class_name = (pvc.get("spec") or {}).get("storageClassName")
        if not class_name or not self.snapshot_class_for(class_name):
            return None
        return copy.deepcopy(pvc)

    def _update_status(self, snap: JSON, source: Optional[Source], path: str) -> JSON:
        """snapshot.go updateSnapshotStatus."""
        status = copy.deepcopy(snap.get("status"))
        if status is None:
            status = {"readyToUse": False}
        content = self._content(snap)
        if source is not None:
            status["sourceUID"] = source.vm["metadata"]["uid"]
        if content is not None and content.get("status") is not None:
            cstatus = content["status"]
            status["virtualMachineSnapshotContentName"] = content["metadata"]["name"]
            for key in ("creationTime", "readyToUse", "error"):
                if cstatus.get(key) is not None:
                    status[key] = cstatus[key]
                else:
                    status.pop(key, None)
        conditions = status.setdefault("conditions", [])
        view = {"metadata": snap["metadata"], "spec": snap.get("spec") or {}, "status": status}
        if deadline_exceeded(view):
            status["phase"] = "Failed"
            update_condition(conditions, new_condition("Failure", "True", DEADLINE_EXCEEDED))
            update_condition(conditions, new_condition("Progressing", "False", "Operation failed"))
        elif succeeded(view) or status.get("creationTime"):
            status["phase"] = "Succeeded"
            update_condition(conditions, new_condition("Progressing", "False", "Operation complete"))
            self._snapshot_volumes(status, content)
        else:
            status["phase"] = "InProgress"
            if source is not None:
                update_condition(conditions, new_condition("Progressing", "True" if source.locked else "False",
                                                           source.lock_msg))
                self._indications(status, source)
            else:
                update_condition(conditions, new_condition("Progressing", "False", "Source does not exist"))
            if deleting(snap):
                status["phase"] = "Deleting"
                update_condition(conditions, new_condition("Progressing", "False", "VM snapshot is deleting"))
        if status.get("readyToUse"):
            update_condition(conditions, new_condition("Ready", "True", "Ready"))
        else:
            update_condition(conditions, new_condition("Ready", "False", "Not ready"))
        if status.get("error") is not None:
            update_condition(conditions, new_condition("Progressing", "False", "In error state"))
        if status == snap.get("status"):
            return snap
        return self.kube.json_patch(path + "/status", [
            {"op": "replace", "path": "/metadata/resourceVersion", "value": snap["metadata"]["resourceVersion"]},
            {"op": "add", "path": "/status", "value": status}])

    @staticmethod
    def _indications(status: JSON, source: Source) -> None:
        """updateSnapshotSourceIndications."""
        if not source.online:
            status.pop("indications", None)
            status.pop("sourceIndications", None)
            return
        indications = set(status.get("indications") or []) | {"Online"}
        if source.paused:
            indications.add("Paused")
        elif source.guest_agent:
            indications.add("GuestAgent")
        else:
            indications.add("NoGuestAgent")
        ordered = sorted(indications)
        status["indications"] = ordered
        status["sourceIndications"] = [{"indication": i, "message": INDICATION_MESSAGES.get(i, "Unknown indication")}
                                       for i in ordered]

    def _snapshot_volumes(self, status: JSON, content: Optional[JSON]) -> None:
        """updateSnapshotSnapshotableVolumes."""
        vm = (((content or {}).get("spec") or {}).get("source") or {}).get("virtualMachine")
        if not vm or not (vm.get("spec") or {}).get("template"):
            return
        backups = {b["volumeName"] for b in content["spec"].get("volumeBackups") or []}
        included, excluded, partial = [], [], False
        for volume in ((vm["spec"]["template"].get("spec") or {}).get("volumes") or []):
            if volume["name"] in backups:
                included.append(volume["name"])
            else:
                excluded.append(volume["name"])
                partial = partial or any(volume.get(k) for k in ("persistentVolumeClaim", "dataVolume", "memoryDump"))
        lists = {}
        if included:
            lists["includedVolumes"] = included
        if excluded:
            lists["excludedVolumes"] = excluded
        status["snapshotVolumes"] = lists
        if partial:
            if not any(i.get("indication") == "PartialSnapshot" for i in status.get("sourceIndications") or []):
                status.setdefault("sourceIndications", []).append(
                    {"indication": "PartialSnapshot", "message": INDICATION_MESSAGES["PartialSnapshot"]})
            if "PartialSnapshot" not in (status.get("indications") or []):
                status.setdefault("indications", []).append("PartialSnapshot")

    # -- VirtualMachineSnapshotContent --------------------------------------------------------------------

    def reconcile_content(self, namespace: str, name: str) -> Optional[float]:
        """snapshot.go updateVMSnapshotContent."""
        content = self.contents.get(namespace, name)
        if content is None:
            return None
        content = copy.deepcopy(content)
        path = object_path(API, "virtualmachinesnapshotcontents", name, namespace)
        snap_name = (content.get("spec") or {}).get("virtualMachineSnapshotName")
        snap = copy.deepcopy(self.snapshots.get(namespace, snap_name)) if snap_name else None
        if snap is None or terminating(snap):
            if snap is not None:
                source = self._source(snap)
                if source is not None:
                    try:
                        source.unfreeze()
                    except KubeError as err:
                        log.warning("Failed to unfreeze source for snapshot content %s/%s: %s", namespace, name, err)
            content = self._finalizer(path, content, CONTENT_FINALIZER, False)
            if snap is not None and should_delete_content(snap, content):
                return None
        if content["metadata"].get("deletionTimestamp"):
            return CONTENT_DELETION_INTERVAL
        status = copy.deepcopy(content.get("status") or {})
        created = bool(status.get("creationTime"))
        statuses, deleted, skipped = [], [], []
        source: Optional[Source] = None
        froze = False
        for backup in content["spec"].get("volumeBackups") or []:
            vs_name = backup.get("volumeSnapshotName")
            if not vs_name:
                continue
            vs = self.volume_snapshots.get(namespace, vs_name)
            if vs is None:
                if created:
                    emit_event(self.kube, content, "VirtualMachineSnapshotContent", API, "Warning",
                               VOLUME_SNAPSHOT_MISSING_EVENT, f"VolumeSnapshot {vs_name} no longer exists", COMPONENT)
                    deleted.append(vs_name)
                    continue
                if snap is None or deleting(snap):
                    skipped.append(vs_name)
                    continue
                if not froze:
                    source = self._source(snap)
                    if source is None:
                        raise RuntimeError("unable to get snapshot source")
                    source.freeze()
                    froze = True
                vs = self._create_volume_snapshot(content, backup)
                if vs is None:
                    return 2.0
            entry: JSON = {"volumeSnapshotName": vs["metadata"]["name"]}
            vstatus = vs.get("status") or {}
            for key in ("creationTime", "readyToUse"):
                if vstatus.get(key) is not None:
                    entry[key] = vstatus[key]
            if vstatus.get("error"):
                entry["error"] = {k: v for k, v in vstatus["error"].items() if k in ("message", "time")}
            statuses.append(entry)
        is_created, ready, message = True, True, ""
        if deleted:
            is_created, ready = False, False
            message = f"VolumeSnapshots ({','.join(deleted)}) missing"
        elif skipped:
            is_created, ready = False, False
            message = f"VolumeSnapshots ({','.join(skipped)}) skipped because vm snapshot is deleted"
        else:
            for entry in statuses:
                if not entry.get("creationTime"):
                    is_created = False
                if not entry.get("readyToUse"):
                    ready = False
                if (entry.get("error") or {}).get("message"):
                    message = f"VolumeSnapshot {entry['volumeSnapshotName']} error: {entry['error']['message']}"
                    break
        if is_created and not status.get("creationTime"):
            status["creationTime"] = now()
            if snap is not None:
                src = source or self._source(snap)
                if src is not None:
                    src.unfreeze()
        if message and not ready:
            if (status.get("error") or {}).get("message") != message:
                status["error"] = {"time": now(), "message": message}
        elif not message:
            status.pop("error", None)
        status["readyToUse"] = ready
        if statuses:
            status["volumeSnapshotStatus"] = statuses
        else:
            status.pop("volumeSnapshotStatus", None)
        if status != (content.get("status") or {}):
            self.kube.json_patch(path + "/status", [
                {"op": "replace", "path": "/metadata/resourceVersion", "value": content["metadata"]["resourceVersion"]},
                {"op": "add", "path": "/status", "value": status}])
        return None

    def _create_volume_snapshot(self, content: JSON, backup: JSON) -> Optional[JSON]:
        """snapshot.go createVolumeSnapshot."""
        namespace = content["metadata"]["namespace"]
        claim = backup["persistentVolumeClaim"]
        class_name = (claim.get("spec") or {}).get("storageClassName")
        if not class_name:
            raise RuntimeError(f"{namespace}/{claim['metadata']['name']} VolumeSnapshot requested but no storage class")
        vs_class = self.snapshot_class_for(class_name)
        if not vs_class:
            log.warning("Couldn't find VolumeSnapshotClass for %s", class_name)
            return None
        vm_meta = content["spec"]["source"]["virtualMachine"]["metadata"]
        body = {"apiVersion": VS_API, "kind": "VolumeSnapshot",
                "metadata": {"name": backup["volumeSnapshotName"], "namespace": namespace,
                             "labels": {SOURCE_NAME_LABEL: vm_meta["name"],
                                        SOURCE_NAMESPACE_LABEL: vm_meta["namespace"]},
                             "ownerReferences": [{"apiVersion": API, "kind": "VirtualMachineSnapshotContent",
                                                  "name": content["metadata"]["name"],
                                                  "uid": content["metadata"]["uid"],
                                                  "controller": True, "blockOwnerDeletion": True}]},
                "spec": {"source": {"persistentVolumeClaimName": claim["metadata"]["name"]},
                         "volumeSnapshotClassName": vs_class}}
        # A 409 (our cache had not seen the one made by the previous round yet) is returned as the error it is: the
        # reconcile is retried, by then from a cache that has it, and no second event is recorded
        created = self.kube.create(object_path(VS_API, "volumesnapshots", namespace=namespace), body)
        emit_event(self.kube, content, "VirtualMachineSnapshotContent", API, "Normal", VOLUME_SNAPSHOT_CREATE_EVENT,
                   f"Successfully created VolumeSnapshot {body['metadata']['name']}", COMPONENT)
        return created

    # -- VM status.volumeSnapshotStatuses ---------------------------------------------------------------

    def reconcile_vm_status(self, namespace: str, name: str) -> Optional[float]:
        """snapshot.go updateVolumeSnapshotStatuses / getVolumeSnapshotStatus."""
        vm = self.vms.get(namespace, name)
        if vm is None or vm["metadata"].get("deletionTimestamp"):
            return None
        statuses = []
        for volume in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []:
            statuses.append(self._volume_status(vm, volume))
        current = _status(vm).get("volumeSnapshotStatuses")
        if (current or []) == statuses:
            return None
        path = object_path("kubevirt.io/v1", "virtualmachines", name, namespace)
        self.kube.merge_patch(path + "/status", {"metadata": {"resourceVersion": vm["metadata"]["resourceVersion"]},
                                                 "status": {"volumeSnapshotStatuses": statuses or None}})
        return None

    def _volume_status(self, vm: JSON, volume: JSON) -> JSON:
        name = volume["name"]
        if not any(volume.get(k) for k in ("persistentVolumeClaim", "dataVolume", "memoryDump")):
            return {"name": name, "enabled": False,
                    "reason": f"Snapshot is not supported for this volumeSource type [{name}]"}
        try:
            storage_class = self._volume_storage_class(vm["metadata"]["namespace"], vm, volume)
            snap_class = self.snapshot_class_for(storage_class) if storage_class else None
        except RuntimeError as err:
            return {"name": name, "enabled": False, "reason": str(err)}
        if not snap_class:
            return {"name": name, "enabled": False,
                    "reason": "No VolumeSnapshotClass: Volume snapshots are not configured for this StorageClass "
                              f"[{storage_class}] [{name}]"}
        return {"name": name, "enabled": True}

    def _pvc_class(self, namespace: str, claim: str) -> str:
        pvc = self.pvcs.get(namespace, claim)
        if pvc is None:
            raise RuntimeError("PVC not found")
        return (pvc.get("spec") or {}).get("storageClassName") or ""

    def _volume_storage_class(self, namespace: str, vm: JSON, volume: JSON) -> str:
        """getVolumeStorageClass / getStorageClassNameForDV."""
        if volume.get("persistentVolumeClaim"):
            return self._pvc_class(namespace, volume["persistentVolumeClaim"]["claimName"])
        if volume.get("memoryDump"):
            return self._pvc_class(namespace, volume["memoryDump"]["claimName"])
        dv_name = volume["dataVolume"]["name"]
        dv = self.dvs.get(namespace, dv_name)
        if dv is None:
            return self._pvc_class(namespace, dv_name)
        cls = ((dv.get("spec") or {}).get("pvc") or {}).get("storageClassName")
        if cls:
            return cls
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            if template["metadata"]["name"] == dv_name and ((template.get("spec") or {}).get("pvc") or {}).get(
                    "storageClassName") is not None:
                return template["spec"]["pvc"]["storageClassName"]
        return self._pvc_class(namespace, dv_name)


# -- virt-api: pkg/storage/admitters/vmsnapshot.go --------------------------------------------------------

def snapshot_enabled(config: JSON) -> bool:
    """virt-config SnapshotEnabled: featuregate.IsEnabled of SnapshotGate, Beta in v1.9 (featuregate/active.go),
    so on unless listed in disabledFeatureGates."""
    dev = config.get("developerConfiguration") or {}
    if "Snapshot" in (dev.get("featureGates") or []):
        return True
    return "Snapshot" not in (dev.get("disabledFeatureGates") or [])


def admit_vm_snapshot(request: JSON, config: JSON) -> JSON:
    """VMSnapshotAdmitter.Admit on components/webhooks.go VMSnapshotValidatePath."""
    resource = request.get("resource") or {}
    if resource.get("group") != GROUP or resource.get("resource") != "virtualmachinesnapshots":
        return admission.error_response(f"unexpected resource {resource}")
    operation = request.get("operation")
    if operation == "CREATE" and not snapshot_enabled(config):
        return admission.error_response("snapshot feature gate not enabled")
    spec = (request.get("object") or {}).get("spec") or {}
    causes: List[JSON] = []
    if operation == "CREATE":
        source = spec.get("source") or {}
        if source.get("apiGroup") is None:
            causes = [{"reason": "FieldValueNotFound", "message": "missing apiGroup", "field": "spec.source.apiGroup"}]
        elif source["apiGroup"] == "kubevirt.io":
            if source.get("kind") != "VirtualMachine":
                causes = [{"reason": "FieldValueInvalid", "message": "invalid kind", "field": "spec.source.kind"}]
        else:
            causes = [{"reason": "FieldValueInvalid", "message": "invalid apiGroup", "field": "spec.source.apiGroup"}]
    elif operation == "UPDATE":
        if ((request.get("oldObject") or {}).get("spec") or {}) != spec:
            causes = [{"reason": "FieldValueInvalid", "message": "spec in immutable after creation", "field": "spec"}]
    else:
        return admission.error_response(f"unexpected operation {operation}")
    if causes:
        return admission.denied(causes)
    return {"allowed": True}


def register(manager: Manager, kube: Kube, parts: Dict[str, object]) -> VMSnapshots:
    return VMSnapshots(manager, kube, parts)
