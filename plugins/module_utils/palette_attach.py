# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Add-on profiles on Palette clusters: attach (or replace an older version), detach, and wait for the packs.

A new version of a profile replaces the attached version of the same name (`replaceWithProfile`), as
Palette's own SDK does on an update. The wait reads `status.packs[]` of each cluster: every pack of
the profile must reach condition Ready=True; a pack in condition Error fails at once with its message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.six.moves.urllib.parse import quote


class AttachError(Exception):
    """A pack went to Error, or the wait ran out; the message names the cluster and the pack."""


def attached_profiles(client, cluster_uid):
    """{uid: name} of the profiles attached to the cluster."""
    answer = client.get("/v1/spectroclusters/%s/profiles" % quote(cluster_uid)) or {}
    attached = {}
    for profile in answer.get("profiles") or []:
        meta = profile.get("metadata") or {}
        if meta.get("uid"):
            attached[meta["uid"]] = meta.get("name")
    return attached


def plan_attach(attached, profile_uid, profile_name, reapply=False):
    """('none'|'attach'|'replace'|'reapply', uid of the version it replaces) for one cluster."""
    if profile_uid in attached:
        return ("reapply" if reapply else "none"), None
    older = sorted(uid for uid, name in attached.items() if name == profile_name)
    if older:
        return "replace", older[0]
    return "attach", None


def attach(client, cluster_uid, profile_uid, replaces=None, reapply=False):
    entry = {"uid": profile_uid}
    if replaces:
        entry["replaceWithProfile"] = replaces
    # resolveNotification=true applies the (changed) profile now instead of leaving an update pending.
    client.patch("/v1/spectroclusters/%s/profiles" % quote(cluster_uid),
                 {"profiles": [entry], "spcApplySettings": {"actionType": "DownloadAndInstall"}},
                 query={"resolveNotification": "true" if (reapply or replaces) else "false"})


def detach(client, cluster_uid, profile_uids):
    client.delete("/v1/spectroclusters/%s/profiles" % quote(cluster_uid), {"profileUids": list(profile_uids)})


def pack_conditions(cluster, profile_uid):
    """{pack name: condition} of the profile's packs in a cluster document."""
    return {pack.get("name"): pack.get("condition") or {}
            for pack in (cluster.get("status") or {}).get("packs") or []
            if pack.get("profileUid") == profile_uid}


def describe(condition):
    if not condition:
        return "not reported yet"
    text = "%s=%s" % (condition.get("type"), condition.get("status"))
    return text + (": %s" % condition["message"] if condition.get("message") else "")


def wait_for_packs(client, clusters, profile_uid, pack_names, timeout, interval, clock=time.monotonic,
                   sleep=time.sleep):
    """Waits until every pack of the profile is Ready on every cluster ({uid: name}); returns their conditions."""
    deadline = clock() + timeout
    pending = dict(clusters)
    seen = {}
    while True:
        for uid, name in list(pending.items()):
            conditions = pack_conditions(client.get("/v1/spectroclusters/%s" % quote(uid)) or {}, profile_uid)
            seen[uid] = conditions
            for pack in pack_names:
                condition = conditions.get(pack) or {}
                if condition.get("type") == "Error":
                    message = condition.get("message") or "no message"
                    raise AttachError("cluster %s: pack %s failed: %s" % (name, pack, message))
            if all(_ready(conditions.get(pack)) for pack in pack_names):
                del pending[uid]
        if not pending:
            return seen
        if clock() + interval > deadline:
            waiting = ["cluster %s: pack %s (last: %s)" % (name, pack, describe(seen[uid].get(pack)))
                       for uid, name in pending.items() for pack in pack_names if not _ready(seen[uid].get(pack))]
            raise AttachError("timed out after %ss waiting for packs to be Ready: %s" % (timeout, "; ".join(waiting)))
        sleep(interval)


def _ready(condition):
    return bool(condition) and condition.get("type") == "Ready" and str(condition.get("status")) == "True"
