# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_restore without the network: the requests, the preflight against what was read, the
VirtualMachineRestore objects and the results.

Idempotence rests on the restore object's name: `<target>-<snapshot>` (with `-<restore_id>` when given,
shortened with a hash past 253 characters). A task run again finds that restore complete and writes
nothing; restoring the same VM from the same snapshot once more takes a new `restore_id`.

The preflight refuses, before anything is written, what KubeVirt's restore controller would only fail on
later (pkg/storage/snapshot/restore.go): a snapshot that does not exist, failed or is not ready to use, a
running target (unless `stop_vm`, which sets KubeVirt's targetReadinessPolicy StopTarget), an existing VM as
target that is not the snapshot's source (errorRestoreToExistingTarget), and another restore of the same
target that is not complete (the restore admitter, pkg/storage/admitters/vmrestore.go Admit, refuses that
too). A failed restore counts: KubeVirt never completes it, so its admitter refuses every later restore of
the VM until the failed one is deleted; the preflight names it and says so.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import VmInputError, check_name

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "preflight refused the batch, nothing was changed: "

SNAPSHOT_API = "snapshot.kubevirt.io/v1beta1"
PLURAL = "virtualmachinerestores"
KIND = "VirtualMachineRestore"
LAST_RESTORE = "restore.kubevirt.io/lastRestoreUID"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "palette.vmo"
VOLUME_RESTORE_POLICIES = ("RandomizeNames", "InPlace", "PrefixTargetName")

ITEM_OPTIONS = dict(
    vm=dict(type="str", required=True),
    snapshot=dict(type="str", required=True),
    namespace=dict(type="str"),
    target=dict(type="str"),
    restore_id=dict(type="str"),
    stop_vm=dict(type="bool"),
    volume_restore_policy=dict(type="str", choices=list(VOLUME_RESTORE_POLICIES)),
)


class RestoreRequest(object):
    """One restore the task asks for, and everything decided about it."""

    def __init__(self, item, defaults):
        self.vm = item["vm"]
        self.snapshot_name = item["snapshot"]
        self.namespace = item.get("namespace") or defaults.get("namespace")
        self.target = item.get("target") or self.vm
        self.restore_id = item.get("restore_id") or defaults.get("restore_id")
        self.stop_vm = item.get("stop_vm") if item.get("stop_vm") is not None else bool(defaults.get("stop_vm"))
        self.policy = item.get("volume_restore_policy") or defaults.get("volume_restore_policy")
        self.name = restore_name(self.target, self.snapshot_name, self.restore_id)
        self.existing = None  # our restore object, when a run made it already
        self.target_vm = None
        self.target_vmi = None
        self.snapshot = None
        self.content = None
        self.restore = None  # the object this run creates
        self.action = None  # created, adopted, unchanged
        self.written = False
        self.final = None

    @property
    def label(self):
        return "%s/%s" % (self.namespace or "?", self.target)

    @property
    def to_new_vm(self):
        return self.target != self.vm


def restore_name(target, snapshot, restore_id=None):
    """`<target>-<snapshot>[-<restore_id>]`, at most 253 characters (a hash keeps longer ones unique)."""
    name = "%s-%s" % (target, snapshot) + ("-%s" % restore_id if restore_id else "")
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:10]
    return name[:242] + "-" + digest


def label_item_error(error, items, option, key):
    """validate_items labels an item by its `name`; these items are named by `key` (the VM, the target)."""
    for index, item in enumerate(items):
        prefix = "%s[%d] (?)" % (option, index)
        if error.startswith(prefix) and isinstance(item, dict) and isinstance(item.get(key), str):
            return "%s[%d] (%s)" % (option, index, item[key]) + error[len(prefix):]
    return error


def parse_requests(params):
    errors = []
    if params.get("restores"):
        validated, errors = validate_items("restores", params["restores"], ITEM_OPTIONS)
        errors = [label_item_error(error, params["restores"], "restores", "vm") for error in errors]
        if errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
        items = validated
    elif params.get("vm") or params.get("snapshot"):
        items = [dict(vm=params.get("vm"), snapshot=params.get("snapshot"), target=params.get("target"))]
        for option in ("vm", "snapshot"):
            if not params.get(option):
                errors.append("%s: required unless restores is given" % option)
    else:
        errors.append("restores: give restores, or vm and snapshot")
        items = []
    requests = []
    for index, item in enumerate(items):
        if errors:
            break
        request = RestoreRequest(item, params)
        where = "restores[%d]" % index if params.get("restores") else None
        label = "%s (%s)" % (where, request.label) if where else request.label
        try:
            if not request.namespace:
                raise VmInputError(label, "namespace", "required (per item or for the task)")
            check_name(label, "namespace", request.namespace)
            check_name(label, "vm", request.vm)
            check_name(label, "target", request.target)
            check_name(label, "snapshot", request.snapshot_name, 253)
            if request.restore_id is not None:
                check_name(label, "restore_id", request.restore_id)
        except VmInputError as err:
            errors.append(str(err))
            continue
        requests.append(request)
    seen = {}
    for request in requests:
        key = (request.namespace, request.target)
        if key in seen:
            errors.append("VM %s: target: restored twice in this task (from snapshots %s and %s)"
                          % (request.label, seen[key], request.snapshot_name))
        seen[key] = request.snapshot_name
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


def is_complete(restore):
    return bool(((restore or {}).get("status") or {}).get("complete"))


def failure_condition(restore):
    for cond in ((restore or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failure" and cond.get("status") == "True":
            return cond
    return None


def is_final(restore):
    return restore is None or is_complete(restore) or failure_condition(restore) is not None


def preflight(request, restores):
    """Problems with one request, given what was read; sets request.action. `restores` are the namespace's."""
    problems = []
    request.existing = next((r for r in restores if r["metadata"]["name"] == request.name), None)
    if request.existing is not None:
        spec = request.existing.get("spec") or {}
        if spec.get("virtualMachineSnapshotName") != request.snapshot_name or \
                (spec.get("target") or {}).get("name") != request.target:
            problems.append("VM %s: restore_id: VirtualMachineRestore %s exists for another snapshot or target"
                            % (request.label, request.name))
        elif failure_condition(request.existing) is not None:
            problems.append(failed_restore_problem(request, request.existing))
        request.action = "unchanged" if is_complete(request.existing) else "adopted"
        return problems
    request.action = "created"
    snapshot = request.snapshot
    where = "VM %s: snapshot: VirtualMachineSnapshot %s" % (request.label, request.snapshot_name)
    if snapshot is None:
        problems.append("%s does not exist in namespace %s" % (where, request.namespace))
        return problems
    status = snapshot.get("status") or {}
    if status.get("phase") == "Failed":
        problems.append("%s failed and cannot be restored" % where)
    elif not status.get("readyToUse"):
        problems.append("%s is not ready to use (phase %s)" % (where, status.get("phase") or "unset"))
    elif not status.get("virtualMachineSnapshotContentName") or request.content is None:
        problems.append("%s has no VirtualMachineSnapshotContent" % where)
    source_uid = status.get("sourceUID")
    vm = request.target_vm
    if not request.to_new_vm and vm is None:
        problems.append("VM %s: vm: no such VirtualMachine in namespace %s (give target to restore into a new VM)"
                        % (request.label, request.namespace))
    if vm is not None:
        if source_uid and vm["metadata"].get("uid") != source_uid:
            problems.append("VM %s: target: VirtualMachine %s exists and is not the source of snapshot %s (KubeVirt "
                            "restores only into the snapshot's own VM or a new one)"
                            % (request.label, request.target, request.snapshot_name))
        elif request.target_vmi is not None and not request.stop_vm:
            problems.append("VM %s: stop_vm: the VM is running (its instance is %s); KubeVirt restores only a stopped "
                            "VM - stop it, or set stop_vm to let the restore stop it"
                            % (request.label, (request.target_vmi.get("status") or {}).get("phase") or "present"))
        busy = (vm.get("status") or {}).get("restoreInProgress")
        if busy:
            problems.append("VM %s: target: VirtualMachineRestore %s is in progress for it" % (request.label, busy))
    for other in restores:
        # the admitter: every restore of the same spec.target whose status.complete is not true
        if (other.get("spec") or {}).get("target") != restore_target(request) or is_complete(other):
            continue
        if failure_condition(other) is not None:
            problems.append(failed_restore_problem(request, other))
        else:
            problems.append("VM %s: target: VirtualMachineRestore %s of it is in progress"
                            % (request.label, other["metadata"]["name"]))
    return problems


def failed_restore_problem(request, restore):
    """A failed restore of the target: KubeVirt's restore admitter refuses any new restore of the VM while it exists."""
    return ("VM %s: target: VirtualMachineRestore %s of it failed (%s); KubeVirt refuses any new restore of the VM "
            "while a failed one exists - delete VirtualMachineRestore %s/%s, then run again"
            % (request.label, restore["metadata"]["name"], failure_condition(restore).get("reason"),
               request.namespace, restore["metadata"]["name"]))


def restore_target(request):
    return {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": request.target}


def build_restore(request):
    spec = {"target": restore_target(request), "virtualMachineSnapshotName": request.snapshot_name}
    if request.stop_vm:
        spec["targetReadinessPolicy"] = "StopTarget"
    if request.policy:
        spec["volumeRestorePolicy"] = request.policy
    metadata = {"name": request.name, "namespace": request.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}}
    if request.restore_id:
        metadata["annotations"] = {"palette.vmo/restore-id": request.restore_id}
    return {"apiVersion": SNAPSHOT_API, "kind": KIND, "metadata": metadata, "spec": spec}


def restored_spec(request):
    """The VM spec the restore brings back: the snapshot content's copy of the source VM."""
    source = (((request.content or {}).get("spec") or {}).get("source") or {}).get("virtualMachine") or {}
    return source.get("spec")


def plan_diff(request):
    before = {"vm": request.target, "spec": (request.target_vm or {}).get("spec")} if request.target_vm else {}
    return {"before_header": "%s (%s)" % (request.label, "current VM" if request.target_vm else "no VM"),
            "after_header": "%s (snapshot %s)" % (request.label, request.snapshot_name),
            "before": before, "after": {"vm": request.target, "spec": restored_spec(request),
                                        "restore": request.name}}


def describe_restore(restore):
    if restore is None:
        return "not seen (yet)"
    status = restore.get("status")
    if status is None:
        return "no status yet (not picked up by virt-controller)"
    text = "complete %s" % bool(status.get("complete"))
    conditions = ["%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["reason"] if c.get("reason") else "")
                  for c in status.get("conditions") or []]
    if conditions:
        text += ", conditions " + ", ".join(conditions)
    return text


def restore_result(request):
    final = request.final or request.existing or request.restore
    status = (final or {}).get("status") or {}
    failure = failure_condition(final)
    return {
        "vm": request.vm, "target": request.target, "namespace": request.namespace,
        "snapshot": request.snapshot_name, "restore": request.name, "action": request.action,
        "new_vm": request.to_new_vm, "complete": bool(status.get("complete")),
        "restore_time": status.get("restoreTime"),
        "volumes": [{"volume": r.get("volumeName"), "claim": r.get("persistentVolumeClaim"),
                     "data_volume": r.get("dataVolumeName"), "volume_snapshot": r.get("volumeSnapshotName")}
                    for r in status.get("restores") or []],
        "deleted_data_volumes": list(status.get("deletedDataVolumes") or []),
        "conditions": [{k: c.get(k) for k in ("type", "status", "reason")} for c in status.get("conditions") or []],
        "failure": failure.get("reason") if failure else None,
    }
