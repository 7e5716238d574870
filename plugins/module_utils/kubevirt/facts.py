# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What users want to know about a VM, from the VM and its instance: shared by the info module and
the inventory plugin."""

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
