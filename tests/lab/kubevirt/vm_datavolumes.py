"""virt-controller's handling of a VM's DataVolumes, at KubeVirt v1.9.0.

* pkg/virt-controller/watch/vm/vm.go sync -> handleDataVolumes: unless the VM is annotated
  kubevirt.io/immediate-data-volume-creation "false", every spec.dataVolumeTemplates entry without a
  DataVolume of its name gets one (pkg/virt-controller/watch/util/util.go CreateDataVolumeManifest,
  pkg/storage/types/dv.go GenerateDataVolumeFromTemplate): the template's metadata and spec, annotation
  cdi.kubevirt.io/allowClaimAdoption "true", label kubevirt.io/created-by = the VM's uid, the VM as
  controlling owner (the garbage collector deletes the DataVolume with the VM), the template's
  priorityClassName, a clone source's namespace defaulted to the VM's, a DataSource sourceRef resolved
  (GetResolvedCloneSource); event SuccessfulDataVolumeCreate "Created DataVolume <name>" on the VM.
  While one of them is not Succeeded (nor WaitForFirstConsumer / PendingPopulation) the VM's run strategy
  is not acted on (no VMI is created), except for Halted.
* vm.go setPrintableStatus, the storage states: DataVolumeError (HasDataVolumeErrors), Provisioning
  (HasDataVolumeProvisioning), WaitingForVolumeBinding (HasUnboundPVC while isSetToStart).
* vm.go addDataVolume / updateDataVolume -> queueVMsForDataVolume and addPVC / updatePVC: a DataVolume's
  change wakes its owning VM and the VMs whose volumes name it; a claim's change the VMs naming it.
* pkg/virt-controller/watch/vmi/lifecycle.go sync -> datavolumes.go areDataVolumesReady: the VMI's pod is
  not created while a (non-hotpluggable) DataVolume / PVC volume is not ready to attach
  (pkg/storage/types/pvc.go VolumeReadyToAttachToNode with CDI's IsSucceededOrPendingPopulation: a claim
  owned by a DataVolume is ready once that DataVolume is Succeeded or PendingPopulation, any other
  existing claim at once; a missing claim records FailedPvcNotFound "PVC <ns>/<name> does not exist,
  waiting for it to appear"). The VMI stays Pending meanwhile.

Not mirrored: clone authorization (vm.go handleCloneDataVolume, a SubjectAccessReview), the quota error
of a Pending DataVolume (HasDataVolumeExceededQuotaError), the VMI controller's DataVolume conditions
aggregation (aggregateDataVolumesConditions).
"""

import logging
from typing import List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from .runtime import Manager
from .storage import record_event

log = logging.getLogger("standin.vm-datavolumes")

DV_API = "cdi.kubevirt.io/v1beta1"
# kubevirt.io/api core/v1 ImmediateDataVolumeCreation, CreatedByLabel; pkg/storage/types/pvc.go
ANN_IMMEDIATE_DV_CREATION = "kubevirt.io/immediate-data-volume-creation"
LABEL_CREATED_BY = "kubevirt.io/created-by"
ANN_ALLOW_CLAIM_ADOPTION = "cdi.kubevirt.io/allowClaimAdoption"
# vm.go SuccessfulDataVolumeCreateReason / FailedDataVolumeCreateReason; pkg/controller FailedPvcNotFoundReason
SUCCESSFUL_CREATE = "SuccessfulDataVolumeCreate"
FAILED_CREATE = "FailedDataVolumeCreate"
FAILED_PVC_NOT_FOUND = "FailedPvcNotFound"
FAILED_IMPORT = "FailedDataVolumeImport"
# pkg/virt-controller/watch/application.go: the VM and VMI controllers' recorder
COMPONENT = "virtualmachine-controller"
READY_PHASES = ("Succeeded", "WaitForFirstConsumer", "PendingPopulation")

_ACTIVE: Optional["VMDataVolumes"] = None


def claim_name(volume: JSON) -> str:
    """pkg/storage/types/pvc.go PVCNameFromVirtVolume."""
    if volume.get("dataVolume"):
        return volume["dataVolume"].get("name") or ""
    if volume.get("persistentVolumeClaim"):
        return volume["persistentVolumeClaim"].get("claimName") or ""
    if volume.get("memoryDump"):
        return volume["memoryDump"].get("claimName") or ""
    return ""


def _condition(obj: Optional[JSON], kind: str) -> Optional[JSON]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _run_strategy(vm: JSON) -> str:
    spec = vm.get("spec") or {}
    return spec.get("runStrategy") or ("Always" if spec.get("running") else "Halted")


def is_set_to_start(vm: JSON, vmi: Optional[JSON]) -> bool:
    """vm.go isSetToStart."""
    strategy = _run_strategy(vm)
    requests = (vm.get("status") or {}).get("stateChangeRequests") or []
    if strategy == "Always":
        return True
    if strategy == "Manual":
        if vmi is not None:
            # hasStopRequestForVMI
            return not (requests and requests[0].get("action") == "Stop"
                        and requests[0].get("uid") == vmi["metadata"]["uid"])
        return bool(requests) and requests[0].get("action") == "Start"
    if strategy == "RerunOnFailure":
        return vmi is None or (vmi.get("status") or {}).get("phase") != "Succeeded"
    if strategy == "Once":
        return vmi is None
    return False


class VMDataVolumes:
    def __init__(self, manager: Manager, kube: Kube, dv_informer, pvc_informer):
        self.manager = manager
        self.kube = kube
        self.dvs = dv_informer
        self.pvcs = pvc_informer
        dv_informer.add_handler(self._dv_changed)
        pvc_informer.add_handler(self._pvc_changed)
        self.reported: set = set()  # VMI uids whose missing claim was reported

    def _vms(self) -> List[JSON]:
        informer = self.manager.informers.get("vms")
        return informer.list() if informer is not None else []

    def _vms_naming(self, namespace: str, name: str) -> List[str]:
        return [vm["metadata"]["name"] for vm in self._vms()
                if vm["metadata"].get("namespace") == namespace
                and any(claim_name(v) == name
                        for v in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or [])]

    def _dv_changed(self, dv: JSON) -> None:
        """vm.go queueVMsForDataVolume (the owner, then the VMs whose volumes name it); the VMI controller's
        DataVolume handlers wake the VMIs using it (vmi/datavolumes.go)."""
        meta = dv["metadata"]
        namespace = meta.get("namespace", "")
        for ref in meta.get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == "VirtualMachine":
                self.manager.queue.add(("VM", namespace, ref["name"]))
        for name in self._vms_naming(namespace, meta["name"]):
            self.manager.queue.add(("VM", namespace, name))
            self.manager.queue.add(("VMI", namespace, name))

    def _pvc_changed(self, pvc: JSON) -> None:
        """vm.go addPVC / updatePVC: the VMs whose volumes name the claim (listVMsMatchingPVC)."""
        meta = pvc["metadata"]
        for name in self._vms_naming(meta.get("namespace", ""), meta["name"]):
            self.manager.queue.add(("VM", meta.get("namespace", ""), name))
            self.manager.queue.add(("VMI", meta.get("namespace", ""), name))

    # -- vm.go handleDataVolumes ------------------------------------------------------------------------

    def _manifest(self, vm: JSON, template: JSON) -> Optional[JSON]:
        """util.go CreateDataVolumeManifest with dv.go GenerateDataVolumeFromTemplate."""
        meta = vm["metadata"]
        tmeta = template.get("metadata") or {}
        spec = dict(template.get("spec") or {})
        dv_meta = {k: v for k, v in tmeta.items() if k not in ("labels", "annotations")}
        dv_meta["namespace"] = meta["namespace"]
        dv_meta["labels"] = {**(tmeta.get("labels") or {}), LABEL_CREATED_BY: meta["uid"]}
        dv_meta["annotations"] = {**(tmeta.get("annotations") or {}), ANN_ALLOW_CLAIM_ADOPTION: "true"}
        dv_meta["ownerReferences"] = [{"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                                       "name": meta["name"], "uid": meta["uid"], "controller": True,
                                       "blockOwnerDeletion": True}]
        priority = ((vm.get("spec") or {}).get("template") or {}).get("spec", {}).get("priorityClassName")
        if not spec.get("priorityClassName") and priority:
            spec["priorityClassName"] = priority
        source = self._resolved_clone_source(meta["namespace"], spec)
        if source is not None:
            spec.pop("sourceRef", None)
            spec["source"] = source
        return {"apiVersion": DV_API, "kind": "DataVolume", "metadata": dv_meta, "spec": spec}

    def _resolved_clone_source(self, namespace: str, spec: JSON) -> Optional[JSON]:
        """dv.go GetResolvedCloneSource: a DataSource sourceRef's PVC / snapshot source, namespaces defaulted."""
        source = spec.get("source")
        ref = spec.get("sourceRef") or {}
        if ref.get("kind") == "DataSource":
            ns = ref.get("namespace") or namespace
            ds = self.kube.get(object_path(DV_API, "datasources", ref.get("name", ""), ns))
            resolved = (ds.get("spec") or {}).get("source") or {}
            if resolved.get("dataSource") is not None:
                resolved = (ds.get("status") or {}).get("source") or {}
            source = {k: dict(resolved[k]) for k in ("pvc", "snapshot") if resolved.get(k) is not None}
            namespace = ns
        if not source:
            return None
        source = {k: dict(v) if isinstance(v, dict) else v for k, v in source.items()}
        for kind in ("pvc", "snapshot"):
            if source.get(kind) is not None:
                source[kind].setdefault("namespace", namespace)
                if not source[kind]["namespace"]:
                    source[kind]["namespace"] = namespace
                return source
        return None

    def handle(self, vm: JSON) -> bool:
        """vm.go handleDataVolumes: True when every templated DataVolume is ready for the VM to start."""
        meta = vm["metadata"]
        if (meta.get("annotations") or {}).get(ANN_IMMEDIATE_DV_CREATION) == "false":
            return True
        ready = True
        for template in (vm.get("spec") or {}).get("dataVolumeTemplates") or []:
            name = (template.get("metadata") or {}).get("name", "")
            current = self.dvs.get(meta["namespace"], name)
            if current is None:
                ready = False
                manifest = self._manifest(vm, template)  # a missing DataSource: an error, retried
                try:
                    self.kube.create(object_path(DV_API, "datavolumes", namespace=meta["namespace"]), manifest)
                except KubeError as err:
                    if err.status == 409:
                        continue  # already there: the watch has not shown it yet
                    record_event(self.kube, vm, "VirtualMachine", "kubevirt.io/v1", "Warning", FAILED_CREATE,
                                 f"Error creating DataVolume {name}: {err}", COMPONENT)
                    raise
                record_event(self.kube, vm, "VirtualMachine", "kubevirt.io/v1", "Normal", SUCCESSFUL_CREATE,
                             f"Created DataVolume {name}", COMPONENT)
                continue
            phase = (current.get("status") or {}).get("phase")
            if phase in READY_PHASES:
                continue
            if phase == "Failed":
                record_event(self.kube, vm, "VirtualMachine", "kubevirt.io/v1", "Warning", FAILED_IMPORT,
                             f"DataVolume {name} failed to import disk image", COMPONENT)
            ready = False
        return ready

    # -- vm.go setPrintableStatus, storage states -------------------------------------------------------

    def _volumes(self, vm: JSON) -> List[JSON]:
        return (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []

    def data_volume_error(self, vm: JSON) -> Optional[str]:
        """dv.go HasDataVolumeErrors."""
        namespace = vm["metadata"]["namespace"]
        for volume in self._volumes(vm):
            if not volume.get("dataVolume"):
                continue
            name = volume["dataVolume"].get("name", "")
            dv = self.dvs.get(namespace, name)
            if dv is None:
                continue
            if (dv.get("status") or {}).get("phase") == "Failed":
                return f"DataVolume {name} is in Failed phase"
            running = _condition(dv, "Running")
            if running and running.get("status") == "False" and running.get("reason") in ("Error", "ImagePullFailed"):
                return f"DataVolume {name} importer has stopped running due to an error: {running.get('message', '')}"
        return None

    def provisioning(self, vm: JSON) -> bool:
        """dv.go HasDataVolumeProvisioning."""
        namespace = vm["metadata"]["namespace"]
        for volume in self._volumes(vm):
            if not volume.get("dataVolume"):
                continue
            dv = self.dvs.get(namespace, volume["dataVolume"].get("name", ""))
            phase = (dv or {}).get("status", {}).get("phase")
            if dv is None or phase in ("Succeeded", "PendingPopulation"):
                continue
            bound = _condition(dv, "Bound")
            if (bound and bound.get("status") == "True") or phase != "WaitForFirstConsumer":
                return True
        return False

    def unbound_claim(self, vm: JSON) -> bool:
        """pvc.go HasUnboundPVC."""
        namespace = vm["metadata"]["namespace"]
        for volume in self._volumes(vm):
            name = claim_name(volume)
            pvc = self.pvcs.get(namespace, name) if name else None
            if pvc is not None and (pvc.get("status") or {}).get("phase") != "Bound":
                return True
        return False

    # -- vmi/datavolumes.go areDataVolumesReady ---------------------------------------------------------

    def vmi_volumes_ready(self, vmi: JSON) -> Tuple[bool, Optional[str]]:
        """(ready, the missing claim's message) for the VMI's non-hotpluggable DataVolume / PVC volumes."""
        namespace = vmi["metadata"]["namespace"]
        for volume in (vmi.get("spec") or {}).get("volumes") or []:
            source = volume.get("dataVolume") or volume.get("persistentVolumeClaim")
            if not source or source.get("hotpluggable"):
                continue
            name = claim_name(volume)
            pvc = self.pvcs.get(namespace, name)
            if pvc is None:
                return False, f"PVC {namespace}/{name} does not exist, waiting for it to appear"
            # containerized-data-importer-api IsSucceededOrPendingPopulation: checkDV on the controller owner
            owner = next((r for r in pvc["metadata"].get("ownerReferences") or []
                          if r.get("controller") and r.get("kind") == "DataVolume"), None)
            if owner is None:
                continue
            dv = self.dvs.get(namespace, owner.get("name", ""))
            if dv is None or dv["metadata"].get("uid") != owner.get("uid"):
                return False, None
            phase = (dv.get("status") or {}).get("phase")
            if phase in ("Succeeded", "PendingPopulation"):
                continue
            # IsWaitForFirstConsumerBeforePopulating: WFFC counts as ready (the pod binds the claim)
            if phase != "WaitForFirstConsumer":
                return False, None
        return True, None


def register(manager: Manager, kube: Kube, dv_informer, pvc_informer) -> VMDataVolumes:
    global _ACTIVE  # pylint: disable=global-statement
    _ACTIVE = VMDataVolumes(manager, kube, dv_informer, pvc_informer)
    return _ACTIVE


def handle_data_volumes(vm: JSON, run_strategy: str) -> bool:
    """The hook VirtController.reconcile_vm calls (vm.go sync): False while the run strategy must wait for
    the VM's DataVolumes ("not sure why we allow to proceed when halted but preserving legacy behavior")."""
    if _ACTIVE is None:
        return True
    return _ACTIVE.handle(vm) or run_strategy == "Halted"


def printable_status(vm: JSON, vmi: Optional[JSON]) -> Optional[str]:
    """vm.go setPrintableStatus between Running and Starting: DataVolumeError, then (after
    ErrorUnschedulable, which the caller checks when this returns None) Provisioning and
    WaitingForVolumeBinding."""
    if _ACTIVE is None:
        return None
    if _ACTIVE.data_volume_error(vm):
        return "DataVolumeError"
    scheduled = _condition(vmi, "PodScheduled")
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        return None
    if _ACTIVE.provisioning(vm):
        return "Provisioning"
    if is_set_to_start(vm, vmi) and _ACTIVE.unbound_claim(vm):
        return "WaitingForVolumeBinding"
    return None


def vmi_may_start(kube: Kube, vmi: JSON) -> bool:
    """The hook the VMI lifecycle calls before creating the pod (lifecycle.go sync: "Delaying pod creation
    while DataVolume populates or while we wait for PVCs to appear.")."""
    if _ACTIVE is None:
        return True
    ready, missing = _ACTIVE.vmi_volumes_ready(vmi)
    if missing and vmi["metadata"]["uid"] not in _ACTIVE.reported:
        _ACTIVE.reported.add(vmi["metadata"]["uid"])
        record_event(kube, vmi, "VirtualMachineInstance", "kubevirt.io/v1", "Normal", FAILED_PVC_NOT_FOUND,
                     missing, COMPONENT)
    return ready
