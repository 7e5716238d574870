# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_restore, end to end: read, preflight every restore, dry run, create, then one shared wait.

Nothing is written until every restore passed the preflight (restore_plan.py) and every
VirtualMachineRestore passed the apiserver's dry run (schema, RBAC and KubeVirt's restore admitter); check
mode stops there. The restores are created concurrently (bounded) and one watch per namespace follows them
all until each is complete or failed.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import create_or_adopt, describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import restore_plan as plan
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.restore_plan import (
    INVALID_INPUT, KIND, PLURAL, REFUSED)


def _error(err):
    return describe_api_error(err) if isinstance(err, KubeApiError) else str(err)


def read_namespace(client, kubevirt_version, snapshot_version, namespace):
    return {
        "vms": client.list_all(object_path(kubevirt_version, "virtualmachines", namespace=namespace))[0],
        "vmis": client.list_all(object_path(kubevirt_version, "virtualmachineinstances", namespace=namespace))[0],
        "snapshots": client.list_all(object_path(snapshot_version, "virtualmachinesnapshots", namespace=namespace))[0],
        "contents": client.list_all(object_path(snapshot_version, "virtualmachinesnapshotcontents",
                                                namespace=namespace))[0],
        "restores": client.list_all(object_path(snapshot_version, PLURAL, namespace=namespace))[0],
    }


def _by_name(items):
    return {item["metadata"]["name"]: item for item in items}


def resolve(client, requests, kubevirt_version, snapshot_version, concurrency):
    namespaces = sorted({r.namespace for r in requests})
    outcomes = run_concurrently(lambda ns: read_namespace(client, kubevirt_version, snapshot_version, ns),
                                namespaces, concurrency)
    read = {}
    for namespace, outcome in zip(namespaces, outcomes):
        if isinstance(outcome, Exception):
            raise outcome
        read[namespace] = dict((key, _by_name(items)) for key, items in outcome.items())
        read[namespace]["restore_list"] = outcome["restores"]
    problems = []
    for request in requests:
        found = read[request.namespace]
        request.target_vm = found["vms"].get(request.target)
        request.target_vmi = found["vmis"].get(request.target)
        request.snapshot = found["snapshots"].get(request.snapshot_name)
        content_name = ((request.snapshot or {}).get("status") or {}).get("virtualMachineSnapshotContentName")
        request.content = found["contents"].get(content_name) if content_name else None
        problems.extend(plan.preflight(request, found["restore_list"]))
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)


def dry_run(client, requests, snapshot_version, concurrency):
    creating = [r for r in requests if r.action == "created"]
    for request in creating:
        request.restore = plan.build_restore(request)
    outcomes = run_concurrently(
        lambda r: client.request("POST", object_path(snapshot_version, PLURAL, namespace=r.namespace),
                                 {"dryRun": "All"}, r.restore), creating, concurrency)
    errors = ["VM %s: %s %s: %s" % (r.label, KIND, r.name, _error(o))
              for r, o in zip(creating, outcomes) if isinstance(o, Exception)]
    if errors:
        raise ModuleFailure("the apiserver refused the restores in a dry run, nothing was changed: "
                            + joined_errors(errors), errors)


def create(client, requests, snapshot_version, concurrency):
    creating = [r for r in requests if r.action == "created"]

    def one(request):
        made, request.written = create_or_adopt(
            client, object_path(snapshot_version, PLURAL, namespace=request.namespace), request.restore)
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


def wait(client, requests, snapshot_version, timeout):
    waited = [r for r in requests if r.action in ("created", "adopted")]
    targets = [WaitTarget(r.namespace, r.name, plan.is_final, "complete (or a Failure condition)",
                          plan.describe_restore) for r in waited]
    seen = wait_for(client, snapshot_version, PLURAL, targets, timeout)
    for request in waited:
        request.final = seen.get((request.namespace, request.name), request.final)


def _fail(message, errors, requests):
    raise ModuleFailure(message + joined_errors(errors), errors, changed=any(r.written for r in requests),
                        restores=[plan.restore_result(r) for r in requests])


def run(module):
    params = dict(module.params)
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure(INVALID_INPUT + joined_errors(bounds), bounds)
    requests = plan.parse_requests(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    kubevirt_version = preferred_version(client, "kubevirt.io", params.get("api_version"))
    snapshot_version = preferred_version(client, "snapshot.kubevirt.io")
    resolve(client, requests, kubevirt_version, snapshot_version, params["concurrency"])
    dry_run(client, requests, snapshot_version, params["concurrency"])
    result = {"changed": any(r.action == "created" for r in requests), "api_version": snapshot_version}
    if module._diff:
        result["diff"] = [plan.plan_diff(r) for r in requests if r.action == "created"]
    if module.check_mode:
        module.exit_json(restores=[plan.restore_result(r) for r in requests], **result)
    errors = create(client, requests, snapshot_version, params["concurrency"])
    result["changed"] = any(r.written for r in requests)
    if errors:
        _fail("the apiserver refused creates: ", errors, requests)
    if params["wait"]:
        try:
            wait(client, requests, snapshot_version, params["wait_timeout"])
        except WaitTimeout as err:
            _fail("", [str(err)], requests)
        failures = ["VM %s: VirtualMachineRestore %s failed: %s" % (r.label, r.name, plan.failure_condition(r.final)
                                                                     .get("reason"))
                    for r in requests if plan.failure_condition(r.final) is not None]
        if failures:
            _fail("%d of %d restores failed: " % (len(failures), len(requests)), failures, requests)
    module.exit_json(restores=[plan.restore_result(r) for r in requests], **result)
