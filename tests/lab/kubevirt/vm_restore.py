"""virt-controller's VirtualMachineRestore controller and virt-api's restore admitter, at KubeVirt v1.9.0.

Controller: pkg/storage/snapshot/restore.go (VMRestoreController.updateVMRestore and the vmRestoreTarget
methods), handlers from restore_base.go. In order, as updateVMRestore does it:
* a new restore gets status {complete: false} with conditions Progressing True / Ready False
  "Initializing VirtualMachineRestore";
* getTarget: only spec.target.kind VirtualMachine ("unknown source ..." otherwise); the target VM may not
  exist yet (restore to a new VM);
* an existing target owns the restore (ownerReferences, Own) and the finalizer
  snapshot.kubevirt.io/vmrestore-protection is added (Update);
* Ready: the target VM has no VMI. Otherwise handleVMRestoreTargetNotReady by spec.targetReadinessPolicy:
  WaitGracePeriod (the default: waits, then fails after DefaultGracePeriod = 5m from creation with
  restoreGracePeriodExceededError), StopTarget (stopTarget: the stop subresource on the VM, event
  RestoreTargetNotReady), FailImmediate (Failure condition "Restore target VMI must be powered off before
  restore operation"), WaitEventually (waits);
* getVMSnapshot: the snapshot must exist ("VMSnapshot ns/name does not exist"), not be failed, be ready
  ("VMSnapshot ns/name not ready") and name its content;
* a target that exists, is not yet restored by this restore and is not the snapshot's source (uid) is
  refused: errorRestoreToExistingTarget;
* UpdateRestoreInProgress: the VM's status.restoreInProgress = the restore's name (another restore's name
  there is an error "vm restore X in progress" that updateVMRestore returns as it is: no condition, no
  event, only a retry);
* getSnapshotContent (read by reconcileVolumeRestores and Reconcile, so after UpdateRestoreInProgress):
  content readyToUse;
* reconcileVolumeRestores: status.restores, one per content volumeBackup (memory dump volumes excepted),
  PVC named restore-<restore uid>-<volume> (RandomizeNames; VolumeRestorePolicy InPlace keeps the claim
  name, PrefixTargetName <target>-<volume>; volumeRestoreOverrides restoreName wins); each missing PVC is
  created from its VolumeSnapshot (CreateRestorePVCDef: source claim's labels/annotations without
  pv.kubernetes.io, volume.beta.kubernetes.io, cdi.kubevirt.io (except storage.contentType), ...;
  dataSource and dataSourceRef the VolumeSnapshot; size the larger of the claim's and restoreSize; labels
  restore.kubevirt.io/source-vm-name|namespace, annotations restore.kubevirt.io/name and
  restore.kubevirt.io/lastRestoreUID <restore>-<uid>); owned by the target VM when it exists, else
  annotated restore.kubevirt.io/owned-by-vm when the source claim was the source VM's; a claim of a DataVolume
  gets cdi.kubevirt.io/storage.populatedFor instead. Conditions "Creating new PVCs" / "Waiting for new PVCs"
  while a claim was created or a claim of an Immediate class is Pending;
* Reconcile (vmRestoreTarget.Reconcile, skipped once the VM carries this restore's lastRestoreUID):
  updateVMRestoreRestores (a volume of a dataVolumeTemplate: dataVolumeName, and the claim annotated
  populatedFor it); generateRestoredVMSpec (the snapshot's VM spec, volumes pointing at the restored
  claims, templated DataVolumes renamed, a DataVolume volume without template turned into a PVC volume;
  a new VM is Halted (or running: false) with the snapshot's labels and annotations; an existing VM keeps
  its run strategy; annotation restore.kubevirt.io/lastRestoreUID; the legacy firmware UUID when the
  name is the snapshot's VM's); reconcileDataVolumes (creates each templated DataVolume with annotations
  restore.kubevirt.io/name and cdi.kubevirt.io/storage.prePopulated "true", waits until it is Succeeded,
  WaitForFirstConsumer or PendingPopulation; status.deletedDataVolumes: the existing VM's templates the
  restored spec drops; the DataVolume made by GenerateDataVolumeFromTemplate, pkg/storage/types/dv.go: annotation
  cdi.kubevirt.io/allowClaimAdoption "true", the VM template's priorityClassName, a DataSource sourceRef
  resolved into spec.source); reconcileSpec: spec.patches applied to a new VM (JSON patch, evanphx json-patch v4
  semantics), then Create or Update; updateRestorePVCOwnership. Conditions "Updating target spec" /
  "Waiting for target update";
* deleteObsoleteVolumes: the DataVolumes of status.deletedDataVolumes are deleted;
* UpdateDoneRestore: status.restoreInProgress cleared; event VirtualMachineRestoreComplete
  "Successfully completed VirtualMachineRestore <name>"; status complete true, restoreTime, conditions
  Progressing False / Ready True "Operation complete".
* Errors (doUpdateError): Progressing False / Ready False with the message, event VirtualMachineRestoreError,
  retried; failures (doUpdateErrorWithFailure) add a Failure condition and end the restore.
* Deleting: handleVMRestoreDeletion clears the VM's restoreInProgress and removes the finalizer.

Admitter: pkg/storage/admitters/vmrestore.go VMRestoreAdmitter.Admit (path VMRestoreValidatePath
/virtualmachinerestores-validate, webhook virtualmachinerestore-validator.snapshot.kubevirt.io, CREATE and
UPDATE): feature gate Snapshot; spec.target.apiGroup missing / invalid, kind invalid; patches only under
/spec/, /metadata/labels/, /metadata/annotations/; volumeRestoreOverrides; volumeRestorePolicy;
volumeOwnershipPolicy (Vm or None); another restore of the same target not complete, a failed one included
("VirtualMachineRestore %q in progress"); spec immutable on update ("spec in immutable after creation"). When
the snapshot does not exist validateTargetVM returns no causes, dropping those of the patches.

Not mirrored: instancetype/preference ControllerRevisions (restoreInstancetypeControllerRevisions), backend
storage PVCs (persistent TPM/EFI), memory dump volumes beyond skipping them, the VM status admitter's
validateRestoreStatus (pkg/storage/admitters/vm-storage-status.go: no runStrategy change while
restoreInProgress). The RestoreTargetNotReady event of a waiting restore is recorded once per wait reason,
not on every resync as KubeVirt's rate-limited queue does. Restores are woken by their VM, their annotated
PVCs and DataVolumes (restore_base.go handlers); KubeVirt's "vm" index is a scan of the restores here.
"""

import copy
import json
import logging
import uuid
from datetime import datetime, timezone
from typing import Any, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import admission
from .runtime import Manager
from .storage import record_event, storage_bytes

log = logging.getLogger("standin.vm-restore")

SNAPSHOT_API = "snapshot.kubevirt.io/v1beta1"
PLURAL = "virtualmachinerestores"
KIND = "VirtualMachineRestore"
VS_API = "snapshot.storage.k8s.io/v1"
DV_API = "cdi.kubevirt.io/v1beta1"
VM_API = "kubevirt.io/v1"
COMPONENT = "restore-controller"

# restore.go constants
RESTORE_NAME_ANNOTATION = "restore.kubevirt.io/name"
FINALIZER = "snapshot.kubevirt.io/vmrestore-protection"
POPULATED_FOR = "cdi.kubevirt.io/storage.populatedFor"
CONTENT_TYPE = "cdi.kubevirt.io/storage.contentType"
PRE_POPULATED = "cdi.kubevirt.io/storage.prePopulated"  # cdiv1.AnnPrePopulated
ALLOW_CLAIM_ADOPTION = "cdi.kubevirt.io/allowClaimAdoption"  # pkg/storage/types/pvc.go allowClaimAdoptionAnnotation
LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"
SOURCE_NAME_LABEL = "restore.kubevirt.io/source-vm-name"
SOURCE_NAMESPACE_LABEL = "restore.kubevirt.io/source-vm-namespace"
OWNED_BY_VM = "restore.kubevirt.io/owned-by-vm"
COMPLETE_EVENT = "VirtualMachineRestoreComplete"
ERROR_EVENT = "VirtualMachineRestoreError"
NOT_READY_EVENT = "RestoreTargetNotReady"
DV_CREATE_ERROR_EVENT = "RestoreDataVolumeCreateError"
FAILED_EVENT = "Operation failed"
WAIT_EVENTUALLY = "Waiting for target VM to be powered off. Please stop the restore target to proceed with restore"
STOP_TARGET = "Automatically stopping restore target for restore operation"
VMI_EXISTS = "Restore target VMI still exists, please stop the restore target to proceed with restore"
TARGET_NOT_READY_FAILURE = "Restore target VMI must be powered off before restore operation"
RESTORE_TO_EXISTING = "restore source and restore target are different but restore target already exists"
GRACE_PERIOD = 5 * 60  # snapshotv1.DefaultGracePeriod
GRACE_EXCEEDED = ("Restore target failed to be ready within 5m0s. Please power off the target VM before "
                  "attempting restore")
WAIT_GRACE = ("Waiting for target VM to be powered off. Please stop the restore target to proceed with restore, "
              "or the operation will fail after 5m0s")
ANNOTATIONS_TO_DELETE = ("pv.kubernetes.io", "volume.beta.kubernetes.io", "cdi.kubevirt.io", "volume.kubernetes.io",
                         "k8s.io/CloneRequest", "k8s.io/CloneOf")
BACKEND_PVC_LABEL = "persistent-state-for"  # backendstorage.PVCPrefix, filtered out of restored labels
FIRMWARE_UUID_NS = uuid.UUID("6a1a24a1-4061-4607-8bf4-a3963d0c5895")  # vm/firmware.go magicUUID


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _seconds_since(stamp: str) -> float:
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    except (TypeError, ValueError):
        return 0.0
    return (datetime.now(timezone.utc) - then).total_seconds()


def legacy_firmware_uuid(name: str) -> str:
    """vm/firmware.go CalculateLegacyUUID: uuid.NewSHA1(magicUUID, name)."""
    return str(uuid.uuid5(FIRMWARE_UUID_NS, name))


# -- util.go conditions ---------------------------------------------------------------------------

def new_condition(kind: str, status: str, reason: str) -> JSON:
    return {"type": kind, "status": status, "reason": reason, "lastTransitionTime": now()}


def update_condition(conditions: List[JSON], cond: JSON) -> List[JSON]:
    """util.go updateCondition: replaced when status or reason differ."""
    out = [dict(c) for c in conditions]
    for i, existing in enumerate(out):
        if existing.get("type") == cond["type"]:
            if existing.get("status") != cond["status"] or existing.get("reason") != cond["reason"]:
                out[i] = cond
            return out
    out.append(cond)
    return out


def set_conditions(status: JSON, progressing: str, ready: str, reason: str) -> None:
    conditions = status.get("conditions") or []
    conditions = update_condition(conditions, new_condition("Progressing", progressing, reason))
    conditions = update_condition(conditions, new_condition("Ready", ready, reason))
    status["conditions"] = conditions


def has_condition(obj: Optional[JSON], kind: str, status: Optional[str] = None) -> bool:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and (status is None or cond.get("status") == status):
            return True
    return False


def restore_failed(restore: JSON) -> bool:
    """vmRestoreFailed: a Failure condition of any status."""
    return has_condition(restore, "Failure")


def restore_completed(restore: JSON) -> bool:
    return bool((restore.get("status") or {}).get("complete"))


def restore_progressing(restore: JSON) -> bool:
    """VmRestoreProgressing."""
    return not restore_completed(restore) and not restore_failed(restore)


def snapshot_ready(snapshot: JSON) -> bool:
    """snapshot.go VmSnapshotReady: status.readyToUse."""
    return bool((snapshot.get("status") or {}).get("readyToUse"))


def snapshot_failed(snapshot: JSON) -> bool:
    """snapshot.go vmSnapshotFailed: phase Failed."""
    return (snapshot.get("status") or {}).get("phase") == "Failed"


# -- json patch (gopkg.in/evanphx/json-patch.v4 Apply, the subset restore patches use) ------------------

class PatchError(ValueError):
    pass


def _unescape(token: str) -> str:
    return token.replace("~1", "/").replace("~0", "~")


def escape_pointer(key: str) -> str:
    """patch.EscapeJSONPointer."""
    return key.replace("~", "~0").replace("/", "~1")


def _parent(doc: Any, path: str) -> Tuple[Any, str]:
    if not path.startswith("/"):
        raise PatchError(f"invalid path {path!r}")
    tokens = [_unescape(t) for t in path[1:].split("/")]
    node = doc
    for token in tokens[:-1]:
        if isinstance(node, dict):
            if token not in node:
                raise PatchError(f"doc is missing path: {path}")
            node = node[token]
        elif isinstance(node, list):
            try:
                node = node[int(token)]
            except (ValueError, IndexError):
                raise PatchError(f"doc is missing path: {path}") from None
        else:
            raise PatchError(f"doc is missing path: {path}")
    return node, tokens[-1]


def apply_json_patch(doc: JSON, ops: List[JSON]) -> JSON:
    """json-patch v4 semantics: `replace` of a missing object key sets it (partialDoc.get never fails);
    `remove` of a missing key fails ("Unable to remove nonexistent key")."""
    doc = copy.deepcopy(doc)
    for op in ops:
        kind, path = op.get("op"), op.get("path", "")
        parent, key = _parent(doc, path)
        if kind in ("add", "replace"):
            value = copy.deepcopy(op.get("value"))
            if isinstance(parent, dict):
                parent[key] = value
            elif isinstance(parent, list):
                if key == "-" and kind == "add":
                    parent.append(value)
                    continue
                try:
                    index = int(key)
                except ValueError:
                    raise PatchError(f"invalid index {key!r} in {path}") from None
                if kind == "add":
                    if index > len(parent):
                        raise PatchError(f"add operation does not apply: index out of range: {path}")
                    parent.insert(index, value)
                else:
                    if index >= len(parent):
                        raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
                    parent[index] = value
            else:
                raise PatchError(f"{kind} operation does not apply: doc is missing path: {path}")
        elif kind == "remove":
            if isinstance(parent, dict):
                if key not in parent:
                    raise PatchError(f"Unable to remove nonexistent key: {key}: missing value")
                del parent[key]
            elif isinstance(parent, list):
                try:
                    del parent[int(key)]
                except (ValueError, IndexError):
                    raise PatchError(f"Unable to remove nonexistent key: {key}: missing value") from None
            else:
                raise PatchError(f"remove operation does not apply: doc is missing path: {path}")
        elif kind == "test":
            node = parent.get(key) if isinstance(parent, dict) else None
            if node != op.get("value"):
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"Unexpected kind: {kind}")
    return doc


def patch_vm(vm: JSON, patches: List[str]) -> JSON:
    """restore.go patchVM: the patches joined into one JSON patch and applied to the marshalled VM."""
    if not patches:
        return vm
    text = "[\n" + ",\n".join(patches) + "\n]"
    try:
        ops = json.loads(text)
    except json.JSONDecodeError as err:
        raise PatchError(f"cannot decode vm patches {text}: {err}") from None
    try:
        return apply_json_patch(vm, ops)
    except PatchError as err:
        raise PatchError(f"failed to apply patch for VM {text}: {err}") from None


# -- naming ---------------------------------------------------------------------------------------------

def _fnv32a(text: str) -> str:
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def get_name(base: str, suffix: str, max_length: int = 63) -> str:
    """openshift/library-go pkg/build/naming GetName (vendor/github.com/openshift/library-go/pkg/build/naming/
    namer.go; restore.go calls it with validation.DNS1035LabelMaxLength = 63): fnv32a hashes, `<base>-<hash>-<suffix>`,
    or `<base>-<hash of base-suffix>` when the suffix leaves no room for the base (baseLength <= 0)."""
    if max_length <= 0:
        return ""
    name = f"{base}-{suffix}"
    if len(name) <= max_length:
        return name
    base_length = max_length - 10 - len(suffix)
    if base_length <= 0:
        prefix = base[:min(len(base), max(0, max_length - 9))]
        short = f"{prefix}-{_fnv32a(name)}"
        return short[:min(max_length, len(short))]
    return f"{base[:base_length]}-{_fnv32a(base)}-{suffix}"


def restore_volume_name(restore: JSON, volume_name: str, claim_name: str) -> str:
    """restore.go restoreVolumeName."""
    spec = restore.get("spec") or {}
    for override in spec.get("volumeRestoreOverrides") or []:
        if override.get("volumeName") == volume_name and override.get("restoreName"):
            return override["restoreName"]
    policy = spec.get("volumeRestorePolicy")
    if policy == "InPlace":
        return claim_name
    if policy == "PrefixTargetName":
        return get_name((spec.get("target") or {}).get("name", ""), volume_name)
    return f"restore-{restore['metadata']['uid']}-{volume_name}"


def restore_annotation_value(restore: JSON) -> str:
    """getRestoreAnnotationValue."""
    return f"{restore['metadata']['name']}-{restore['metadata']['uid']}"


def has_last_restore(restore: JSON, obj: Optional[JSON]) -> bool:
    return ((obj or {}).get("metadata", {}).get("annotations") or {}).get(LAST_RESTORE) == \
        restore_annotation_value(restore)


class Failed(Exception):
    """doUpdateError: recorded on the restore and retried."""


class Requeue(Exception):
    """An error updateVMRestore returns as it is, without doUpdateError: no condition, no event, only a retry
    (restore.go:269-272, the error of UpdateRestoreInProgress)."""


class VMRestoreController:
    def __init__(self, manager: Manager, kube: Kube, config=None):
        self.manager = manager
        self.kube = kube
        self.config = config or (lambda: {})
        # restore_base.go: informers on restores, DataVolumes, PVCs and VMs wake the restore(s) concerned.
        self.restores = manager.informer("vmrestores", object_path(SNAPSHOT_API, PLURAL), ("VMRestore",))
        self.snapshots = manager.informer("restore-vmsnapshots",
                                          object_path(SNAPSHOT_API, "virtualmachinesnapshots"))
        self.contents = manager.informer("restore-vmsnapshotcontents",
                                         object_path(SNAPSHOT_API, "virtualmachinesnapshotcontents"))
        self.vms = manager.informers["vms"]
        self.vmis = manager.informers["vmis"]
        self.pvcs = manager.informers["pvcs"]
        self.dvs = manager.informers["datavolumes"]
        self.classes = manager.informers.get("storageclasses")
        self.dvs.add_handler(self._annotated_changed)   # handleDataVolume
        self.pvcs.add_handler(self._annotated_changed)  # handlePVC
        self.vms.add_handler(self._vm_changed)          # handleVM (the "vm" index: restores by target)
        manager.reconciler("VMRestore", self.reconcile)

    def _annotated_changed(self, obj: JSON) -> None:
        name = (obj["metadata"].get("annotations") or {}).get(RESTORE_NAME_ANNOTATION)
        if name:
            self.manager.queue.add(("VMRestore", obj["metadata"].get("namespace", ""), name))

    def _vm_changed(self, vm: JSON) -> None:
        namespace, name = vm["metadata"].get("namespace", ""), vm["metadata"]["name"]
        for restore in self.restores.list():
            if restore["metadata"].get("namespace") == namespace and \
                    ((restore.get("spec") or {}).get("target") or {}).get("name") == name:
                self.manager.queue.add(("VMRestore", namespace, restore["metadata"]["name"]))

    # -- API helpers ------------------------------------------------------------------------------------

    @staticmethod
    def _path(restore: JSON) -> str:
        meta = restore["metadata"]
        return object_path(SNAPSHOT_API, PLURAL, meta["name"], meta["namespace"])

    def _event(self, restore: JSON, event_type: str, reason: str, message: str) -> None:
        record_event(self.kube, restore, KIND, SNAPSHOT_API, event_type, reason, message, COMPONENT)

    def _update_status(self, original: JSON, status: JSON) -> None:
        """doUpdateStatus: UpdateStatus when the status changed."""
        if status == (original.get("status") or {}):
            return
        body = copy.deepcopy(original)
        body["status"] = status
        self.kube.request("PUT", self._path(original) + "/status", body)

    def _update_error(self, restore: JSON, message: str, fail: bool = False) -> None:
        """doUpdateErrorWithFailure."""
        status = copy.deepcopy(restore.get("status") or {})
        set_conditions(status, "False", "False", message)
        reason, text = ERROR_EVENT, f"VirtualMachineRestore encountered error {message}"
        if fail:
            reason, text = FAILED_EVENT, f"VirtualMachineRestore failed {message}"
            status["conditions"] = update_condition(status["conditions"], new_condition("Failure", "True", message))
        self._event(restore, "Warning", reason, text)
        self._update_status(restore, status)

    def _pvc(self, namespace: str, name: str) -> Optional[JSON]:
        return copy.deepcopy(self.pvcs.get(namespace, name))

    def _vm_path(self, vm: JSON) -> str:
        return object_path(VM_API, "virtualmachines", vm["metadata"]["name"], vm["metadata"]["namespace"])

    # -- updateVMRestore ----------------------------------------------------------------------------------

    def reconcile(self, namespace: str, name: str) -> Optional[float]:
        restore = copy.deepcopy(self.restores.get(namespace, name))
        if restore is None:
            return None
        if restore.get("status") is None:
            status = {"complete": False}
            set_conditions(status, "True", "False", "Initializing VirtualMachineRestore")
            self._update_status(restore, status)
            return None
        target = ((restore.get("spec") or {}).get("target") or {})
        if target.get("kind") != "VirtualMachine":
            self._update_error(restore, f"unknown source {json.dumps(target)}")
            return 5.0
        vm = copy.deepcopy(self.vms.get(namespace, target.get("name", "")))
        if restore["metadata"].get("deletionTimestamp"):
            return self._handle_deletion(restore, vm)
        if not restore_progressing(restore):
            return None
        meta = restore["metadata"]
        changed_meta = False
        if not meta.get("ownerReferences") and vm is not None:
            meta["ownerReferences"] = [self._owner(vm)]
            changed_meta = True
        if FINALIZER not in (meta.get("finalizers") or []):
            meta["finalizers"] = list(meta.get("finalizers") or []) + [FINALIZER]
            changed_meta = True
        if changed_meta:
            self.kube.request("PUT", self._path(restore), restore)
            return None
        try:
            return self._progress(restore, vm)
        except Failed as err:
            self._update_error(restore, str(err))
            return 1.0
        except Requeue as err:
            log.info("restore %s/%s: %s", namespace, name, err)
            return 1.0

    @staticmethod
    def _owner(vm: JSON) -> JSON:
        """vmRestoreTarget.Own."""
        return {"apiVersion": VM_API, "kind": "VirtualMachine", "name": vm["metadata"]["name"],
                "uid": vm["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}

    def _progress(self, restore: JSON, vm: Optional[JSON]) -> Optional[float]:
        namespace = restore["metadata"]["namespace"]
        # vmRestoreTarget.Ready: no VMI
        if vm is not None and self.vmis.get(namespace, vm["metadata"]["name"]) is not None:
            return self._target_not_ready(restore, vm)
        snapshot = self._snapshot(restore)
        source_uid = (snapshot.get("status") or {}).get("sourceUID")
        if vm is not None and not has_last_restore(restore, vm) and source_uid and vm["metadata"]["uid"] != source_uid:
            raise Failed(RESTORE_TO_EXISTING)
        vm = self._restore_in_progress(restore, vm)
        # getSnapshotContent: read by reconcileVolumeRestores and Reconcile, after UpdateRestoreInProgress
        content = self._content(restore, snapshot)
        status = copy.deepcopy(restore["status"])
        if self._volume_restores(restore, status, vm, content):
            set_conditions(status, "True", "False", "Creating new PVCs")
            status["conditions"] = update_condition(status["conditions"],
                                                    new_condition("Ready", "False", "Waiting for new PVCs"))
            self._update_status(restore, status)
            return 1.0
        updated, vm = self._reconcile_target(restore, status, vm, content)
        if updated:
            set_conditions(status, "True", "False", "Updating target spec")
            status["conditions"] = update_condition(status["conditions"],
                                                    new_condition("Ready", "False", "Waiting for target update"))
            self._update_status(restore, status)
            return 1.0
        # deleteObsoleteVolumes
        for dv_name in status.get("deletedDataVolumes") or []:
            if self.dvs.get(namespace, dv_name) is not None:
                self.kube.delete(object_path(DV_API, "datavolumes", dv_name, namespace))
        self._done_restore(restore, vm)
        self._event(restore, "Normal", COMPLETE_EVENT, f"Successfully completed VirtualMachineRestore {restore['metadata']['name']}")
        status["complete"] = True
        status["restoreTime"] = now()
        status["conditions"] = update_condition(status.get("conditions") or [],
                                                new_condition("Progressing", "False", "Operation complete"))
        status["conditions"] = update_condition(status["conditions"], new_condition("Ready", "True", "Operation complete"))
        self._update_status(restore, status)
        return None

    def _target_not_ready(self, restore: JSON, vm: JSON) -> Optional[float]:
        """handleVMRestoreTargetNotReady."""
        policy = (restore.get("spec") or {}).get("targetReadinessPolicy") or "WaitGracePeriod"
        status = copy.deepcopy(restore["status"])
        if policy == "StopTarget":
            # stopTarget: event, conditions, then the VM's stop subresource
            self._event(restore, "Warning", NOT_READY_EVENT, STOP_TARGET)
            set_conditions(status, "False", "False", STOP_TARGET)
            try:
                self.kube.request("PUT", f"/apis/subresources.kubevirt.io/v1/namespaces/{vm['metadata']['namespace']}"
                                  f"/virtualmachines/{vm['metadata']['name']}/stop", {}, expect_json=False)
            except KubeError as err:
                self._update_error(restore, str(err))
                return 1.0
            self._update_status(restore, status)
            return 1.0
        if policy == "FailImmediate":
            self._update_error(restore, TARGET_NOT_READY_FAILURE, fail=True)
            return None
        if policy == "WaitGracePeriod":
            if _seconds_since(restore["metadata"].get("creationTimestamp", "")) > GRACE_PERIOD:
                self._update_error(restore, GRACE_EXCEEDED, fail=True)
                return None
            reason = WAIT_GRACE
        elif policy == "WaitEventually":
            reason = WAIT_EVENTUALLY
        else:
            raise Failed(f"unknown targetReadinessPolicy: {policy}")
        if (restore.get("status") or {}).get("conditions") and has_condition(restore, "Ready") and any(
                c.get("reason") == reason for c in restore["status"]["conditions"]):
            return 5.0
        self._event(restore, "Warning", NOT_READY_EVENT, VMI_EXISTS)
        set_conditions(status, "False", "False", reason)
        self._update_status(restore, status)
        return 5.0

    def _snapshot(self, restore: JSON) -> JSON:
        """getVMSnapshot."""
        namespace = restore["metadata"]["namespace"]
        key = f"{namespace}/{restore['spec'].get('virtualMachineSnapshotName', '')}"
        snapshot = self.snapshots.get(namespace, restore["spec"].get("virtualMachineSnapshotName", ""))
        if snapshot is None:
            raise Failed(f"VMSnapshot {key} does not exist")
        if snapshot_failed(snapshot):
            raise Failed(f"VMSnapshot {key} failed and is invalid to use")
        if not snapshot_ready(snapshot):
            raise Failed(f"VMSnapshot {key} not ready")
        if not (snapshot.get("status") or {}).get("virtualMachineSnapshotContentName"):
            raise Failed(f"no snapshot content name in {key}")
        return snapshot

    def _content(self, restore: JSON, snapshot: JSON) -> JSON:
        """getSnapshotContent."""
        namespace = restore["metadata"]["namespace"]
        content_name = snapshot["status"]["virtualMachineSnapshotContentName"]
        content = self.contents.get(namespace, content_name)
        if content is None:
            raise Failed(f"VMSnapshotContent {namespace}/{content_name} does not exist")
        if not (content.get("status") or {}).get("readyToUse"):
            raise Failed(f"VMSnapshotContent {namespace}/{content_name} not ready")
        return copy.deepcopy(content)

    def _restore_in_progress(self, restore: JSON, vm: Optional[JSON]) -> Optional[JSON]:
        """vmRestoreTarget.UpdateRestoreInProgress."""
        if vm is None or has_last_restore(restore, vm):
            return vm
        current = (vm.get("status") or {}).get("restoreInProgress")
        if current and current != restore["metadata"]["name"]:
            raise Requeue(f"vm restore {current} in progress")
        if not current:
            vm.setdefault("status", {})["restoreInProgress"] = restore["metadata"]["name"]
            vm = self.kube.request("PUT", self._vm_path(vm) + "/status", vm)
        return vm

    def _done_restore(self, restore: JSON, vm: Optional[JSON]) -> None:
        """vmRestoreTarget.UpdateDoneRestore."""
        if vm is None:
            raise Failed("At this point target should exist")
        if (vm.get("status") or {}).get("restoreInProgress") != restore["metadata"]["name"]:
            return
        vm = copy.deepcopy(vm)
        vm["status"].pop("restoreInProgress", None)
        vm["status"].pop("memoryDumpRequest", None)
        self.kube.request("PUT", self._vm_path(vm) + "/status", vm)

    def _handle_deletion(self, restore: JSON, vm: Optional[JSON]) -> Optional[float]:
        """handleVMRestoreDeletion."""
        finalizers = restore["metadata"].get("finalizers") or []
        if FINALIZER not in finalizers:
            return None
        if vm is not None:
            self._done_restore(restore, vm)
        status = copy.deepcopy(restore.get("status") or {})
        set_conditions(status, "False", "False", "VM restore is deleting")
        if status != (restore.get("status") or {}):
            self._update_status(restore, status)
            return None
        self.kube.json_patch(self._path(restore), [
            {"op": "test", "path": "/metadata/finalizers", "value": finalizers},
            {"op": "replace", "path": "/metadata/finalizers", "value": [f for f in finalizers if f != FINALIZER]}])
        return None

    # -- reconcileVolumeRestores ---------------------------------------------------------------------------

    def _volume_restores(self, restore: JSON, status: JSON, vm: Optional[JSON], content: JSON) -> bool:
        source_vm = (content.get("spec") or {}).get("source", {}).get("virtualMachine") or {}
        volumes = (((source_vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
        no_restore = {v["name"] for v in volumes if v.get("memoryDump")}  # volumesNotForRestore
        restores = []
        for backup in content["spec"].get("volumeBackups") or []:
            if backup.get("volumeName") in no_restore:
                continue
            found = next((r for r in status.get("restores") or [] if r.get("volumeName") == backup["volumeName"]), None)
            if found is not None:
                restores.append(found)
                continue
            if not backup.get("volumeSnapshotName"):
                raise Failed(f"VolumeSnapshotName missing {json.dumps(backup)}")
            claim = ((backup.get("persistentVolumeClaim") or {}).get("metadata") or {}).get("name", "")
            restores.append({"volumeName": backup["volumeName"],
                             "persistentVolumeClaim": restore_volume_name(restore, backup["volumeName"], claim),
                             "volumeSnapshotName": backup["volumeSnapshotName"]})
        if restores != (status.get("restores") or []):
            if status.get("restores"):
                log.warning("VMRestore %s in strange state", restore["metadata"]["name"])
            status["restores"] = restores
            return True
        namespace = restore["metadata"]["namespace"]
        created = waiting = waiting_dv_name = deleted = False
        for i, item in enumerate(restores):
            pvc = self._pvc(namespace, item["persistentVolumeClaim"])
            if pvc is None:
                backup = next((b for b in content["spec"].get("volumeBackups") or []
                               if b.get("volumeName") == item["volumeName"]), None)
                if backup is None:
                    raise Failed(f"volume backup for volume {item['volumeName']} not found")
                self._create_restore_pvc(restore, vm, backup, item, source_vm, item.get("dataVolumeName") or "")
                created = True
            elif restore["spec"].get("volumeRestorePolicy") == "InPlace" and not has_last_restore(restore, pvc):
                owner = next((r for r in pvc["metadata"].get("ownerReferences") or []
                              if r.get("controller") and r.get("kind") == "DataVolume"), None)
                if owner is not None:
                    if not item.get("dataVolumeName"):
                        status["restores"][i]["dataVolumeName"] = owner["name"]
                        waiting_dv_name = True
                        continue
                    # prepopulateDataVolume
                    self.kube.json_patch(object_path(DV_API, "datavolumes", owner["name"], namespace), [
                        {"op": "add", "path": "/metadata/annotations/" + escape_pointer(RESTORE_NAME_ANNOTATION),
                         "value": restore["metadata"]["name"]},
                        {"op": "add", "path": "/metadata/annotations/" + escape_pointer(PRE_POPULATED),
                         "value": owner["name"]}])
                self.kube.delete(object_path("v1", "persistentvolumeclaims", pvc["metadata"]["name"], namespace))
                deleted = True
            elif (pvc.get("status") or {}).get("phase") == "Pending":
                mode = self._binding_mode(pvc)
                if mode in (None, "Immediate"):
                    waiting = True
            elif (pvc.get("status") or {}).get("phase") != "Bound":
                raise Failed(f"PVC {namespace}/{pvc['metadata']['name']} in status "
                             f"{json.dumps((pvc.get('status') or {}).get('phase', ''))}")
        return created or deleted or waiting or waiting_dv_name

    def _binding_mode(self, pvc: JSON) -> Optional[str]:
        """getBindingMode."""
        class_name = (pvc.get("spec") or {}).get("storageClassName")
        if not class_name:
            return None
        sc = self.classes.get("", class_name) if self.classes is not None else \
            self.kube.get_or_none(object_path("storage.k8s.io/v1", "storageclasses", class_name))
        if sc is None:
            raise Failed(f"StorageClass {class_name} does not exist")
        return sc.get("volumeBindingMode")

    def _create_restore_pvc(self, restore: JSON, vm: Optional[JSON], backup: JSON, item: JSON, source_vm: JSON,
                            dv_owner: str) -> None:
        """createRestorePVC with CreateRestorePVCDefFromVMRestore and CreateRestorePVCDef."""
        namespace = restore["metadata"]["namespace"]
        snapshot = self.kube.get_or_none(object_path(VS_API, "volumesnapshots", backup["volumeSnapshotName"], namespace))
        if snapshot is None:
            raise Failed(f"missing volumeSnapshot {backup['volumeSnapshotName']}")
        source = copy.deepcopy(backup.get("persistentVolumeClaim") or {})
        source_meta, source_spec = source.get("metadata") or {}, source.get("spec") or {}
        ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": backup["volumeSnapshotName"]}
        resources = copy.deepcopy(source_spec.get("resources") or {})
        requests = resources.setdefault("requests", {})
        restore_size = (snapshot.get("status") or {}).get("restoreSize")
        if restore_size and ("storage" not in requests or storage_bytes(requests["storage"]) < storage_bytes(restore_size)):
            requests["storage"] = restore_size
        annotations = {k: v for k, v in (source_meta.get("annotations") or {}).items()
                       if k == CONTENT_TYPE or not any(k.startswith(p) for p in ANNOTATIONS_TO_DELETE)}
        labels = {k: v for k, v in (source_meta.get("labels") or {}).items() if k != BACKEND_PVC_LABEL}
        labels[SOURCE_NAME_LABEL] = source_vm.get("metadata", {}).get("name", "")
        labels[SOURCE_NAMESPACE_LABEL] = source_vm.get("metadata", {}).get("namespace", "")
        annotations[RESTORE_NAME_ANNOTATION] = restore["metadata"]["name"]
        annotations[LAST_RESTORE] = restore_annotation_value(restore)
        for override in restore["spec"].get("volumeRestoreOverrides") or []:  # applyVolumeRestoreOverride
            if override.get("volumeName") == backup["volumeName"]:
                labels.update(override.get("labels") or {})
                annotations.update(override.get("annotations") or {})
                break
        spec = {"accessModes": source_spec.get("accessModes"), "resources": resources,
                "dataSource": ref, "dataSourceRef": ref}
        for key in ("storageClassName", "volumeMode"):
            if source_spec.get(key) is not None:
                spec[key] = source_spec[key]
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": item["persistentVolumeClaim"], "namespace": namespace, "labels": labels,
                            "annotations": annotations}, "spec": spec}
        ownership_none = restore["spec"].get("volumeOwnershipPolicy") == "None"
        if dv_owner:
            annotations[POPULATED_FOR] = dv_owner
        elif not ownership_none:
            if vm is not None:
                pvc["metadata"]["ownerReferences"] = [self._owner(vm)]
            elif any(r.get("kind") == "VirtualMachine" and r.get("name") == source_vm.get("metadata", {}).get("name")
                     and r.get("uid") == source_vm.get("metadata", {}).get("uid")
                     for r in source_meta.get("ownerReferences") or []):
                annotations[OWNED_BY_VM] = restore["metadata"]["name"]
        self.kube.create(object_path("v1", "persistentvolumeclaims", namespace=namespace), pvc)

    # -- vmRestoreTarget.Reconcile -------------------------------------------------------------------------

    def _reconcile_target(self, restore: JSON, status: JSON, vm: Optional[JSON], content: JSON) -> Tuple[bool, Optional[JSON]]:
        if vm is not None and has_last_restore(restore, vm):
            return False, vm
        snapshot_vm = (content["spec"].get("source") or {}).get("virtualMachine")
        if not snapshot_vm:
            raise Failed("unexpected snapshot source")
        if self._update_restores(restore, status, snapshot_vm):
            return True, vm
        restored = self._restored_spec(restore, status, vm, snapshot_vm)
        if self._reconcile_data_volumes(restore, status, vm, restored):
            return True, vm
        return True, self._reconcile_spec(restore, vm, restored)

    def _update_restores(self, restore: JSON, status: JSON, snapshot_vm: JSON) -> bool:
        """updateVMRestoreRestores."""
        namespace = restore["metadata"]["namespace"]
        templates = [t["metadata"]["name"] for t in snapshot_vm["spec"].get("dataVolumeTemplates") or []]
        volumes = ((snapshot_vm["spec"].get("template") or {}).get("spec") or {}).get("volumes") or []
        restores = copy.deepcopy(status.get("restores") or [])
        for item in restores:
            for volume in volumes:
                if volume["name"] != item["volumeName"] or not volume.get("dataVolume"):
                    continue
                if volume["dataVolume"]["name"] in templates:
                    dv_name = restore_volume_name(restore, item["volumeName"], volume["dataVolume"]["name"])
                    pvc = self._pvc(namespace, item["persistentVolumeClaim"])
                    if pvc is None:
                        raise Failed(f"pvc {namespace}/{item['persistentVolumeClaim']} does not exist and should")
                    # updatePVCPopulatedForAnnotation
                    if (pvc["metadata"].get("annotations") or {}).get(POPULATED_FOR) != dv_name:
                        pvc["metadata"].setdefault("annotations", {})[POPULATED_FOR] = dv_name
                        pvc["metadata"].pop("ownerReferences", None)  # the DataVolume will take ownership
                        self.kube.request("PUT", object_path("v1", "persistentvolumeclaims", pvc["metadata"]["name"],
                                                             namespace), pvc)
                    item["dataVolumeName"] = dv_name
                    break
        if restores != (status.get("restores") or []):
            status["restores"] = restores
            return True
        return False

    def _restored_spec(self, restore: JSON, status: JSON, vm: Optional[JSON], snapshot_vm: JSON) -> JSON:
        """generateRestoredVMSpec."""
        spec = copy.deepcopy(snapshot_vm["spec"])
        templates = spec.get("dataVolumeTemplates") or []
        template_names = [t["metadata"]["name"] for t in templates]
        volumes = []
        for volume in ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []:
            new = copy.deepcopy(volume)
            if new.get("dataVolume") or new.get("persistentVolumeClaim"):
                for item in status.get("restores") or []:
                    if item["volumeName"] != new["name"]:
                        continue
                    if not new.get("dataVolume"):
                        new["persistentVolumeClaim"]["claimName"] = item["persistentVolumeClaim"]
                        continue
                    if volume["dataVolume"]["name"] in template_names:
                        if not item.get("dataVolumeName"):
                            raise Failed(f"DataVolumeName for dv {volume['dataVolume']['name']} should have been "
                                         "updated already")
                        index = template_names.index(volume["dataVolume"]["name"])
                        templates[index] = copy.deepcopy(templates[index])
                        templates[index]["metadata"]["name"] = item["dataVolumeName"]
                        new["dataVolume"]["name"] = item["dataVolumeName"]
                    else:
                        new = {"name": new["name"], "persistentVolumeClaim": {"claimName": item["persistentVolumeClaim"]}}
            elif new.get("memoryDump"):
                continue
            volumes.append(new)
        if vm is None:
            source_meta = snapshot_vm.get("metadata") or {}
            restored = {"apiVersion": VM_API, "kind": "VirtualMachine",
                        "metadata": {"name": restore["spec"]["target"]["name"], "namespace": restore["metadata"]["namespace"]},
                        "spec": spec}
            if source_meta.get("labels"):
                restored["metadata"]["labels"] = copy.deepcopy(source_meta["labels"])
            if source_meta.get("annotations"):
                restored["metadata"]["annotations"] = copy.deepcopy(source_meta["annotations"])
            if spec.get("running") is not None:
                spec["running"] = False
            else:
                spec["runStrategy"] = "Halted"
        else:
            restored = copy.deepcopy(vm)
            restored["spec"] = spec
            if vm["spec"].get("running") is not None:
                spec["running"] = False
                spec.pop("runStrategy", None)
            else:
                # an existing VM keeps its run strategy
                spec["runStrategy"] = vm["spec"].get("runStrategy") or "Halted"
                spec.pop("running", None)
        if templates:
            spec["dataVolumeTemplates"] = templates
        spec.setdefault("template", {}).setdefault("spec", {})["volumes"] = volumes
        restored["metadata"].setdefault("annotations", {})[LAST_RESTORE] = restore_annotation_value(restore)
        if (snapshot_vm.get("metadata") or {}).get("name") == restored["metadata"]["name"]:
            # setLegacyFirmwareUUID
            firmware = spec["template"]["spec"].setdefault("domain", {}).setdefault("firmware", {})
            if not firmware.get("uuid"):
                firmware["uuid"] = legacy_firmware_uuid(restored["metadata"]["name"])
        return restored

    def _reconcile_data_volumes(self, restore: JSON, status: JSON, vm: Optional[JSON], restored: JSON) -> bool:
        """reconcileDataVolumes and createDataVolume."""
        namespace = restore["metadata"]["namespace"]
        created = waiting = False
        for template in restored["spec"].get("dataVolumeTemplates") or []:
            name = template["metadata"]["name"]
            dv = self.dvs.get(namespace, name)
            if dv is not None:
                waiting = waiting or (dv.get("status") or {}).get("phase") not in (
                    "Succeeded", "WaitForFirstConsumer", "PendingPopulation")
                continue
            pvc = self.pvcs.get(namespace, name)
            if pvc is None:
                raise Failed(f"when creating restore dv pvc {namespace}/{name} does not exist and should")
            if (pvc["metadata"].get("annotations") or {}).get(POPULATED_FOR) != name or pvc["metadata"].get("ownerReferences"):
                continue
            # createDataVolume (restore.go:1270-1279): GenerateDataVolumeFromTemplate with the restored VM's
            # priorityClassName, then the restore's annotations
            try:
                dv = generate_data_volume(self.kube, template, namespace,
                                          ((restored["spec"].get("template") or {}).get("spec") or {}).get("priorityClassName"))
            except KubeError as err:
                raise Failed(f"Unable to create restore DataVolume manifest: {err}") from None
            annotations = dv["metadata"]["annotations"]
            annotations[RESTORE_NAME_ANNOTATION] = restore["metadata"]["name"]
            annotations[PRE_POPULATED] = "true"
            try:
                self.kube.create(object_path(DV_API, "datavolumes", namespace=namespace), dv)
            except KubeError as err:
                self._event(restore, "Warning", DV_CREATE_ERROR_EVENT, f"Error creating restore DataVolume {name}: {err}")
                raise Failed(f"Failed to create restore DataVolume: {err}") from None
            created = True
        if vm is not None:
            # findDatavolumesForDeletion
            new_names = [t["metadata"]["name"] for t in restored["spec"].get("dataVolumeTemplates") or []]
            deleted = [t["metadata"]["name"] for t in vm["spec"].get("dataVolumeTemplates") or []
                       if t["metadata"]["name"] not in new_names]
            if (status.get("deletedDataVolumes") or []) != deleted:
                status["deletedDataVolumes"] = deleted
                return True
        return created or waiting

    def _reconcile_spec(self, restore: JSON, vm: Optional[JSON], restored: JSON) -> JSON:
        """reconcileSpec (instancetype revisions not mirrored) and updateRestorePVCOwnership."""
        namespace = restore["metadata"]["namespace"]
        if vm is None:
            try:
                restored = patch_vm(restored, restore["spec"].get("patches") or [])
            except PatchError as err:
                raise Failed(f"error patching VM {restored['metadata']['name']}: {err}") from None
            restored["metadata"]["namespace"] = namespace
            restored.pop("status", None)
            created = self.kube.create(object_path(VM_API, "virtualmachines", namespace=namespace), restored)
        else:
            created = self.kube.request("PUT", self._vm_path(restored), restored)
        if restore["spec"].get("volumeOwnershipPolicy") != "None":
            for volume in ((created["spec"].get("template") or {}).get("spec") or {}).get("volumes") or []:
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if not claim:
                    continue
                pvc = self.kube.get(object_path("v1", "persistentvolumeclaims", claim, namespace))
                if not pvc["metadata"].get("ownerReferences") and \
                        (pvc["metadata"].get("annotations") or {}).get(OWNED_BY_VM) == restore["metadata"]["name"]:
                    pvc["metadata"]["ownerReferences"] = [self._owner(created)]
                    del pvc["metadata"]["annotations"][OWNED_BY_VM]
                    self.kube.request("PUT", object_path("v1", "persistentvolumeclaims", claim, namespace), pvc)
        return created


def resolved_clone_source(kube: Kube, namespace: str, spec: JSON) -> Optional[JSON]:
    """pkg/storage/types/dv.go GetResolvedCloneSource: a DataSource sourceRef becomes the DataSource's PVC /
    snapshot source (its status.source when the DataSource points at another DataSource); a PVC or snapshot
    source gets the namespace defaulted; any other source: None (left as it is)."""
    source = spec.get("source")
    ref = spec.get("sourceRef") or {}
    ns = namespace
    if ref.get("kind") == "DataSource":
        ns = ref.get("namespace") or namespace
        ds = kube.get(object_path(DV_API, "datasources", ref.get("name", ""), ns))
        resolved = (ds.get("spec") or {}).get("source") or {}
        if resolved.get("dataSource") is not None:
            resolved = (ds.get("status") or {}).get("source") or {}
        source = {k: resolved[k] for k in ("pvc", "snapshot") if resolved.get(k) is not None}
    source = copy.deepcopy(source or {})
    for kind in ("pvc", "snapshot"):
        if source.get(kind) is not None:
            if not source[kind].get("namespace"):
                source[kind]["namespace"] = ns
            return source
    return None


def generate_data_volume(kube: Kube, template: JSON, namespace: str, priority_class: Optional[str]) -> JSON:
    """pkg/storage/types/dv.go GenerateDataVolumeFromTemplate: the template's metadata and spec, annotation
    cdi.kubevirt.io/allowClaimAdoption "true", the VM's priorityClassName when the template has none, and the
    resolved clone source in place of a sourceRef."""
    meta = copy.deepcopy(template.get("metadata") or {})
    spec = copy.deepcopy(template.get("spec") or {})
    meta["namespace"] = namespace
    meta["labels"] = meta.get("labels") or {}
    meta["annotations"] = meta.get("annotations") or {}
    meta["annotations"][ALLOW_CLAIM_ADOPTION] = "true"
    if not spec.get("priorityClassName") and priority_class:
        spec["priorityClassName"] = priority_class
    source = resolved_clone_source(kube, namespace, spec)
    if source is not None:
        spec.pop("sourceRef", None)
        spec["source"] = source
    return {"apiVersion": DV_API, "kind": "DataVolume", "metadata": meta, "spec": spec}


# -- the admitter ------------------------------------------------------------------------------------------

def _snapshot_enabled(config: JSON) -> bool:
    """ClusterConfig.SnapshotEnabled: the Snapshot gate is Beta in v1.9.0 (on unless disabled)."""
    dev = config.get("developerConfiguration") or {}
    return "Snapshot" in (dev.get("featureGates") or []) or "Snapshot" not in (dev.get("disabledFeatureGates") or [])


def _error(message: str) -> JSON:
    return {"allowed": False, "status": {"message": message, "code": 400}}


def _denied(causes: List[JSON]) -> JSON:
    """webhookutils.ToAdmissionResponse (at most 10 causes, "and N more validation errors")."""
    return admission.denied(causes)


def _cause(kind: str, message: str, field: str) -> JSON:
    return {"reason": kind, "message": message, "field": field}


def validate_patches(patches: List[str], field: str) -> List[JSON]:
    """vmrestore.go validatePatches (string splitting, as KubeVirt does it)."""
    causes = []
    for patch in patches or []:
        for key_value in patch.strip("{}").split(","):
            parts = key_value.split(":")
            if len(parts) != 2:
                causes.append(_cause("FieldValueInvalid", 'patch format is not valid - one ":" expected in a single '
                                     f"key-value json patch: {key_value}", field))
                continue
            key, value = parts[0].strip(), parts[1].strip()
            if key == '"path"':
                if value.startswith('"/metadata/labels/') or value.startswith('"/metadata/annotations/'):
                    continue
                if not value.startswith('"/spec/'):
                    causes.append(_cause("FieldValueInvalid",
                                         f"patching is valid only for elements under /spec/ only: {key_value}", field))
    return causes


def make_admitter(kube: Kube):
    """VMRestoreAdmitter.Admit, reading snapshots, VMs and restores from the apiserver."""

    def admit(request: JSON, config: JSON) -> JSON:
        resource = request.get("resource") or {}
        if resource.get("group") != "snapshot.kubevirt.io" or resource.get("resource") != PLURAL:
            return _error(f"unexpected resource {json.dumps(resource)}")
        operation = request.get("operation")
        if operation == "CREATE" and not _snapshot_enabled(config):
            return _error("Snapshot/Restore feature gate not enabled")
        restore = request.get("object") or {}
        spec = restore.get("spec") or {}
        target = spec.get("target") or {}
        namespace = request.get("namespace") or (restore.get("metadata") or {}).get("namespace", "")
        causes: List[JSON] = []
        if operation == "CREATE":
            if target.get("apiGroup") is None:
                causes = [_cause("FieldValueNotFound", "missing apiGroup", "spec.target.apiGroup")]
            elif target["apiGroup"] != "kubevirt.io":
                causes = [_cause("FieldValueInvalid", "invalid apiGroup", "spec.target.apiGroup")]
            elif target.get("kind") != "VirtualMachine":
                causes = [_cause("FieldValueInvalid", "invalid kind", "spec.target.kind")]
            else:
                causes = validate_patches(spec.get("patches") or [], "spec.patches")
                # validateTargetVM: backend storage (persistent TPM/EFI) of the snapshot's VM, when the target differs
                snapshot = kube.get_or_none(object_path(SNAPSHOT_API, "virtualmachinesnapshots",
                                                        spec.get("virtualMachineSnapshotName", "") or "-", namespace))
                if snapshot is None:
                    # vmrestore.go:189-197: a snapshot that is not found returns nil causes - the patch causes too
                    causes = []
                else:
                    vm = kube.get_or_none(object_path(VM_API, "virtualmachines", target.get("name", "") or "-", namespace))
                    source_uid = (snapshot.get("status") or {}).get("sourceUID")
                    if vm is None or (source_uid and vm["metadata"]["uid"] != source_uid):
                        content_name = (snapshot.get("status") or {}).get("virtualMachineSnapshotContentName")
                        if not content_name:
                            return _error("snapshot content name is nil in vmSnapshot status")
                        content = kube.get_or_none(object_path(SNAPSHOT_API, "virtualmachinesnapshotcontents",
                                                               content_name, namespace))
                        if content is None:
                            return _error(f'virtualmachinesnapshotcontents.snapshot.kubevirt.io "{content_name}" not found')
                        source_vm = ((content.get("spec") or {}).get("source") or {}).get("virtualMachine")
                        if source_vm is None:
                            return _error("unexpected snapshot source")
                        domain = (((source_vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain") or {}
                        devices = domain.get("devices") or {}
                        efi = ((domain.get("firmware") or {}).get("bootloader") or {}).get("efi") or {}
                        if (devices.get("tpm") or {}).get("persistent") or efi.get("persistent"):
                            causes.append(_cause("FieldValueInvalid", "Restore to a different VM is not supported when "
                                                 "snapshotted VM has backend storage (persistent TPM or EFI)", "spec"))
                # validateVolumeOverrides
                for i, override in enumerate(spec.get("volumeRestoreOverrides") or []):
                    if not override.get("volumeName"):
                        causes.append(_cause("FieldValueRequired", "must provide a volume name",
                                             f"spec.volumeRestoreOverrides[{i}].volumeName"))
                    if not override.get("restoreName") and override.get("annotations") is None and \
                            override.get("labels") is None:
                        causes.append(_cause("FieldValueRequired", "must provide at least one overriden field",
                                             f"spec.volumeRestoreOverrides[{i}]"))
                policy = spec.get("volumeRestorePolicy")
                if policy is not None and policy not in ("InPlace", "RandomizeNames", "PrefixTargetName"):
                    causes.append(_cause("FieldValueInvalid", f'volume restore policy "{policy}" doesn\'t exist',
                                         "spec.volumeRestorePolicy"))
                ownership = spec.get("volumeOwnershipPolicy")
                # api snapshot/v1beta1 types.go VolumeOwnershipPolicyVm = "Vm", VolumeOwnershipPolicyNone = "None"
                if ownership is not None and ownership not in ("Vm", "None"):
                    causes.append(_cause("FieldValueInvalid", f'volume ownership policy "{ownership}" doesn\'t exist',
                                         "spec.volumeOwnershipPolicy"))
            listing = kube.get(object_path(SNAPSHOT_API, PLURAL, namespace=namespace))
            for other in listing.get("items") or []:
                if (other.get("spec") or {}).get("target") == target and \
                        not ((other.get("status") or {}).get("complete")):
                    causes.append(_cause("FieldValueInvalid",
                                         f'VirtualMachineRestore "{other["metadata"]["name"]}" in progress', "spec.target"))
        elif operation == "UPDATE":
            previous = request.get("oldObject") or {}
            if (previous.get("spec") or {}) != spec:
                causes = [_cause("FieldValueInvalid", "spec in immutable after creation", "spec")]
        else:
            return _error(f"unexpected operation {operation}")
        return _denied(causes) if causes else {"allowed": True}

    return admit


# virt-operator components/webhooks.go VMRestoreValidatePath
ADMIT_PATH = "/virtualmachinerestores-validate"
