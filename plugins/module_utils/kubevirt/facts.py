# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What users want to know about a VM, from the VM and its instance: shared by the info module and
the inventory plugin (`vm_facts`); the day-2 state of a running VM (migration, live-migratability, pending
restart, volumes, guest agent) is the info module's own (`day2_facts`)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import effective_run_strategy


def interface_addresses(vmi, network=None):
    """(name, address) of every interface with an address; only `network`'s when it is named."""
    found = []
    for iface in ((vmi or {}).get("status") or {}).get("interfaces") or []:
        if network and iface.get("name") != network:
            continue
        if iface.get("ipAddress"):
            found.append((iface.get("name"), iface["ipAddress"]))
    return found


def guest_os(vmi):
    info = ((vmi or {}).get("status") or {}).get("guestOSInfo") or {}
    return {key: info[key] for key in ("id", "name", "prettyName", "version", "kernelRelease") if info.get(key)}


def vm_facts(vm, vmi):
    meta = vm.get("metadata") or {}
    status = vm.get("status") or {}
    vmi_status = (vmi or {}).get("status") or {}
    addresses = [address for _name, address in interface_addresses(vmi)]
    return {
        "name": meta.get("name"),
        "namespace": meta.get("namespace"),
        "labels": meta.get("labels") or {},
        "annotations": meta.get("annotations") or {},
        "run_strategy": effective_run_strategy(vm),
        "printable_status": status.get("printableStatus"),
        "ready": bool(status.get("ready")),
        "phase": vmi_status.get("phase"),
        "node": vmi_status.get("nodeName"),
        "ip_address": addresses[0] if addresses else None,
        "ip_addresses": addresses,
        "interfaces": vmi_status.get("interfaces") or [],
        "guest_os": guest_os(vmi),
        "conditions": status.get("conditions") or [],
        "vm": vm,
        "vmi": vmi,
    }


def _condition(obj, kind):
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def _node_of(state, field, side):
    """A node of a migration: the flat field (sourceNode, targetNode), else its sourceState/targetState's node
    (KubeVirt fills both; decentralized migrations only the latter)."""
    return state.get(field) or (state.get(side) or {}).get("node")


def migration_facts(vmi):
    """The summary of VMI status.migrationState (the last or current migration), or None without one."""
    state = ((vmi or {}).get("status") or {}).get("migrationState")
    if not state:
        return None
    return {
        "source_node": _node_of(state, "sourceNode", "sourceState"),
        "target_node": _node_of(state, "targetNode", "targetState"),
        "start": state.get("startTimestamp"),
        "end": state.get("endTimestamp"),
        "completed": bool(state.get("completed")),
        "failed": bool(state.get("failed")),
        "failure_reason": state.get("failureReason"),
        "abort_requested": bool(state.get("abortRequested")),
        "abort_status": state.get("abortStatus"),
        "mode": state.get("mode"),
        "migration_uid": state.get("migrationUid"),
    }


def condition_facts(cond):
    """status (True/False/Unknown), reason and message of a condition, or None without it."""
    if cond is None:
        return None
    return {"status": cond.get("status"), "reason": cond.get("reason") or None, "message": cond.get("message") or None}


def restart_required(vm):
    """Whether the VM carries KubeVirt's RestartRequired condition (a change it cannot apply live), and why."""
    cond = _condition(vm, "RestartRequired")
    required = bool(cond) and cond.get("status") == "True"
    return {"required": required, "message": (cond.get("message") or None) if required else None}


def volume_status(vmi):
    """VMI status.volumeStatus, one entry per volume: name, target, phase, reason, message, size, hotplug."""
    volumes = []
    for volume in ((vmi or {}).get("status") or {}).get("volumeStatus") or []:
        hotplug = volume.get("hotplugVolume")
        claim = volume.get("persistentVolumeClaimInfo") or {}
        volumes.append({
            "name": volume.get("name"), "target": volume.get("target") or None, "phase": volume.get("phase"),
            "reason": volume.get("reason"), "message": volume.get("message"), "size": volume.get("size"),
            "hotplug": hotplug is not None,
            "attach_pod": (hotplug or {}).get("attachPodName") or None,
            "claim_name": claim.get("claimName") or None,
            "access_modes": claim.get("accessModes") or [],
        })
    return volumes


def agent_connected(vmi):
    cond = _condition(vmi, "AgentConnected")
    return bool(cond) and cond.get("status") == "True"


def guest_agent(vmi):
    """The guest agent as virt-handler reports it: connected (the AgentConnected condition) and guestOSInfo."""
    cond = _condition(vmi, "AgentConnected")
    unsupported = _condition(vmi, "AgentVersionNotSupported")
    return {
        "connected": agent_connected(vmi),
        "since": ((cond or {}).get("lastTransitionTime") or (cond or {}).get("lastProbeTime"))
        if agent_connected(vmi) else None,
        "unsupported": condition_facts(unsupported) if unsupported and unsupported.get("status") == "True" else None,
        "guest_os_info": ((vmi or {}).get("status") or {}).get("guestOSInfo") or {},
    }


def day2_facts(vm, vmi):
    """The state of a running VM that day-2 operations act on; every key is present, null or empty without a VMI."""
    return {
        "migration": migration_facts(vmi),
        "live_migratable": condition_facts(_condition(vmi, "LiveMigratable")),
        "storage_live_migratable": condition_facts(_condition(vmi, "StorageLiveMigratable")),
        "restart_required": restart_required(vm),
        "volume_status": volume_status(vmi),
        "guest_agent": guest_agent(vmi),
        "eviction_strategy": ((vmi or {}).get("spec") or {}).get("evictionStrategy")
        or (((vm or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("evictionStrategy"),
    }
