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

import copy
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.palette.vmo.plugins.module_utils.kube_client import KubeApiError

# Fields the server keeps for itself; they say nothing about what was declared.
SERVER_METADATA = ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid", "selfLink")


def comparable(obj):
    """The object without status and server bookkeeping, for before/after comparison and diffs."""
    if obj is None:
        return None
    trimmed = copy.deepcopy(obj)
    trimmed.pop("status", None)
    metadata = trimmed.get("metadata") or {}
    for key in SERVER_METADATA:
        metadata.pop(key, None)
    return trimmed


def run_concurrently(func, items, concurrency):
    """Calls func(item) for every item with at most `concurrency` at once; returns results in order.

    An exception is returned in the item's place rather than raised, so one failure does not hide others.
    """
    def guarded(item):
        try:
            return func(item)
        except Exception as err:  # noqa: BLE001 - reported per item by the caller
            return err

    if len(items) <= 1 or concurrency <= 1:
        return [guarded(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(concurrency, len(items))) as pool:
        return list(pool.map(guarded, items))


def describe_api_error(err):
    """One line: the apiserver's message plus each field it names."""
    fields = ["%s: %s" % (c.get("field"), c.get("message")) for c in err.causes if c.get("field")]
    if fields:
        return "; ".join(fields)
    return err.message or str(err)


class PlannedObject(object):
    """One object of a batch: what is live, what the dry run says it would become, and what to do."""

    def __init__(self, label, path, desired, before):
        self.label, self.path, self.desired, self.before = label, path, desired, before
        self.after = None
        self.error = None
        self.result = None

    @property
    def action(self):
        if self.error:
            return "error"
        if self.before is None:
            return "create"
        return "update" if comparable(self.before) != comparable(self.after) else "none"


def plan_apply(client, planned, field_manager, force, concurrency):
    """Fills `after` (or `error`) of every PlannedObject from a server-side dry-run apply."""
    def dry_run(item):
        return client.apply(item.path, item.desired, field_manager, force=force, dry_run=True)

    for item, outcome in zip(planned, run_concurrently(dry_run, planned, concurrency)):
        if isinstance(outcome, KubeApiError):
            item.error = describe_api_error(outcome) if outcome.status == 422 else outcome.message or str(outcome)
        elif isinstance(outcome, Exception):
            item.error = str(outcome)
        else:
            item.after = outcome
    return planned


def apply_planned(client, planned, field_manager, force, concurrency):
    """Applies the objects whose plan says create or update; returns the ones that failed."""
    todo = [item for item in planned if item.action in ("create", "update")]

    def apply(item):
        return client.apply(item.path, item.desired, field_manager, force=force)

    failed = []
    for item, outcome in zip(todo, run_concurrently(apply, todo, concurrency)):
        if isinstance(outcome, Exception):
            item.error = describe_api_error(outcome) if isinstance(outcome, KubeApiError) else str(outcome)
            failed.append(item)
        else:
            item.result = outcome
    return failed
