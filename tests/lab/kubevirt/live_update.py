"""The VM controller's live update of a running VM, as KubeVirt v1.9.0 does it
(pkg/virt-controller/watch/vm/vm.go Controller.sync, from syncRestartRequired on), with the parts of
virt-api's mutating webhook, virt-controller's VMI controller and virt-handler it relies on:

- start revision: the VM spec a VMI started from, kept in a ControllerRevision
  `revision-start-vm-<uid>-<generation>` (vm.go createVMRevision) named in the VMI's
  status.virtualMachineRevisionName; the lab has no mutating webhook, so the defaults virt-api puts
  on a new VMI (pkg/defaults/defaults.go: CPU topology, guest memory, maxSockets, maxGuest,
  status.currentCPUTopology, status.memory) are set when the VMI is first seen;
- RestartRequired (vm.go syncRestartRequired, setRestartRequired), cleared when the VMI goes;
- NIC hotplug/unplug (pkg/network/controllers/vm.go VMController.Sync) and the interface status
  virt-controller (multus-status) and virt-handler (domain, guest-agent) report;
- volume hotplug (hotplug.py);
- CPU sockets and guest memory (vm.go handleCPUChangeRequest/VMICPUsPatch, handleMemoryHotplugRequest)
  and the VMI conditions HotVCPUChange/HotMemoryChange (vmi/lifecycle.go requireCPUHotplug,
  requireMemoryHotplug). The migration that applies them is the workload updater's.

`sync_vm(controller, vm, vmi)` is called from VirtController.reconcile_vm. It updates `vm["status"]`
in place with what it wrote, so the status update that follows keeps it.
"""

import copy
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import hotplug
from . import netstat
from . import storage
from .admission import Quantity, live_update_rollout, quantity

log = logging.getLogger("standin.live-update")

RESTART_REQUIRED = "RestartRequired"
VCPU_CHANGE = "HotVCPUChange"
MEMORY_CHANGE = "HotMemoryChange"
MIGRATION_REQUIRED = "MigrationRequired"
NET_MIGRATION_GRACE_SECONDS = 15  # pkg/network/migration/evaluator.go DynamicNetworkControllerGracePeriod
NON_LIVE_UPDATABLE = "a non-live-updatable field was changed in the template spec"
DEFAULT_MAX_HOTPLUG_RATIO = 4  # pkg/virt-config/virt-config.go DefaultMaxHotplugRatio
DEFAULT_CPU_ALLOCATION_RATIO = 10  # virt-config.go DefaultCPUAllocationRatio
MAX_VCPUS = 512  # defaults.go setupCPUHotplug
HOTPLUG_BLOCK_ALIGNMENT = 0x200000  # pkg/liveupdate/memory/memory.go HotplugBlockAlignmentBytes
REQUIRED_MIN_GUEST_MEMORY = 0x40000000  # memory.go requiredMinGuestMemory
REVISION_PREFIX = "revision-start-vm-"
# vm.go sync error reasons (the VM's Failure condition, processFailureCondition)
HOTPLUG_VOLUME_ERROR = "HotPlugVolumeError"
HOTPLUG_CPU_ERROR = "HotPlugCPUError"
HOTPLUG_MEMORY_ERROR = "HotPlugMemoryError"
FAILED_UPDATE = "FailedUpdate"
HOTPLUG_NETWORK_ERROR = "HotPlugNetworkInterfaceError"  # pkg/network/controllers/vm.go


class SyncError(Exception):
    """pkg/virt-controller/watch/common SyncError: a message and the reason of the VM's Failure condition."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class HotplugError(Exception):
    """An error a vm.go handler returns (retried, and the VM's Failure condition meanwhile)."""


def _go_error(err: KubeError) -> str:
    """A client-go StatusError's Error(): the Status message."""
    return err.body.get("message", "") if isinstance(err.body, dict) else str(err.body)


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cond(obj: Optional[JSON], kind: str) -> Optional[JSON]:
    return next((c for c in ((obj or {}).get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def _has(obj: Optional[JSON], kind: str, status: Optional[str] = None) -> bool:
    cond = _cond(obj, kind)
    return cond is not None and (status is None or cond.get("status") == status)


def _norm(value: Any) -> Any:
    """equality.Semantic.DeepEqual treats nil and empty lists alike; JSON null fields are unset."""
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    return value


def binary_si(value: int) -> str:
    """resource.Quantity String() of a BinarySI quantity."""
    if value >= 1024:
        for exp, suffix in ((60, "Ei"), (50, "Pi"), (40, "Ti"), (30, "Gi"), (20, "Mi"), (10, "Ki")):
            if value % (1 << exp) == 0:
                return f"{value >> exp}{suffix}"
    return str(value)


def milli_cpu(milli: int) -> str:
    """resource.Quantity String() of a DecimalSI CPU quantity."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


def _template_spec(vm: JSON) -> JSON:
    return ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}


def _running(vmi: Optional[JSON]) -> bool:
    return vmi is not None and (vmi.get("status") or {}).get("phase") == "Running" \
        and not vmi["metadata"].get("deletionTimestamp")


def vcpus(cpu: Optional[JSON]) -> int:
    """pkg/util/hardware GetNumberOfVCPUs."""
    cpu = cpu or {}
    return max(cpu.get("sockets") or 1, 1) * max(cpu.get("cores") or 1, 1) * max(cpu.get("threads") or 1, 1)


# -- pkg/liveupdate/memory/memory.go ---------------------------------------------------------------

def validate_live_update_memory(spec: JSON, max_guest: Optional[str]) -> Optional[str]:
    """memory.go ValidateLiveUpdateMemory: the error text, or None."""
    domain = spec.get("domain") or {}
    cpu = domain.get("cpu") or {}
    if cpu.get("realtime") is not None:
        return "Memory hotplug is not compatible with realtime VMs"
    if (cpu.get("numa") or {}).get("guestMappingPassthrough") is not None:
        return "Memory hotplug is not compatible with guest mapping passthrough"
    if domain.get("launchSecurity") is not None:
        return "Memory hotplug is not compatible with encrypted VMs"
    memory = domain.get("memory") or {}
    alignment = HOTPLUG_BLOCK_ALIGNMENT
    if (memory.get("hugepages") or {}).get("pageSize") == "1Gi":
        alignment = 0x40000000
    if memory.get("guest") is None:
        return "Guest memory must be configured when memory hotplug is enabled"
    if max_guest is None:
        return "Max guest memory must be configured when memory hotplug is enabled"
    guest, maximum = quantity(memory["guest"]), quantity(max_guest)
    if guest.exact > maximum.exact:
        return "Guest memory is greater than the configured maxGuest memory"
    if guest.value() % alignment:
        return f"Guest memory must be {binary_si(alignment)} aligned"
    if maximum.value() % alignment:
        return f"MaxGuest must be {binary_si(alignment)} aligned"
    # The VM mutating webhook sets the architecture (defaults.go setDefaultArchitecture, amd64 in the lab).
    if (spec.get("architecture") or "amd64") != "amd64":
        return "Memory hotplug is only available for x86_64 VMs"
    if guest.value() < REQUIRED_MIN_GUEST_MEMORY:
        return "Memory hotplug is only available for VMs with at least 1Gi of guest memory"
    return None


# -- pkg/defaults/defaults.go (what virt-api's mutating webhook puts on a new VMI) --------------------

def vmi_defaults(spec: JSON, config: JSON) -> Tuple[JSON, JSON]:
    """(spec with CPU/memory defaults and hotplug maxima, status.currentCPUTopology and status.memory)."""
    spec = copy.deepcopy(spec)
    domain = spec.setdefault("domain", {})
    resources = domain.get("resources") or {}
    memory = dict(domain.get("memory") or {})
    # setGuestMemory
    if memory.get("guest") is None:
        for source in (resources.get("requests") or {}, resources.get("limits") or {}):
            if source.get("memory") is not None and not quantity(source["memory"]).is_zero():
                memory["guest"] = source["memory"]
                break
        else:
            page_size = (memory.get("hugepages") or {}).get("pageSize")
            if page_size:
                try:
                    memory["guest"] = str(Quantity(page_size))
                except ValueError:  # resource.ParseQuantity failed: no guest
                    pass
    # The quantities come back as Go serialises them (resource.Quantity String(): "1024Mi" -> "1Gi").
    for key in ("guest", "maxGuest"):
        if memory.get(key) is not None:
            memory[key] = str(Quantity(memory[key]))
    if memory:
        domain["memory"] = memory
    # SetDefaultGuestCPUTopology
    cpu = dict(domain.get("cpu") or {})
    if not (cpu.get("cores") or cpu.get("sockets") or cpu.get("threads")):
        sockets = 1
        cpu_source = (resources.get("limits") or {}).get("cpu", (resources.get("requests") or {}).get("cpu"))
        if cpu_source is not None:
            sockets = quantity(cpu_source).value() & 0xFFFFFFFF
        cpu.update(sockets=sockets, cores=1, threads=1)
    domain["cpu"] = cpu
    sockets, cores, threads = cpu.get("sockets") or 0, cpu.get("cores") or 0, cpu.get("threads") or 0
    live = config.get("liveUpdateConfiguration") or {}
    ratio = live.get("maxHotplugRatio") or DEFAULT_MAX_HOTPLUG_RATIO
    if live_update_rollout(config) and (spec.get("architecture") or "amd64") != "arm64":
        # setupCPUHotplug
        if not cpu.get("maxSockets"):
            max_sockets = live.get("maxCpuSockets") or 0
            if max_sockets and sockets > max_sockets:
                max_sockets = sockets
            if not max_sockets:
                max_sockets = sockets * ratio
                if max_sockets * cores * threads > MAX_VCPUS:
                    max_sockets = max(MAX_VCPUS // (cores * threads), sockets)
            if max_sockets:
                cpu["maxSockets"] = max_sockets
        # setupMemoryHotplug
        if memory and memory.get("maxGuest") is None:
            max_guest = live.get("maxGuest")
            if max_guest is None and memory.get("guest") is not None:
                max_guest = binary_si(quantity(memory["guest"]).value() * ratio)
            if validate_live_update_memory(spec, max_guest) is None:
                memory["maxGuest"] = max_guest
    # setCurrentCPUTopologyStatus (uint32 fields, omitted when zero)
    topology = {k: v for k, v in (("sockets", sockets), ("cores", cores), ("threads", threads)) if v}
    status: JSON = {"currentCPUTopology": topology}
    if memory.get("guest") is not None:  # setGuestMemoryStatus
        status["memory"] = {"guestAtBoot": memory["guest"], "guestCurrent": memory["guest"],
                            "guestRequested": memory["guest"]}
    return spec, status


# -- vm.go syncRestartRequired ---------------------------------------------------------------------

def _by_name(items: Optional[List[JSON]]) -> Dict[str, JSON]:
    return {i.get("name"): i for i in items or []}


def valid_live_update_volumes(old_spec: JSON, vm: JSON) -> bool:
    """vm.go validLiveUpdateVolumes."""
    old_volumes = _by_name(_template_spec({"spec": old_spec}).get("volumes"))
    migration = (vm.get("spec") or {}).get("updateVolumesStrategy") == "Migration"
    for volume in _template_spec(vm).get("volumes") or []:
        old = old_volumes.get(volume.get("name"))
        if hotplug.is_hotplug_volume(volume):
            old_volumes.pop(volume.get("name"), None)
        elif old is None:
            return False
        elif (volume.get("persistentVolumeClaim") or volume.get("dataVolume")) and migration:
            old_volumes.pop(volume.get("name"), None)
        elif _norm(old) != _norm(volume):
            return False
        else:
            old_volumes.pop(volume.get("name"), None)
    return all(hotplug.is_hotplug_volume(v) for v in old_volumes.values())


def _disks(spec: JSON) -> List[JSON]:
    return ((spec.get("domain") or {}).get("devices") or {}).get("disks") or []


def valid_live_update_disks(old_spec: JSON, vm: JSON) -> bool:
    """vm.go validLiveUpdateDisks."""
    old_template = _template_spec({"spec": old_spec})
    old_disks, old_volumes = _by_name(_disks(old_template)), _by_name(old_template.get("volumes"))
    volumes, new_disks = _by_name(_template_spec(vm).get("volumes")), _by_name(_disks(_template_spec(vm)))
    for disk in _disks(_template_spec(vm)):
        name = disk.get("name")
        if name in volumes and hotplug.is_hotplug_volume(volumes[name]):
            old_disks.pop(name, None)
        elif name not in old_disks:
            return False
        elif _norm(old_disks[name]) != _norm(disk):
            return False
        else:
            old_disks.pop(name, None)
    for name, old_disk in old_disks.items():
        if name in old_volumes and not hotplug.is_hotplug_volume(old_volumes[name]):
            return False
        if old_disk.get("cdrom") is not None and name not in new_disks:
            return False
    return True


def net_restart_required(vm: JSON, vmi: JSON) -> bool:
    """pkg/network/vmliveupdate/restart.go IsRestartRequired."""
    desired_ifaces = _by_name(((_template_spec(vm).get("domain") or {}).get("devices") or {}).get("interfaces"))
    current_ifaces = _by_name((((vmi.get("spec") or {}).get("domain") or {}).get("devices") or {}).get("interfaces"))
    for name, iface in current_ifaces.items():
        if name not in desired_ifaces:
            return True
        if _norm({**desired_ifaces[name], "state": None}) != _norm({**iface, "state": None}):
            return True
    desired_nets, current_nets = _by_name(_template_spec(vm).get("networks")), _by_name((vmi.get("spec") or {}).get("networks"))
    if any(n.get("pod") is not None for n in desired_nets.values()) and \
            not any(n.get("pod") is not None for n in current_nets.values()):
        return True

    def without_nad(net: Optional[JSON]) -> Any:
        net = copy.deepcopy(net or {})
        if net.get("multus") is not None:
            net["multus"].pop("networkName", None)
        return _norm(net)
    for name, net in current_nets.items():
        if name not in desired_nets or without_nad(desired_nets[name]) != without_nad(net):
            return True
    return False


def restart_required(start_spec: JSON, vm: JSON, vmi: JSON, config: JSON) -> bool:
    """vm.go syncRestartRequired: whether the template changed in a way that cannot be applied live."""
    last = copy.deepcopy(start_spec)
    current = copy.deepcopy(vm.get("spec") or {})
    last_tpl = last.setdefault("template", {}).setdefault("spec", {})
    cur_tpl = current.setdefault("template", {}).setdefault("spec", {})
    if valid_live_update_volumes(last, vm):
        last_tpl["volumes"] = cur_tpl.get("volumes")
    if valid_live_update_disks(last, vm):
        last_tpl.setdefault("domain", {}).setdefault("devices", {})["disks"] = _disks(cur_tpl)
    if live_update_rollout(config):
        last_dom, cur_dom = last_tpl.setdefault("domain", {}), cur_tpl.setdefault("domain", {})
        if last_dom.get("cpu") is not None and cur_dom.get("cpu") is not None:
            last_dom["cpu"]["sockets"] = cur_dom["cpu"].get("sockets")
        if (cur_dom.get("memory") or {}).get("guest") is not None:
            last_dom.setdefault("memory", {})["guest"] = cur_dom["memory"]["guest"]
        for key in ("nodeSelector", "affinity", "tolerations"):
            last_tpl[key] = cur_tpl.get(key)
    if not net_restart_required(vm, vmi):
        last_tpl.setdefault("domain", {}).setdefault("devices", {})["interfaces"] = \
            ((cur_tpl.get("domain") or {}).get("devices") or {}).get("interfaces")
        last_tpl["networks"] = cur_tpl.get("networks")
    return _norm(last_tpl) != _norm(cur_tpl)


# -- pkg/network/controllers/vm.go VMController.Sync ----------------------------------------------

def _ifaces(spec: JSON) -> List[JSON]:
    return ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []


def _filter_networks(networks: List[JSON], ifaces: List[JSON]) -> List[JSON]:
    """vmispec.FilterNetworksByInterfaces."""
    names = {i.get("name") for i in ifaces}
    return [n for n in networks if n.get("name") in names]


def sync_vmi_interfaces(vm: JSON, vmi: JSON) -> Tuple[List[JSON], List[JSON]]:
    """vm.go syncVMIInterfaces (applyDynamicIfaceRequestOnVMI, clearDetachedIfacesFromVMI, syncNetworks)."""
    spec = copy.deepcopy(vmi.get("spec") or {})
    ifaces, networks = list(_ifaces(spec)), list(spec.get("networks") or [])
    vmi_by_name = _by_name(ifaces)
    vm_networks = _by_name(_template_spec(vm).get("networks"))
    for vm_iface in _ifaces(_template_spec(vm)):
        name = vm_iface.get("name")
        existing = vmi_by_name.get(name)
        if existing is None and vm_iface.get("state") != "absent" \
                and (vm_iface.get("bridge") is not None or vm_iface.get("sriov") is not None):
            if name in vm_networks:
                networks.append(copy.deepcopy(vm_networks[name]))
            ifaces.append(copy.deepcopy(vm_iface))
        elif existing is not None and vm_iface.get("state") != existing.get("state") \
                and existing.get("state") != "absent":
            if vm_iface.get("state"):
                existing["state"] = vm_iface["state"]
            else:
                existing.pop("state", None)
    statuses = {s.get("name") for s in (vmi.get("status") or {}).get("interfaces") or []}
    ifaces = [i for i in ifaces if i.get("state") != "absent" or i.get("name") in statuses]
    networks = _filter_networks(networks, ifaces)
    for net in networks:  # syncNetworks: the NAD reference follows the VM
        vm_net = vm_networks.get(net.get("name"))
        if vm_net and vm_net.get("multus") is not None and net.get("multus") is not None:
            net["multus"]["networkName"] = vm_net["multus"].get("networkName")
    return ifaces, networks


def clear_detached_ifaces_from_vm(vm_copy: JSON, vmi_ifaces: Dict[str, JSON], statuses: set) -> None:
    """vm.go clearDetachedIfacesFromVM, on the VM copy in place."""
    tpl = vm_copy.setdefault("spec", {}).setdefault("template", {}).setdefault("spec", {})
    ifaces = _ifaces(tpl)
    kept = [i for i in ifaces if i.get("state") != "absent" or i.get("name") in vmi_ifaces or i.get("name") in statuses]
    if len(kept) != len(ifaces):
        tpl["domain"]["devices"]["interfaces"] = kept
        tpl["networks"] = _filter_networks(tpl.get("networks") or [], kept)


hashed_pod_iface = netstat.hashed_pod_iface


# -- the state kept per controller -------------------------------------------------------------------

class LiveUpdate:
    _lock = threading.Lock()
    _instances: Dict[int, "LiveUpdate"] = {}

    def __init__(self, kube: Kube, step: float):
        self.kube, self.step = kube, step
        self.volumes = hotplug.VolumeStatusSimulator(kube)
        self.revisions: Dict[Tuple[str, str], JSON] = {}
        self.iface_since: Dict[Tuple[str, str, str], float] = {}

    @classmethod
    def of(cls, controller: Any) -> "LiveUpdate":
        with cls._lock:
            if id(controller) not in cls._instances:
                cls._instances[id(controller)] = cls(controller.kube, controller.step)
            return cls._instances[id(controller)]

    # -- start revision (vm.go createVMRevision / getLastVMRevisionSpec) ---------------------------

    def revision_spec(self, namespace: str, name: str) -> Optional[JSON]:
        key = (namespace, name)
        if key not in self.revisions:
            rev = self.kube.get_or_none(object_path("apps/v1", "controllerrevisions", name, namespace))
            if rev is None:
                return None
            self.revisions[key] = (rev.get("data") or {}).get("spec") or {}
        return self.revisions[key]

    def start_vmi(self, vm: JSON, vmi: JSON, config: JSON) -> None:
        """What vm.go startVMI and virt-api's mutating webhook put on a new VMI, done on first sight."""
        meta, vmeta = vm["metadata"], vmi["metadata"]
        generation = int((vmeta.get("annotations") or {}).get("kubevirt.io/vm-generation") or meta.get("generation", 1))
        name = f"{REVISION_PREFIX}{meta['uid']}-{generation}"
        if generation == meta.get("generation", 1):
            spec = copy.deepcopy(vm.get("spec") or {})
        else:  # the VM changed before we saw its VMI: the VMI spec is the template it started from
            spec = copy.deepcopy(vm.get("spec") or {})
            vmi_spec = copy.deepcopy(vmi.get("spec") or {})
            vmi_spec.pop("startStrategy", None)
            spec.setdefault("template", {})["spec"] = vmi_spec
        revisions = self.kube.get(object_path("apps/v1", "controllerrevisions", namespace=meta["namespace"]))
        for rev in revisions.get("items") or []:  # deleteOlderVMRevision
            rname = rev["metadata"]["name"]
            if rname.startswith(REVISION_PREFIX + meta["uid"]) and rname != name:
                self.kube.delete(object_path("apps/v1", "controllerrevisions", rname, meta["namespace"]))
        try:
            self.kube.create(object_path("apps/v1", "controllerrevisions", namespace=meta["namespace"]), {
                "apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "namespace": meta["namespace"], "ownerReferences": [{
                    "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "name": meta["name"], "uid": meta["uid"],
                    "controller": True, "blockOwnerDeletion": True}]},
                "data": {"spec": spec}, "revision": generation})
        except KubeError as err:
            if err.status != 409:
                raise
        new_spec, status = vmi_defaults(vmi.get("spec") or {}, config)
        patch: JSON = {"metadata": {"resourceVersion": vmeta["resourceVersion"]},
                       "status": {"virtualMachineRevisionName": name}}
        if new_spec != vmi.get("spec"):
            patch["spec"] = {"domain": {"cpu": new_spec["domain"]["cpu"]}}
            if new_spec["domain"].get("memory"):
                patch["spec"]["domain"]["memory"] = new_spec["domain"]["memory"]
        current = vmi.get("status") or {}
        if not current.get("currentCPUTopology"):
            patch["status"]["currentCPUTopology"] = status["currentCPUTopology"]
        if not current.get("memory") and status.get("memory"):
            patch["status"]["memory"] = status["memory"]
        self.kube.merge_patch(_vmi_path(vmi), patch)

    # -- the VM controller's part ---------------------------------------------------------------

    def sync(self, controller: Any, vm: JSON, vmi: Optional[JSON]) -> Tuple[Optional[float], Optional[SyncError]]:
        """vm.go sync from syncRestartRequired on: (seconds until a new look, the sync error for the VM's
        Failure condition). A final VMI is still the VM's VMI here (vm.go passes it on)."""
        if vm["metadata"].get("deletionTimestamp"):
            return None, None
        config = controller.operators.kubevirt_config()
        live = vmi is not None and not vmi["metadata"].get("deletionTimestamp")
        final = vmi is not None and (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed")
        if live and not final and not (vmi.get("status") or {}).get("virtualMachineRevisionName"):
            self.start_vmi(vm, vmi, config)
            return None, None  # the VMI's update brings us back
        if live and not final and self._bump_generation(vm, vmi):
            return None, None  # the VMI's update brings us back
        conditions = [dict(c) for c in (vm.get("status") or {}).get("conditions") or []]
        restart = _cond(vm, RESTART_REQUIRED)
        needs_restart = False
        if vmi is not None:  # vm.go sync: getLastVMRevisionSpec only while a VMI exists
            start = self.revision_spec(vm["metadata"]["namespace"], (vmi.get("status") or {}).get("virtualMachineRevisionName", ""))
            if start is not None:  # syncRestartRequired: nothing changes without a start revision
                needs_restart = restart_required(start, vm, vmi, config)
                restart = _restart_condition(restart, NON_LIVE_UPDATABLE) if needs_restart else None
        # Without a VMI the condition stays: vm.go startVMI/stopVMI (cleanupRestartRequired) remove it,
        # see cleanup_restart_required, called by the stand-in's start and stop.
        vm_copy = copy.deepcopy(vm)
        copy_restart = restart  # vm.go: the handlers' setRestartRequired works on vmCopy
        sync_error: Optional[SyncError] = None
        vm_now = vm
        try:
            if vmi is None or not vmi["metadata"].get("deletionTimestamp"):
                try:
                    self._sync_networks(vm_copy, vmi)
                except KubeError as err:
                    if err.status == 409:
                        raise
                    raise SyncError(HOTPLUG_NETWORK_ERROR, f"error encountered when trying to patch vmi: {_go_error(err)}")
            try:
                hotplug.handle_volume_requests(self.kube, vm_copy, vmi)
            except KubeError as err:
                raise SyncError(HOTPLUG_VOLUME_ERROR,
                                f"Error encountered while handling volume hotplug requests: {_go_error(err)}")
            if hotplug.declarative_hotplug(config):
                try:
                    hotplug.handle_declarative_hotplug(self.kube, vm_copy, vmi)
                except KubeError as err:
                    raise SyncError(HOTPLUG_VOLUME_ERROR,
                                    f"Error encountered while handling declarative hotplug volumes: {_go_error(err)}")
            # vm.go sync: only while no restart is pending; a RestartRequired from the CPU change does not
            # stop the memory change, an error does (the sync returns).
            if live_update_rollout(config) and not needs_restart and restart is None and live:
                for handler_fn, reason, prefix in (
                        (self._cpu_change, HOTPLUG_CPU_ERROR, "Error encountered while handling CPU change request: "),
                        (self._memory_change, HOTPLUG_MEMORY_ERROR, "error encountered while handling memory hotplug requests: ")):
                    try:
                        message = handler_fn(vm_copy, vmi, config)
                    except HotplugError as err:
                        raise SyncError(reason, prefix + str(err))
                    except KubeError as err:
                        if err.status == 409:
                            raise
                        raise SyncError(reason, prefix + _go_error(err))
                    if message:
                        copy_restart = _restart_condition(copy_restart, message)
            if _norm(vm_copy.get("spec")) != _norm(vm.get("spec")):
                body = {k: v for k, v in vm_copy.items() if k != "status"}
                try:
                    vm_now = self.kube.request("PUT", _vm_path(vm), body)
                except KubeError as err:
                    if err.status == 409:
                        raise
                    raise SyncError(FAILED_UPDATE, "Error encountered when trying to update vm according to add volume "
                                    f"and/or memory dump requests: {_go_error(err)}")
                # vm = updatedVm: the server's copy, without what the handlers set on vmCopy's status
            else:
                restart = copy_restart  # vm = vmCopy
        except SyncError as err:
            sync_error = err  # the sync returns: vm (not vmCopy) goes to updateStatus
        self._update_status(vm, vm_now, conditions, restart)
        moving = self._sync_vmi(vm, vmi, config) if _running(vmi) else False
        return (self.step if moving or sync_error else None), sync_error

    def _bump_generation(self, vm: JSON, vmi: JSON) -> bool:
        """vm.go conditionallyBumpGenerationAnnotationOnVmi: the VMI's vm-generation annotation follows the VM's
        generation only while the VM template equals the one the VMI started from; after a live update (or
        a change that needs a restart) it stays, so status.observedGeneration lags until the next start."""
        annotations = vmi["metadata"].get("annotations") or {}
        generation = vm["metadata"].get("generation", 1)
        if annotations.get(GENERATION_ANNOTATION) == str(generation):
            return False
        start = self.revision_spec(vm["metadata"]["namespace"], (vmi.get("status") or {}).get("virtualMachineRevisionName", ""))
        if start is None or _norm(start.get("template")) != _norm((vm.get("spec") or {}).get("template")):
            return False
        self.kube.merge_patch(_vmi_path(vmi), {"metadata": {
            "resourceVersion": vmi["metadata"]["resourceVersion"], "annotations": {GENERATION_ANNOTATION: str(generation)}}})
        return True

    def _update_status(self, vm: JSON, vm_now: JSON, conditions: List[JSON], restart: Optional[JSON]) -> None:
        """vm.go updateStatus: trimDoneVolumeRequests and the RestartRequired condition."""
        status = vm.get("status") or {}
        requests = hotplug.trim_done_volume_requests({"spec": vm_now.get("spec"), "status": status})
        wanted = [c for c in conditions if c.get("type") != RESTART_REQUIRED] + ([restart] if restart else [])
        patch: JSON = {}
        if requests != (status.get("volumeRequests") or []):
            patch["volumeRequests"] = requests or None
        if wanted != conditions:
            patch["conditions"] = wanted
        if not patch:
            return
        self.kube.merge_patch(_vm_path(vm) + "/status", {
            "metadata": {"resourceVersion": vm_now["metadata"]["resourceVersion"]}, "status": patch})
        # The status update that follows in reconcile_vm starts from what is now on the server.
        vm.setdefault("status", {}).update({k: v for k, v in patch.items() if v is not None})
        if patch.get("volumeRequests", 0) is None:
            vm["status"].pop("volumeRequests", None)

    def _sync_networks(self, vm_copy: JSON, vmi: Optional[JSON]) -> None:
        """pkg/network/controllers/vm.go VMController.Sync."""
        vmi_ifaces: Dict[str, JSON] = {}
        statuses: set = set()
        if vmi is not None:
            statuses = {s.get("name") for s in (vmi.get("status") or {}).get("interfaces") or []}
            ifaces, networks = sync_vmi_interfaces(vm_copy, vmi)
            spec = vmi.get("spec") or {}
            if _norm(ifaces) != _norm(_ifaces(spec)) or _norm(networks) != _norm(spec.get("networks") or []):
                # vmiInterfacesPatch (its test operations are the resourceVersion precondition here)
                self.kube.merge_patch(_vmi_path(vmi), {
                    "metadata": {"resourceVersion": vmi["metadata"]["resourceVersion"]},
                    "spec": {"networks": networks, "domain": {"devices": {"interfaces": ifaces}}}})
            vmi_ifaces = _by_name(ifaces)
        clear_detached_ifaces_from_vm(vm_copy, vmi_ifaces, statuses)

    def _cpu_change(self, vm: JSON, vmi: JSON, config: JSON) -> Optional[str]:
        """vm.go handleCPUChangeRequest and VMICPUsPatch; returns a RestartRequired message."""
        tpl_cpu = (_template_spec(vm).get("domain") or {}).get("cpu")
        vmi_cpu = ((vmi.get("spec") or {}).get("domain") or {}).get("cpu")
        if not tpl_cpu or not vmi_cpu or (tpl_cpu.get("sockets") or 0) == (vmi_cpu.get("sockets") or 0):
            return None
        if _has(vmi, VCPU_CHANGE, "True"):
            raise HotplugError("another CPU hotplug is in progress")
        if hotplug.migrating(vmi):
            raise HotplugError("CPU hotplug is not allowed while VMI is migrating")
        sockets = tpl_cpu.get("sockets") or 0
        if sockets > (vmi_cpu.get("maxSockets") or 0):
            return "CPU sockets updated in template spec to a value higher than what's available"
        if sockets < (vmi_cpu.get("sockets") or 0):
            return "Reduction of CPU socket count requires a restart"
        if (_template_spec(vm).get("architecture") or "") == "arm64":
            return "ARM doesn't support CPU hotplug"
        ratio = (config.get("developerConfiguration") or {}).get("cpuAllocationRatio") or DEFAULT_CPU_ALLOCATION_RATIO
        delta = (vcpus(tpl_cpu) - vcpus(vmi_cpu)) * (1000 // ratio)
        patch: JSON = {"metadata": {"resourceVersion": vmi["metadata"]["resourceVersion"]},
                       "spec": {"domain": {"cpu": {"sockets": sockets}}}}
        tpl_res = (_template_spec(vm).get("domain") or {}).get("resources") or {}
        vmi_res = ((vmi.get("spec") or {}).get("domain") or {}).get("resources") or {}
        for kind in ("requests", "limits"):
            if not quantity((tpl_res.get(kind) or {}).get("cpu")).is_zero():
                current = quantity((vmi_res.get(kind) or {}).get("cpu")).milli_value()
                patch["spec"]["domain"].setdefault("resources", {})[kind] = {"cpu": milli_cpu(current + delta)}
        self.kube.merge_patch(_vmi_path(vmi), patch)
        log.info("hotplugging cpu to %s sockets for %s/%s", sockets, vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        return None

    def _memory_change(self, vm: JSON, vmi: JSON, _config: JSON) -> Optional[str]:
        """vm.go handleMemoryHotplugRequest; returns a RestartRequired message."""
        tpl_mem = (_template_spec(vm).get("domain") or {}).get("memory") or {}
        vmi_mem = ((vmi.get("spec") or {}).get("domain") or {}).get("memory") or {}
        status_mem = (vmi.get("status") or {}).get("memory") or {}
        if tpl_mem.get("guest") is None or vmi_mem.get("guest") is None or status_mem.get("guestCurrent") is None:
            return None
        if _has(vmi, MEMORY_CHANGE, "False"):
            return "memory updated in template spec. Memory-hotplug failed and is not available for this VM configuration"
        guest = quantity(tpl_mem["guest"])
        if guest.exact == quantity(vmi_mem["guest"]).exact:
            return None
        if not _has(vmi, "LiveMigratable", "True"):
            return "memory updated in template spec. Memory-hotplug is only available for migratable VMs"
        if vmi_mem.get("maxGuest") is None:
            return "memory updated in template spec. Memory-hotplug is not available for this VM configuration"
        if _has(vmi, MEMORY_CHANGE, "True"):
            raise HotplugError("another memory hotplug is in progress")
        if hotplug.migrating(vmi):
            raise HotplugError("memory hotplug is not allowed while VMI is migrating")
        problem = validate_live_update_memory(_template_spec(vm), vmi_mem["maxGuest"])
        if problem:
            return f"memory hotplug not supported, {problem}"
        if status_mem.get("guestAtBoot") is not None and guest.exact < quantity(status_mem["guestAtBoot"]).exact:
            return "memory updated in template spec to a value lower than what the VM started with"
        if guest.exact > quantity(vmi_mem["maxGuest"]).exact:
            return "memory updated in template spec to a value higher than what's available"
        delta = guest.value() - quantity(status_mem["guestCurrent"]).value()
        patch: JSON = {"metadata": {"resourceVersion": vmi["metadata"]["resourceVersion"]},
                       "spec": {"domain": {"memory": {"guest": str(Quantity(tpl_mem["guest"]))}}}}
        vmi_res = ((vmi.get("spec") or {}).get("domain") or {}).get("resources") or {}
        request = quantity((vmi_res.get("requests") or {}).get("memory"))
        if not request.is_zero():
            new_request = request.value() + delta
            if new_request < guest.value():
                # memoryDelta = guest - newMemoryReq, computed after newMemoryReq = guest: 0
                delta = 0
                new_request = guest.value()
            patch["spec"]["domain"].setdefault("resources", {})["requests"] = {"memory": binary_si(new_request)}
        tpl_limit = quantity(((_template_spec(vm).get("domain") or {}).get("resources") or {}).get("limits", {}).get("memory"))
        if not tpl_limit.is_zero():
            limit = quantity((vmi_res.get("limits") or {}).get("memory")).value() + delta
            patch["spec"]["domain"].setdefault("resources", {})["limits"] = {"memory": binary_si(limit)}
        self.kube.merge_patch(_vmi_path(vmi), patch)
        log.info("hotplugging memory to %s for %s/%s", tpl_mem["guest"], vmi["metadata"]["namespace"], vmi["metadata"]["name"])
        return None

    # -- virt-controller's VMI controller and virt-handler ----------------------------------------

    def _sync_vmi(self, _vm: Optional[JSON], vmi: JSON, config: JSON) -> bool:
        """vmi/lifecycle.go (updateVolumeStatus, updateNetworkStatus, hotplug conditions) and virt-handler."""
        namespace = vmi["metadata"]["namespace"]
        spec, status = vmi.get("spec") or {}, vmi.get("status") or {}
        # services/rendervolumes.go: the launcher pod has the VMI's volumes except the hotpluggable PVCs and
        # DataVolumes, which reach it through an attachment pod (also when the VMI starts with them)
        pod_volumes = {v.get("name") for v in spec.get("volumes") or [] if not hotplug.is_hotplug_volume(v)}
        claims = {hotplug.claim_name(v) for v in spec.get("volumes") or [] if hotplug.claim_name(v)}
        pvcs = {c: self.kube.get_or_none(object_path("v1", "persistentvolumeclaims", c, namespace)) for c in claims}
        dvs: Dict[str, Optional[JSON]] = {}
        for pvc in pvcs.values():
            owner = next((r for r in (pvc or {}).get("metadata", {}).get("ownerReferences") or []
                          if r.get("controller") and r.get("kind") == "DataVolume"), None)
            if owner:
                dvs[owner["name"]] = self.kube.get_or_none(
                    object_path("cdi.kubevirt.io/v1beta1", "datavolumes", owner["name"], namespace))
        overhead = self._fs_overheads(pvcs)
        volume_status, moving = self.volumes.compute(vmi, pod_volumes, pvcs, dvs, overhead, self.step)
        patch: JSON = {}
        if volume_status != (status.get("volumeStatus") or []):
            patch["volumeStatus"] = volume_status
        interfaces, iface_moving = self._interfaces(vmi)
        if interfaces != (status.get("interfaces") or []):
            patch["interfaces"] = interfaces
        conditions = [dict(c) for c in status.get("conditions") or []]
        wanted = list(conditions)
        cpu, current = (spec.get("domain") or {}).get("cpu") or {}, status.get("currentCPUTopology")
        if current and cpu.get("maxSockets") and vcpus(cpu) != vcpus(current) and not _cond(vmi, VCPU_CHANGE):
            wanted.append({"type": VCPU_CHANGE, "status": "True", "lastProbeTime": None, "lastTransitionTime": None})
        memory, mstatus = (spec.get("domain") or {}).get("memory") or {}, status.get("memory") or {}
        if mstatus and memory.get("guest") and memory.get("maxGuest") and mstatus.get("guestRequested") \
                and quantity(memory["guest"]).value() != quantity(mstatus["guestRequested"]).value() \
                and not _cond(vmi, MEMORY_CHANGE):
            wanted.append({"type": MEMORY_CHANGE, "status": "True", "lastProbeTime": None, "lastTransitionTime": None})
        if not hotplug.migrating(vmi):
            wanted = sync_migration_required(vmi, interfaces, wanted)
        wanted = check_failure(wanted, self.volumes.sync_errors.get(vmi["metadata"]["uid"]), "PVCNotReady")
        if wanted != conditions:
            patch["conditions"] = wanted
        if patch:
            self.kube.merge_patch(_vmi_path(vmi), {"metadata": {"resourceVersion": vmi["metadata"]["resourceVersion"]},
                                                   "status": patch})
        return moving or iface_moving

    def _fs_overheads(self, pvcs: Dict[str, Optional[JSON]]) -> Dict[str, str]:
        """vmi/storage.go getFilesystemOverhead of each claim found (storage.claim_filesystem_overhead)."""
        found = {name: pvc for name, pvc in pvcs.items() if pvc is not None}
        if not found:
            return {}
        try:
            cdis = len(self.kube.get(object_path("cdi.kubevirt.io/v1beta1", "cdis")).get("items") or [])
        except KubeError as err:
            if err.status != 404:
                raise
            cdis = 0
        config = self.kube.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", storage.CDI_CONFIG)) \
            if cdis == 1 else None
        return {name: storage.claim_filesystem_overhead(pvc, cdis, config) for name, pvc in found.items()}

    def _due(self, uid: str, name: str, stage: str) -> bool:
        """One step between two reports on a hotplugged interface."""
        since = self.iface_since.setdefault((uid, name, stage), time.monotonic())
        return time.monotonic() - since >= self.step

    def _interfaces(self, vmi: JSON) -> Tuple[List[JSON], bool]:
        """Interface status of hotplugged/unplugged secondary interfaces: multus adds the pod interface
        (pkg/network/controllers/vmi.go calculateSecondaryIfaceStatuses, infoSource multus-status),
        then virt-handler attaches it to the domain and reports it (infoSource domain, guest-agent)."""
        spec, uid = vmi.get("spec") or {}, vmi["metadata"]["uid"]
        statuses = [dict(s) for s in (vmi.get("status") or {}).get("interfaces") or []]
        by_name = {s.get("name"): s for s in statuses}
        networks = _by_name(spec.get("networks"))
        ifaces = _ifaces(spec)
        moving = False
        result = list(statuses)
        for index, iface in enumerate(ifaces):
            name = iface.get("name")
            net = networks.get(name) or {}
            if net.get("multus") is None or (net["multus"] or {}).get("default"):
                continue
            status = by_name.get(name)
            if iface.get("state") == "absent":
                if status is None:
                    continue
                moving = True
                if netstat.has_info_source(status.get("infoSource"), netstat.DOMAIN) and self._due(uid, name, "detach"):
                    # the domain lost it: only the pod interface (multus-status) is left
                    result[result.index(status)] = netstat.multus_only(name)
                elif not netstat.has_info_source(status.get("infoSource"), netstat.DOMAIN) and self._due(uid, name, "unplug"):
                    result.remove(status)
                continue
            if status is None:
                moving = True
                if self._due(uid, name, "multus"):
                    result.append(netstat.multus_only(name))
            elif not netstat.has_info_source(status.get("infoSource"), netstat.DOMAIN):
                moving = True
                if self._due(uid, name, "domain"):
                    agent = _has(vmi, "AgentConnected", "True")
                    result[result.index(status)] = netstat.interface_status(vmi, iface, index, agent)
        return result, moving


def check_failure(conditions: List[JSON], error: Optional[str], reason: str) -> List[JSON]:
    """pkg/controller/conditions.go VirtualMachineInstanceConditionManager.CheckFailure: the Synchronized
    condition False with the sync error's reason and message, removed once a sync succeeds."""
    current = next((c for c in conditions if c.get("type") == "Synchronized"), None)
    if error is None:
        return [c for c in conditions if c.get("type") != "Synchronized"]
    if current is not None and current.get("status") == "False" and current.get("reason") == reason:
        return conditions
    return [c for c in conditions if c.get("type") != "Synchronized"] + [{
        "type": "Synchronized", "status": "False", "reason": reason, "message": error,
        "lastProbeTime": None, "lastTransitionTime": _now()}]


def _iso_seconds(stamp: Optional[str]) -> float:
    try:
        return datetime.strptime(stamp or "", "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()
    except ValueError:
        return time.time()


def net_migration_requirement(vmi: JSON, interfaces: List[JSON]) -> str:
    """pkg/network/migration/evaluator.go shouldVMIBeMarkedForAutoMigration: "immediate", "pending" or "".
    (Its last check, a NAD name differing from the pod's network-status, never holds in the lab: the
    stand-in's pod interfaces follow the VMI.)"""
    spec = vmi.get("spec") or {}
    networks = _by_name(spec.get("networks"))
    statuses = _by_name(interfaces)
    for iface in _ifaces(spec):
        if not netstat.is_secondary(networks.get(iface.get("name"))):
            continue
        status = statuses.get(iface.get("name"))
        if iface.get("state") != "absent" and status is None:  # shouldMigrateOnIfaceHotplug
            return "immediate" if iface.get("sriov") is not None else "pending"
        if iface.get("state") == "absent" and status is not None \
                and netstat.has_info_source(status.get("infoSource"), netstat.MULTUS_STATUS) \
                and not netstat.has_info_source(status.get("infoSource"), netstat.DOMAIN):  # shouldMigrateOnIfaceUnplug
            return "pending"
    return ""


def sync_migration_required(vmi: JSON, interfaces: List[JSON], conditions: List[JSON]) -> List[JSON]:
    """vmi/lifecycle.go syncMigrationRequiredCondition with evaluator.go Evaluate (not called while migrating)."""
    requirement = net_migration_requirement(vmi, interfaces)
    existing = next((c for c in conditions if c.get("type") == MIGRATION_REQUIRED), None)
    if not requirement:
        return [c for c in conditions if c.get("type") != MIGRATION_REQUIRED]
    if existing is not None and existing.get("status") == "True":
        return conditions
    status = "True" if requirement == "immediate" else "False"
    if requirement == "pending" and existing is not None and existing.get("status") == "False" \
            and time.time() - _iso_seconds(existing.get("lastTransitionTime")) > NET_MIGRATION_GRACE_SECONDS:
        status = "True"
    reason = "AutoMigrationDueToLiveUpdate" if status == "True" else "AutoMigrationPending"  # newMigrationRequiredCondition
    if existing is not None and existing.get("status") == status and existing.get("reason") == reason:
        return conditions  # UpdateCondition: same status and reason
    new = {"type": MIGRATION_REQUIRED, "status": status, "reason": reason,
           "lastProbeTime": None, "lastTransitionTime": _now()}
    if existing is None:
        return conditions + [new]
    return [new if c.get("type") == MIGRATION_REQUIRED else c for c in conditions]


def _restart_condition(previous: Optional[JSON], message: str) -> JSON:
    """vm.go setRestartRequired through VirtualMachineConditionManager.UpdateCondition (pkg/controller/
    conditions.go): an existing condition is replaced only when its status or reason differs; the reason is
    always empty, so the first message stays until the condition goes."""
    if previous and previous.get("status") == "True" and not previous.get("reason"):
        return previous
    return {"type": RESTART_REQUIRED, "status": "True", "message": message, "lastProbeTime": None,
            "lastTransitionTime": _now()}


def _vm_path(vm: JSON) -> str:
    meta = vm["metadata"]
    return object_path("kubevirt.io/v1", "virtualmachines", meta["name"], meta["namespace"])


def _vmi_path(vmi: JSON) -> str:
    meta = vmi["metadata"]
    return object_path("kubevirt.io/v1", "virtualmachineinstances", meta["name"], meta["namespace"])


GENERATION_ANNOTATION = "kubevirt.io/vm-generation"


def generation_info(vm: JSON, vmi: Optional[JSON]) -> Tuple[Optional[int], Optional[int]]:
    """vm.go syncGenerationInfo: (status.observedGeneration, status.desiredGeneration). updateStatus calls it
    only while a VMI exists: observed is the VMI's vm-generation annotation, desired the VM's generation.
    Without a VMI both keep their values (absent on a VM never started)."""
    status = vm.get("status") or {}
    if vmi is None:
        return status.get("observedGeneration"), status.get("desiredGeneration")
    try:
        observed: Optional[int] = int((vmi["metadata"].get("annotations") or {})[GENERATION_ANNOTATION])
    except (KeyError, TypeError, ValueError):
        observed = status.get("observedGeneration")
    return observed, vm["metadata"].get("generation", 1)


def sync_vm(controller: Any, vm: JSON, vmi: Optional[JSON]) -> Tuple[Optional[float], Optional[SyncError]]:
    """The hook VirtController.reconcile_vm calls: (seconds until it wants to look again, the sync error
    that becomes the VM's Failure condition, vm.go processFailureCondition).

    The stand-in's merge patches carry the object's resourceVersion where vm.go's JSON patches carry
    test operations on the fields they change; a 409 from that precondition (a stale copy) is retried
    without a Failure condition, as vm.go's test operations would have passed."""
    try:
        return LiveUpdate.of(controller).sync(controller, vm, vmi)
    except KubeError as err:
        if err.status != 409:
            log.warning("live update %s/%s: %s", vm["metadata"].get("namespace"), vm["metadata"]["name"], err)
        return 0.2, None
    except Exception:  # noqa: BLE001 - the VM's status update must still run
        log.exception("live update %s/%s", vm["metadata"].get("namespace"), vm["metadata"]["name"])
        return 1.0, None


def sync_vmi_alone(controller: Any, vmi: JSON) -> Optional[float]:
    """virt-controller's VMI controller (vmi/lifecycle.go updateStatus) for a running VMI no VM owns: its
    volume and interface status and hotplug conditions, which sync_vm handles for a VM's VMI."""
    try:
        return controller.step if LiveUpdate.of(controller)._sync_vmi(None, vmi, controller.operators.kubevirt_config()) \
            else None
    except KubeError as err:
        if err.status != 409:
            log.warning("VMI %s/%s: %s", vmi["metadata"].get("namespace"), vmi["metadata"]["name"], err)
        return 0.2


def cleanup_restart_required(vm: JSON) -> None:
    """vm.go cleanupRestartRequired, called by startVMI and stopVMI (on the VM object in hand)."""
    status = vm.get("status") or {}
    if _cond(vm, RESTART_REQUIRED):
        status["conditions"] = [c for c in status.get("conditions") or [] if c.get("type") != RESTART_REQUIRED]
