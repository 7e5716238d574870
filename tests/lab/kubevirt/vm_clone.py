"""virt-controller's VirtualMachineClone controller and virt-api's clone webhooks, at KubeVirt v1.9.0.

Controller: pkg/virt-controller/watch/clone/clone.go (VMCloneController.execute, sync, syncTargetVM,
updateStatus), util.go (names, owner references, conditions) and vm-target.go (the restore's patches).
A clone is a snapshot and a restore, as KubeVirt does it:
* source VirtualMachine: a VirtualMachineSnapshot tmp-snapshot-<clone uid>, owned by the clone, is created
  once every PVC/DataVolume volume of the VM has status.volumeSnapshotStatuses enabled
  (validateVolumeSnapshotStatus; otherwise the clone is pending with event VMVolumeSnapshotsInvalid);
  source VirtualMachineSnapshot: that snapshot is used. A missing source keeps the clone pending
  (SourceDoesNotExist "Source doesnt exist: <kind> <ns>/<name>"); a source with backend storage
  (persistent TPM/EFI) fails it.
* phases (updateStatus): "" -> SnapshotInProgress (status.snapshotName) -> RestoreInProgress once the
  snapshot is ready to use and its content backs up every PVC/DataVolume volume (verifySnapshotContent,
  else Failed with SnapshotContentInvalid) -> a VirtualMachineRestore tmp-restore-<clone uid> (owned by the
  clone; target spec.target; patches generatePatches; volumeRestorePolicy from spec.volumeNamePolicy)
  (status.restoreName) -> CreatingTargetVM once the restore is no longer progressing -> Succeeded when the
  target VM exists (status.targetName). Then, once every restored PVC is Bound (verifyPVCBound, event
  PVCBound), the restore is deleted, the snapshot too when the source was a VM, and status.snapshotName and
  status.restoreName are cleared. Conditions Progressing/Ready: "Still processing", "Pending", "Failed",
  "Ready". A snapshot gone after it was made fails the clone (SnapshotDeleted).
* a Succeeded clone whose target VM is deleted is deleted (execute).
* generatePatches: every interface's macAddress replaced by spec.newMacAddresses[name] or "" (KubeMacPool
  assigns one); firmware.serial replaced by spec.newSMBiosSerial (or ""), firmware.uuid by "" when the VM
  has a firmware section; labels/annotations of the VM and of its template removed unless kept by
  spec.labelFilters / annotationFilters / template.labelFilters / template.annotationFilters (regular
  expressions matched anywhere in the key, Go regexp.MatchString; "*" alone is ".*"; "!" negates and wins;
  no filters keep everything; restore.kubevirt.io/lastRestoreUID never removed); then spec.patches.

Webhooks: admitters/vmclone-admitter.go VirtualMachineCloneAdmitter.Admit (path VMCloneCreateValidatePath
/vm-clone-validate-create, webhook vm-clone-validator.kubevirt.io, CREATE and UPDATE) and
mutators/clone-create-mutator.go CloneCreateMutator.Mutate (path VMCloneCreateMutatePath
/vm-clone-mutate-create, webhook virtualmachineclones-mutator.kubevirt.io, CREATE): a missing target or
target name becomes VirtualMachine clone-<source>-<5 random characters>.
"""

import base64
import copy
import json
import logging
import random
import re
from typing import Dict, List, Optional

from ..kube import JSON, Kube, KubeError, object_path
from . import admission
from .runtime import Manager
from .storage import record_event
from .vm_restore import (SNAPSHOT_API, escape_pointer, new_condition, restore_progressing, snapshot_ready)

log = logging.getLogger("standin.vm-clone")

CLONE_API = "clone.kubevirt.io/v1beta1"
PLURAL = "virtualmachineclones"
KIND = "VirtualMachineClone"
COMPONENT = "clone-controller"

# clone_base.go events and errors
SNAPSHOT_CREATED, SNAPSHOT_READY = "SnapshotCreated", "SnapshotReady"
RESTORE_CREATED, RESTORE_CREATION_FAILED, RESTORE_READY = "RestoreCreated", "RestoreCreationFailed", "RestoreReady"
TARGET_VM_CREATED, PVC_BOUND = "TargetVMCreated", "PVCBound"
SNAPSHOT_DELETED, SNAPSHOT_CONTENT_INVALID = "SnapshotDeleted", "SnapshotContentInvalid"
SOURCE_DOES_NOT_EXIST = "SourceDoesNotExist"
SOURCE_WITH_BACKEND_STORAGE_INVALID = "SourceVMWithBackendStorageInvalid"
VM_VOLUME_SNAPSHOTS_INVALID = "VMVolumeSnapshotsInvalid"
ERR_VOLUME_NOT_SNAPSHOTABLE = "Virtual Machine volume %s does not support snapshots"
ERR_VOLUME_SNAPSHOT_SUPPORT_UNKNOWN = "Virtual Machine volume %s snapshot support unknown"
ERR_VOLUME_NOT_BACKED_UP = "volume %s is not backed up in snapshot %s"
ERR_SOURCE_DOESNT_EXIST = "Source doesnt exist"
ERR_SOURCE_WITH_BACKEND_STORAGE = "Clone of source with backendstorage is not supported"
LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"


def _backend_storage(vm: JSON) -> bool:
    """backendstorage.IsBackendStorageNeeded: a persistent TPM or a persistent EFI."""
    domain = (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("domain") or {}
    efi = ((domain.get("firmware") or {}).get("bootloader") or {}).get("efi") or {}
    return bool(((domain.get("devices") or {}).get("tpm") or {}).get("persistent") or efi.get("persistent"))


# -- vm-target.go ---------------------------------------------------------------------------------------

def remove_patches(mapping: Optional[Dict[str, str]], filters: Optional[List[str]], base: str) -> List[JSON]:
    """addRemovePatchesFromFilter."""
    if filters is None:
        return []
    regular, negation = [], []
    for item in filters:
        if item == "*":
            regular.append(".*")
        elif item.startswith("!"):
            negation.append(item[1:])
        else:
            regular.append(item)

    def match(regex: str, text: str) -> bool:
        try:
            return re.search(regex, text) is not None
        except re.error:
            log.error("matching regex %s to string %s failed", regex, text)
            return False

    included = set()
    for key in mapping or {}:
        for item in regular:
            if match(item, key):
                included.add(key)
        for item in negation:
            if match(item, key):
                included.discard(key)
    # patch.WithRemove: generateStringPatchOperations marshals a PatchOperation value, so its pointer-receiver
    # MarshalJSON (which drops "value" for remove) is not used and "value": null is written
    # (pkg/apimachinery/patch/patch.go PatchOperation, vm-target.go generateStringPatchOperations)
    return [{"op": "remove", "path": f"{base}/{escape_pointer(key)}", "value": None}
            for key in (mapping or {}) if key not in included]


def generate_patches(source: JSON, spec: JSON) -> List[str]:
    """generatePatches, each operation marshalled on its own as KubeVirt's PatchSet does."""
    vm_spec = source.get("spec") or {}
    template = vm_spec.get("template") or {}
    domain = (template.get("spec") or {}).get("domain") or {}
    ops: List[JSON] = []
    new_macs = spec.get("newMacAddresses") or {}
    for index, iface in enumerate((domain.get("devices") or {}).get("interfaces") or []):
        ops.append({"op": "replace", "path": f"/spec/template/spec/domain/devices/interfaces/{index}/macAddress",
                    "value": new_macs.get(iface.get("name"), "")})
    firmware = domain.get("firmware")
    if firmware is not None:
        ops.append({"op": "replace", "path": "/spec/template/spec/domain/firmware/serial",
                    "value": spec.get("newSMBiosSerial") or ""})
    meta = source.get("metadata") or {}
    ops += remove_patches(meta.get("labels"), spec.get("labelFilters"), "/metadata/labels")
    annotations = dict(meta.get("annotations") or {})
    annotations.pop(LAST_RESTORE, None)  # addAnnotationPatches
    ops += remove_patches(annotations, spec.get("annotationFilters"), "/metadata/annotations")
    template_meta = template.get("metadata") or {}
    template_filters = spec.get("template") or {}
    ops += remove_patches(template_meta.get("labels"), template_filters.get("labelFilters"),
                          "/spec/template/metadata/labels")
    ops += remove_patches(template_meta.get("annotations"), template_filters.get("annotationFilters"),
                          "/spec/template/metadata/annotations")
    if firmware is not None:
        ops.append({"op": "replace", "path": "/spec/template/spec/domain/firmware/uuid", "value": ""})
    patches = [json.dumps(op, separators=(",", ":")) for op in ops]
    return patches + list(spec.get("patches") or [])


def _owner(clone: JSON) -> JSON:
    """getCloneOwnerReference."""
    return {"apiVersion": CLONE_API, "kind": KIND, "name": clone["metadata"]["name"], "uid": clone["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def _update_condition(conditions: List[JSON], cond: JSON) -> List[JSON]:
    """util.go updateCondition with includeReason."""
    out = [dict(c) for c in conditions]
    for i, existing in enumerate(out):
        if existing.get("type") == cond["type"]:
            if existing.get("status") != cond["status"] or existing.get("reason") != cond["reason"]:
                out[i] = cond
            return out
    out.append(cond)
    return out


class SyncInfo:
    def __init__(self):
        self.err: Optional[str] = None
        self.snapshot_name = ""
        self.snapshot_ready = False
        self.restore_name = ""
        self.restore_ready = False
        self.target_vm_name = ""
        self.target_vm_created = False
        self.pvc_bound = False
        self.event = ""
        self.reason = ""
        self.failing = False
        self.pending = False

    def failing_or_error(self) -> bool:
        return self.err is not None or self.failing


class VMCloneController:
    def __init__(self, manager: Manager, kube: Kube):
        self.manager = manager
        self.kube = kube
        self.clones = manager.informer("vmclones", object_path(CLONE_API, PLURAL), ("VMClone",))
        # The restore controller's informers (vm_restore.py), shared: snapshots, contents, restores; and the
        # cluster's VMs and PVCs. clone_base.go's handlers wake the clones concerned; here every clone of the
        # object's namespace.
        self.snapshots = manager.informers["restore-vmsnapshots"]
        self.contents = manager.informers["restore-vmsnapshotcontents"]
        self.restores = manager.informers["vmrestores"]
        self.vms = manager.informers["vms"]
        self.pvcs = manager.informers["pvcs"]
        for informer in (self.snapshots, self.restores, self.vms, self.pvcs):
            informer.add_handler(self._requeue_namespace)
        manager.reconciler("VMClone", self.execute)

    def _requeue_namespace(self, obj: JSON) -> None:
        namespace = obj["metadata"].get("namespace", "")
        for clone in self.clones.list():
            if clone["metadata"].get("namespace") == namespace:
                self.manager.queue.add(("VMClone", namespace, clone["metadata"]["name"]))

    def _record(self, clone: JSON, reason: str, message: str, event_type: str = "Normal") -> None:
        """logAndRecord."""
        log.info("%s", message)
        record_event(self.kube, clone, KIND, CLONE_API, event_type, reason, message, COMPONENT)

    @staticmethod
    def _path(clone: JSON) -> str:
        return object_path(CLONE_API, PLURAL, clone["metadata"]["name"], clone["metadata"]["namespace"])

    # -- execute --------------------------------------------------------------------------------------

    def execute(self, namespace: str, name: str) -> Optional[float]:
        clone = copy.deepcopy(self.clones.get(namespace, name))
        if clone is None:
            return None
        status = clone.get("status") or {}
        if status.get("phase") == "Succeeded" and self.vms.get(namespace, status.get("targetName") or "") is None:
            if not clone["metadata"].get("deletionTimestamp"):
                self.kube.delete(self._path(clone))
            return None
        info = self._sync(clone)
        if info is None:
            return 1.0
        self._update_status(clone, info)
        return 1.0 if info.err is not None else None

    def _sync(self, clone: JSON) -> Optional[SyncInfo]:
        """sync and retrieveCloneInfo."""
        namespace = clone["metadata"]["namespace"]
        source = (clone.get("spec") or {}).get("source") or {}
        kind, name = source.get("kind"), source.get("name", "")
        source_vm = snapshot = None
        snapshot_name = ""
        if kind == "VirtualMachine":
            source_vm = self.vms.get(namespace, name)
            if source_vm is None:
                info = SyncInfo()
                info.pending, info.event = True, SOURCE_DOES_NOT_EXIST
                info.reason = f"{ERR_SOURCE_DOESNT_EXIST}: VirtualMachine {namespace}/{name}"
                return info
            if _backend_storage(source_vm):
                info = SyncInfo()
                info.failing, info.event = True, SOURCE_WITH_BACKEND_STORAGE_INVALID
                info.reason = f"{ERR_SOURCE_WITH_BACKEND_STORAGE}: VM {namespace}/{name}"
                return info
        elif kind == "VirtualMachineSnapshot":
            snapshot = self.snapshots.get(namespace, name)
            if snapshot is None:
                info = SyncInfo()
                info.pending, info.event = True, SOURCE_DOES_NOT_EXIST
                info.reason = f"{ERR_SOURCE_DOESNT_EXIST}: VirtualMachineSnapshot {namespace}/{name}"
                return info
            snapshot_name = name
        else:
            log.warning("clone %s is defined with an unknown source type %s", clone["metadata"]["name"], kind)
            return None
        if not snapshot_name and (clone.get("status") or {}).get("snapshotName"):
            snapshot_name = clone["status"]["snapshotName"]
        target = (clone.get("spec") or {}).get("target")
        if target is not None and target.get("kind") != "VirtualMachine":
            info = SyncInfo()
            info.err = f"target type is unknown: {target.get('kind')}"
            return info
        return self._sync_target_vm(clone, kind, source_vm, snapshot, snapshot_name)

    def _sync_target_vm(self, clone: JSON, kind: str, source_vm: Optional[JSON], snapshot: Optional[JSON],
                        snapshot_name: str) -> SyncInfo:
        """syncTargetVM, its switch with fallthrough written as a sequence of steps."""
        info = SyncInfo()
        status = clone.get("status") or {}
        phase = status.get("phase") or ""
        namespace = clone["metadata"]["namespace"]
        order = ["", "SnapshotInProgress", "RestoreInProgress", "CreatingTargetVM", "Succeeded"]
        if phase not in order:
            log.info("clone %s is in phase %s - nothing to do", clone["metadata"]["name"], phase)
            return info
        step = order.index(phase)
        if step <= 1:
            if kind == "VirtualMachine" and not status.get("snapshotName"):
                return self._create_snapshot(clone, source_vm, info)
            snapshot, info = self._verify_snapshot_ready(clone, snapshot_name, info)
            if info.failing_or_error() or not info.snapshot_ready:
                return info
        if step <= 2:
            if snapshot is None:
                snapshot = self.snapshots.get(namespace, snapshot_name)
                if snapshot is None:
                    info.failing, info.event = True, SNAPSHOT_DELETED
                    info.reason = f"snapshot {snapshot_name} does not exist anymore"
                    return info
            if not status.get("restoreName"):
                content = self._content(snapshot)
                if content is None:
                    # sync (clone.go:233-236) with getVmFromSnapshot -> getSnapshotContent
                    info.err = f"cannot get VM manifest from snapshot: {self._content_missing(snapshot)}"
                    return info
                vm = ((content.get("spec") or {}).get("source") or {}).get("virtualMachine") or {}
                return self._create_restore(clone, vm, snapshot_name, info)
            info = self._verify_restore_ready(clone, info)
            if info.failing_or_error() or not info.restore_ready:
                return info
        if step <= 3:
            info = self._verify_vm_ready(clone, info)
            if info.failing_or_error():
                return info
        if status.get("restoreName"):
            info = self._verify_pvc_bound(clone, info)
            if info.failing_or_error() or not info.pvc_bound:
                return info
            # cleanupRestore, cleanupSnapshot
            self.kube.delete(object_path(SNAPSHOT_API, "virtualmachinerestores", status["restoreName"], namespace))
            if kind == "VirtualMachine" and status.get("snapshotName"):
                self.kube.delete(object_path(SNAPSHOT_API, "virtualmachinesnapshots", status["snapshotName"], namespace))
        return info

    @staticmethod
    def _content_name(snapshot: JSON) -> str:
        """snapshot.go GetVMSnapshotContentName: status.virtualMachineSnapshotContentName, else vmsnapshot-content-<uid>."""
        return (snapshot.get("status") or {}).get("virtualMachineSnapshotContentName") or \
            f"vmsnapshot-content-{snapshot['metadata']['uid']}"

    def _content(self, snapshot: JSON) -> Optional[JSON]:
        return self.contents.get(snapshot["metadata"]["namespace"], self._content_name(snapshot))

    def _content_missing(self, snapshot: JSON) -> str:
        """getSnapshotContent's error."""
        return f"snapshot content {self._content_name(snapshot)} in namespace {snapshot['metadata']['namespace']} does not exist"

    def _create_snapshot(self, clone: JSON, vm: JSON, info: SyncInfo) -> SyncInfo:
        """createSnapshotFromVm with validateVolumeSnapshotStatus and generateSnapshot."""
        problems = []
        statuses = {s.get("name"): s for s in (vm.get("status") or {}).get("volumeSnapshotStatuses") or []}
        for volume in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []:
            if volume.get("persistentVolumeClaim") or volume.get("dataVolume"):
                found = statuses.get(volume["name"])
                if found is None:
                    problems.append(ERR_VOLUME_SNAPSHOT_SUPPORT_UNKNOWN % volume["name"])
                elif not found.get("enabled"):
                    problems.append(ERR_VOLUME_NOT_SNAPSHOTABLE % volume["name"])
        if problems:
            pending = SyncInfo()
            pending.pending, pending.event, pending.reason = True, VM_VOLUME_SNAPSHOTS_INVALID, "\n".join(problems)
            return pending
        name = f"tmp-snapshot-{clone['metadata']['uid']}"
        snapshot = {"apiVersion": SNAPSHOT_API, "kind": "VirtualMachineSnapshot",
                    "metadata": {"name": name, "namespace": vm["metadata"]["namespace"],
                                 "ownerReferences": [_owner(clone)]},
                    "spec": {"source": {"kind": "VirtualMachine", "name": vm["metadata"]["name"],
                                        "apiGroup": "kubevirt.io"}}}
        try:
            self.kube.create(object_path(SNAPSHOT_API, "virtualmachinesnapshots", namespace=vm["metadata"]["namespace"]),
                             snapshot)
        except KubeError as err:
            if err.status != 409:
                info.err = f"failed creating snapshot {name} for clone {clone['metadata']['name']}: {err}"
                return info
            info.snapshot_name = name
            return info
        self._record(clone, SNAPSHOT_CREATED, f"created snapshot {name} for clone {clone['metadata']['name']}")
        info.snapshot_name = name
        return info

    def _verify_snapshot_ready(self, clone: JSON, name: str, info: SyncInfo):
        namespace = clone["metadata"]["namespace"]
        snapshot = self.snapshots.get(namespace, name)
        if snapshot is None:
            info.err = f"snapshot {name} is not created yet for clone {clone['metadata']['name']}"
            return None, info
        if not snapshot_ready(snapshot):
            return snapshot, info
        problem = self._verify_content(snapshot)
        if problem:
            info.failing, info.event, info.reason = True, SNAPSHOT_CONTENT_INVALID, problem
            return None, info
        self._record(clone, SNAPSHOT_READY, f"snapshot {name} for clone {clone['metadata']['name']} is ready to use")
        info.snapshot_ready = True
        return snapshot, info

    def _verify_content(self, snapshot: JSON) -> str:
        """verifySnapshotContent."""
        content = self._content(snapshot)
        if content is None:
            return self._content_missing(snapshot)
        snapshot_name = (content.get("spec") or {}).get("virtualMachineSnapshotName")
        if not snapshot_name:
            return f"cannot get snapshot name from content {content['metadata']['name']}"
        vm = ((content.get("spec") or {}).get("source") or {}).get("virtualMachine") or {}
        template = (vm.get("spec") or {}).get("template")
        if template is None:
            return ""
        if _backend_storage(vm):
            return f"{ERR_SOURCE_WITH_BACKEND_STORAGE}: snapshot {snapshot['metadata']['namespace']}/{snapshot['metadata']['name']}"
        backed = {b.get("volumeName") for b in content["spec"].get("volumeBackups") or []}
        missing = [ERR_VOLUME_NOT_BACKED_UP % (v["name"], snapshot_name)
                   for v in (template.get("spec") or {}).get("volumes") or []
                   if (v.get("persistentVolumeClaim") or v.get("dataVolume")) and v["name"] not in backed]
        return "\n".join(missing)

    def _create_restore(self, clone: JSON, vm: JSON, snapshot_name: str, info: SyncInfo) -> SyncInfo:
        """createRestoreFromVm with generatePatches and generateRestore."""
        spec = clone.get("spec") or {}
        patches = generate_patches(vm, spec)
        target = copy.deepcopy(spec.get("target") or {})
        if not target.get("name"):
            # generateVMName: <source>-clone-<5 random characters>
            target["name"] = f"{vm['metadata']['name']}-clone-{_random_suffix()}"
        name = f"tmp-restore-{clone['metadata']['uid']}"
        restore = {"apiVersion": SNAPSHOT_API, "kind": "VirtualMachineRestore",
                   "metadata": {"name": name, "namespace": clone["metadata"]["namespace"],
                                "ownerReferences": [_owner(clone)]},
                   "spec": {"target": target, "virtualMachineSnapshotName": snapshot_name, "patches": patches}}
        if spec.get("volumeNamePolicy"):
            restore["spec"]["volumeRestorePolicy"] = (
                "PrefixTargetName" if spec["volumeNamePolicy"] == "PrefixTargetName" else "RandomizeNames")
        try:
            self.kube.create(object_path(SNAPSHOT_API, "virtualmachinerestores",
                                         namespace=clone["metadata"]["namespace"]), restore)
        except KubeError as err:
            if err.status != 409:
                message = f"failed creating restore {name} for clone {clone['metadata']['name']}: {err}"
                self._record(clone, RESTORE_CREATION_FAILED, message, "Warning")
                info.err = message
                return info
            info.restore_name = name
            return info
        self._record(clone, RESTORE_CREATED, f"created restore {name} for clone {clone['metadata']['name']}")
        info.restore_name = name
        return info

    def _verify_restore_ready(self, clone: JSON, info: SyncInfo) -> SyncInfo:
        name = clone["status"]["restoreName"]
        restore = self.restores.get(clone["metadata"]["namespace"], name)
        if restore is None:
            info.err = f"restore {name} is not created yet for clone {clone['metadata']['name']}"
            return info
        if restore_progressing(restore):
            return info
        self._record(clone, RESTORE_READY, f"restore {name} for clone {clone['metadata']['name']} is ready to use")
        info.restore_ready = True
        info.target_vm_name = ((restore.get("spec") or {}).get("target") or {}).get("name", "")
        return info

    def _verify_vm_ready(self, clone: JSON, info: SyncInfo) -> SyncInfo:
        target = ((clone.get("spec") or {}).get("target") or {}).get("name", "")
        if self.vms.get(clone["metadata"]["namespace"], target) is None:
            info.err = f"target VM {target} is not created yet for clone {clone['metadata']['name']}"
            return info
        self._record(clone, TARGET_VM_CREATED, f"created target VM {target} for clone {clone['metadata']['name']}")
        info.target_vm_created = True
        return info

    def _verify_pvc_bound(self, clone: JSON, info: SyncInfo) -> SyncInfo:
        namespace = clone["metadata"]["namespace"]
        name = clone["status"]["restoreName"]
        restore = self.restores.get(namespace, name)
        if restore is None:
            info.err = f"restore {name} is not created yet for clone {clone['metadata']['name']}"
            return info
        for item in (restore.get("status") or {}).get("restores") or []:
            pvc = self.pvcs.get(namespace, item.get("persistentVolumeClaim", ""))
            if pvc is None:
                info.err = f"PVC {item.get('persistentVolumeClaim')} is not created yet for clone {clone['metadata']['name']}"
                return info
            if (pvc.get("status") or {}).get("phase") != "Bound":
                return info
        self._record(clone, PVC_BOUND, f"all PVC for clone {clone['metadata']['name']} are bound")
        info.pvc_bound = True
        return info

    # -- updateStatus ---------------------------------------------------------------------------------

    def _update_status(self, original: JSON, info: SyncInfo) -> None:
        clone = copy.deepcopy(original)
        status = clone.setdefault("status", {})
        conditions = status.get("conditions") or []

        def conds(progressing: str, p_reason: str, ready: str, r_reason: str) -> None:
            nonlocal conditions
            conditions = _update_condition(conditions, new_condition("Progressing", progressing, p_reason))
            conditions = _update_condition(conditions, new_condition("Ready", ready, r_reason))

        if info.pending:
            self._record(clone, info.event, info.reason)
            conds("False", "Pending", "False", info.reason)
        elif info.failing:
            self._record(clone, info.event, info.reason)
            status["phase"] = "Failed"
            conds("False", "Failed", "False", info.reason)
        else:
            conds("True", "Still processing", "False", "Still processing")
        phase = status.get("phase") or ""
        if phase == "" and not info.pending:
            phase = status["phase"] = "SnapshotInProgress"
        if phase == "SnapshotInProgress":
            if info.snapshot_name:
                status["snapshotName"] = info.snapshot_name
            if info.snapshot_ready:
                phase = status["phase"] = "RestoreInProgress"
        if phase == "RestoreInProgress":
            if info.restore_name:
                status["restoreName"] = info.restore_name
            if info.restore_ready:
                phase = status["phase"] = "CreatingTargetVM"
        if phase == "CreatingTargetVM":
            if info.target_vm_name:
                status["targetName"] = info.target_vm_name
            if info.target_vm_created:
                phase = status["phase"] = "Succeeded"
        if phase == "Succeeded":
            conds("False", "Ready", "True", "Ready")
        if info.pvc_bound:
            status.pop("snapshotName", None)
            status.pop("restoreName", None)
        status["conditions"] = conditions
        if status != (original.get("status") or {}):
            self.kube.request("PUT", self._path(clone) + "/status", clone)


def _random_suffix(length: int = 5) -> str:
    """k8s.io/apimachinery/pkg/util/rand.String: lower-case consonants and digits."""
    return "".join(random.choice("bcdfghjklmnpqrstvwxz2456789") for _position in range(length))


# -- webhooks ------------------------------------------------------------------------------------------------

_MAC = re.compile(r"^(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")


def _cause(message: str, field: str) -> JSON:
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


def _validate_filters(filters: Optional[List[str]], field: str) -> List[JSON]:
    """vmclone-admitter.go validateFilters."""
    causes = []
    for item in filters or []:
        if len(item) == 1:
            if item == "!":
                causes.append(_cause("a negation character is not a valid filter", field))
            continue
        pattern = "%s filter %s is invalid: cannot contain a %s character (%s); FilterRules: %s"
        if "!" in item[1:]:
            causes.append(_cause(pattern % (field, item, "negation", "!",
                                            "NegationChar can be only used at the beginning of the filter"), field))
        if "*" in item[:-1]:
            causes.append(_cause(pattern % (field, item, "wildcard", "*",
                                            "WildcardChar can be only at the end of the filter"), field))
    return causes


def _snapshot_enabled(config: JSON) -> bool:
    dev = config.get("developerConfiguration") or {}
    return "Snapshot" in (dev.get("featureGates") or []) or "Snapshot" not in (dev.get("disabledFeatureGates") or [])


def admit_clone(request: JSON, config: JSON) -> JSON:
    """VirtualMachineCloneAdmitter.Admit."""
    resource = request.get("resource") or {}
    if resource.get("group") != "clone.kubevirt.io":
        return {"allowed": False, "status": {"message": f"unexpected group: {resource.get('group')}. Expected group: "
                                             "clone.kubevirt.io", "code": 400}}
    if resource.get("resource") != PLURAL:
        return {"allowed": False, "status": {"message": f"unexpected resource: {resource.get('resource')}. Expected "
                                             f"resource: {PLURAL}", "code": 400}}
    if request.get("operation") == "CREATE" and not _snapshot_enabled(config):
        return {"allowed": False, "status": {"message": "snapshot feature gate is not enabled", "code": 400}}
    clone = request.get("object") or {}
    spec = clone.get("spec") or {}
    template = spec.get("template") or {}
    causes = (_validate_filters(spec.get("annotationFilters"), "spec.annotations")
              + _validate_filters(spec.get("labelFilters"), "spec.labels")
              + _validate_filters(template.get("annotationFilters"), "spec.template.annotations")
              + _validate_filters(template.get("labelFilters"), "spec.template.labels"))
    source, target = spec.get("source"), spec.get("target")
    # validateSourceAndTargetKind
    if (source or {}).get("kind", "") not in ("VirtualMachine", "VirtualMachineSnapshot"):
        causes.append(_cause("Source kind is not supported", "spec.Source.Kind"))
    if target is not None and target.get("kind", "") != "VirtualMachine":
        causes.append(_cause("Target kind is not supported", "spec.Target.Kind"))
    # validateSource
    if source is None:
        causes.append(_cause("Source cannot be nil", "spec.Source"))
    else:
        if not source.get("apiGroup"):
            causes.append(_cause("Source's APIGroup cannot be empty", "spec.Source.APIGroup"))
        if not source.get("kind"):
            causes.append(_cause("Source's Kind cannot be empty", "spec.Source"))
        if not source.get("name"):
            causes.append(_cause("Source's name cannot be empty", "spec.Source.Name"))
    # validateTarget
    if source is not None and target is not None and source.get("kind") == "VirtualMachine" and \
            target.get("kind") == "VirtualMachine" and target.get("name") == source.get("name"):
        causes.append(_cause("Target name cannot be equal to source name when both are VirtualMachines",
                             "spec.target.name"))
    # validateNewMacAddresses
    for iface, mac in (spec.get("newMacAddresses") or {}).items():
        if mac and not _MAC.match(mac):
            causes.append(_cause(f"interface {iface} has malformed MAC address ({mac}).", f"spec.newMacAddresses.{iface}"))
    # validatePatches
    for index, patch in enumerate(spec.get("patches") or []):
        try:
            json.loads(patch)
        except (TypeError, ValueError):
            causes.append(_cause(f"patch is not valid JSON ({patch})", f"spec.patches[{index}]"))
    if causes:
        return admission.denied(causes)  # webhookutils.ToAdmissionResponse: at most 10 causes
    return {"allowed": True}


def mutate_clone(request: JSON, _config: JSON) -> JSON:
    """CloneCreateMutator.Mutate: a missing target (or target name) gets clone-<source>-<suffix>."""
    resource = request.get("resource") or {}
    if resource.get("group") != "clone.kubevirt.io" or resource.get("resource") != PLURAL:
        return {"allowed": False, "status": {"message": f"expect resource to be '{PLURAL}'", "code": 400}}
    clone = request.get("object") or {}
    spec = copy.deepcopy(clone.get("spec") or {})
    source = spec.get("source") or {}
    target = spec.get("target")
    name = f"clone-{source.get('name', '')}-{_random_suffix()}"
    if target is None:
        spec["target"] = {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": name}
    elif not target.get("name"):
        spec["target"] = dict(target, name=name)
    else:
        return {"allowed": True}
    patch = [{"op": "replace", "path": "/spec", "value": spec}]
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}


# virt-operator components/webhooks.go VMCloneCreateValidatePath and VMCloneCreateMutatePath
ADMIT_PATH = "/vm-clone-validate-create"
MUTATE_PATH = "/vm-clone-mutate-create"
