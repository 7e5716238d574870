"""Volume hotplug as KubeVirt v1.9.0 does it: virt-api's add/remove volume subresources, the VM
controller's volume requests and declarative hotplug, and the hotplug volume status that
virt-controller (attachment pods) and virt-handler (mount, domain attach) report on the VMI.

Which path a VM-level request takes depends on the feature gates, as in KubeVirt:
- `HotplugVolumes` (Deprecated in v1.9, on only when listed) enabled: virt-api writes the request
  to the VM's `status.volumeRequests` (pkg/virt-api/rest/volumes.go vmVolumePatchStatus); the VM
  controller applies it to the template and calls the VMI's addvolume/removevolume
  (pkg/virt-controller/watch/vm/vm.go handleVolumeRequests), then trims it (trimDoneVolumeRequests).
  Declarative hotplug is skipped (vm.go handleDeclarativeVolumeHotplug).
- only `DeclarativeHotplugVolumes` (Beta, on unless disabled): virt-api patches the VM template
  (volumes.go vmVolumePatch) and the VM controller syncs hotpluggable PVC/DataVolume volumes of the
  template to the running VMI (pkg/storage/hotplug/hotplug.go HandleDeclarativeVolumes).

There are no pods in the lab: the launcher pod's volumes are the volumes the VMI started with (its
VM's start revision), and attachment pods are records kept here (and rebuilt from the VMI status
after a restart of the stand-in). Each hotplug transition takes one step, as one round of
virt-controller and virt-handler would.
"""

import copy
import random
import string
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path

# pkg/virt-config/featuregate: name -> state (IsEnabled: GA always on, Beta on unless disabled,
# Alpha/Deprecated only when listed).
GATE_STATES = {"HotplugVolumes": "Deprecated", "DeclarativeHotplugVolumes": "Beta", "HotplugNICs": "GA",
               "VMLiveUpdateFeatures": "GA", "ExpandDisks": "GA", "LiveMigration": "GA"}

# pkg/virt-api/rest/volumes.go
HOTPLUG_NOT_ENABLED = "Enable DeclarativeHotplugVolumes or HotplugVolumes feature gate to use this API."
VMI_NOT_RUNNING = "VMI is not running"  # pkg/virt-api/rest/subresource.go vmiNotRunning

# pkg/controller/controller.go and pkg/virt-handler/controller.go reasons
SUCCESSFUL_CREATE = "SuccessfulCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
FAILED_PVC_NOT_FOUND = "FailedPvcNotFound"
PVC_NOT_READY = "PVCNotReady"
VOLUME_READY = "VolumeReady"
VOLUME_MOUNTED = "VolumeMountedToPod"
VOLUME_UNMOUNTED = "VolumeUnMountedFromPod"

# api/core/v1 VolumePhase
PENDING, BOUND, ATTACHED, MOUNTED, READY = "Pending", "Bound", "AttachedToNode", "MountedToPod", "Ready"
DETACHING, UNMOUNTED = "Detaching", "UnMountedFromPod"

STATUS_WEBHOOK = "kubevirt-crd-status-validator.kubevirt.io"


def gate_enabled(config: JSON, gate: str) -> bool:
    """pkg/virt-config/featuregate/feature-gates.go IsEnabled."""
    state = GATE_STATES.get(gate, "Alpha")
    if state == "GA":
        return True
    dev = config.get("developerConfiguration") or {}
    if gate in (dev.get("featureGates") or []):
        return True
    if gate in (dev.get("disabledFeatureGates") or []):
        return False
    return state == "Beta"


def legacy_hotplug(config: JSON) -> bool:
    """volumes.go: the VM-level request goes to status.volumeRequests when HotplugVolumes is on."""
    return gate_enabled(config, "HotplugVolumes")


def declarative_hotplug(config: JSON) -> bool:
    """vm.go handleDeclarativeVolumeHotplug: skipped when HotplugVolumes is on or the Beta gate is off."""
    return not gate_enabled(config, "HotplugVolumes") and gate_enabled(config, "DeclarativeHotplugVolumes")


def hotplug_api_enabled(config: JSON) -> bool:
    """volumes.go hotplugVolumesEnabled."""
    return gate_enabled(config, "HotplugVolumes") or gate_enabled(config, "DeclarativeHotplugVolumes")


# -- volume helpers (pkg/storage/types/volume.go, pkg/controller/controller.go) ----------------------

def is_hotplug_volume(volume: JSON) -> bool:
    """pkg/storage/types/volume.go IsDeclarativeHotplugVolume (PVC or DataVolume marked hotpluggable)."""
    return bool((volume.get("persistentVolumeClaim") or {}).get("hotpluggable")
                or (volume.get("dataVolume") or {}).get("hotpluggable"))


def claim_name(volume: JSON) -> str:
    """pkg/storage/types PVCNameFromVirtVolume."""
    if volume.get("persistentVolumeClaim") is not None:
        return volume["persistentVolumeClaim"].get("claimName", "")
    if volume.get("dataVolume") is not None:
        return volume["dataVolume"].get("name", "")
    return ""


def _spec_lists(spec: JSON) -> Tuple[List[JSON], List[JSON]]:
    return list(spec.get("volumes") or []), list(((spec.get("domain") or {}).get("devices") or {}).get("disks") or [])


def apply_volume_request(spec: JSON, request: JSON) -> JSON:
    """pkg/controller/controller.go ApplyVolumeRequestOnVMISpec, on a copy of a VMI spec."""
    spec = copy.deepcopy(spec)
    volumes, disks = _spec_lists(spec)
    add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
    if add is not None:
        if not any(v.get("name") == add.get("name") for v in volumes):
            new_volume: JSON = {"name": add.get("name")}
            source = add.get("volumeSource") or {}
            if source.get("persistentVolumeClaim") is not None:
                new_volume["persistentVolumeClaim"] = {**source["persistentVolumeClaim"], "hotpluggable": True}
            elif source.get("dataVolume") is not None:
                new_volume["dataVolume"] = {**source["dataVolume"], "hotpluggable": True}
            volumes.append(new_volume)
            if add.get("disk") is not None:
                disks.append({**copy.deepcopy(add["disk"]), "name": add.get("name")})
    elif remove is not None:
        volumes = [v for v in volumes if v.get("name") != remove.get("name")]
        disks = [d for d in disks if d.get("name") != remove.get("name")]
    spec["volumes"] = volumes
    spec.setdefault("domain", {}).setdefault("devices", {})["disks"] = disks
    return spec


# -- virt-api: pkg/virt-api/rest/volumes.go -------------------------------------------------------

def _volume_source_name(source: JSON) -> str:
    """volumes.go volumeSourceName."""
    if source.get("dataVolume") is not None:
        return source["dataVolume"].get("name", "")
    if source.get("persistentVolumeClaim") is not None:
        return source["persistentVolumeClaim"].get("claimName", "")
    return ""


def verify_volume_option(volumes: List[JSON], request: JSON) -> Optional[str]:
    """volumes.go verifyVolumeOption: the error text, or None."""
    add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
    found_remove = False
    for volume in volumes:
        if add is not None:
            source_name = _volume_source_name(add.get("volumeSource") or {})
            if volume.get("name") == add.get("name"):
                return f"Unable to add volume [{add.get('name')}] because volume with that name already exists"
            if claim_name(volume) == source_name and (volume.get("dataVolume") or volume.get("persistentVolumeClaim")):
                return f"Unable to add volume source [{source_name}] because it already exists"
        elif remove is not None and (volume.get("name") == remove.get("name")
                                     or (claim_name(volume) and claim_name(volume) == remove.get("name"))):
            if not is_hotplug_volume(volume):
                return f"Unable to remove volume [{volume.get('name')}] because it is not hotpluggable"
            found_remove = True
            break
    if remove is not None and not found_remove:
        return f"Unable to remove volume [{remove.get('name')}] because it does not exist"
    return None


def _volume_request_patch(prefix: str, spec: JSON, request: JSON) -> list:
    """volumes.go generateVolumeRequestPatch: test the lists, then replace (or add) them."""
    new_spec = apply_volume_request(spec, request)
    volumes, disks = _spec_lists(spec)
    new_volumes, new_disks = _spec_lists(new_spec)
    volume_path, disk_path = prefix + "/spec/volumes", prefix + "/spec/domain/devices/disks"
    ops: list = [{"op": "test", "path": volume_path, "value": spec.get("volumes")},
                 {"op": "test", "path": disk_path, "value": ((spec.get("domain") or {}).get("devices") or {}).get("disks")}]
    ops.append({"op": "replace" if volumes else "add", "path": volume_path, "value": new_volumes})
    ops.append({"op": "replace" if disks else "add", "path": disk_path, "value": new_disks})
    return ops


def _vm_volume_requests(vm: JSON, request: JSON) -> List[JSON]:
    """volumes.go generateVMVolumeRequestPatch (addAddVolumeRequests / addRemoveVolumeRequests)."""
    current = (vm.get("status") or {}).get("volumeRequests") or []
    add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
    if add is not None:
        name = add.get("name")
        for existing in current:
            if (existing.get("addVolumeOptions") or {}).get("name") == name:
                raise ValueError(f"add volume request for volume [{name}] already exists")
            if (existing.get("removeVolumeOptions") or {}).get("name") == name:
                raise ValueError(f"unable to add volume since a remove volume request for volume [{name}] "
                                 f"already exists and is still being processed")
        return current + [request]
    name = remove.get("name")
    kept = []
    for existing in current:
        if (existing.get("addVolumeOptions") or {}).get("name") == name:
            continue  # a pending add of the same volume is dropped
        if (existing.get("removeVolumeOptions") or {}).get("name") == name:
            raise ValueError(f"a remove volume request for volume [{name}] already exists and is still being processed")
        kept.append(existing)
    return kept + [request]


def _disk_bus(disk: JSON) -> str:
    """pkg/storage/admitters/disks.go getDiskBus."""
    for kind in ("disk", "lun", "cdrom"):
        if disk.get(kind) is not None:
            return (disk[kind] or {}).get("bus", "")
    return ""


def validate_hotplug_disk(disk: Optional[JSON], name: str, prefix: str, field: str) -> Optional[JSON]:
    """pkg/storage/admitters/storagehotplug.go ValidateHotplugDiskConfiguration: the first cause."""
    def bad(message: str, at: str = field) -> JSON:
        return {"reason": "FieldValueInvalid", "message": message, "field": at}
    if disk is None:
        return bad(f"{prefix} for [{name}] requires the disk field to be set.")
    bus = _disk_bus(disk)
    if disk.get("disk") is not None:
        if bus not in ("scsi", "virtio"):
            return bad(f"{prefix} for disk [{name}] requires bus to be 'scsi' or 'virtio'. [{bus}] is not permitted.")
    elif disk.get("lun") is not None:
        if bus != "scsi":
            return bad(f"{prefix} for LUN [{name}] requires bus to be 'scsi'. [{bus}] is not permitted.")
    else:
        return bad(f"{prefix} for [{name}] requires diskDevice of type 'disk' or 'lun' to be used.")
    if disk.get("dedicatedIOThread") and bus != "virtio":
        return bad(f"{prefix} for [{name}] requires virtio bus for IOThreads.")
    if disk.get("bootOrder") is not None and disk["bootOrder"] < 1:
        return bad("spec.domain.devices.disks[1] must have a boot order > 0, if supplied",
                   "spec.domain.devices.disks[1].bootOrder")
    return None


def validate_volume_requests(vm: JSON, vmi: Optional[JSON], requests: List[JSON], config: JSON) -> List[JSON]:
    """vms-admitter.go validateVolumeRequests (run by the VM status webhook): the causes, if any."""
    from . import admission  # the webhook's spec validation
    field = "Status.volumeRequests"
    vm_volumes = {v.get("name"): v for v in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {})
                  .get("volumes") or []}
    vmi_exists = vmi is not None and (vm.get("status") or {}).get("ready") and not vmi["metadata"].get("deletionTimestamp")
    vmi_volumes = {v.get("name"): v for v in ((vmi or {}).get("spec") or {}).get("volumes") or []} if vmi_exists else {}
    new_spec = copy.deepcopy(((vm.get("spec") or {}).get("template") or {}).get("spec") or {})
    vmi_spec = copy.deepcopy((vmi or {}).get("spec") or {})
    adds, removes = set(), set()

    def invalid(message: str) -> List[JSON]:
        return [{"reason": "FieldValueInvalid", "message": message, "field": field}]
    for request in requests:
        add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
        if add is not None and remove is not None:
            return invalid("VolumeRequests require either addVolumeOptions or removeVolumeOptions to be set, not both")
        if add is not None:
            name = add.get("name")
            if name in adds:
                return invalid(f"AddVolume request for [{name}] aleady exists")
            problem = validate_hotplug_disk(add.get("disk"), name, "AddVolume request", field)
            if problem:
                return [problem]
            source = add.get("volumeSource") or {}
            new_volume: JSON = {"name": name}
            for kind in ("persistentVolumeClaim", "dataVolume"):
                if source.get(kind) is not None:
                    new_volume[kind] = source[kind]
                    break
            if name in vm_volumes and vm_volumes[name] != new_volume:
                return invalid(f"AddVolume request for [{name}] conflicts with an existing volume of the same name "
                               f"on the vmi template.")
            if name in vmi_volumes and vmi_volumes[name] != new_volume:
                return invalid(f"AddVolume request for [{name}] conflicts with an existing volume of the same name "
                               f"on currently running vmi")
            adds.add(name)
        elif remove is not None:
            name = remove.get("name")
            if name in removes:
                return invalid(f"RemoveVolume request for [{name}] aleady exists")
            removes.add(name)
        else:
            return invalid("VolumeRequests require one of either addVolumeOptions or removeVolumeOptions to be set")
        new_spec = apply_volume_request(new_spec, request)
        if vmi_exists:
            vmi_spec = apply_volume_request(vmi_spec, request)
    causes = admission.validate_vmi_spec("spec.template.spec", new_spec, config)
    if causes:
        return causes
    if vmi_exists:
        causes = admission.validate_vmi_spec("spec.template.spec", vmi_spec, config)
        if causes:
            return causes
        if migrating(vmi):
            return [{"reason": "FieldValueNotSupported", "field": "spec",
                     "message": "Cannot handle volume requests while VMI migration is in progress"}]
    return []


def migrating(vmi: Optional[JSON]) -> bool:
    """pkg/util/migrations IsMigrating: a migration has started and has not completed."""
    state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    return bool(state.get("startTimestamp")) and not state.get("endTimestamp") and not state.get("completed") \
        and not state.get("failed")


def _webhook_denial(causes: List[JSON]):
    """How the apiserver answers a webhook's denial (apiserver webhookerrors.ToStatusErr)."""
    from . import admission, virt_api
    shown = admission.denied(causes)["status"]
    return virt_api.ApiError(422, "Invalid", f'admission webhook "{STATUS_WEBHOOK}" denied the request: '
                                             f'{shown["message"]}', {"causes": shown["details"]["causes"]})


def _dry_run(options: JSON) -> Dict[str, str]:
    """volumes.go getDryRunOption: only dryRun[0] == All counts."""
    dry = options.get("dryRun") or []
    return {"dryRun": "All"} if dry and dry[0] == "All" else {}


def _patch_error(err: KubeError, what: str):
    from . import virt_api
    if err.status == 422 and isinstance(err.body, dict):
        body = err.body
        return virt_api.ApiError(422, body.get("reason", "Invalid"), body.get("message", ""), body.get("details"))
    return virt_api.internal(Exception(f"unable to patch {what}: {err.body.get('message') if isinstance(err.body, dict) else err.body}"))


def volume_request(kube: Kube, config: JSON, namespace: str, name: str, body: JSON, add: bool, ephemeral: bool) -> int:
    """volumes.go addVolumeRequestHandler / removeVolumeRequestHandler."""
    from . import virt_api
    if not hotplug_api_enabled(config):
        raise virt_api.bad_request(HOTPLUG_NOT_ENABLED)
    opts = copy.deepcopy(body)
    if not opts.get("name"):
        raise virt_api.bad_request(f"{'Add' if add else 'Remove'}VolumeOptions requires name to be set")
    if add:
        if opts.get("disk") is None:
            raise virt_api.bad_request("AddVolumeOptions requires disk to not be nil")
        if opts.get("volumeSource") is None:
            raise virt_api.bad_request("AddVolumeOptions requires VolumeSource to not be nil")
        opts["disk"]["name"] = opts["name"]
        source = opts["volumeSource"]
        if source.get("dataVolume") is not None:
            source["dataVolume"]["hotpluggable"] = True
        elif source.get("persistentVolumeClaim") is not None:
            source["persistentVolumeClaim"]["hotpluggable"] = True
    request = {"addVolumeOptions": opts} if add else {"removeVolumeOptions": opts}
    dry = _dry_run(opts)
    if ephemeral:
        _vmi_volume_patch(kube, config, namespace, name, request, dry)
    elif legacy_hotplug(config):
        _vm_volume_patch_status(kube, config, namespace, name, request, dry)
    else:
        _vm_volume_patch(kube, namespace, name, request, dry)
    return 202


def _fetch(kube: Kube, plural: str, resource: str, namespace: str, name: str) -> JSON:
    from . import virt_api
    try:
        return kube.get(object_path("kubevirt.io/v1", plural, name, namespace))
    except KubeError as err:
        if err.status == 404:
            raise virt_api.not_found(resource, name)
        kind = "vm" if resource == "virtualmachine" else "vmi"
        raise virt_api.internal(Exception(f"unable to retrieve {kind} [{name}]: {err}"))


def _vm_volume_patch(kube: Kube, namespace: str, name: str, request: JSON, dry: Dict[str, str]) -> None:
    """volumes.go vmVolumePatch: the request goes into the VM template (declarative hotplug)."""
    from . import virt_api
    vm = _fetch(kube, "virtualmachines", "virtualmachine", namespace, name)
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    problem = verify_volume_option(spec.get("volumes") or [], request)
    if problem:
        raise virt_api.conflict("virtualmachine", name, problem)
    try:
        kube.json_patch(object_path("kubevirt.io/v1", "virtualmachines", name, namespace),
                        _volume_request_patch("/spec/template", spec, request), **dry)
    except KubeError as err:
        raise _patch_error(err, "vm")


def _vm_volume_patch_status(kube: Kube, config: JSON, namespace: str, name: str, request: JSON,
                            dry: Dict[str, str]) -> None:
    """volumes.go vmVolumePatchStatus: the request goes to the VM's status.volumeRequests."""
    from . import virt_api
    vm = _fetch(kube, "virtualmachines", "virtualmachine", namespace, name)
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    problem = verify_volume_option(spec.get("volumes") or [], request)
    if problem:
        raise virt_api.conflict("virtualmachine", name, problem)
    try:
        requests = _vm_volume_requests(vm, request)
    except ValueError as err:
        raise virt_api.conflict("virtualmachine", name, str(err))
    # The VM status webhook (vms-admitter.go AdmitStatus -> validateVolumeRequests) judges the new list.
    vmi = kube.get_or_none(object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace))
    causes = validate_volume_requests(vm, vmi, requests, config)
    if causes:
        raise _webhook_denial(causes)
    current = (vm.get("status") or {}).get("volumeRequests")
    ops = [{"op": "test", "path": "/status/volumeRequests", "value": current},
           {"op": "replace" if current else "add", "path": "/status/volumeRequests", "value": requests}]
    if not vm.get("status"):
        ops = [{"op": "add", "path": "/status", "value": {"volumeRequests": requests}}]
    try:
        kube.json_patch(object_path("kubevirt.io/v1", "virtualmachines", name, namespace) + "/status", ops, **dry)
    except KubeError as err:
        raise _patch_error(err, "vm status")


def _vmi_volume_patch(kube: Kube, config: JSON, namespace: str, name: str, request: JSON, dry: Dict[str, str]) -> None:
    """volumes.go vmiVolumePatch: the request goes straight into the VMI spec."""
    from . import virt_api
    vmi = _fetch(kube, "virtualmachineinstances", "virtualmachineinstance", namespace, name)
    owner = next((r for r in vmi["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    if owner and owner.get("kind") == "VirtualMachine" and owner.get("apiVersion") == "kubevirt.io/v1" \
            and not gate_enabled(config, "HotplugVolumes"):
        raise virt_api.bad_request(f"VMI {namespace}/{name} is owned by a VM")
    if (vmi.get("status") or {}).get("phase") != "Running":
        raise virt_api.conflict("virtualmachineinstance", name, VMI_NOT_RUNNING)
    spec = vmi.get("spec") or {}
    problem = verify_volume_option(spec.get("volumes") or [], request)
    if problem:
        raise virt_api.conflict("virtualmachineinstance", name, problem)
    try:
        kube.json_patch(object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace),
                        _volume_request_patch("", spec, request), **dry)
    except KubeError as err:
        raise _patch_error(err, "vmi")


# -- VM controller: pkg/virt-controller/watch/vm/vm.go --------------------------------------------

def handle_volume_requests(kube: Kube, vm_copy: JSON, vmi: Optional[JSON]) -> None:
    """vm.go handleVolumeRequests: each request is applied to the template (vm_copy, in place) and,
    while a VMI runs, sent to the VMI's addvolume/removevolume subresource through the apiserver."""
    requests = (vm_copy.get("status") or {}).get("volumeRequests") or []
    if not requests:
        return
    vmi_volumes = {v.get("name") for v in ((vmi or {}).get("spec") or {}).get("volumes") or []}
    template = vm_copy["spec"].setdefault("template", {})
    for request in requests:
        template["spec"] = apply_volume_request(template.get("spec") or {}, request)
        if vmi is None or vmi["metadata"].get("deletionTimestamp"):
            continue
        meta = vmi["metadata"]
        base = f"/apis/subresources.kubevirt.io/v1/namespaces/{meta['namespace']}/virtualmachineinstances/{meta['name']}"
        if request.get("addVolumeOptions") is not None:
            if request["addVolumeOptions"].get("name") in vmi_volumes:
                continue
            kube.request("PUT", base + "/addvolume", request["addVolumeOptions"], expect_json=False)
        elif request.get("removeVolumeOptions") is not None:
            if request["removeVolumeOptions"].get("name") not in vmi_volumes:
                continue
            kube.request("PUT", base + "/removevolume", request["removeVolumeOptions"], expect_json=False)


def trim_done_volume_requests(vm: JSON) -> List[JSON]:
    """vm.go trimDoneVolumeRequests: the requests not yet reflected in the VM template."""
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    volumes = {v.get("name") for v in spec.get("volumes") or []}
    disks = {d.get("name") for d in ((spec.get("domain") or {}).get("devices") or {}).get("disks") or []}
    kept = []
    for request in (vm.get("status") or {}).get("volumeRequests") or []:
        added = request.get("addVolumeOptions") is not None
        name = (request.get("addVolumeOptions") or request.get("removeVolumeOptions") or {}).get("name")
        done = (added and name in volumes and name in disks) or (not added and name not in volumes and name not in disks)
        if not done:
            kept.append(request)
    return kept


def declarative_vmi_lists(vm: JSON, vmi: JSON) -> Tuple[List[JSON], List[JSON]]:
    """pkg/storage/hotplug/hotplug.go patchHotplugVolumes: the VMI volumes and disks it should have."""
    vm_spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    vm_volumes = {v.get("name"): v for v in vm_spec.get("volumes") or []}
    vm_disks = {d.get("name"): d for d in ((vm_spec.get("domain") or {}).get("devices") or {}).get("disks") or []}
    vmi_volumes_list, vmi_disks_list = _spec_lists(vmi.get("spec") or {})
    vmi_volume_names = {v.get("name") for v in vmi_volumes_list}
    with_status = {s.get("name") for s in (vmi.get("status") or {}).get("volumeStatus") or []}
    # filterHotplugVMIVolumes
    volumes = []
    for volume in vmi_volumes_list:
        if is_hotplug_volume(volume):
            vm_volume = vm_volumes.get(volume.get("name"))
            if vm_volume is None or (is_hotplug_volume(vm_volume) and vm_volume != volume):
                continue
        volumes.append(copy.deepcopy(volume))
    # getNewHotplugVMVolumes
    for volume in vm_spec.get("volumes") or []:
        if is_hotplug_volume(volume) and volume.get("name") not in vmi_volume_names \
                and volume.get("name") not in with_status:
            volumes.append(copy.deepcopy(volume))
    new_by_name = {v.get("name"): v for v in volumes}
    # filterHotplugVMIDisks
    disks = []
    for disk in vmi_disks_list:
        if disk.get("name") not in new_by_name:
            vm_disk = vm_disks.get(disk.get("name"))
            if vm_disk is None:
                continue
            if disk.get("name") in vm_volumes and (vm_disk.get("cdrom") is None or disk.get("cdrom") is None):
                continue
        disks.append(copy.deepcopy(disk))
    # getNewHotplugVMDisks
    vmi_disk_names = {d.get("name") for d in vmi_disks_list}
    for disk in ((vm_spec.get("domain") or {}).get("devices") or {}).get("disks") or []:
        volume = new_by_name.get(disk.get("name"))
        if volume is not None and is_hotplug_volume(volume) and disk.get("name") not in vmi_disk_names:
            disks.append(copy.deepcopy(disk))
    return volumes, disks


def handle_declarative_hotplug(kube: Kube, vm: JSON, vmi: Optional[JSON]) -> None:
    """hotplug.go HandleDeclarativeVolumes / patchHotplugVolumes."""
    if (vm.get("spec") or {}).get("updateVolumesStrategy") == "Migration":
        return
    if vmi is None or (vmi.get("status") or {}).get("phase") != "Running":
        return
    volumes, disks = declarative_vmi_lists(vm, vmi)
    old_volumes, old_disks = _spec_lists(vmi.get("spec") or {})
    if volumes == old_volumes and disks == old_disks:
        return
    spec = vmi.get("spec") or {}
    ops = [{"op": "test", "path": "/spec/volumes", "value": spec.get("volumes")},
           {"op": "test", "path": "/spec/domain/devices/disks",
            "value": ((spec.get("domain") or {}).get("devices") or {}).get("disks")},
           {"op": "replace" if old_volumes else "add", "path": "/spec/volumes", "value": volumes},
           {"op": "replace" if old_disks else "add", "path": "/spec/domain/devices/disks", "value": disks}]
    meta = vmi["metadata"]
    kube.json_patch(object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"], meta["namespace"]), ops)


# -- VMI volume status: virt-controller (vmi/storage.go, vmi/volume-hotplug.go) and virt-handler (vm.go)

class AttachmentPod:
    """A hotplug attachment pod (services/template.go RenderHotplugAttachmentPodTemplate, generateName hp-volume-)."""

    def __init__(self, volumes: List[str], name: str = "", uid: str = "", ready: bool = False):
        self.name = name or "hp-volume-" + "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
        self.uid = uid or str(uuid.uuid4())
        self.volumes = set(volumes)
        self.created = time.monotonic()
        self.ready = ready
        self.deleting: Optional[float] = None


def _pvc_phase_message_reason(pvc: Optional[JSON], name: str) -> Tuple[str, str, str]:
    """vmi/storage.go getVolumePhaseMessageReason."""
    if pvc is None:
        return PENDING, FAILED_PVC_NOT_FOUND, f"PVC {name} not found"
    claim_phase = (pvc.get("status") or {}).get("phase")
    if claim_phase == "Pending":
        return PENDING, PVC_NOT_READY, "PVC is in phase ClaimPending"
    if claim_phase == "Bound":
        return BOUND, PVC_NOT_READY, "PVC is in phase Bound"
    return PENDING, PVC_NOT_READY, "PVC is in phase Lost"


def pvc_info(pvc: JSON, overhead: str) -> JSON:  # overhead: storage.claim_filesystem_overhead
    """vmi/storage.go processPVCInfo: PersistentVolumeClaimInfo from the real PVC."""
    spec = pvc.get("spec") or {}
    info: JSON = {"claimName": pvc["metadata"]["name"], "accessModes": spec.get("accessModes"),
                  "volumeMode": spec.get("volumeMode"), "capacity": (pvc.get("status") or {}).get("capacity"),
                  "requests": (spec.get("resources") or {}).get("requests"),
                  # GetFilesystemOverhead: block volumes have none
                  "filesystemOverhead": overhead}
    if (pvc["metadata"].get("annotations") or {}).get("cdi.kubevirt.io/storage.preallocation") == "true":
        info["preallocated"] = True
    return {k: v for k, v in info.items() if v is not None}


def _targets(spec: JSON) -> Dict[str, str]:
    """The device names libvirt gives the VMI's disks (virtio vdX, scsi/sata/usb sdX), in disk order."""
    counters = {"vd": 0, "sd": 0}
    targets = {}
    for disk in ((spec.get("domain") or {}).get("devices") or {}).get("disks") or []:
        prefix = "vd" if _disk_bus(disk) in ("", "virtio") else "sd"
        targets[disk.get("name")] = prefix + string.ascii_lowercase[counters[prefix] % 26]
        counters[prefix] += 1
    return targets


class VolumeStatusSimulator:
    """Keeps the attachment pods of each VMI and computes its status.volumeStatus step by step."""

    def __init__(self, kube: Kube):
        self.kube = kube
        self.pods: Dict[str, List[AttachmentPod]] = {}  # VMI uid -> attachment pods
        self.changed: Dict[Tuple[str, str], float] = {}  # (VMI uid, volume) -> when its phase last moved
        self.sync_errors: Dict[str, str] = {}  # VMI uid -> handleHotplugVolumes' sync error (reason PVCNotReady)
        self.lock = threading.Lock()

    def _pods(self, vmi: JSON) -> List[AttachmentPod]:
        uid = vmi["metadata"]["uid"]
        if uid not in self.pods:
            # Rebuild the records from the status after a restart of the stand-in.
            rebuilt: Dict[str, AttachmentPod] = {}
            for status in (vmi.get("status") or {}).get("volumeStatus") or []:
                hp = status.get("hotplugVolume") or {}
                if hp.get("attachPodName"):
                    pod = rebuilt.setdefault(hp["attachPodName"], AttachmentPod(
                        [], hp["attachPodName"], hp.get("attachPodUID") or "", bool(hp.get("attachPodUID"))))
                    pod.volumes.add(status["name"])
            self.pods[uid] = list(rebuilt.values())
        return self.pods[uid]

    def compute(self, vmi: JSON, pod_volumes: set, pvcs: Dict[str, Optional[JSON]], dvs: Dict[str, Optional[JSON]],
                overhead: Dict[str, str], step: float) -> Tuple[List[JSON], bool]:
        """(new volumeStatus, whether something is still moving)."""
        with self.lock:
            return self._compute(vmi, pod_volumes, pvcs, dvs, overhead, step)

    def _compute(self, vmi, pod_volumes, pvcs, dvs, overhead, step):  # noqa: C901 - mirrors KubeVirt's flow
        now = time.monotonic()
        spec = vmi.get("spec") or {}
        pods = self._pods(vmi)
        # storagetypes.GetHotplugVolumes: PVC/DV volumes the launcher pod does not have.
        hotplug = [v for v in spec.get("volumes") or []
                   if v.get("name") not in pod_volumes and (v.get("persistentVolumeClaim") or v.get("dataVolume"))]
        # volume-hotplug.go handleHotplugVolumes: the volumes ready to attach to the node. A claim not found
        # (storage/types/pvc.go VolumeReadyToAttachToNode PvcNotFoundError) ends the round with a sync error:
        # no attachment pod is created or cleaned up (vmi/lifecycle.go sync returns it).
        missing = next((claim_name(v) for v in hotplug if pvcs.get(claim_name(v)) is None), None)
        uid = vmi["metadata"]["uid"]
        self.sync_errors.pop(uid, None)
        if missing is not None:
            self.sync_errors[uid] = f"Error determining volume status didn't find PVC {missing}"
        ready_volumes = []
        for volume in hotplug if missing is None else []:
            pvc = pvcs.get(claim_name(volume))
            owner = next((r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
            if owner and owner.get("kind") == "DataVolume":
                dv_phase = ((dvs.get(owner.get("name")) or {}).get("status") or {}).get("phase")
                if dv_phase not in ("Succeeded", "PendingPopulation"):
                    continue  # cdiv1.IsSucceededOrPendingPopulation
            ready_volumes.append(volume["name"])
        ready_set = set(ready_volumes)
        current = next((p for p in pods if p.volumes == ready_set and p.deleting is None), None)
        old = [p for p in pods if p is not current]
        moving = False
        if missing is not None:  # the round ended: the pods stay as they are
            current = next((p for p in pods if p.deleting is None and p.ready), None) \
                or next((p for p in pods if p.deleting is None), None)
            old = []
            moving = True
        elif current is None and ready_set and not any(not p.ready and p.deleting is None for p in old):
            current = AttachmentPod(ready_volumes)  # createAttachmentPod
            pods.append(current)
            moving = True
        # The kubelet starts the pod once all its claims are bound.
        for pod in pods:
            if not pod.ready and pod.deleting is None and now - pod.created >= step \
                    and all((pvcs.get(self._claim(spec, v)) or {}).get("status", {}).get("phase") == "Bound"
                            for v in pod.volumes):
                pod.ready = True
            if pod.deleting is None and not pod.ready:
                moving = True
        old_status = {s["name"]: s for s in (vmi.get("status") or {}).get("volumeStatus") or []}
        targets = _targets(spec)
        new_status = []
        spec_names = set()
        for volume in spec.get("volumes") or []:
            name = volume.get("name")
            spec_names.add(name)
            status = copy.deepcopy(old_status.get(name) or {"name": name, "target": ""})
            if name in {v["name"] for v in hotplug}:
                self._process_hotplug_status(status, claim_name(volume), pvcs, current, targets)
                if status.get("phase") != READY:
                    moving = True
            else:
                status["target"] = targets.get(name, "")
            pvc = pvcs.get(claim_name(volume)) if claim_name(volume) else None
            if pvc is not None:
                status["persistentVolumeClaimInfo"] = pvc_info(pvc, overhead[claim_name(volume)])
            new_status.append(status)
        # Volumes gone from the spec keep their status while an attachment pod still has them.
        for name, status in old_status.items():
            if name in spec_names:
                continue
            pod = next((p for p in pods if name in p.volumes), None)
            if pod is None:
                continue
            status = copy.deepcopy(status)
            moving = True
            hp = status.setdefault("hotplugVolume", {})
            hp["attachPodName"], hp["attachPodUID"] = pod.name, pod.uid
            if status.get("phase") in (READY, MOUNTED, ATTACHED):
                # virt-handler updateHotplugVolumeStatus: detached from the domain, unmounted from the pod.
                status.update(target="", phase=UNMOUNTED, reason=VOLUME_UNMOUNTED,
                              message=f"Volume {name} has been unmounted from virt-launcher pod")
            else:
                # vmi/storage.go updateVolumeStatus with phaseForUnpluggedVolume
                status["phase"] = DETACHING
                if pod.deleting is not None:
                    status.update(reason=SUCCESSFUL_DELETE,
                                  message=f"Deleted hotplug attachment pod {pod.name}, for volume {name}")
            new_status.append(status)
        # One round of virt-controller or virt-handler a step: a volume's phase moves at most once a step.
        for index, status in enumerate(new_status):
            key, before = (uid, status["name"]), old_status.get(status["name"])
            if before is None or before.get("phase") == status.get("phase"):
                continue
            if now - self.changed.get(key, 0.0) < step:
                kept = copy.deepcopy(before)
                if "persistentVolumeClaimInfo" in status:
                    kept["persistentVolumeClaimInfo"] = status["persistentVolumeClaimInfo"]
                new_status[index] = kept
                moving = True
            else:
                self.changed[key] = now
        # volume-hotplug.go cleanupAttachmentPods: an old pod is deleted once none of its unplugged volumes
        # is still Ready or mounted, unless it is the running fallback while the current pod starts.
        unplugged = {s["name"]: s.get("phase") for s in new_status if s["name"] not in spec_names}
        hotplug_names = {v["name"] for v in hotplug}
        for pod in old:
            if pod.deleting is None:
                fallback = current is not None and not current.ready and pod.ready \
                    and any(v in hotplug_names for v in pod.volumes)
                busy = any(unplugged.get(v) in (READY, MOUNTED) for v in pod.volumes)
                if not (fallback or busy):
                    pod.deleting = now
            elif now - pod.deleting >= step and all(
                    old_status.get(v, {}).get("phase") == DETACHING and now - self.changed.get((uid, v), 0.0) >= step
                    for v in pod.volumes if v in unplugged):
                pods.remove(pod)  # the pod is gone (after the Detaching report stood for a step)
            moving = True
        new_status.sort(key=lambda s: s["name"])
        return new_status, moving

    @staticmethod
    def _claim(spec: JSON, volume_name: str) -> str:
        for volume in spec.get("volumes") or []:
            if volume.get("name") == volume_name:
                return claim_name(volume)
        return volume_name

    @staticmethod
    def _process_hotplug_status(status: JSON, claim: str, pvcs: Dict[str, Optional[JSON]],
                                pod: Optional[AttachmentPod], targets: Dict[str, str]) -> None:
        """vmi/storage.go processHotplugVolumeStatus, then virt-handler updateHotplugVolumeStatus."""
        name = status["name"]
        hp = status.setdefault("hotplugVolume", {})
        use_pvc_status = False
        if pod is None or name not in pod.volumes:
            if status.get("phase") != READY:
                hp.pop("attachPodUID", None)
                use_pvc_status = True
        else:
            hp["attachPodName"] = pod.name
            if pod.ready:
                hp["attachPodUID"] = pod.uid
            else:
                hp.pop("attachPodUID", None)
            if status.get("phase") in (None, "", BOUND, PENDING):
                status.update(phase=ATTACHED, reason=SUCCESSFUL_CREATE,
                              message=f"Created hotplug attachment pod {pod.name}, for volume {name}")
                return  # virt-handler sees it on its next round
            if status.get("phase") == DETACHING:
                use_pvc_status = True
        if use_pvc_status:
            phase, reason, message = _pvc_phase_message_reason(pvcs.get(claim), claim)
            status.update(phase=phase, reason=reason, message=message)
            status["target"] = ""
            return
        # virt-handler: mounted into the launcher pod once the attachment pod runs, then attached to the domain.
        if status.get("phase") == READY:
            status["target"] = targets.get(name, status.get("target", ""))
        elif status.get("phase") == MOUNTED:
            status.update(target=targets.get(name, ""), phase=READY, reason=VOLUME_READY,
                          message=f"Successfully attach hotplugged volume {name} to VM")
        elif hp.get("attachPodUID") and status.get("phase") in (BOUND, PENDING, ATTACHED):
            status.update(phase=MOUNTED, reason=VOLUME_MOUNTED,
                          message=f"Volume {name} has been mounted in virt-launcher pod")
