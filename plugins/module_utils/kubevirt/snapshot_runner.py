# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_snapshot, end to end: read, plan every VM, dry run, create, one shared wait, then retention.

Nothing is written until every VM is planned (snapshot_plan.py) and every create and delete passed the
apiserver's dry run; check mode stops there. The snapshots are created concurrently (bounded) and one watch
per namespace follows them all until each is ready to use or Failed. Retention then deletes, per VM, only
snapshots this collection made (and never this run's), and only for a VM whose new snapshot is ready.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time
from datetime import datetime

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import create_or_adopt, describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import snapshot_plan as plan
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.snapshot_plan import (
    GROUP, INVALID_INPUT, KIND, PLURAL, REFUSED, SnapshotRequest)


class Cluster(object):
    """The VMs and VirtualMachineSnapshots of the task's namespaces."""

    def __init__(self):
        self.vms, self.snapshots = {}, {}


def _read_namespace(client, params, namespace, with_vms):
    vms = []
    if with_vms:
        query = {"labelSelector": params["label_selector"]} if params.get("label_selector") else None
        vms = client.list_all(object_path(params["api_version"], "virtualmachines", namespace=namespace), query)[0]
    snapshots = client.list_all(object_path(params["snapshot_api_version"], PLURAL, namespace=namespace))[0]
    return vms, snapshots


def _selector_failure(params, err):
    return ModuleFailure(INVALID_INPUT + "label_selector: %r: %s" % (params["label_selector"], err.message),
                         ["label_selector: %s" % err.message])


def read_cluster(client, params, requests):
    """VMs (by name) and snapshots of every namespace concerned; a label selector without a namespace lists
    the VMs of every namespace first."""
    cluster = Cluster()
    if params.get("label_selector") and not params.get("namespace"):
        try:
            vms = client.list_all(object_path(params["api_version"], "virtualmachines"),
                                  {"labelSelector": params["label_selector"]})[0]
        except KubeApiError as err:
            if err.status == 400:
                raise _selector_failure(params, err)
            raise
        cluster.vms = {(vm["metadata"]["namespace"], vm["metadata"]["name"]): vm for vm in vms}
        namespaces = sorted({ns for ns, _name in cluster.vms})
        with_vms = False
    else:
        namespaces = sorted({r.namespace for r in requests} or {params["namespace"]})
        with_vms = True
    outcomes = run_concurrently(lambda ns: _read_namespace(client, params, ns, with_vms), namespaces,
                                params["concurrency"])
    for namespace, outcome in zip(namespaces, outcomes):
        if isinstance(outcome, KubeApiError) and outcome.status == 400 and params.get("label_selector"):
            raise _selector_failure(params, outcome)
        if isinstance(outcome, Exception):
            raise outcome
        vms, snapshots = outcome
        cluster.vms.update({(namespace, vm["metadata"]["name"]): vm for vm in vms})
        cluster.snapshots[namespace] = snapshots
    return cluster


def resolve_requests(requests, cluster, params):
    """The VMs of a label selector become requests; every named VM must exist (to be snapshotted)."""
    if params.get("label_selector"):
        requests = [SnapshotRequest(name, ns, "label_selector") for (ns, name) in sorted(cluster.vms)]
    errors = []
    for request in requests:
        request.vm = cluster.vms.get(request.ident)
        if request.vm is None and params["state"] == "present":
            errors.append("VM %s: name: no such VirtualMachine in namespace %s" % (request.label, request.namespace))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


def plan_all(requests, cluster, params):
    now = datetime.utcnow()
    problems = []
    for request in requests:
        problems.extend(plan.plan_request(request, cluster.snapshots.get(request.namespace, []), params, now))
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)


def _collection(request, params):
    return object_path(params["snapshot_api_version"], PLURAL, namespace=request.namespace)


def _path(request, params, name):
    return object_path(params["snapshot_api_version"], PLURAL, name, request.namespace)


def _deletions(requests):
    """(request, name) of every snapshot to delete: state=absent's own, and retention's."""
    pairs = [(r, r.snapshot_name) for r in requests if r.action == "deleted"]
    pairs += [(r, s["metadata"]["name"]) for r in requests for s in r.expired]
    return pairs


def dry_run(client, requests, params):
    """The apiserver's verdict (schema, KubeVirt's snapshot admitter, RBAC) on every create and delete."""
    creating = [r for r in requests if r.action == "created"]
    outcomes = run_concurrently(
        lambda r: client.request("POST", _collection(r, params), {"dryRun": "All"}, r.body),
        creating, params["concurrency"])
    errors = ["VM %s: %s %s: %s" % (r.label, KIND, r.snapshot_name,
                                    describe_api_error(o) if isinstance(o, KubeApiError) else o)
              for r, o in zip(creating, outcomes) if isinstance(o, Exception)]
    deleting = _deletions(requests)
    outcomes = run_concurrently(lambda pair: client.delete(_path(pair[0], params, pair[1]), dry_run=True),
                                deleting, params["concurrency"])
    errors += ["VM %s: deleting %s %s: %s" % (r.label, KIND, name,
                                              describe_api_error(o) if isinstance(o, KubeApiError) else o)
               for (r, name), o in zip(deleting, outcomes) if isinstance(o, Exception)]
    if errors:
        raise ModuleFailure("the apiserver refused the snapshots in a dry run, nothing was changed: "
                            + joined_errors(errors), errors)


def _create(client, request, params):
    created, request.written = create_or_adopt(client, _collection(request, params), request.body)
    if not request.written:
        request.action = "unchanged"  # a parallel run of the same task made it: follow that one
    return created


def create_snapshots(client, requests, params):
    creating = [r for r in requests if r.action == "created"]
    outcomes = run_concurrently(lambda r: _create(client, r, params), creating, params["concurrency"])
    errors = []
    for request, outcome in zip(creating, outcomes):
        if isinstance(outcome, Exception):
            errors.append("VM %s: creating %s %s: %s" % (
                request.label, KIND, request.snapshot_name,
                describe_api_error(outcome) if isinstance(outcome, KubeApiError) else outcome))
        else:
            request.final = outcome
    return errors


def delete_snapshots(client, pairs, params):
    def delete(pair):
        request, name = pair
        client.delete(_path(request, params, name))
        request.written = True
        request.deleted.append(name)

    outcomes = run_concurrently(delete, pairs, params["concurrency"])
    return ["VM %s: deleting %s %s: %s" % (r.label, KIND, name,
                                           describe_api_error(o) if isinstance(o, KubeApiError) else o)
            for (r, name), o in zip(pairs, outcomes) if isinstance(o, Exception)]


def wait_ready(client, requests, params, timeout):
    """One watch per namespace until each snapshot of the run is ready to use or Failed."""
    waited = [r for r in requests if r.action in ("created", "unchanged")]
    targets = [WaitTarget(r.namespace, r.snapshot_name, plan.is_settled, "readyToUse or phase Failed",
                          plan.describe_snapshot) for r in waited]
    seen = wait_for(client, params["snapshot_api_version"], PLURAL, targets, timeout)
    for request in waited:
        request.final = seen.get((request.namespace, request.snapshot_name))


def wait_gone(client, pairs, params, timeout):
    targets = [WaitTarget(r.namespace, name, lambda obj: obj is None, "its deletion", plan.describe_snapshot)
               for r, name in pairs]
    wait_for(client, params["snapshot_api_version"], PLURAL, targets, timeout)


def _fail(message, errors, requests):
    raise ModuleFailure(message + joined_errors(errors), errors, changed=any(r.written for r in requests),
                        snapshots=[plan.snapshot_result(r) for r in requests])


def _hold_retention(requests, wait):
    """Retention goes ahead only for VMs whose snapshot of this run is ready (or, without wait, was made)."""
    for request in requests:
        if not request.expired or request.action not in ("created", "unchanged") or not wait:
            continue
        snapshot = request.final or request.existing
        if not plan.status_of(snapshot).get("readyToUse"):
            request.retention_note = "retention skipped: snapshot %s is not ready to use (phase %s)" % (
                request.snapshot_name, plan.phase_of(snapshot) or "unset")
            request.expired = []


def run(module):
    params = dict(module.params)
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure(INVALID_INPUT + joined_errors(bounds), bounds)
    requests = plan.parse_requests(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    params["snapshot_api_version"] = preferred_version(client, GROUP, params.get("api_version"))
    params["api_version"] = preferred_version(client, "kubevirt.io")
    cluster = read_cluster(client, params, requests)
    requests = resolve_requests(requests, cluster, params)
    plan_all(requests, cluster, params)
    dry_run(client, requests, params)
    result = {"changed": any(plan.changed(r) for r in requests), "api_version": params["snapshot_api_version"]}
    if module._diff:
        result["diff"] = [plan.plan_diff(r, cluster.snapshots.get(r.namespace, [])) for r in requests
                          if plan.changed(r)]
    if module.check_mode:
        module.exit_json(snapshots=[plan.snapshot_result(r) for r in requests], **result)
    deadline = time.monotonic() + params["wait_timeout"]
    errors = create_snapshots(client, requests, params)
    if errors:
        _fail("the apiserver refused creates: ", errors, requests)
    if params["wait"]:
        try:
            wait_ready(client, requests, params, params["wait_timeout"])
        except WaitTimeout as err:
            _fail("", [str(err)], requests)
    _hold_retention(requests, params["wait"])
    pairs = _deletions(requests)
    errors = delete_snapshots(client, pairs, params)
    result["changed"] = any(r.written for r in requests)
    if errors:
        _fail("the apiserver refused deletes: ", errors, requests)
    if params["wait"] and pairs:
        try:
            wait_gone(client, pairs, params, max(0.0, deadline - time.monotonic()))
        except WaitTimeout as err:
            _fail("", [str(err)], requests)
    failures = plan.snapshot_failures(requests)
    if failures:
        _fail("%d of %d snapshots failed: " % (len(failures), len(requests)), failures, requests)
    module.exit_json(snapshots=[plan.snapshot_result(r) for r in requests], **result)
