# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounded waits of a MAAS cluster: until it runs, healthy, with each pool at its size; until it is gone.

The first follows the Terraform provider (cluster_common_crud.go, waitForClusterCreation and
resourceClusterStateRefreshFunc): `status.state` through Pending / Provisioning to Running, and the overview's
`status.health.state` Healthy; and, for the pools, the overview's `spec.cloudConfig.machinePools[]` (v1MachinePoolMeta:
`size`, and `healthy`, the number of healthy machines), until each pool has exactly its size, all healthy. Each pool's
machines list (.../machinePools/{name}/machines) only reports the machines, in the result and in a timeout's message;
it never decides the wait (a machine's `ready` is left unknown when Palette does not report it). The second waits as
the provider's waitForClusterDeletion: until the cluster reads as gone (HTTP 404, or state Deleted).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError

FIRST_INTERVAL, LONGEST_INTERVAL = 1.0, 5.0
GONE_STATES = ("Deleting", "Deleted")


class ClusterWaitError(ModuleFailure):
    """The wait ran out, or the cluster went away meanwhile; the message says what was still waited for.

    `observation` is the last look at the cluster (for the result's machines), or None.
    """

    def __init__(self, message, observation=None):
        super(ClusterWaitError, self).__init__(message)
        self.observation = observation


def machine_view(machine):
    """{name, hostname, state, ready, az} of one v1MaasMachine."""
    meta, spec, status = machine.get("metadata") or {}, machine.get("spec") or {}, machine.get("status") or {}
    return {"name": meta.get("name") or meta.get("uid"), "hostname": spec.get("hostname") or "",
            "state": status.get("instanceState") or "Unknown",
            "ready": status["ready"] if isinstance(status.get("ready"), bool) else None,
            "az": spec.get("az") or ""}


def pool_machines(client, cloud_config_uid, pool):
    """The machines of one pool; none when the pool (or the whole cloud config) is gone."""
    try:
        items = client.list_all("/v1/cloudconfigs/maas/%s/machinePools/%s/machines"
                                % (quote(cloud_config_uid), quote(pool)))
    except PaletteError as err:
        if err.status == 404:
            return []
        raise
    return [machine_view(m) for m in items]


def listed(machines):
    """The machines a pool still holds (a machine Palette lists as Deleted is not one of them)."""
    return [m for m in machines if m["state"] != "Deleted"]


def held_machines(machines, size):
    """How many MAAS machines a pool of `size` holds now: those Palette lists with a MAAS hostname (allocated) and
    not being deleted, at most its size."""
    return min(size, len([m for m in listed(machines) if m["hostname"] and m["state"] != "Deleting"]))


def pool_ready(meta, size):
    """Whether the overview's pool (v1MachinePoolMeta {size, healthy}) has exactly `size` machines, all healthy."""
    return meta is not None and meta.get("size") == size and meta.get("healthy") == size


def pending_machine(machine):
    """A machine still on its way: not Running, or reported not ready (a readiness Palette does not report is
    unknown, not pending)."""
    return machine["state"] != "Running" or machine["ready"] is False


def describe_pool(name, meta, machines, size):
    """What a pool still lacks, in words: the overview's counts, then its machines that are still on their way."""
    if meta is None:
        words = "pool %s: not in Palette's overview yet (size %d)" % (name, size)
    else:
        words = "pool %s: %s of %d machines healthy" % (name, meta.get("healthy") or 0, size)
        if meta.get("size") != size:
            words += " (Palette's pool size %s)" % meta.get("size")
    held = listed(machines)
    pending = ["%s (%s%s)" % (m["hostname"] or m["name"], m["state"], ", not ready" if m["ready"] is False else "")
               for m in held if pending_machine(m)]
    if pending:
        words += ", waiting for %s" % ", ".join(pending)
    if len(held) < size:
        words += ", %d not allocated yet" % (size - len(held))
    elif len(held) > size:
        words += ", %d more to release" % (len(held) - size)
    return words


def conditions_words(conditions):
    if not conditions:
        return []
    return ["Palette's conditions: %s" % "; ".join(describe_condition(c) for c in conditions)]


def describe_condition(condition):
    text = "%s=%s" % (condition.get("type"), condition.get("status"))
    if condition.get("reason"):
        text += " (%s)" % condition["reason"]
    return text + (": %s" % condition["message"] if condition.get("message") else "")


class Observation(object):
    """One look at the cluster: state, health, conditions not True, each pool's overview counts and machines."""

    def __init__(self):
        self.found, self.state, self.health, self.conditions = False, None, None, []
        self.cloud_config_uid, self.machines, self.pools = None, {}, {}

    def pool_ready(self, name, size):
        return self.pools is not None and pool_ready(self.pools.get(name), size)

    def running(self, sizes):
        return self.state == "Running" and self.health == "Healthy" and all(
            self.pool_ready(name, size) for name, size in sizes.items())

    def summary(self, sizes):
        """The state and health, the pools still short of healthy machines, then Palette's conditions not True."""
        words = ["state %s" % (self.state or "unknown"), "health %s" % (self.health or "not reported")]
        words.extend(describe_pool(name, (self.pools or {}).get(name), self.machines.get(name) or [], size)
                     for name, size in sorted(sizes.items()) if not self.pool_ready(name, size))
        return "; ".join(words + conditions_words(self.conditions))


def overview_pools(overview, names):
    """{pool name: {size, healthy}} of the overview's `spec.cloudConfig.machinePools[]` for the pools `names` (in the
    cloud config's order). v1MachinePoolMeta has no name field: an entry that carries a name is that pool's, the
    others are the remaining pools in order (Palette lists them in the cloud config's order). None when the overview
    lists another number of pools than `names` (a pool still being added or removed), so no pool is taken for
    another."""
    metas = [m for m in (((overview.get("spec") or {}).get("cloudConfig") or {}).get("machinePools")) or []
             if isinstance(m, dict)]
    if len(metas) != len(names):
        return None
    pools = {}
    for meta in metas:
        if meta.get("name") in names:
            pools[meta["name"]] = {"size": meta.get("size"), "healthy": meta.get("healthy")}
    rest = [n for n in names if n not in pools]
    for name, meta in zip(rest, [m for m in metas if m.get("name") not in names]):
        pools[name] = {"size": meta.get("size"), "healthy": meta.get("healthy")}
    return pools


def observe(client, uid, pools):
    """An Observation of the cluster, of its overview (health and pools) and of the machines of `pools` (names)."""
    seen = Observation()
    cluster = client.get_or_none("/v1/spectroclusters/%s" % quote(uid))
    if cluster is None:
        return seen
    status, spec = cluster.get("status") or {}, cluster.get("spec") or {}
    seen.found, seen.state = True, status.get("state") or "Unknown"
    seen.conditions = [c for c in status.get("conditions") or [] if str(c.get("status")) != "True"]
    seen.cloud_config_uid = (spec.get("cloudConfigRef") or {}).get("uid")
    # None: gone between the two reads; the next look says so.
    overview = client.get_or_none("/v1/dashboard/spectroclusters/%s/overview" % quote(uid)) or {}
    seen.health = ((overview.get("status") or {}).get("health") or {}).get("state")
    seen.pools = overview_pools(overview, list(pools))
    if seen.cloud_config_uid:
        for pool in pools:
            seen.machines[pool] = pool_machines(client, seen.cloud_config_uid, pool)
    return seen


class Poller(object):
    """A deadline and a growing interval (1 s, then half as long again each time, at most 5 s)."""

    def __init__(self, timeout, clock=time.monotonic, sleep=time.sleep):
        self.timeout, self.clock, self.sleep = timeout, clock, sleep
        self.deadline = clock() + timeout
        self.interval = FIRST_INTERVAL

    def another(self):
        """Sleeps before the next look; False once the deadline has passed."""
        left = self.deadline - self.clock()
        if left <= 0:
            return False
        self.sleep(min(self.interval, left))
        self.interval = min(LONGEST_INTERVAL, self.interval * 1.5)
        return True


def wait_until_running(client, name, uid, sizes, timeout, clock=time.monotonic, sleep=time.sleep):
    """The last Observation once the cluster is Running and Healthy and the overview has every pool of `sizes`
    ({pool: size}) at exactly that size, every machine healthy; ClusterWaitError naming what is missing (the pools,
    and their machines still on their way) when `timeout` runs out."""
    poller = Poller(timeout, clock, sleep)
    while True:
        seen = observe(client, uid, list(sizes))
        if not seen.found or seen.state in GONE_STATES:
            raise ClusterWaitError("cluster %s: %s while waiting for it to be Running"
                                   % (name, "is gone" if not seen.found else "is %s" % seen.state))
        if seen.running(sizes):
            return seen
        if not poller.another():
            raise ClusterWaitError("cluster %s: timed out after %ss waiting for it to be Running and Healthy with "
                                   "every pool's machines; last seen: %s" % (name, timeout, seen.summary(sizes)),
                                   observation=seen)


def watch_deletion(client, uid, pools, seconds, clock=time.monotonic, sleep=time.sleep):
    """None once the cluster reads as gone within `seconds`; otherwise the last Observation of it."""
    poller = Poller(seconds, clock, sleep)
    while True:
        seen = observe(client, uid, pools)
        if not seen.found or seen.state == "Deleted":
            return None
        if not poller.another():
            return seen


def deletion_timeout(name, timeout, seen, note=None):
    """The ClusterWaitError of a deletion that ran out of time, naming the machines Palette still lists."""
    held = ["pool %s: %s" % (pool, ", ".join("%s (%s)" % (m["hostname"] or m["name"], m["state"])
                                             for m in listed(machines)))
            for pool, machines in sorted(seen.machines.items()) if listed(machines)]
    words = ["state %s" % seen.state] + (["machines still held: " + "; ".join(held)] if held else [])
    return ClusterWaitError("cluster %s: timed out after %ss waiting for Palette to delete it; last seen: %s%s"
                            % (name, timeout, "; ".join(words + conditions_words(seen.conditions)),
                               " (%s)" % note if note else ""))


def wait_until_deleted(client, name, uid, pools, timeout, clock=time.monotonic, sleep=time.sleep):
    """Returns once the cluster reads as gone; ClusterWaitError naming the machines still held otherwise."""
    seen = watch_deletion(client, uid, pools, timeout, clock, sleep)
    if seen is not None:
        raise deletion_timeout(name, timeout, seen)
