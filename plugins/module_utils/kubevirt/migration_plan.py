# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_migration without the network: the requests, the preflight, the plan and the results.

Idempotence rests on the name of each VirtualMachineInstanceMigration: it is derived from the VMI's uid
(one running incarnation of the VM) and the task's `migration_id`, and labelled with that key. A task run
again finds its Succeeded migration and does nothing; a new `migration_id`, or a VM restarted since
(a new VMI uid), migrates again. With a node selector the question is only where the VM runs: on a
matching node nothing is needed. A failed attempt is tried again under the next name (`-2`, `-3`, ...).

The preflight mirrors what KubeVirt itself would refuse, before anything is written: a VMI that is not
Running, a migration already in flight (virt-api's migration admitter, ensureNoMigrationConflict), a
LiveMigratable condition that is False (the admitter's isMigratable, quoting KubeVirt's reason and
message), and no other node that the target pod could be scheduled on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import re
from datetime import datetime

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    MANAGED_BY, MANAGED_BY_LABEL, VmInputError, check_name)

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "preflight refused the batch, nothing was changed: "

KIND = "VirtualMachineInstanceMigration"
PLURAL = "virtualmachineinstancemigrations"
FINAL_PHASES = ("Succeeded", "Failed")
KEY_LABEL = "palette.vmo/migration-key"
ID_ANNOTATION = "palette.vmo/migration-id"
# KubeVirt's own annotation (staging/src/kubevirt.io/api/core/v1/types.go
# MigrationUnschedulablePodTimeoutSecondsAnnotation): how long a target pod may stay unschedulable.
UNSCHEDULABLE_TIMEOUT_ANNOTATION = "kubevirt.io/migrationUnschedulablePodTimeoutSeconds"
SCHEDULABLE_LABEL = "kubevirt.io/schedulable"

ITEM_OPTIONS = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
    node_selector=dict(type="dict"),
)

# Kubernetes label syntax (k8s.io/apimachinery/pkg/util/validation IsQualifiedName, IsValidLabelValue).
_LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def label_key_error(key):
    """Why `key` is not a valid label key, or None."""
    if not isinstance(key, str) or not key:
        return "%r is not a label key" % (key,)
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)):
        return "%r has an invalid prefix (a DNS subdomain before '/')" % key
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        return "%r is not a valid label key (at most 63 letters, digits, '-', '_', '.', starting and ending " \
               "with a letter or digit, optionally prefixed by a DNS subdomain and '/')" % key
    return None


def label_value_error(value):
    if not isinstance(value, str):
        return "%r must be a string (quote it in YAML)" % (value,)
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        return "%r is not a valid label value (at most 63 letters, digits, '-', '_', '.', starting and ending " \
               "with a letter or digit)" % value
    return None


def selector_errors(label, option, selector):
    if selector is None:
        return []
    if not isinstance(selector, dict):
        return ["%s: %s: must be a dict of node labels" % (label, option)]
    errors = []
    for key, value in sorted(selector.items(), key=lambda kv: str(kv[0])):
        problem = label_key_error(key) or label_value_error(value)
        if problem:
            errors.append("%s: %s.%s: %s" % (label, option, key, problem))
    return errors


class MigrationRequest(object):
    """One VM the task names, and everything decided about it."""

    def __init__(self, name, namespace, node_selector=None, origin="name"):
        self.name, self.namespace = name, namespace
        self.node_selector = node_selector or {}
        self.origin = origin  # name, vms or label_selector: how the VM was named
        self.vm = None
        self.vmi = None
        self.source_node = None
        self.key = None
        self.existing = None  # our VMIM that is still running (adopted) or that Succeeded (unchanged)
        self.migration = None  # the VMIM this run creates
        self.cancelling = []  # VMIMs this run deletes (state=cancelled)
        self.awaiting = []  # VMIMs already being deleted by someone (state=cancelled)
        self.action = None  # created, adopted, unchanged, none, skipped, cancelled
        self.reason = None  # why nothing was needed or the VM was skipped
        self.written = False
        self.final = None  # the VMIM as last seen
        self.final_vmi = None

    @property
    def label(self):
        return "%s/%s" % (self.namespace or "?", self.name or "?")

    @property
    def ident(self):
        return (self.namespace, self.name)


def parse_requests(params):
    """MigrationRequests from `name`, `vms` or (later, once the VMs are listed) `label_selector`; bad input raises."""
    errors = []
    namespace, task_selector = params.get("namespace"), params.get("node_selector")
    requests = []
    if params.get("vms"):
        items = [{"name": item} if isinstance(item, str) else item for item in params["vms"]]
        validated, item_errors = validate_items("vms", items, ITEM_OPTIONS)
        if item_errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(item_errors), item_errors)
        for item in validated:
            selector = item.get("node_selector") if item.get("node_selector") is not None else task_selector
            requests.append(MigrationRequest(item["name"], item.get("namespace") or namespace, selector, "vms"))
    elif params.get("name"):
        requests.append(MigrationRequest(params["name"], namespace, task_selector, "name"))
    elif not params.get("label_selector"):
        errors.append("name: one of name, vms or label_selector is required")
    elif not namespace:
        errors.append("namespace: required with label_selector (VMs are selected within one namespace)")
    seen = set()
    for request in requests:
        try:
            if not request.namespace:
                raise VmInputError(request.label, "namespace", "is required (give it per item or for the task)")
            check_name(request.label, "namespace", request.namespace)
            check_name(request.label, "name", request.name)
            if request.ident in seen:
                raise VmInputError(request.label, "name", "is named more than once in this task")
            seen.add(request.ident)
        except VmInputError as err:
            errors.append(str(err))
        errors.extend(selector_errors("VM %s" % request.label, "node_selector", request.node_selector))
    if not requests and task_selector is not None:
        errors.extend(selector_errors("task", "node_selector", task_selector))
    errors.extend(option_errors(params))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


def option_errors(params):
    """Task options that contradict each other or the state."""
    errors = []
    migration_id = params.get("migration_id")
    if migration_id is not None:
        problem = label_value_error(migration_id)
        if problem or not migration_id:
            errors.append("migration_id: %s" % (problem or "must not be empty"))
    timeout = params.get("unschedulable_timeout")
    if timeout is not None and timeout < 1:
        errors.append("unschedulable_timeout: %r is out of range, give at least 1 second" % timeout)
    if params.get("state") == "cancelled":
        for option in ("node_selector", "migration_id", "unschedulable_timeout"):
            if params.get(option) is not None:
                errors.append("%s: only applies to state=migrated, not to state=cancelled" % option)
        for index, item in enumerate(params.get("vms") or []):
            if isinstance(item, dict) and item.get("node_selector") is not None:
                errors.append("vms[%d].node_selector: only applies to state=migrated, not to state=cancelled" % index)
    selector = params.get("label_selector")
    if selector is not None and not selector.strip():
        errors.append("label_selector: must not be empty")
    return errors


# -- the objects of the cluster --------------------------------------------------------------------

def phase_of(obj):
    return ((obj or {}).get("status") or {}).get("phase") or ""


def is_final(vmim):
    return phase_of(vmim) in FINAL_PHASES


def condition(obj, kind):
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def migration_key(vmi_uid, migration_id):
    """The key of one migration of one VMI incarnation, as a label value."""
    return hashlib.sha256(("%s/%s" % (vmi_uid, migration_id or "")).encode()).hexdigest()[:16]


def migration_name(vm_name, key, attempt):
    base = "%s-migration-%s" % (vm_name[:200], key[:10])
    return base if attempt <= 1 else "%s-%d" % (base, attempt)


def migration_object(request, api_version, name, key, params):
    metadata = {"name": name, "namespace": request.namespace,
                "labels": {MANAGED_BY_LABEL: MANAGED_BY, KEY_LABEL: key}}
    annotations = {}
    if params.get("migration_id"):
        annotations[ID_ANNOTATION] = params["migration_id"]
    if params.get("unschedulable_timeout"):
        annotations[UNSCHEDULABLE_TIMEOUT_ANNOTATION] = str(params["unschedulable_timeout"])
    if annotations:
        metadata["annotations"] = annotations
    spec = {"vmiName": request.name}
    if request.node_selector:
        spec["addedNodeSelector"] = dict(request.node_selector)
    return {"apiVersion": api_version, "kind": KIND, "metadata": metadata, "spec": spec}


def node_matches(node, selector):
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(key) == value for key, value in (selector or {}).items())


def target_selector(vmi, added):
    """The labels a target node must have: the VMI's own nodeSelector wins over the added one on a
    shared key, as KubeVirt merges them (VirtualMachineInstanceMigrationSpec.AddedNodeSelector)."""
    merged = dict(added or {})
    merged.update(((vmi or {}).get("spec") or {}).get("nodeSelector") or {})
    return merged


def node_refusal(node):
    """Why the target pod of a migration cannot land on `node`, or None."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    if (node.get("spec") or {}).get("unschedulable"):
        return "cordoned"
    if labels.get(SCHEDULABLE_LABEL) != "true":
        return "not schedulable for VMs (%s is not true)" % SCHEDULABLE_LABEL
    ready = condition(node, "Ready")
    if ready is not None and ready.get("status") != "True":
        return "not Ready"
    return None


def target_problem(request, nodes):
    """Why no other node could take the VM, or None; `nodes` None means they could not be read."""
    if nodes is None:
        return None
    selector = target_selector(request.vmi, request.node_selector)
    matching, refused = [], []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        if name == request.source_node or not node_matches(node, selector):
            continue
        why = node_refusal(node)
        if why:
            refused.append("%s is %s" % (name, why))
        else:
            matching.append(name)
    if matching:
        return None
    wanted = ("nodes with %s" % ", ".join("%s=%s" % kv for kv in sorted(selector.items()))) if selector \
        else "nodes"
    text = "no schedulable, uncordoned node other than its current node %s among the %s" % (
        request.source_node, wanted)
    if refused:
        text += " (%s)" % "; ".join(refused)
    option = "node_selector" if request.node_selector else "name"
    return "VM %s: %s: %s" % (request.label, option, text)


def not_running(request):
    """Why the VM has no instance that could move, or None."""
    vmi = request.vmi
    if vmi is None or (vmi.get("metadata") or {}).get("deletionTimestamp") or phase_of(vmi) != "Running":
        printable = ((request.vm or {}).get("status") or {}).get("printableStatus") or "unknown"
        return "VM %s: name: is not running (printableStatus %s, instance phase %s); only a running VM can be " \
               "live-migrated" % (request.label, printable, phase_of(vmi) or "none")
    return None


def not_migratable(request):
    """KubeVirt's reason not to migrate the running instance, or None."""
    migratable = condition(request.vmi, "LiveMigratable")
    if migratable is not None and migratable.get("status") == "False":
        # The admitter's own words: pkg/virt-api/webhooks/validating-webhook/admitters/
        # migration-create-admitter.go isMigratable.
        return "VM %s: name: is not live-migratable: LiveMigratable is False, reason %s: %s" % (
            request.label, migratable.get("reason") or "none", migratable.get("message") or "no message")
    return None


def in_flight(vmims):
    return [m for m in vmims if not is_final(m)]


def plan_request(request, vmims, nodes, params):
    """Decides what one running VM needs; returns the preflight problems (empty when it may go ahead).

    `vmims` are the VM's migrations, every phase.
    """
    refusal = not_running(request)
    if refusal:
        if request.origin == "label_selector":
            request.action, request.reason = "skipped", "not running"
            return []
        return [refusal]
    request.source_node = (request.vmi.get("status") or {}).get("nodeName")
    if request.node_selector and request.source_node and nodes is not None:
        current = [n for n in nodes if n["metadata"]["name"] == request.source_node]
        if current and node_matches(current[0], request.node_selector):
            request.action, request.reason = "none", "already on node %s, which matches node_selector" % (
                request.source_node)
            return []
    request.key = migration_key(request.vmi["metadata"]["uid"], params.get("migration_id"))
    ours = [m for m in vmims if ((m.get("metadata") or {}).get("labels") or {}).get(KEY_LABEL) == request.key]
    running = in_flight(ours)
    if running:
        request.action, request.existing = "adopted", running[0]
        return []
    succeeded = [m for m in ours if phase_of(m) == "Succeeded"]
    if succeeded and not request.node_selector:
        request.action, request.existing = "unchanged", succeeded[-1]
        return []
    if succeeded and nodes is None and request.source_node and \
            state_node(migration_state(succeeded[-1], request.vmi), "targetNode", "targetState") == request.source_node:
        # The nodes could not be read, so whether the current node matches is unknown; our own Succeeded
        # migration (with that node_selector as its addedNodeSelector) put the VM where it runs now.
        request.action, request.existing = "unchanged", succeeded[-1]
        request.reason = "already on node %s, where its migration %s put it (nodes could not be listed)" % (
            request.source_node, succeeded[-1]["metadata"]["name"])
        return []
    problems = []
    migratable = not_migratable(request)
    if migratable:
        problems.append(migratable)
    others = in_flight(vmims)
    if others:
        problems.append("VM %s: name: is already migrating (%s %s is %s); wait for it or cancel it first" % (
            request.label, KIND, others[0]["metadata"]["name"], phase_of(others[0]) or "new"))
    problem = target_problem(request, nodes)
    if problem:
        problems.append(problem)
    if problems:
        return problems
    names = {(m.get("metadata") or {}).get("name") for m in vmims}
    attempt = 1
    while migration_name(request.name, request.key, attempt) in names:
        attempt += 1
    request.action = "created"
    request.migration = migration_object(request, params["api_version"],
                                         migration_name(request.name, request.key, attempt), request.key, params)
    return []


def plan_cancel(request, vmims):
    """The VM's migrations still in flight: those to delete, and those someone is deleting already."""
    running = in_flight(vmims)
    request.cancelling = [m for m in running if not (m.get("metadata") or {}).get("deletionTimestamp")]
    request.awaiting = [m for m in running if (m.get("metadata") or {}).get("deletionTimestamp")]
    request.source_node = ((request.vmi or {}).get("status") or {}).get("nodeName")
    if request.cancelling:
        request.action = "cancelled"
    elif request.awaiting:
        request.action, request.reason = "adopted", "already being cancelled"
    else:
        request.action, request.reason = "none", "no migration in flight"


def changed(request):
    return request.action in ("created", "cancelled")


def plan_diff(request):
    header = "VirtualMachine %s" % request.label
    if request.action == "cancelled":
        names = [m["metadata"]["name"] for m in request.cancelling]
        return {"before_header": header, "after_header": header,
                "before": {"node": request.source_node,
                           "migrations": {m["metadata"]["name"]: phase_of(m) or "new" for m in request.cancelling}},
                "after": {"node": request.source_node, "migrations": {name: "cancelled" for name in names}}}
    target = "another node"
    if request.node_selector:
        target += " with " + ", ".join("%s=%s" % kv for kv in sorted(request.node_selector.items()))
    return {"before_header": header, "after_header": header, "before": {"node": request.source_node},
            "after": {"node": target, "migration": request.migration["metadata"]["name"]}}


# -- results -----------------------------------------------------------------------------------------

def parse_time(text):
    if not text:
        return None
    try:
        return datetime.strptime(text.replace("Z", "+0000").split(".")[0].replace("+0000", "") + "+0000",
                                 "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        return None


def _transition(vmim, phases):
    for entry in ((vmim or {}).get("status") or {}).get("phaseTransitionTimestamps") or []:
        if entry.get("phase") in phases:
            return entry.get("phaseTransitionTimestamp")
    return None


def migration_state(vmim, vmi):
    """The migration's state: the VMIM's copy once final, else the VMI's while it is the one migrating."""
    # virt-controller copies the VMI's state into the VMIM only once it has seen the migration final, so a
    # VMIM just seen Succeeded may have none yet, or a partial one: the VMI's fills in what it lacks.
    state = {}
    vmi_state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    uid = ((vmim or {}).get("metadata") or {}).get("uid")
    if uid and vmi_state.get("migrationUid") == uid:
        state.update(vmi_state)
    own = ((vmim or {}).get("status") or {}).get("migrationState") or {}
    state.update({key: value for key, value in own.items() if value not in (None, "")})
    return state


def state_node(state, field, side):
    """A node of a migration state: the flat field (sourceNode, targetNode), else its sourceState/targetState's
    node (KubeVirt fills both; decentralized migrations only the latter)."""
    return (state or {}).get(field) or ((state or {}).get(side) or {}).get("node")


def failure_reason(vmim, vmi, events=None):
    """KubeVirt's own words on why a migration failed: the migration state's failureReason, the VMIM's
    conditions, and the Warning events virt-controller recorded on it."""
    reasons = []
    state = migration_state(vmim, vmi)
    if state.get("failureReason"):
        reasons.append(state["failureReason"])
    if state.get("abortStatus"):
        reasons.append("abortStatus %s" % state["abortStatus"])
    for cond in ((vmim or {}).get("status") or {}).get("conditions") or []:
        text = cond.get("message") or cond.get("reason") or cond.get("type")
        if cond.get("status") == "True" and text:
            reasons.append("condition %s: %s" % (cond.get("type"), text) if text != cond.get("type")
                           else "condition %s" % text)
    for event in events or []:
        message = "%s: %s" % (event.get("reason"), event.get("message")) if event.get("reason") \
            else event.get("message")
        if message and message not in reasons:
            reasons.append(message)
    return "; ".join(reasons) or "KubeVirt recorded no reason"


def migration_result(request, vmim=None, vmi=None, events=None):
    vmim = vmim if vmim is not None else (request.final or request.existing or request.migration)
    vmi = vmi if vmi is not None else (request.final_vmi or request.vmi)
    state = migration_state(vmim, vmi)
    start = state.get("startTimestamp") or _transition(vmim, ("Pending", "Scheduling"))
    end = state.get("endTimestamp") or _transition(vmim, FINAL_PHASES)
    started, ended = parse_time(start), parse_time(end)
    phase = phase_of(vmim) or None
    result = {
        "vm": request.name, "namespace": request.namespace, "action": request.action,
        "migration": ((vmim or {}).get("metadata") or {}).get("name") if request.action not in ("none", "skipped")
        else None,
        "phase": phase if request.action not in ("none", "skipped") else None,
        "source_node": state_node(state, "sourceNode", "sourceState") or request.source_node,
        "target_node": state_node(state, "targetNode", "targetState"),
        "node": ((vmi or {}).get("status") or {}).get("nodeName"),
        "start_timestamp": start, "end_timestamp": end,
        "duration_seconds": (ended - started).total_seconds() if started and ended and phase in FINAL_PHASES
        else None,
        "abort_status": state.get("abortStatus"),
        "reason": request.reason,
        "failure_reason": failure_reason(vmim, vmi, events) if phase == "Failed" else None,
    }
    return result
