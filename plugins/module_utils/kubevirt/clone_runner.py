# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_clone, end to end: read, preflight every clone, dry run, create, one shared wait, then start.

Nothing is written until every clone passed the preflight (clone_plan.py) and every VirtualMachineClone
passed the apiserver's dry run (schema, RBAC, KubeVirt's clone mutator and admitter); check mode stops
there. The clones are created concurrently (bounded); one watch per namespace follows them until each is
Succeeded or Failed. The new VMs asked to start are then started (their run strategy) and waited for, again
with one watch per namespace, until KubeVirt reports them ready.
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
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import clone_plan as plan
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.clone_plan import INVALID_INPUT, KIND, PLURAL, REFUSED


def _error(err):
    return describe_api_error(err) if isinstance(err, KubeApiError) else str(err)


def _by_name(items):
    return {item["metadata"]["name"]: item for item in items}


def resolve(client, requests, versions, concurrency):
    kubevirt, snapshot, clone = versions
    namespaces = sorted({r.namespace for r in requests})

    def read(namespace):
        return {
            "vms": _by_name(client.list_all(object_path(kubevirt, "virtualmachines", namespace=namespace))[0]),
            "snapshots": _by_name(client.list_all(object_path(snapshot, "virtualmachinesnapshots",
                                                              namespace=namespace))[0]),
            "contents": _by_name(client.list_all(object_path(snapshot, "virtualmachinesnapshotcontents",
                                                             namespace=namespace))[0]),
            "clones": _by_name(client.list_all(object_path(clone, PLURAL, namespace=namespace))[0]),
        }

    outcomes = run_concurrently(read, namespaces, concurrency)
    found = {}
    for namespace, outcome in zip(namespaces, outcomes):
        if isinstance(outcome, Exception):
            raise outcome
        found[namespace] = outcome
    problems = []
    for request in requests:
        there = found[request.namespace]
        request.target_vm = there["vms"].get(request.target)
        request.source = (there["vms"] if request.source_vm else there["snapshots"]).get(request.source_name)
        content = None
        if request.source_snapshot and request.source is not None:
            name = (request.source.get("status") or {}).get("virtualMachineSnapshotContentName")
            content = there["contents"].get(name) if name else None
        problems.extend(plan.preflight(request, content, there["clones"]))
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)


def dry_run(client, requests, clone_version, kubevirt_version, concurrency):
    creating = [r for r in requests if r.action == "created"]
    for request in creating:
        request.clone = plan.build_clone(request)
    outcomes = run_concurrently(
        lambda r: client.request("POST", object_path(clone_version, PLURAL, namespace=r.namespace),
                                 {"dryRun": "All"}, r.clone), creating, concurrency)
    errors = ["VM %s: %s %s: %s" % (r.label, KIND, r.name, _error(o))
              for r, o in zip(creating, outcomes) if isinstance(o, Exception)]
    starting = [r for r in requests if r.action == "unchanged" and r.start and plan.needs_start(r.target_vm)]
    outcomes = run_concurrently(
        lambda r: client.merge_patch(object_path(kubevirt_version, "virtualmachines", r.target, r.namespace),
                                     plan.start_patch(r.target_vm), dry_run=True), starting, concurrency)
    errors += ["VM %s: start: %s" % (r.label, _error(o)) for r, o in zip(starting, outcomes) if isinstance(o, Exception)]
    if errors:
        raise ModuleFailure("the apiserver refused the clones in a dry run, nothing was changed: "
                            + joined_errors(errors), errors)


def create(client, requests, clone_version, concurrency):
    creating = [r for r in requests if r.action == "created"]

    def one(request):
        made, request.written = create_or_adopt(
            client, object_path(clone_version, PLURAL, namespace=request.namespace), request.clone)
        if not request.written:
            request.action = "adopted"
        return made

    outcomes = run_concurrently(one, creating, concurrency)
    errors = []
    for request, outcome in zip(creating, outcomes):
        if isinstance(outcome, Exception):
            errors.append("VM %s: creating %s %s: %s" % (request.label, KIND, request.name, _error(outcome)))
        else:
            request.final = outcome
    return errors


def read_events(client, requests, concurrency):
    """Warning events the clone controller recorded on the clones (RestoreCreationFailed, ...), by clone uid."""
    namespaces = sorted({r.namespace for r in requests})
    query = {"fieldSelector": "involvedObject.kind=%s,type=Warning" % KIND}
    outcomes = run_concurrently(lambda ns: client.list_all(object_path("v1", "events", namespace=ns), query)[0],
                                namespaces, concurrency)
    events = {}
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            continue  # events only add detail
        for event in sorted(outcome, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
            events.setdefault((event.get("involvedObject") or {}).get("uid"), []).append(event)
    return events


def _uid(obj):
    return ((obj or {}).get("metadata") or {}).get("uid")


def wait_clones(client, requests, clone_version, timeout):
    waited = [r for r in requests if r.action in ("created", "adopted")]
    targets = [WaitTarget(r.namespace, r.name, plan.is_final, "Succeeded (or Failed)", plan.describe_clone)
               for r in waited]
    seen = wait_for(client, clone_version, PLURAL, targets, timeout)
    for request in waited:
        request.final = seen.get((request.namespace, request.name), request.final)


def start_vms(client, requests, kubevirt_version, concurrency):
    starting = []
    for request in requests:
        if not request.start or plan.phase(request.final or request.existing) != "Succeeded":
            continue
        vm = client.get_or_none(object_path(kubevirt_version, "virtualmachines", request.target, request.namespace))
        request.final_vm = vm
        if vm is not None and plan.needs_start(vm):
            starting.append((request, vm))
        elif vm is not None:
            request.start_action = "unchanged"

    def one(pair):
        request, vm = pair
        request.final_vm = client.merge_patch(object_path(kubevirt_version, "virtualmachines", request.target,
                                                          request.namespace), plan.start_patch(vm))
        request.written = True
        request.start_action = "started"

    outcomes = run_concurrently(one, starting, concurrency)
    return ["VM %s: start: %s" % (r.label, _error(o)) for (r, _vm), o in zip(starting, outcomes)
            if isinstance(o, Exception)]


def _ready(vm):
    status = (vm or {}).get("status") or {}
    return bool(status.get("ready")) or status.get("printableStatus") == "Running"


def _describe_vm(vm):
    if vm is None:
        return "not seen"
    return "printableStatus %s" % (((vm.get("status") or {}).get("printableStatus")) or "unset")


def wait_started(client, requests, kubevirt_version, timeout):
    started = [r for r in requests if r.start_action == "started"]
    targets = [WaitTarget(r.namespace, r.target, _ready, "ready (Running)", _describe_vm) for r in started]
    seen = wait_for(client, kubevirt_version, "virtualmachines", targets, timeout)
    for request in started:
        request.final_vm = seen.get((request.namespace, request.target), request.final_vm)


def _fail(message, errors, requests, events=None):
    raise ModuleFailure(message + joined_errors(errors), errors, changed=any(r.written for r in requests),
                        clones=[plan.clone_result(r, (events or {}).get(_uid(r.final or r.existing)))
                                for r in requests])


def run(module):
    params = dict(module.params)
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure(INVALID_INPUT + joined_errors(bounds), bounds)
    requests = plan.parse_requests(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    kubevirt_version = preferred_version(client, "kubevirt.io", params.get("api_version"))
    snapshot_version = preferred_version(client, "snapshot.kubevirt.io")
    clone_version = preferred_version(client, "clone.kubevirt.io")
    resolve(client, requests, (kubevirt_version, snapshot_version, clone_version), params["concurrency"])
    dry_run(client, requests, clone_version, kubevirt_version, params["concurrency"])
    for request in requests:
        if request.start and (request.action != "unchanged" or plan.needs_start(request.target_vm)):
            request.start_action = "started"
    result = {"changed": any(r.action == "created" or r.start_action == "started" for r in requests),
              "api_version": clone_version}
    if module._diff:
        result["diff"] = [plan.plan_diff(r) for r in requests if r.action == "created"]
    if module.check_mode:
        module.exit_json(clones=[plan.clone_result(r) for r in requests], **result)
    for request in requests:
        request.start_action = None
    errors = create(client, requests, clone_version, params["concurrency"])
    if errors:
        _fail("the apiserver refused creates: ", errors, requests)
    if not params["wait"]:
        result["changed"] = any(r.written for r in requests)
        module.exit_json(clones=[plan.clone_result(r) for r in requests], **result)
    deadline = time.monotonic() + params["wait_timeout"]
    try:
        wait_clones(client, requests, clone_version, params["wait_timeout"])
    except WaitTimeout as err:
        events = read_events(client, requests, params["concurrency"])
        warned = ["VM %s: KubeVirt warned on clone %s: %s" % (r.label, r.name, events[_uid(r.final or r.existing)][-1].get("message"))
                  for r in requests if _uid(r.final or r.existing) in events]
        _fail("", [str(err)] + warned, requests, events)
    failed = [r for r in requests if plan.phase(r.final or r.existing) == "Failed"]
    events = read_events(client, failed, params["concurrency"]) if failed else {}
    errors = start_vms(client, requests, kubevirt_version, params["concurrency"])
    if errors:
        _fail("starting the new VMs failed: ", errors, requests, events)
    try:
        wait_started(client, requests, kubevirt_version, max(0.0, deadline - time.monotonic()))
    except WaitTimeout as err:
        _fail("", [str(err)], requests, events)
    result["changed"] = any(r.written for r in requests)
    results = [plan.clone_result(r, events.get(_uid(r.final or r.existing))) for r in requests]
    failures = ["VM %s: VirtualMachineClone %s failed: %s" % (r.label, r.name, res["failure"])
                for r, res in zip(requests, results) if res["phase"] == "Failed"]
    if failures:
        _fail("%d of %d clones failed: " % (len(failures), len(requests)), failures, requests, events)
    module.exit_json(clones=results, **result)
