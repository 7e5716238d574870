# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The bounded waits of a MAAS cluster: until it runs, healthy, with each pool's machines; until it is gone.

The first follows the Terraform provider (cluster_common_crud.go, waitForClusterCreation and
resourceClusterStateRefreshFunc): `status.state` through Pending / Provisioning to Running, then the overview's
`status.health.state` Healthy; and then, as the provider's machine pool reads do (GetNodeStatusMapMaas), each
pool's machines list until it holds exactly the pool's size, every machine Running and ready. The second waits
as the provider's waitForClusterDeletion: until the cluster reads as gone (HTTP 404, or state Deleted).
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
            "state": status.get("instanceState") or "Unknown", "ready": status.get("ready") is True,
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


def pool_ready(machines, size):
    held = listed(machines)
    return len(held) == size and all(m["state"] == "Running" and m["ready"] for m in held)


def describe_pool(name, machines, size):
    """What a pool still lacks, in words."""
    held = listed(machines)
    ready = [m for m in held if m["state"] == "Running" and m["ready"]]
    words = "pool %s: %d of %d machines running and ready" % (name, len(ready), size)
    pending = ["%s (%s%s)" % (m["hostname"] or m["name"], m["state"], "" if m["ready"] else ", not ready")
               for m in held if m not in ready]
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
    """One look at the cluster: state, health, conditions not True, and each pool's machines."""

    def __init__(self):
        self.found, self.state, self.health, self.conditions = False, None, None, []
        self.cloud_config_uid, self.machines = None, {}

    def running(self, sizes):
        return self.state == "Running" and self.health == "Healthy" and all(
            pool_ready(self.machines.get(name) or [], size) for name, size in sizes.items())

    def summary(self, sizes):
        """The state, the pools still short of their machines, then Palette's own conditions that are not True."""
        words = ["state %s" % (self.state or "unknown")]
        if self.state == "Running":
            words.append("health %s" % (self.health or "not reported"))
        words.extend(describe_pool(name, self.machines.get(name) or [], size)
                     for name, size in sorted(sizes.items()) if not pool_ready(self.machines.get(name) or [], size))
        return "; ".join(words + conditions_words(self.conditions))


def observe(client, uid, pools):
    """An Observation of the cluster and of the machines of `pools` (names)."""
    seen = Observation()
    try:
        cluster = client.get("/v1/spectroclusters/%s" % quote(uid)) or {}
    except PaletteError as err:
        if err.status == 404:
            return seen
        raise
    status, spec = cluster.get("status") or {}, cluster.get("spec") or {}
    seen.found, seen.state = True, status.get("state") or "Unknown"
    seen.conditions = [c for c in status.get("conditions") or [] if str(c.get("status")) != "True"]
    seen.cloud_config_uid = (spec.get("cloudConfigRef") or {}).get("uid")
    if seen.state == "Running":
        overview = client.get("/v1/dashboard/spectroclusters/%s/overview" % quote(uid)) or {}
        seen.health = ((overview.get("status") or {}).get("health") or {}).get("state")
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
    """The last Observation once the cluster is Running and Healthy and every pool of `sizes` ({pool: size}) holds
    exactly that many running, ready machines; ClusterWaitError naming what is missing when `timeout` runs out."""
    poller = Poller(timeout, clock, sleep)
    while True:
        seen = observe(client, uid, sorted(sizes))
        if not seen.found or seen.state in GONE_STATES:
            raise ClusterWaitError("cluster %s: %s while waiting for it to be Running"
                                   % (name, "is gone" if not seen.found else "is %s" % seen.state))
        if seen.running(sizes):
            return seen
        if not poller.another():
            raise ClusterWaitError("cluster %s: timed out after %ss waiting for it to be Running and Healthy with "
                                   "every pool's machines; last seen: %s" % (name, timeout, seen.summary(sizes)),
                                   observation=seen)


def wait_until_deleted(client, name, uid, pools, timeout, clock=time.monotonic, sleep=time.sleep):
    """Returns once the cluster reads as gone; ClusterWaitError naming the machines still held otherwise."""
    poller = Poller(timeout, clock, sleep)
    while True:
        seen = observe(client, uid, pools)
        if not seen.found or seen.state == "Deleted":
            return
        if not poller.another():
            held = ["pool %s: %s" % (pool, ", ".join("%s (%s)" % (m["hostname"] or m["name"], m["state"])
                                                     for m in listed(machines)))
                    for pool, machines in sorted(seen.machines.items()) if listed(machines)]
            words = ["state %s" % seen.state] + (["machines still held: " + "; ".join(held)] if held else [])
            raise ClusterWaitError("cluster %s: timed out after %ss waiting for Palette to delete it and release its "
                                   "machines; last seen: %s" % (name, timeout,
                                                                "; ".join(words + conditions_words(seen.conditions))))
