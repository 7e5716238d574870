# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_snapshot without the network: the requests, the names, the retention plan and the results.

Idempotence rests on the name of each VirtualMachineSnapshot: `<vm>-<snapshot_id>` (shortened with a hash
when longer than a Kubernetes name may be). A task run again with the same `snapshot_id` finds its snapshot
and writes nothing. Every snapshot the collection makes carries the label
`app.kubernetes.io/managed-by=palette.vmo`, the VM's name in `palette.vmo/snapshot-vm` and the id in the
annotation `palette.vmo/snapshot-id`; retention only ever considers snapshots with the managed-by label whose
source is the VM, so a snapshot someone else made is never deleted.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
from datetime import datetime, timedelta

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_plan import (
    label_key_error, label_value_error)
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    MANAGED_BY, MANAGED_BY_LABEL, VmInputError, check_name)

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "refused, nothing was changed: "

GROUP = "snapshot.kubevirt.io"
KIND = "VirtualMachineSnapshot"
PLURAL = "virtualmachinesnapshots"
VM_LABEL = "palette.vmo/snapshot-vm"
ID_ANNOTATION = "palette.vmo/snapshot-id"
RESERVED_LABELS = (MANAGED_BY_LABEL, VM_LABEL)
# kubevirt.io/api snapshot/v1beta1 types.go DefaultFailureDeadline, as metav1.Duration prints it
DEFAULT_FAILURE_DEADLINE = "5m0s"
MAX_NAME = 253
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Go's time.ParseDuration units, and `d` for days in max_age
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h|d))+$")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

ITEM_OPTIONS = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
)
RETENTION_OPTIONS = dict(
    keep=dict(type="int"),
    max_age=dict(type="str"),
)


def duration_seconds(text, days=False):
    """Seconds of a Go duration string (`90s`, `1h30m`; with days=True also `7d`), or None when it is not one."""
    if not isinstance(text, str) or not _DURATION.match(text) or ("d" in text and not days):
        return None
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))


def snapshot_name(vm_name, snapshot_id):
    """`<vm>-<id>`; a name too long for Kubernetes keeps its start and gets a hash of the whole."""
    name = "%s-%s" % (vm_name, snapshot_id)
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:10]
    return "%s-%s" % (name[:MAX_NAME - 11].rstrip("-."), digest)


def vm_label_value(vm_name):
    """The VM's name as a label value (at most 63 characters: a longer one is shortened with a hash)."""
    if len(vm_name) <= 63:
        return vm_name
    return "%s-%s" % (vm_name[:52].rstrip("-."), hashlib.sha256(vm_name.encode()).hexdigest()[:10])


class SnapshotRequest(object):
    """One VM the task names, and everything decided about it."""

    def __init__(self, name, namespace, origin="name"):
        self.name, self.namespace, self.origin = name, namespace, origin
        self.vm = None
        self.snapshot_name = None
        self.existing = None  # the snapshot of this name, when there is one
        self.body = None  # the snapshot this run creates
        self.action = None  # created, unchanged, deleted, none
        self.expired = []  # our older snapshots of this VM that retention deletes
        self.deleted = []  # names actually deleted (retention or state=absent)
        self.retention_note = None
        self.written = False
        self.final = None  # the snapshot as last seen

    @property
    def label(self):
        return "%s/%s" % (self.namespace or "?", self.name or "?")

    @property
    def ident(self):
        return (self.namespace, self.name)


def parse_requests(params):
    """SnapshotRequests from `name` or `vms` (a `label_selector` is resolved once the VMs are listed);
    every bad option raises, all at once."""
    errors = []
    namespace = params.get("namespace")
    requests = []
    if params.get("vms"):
        items = [{"name": item} if isinstance(item, str) else item for item in params["vms"]]
        validated, item_errors = validate_items("vms", items, ITEM_OPTIONS)
        if item_errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(item_errors), item_errors)
        requests = [SnapshotRequest(i["name"], i.get("namespace") or namespace, "vms") for i in validated]
    elif params.get("name"):
        requests = [SnapshotRequest(params["name"], namespace, "name")]
    elif not params.get("label_selector"):
        errors.append("name: one of name, vms or label_selector is required")
    seen = set()
    for request in requests:
        try:
            if not request.namespace:
                raise VmInputError(request.label, "namespace", "is required (give it per item or for the task)")
            check_name(request.label, "namespace", request.namespace)
            check_name(request.label, "name", request.name, max_length=253)
            if request.ident in seen:
                raise VmInputError(request.label, "name", "is named more than once in this task")
            seen.add(request.ident)
        except VmInputError as err:
            errors.append(str(err))
    errors.extend(option_errors(params))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


def option_errors(params):
    """Task options that are malformed or contradict each other or the state."""
    errors = []
    state = params.get("state")
    snapshot_id = params.get("snapshot_id")
    if snapshot_id is None:
        if state == "absent" or params.get("retention") is None:
            errors.append("snapshot_id: is required with state=%s (it names the snapshot of each VM, "
                          "<vm>-<snapshot_id>)" % state)
    elif not snapshot_id or len(snapshot_id) > 63 or not _DNS_LABEL.match(snapshot_id):
        errors.append("snapshot_id: %r is not a valid id (lowercase letters, digits and '-', starting and ending "
                      "with a letter or digit, at most 63 characters; for example a date such as 20260105)"
                      % (snapshot_id,))
    retention = params.get("retention")
    if retention is not None:
        errors.extend(retention_errors(retention, state))
    deadline = params.get("failure_deadline")
    if deadline is not None and duration_seconds(deadline) is None:
        errors.append("failure_deadline: %r is not a duration (a Go duration such as 90s, 5m or 1h30m; 0s for none)"
                      % (deadline,))
    for key, value in sorted((params.get("labels") or {}).items(), key=lambda kv: str(kv[0])):
        if key in RESERVED_LABELS:
            errors.append("labels.%s: is reserved; palette.vmo sets it on every snapshot it makes" % key)
            continue
        problem = label_key_error(key) or label_value_error(value)
        if problem:
            errors.append("labels.%s: %s" % (key, problem))
    if state == "absent":
        for option in ("retention", "failure_deadline", "labels", "deletion_policy"):
            if params.get(option) is not None:
                errors.append("%s: only applies to state=present, not to state=absent" % option)
    selector = params.get("label_selector")
    if selector is not None and not selector.strip():
        errors.append("label_selector: must not be empty")
    return errors


def retention_errors(retention, state):
    if not isinstance(retention, dict):
        return ["retention: must be a dict with keep and/or max_age"]
    validated, errors = validate_items("retention", [retention], RETENTION_OPTIONS)
    errors = [e.replace("retention[0] (?): ", "retention: ") for e in errors]
    if errors:
        return errors
    keep, max_age = validated[0].get("keep"), validated[0].get("max_age")
    if keep is None and max_age is None:
        errors.append("retention: give keep, max_age or both")
    if keep is not None and keep < 1:
        errors.append("retention.keep: %r is out of range, give at least 1 (the snapshot of this run is kept)"
                      % keep)
    if max_age is not None and not duration_seconds(max_age, days=True):
        errors.append("retention.max_age: %r is not an age (a duration such as 36h, 7d or 1d12h, more than 0)"
                      % (max_age,))
    return errors


# -- the objects of the cluster --------------------------------------------------------------------

def status_of(obj):
    return (obj or {}).get("status") or {}


def phase_of(snapshot):
    return status_of(snapshot).get("phase") or ""


def is_ours(snapshot):
    return ((snapshot.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY


def source_name(snapshot):
    return (((snapshot.get("spec") or {}).get("source")) or {}).get("name")


def is_settled(snapshot):
    """Ready to use, or failed for good (KubeVirt's phase Failed, e.g. its failure deadline passed)."""
    return snapshot is None or bool(status_of(snapshot).get("readyToUse")) or phase_of(snapshot) == "Failed"


def snapshot_object(request, api_version, params):
    labels = dict(params.get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    labels[VM_LABEL] = vm_label_value(request.name)
    spec = {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": request.name}}
    if params.get("failure_deadline") is not None:
        spec["failureDeadline"] = params["failure_deadline"]
    if params.get("deletion_policy"):
        spec["deletionPolicy"] = params["deletion_policy"].capitalize()
    return {"apiVersion": api_version, "kind": KIND,
            "metadata": {"name": request.snapshot_name, "namespace": request.namespace, "labels": labels,
                         "annotations": {ID_ANNOTATION: params["snapshot_id"]}},
            "spec": spec}


def foreign_problem(request, existing):
    """Why an existing snapshot of the planned name is not this task's, or None."""
    if not is_ours(existing):
        return "VM %s: snapshot_id: %s %s/%s exists and was not made by palette.vmo (no label %s=%s); choose " \
               "another snapshot_id" % (request.label, KIND, request.namespace, request.snapshot_name,
                                        MANAGED_BY_LABEL, MANAGED_BY)
    if source_name(existing) != request.name:
        return "VM %s: snapshot_id: %s %s/%s exists for another VM (%s); choose another snapshot_id" % (
            request.label, KIND, request.namespace, request.snapshot_name, source_name(existing))
    return None


def _created(snapshot):
    return (snapshot.get("metadata") or {}).get("creationTimestamp") or ""


def parse_time(text):
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except (TypeError, ValueError):
        return None


def plan_retention(request, snapshots, retention, now):
    """Our older snapshots of the VM that retention deletes: beyond the newest `keep` (this run's snapshot
    counted first) or older than `max_age`. This run's snapshot is never among them."""
    if not retention:
        return []
    ours = [s for s in snapshots if is_ours(s) and source_name(s) == request.name
            and s["metadata"]["name"] != request.snapshot_name and not s["metadata"].get("deletionTimestamp")]
    ours.sort(key=lambda s: (_created(s), s["metadata"]["name"]), reverse=True)
    keep, max_age = retention.get("keep"), retention.get("max_age")
    expired = []
    kept = 1 if request.snapshot_name else 0
    oldest = now - timedelta(seconds=duration_seconds(max_age, days=True)) if max_age else None
    for snapshot in ours:
        created = parse_time(_created(snapshot))
        too_old = oldest is not None and created is not None and created < oldest
        if too_old or (keep is not None and kept >= keep):
            expired.append(snapshot)
        else:
            kept += 1
    return expired


def plan_request(request, snapshots, params, now):
    """Decides what one VM needs; returns the problems that refuse the batch. `snapshots` are the
    namespace's VirtualMachineSnapshots."""
    by_name = {s["metadata"]["name"]: s for s in snapshots}
    if params.get("snapshot_id"):
        request.snapshot_name = snapshot_name(request.name, params["snapshot_id"])
        request.existing = by_name.get(request.snapshot_name)
    if params["state"] == "absent":
        if request.existing is None:
            request.action = "none"
            return []
        problem = foreign_problem(request, request.existing)
        if problem:
            return [problem]
        request.action = "deleted"
        return []
    problems = []
    if request.snapshot_name is None:
        request.action = "none"  # retention only
    elif request.existing is not None:
        problem = foreign_problem(request, request.existing)
        if problem:
            return [problem]
        request.action = "unchanged"
        if request.existing["metadata"].get("deletionTimestamp"):
            problems.append("VM %s: snapshot_id: %s %s/%s is being deleted; wait for it to go or choose another "
                            "snapshot_id" % (request.label, KIND, request.namespace, request.snapshot_name))
    else:
        request.action = "created"
        request.body = snapshot_object(request, params["snapshot_api_version"], params)
    request.expired = plan_retention(request, snapshots, params.get("retention"), now)
    return problems


def changed(request):
    return request.action in ("created", "deleted") or bool(request.expired)


def plan_diff(request, snapshots):
    """Our snapshots of the VM before and after."""
    header = "VirtualMachine %s snapshots" % request.label
    before = sorted(s["metadata"]["name"] for s in snapshots if is_ours(s) and source_name(s) == request.name)
    gone = {s["metadata"]["name"] for s in request.expired}
    if request.action == "deleted":
        gone.add(request.snapshot_name)
    after = sorted(set(before) - gone | ({request.snapshot_name} if request.action == "created" else set()))
    return {"before_header": header, "after_header": header, "before": {"snapshots": before},
            "after": {"snapshots": after}}


# -- results -------------------------------------------------------------------------------------------

def snapshot_result(request):
    snapshot = request.final or request.existing or request.body
    status = status_of(snapshot)
    spec = (snapshot or {}).get("spec") or {}
    volumes = status.get("snapshotVolumes") or {}
    exists = request.action in ("created", "unchanged")
    return {
        "vm": request.name, "namespace": request.namespace, "action": request.action,
        "snapshot": request.snapshot_name,
        "phase": (status.get("phase") or None) if exists else None,
        "ready_to_use": bool(status.get("readyToUse")) if exists else None,
        "creation_time": status.get("creationTime") if exists else None,
        "indications": list(status.get("indications") or []) if exists else [],
        "source_indications": list(status.get("sourceIndications") or []) if exists else [],
        "failure_deadline": spec.get("failureDeadline") or DEFAULT_FAILURE_DEADLINE if exists else None,
        "content": status.get("virtualMachineSnapshotContentName") if exists else None,
        "included_volumes": list(volumes.get("includedVolumes") or []) if exists else [],
        "excluded_volumes": list(volumes.get("excludedVolumes") or []) if exists else [],
        "error": (status.get("error") or {}).get("message") if exists else None,
        "deleted": sorted(request.deleted or [s["metadata"]["name"] for s in request.expired]),
        "retention_note": request.retention_note,
    }


def snapshot_failures(requests):
    failures = []
    for request in requests:
        snapshot = request.final or request.existing
        if request.action in ("created", "unchanged") and phase_of(snapshot) == "Failed":
            status = status_of(snapshot)
            reasons = [c.get("reason") for c in status.get("conditions") or []
                       if c.get("type") == "Failure" and c.get("status") == "True"]
            if (status.get("error") or {}).get("message"):
                reasons.append(status["error"]["message"])
            why = "; ".join(r for r in reasons if r) or "phase Failed"
            failures.append("VM %s: snapshot %s failed: %s" % (request.label, request.snapshot_name, why))
    return failures


def describe_snapshot(snapshot):
    """The last state of a snapshot, for a timeout message."""
    if snapshot is None:
        return "gone"
    status = status_of(snapshot)
    text = "phase %s, readyToUse %s" % (status.get("phase") or "not set yet (not picked up by virt-controller)",
                                        bool(status.get("readyToUse")))
    conditions = ["%s=%s (%s)" % (c.get("type"), c.get("status"), c.get("reason"))
                  for c in status.get("conditions") or []]
    if conditions:
        text += ", conditions " + ", ".join(conditions)
    if (status.get("error") or {}).get("message"):
        text += ", error %s" % status["error"]["message"]
    if (snapshot.get("metadata") or {}).get("deletionTimestamp"):
        text += ", being deleted"
    return text
