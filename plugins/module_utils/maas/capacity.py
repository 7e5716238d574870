# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether MAAS has enough Ready machines for the pools of a cluster that Palette is about to deploy.

Palette does not check it: its MAAS provider (cluster-api-provider-maas pkg/maas/machine/machine.go DeployMachine)
allocates each machine when it reconciles it and retries MAAS's 409 "no matching machine" for ever, so a cluster
or a pool larger than MAAS can fill is accepted and stays Provisioning, holding the machines it got. This check
reads MAAS itself, with the constraints the provider allocates by (op=allocate pool, zone, tags, cpu_count, mem;
maasserver/forms AcquireNodeForm): a machine is Ready, in the resource pool, in one of the zones (any zone when
none is given), carries every tag, and has at least the CPU cores and MiB of memory asked for.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class PoolNeed(object):
    """How many more machines one pool needs, and what a machine must be to count."""

    def __init__(self, name, needed, resource_pool, zones=None, tags=None, min_cpu=None, min_memory_mb=None):
        self.name, self.needed, self.resource_pool = name, needed, resource_pool
        self.zones, self.tags = list(zones or []), list(tags or [])
        self.min_cpu, self.min_memory_mb = min_cpu or 0, min_memory_mb or 0

    def matches(self, machine):
        return (machine.get("status_name") == "Ready"
                and (not self.resource_pool or (machine.get("pool") or {}).get("name") == self.resource_pool)
                and (not self.zones or (machine.get("zone") or {}).get("name") in self.zones)
                and set(self.tags) <= set(machine.get("tag_names") or [])
                and (machine.get("cpu_count") or 0) >= self.min_cpu
                and (machine.get("memory") or 0) >= self.min_memory_mb)

    def describe(self):
        words = ["Ready", "in resource pool %s" % (self.resource_pool or "(any)")]
        if self.zones:
            words.append("in zone %s" % " or ".join(self.zones))
        if self.tags:
            words.append("tagged %s" % ", ".join(self.tags))
        if self.min_cpu:
            words.append("with at least %d CPU cores" % self.min_cpu)
        if self.min_memory_mb:
            words.append("with at least %d MiB of memory" % self.min_memory_mb)
        return " ".join(words)


def ready_machines(client):
    """Every Ready machine MAAS has (one list request; the constraints are applied by PoolNeed.matches)."""
    return client.get("/machines/", status="ready")


def shortfalls(needs, machines):
    """Problems, one per pool MAAS cannot fill. Pools take machines in order (the control plane first), so two
    pools that could use the same machines are not both counted as filled by them."""
    free = sorted(machines, key=lambda m: m.get("hostname") or "")
    problems = []
    for need in needs:
        if need.needed <= 0:
            continue
        fitting = [m for m in free if need.matches(m)]
        taken = fitting[:need.needed]
        free = [m for m in free if m not in taken]
        if len(fitting) < need.needed:
            problems.append("pool %s needs %d more machine%s %s; MAAS has %d%s" % (
                need.name, need.needed, "" if need.needed == 1 else "s", need.describe(), len(fitting),
                " (%s)" % ", ".join(m.get("hostname") or m.get("system_id") for m in fitting) if fitting else ""))
    return problems
