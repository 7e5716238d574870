# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plan, then apply, a batch of objects with server-side apply.

The plan is a server-side dry run of every object (the apiserver's own validation, defaults and field
ownership, exactly as a real apply would see them); comparing each dry-run result with the live object
says whether anything would change. Only then, and only for the objects that change, the real applies
run, concurrently and bounded. Check mode stops after the plan, so it predicts `changed` exactly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import json

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError

# Fields the server keeps for itself; they say nothing about what was declared.
SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


# The digest of what was last applied, so that an untouched object needs no dry run to prove it. It is stamped
# here, by the apply, and not by whoever builds an object: it is the apply's own bookkeeping for every kind it
# applies (VMs, operator manifests, CRs, RBAC bindings), it must digest the object exactly as it is sent (so
# after its builder is done with it), and only the apply reads it back (`untouched_since_our_apply`).
APPLIED_HASH_ANNOTATION = "palette.vmo/applied-hash"


def stamp_applied_hash(desired):
    """Adds the digest of `desired` (without the digest itself) to its annotations; returns it."""
    metadata = desired.setdefault("metadata", {})
    annotations = dict(metadata.get("annotations") or {})
    annotations.pop(APPLIED_HASH_ANNOTATION, None)
    metadata["annotations"] = annotations
    digest = hashlib.sha256(json.dumps(desired, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]
    annotations[APPLIED_HASH_ANNOTATION] = digest
    return digest


def untouched_since_our_apply(live, desired, field_manager):
    """True when applying `desired` again is certain to change nothing, without asking the server.

    It is, when the live object carries the digest of exactly this desired state, our manager's last
    apply is recorded, and no other manager has written the object (status aside) since then: every
    field we own still has the value we applied. In any other case the server's dry run decides.
    """
    if not live or (live.get("metadata") or {}).get("deletionTimestamp"):
        return False
    live_hash = ((live.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    wanted_hash = ((desired.get("metadata") or {}).get("annotations") or {}).get(APPLIED_HASH_ANNOTATION)
    if not live_hash or live_hash != wanted_hash:
        return False
    entries = [e for e in (live.get("metadata") or {}).get("managedFields") or [] if not e.get("subresource")]
    ours = [e for e in entries if e.get("manager") == field_manager and e.get("operation") == "Apply"]
    if len(ours) != 1 or not ours[0].get("time"):
        return False
    # Timestamps have one-second resolution, so an equal one counts as later.
    return all(e is ours[0] or (e.get("time") or "") < ours[0]["time"] for e in entries)


def comparable(obj):
    """The object without status and server bookkeeping, for before/after comparison and diffs.

    Shallow on purpose: a batch compares thousands of objects and never mutates the result.
    """
    if obj is None:
        return None
    trimmed = {key: value for key, value in obj.items() if key != "status"}
    metadata = {key: value for key, value in (obj.get("metadata") or {}).items() if key not in SERVER_METADATA}
    # Our digest is bookkeeping too: a new digest alone is no change worth a write.
    annotations = {k: v for k, v in (metadata.get("annotations") or {}).items() if k != APPLIED_HASH_ANNOTATION}
    metadata.pop("annotations", None)
    if annotations:
        metadata["annotations"] = annotations
    trimmed["metadata"] = metadata
    return trimmed


def describe_api_error(err):
    """One line: the apiserver's message plus each field it names."""
    fields = ["%s: %s" % (c.get("field"), c.get("message")) for c in err.causes if c.get("field")]
    if fields:
        return "; ".join(fields)
    return err.message or str(err)


def create_or_adopt(client, collection_path, body):
    """POSTs `body` into the collection; returns (object, created). A 409 means a parallel run of the same task
    made the object between our read and our create: that one is read back and followed instead."""
    try:
        return client.request("POST", collection_path, body=body), True
    except KubeApiError as err:
        if err.status != 409:
            raise
    return client.get(collection_path + "/" + body["metadata"]["name"]), False


class PlannedObject(object):
    """One object of a batch: what is live, what the dry run says it would become, and what to do."""

    def __init__(self, label, path, desired, before):
        self.label, self.path, self.desired, self.before = label, path, desired, before
        # Fields another manager set that must go before the apply (a JSON merge patch of nulls, e.g. a
        # deprecated field that may not stand beside its replacement): the dry run then merges the desired
        # object without them, since a server-side apply cannot remove a field it does not own.
        self.removed_first = None
        self.after = None
        self.error = None
        self.result = None
        self._action = None

    @property
    def action(self):
        """create, update, none or error; decided once, from the plan."""
        if self.error:
            return "error"
        if self._action is None:
            if self.before is None:
                self._action = "create"
            else:
                self._action = "update" if comparable(self.before) != comparable(self.after) else "none"
        return self._action


def plan_apply(client, planned, field_manager, force, concurrency):
    """Fills `after` (or `error`) of every PlannedObject: from a server-side dry-run apply, unless the
    live object is provably what this desired state already produced."""
    for item in planned:
        stamp_applied_hash(item.desired)
    asking = []
    for item in planned:
        if untouched_since_our_apply(item.before, item.desired, field_manager):
            item.after, item._action = item.before, "none"
        else:
            asking.append(item)

    def dry_run(item):
        if item.removed_first:
            return client.merge_patch(item.path, merged_removal(item.desired, item.removed_first), dry_run=True)
        return client.apply(item.path, item.desired, field_manager, force=force, dry_run=True)

    for item, outcome in zip(asking, run_concurrently(dry_run, asking, concurrency)):
        if isinstance(outcome, KubeApiError):
            item.error = describe_api_error(outcome) if outcome.status == 422 else outcome.message or str(outcome)
        elif isinstance(outcome, Exception):
            item.error = str(outcome)
        else:
            item.after = outcome
    return planned


def merged_removal(desired, removal):
    """The desired object as one JSON merge patch that also removes the `removal` fields (null leaves)."""
    patch = dict(desired)
    for key, value in removal.items():
        if isinstance(value, dict):
            patch[key] = merged_removal(desired.get(key) or {}, value)
        else:
            patch[key] = value
    return patch


def apply_planned(client, planned, field_manager, force, concurrency):
    """Applies the objects whose plan says create or update; returns the ones that failed."""
    todo = [item for item in planned if item.action in ("create", "update")]

    def apply(item):
        try:
            return client.apply(item.path, item.desired, field_manager, force=force)
        except KubeApiError as err:
            if err.status != 409:
                raise
            # Another writer (the same task in a parallel run) created the object between our plan and our
            # apply: applying again is an update of what it made, which converges on the same declared state.
            return client.apply(item.path, item.desired, field_manager, force=force)

    failed = []
    for item, outcome in zip(todo, run_concurrently(apply, todo, concurrency)):
        if isinstance(outcome, Exception):
            item.error = describe_api_error(outcome) if isinstance(outcome, KubeApiError) else str(outcome)
            failed.append(item)
        else:
            item.result = outcome
    return failed
