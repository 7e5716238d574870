"""Stand-in for the parts of virt-handler that report on a running VMI: its live-migration conditions
and the guest agent.

`live_migration_conditions` mirrors pkg/virt-handler/vm.go calculateLiveMigrationCondition and
calculateLiveStorageMigrationCondition at KubeVirt v1.9.0 for what lab VMIs can carry (PVC and
DataVolume volumes, host disks, pod-network bindings, host devices and GPUs, SEV/TDX, hyperv
passthrough); CPU host-model, TSC and persistent-reservation checks are not mirrored (lab VMIs use
neither). It reads PVC access modes from the apiserver where KubeVirt reads them from the VMI's
status.volumeStatus[].persistentVolumeClaimInfo, which virt-controller fills from the same PVC.

The guest agent: virt-handler adds condition AgentConnected once the agent's channel in the domain is
connected (vm.go updateGuestAgentConditions) and copies the agent's OS info into status.guestOSInfo
(vm.go updateGuestInfoFromDomain); interfaces then report infoSource "domain, guest-agent". In the
lab the agent connects AGENT_STEPS steps after Running, except in guests that ship no agent: a VMI
whose containerDisk image is a CirrOS image (CirrOS has no qemu-guest-agent), or whose VM asks for
none with the annotation LAB_NO_AGENT_ANNOTATION (a lab-only switch for other images).
"""

from typing import Callable, Dict, List, Optional, Tuple

from ..kube import JSON
from . import netstat

# kubevirt.io/api core/v1 types.go
LIVE_MIGRATABLE = "LiveMigratable"  # VirtualMachineInstanceIsMigratable
STORAGE_LIVE_MIGRATABLE = "StorageLiveMigratable"  # VirtualMachineInstanceIsStorageLiveMigratable
AGENT_CONNECTED = "AgentConnected"  # VirtualMachineInstanceAgentConnected
REASON_DISKS = "DisksNotLiveMigratable"  # VirtualMachineInstanceReasonDisksNotMigratable
REASON_INTERFACE = "InterfaceNotLiveMigratable"  # VirtualMachineInstanceReasonInterfaceNotMigratable
REASON_HOST_DEVICE = "HostDeviceNotLiveMigratable"  # VirtualMachineInstanceReasonHostDeviceNotMigratable
REASON_SEV = "SEVNotLiveMigratable"
REASON_TDX = "TDXNotLiveMigratable"
REASON_HYPERV = "HypervPassthroughNotLiveMigratable"
REASON_NOT_MIGRATABLE = "NotMigratable"  # VirtualMachineInstanceReasonNotMigratable
ALLOW_POD_BRIDGE_ANNOTATION = "kubevirt.io/allow-pod-bridge-network-live-migration"

AGENT_STEPS = 2
LAB_NO_AGENT_ANNOTATION = "lab.palette.vmo/no-guest-agent"

PvcLookup = Callable[[str, str], Optional[JSON]]  # (namespace, claim name) -> PVC or None


def _devices(vmi: JSON) -> JSON:
    return ((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {}


def _has_shared_access_mode(modes: List[str]) -> bool:
    # pkg/storage/types/pvc.go HasSharedAccessMode
    return "ReadWriteMany" in (modes or [])


def _claim_access_modes(vmi: JSON, volume_name: str, claim: str, lookup: PvcLookup) -> Optional[List[str]]:
    """volumeStatus[].persistentVolumeClaimInfo.accessModes as virt-controller fills it (None: no info)."""
    for status in (vmi.get("status") or {}).get("volumeStatus") or []:
        if status.get("name") == volume_name and status.get("persistentVolumeClaimInfo"):
            return status["persistentVolumeClaimInfo"].get("accessModes") or []
    pvc = lookup(vmi["metadata"]["namespace"], claim)
    if pvc is None:
        return None
    # The claim's status.accessModes once bound; the lab reads spec.accessModes while it is not.
    return (pvc.get("status") or {}).get("accessModes") or (pvc.get("spec") or {}).get("accessModes") or []


def check_volumes_for_migration(vmi: JSON, lookup: PvcLookup) -> Tuple[bool, Optional[str]]:
    """pkg/virt-handler/vm.go checkVolumesForMigration: (block migration, error message)."""
    block = bool((vmi.get("status") or {}).get("migratedVolumes"))
    spec = vmi.get("spec") or {}
    disks = {d.get("name"): d for d in _devices(vmi).get("disks") or []}
    filesystems = {f.get("name") for f in _devices(vmi).get("filesystems") or []}
    for volume in spec.get("volumes") or []:
        name = volume.get("name")
        if "persistentVolumeClaim" in volume or "dataVolume" in volume:
            claim = (volume["persistentVolumeClaim"].get("claimName") if "persistentVolumeClaim" in volume
                     else volume["dataVolume"].get("name"))
            modes = _claim_access_modes(vmi, name, claim, lookup)
            if modes is None:
                return True, (f"cannot migrate VMI: Unable to determine if PVC {claim} is shared, live migration "
                              "requires that all PVCs must be shared (using ReadWriteMany access mode)")
            if not _has_shared_access_mode(modes):
                return True, (f"cannot migrate VMI: PVC {claim} is not shared, live migration requires that all "
                              "PVCs must be shared (using ReadWriteMany access mode)")
        elif "hostDisk" in volume:
            if not (volume["hostDisk"] or {}).get("shared"):
                return True, "cannot migrate VMI with non-shared HostDisk"
        else:
            if name in filesystems:
                continue
            disk = disks.get(name) or {}
            # vm.go isReadOnlyDisk: a CD-ROM is read-only unless readOnly is false.
            if "cdrom" in disk and (disk["cdrom"] or {}).get("readOnly", True) is not False:
                continue
            block = True
    return block, None


def verify_interfaces_migratable(vmi: JSON, binding_plugins: JSON) -> Optional[str]:
    """pkg/network/vmispec/interface.go VerifyVMIMigratable."""
    ifaces = _devices(vmi).get("interfaces") or []
    if not ifaces:
        return None
    pod_network = next((n for n in (vmi.get("spec") or {}).get("networks") or [] if "pod" in n), None)
    if pod_network is None:
        return None
    primary = next((i for i in ifaces if i.get("name") == pod_network.get("name")), None)
    if primary is None:
        return f"no primary interface found for network {pod_network.get('name')}"
    if "masquerade" in primary or "passtBinding" in primary:
        return None
    if "bridge" in primary:
        if ALLOW_POD_BRIDGE_ANNOTATION in (vmi["metadata"].get("annotations") or {}):
            return None
    elif "binding" in primary:
        plugin = (binding_plugins or {}).get((primary["binding"] or {}).get("name"))
        if plugin and plugin.get("migration") is not None:
            return None
    return "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"


def _non_migratable_host_devices(vmi: JSON, config: JSON) -> Optional[str]:
    """pkg/virt-handler/vm.go vmiContainsNonMigratablePCIHostDevices."""
    devices = _devices(vmi)
    gpus = devices.get("gpus") or []
    if devices.get("hostDevices"):
        return "VMI specifies non-migratable generic PCI host device"
    if len(gpus) > 1:
        return "VMI specifies too many GPUs"
    gates = (config.get("developerConfiguration") or {}).get("featureGates") or []
    if len(gpus) == 1 and "VGPULiveMigration" not in gates:
        return "VMI specifies a GPU but feature gate VGPULiveMigration is not enabled"
    if len(gpus) == 1:
        mdevs = ((config.get("permittedHostDevices") or {}).get("mediatedDevices") or [])
        if not any(m.get("resourceName") == gpus[0].get("deviceName") for m in mdevs):
            return "VMI specifies non-migratable GPU device"
    return None


def _launch_security(vmi: JSON) -> Optional[Tuple[str, str]]:
    security = ((vmi.get("spec") or {}).get("domain") or {}).get("launchSecurity") or {}
    if "sev" in security:
        return REASON_SEV, "VMI uses SEV"
    if "tdx" in security:
        return REASON_TDX, "VMI uses TDX"
    return None


def _hyperv_passthrough(vmi: JSON) -> bool:
    features = ((vmi.get("spec") or {}).get("domain") or {}).get("features") or {}
    return bool((features.get("hypervPassthrough") or {}).get("enabled"))


def _condition(kind: str, status: str, reason: str = "", message: str = "") -> JSON:
    # vm.go newNonMigratableCondition: no timestamps (metav1.Time zero values serialise as null).
    cond: JSON = {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": None}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def live_migration_conditions(vmi: JSON, lookup: PvcLookup, config: JSON) -> Tuple[List[JSON], str]:
    """vm.go updateLiveMigrationConditions: the LiveMigratable and StorageLiveMigratable conditions and
    status.migrationMethod (BlockMigration or LiveMigration)."""
    bindings = (config.get("network") or {}).get("binding") or {}
    # vm.go calculateLiveMigrationCondition: the first problem wins, disks last.
    block, disk_error = check_volumes_for_migration(vmi, lookup)
    iface_error = verify_interfaces_migratable(vmi, bindings)
    host_device = _non_migratable_host_devices(vmi, config)
    security = _launch_security(vmi)
    if iface_error:
        live = _condition(LIVE_MIGRATABLE, "False", REASON_INTERFACE, iface_error)
    elif host_device:
        live = _condition(LIVE_MIGRATABLE, "False", REASON_HOST_DEVICE, host_device)
    elif security:
        live = _condition(LIVE_MIGRATABLE, "False", security[0], security[1])
    elif _hyperv_passthrough(vmi):
        live = _condition(LIVE_MIGRATABLE, "False", REASON_HYPERV, "VMI uses hyperv passthrough")
    elif disk_error:
        live = _condition(LIVE_MIGRATABLE, "False", REASON_DISKS, disk_error)
    else:
        live = _condition(LIVE_MIGRATABLE, "True")
    # vm.go calculateLiveStorageMigrationCondition: every problem but the disks, joined.
    problems = []
    if iface_error:
        problems.append((REASON_INTERFACE, iface_error))
    if host_device:
        problems.append((REASON_HOST_DEVICE, host_device))
    if security:
        problems.append(security)
    if _hyperv_passthrough(vmi):
        problems.append((REASON_HYPERV, "VMI uses hyperv passthrough"))
    if problems:
        storage = _condition(STORAGE_LIVE_MIGRATABLE, "False", REASON_NOT_MIGRATABLE,
                             ", ".join(f"{reason}: {message}" for reason, message in problems))
    else:
        storage = _condition(STORAGE_LIVE_MIGRATABLE, "True")
    return [live, storage], "BlockMigration" if block else "LiveMigration"


def merge_conditions(current: List[JSON], wanted: List[JSON]) -> List[JSON]:
    """Replaces conditions of the wanted types (vm.go: remove, then append when they differ)."""
    kinds = {c["type"]: c for c in wanted}
    out = []
    for cond in current:
        new = kinds.pop(cond.get("type"), None)
        if new is None:
            out.append(cond)
        elif all(cond.get(k) == new.get(k) for k in ("status", "reason", "message")):
            out.append(cond)
        else:
            out.append(new)
    return out + [kinds[k] for k in kinds]


# -- guest agent ------------------------------------------------------------------------------------

_OS_INFO = (
    ("fedora", {"id": "fedora", "name": "Fedora Linux", "prettyName": "Fedora Linux 41 (Cloud Edition)",
                "version": "41 (Cloud Edition)", "versionId": "41", "kernelRelease": "6.11.4-301.fc41.x86_64"}),
    ("ubuntu", {"id": "ubuntu", "name": "Ubuntu", "prettyName": "Ubuntu 24.04.1 LTS", "version": "24.04.1 LTS (Noble Numbat)",
                "versionId": "24.04", "kernelRelease": "6.8.0-45-generic"}),
    ("centos", {"id": "centos", "name": "CentOS Stream", "prettyName": "CentOS Stream 9", "version": "9",
                "versionId": "9", "kernelRelease": "5.14.0-522.el9.x86_64"}),
    ("rhel", {"id": "rhel", "name": "Red Hat Enterprise Linux", "prettyName": "Red Hat Enterprise Linux 9.4 (Plow)",
              "version": "9.4 (Plow)", "versionId": "9.4", "kernelRelease": "5.14.0-427.13.1.el9_4.x86_64"}),
    ("debian", {"id": "debian", "name": "Debian GNU/Linux", "prettyName": "Debian GNU/Linux 12 (bookworm)",
                "version": "12 (bookworm)", "versionId": "12", "kernelRelease": "6.1.0-26-cloud-amd64"}),
)
_GENERIC_OS = {"id": "linux", "name": "Linux", "prettyName": "Linux", "version": "", "versionId": "",
               "kernelRelease": "6.8.0"}


def _container_images(vmi: JSON) -> List[str]:
    return [(v.get("containerDisk") or {}).get("image", "") for v in (vmi.get("spec") or {}).get("volumes") or []
            if "containerDisk" in v]


def has_guest_agent(vmi: JSON) -> bool:
    """Whether the lab's guest runs qemu-guest-agent (see the module docstring)."""
    if LAB_NO_AGENT_ANNOTATION in (vmi["metadata"].get("annotations") or {}):
        return False
    return not any("cirros" in image.lower() for image in _container_images(vmi))


def guest_os_info(vmi: JSON) -> JSON:
    """status.guestOSInfo as vm.go updateGuestInfoFromDomain copies it from the agent's report."""
    images = " ".join(_container_images(vmi)).lower()
    info = next((dict(info) for key, info in _OS_INFO if key in images), dict(_GENERIC_OS))
    info.update({"kernelVersion": "#1 SMP PREEMPT_DYNAMIC", "machine": "x86_64"})
    return info


def agent_condition(probe_time: str) -> JSON:
    # vm.go updateGuestAgentConditions: status True and lastProbeTime, no transition time or reason.
    return {"type": AGENT_CONNECTED, "status": "True", "lastProbeTime": probe_time, "lastTransitionTime": None}


def interfaces_with_agent(interfaces: List[JSON]) -> List[JSON]:
    """pkg/network/setup/netstat.go UpdateStatus once the agent reports (netstat.py with_agent)."""
    return netstat.with_agent(interfaces)


def condition_types(vmi: JSON) -> Dict[str, JSON]:
    return {c.get("type"): c for c in (vmi.get("status") or {}).get("conditions") or []}
