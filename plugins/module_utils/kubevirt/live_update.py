# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What KubeVirt applies to a running VM live, and what waits for a restart (pure, no network).

Under the LiveUpdate rollout strategy KubeVirt's VM controller propagates some template changes to the
running instance (CPU sockets, guest memory, node selector, affinity, tolerations, hotplugged volumes and
bridge NICs) and marks the VM `RestartRequired` for every other one. The prediction here follows
pkg/virt-controller/watch/vm/vm.go (syncRestartRequired, handleCPUChangeRequest, handleMemoryHotplugRequest),
pkg/liveupdate/memory/memory.go (ValidateLiveUpdateMemory) and pkg/network/vmliveupdate/restart.go
(IsRestartRequired); after a real write the VM's own condition is what the module reports. Under the Stage
strategy (spec.configuration.vmRolloutStrategy of the KubeVirt CR) KubeVirt applies none of the CPU, memory
and placement changes live (syncRestartRequired, sync: IsVMRolloutStrategyLiveUpdate), so each of them
needs a restart; an unset strategy is LiveUpdate (pkg/virt-config/virt-config.go IsVMRolloutStrategyLiveUpdate).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import quantity_bytes

RESTART_REQUIRED = "RestartRequired"
# pkg/liveupdate/memory/memory.go: HotplugBlockAlignmentBytes and requiredMinGuestMemory.
HOTPLUG_BLOCK_BYTES = 0x200000
MIN_HOTPLUG_GUEST_BYTES = 0x40000000


def _bytes(value):
    return None if value is None else quantity_bytes(str(value))


def condition(obj, kind):
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def restart_required_condition(vm):
    """The VM's RestartRequired condition when it is True, else None."""
    cond = condition(vm, RESTART_REQUIRED)
    return cond if cond and cond.get("status") == "True" else None


def memory_hotplug_problem(template_spec, max_guest):
    """Why KubeVirt would not hotplug memory for this VMI spec (ValidateLiveUpdateMemory), or None."""
    domain = template_spec.get("domain") or {}
    cpu = domain.get("cpu") or {}
    if cpu.get("realtime") is not None:
        return "Memory hotplug is not compatible with realtime VMs"
    if ((cpu.get("numa") or {}).get("guestMappingPassthrough")) is not None:
        return "Memory hotplug is not compatible with guest mapping passthrough"
    if domain.get("launchSecurity") is not None:
        return "Memory hotplug is not compatible with encrypted VMs"
    memory = domain.get("memory") or {}
    block = HOTPLUG_BLOCK_BYTES
    if (memory.get("hugepages") or {}).get("pageSize") == "1Gi":
        block = 0x40000000
    guest, maximum = _bytes(memory.get("guest")), _bytes(max_guest)
    if guest is None:
        return "Guest memory must be configured when memory hotplug is enabled"
    if maximum is None:
        return "Max guest memory must be configured when memory hotplug is enabled"
    if guest > maximum:
        return "Guest memory is greater than the configured maxGuest memory"
    if guest % block:
        return "Guest memory must be %dMi aligned" % (block // 1048576)
    if maximum % block:
        return "MaxGuest must be %dMi aligned" % (block // 1048576)
    if guest < MIN_HOTPLUG_GUEST_BYTES:
        return "Memory hotplug is only available for VMs with at least 1Gi of guest memory"
    return None


def _cpu_change(after, vmi):
    """handleCPUChangeRequest: a sockets change the running instance cannot take, or None."""
    new_cpu = ((after.get("domain") or {}).get("cpu")) or {}
    vmi_cpu = (((vmi.get("spec") or {}).get("domain") or {}).get("cpu")) or {}
    if not new_cpu or not vmi_cpu or new_cpu.get("sockets") == vmi_cpu.get("sockets"):
        return None
    sockets, current = new_cpu.get("sockets") or 1, vmi_cpu.get("sockets") or 1
    if vmi_cpu.get("maxSockets") and sockets > vmi_cpu["maxSockets"]:
        return "CPU sockets updated in template spec to a value higher than what's available"
    if sockets < current:
        return "Reduction of CPU socket count requires a restart"
    return None


def _memory_change(after, vmi):
    """handleMemoryHotplugRequest: a guest memory change the running instance cannot take, or None."""
    guest = ((after.get("domain") or {}).get("memory") or {}).get("guest")
    vmi_memory = ((vmi.get("spec") or {}).get("domain") or {}).get("memory") or {}
    if guest is None or vmi_memory.get("guest") is None or _bytes(guest) == _bytes(vmi_memory["guest"]):
        return None
    max_guest = vmi_memory.get("maxGuest")
    if max_guest is None:
        return "memory updated in template spec. Memory-hotplug is not available for this VM configuration"
    problem = memory_hotplug_problem(after, max_guest)
    if problem:
        return "memory hotplug not supported, %s" % problem
    at_boot = (((vmi.get("status") or {}).get("memory")) or {}).get("guestAtBoot")
    if at_boot is not None and _bytes(guest) < _bytes(at_boot):
        return "memory updated in template spec to a value lower than what the VM started with"
    if _bytes(guest) > _bytes(max_guest):
        return "memory updated in template spec to a value higher than what's available"
    return None


def _is_hotplug_volume(volume):
    source = (volume or {}).get("dataVolume") or (volume or {}).get("persistentVolumeClaim") or {}
    return bool(source.get("hotpluggable"))


def _by_name(items):
    return dict(((item or {}).get("name"), item) for item in items or [])


def _volumes_live_updatable(before, after):
    """vm.go validLiveUpdateVolumes: only hotpluggable volumes were added, changed or removed."""
    old = _by_name(before.get("volumes"))
    for volume in after.get("volumes") or []:
        previous = old.pop(volume.get("name"), None)
        if _is_hotplug_volume(volume):
            continue
        if previous is None or previous != volume:
            return False
    return all(_is_hotplug_volume(v) for v in old.values())


def _disks_live_updatable(before, after):
    """vm.go validLiveUpdateDisks: only disks of hotpluggable volumes were added, changed or removed."""
    old_disks = _by_name(((before.get("domain") or {}).get("devices") or {}).get("disks"))
    old_volumes, new_volumes = _by_name(before.get("volumes")), _by_name(after.get("volumes"))
    new_disks = ((after.get("domain") or {}).get("devices") or {}).get("disks") or []
    for disk in new_disks:
        previous = old_disks.pop(disk.get("name"), None)
        if _is_hotplug_volume(new_volumes.get(disk.get("name"))):
            continue
        if previous is None or previous != disk:
            return False
    names = {d.get("name") for d in new_disks}
    for name, disk in old_disks.items():
        volume = old_volumes.get(name)
        if volume is not None and not _is_hotplug_volume(volume):
            return False
        if disk.get("cdrom") is not None and name not in names:
            return False
    return True


def _without_state(iface):
    trimmed = dict(iface or {})
    trimmed.pop("state", None)
    return trimmed


def _without_nad_name(net):
    trimmed = copy.deepcopy(net or {})
    if trimmed.get("multus") is not None:
        trimmed["multus"].pop("networkName", None)
    return trimmed


def network_restart_required(after, vmi):
    """pkg/network/vmliveupdate/restart.go IsRestartRequired, against the running instance's spec."""
    vmi_spec = vmi.get("spec") or {}
    desired_ifaces = _by_name(((after.get("domain") or {}).get("devices") or {}).get("interfaces"))
    current_ifaces = _by_name(((vmi_spec.get("domain") or {}).get("devices") or {}).get("interfaces"))
    for name, iface in current_ifaces.items():
        if name not in desired_ifaces or _without_state(desired_ifaces[name]) != _without_state(iface):
            return True
    desired_nets, current_nets = _by_name(after.get("networks")), _by_name(vmi_spec.get("networks"))
    has_pod = any(n.get("pod") is not None for n in desired_nets.values())
    if has_pod and not any(n.get("pod") is not None for n in current_nets.values()):
        return True
    for name, net in current_nets.items():
        if name not in desired_nets or _without_nad_name(desired_nets[name]) != _without_nad_name(net):
            return True
    return False


def rollout_live_update(kubevirt_cr):
    """pkg/virt-config/virt-config.go IsVMRolloutStrategyLiveUpdate: unset (or the CR unreadable) is LiveUpdate."""
    configuration = (((kubevirt_cr or {}).get("spec") or {}).get("configuration")) or {}
    strategy = configuration.get("vmRolloutStrategy")
    return strategy is None or strategy == "LiveUpdate"


def predict_restart(before_vm, after_vm, vmi, live_update=True):
    """Why the VM would need a restart after `after_vm` replaces `before_vm` while `vmi` runs, or None.

    `before_vm` stands for the spec the instance started from (KubeVirt keeps it in a ControllerRevision);
    a VM already marked RestartRequired stays so. `live_update` is False under the Stage rollout strategy.
    """
    if vmi is None or before_vm is None:
        return None
    existing = restart_required_condition(before_vm)
    if existing:
        return existing.get("message") or "a restart is already pending"
    before = copy.deepcopy((((before_vm.get("spec") or {}).get("template")) or {}).get("spec") or {})
    after = (((after_vm.get("spec") or {}).get("template")) or {}).get("spec") or {}
    if _volumes_live_updatable(before, after):
        before["volumes"] = copy.deepcopy(after.get("volumes"))
    if _disks_live_updatable(before, after):
        before.setdefault("domain", {}).setdefault("devices", {})["disks"] = copy.deepcopy(
            ((after.get("domain") or {}).get("devices") or {}).get("disks"))
    # Live-updatable under LiveUpdate only (syncRestartRequired): sockets, guest memory, placement.
    before_domain = before.setdefault("domain", {})
    after_domain = after.get("domain") or {}
    if live_update:
        if before_domain.get("cpu") is not None and after_domain.get("cpu") is not None:
            before_domain["cpu"] = dict(before_domain["cpu"])
            _copy_key(after_domain["cpu"], before_domain["cpu"], "sockets")
        if (after_domain.get("memory") or {}).get("guest") is not None:
            before_domain["memory"] = dict(before_domain.get("memory") or {}, guest=after_domain["memory"]["guest"])
        for key in ("nodeSelector", "affinity", "tolerations"):
            _copy_key(after, before, key)
    if not network_restart_required(after, vmi):
        before_domain.setdefault("devices", {})
        _copy_key((after_domain.get("devices") or {}), before_domain["devices"], "interfaces")
        _copy_key(after, before, "networks")
    if _normalized(before) != _normalized(after):
        return "a non-live-updatable field was changed in the template spec"
    if not live_update:
        return None  # vm.go sync: the CPU and memory change handlers run under LiveUpdate only
    return _cpu_change(after, vmi) or _memory_change(after, vmi)


def _copy_key(source, target, key):
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


def _normalized(value):
    """Null fields dropped: an unset field and a null one are the same to KubeVirt's semantic equality."""
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            item = _normalized(item)
            if item is not None:
                result[key] = item
        return result
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


def _domain(spec):
    return ((spec or {}).get("domain")) or {}


def live_changes(before_vm, after_vm):
    """The sockets and guest memory this change raises or lowers live: {"sockets": n, "guest": text}."""
    before = _domain((((before_vm or {}).get("spec") or {}).get("template") or {}).get("spec"))
    after = _domain((((after_vm or {}).get("spec") or {}).get("template") or {}).get("spec"))
    changes = {}
    sockets = (after.get("cpu") or {}).get("sockets")
    if sockets is not None and sockets != (before.get("cpu") or {}).get("sockets"):
        changes["sockets"] = sockets
    guest = (after.get("memory") or {}).get("guest")
    if guest is not None and _bytes(guest) != _bytes((before.get("memory") or {}).get("guest")):
        changes["guest"] = guest
    return changes


def instance_pending(vmi, changes):
    """What of `changes` the running instance does not show yet (virt-handler's status after the hotplug)."""
    if vmi is None:
        return ["the instance"]
    status = vmi.get("status") or {}
    pending = []
    if "sockets" in changes:
        topology = status.get("currentCPUTopology") or {}
        busy = (condition(vmi, "HotVCPUChange") or {}).get("status") == "True"
        if busy or topology.get("sockets") != changes["sockets"]:
            pending.append("CPU sockets %s (current %s)" % (changes["sockets"], topology.get("sockets")))
    if "guest" in changes:
        current = (status.get("memory") or {}).get("guestCurrent")
        busy = (condition(vmi, "HotMemoryChange") or {}).get("status") == "True"
        if busy or _bytes(current) != _bytes(changes["guest"]):
            pending.append("guest memory %s (current %s)" % (changes["guest"], current))
    return pending
