# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Add-on profiles on Palette clusters: attach (or replace an older version), detach, and wait for the packs.

A new version of a profile replaces the attached version of the same name (`replaceWithProfile`), as
Palette's own SDK does on an update. The wait follows the Terraform provider's (wait_for_packs): the
cluster's conditions, then the profile in `status.packs[]`, then each of its packs Ready=True; a pack in
condition Error fails with its message.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure


class AttachError(ModuleFailure):
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


def listed_packs(cluster, profile_uid):
    """{pack name: its status.packs entry} of the profile's packs in a cluster document."""
    return {pack.get("name"): pack for pack in (cluster.get("status") or {}).get("packs") or []
            if pack.get("profileUid") == profile_uid}


def packs_before_reapply(client, cluster_uids, profile_uid):
    """{cluster uid: {pack: status entry}}: what each cluster lists for the profile before it is applied again."""
    return {uid: listed_packs(client.get("/v1/spectroclusters/%s" % quote(uid)) or {}, profile_uid)
            for uid in cluster_uids}


def unready_conditions(cluster):
    """The cluster's status.conditions whose status is not True."""
    return [c for c in (cluster.get("status") or {}).get("conditions") or [] if str(c.get("status")) != "True"]


def describe(condition):
    if not condition:
        return "not reported yet"
    text = "%s=%s" % (condition.get("type"), condition.get("status"))
    return text + (": %s" % condition["message"] if condition.get("message") else "")


def _fingerprint(entry):
    """What changes when Palette deploys a pack again: its condition and its start and end times."""
    if not entry:
        return None
    condition = entry.get("condition") or {}
    return tuple(condition.get(key) for key in ("type", "status", "reason", "message", "lastTransitionTime")) + (
        entry.get("startTime"), entry.get("endTime"))


def _ready(condition):
    return bool(condition) and condition.get("type") == "Ready" and str(condition.get("status")) == "True"


# Palette goes on listing a re-applied profile's packs as they were (Ready, or Error) until its agent picks the
# change up. The provider never tells these apart: it waits a fixed Delay of 30 s before its first look
# (cluster_common_attachment.go waitForAddonDeployment, resolveWaitDelay(30 * time.Second)) and trusts what it sees
# then. Here an entry listed before the re-apply counts only once it changed; after the same 30 s without a change
# (Palette may leave a pack whose content did not change alone) it is taken as it stands, as the provider does.
REAPPLY_GRACE = 30


class ClusterWait(object):
    """What one cluster showed at the last look, and which packs have changed since the attach."""

    def __init__(self, name, earlier):
        self.name = name
        self.earlier = dict((pack, _fingerprint(entry)) for pack, entry in (earlier or {}).items())
        self.changed = set()
        self.blocking, self.packs = [], {}

    def observe(self, cluster, profile_uid, trust_earlier):
        self.blocking = unready_conditions(cluster)
        self.packs = listed_packs(cluster, profile_uid)
        for pack, entry in self.packs.items():
            if trust_earlier or pack not in self.earlier or _fingerprint(entry) != self.earlier[pack]:
                self.changed.add(pack)
        self.changed.update(set(self.earlier) - set(self.packs))

    def condition(self, pack):
        """The pack's condition, or None while it is only the one listed before the re-apply."""
        if pack not in self.changed:
            return None
        return (self.packs.get(pack) or {}).get("condition") or {}

    def failed(self, pack_names):
        """(pack, message) of a pack in Error, once the cluster's own conditions are all True."""
        if self.blocking:
            return None
        for pack in pack_names:
            condition = self.condition(pack) or {}
            if condition.get("type") == "Error":
                return pack, condition.get("message") or "no message"
        return None

    def ready(self, pack_names):
        return not self.blocking and all(_ready(self.condition(pack)) for pack in pack_names)

    def conditions(self):
        return dict((pack, entry.get("condition") or {}) for pack, entry in self.packs.items())

    def waiting_for(self, pack_names):
        waiting = ["cluster %s: condition %s" % (self.name, describe(c)) for c in self.blocking]
        for pack in pack_names:
            if pack not in self.changed and pack in self.packs:
                waiting.append("cluster %s: pack %s (last: %s, as before the re-apply)"
                               % (self.name, pack, describe(self.packs[pack].get("condition"))))
            elif not _ready(self.condition(pack)):
                waiting.append("cluster %s: pack %s (last: %s)" % (self.name, pack, describe(self.condition(pack))))
        return waiting


def wait_for_packs(client, clusters, profile_uid, pack_names, timeout, interval, earlier=None, clock=time.monotonic,
                   sleep=time.sleep):
    """Waits as Palette's Terraform provider does, on every cluster ({uid: name}); returns {uid: {pack: condition}}.

    resourceAddonDeploymentStateRefreshFunc (cluster_common_attachment.go): first until every
    `status.conditions[].status` is True, then until the profile uid appears in `status.packs`, then until each of
    its packs is Ready (`condition.type` Ready, `status` True); a pack whose type is Error fails the wait with its
    message. `earlier` ({uid: {pack: status entry}}, from packs_before_reapply) marks what a re-apply of the same
    uid must see change first (REAPPLY_GRACE).
    """
    started = clock()
    deadline = started + timeout
    pending = dict((uid, ClusterWait(name, (earlier or {}).get(uid))) for uid, name in clusters.items())
    results = {}
    while True:
        trust_earlier = clock() - started >= REAPPLY_GRACE
        for uid, watch in list(pending.items()):
            watch.observe(client.get("/v1/spectroclusters/%s" % quote(uid)) or {}, profile_uid, trust_earlier)
            failure = watch.failed(pack_names)
            if failure:
                raise AttachError("cluster %s: pack %s failed: %s" % ((watch.name,) + failure))
            if watch.ready(pack_names):
                results[uid] = watch.conditions()
                del pending[uid]
        if not pending:
            return results
        if clock() + interval > deadline:
            waiting = [line for watch in pending.values() for line in watch.waiting_for(pack_names)]
            raise AttachError("timed out after %ss waiting for packs to be Ready: %s" % (timeout, "; ".join(waiting)))
        sleep(interval)
