"""virt-api's VMI webhooks for updates and the defaults of a new VMI, as KubeVirt v1.9.0 has them:

- the VMI mutator on create (pkg/virt-api/webhooks/mutating-webhook/mutators/vmi-mutator.go Mutate,
  ApplyNewVMIMutations): the CPU topology, guest memory and hotplug maxima (pkg/defaults/defaults.go,
  live_update.vmi_defaults) and status.currentCPUTopology / status.memory. The lab's mutator applies
  these defaults only (not presets, machine type, resources, finalizer or phase, which the stand-in's
  controller sets itself), and is registered for CREATE: its UPDATE half (status changes by users other
  than KubeVirt's service accounts are reverted) is left out;
- the VMI update validator (pkg/virt-api/webhooks/validating-webhook/admitters/vmi-update-admitter.go
  VMIUpdateAdmitter.Admit): only KubeVirt's service accounts may change a VMI's spec, and their changes
  go through admitHotplug (maxSockets, maxGuest, AdmitHotplugStorage); others may not change KubeVirt's
  reserved labels.

KubeVirt's service accounts are pkg/virt-api/webhooks/serviceaccounts.go KubeVirtServiceAccounts of the
install namespace; the stand-in plays virt-api, virt-controller and virt-handler under its own lab
identity (state.KUBEVIRT_STANDIN_USER), which therefore counts as one of them.
"""

import base64
import json
from typing import Callable, Dict, Iterable, List, Optional

from ..bootstrap import KUBEVIRT_NAMESPACE
from ..kube import JSON
from . import hotplug
from .admission import cause, denied, error_response, quantity
from .live_update import vmi_defaults

# pkg/virt-operator/resource/generate/components/serviceaccountnames.go
KUBEVIRT_SERVICE_ACCOUNTS = ("kubevirt-apiserver", "kubevirt-controller", "kubevirt-handler",
                             "kubevirt-synchronization-controller")
# vmi-create-admitter.go restrictedVmiLabels
RESTRICTED_VMI_LABELS = ("kubevirt.io/created-by", "kubevirt.io/migrationJobUID", "kubevirt.io/nodeName",
                         "kubevirt.io/migrationTargetNodeName", "kubevirt.io/schedulable", "kubevirt.io/install-strategy")
RESTRICTED = "update of VMI object is restricted"


def kubevirt_service_accounts(extra: Iterable[str] = (), namespace: str = KUBEVIRT_NAMESPACE) -> frozenset:
    """serviceaccounts.go KubeVirtServiceAccounts, plus the stand-in's own identity."""
    return frozenset([f"system:serviceaccount:{namespace}:{name}" for name in KUBEVIRT_SERVICE_ACCOUNTS] + list(extra))


def mutate_vmi(request: JSON, config: JSON) -> JSON:
    """vmi-mutator.go Mutate on CREATE: the defaults of defaults.go the stand-in models."""
    resource = request.get("resource") or {}
    if resource.get("group") != "kubevirt.io" or resource.get("resource") != "virtualmachineinstances":
        return error_response("expect resource to be 'virtualmachineinstances'")
    if request.get("operation") != "CREATE":
        return {"allowed": True}
    vmi = request.get("object") or {}
    spec, status = vmi_defaults(vmi.get("spec") or {}, config)
    new_status = {**status, **(vmi.get("status") or {})}
    patch = [{"op": "replace" if "spec" in vmi else "add", "path": "/spec", "value": spec},
             {"op": "replace" if "status" in vmi else "add", "path": "/status", "value": new_status}]
    return {"allowed": True, "patchType": "JSONPatch", "patch": base64.b64encode(json.dumps(patch).encode()).decode()}


def _deny(message: str, kind: str = "FieldValueInvalid") -> JSON:
    return denied([cause(kind, message)])


def _volume_maps(volumes: List[JSON], statuses: List[JSON]):
    """storagehotplug.go getHotplugVolumes / getPermanentVolumes: permanent = in status without hotplugVolume."""
    permanent_names = {s.get("name") for s in statuses if s.get("hotplugVolume") is None}
    hot = {v.get("name"): v for v in volumes if v.get("name") not in permanent_names}
    permanent = {v.get("name"): v for v in volumes if v.get("name") in permanent_names}
    return hot, permanent


def admit_hotplug_storage(old: JSON, new: JSON, config: JSON) -> Optional[JSON]:
    """pkg/storage/admitters/storagehotplug.go AdmitHotplugStorage."""
    new_spec, old_spec = new.get("spec") or {}, old.get("spec") or {}
    new_volumes, old_volumes = new_spec.get("volumes") or [], old_spec.get("volumes") or []
    new_devices = (new_spec.get("domain") or {}).get("devices") or {}
    new_disks = new_devices.get("disks") or []
    old_disks = ((old_spec.get("domain") or {}).get("devices") or {}).get("disks") or []
    # validateExpectedDisksAndFilesystems
    names = {v.get("name") for v in new_volumes if v.get("memoryDump") is None}
    required = len(new_devices.get("filesystems") or [])
    for disk in new_disks:
        if disk.get("name") not in names and disk.get("cdrom") is not None and hotplug.declarative_hotplug(config):
            continue
        required += 1
    if required != len(names):
        return _deny(f"mismatch between volumes declared ({len(names)}) and required ({required})")
    statuses = (old.get("status") or {}).get("volumeStatus") or []
    new_hot, new_permanent = _volume_maps(new_volumes, statuses)
    old_hot, old_permanent = _volume_maps(old_volumes, statuses)
    migrated = {m.get("volumeName") for m in (new.get("status") or {}).get("migratedVolumes") or []}
    new_disk_map = {d.get("name"): d for d in new_disks if d.get("name")}
    old_disk_map = {d.get("name"): d for d in old_disks if d.get("name")}
    # verifyPermanentVolumes
    if len(new_permanent) != len(old_permanent):
        return _deny("Number of permanent volumes has changed")
    for name, volume in new_permanent.items():
        if name not in old_permanent:
            return _deny(f"permanent volume {name}, not found")
        if name in migrated:
            continue
        if volume != old_permanent[name]:
            return _deny(f"permanent volume {name}, changed")
        if new_disk_map.get(name) != old_disk_map.get(name):
            return _deny(f"permanent disk {name}, changed")
    # verifyHotplugVolumes
    for name, volume in new_hot.items():
        if name in old_hot:
            if volume != old_hot[name] and name not in migrated:
                return _deny(f"hotplug volume {name}, changed")
            if volume.get("memoryDump") is None:
                if name not in new_disk_map:
                    return _deny(f"volume {name} doesn't have a matching disk")
                if new_disk_map[name] != old_disk_map.get(name):
                    return _deny(f"hotplug disk {name}, changed")
        else:
            if volume.get("dataVolume") is None and volume.get("persistentVolumeClaim") is None \
                    and volume.get("memoryDump") is None:
                return _deny(f"volume {name} is not a PVC or DataVolume")
            if volume.get("memoryDump") is None:
                if name not in new_disk_map:
                    return _deny(f"disk {name} does not exist")
                if name not in old_disk_map:
                    problem = hotplug.validate_hotplug_disk(new_disk_map[name], name, "Hotplug configuration", "")
                    if problem:
                        return denied([problem])
    return None


def admit_hotplug(old: JSON, new: JSON, config: JSON) -> Optional[JSON]:
    """vmi-update-admitter.go admitHotplug (AdmitUtilityVolumes is left out: the lab has no utility volumes)."""
    old_domain, new_domain = (old.get("spec") or {}).get("domain") or {}, (new.get("spec") or {}).get("domain") or {}
    # admitHotplugCPU
    if (old_domain.get("cpu") or {}).get("maxSockets") != (new_domain.get("cpu") or {}).get("maxSockets"):
        return _deny("CPU topology maxSockets changed")
    # admitHotplugMemory
    old_max, new_max = (old_domain.get("memory") or {}).get("maxGuest"), (new_domain.get("memory") or {}).get("maxGuest")
    if old_max is not None and new_max is not None and quantity(old_max).exact != quantity(new_max).exact:
        return _deny("Memory maxGuest changed")
    return admit_hotplug_storage(old, new, config)


def make_update_admitter(service_accounts: frozenset) -> Callable[[JSON, JSON], JSON]:
    """vmi-update-admitter.go VMIUpdateAdmitter.Admit (the node restriction concerns virt-handler's own
    service account, which the lab's stand-in does not use)."""

    def admit(request: JSON, config: JSON) -> JSON:
        new, old = request.get("object") or {}, request.get("oldObject") or {}
        is_kubevirt = (request.get("userInfo") or {}).get("username") in service_accounts
        if (new.get("spec") or {}) != (old.get("spec") or {}):
            if not is_kubevirt:
                return _deny(RESTRICTED, "FieldValueNotSupported")
            response = admit_hotplug(old, new, config)
            if response is not None:
                return response
        if not is_kubevirt:  # admitVMILabelsUpdate
            def restricted(obj: JSON) -> Dict[str, str]:
                labels = (obj.get("metadata") or {}).get("labels") or {}
                return {k: v for k, v in labels.items() if k in RESTRICTED_VMI_LABELS}
            if restricted(new) != restricted(old):
                return _deny("modification of the following reserved kubevirt.io/ labels on a VMI object is prohibited",
                             "FieldValueNotSupported")
        return {"allowed": True}
    return admit
