# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_migration, end to end: read, preflight every VM, dry run, create, then one shared wait.

Nothing is written until every VM passed the preflight (migration_plan.py) and every migration object
passed the apiserver's dry run; check mode stops there, after reads and dry runs only. The migrations are
created concurrently (bounded) and one watch per namespace follows them all until each is Succeeded or
Failed. State `cancelled` deletes the migrations in flight (KubeVirt aborts a migration whose object is
deleted) and waits until each is gone and its VMI no longer reports the abort under way.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import create_or_adopt, describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_plan as plan
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_plan import (
    INVALID_INPUT, KIND, PLURAL, REFUSED, MigrationRequest)


# -- reading -------------------------------------------------------------------------------------------

def _read_namespace(client, api_version, namespace, label_selector):
    query = {"labelSelector": label_selector} if label_selector else None
    vms = client.list_all(object_path(api_version, "virtualmachines", namespace=namespace), query)[0]
    vmis = client.list_all(object_path(api_version, "virtualmachineinstances", namespace=namespace))[0]
    vmims = client.list_all(object_path(api_version, PLURAL, namespace=namespace))[0]
    return vms, vmis, vmims


class Cluster(object):
    """What the task's namespaces hold: VMs, VMIs and migrations by VM, and the nodes (None if unreadable)."""

    def __init__(self):
        self.vms, self.vmis, self.vmims, self.nodes = {}, {}, {}, None


def read_cluster(client, api_version, namespaces, label_selector, concurrency, with_nodes):
    cluster = Cluster()
    namespaces = sorted(namespaces)
    outcomes = run_concurrently(lambda ns: _read_namespace(client, api_version, ns, label_selector),
                                namespaces, concurrency)
    for namespace, outcome in zip(namespaces, outcomes):
        if isinstance(outcome, KubeApiError) and outcome.status == 400 and label_selector:
            raise ModuleFailure(INVALID_INPUT + "label_selector: %r: %s" % (label_selector, outcome.message),
                                ["label_selector: %s" % outcome.message])
        if isinstance(outcome, Exception):
            raise outcome
        vms, vmis, vmims = outcome
        cluster.vms.update({(namespace, vm["metadata"]["name"]): vm for vm in vms})
        cluster.vmis.update({(namespace, vmi["metadata"]["name"]): vmi for vmi in vmis})
        for vmim in vmims:
            key = (namespace, (vmim.get("spec") or {}).get("vmiName"))
            cluster.vmims.setdefault(key, []).append(vmim)
    for migrations in cluster.vmims.values():
        migrations.sort(key=lambda m: ((m.get("metadata") or {}).get("creationTimestamp") or "",
                                       m["metadata"]["name"]))
    if with_nodes:
        try:
            cluster.nodes = client.list_all(object_path("v1", "nodes"))[0]
        except KubeApiError as err:
            if err.status != 403:
                raise
            # May not read nodes: the scheduler will say whether a node can take the VM.
    return cluster


def resolve_requests(requests, cluster, params):
    """The VMs of a label selector become requests; every named VM must exist."""
    if params.get("label_selector"):
        namespace = params["namespace"]
        requests = [MigrationRequest(name, ns, params.get("node_selector"), "label_selector")
                    for (ns, name) in sorted(cluster.vms) if ns == namespace]
    errors = []
    for request in requests:
        request.vm = cluster.vms.get(request.ident)
        request.vmi = cluster.vmis.get(request.ident)
        if request.vm is None:
            errors.append("VM %s: name: no such VirtualMachine in namespace %s" % (request.label, request.namespace))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


# -- preflight and dry run ----------------------------------------------------------------------------

def preflight(requests, cluster, params):
    problems = []
    for request in requests:
        if params["state"] == "cancelled":
            plan.plan_cancel(request, cluster.vmims.get(request.ident, []))
        else:
            problems.extend(plan.plan_request(request, cluster.vmims.get(request.ident, []), cluster.nodes, params))
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)


def _collection(request, api_version):
    return object_path(api_version, PLURAL, namespace=request.namespace)


def dry_run_creates(client, requests, api_version, concurrency):
    """The apiserver's verdict on every migration object (schema, admission, RBAC) before the first write."""
    creating = [r for r in requests if r.action == "created"]
    outcomes = run_concurrently(
        lambda r: client.request("POST", _collection(r, api_version), {"dryRun": "All"}, r.migration),
        creating, concurrency)
    errors = ["VM %s: %s %s: %s" % (r.label, KIND, r.migration["metadata"]["name"],
                                    describe_api_error(o) if isinstance(o, KubeApiError) else o)
              for r, o in zip(creating, outcomes) if isinstance(o, Exception)]
    if errors:
        raise ModuleFailure("the apiserver refused the migrations in a dry run, nothing was changed: "
                            + joined_errors(errors), errors)


# -- writing -------------------------------------------------------------------------------------------

def _create(client, request, api_version):
    created, request.written = create_or_adopt(client, _collection(request, api_version), request.migration)
    if not request.written:
        request.action = "adopted"  # the same task in a parallel run made it: follow that one
    return created


def create_migrations(client, requests, api_version, concurrency):
    creating = [r for r in requests if r.action == "created"]
    outcomes = run_concurrently(lambda r: _create(client, r, api_version), creating, concurrency)
    errors = []
    for request, outcome in zip(creating, outcomes):
        if isinstance(outcome, Exception):
            errors.append("VM %s: creating %s %s: %s" % (
                request.label, KIND, request.migration["metadata"]["name"],
                describe_api_error(outcome) if isinstance(outcome, KubeApiError) else outcome))
        else:
            request.final = outcome
    return errors


def cancel_migrations(client, requests, api_version, concurrency):
    pairs = [(r, m) for r in requests for m in r.cancelling]

    def delete(pair):
        request, vmim = pair
        client.delete(object_path(api_version, PLURAL, vmim["metadata"]["name"], request.namespace))
        request.written = True

    outcomes = run_concurrently(delete, pairs, concurrency)
    return ["VM %s: deleting %s %s: %s" % (r.label, KIND, m["metadata"]["name"],
                                           describe_api_error(o) if isinstance(o, KubeApiError) else o)
            for (r, m), o in zip(pairs, outcomes) if isinstance(o, Exception)]


# -- waiting -------------------------------------------------------------------------------------------

def describe_migration(vmim):
    if vmim is None:
        return "not seen (yet)"
    status = vmim.get("status") or {}
    text = "phase %s" % (status.get("phase") or "not set yet (not picked up by virt-controller)")
    if (vmim.get("metadata") or {}).get("deletionTimestamp"):
        text += ", being deleted"
    conditions = ["%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["message"] if c.get("message") else "")
                  for c in status.get("conditions") or []]
    if conditions:
        text += ", conditions " + ", ".join(conditions)
    state = status.get("migrationState") or {}
    if state.get("targetNode"):
        text += ", target node %s" % state["targetNode"]
    return text


def describe_vmi_migration(vmi):
    if vmi is None:
        return "no instance"
    state = (vmi.get("status") or {}).get("migrationState") or {}
    return "node %s, migrationState %s" % ((vmi.get("status") or {}).get("nodeName"), {
        k: state.get(k) for k in ("migrationUid", "abortRequested", "abortStatus", "completed", "failed")
        if state.get(k) is not None} or "none")


def _target(request, name, predicate, expectation):
    return WaitTarget(request.namespace, name, predicate, expectation, describe_migration)


def wait_migrations(client, requests, api_version, timeout):
    """One watch per namespace until every created or adopted migration is Succeeded or Failed, or gone.

    A migration deleted before it was seen final (by anyone) ends there: its outcome is the one the VMI's
    migrationState records for its uid, once that state is final."""
    deadline = time.monotonic() + timeout
    waited = [r for r in requests if r.action in ("created", "adopted") and (r.final or r.existing)]
    targets = [_target(r, (r.final or r.existing)["metadata"]["name"],
                       lambda m: m is None or plan.is_final(m), "Succeeded or Failed") for r in waited]
    seen = wait_for(client, api_version, PLURAL, targets, timeout)
    vanished = []
    for request in waited:
        last = request.final or request.existing
        request.final = seen.get((request.namespace, last["metadata"]["name"]))
        if request.final is None:
            vanished.append((request, last))
    if not vanished:
        return
    vmi_targets = [WaitTarget(r.namespace, r.name, _migration_over(_uid(last)), "the end of migration %s in its "
                              "migrationState" % last["metadata"]["name"], describe_vmi_migration)
                   for r, last in vanished]
    vmis = wait_for(client, api_version, "virtualmachineinstances", vmi_targets, max(0.0, deadline - time.monotonic()))
    for request, last in vanished:
        request.final_vmi = vmis.get(request.ident)
        request.final = _vanished_outcome(request, last, request.final_vmi)


def _migration_over(uid):
    # pkg/virt-controller/watch/migration/migration.go: updateStatus removes a VMIM's finalizer once it is final,
    # and garbageCollectFinalizedMigrations deletes the final ones beyond five per VMI, so a migration can be
    # gone before a watch saw its last phase. The VMI's migrationState for its uid keeps the outcome; one that
    # never reached the VMI leaves no state of its own there.
    def predicate(vmi):
        state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
        return vmi is None or state.get("migrationUid") != uid or bool(state.get("completed") or state.get("failed"))
    return predicate


def _vanished_outcome(request, last, vmi):
    """The last seen VMIM with the phase its VMI's migrationState gives it: Succeeded when completed, else Failed."""
    state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
    ours = state.get("migrationUid") == _uid(last)
    succeeded = ours and state.get("completed") and not state.get("failed")
    request.reason = request.reason or "migration %s was deleted before it was seen final; %s" % (
        last["metadata"]["name"], "its outcome is the VMI's migrationState" if ours
        else "the VMI records no migration state for it")
    status = dict(last.get("status") or {}, phase="Succeeded" if succeeded else "Failed")
    if ours:
        status["migrationState"] = state
    return dict(last, status=status)


def _not_aborting(uids):
    def predicate(vmi):
        state = ((vmi or {}).get("status") or {}).get("migrationState") or {}
        if vmi is None or state.get("migrationUid") not in uids:
            return True
        return state.get("abortStatus") in ("Succeeded", "Failed") or bool(state.get("completed")) \
            or bool(state.get("failed"))
    return predicate


def wait_cancelled(client, requests, api_version, timeout):
    """Until every cancelled migration is gone or final, then until no VMI reports its abort under way."""
    deadline = time.monotonic() + timeout
    pairs = [(r, m) for r in requests for m in r.cancelling + r.awaiting]
    # A deleted migration is gone once virt-controller has finished it and removed its finalizer.
    targets = [_target(r, m["metadata"]["name"], lambda obj: obj is None, "its deletion") for r, m in pairs]
    seen = wait_for(client, api_version, PLURAL, targets, timeout)
    for request in requests:
        request.final = None
        for vmim in request.cancelling + request.awaiting:
            request.final = seen.get((request.namespace, vmim["metadata"]["name"])) or request.final
    waiting = [r for r in requests if r.cancelling or r.awaiting]
    vmi_targets = [WaitTarget(r.namespace, r.name,
                              _not_aborting({m["metadata"].get("uid") for m in r.cancelling + r.awaiting}),
                              "the abort to be reported", describe_vmi_migration) for r in waiting]
    vmis = wait_for(client, api_version, "virtualmachineinstances", vmi_targets,
                    max(0.0, deadline - time.monotonic()))
    for request in waiting:
        request.final_vmi = vmis.get(request.ident)


def read_events(client, namespaces, concurrency):
    """Warning events virt-controller recorded on migrations, by the migration's uid."""
    namespaces = sorted(namespaces)
    query = {"fieldSelector": "involvedObject.kind=%s,type=Warning" % KIND}
    outcomes = run_concurrently(lambda ns: client.list_all(object_path("v1", "events", namespace=ns), query)[0],
                                namespaces, concurrency)
    events = {}
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            continue  # events only add detail to a failure that is reported anyway
        for event in sorted(outcome, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
            events.setdefault((event.get("involvedObject") or {}).get("uid"), []).append(event)
    return events


def refresh_vmis(client, requests, api_version, concurrency):
    namespaces = sorted({r.namespace for r in requests})
    outcomes = run_concurrently(
        lambda ns: client.list_all(object_path(api_version, "virtualmachineinstances", namespace=ns))[0],
        namespaces, concurrency)
    vmis = {}
    for namespace, outcome in zip(namespaces, outcomes):
        if isinstance(outcome, Exception):
            raise outcome
        vmis.update({(namespace, vmi["metadata"]["name"]): vmi for vmi in outcome})
    for request in requests:
        if request.ident in vmis:
            request.final_vmi = vmis[request.ident]


# -- results -------------------------------------------------------------------------------------------

def cancel_result(request):
    result = plan.migration_result(request, request.final or (request.cancelling + request.awaiting or [None])[0],
                                   request.final_vmi or request.vmi)
    names = [m["metadata"]["name"] for m in request.cancelling + request.awaiting]
    result["migration"] = names[0] if names else None
    result["migrations"] = names
    if names and request.final is None:
        result["phase"] = "deleted"
    result["source_node"] = request.source_node
    state = ((request.final_vmi or {}).get("status") or {}).get("migrationState") or {}
    if state.get("migrationUid") in {m["metadata"].get("uid") for m in request.cancelling + request.awaiting}:
        result["abort_status"] = state.get("abortStatus")
    return result


def cancel_failures(requests, results):
    errors = []
    for request, result in zip(requests, results):
        if not (request.cancelling or request.awaiting):
            continue
        state = ((request.final_vmi or {}).get("status") or {}).get("migrationState") or {}
        uids = {m["metadata"].get("uid") for m in request.cancelling + request.awaiting}
        if state.get("migrationUid") in uids and state.get("completed") and not state.get("failed"):
            errors.append("VM %s: migration %s completed before it could be cancelled; the VM now runs on %s" % (
                request.label, result["migration"], result["node"]))
        elif state.get("migrationUid") in uids and state.get("abortStatus") == "Failed":
            errors.append("VM %s: KubeVirt could not abort migration %s (abortStatus Failed)%s" % (
                request.label, result["migration"],
                ": " + state["failureReason"] if state.get("failureReason") else ""))
    return errors


def migration_failures(requests, results):
    return ["VM %s: migration %s failed: %s" % (r.label, res["migration"], res["failure_reason"])
            for r, res in zip(requests, results) if res["phase"] == "Failed"]


def _uid(obj):
    return ((obj or {}).get("metadata") or {}).get("uid")


def _fail(message, errors, requests, results):
    written = any(r.written for r in requests)
    raise ModuleFailure(message + joined_errors(errors), errors, changed=written, migrations=results)


def run(module):
    params = dict(module.params)
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure(INVALID_INPUT + joined_errors(bounds), bounds)
    requests = plan.parse_requests(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    api_version = preferred_version(client, "kubevirt.io", params.get("api_version"))
    params["api_version"] = api_version
    namespaces = {r.namespace for r in requests} or {params["namespace"]}
    cancelling = params["state"] == "cancelled"
    cluster = read_cluster(client, api_version, namespaces, params.get("label_selector"), params["concurrency"],
                           with_nodes=not cancelling)
    requests = resolve_requests(requests, cluster, params)
    preflight(requests, cluster, params)
    if not cancelling:
        dry_run_creates(client, requests, api_version, params["concurrency"])
    result = {"changed": any(plan.changed(r) for r in requests), "api_version": api_version}
    if module._diff:
        result["diff"] = [plan.plan_diff(r) for r in requests if plan.changed(r)]
    if module.check_mode:
        module.exit_json(migrations=[cancel_result(r) if cancelling else plan.migration_result(r) for r in requests],
                         **result)
    write = cancel_migrations if cancelling else create_migrations
    errors = write(client, requests, api_version, params["concurrency"])
    result["changed"] = any(r.written for r in requests)
    describe = cancel_result if cancelling else plan.migration_result
    if errors:
        _fail("the apiserver refused %s: " % ("deletes" if cancelling else "creates"), errors, requests,
              [describe(r) for r in requests])
    if params["wait"]:
        try:
            if cancelling:
                wait_cancelled(client, requests, api_version, params["wait_timeout"])
            else:
                wait_migrations(client, requests, api_version, params["wait_timeout"])
                refresh_vmis(client, requests, api_version, params["concurrency"])
        except WaitTimeout as err:
            _fail("", [str(err)], requests, [describe(r) for r in requests])
    if cancelling:
        results = [cancel_result(r) for r in requests]
        failures = cancel_failures(requests, results)
    else:
        failed = [r for r in requests if plan.phase_of(r.final or r.existing) == "Failed"]
        events = read_events(client, {r.namespace for r in failed}, params["concurrency"]) if failed else {}
        results = [plan.migration_result(r, events=events.get(_uid(r.final or r.existing))) for r in requests]
        failures = migration_failures(requests, results)
    if failures:
        _fail("%d of %d %s failed: " % (len(failures), len(requests), "cancellations" if cancelling else "migrations"),
              failures, requests, results)
    module.exit_json(migrations=results, **result)
