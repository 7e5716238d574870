# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A MAAS machine as users want to read it: shared by the info module and the inventory plugin."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def simple_status_filter(status):
    """MAAS's `simple_status` list filter takes the lowercase status names (`ready`, `rescue_mode`); machine JSON
    has no such field, so `status_name` (`Ready`, `Rescue mode`) is what users see and may write."""
    return status.strip().lower().replace(" ", "_") if status else None


def machine_facts(machine):
    interfaces = machine.get("interface_set") or []
    return {
        "system_id": machine.get("system_id"), "hostname": machine.get("hostname"), "fqdn": machine.get("fqdn"),
        "status_name": machine.get("status_name"), "power_state": machine.get("power_state"),
        "power_type": machine.get("power_type"), "tags": sorted(machine.get("tag_names") or []),
        "pool": (machine.get("pool") or {}).get("name"), "zone": (machine.get("zone") or {}).get("name"),
        "ip_addresses": machine.get("ip_addresses") or [],
        "mac_addresses": [i.get("mac_address") for i in interfaces if i.get("mac_address")],
        "architecture": machine.get("architecture"), "cpu_count": machine.get("cpu_count"),
        "memory": machine.get("memory"), "osystem": machine.get("osystem"),
        "distro_series": machine.get("distro_series"),
    }
