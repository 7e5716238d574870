# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_migration_policy: KubeVirt MigrationPolicy objects (cluster-scoped) declared with server-side apply.

Every policy is checked by the module (the checks of KubeVirt's migration policy admitter,
pkg/virt-api/webhooks/validating-webhook/admitters/migrationpolicy-admitter.go, and label syntax), then
by a server-side dry run of the whole batch; only then are the ones that differ written.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.outcomes import raise_failures
from ansible_collections.palette.vmo.plugins.module_utils.kube import apply as kube_apply
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject, comparable
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_plan import (
    INVALID_INPUT, selector_errors)
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    MANAGED_BY, MANAGED_BY_LABEL, QUANTITY)

GROUP = "migrations.kubevirt.io"
PLURAL = "migrationpolicies"
KIND = "MigrationPolicy"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

POLICY_OPTIONS = dict(
    name=dict(type="str"),
    state=dict(type="str", choices=["present", "absent"]),
    allow_auto_converge=dict(type="bool"),
    allow_post_copy=dict(type="bool"),
    allow_workload_disruption=dict(type="bool"),
    bandwidth_per_migration=dict(type="str"),
    completion_timeout_per_gib=dict(type="int"),
    namespace_selector=dict(type="dict"),
    vmi_selector=dict(type="dict"),
    labels=dict(type="dict"),
)

# option -> field of MigrationPolicySpec (staging/src/kubevirt.io/api/migrations/v1alpha1/types.go)
SPEC_FIELDS = (("allow_auto_converge", "allowAutoConverge"), ("allow_post_copy", "allowPostCopy"),
               ("allow_workload_disruption", "allowWorkloadDisruption"),
               ("bandwidth_per_migration", "bandwidthPerMigration"),
               ("completion_timeout_per_gib", "completionTimeoutPerGiB"))


def policy_requests(params):
    """One dict per policy: each `policies` item over the task-level options, or the task-level policy alone."""
    defaults = {key: params.get(key) for key in POLICY_OPTIONS}
    if not params.get("policies"):
        requests = [defaults]
    else:
        validated, errors = validate_items("policies", params["policies"], POLICY_OPTIONS)
        if errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
        requests = []
        for item in validated:
            merged = copy.deepcopy(defaults)
            merged.update({k: v for k, v in item.items() if v is not None})
            requests.append(merged)
    for request in requests:
        request["state"] = request.get("state") or "present"
    return requests


def policy_errors(request, seen):
    """Every problem of one policy, each naming the policy and the option."""
    name = request.get("name")
    label = "MigrationPolicy %s" % (name or "?")
    if not name:
        return ["%s: name: is required" % label]
    errors = []
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        errors.append("%s: name: %r is not a valid name (lowercase letters, digits, '-' and '.', starting and "
                      "ending with a letter or digit, at most 253 characters)" % (label, name))
    if name in seen:
        errors.append("%s: name: is declared more than once in this task" % label)
    seen.add(name)
    if request["state"] == "absent":
        return errors
    bandwidth = request.get("bandwidth_per_migration")
    if bandwidth is not None:
        if str(bandwidth).startswith("-"):
            errors.append("%s: bandwidth_per_migration: %r must not be negative" % (label, bandwidth))
        elif not QUANTITY.match(str(bandwidth)):
            errors.append("%s: bandwidth_per_migration: %r is not a Kubernetes quantity (for example 64Mi, bytes "
                          "per second)" % (label, bandwidth))
    timeout = request.get("completion_timeout_per_gib")
    if timeout is not None and timeout < 0:
        errors.append("%s: completion_timeout_per_gib: %r must not be negative" % (label, timeout))
    errors.extend(selector_errors(label, "namespace_selector", request.get("namespace_selector")))
    errors.extend(selector_errors(label, "vmi_selector", request.get("vmi_selector")))
    errors.extend(selector_errors(label, "labels", request.get("labels")))
    return errors


def build_policy(request, api_version):
    selectors = {}
    if request.get("namespace_selector"):
        selectors["namespaceSelector"] = dict(request["namespace_selector"])
    if request.get("vmi_selector"):
        selectors["virtualMachineInstanceSelector"] = dict(request["vmi_selector"])
    spec = {"selectors": selectors}
    for option, field in SPEC_FIELDS:
        if request.get(option) is not None:
            spec[field] = request[option]
    labels = dict(request.get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    return {"apiVersion": api_version, "kind": KIND, "metadata": {"name": request["name"], "labels": labels},
            "spec": spec}


class PolicyPlan(object):
    def __init__(self, request, live):
        self.request, self.name, self.live = request, request["name"], live
        self.apply = None
        self.delete = False
        self.written = False

    @property
    def action(self):
        if self.delete:
            return "deleted"
        if self.apply is None:
            return "absent"
        return {"create": "created", "update": "updated"}.get(self.apply.action, "unchanged")

    @property
    def changed(self):
        return self.action in ("created", "updated", "deleted")


def result_of(plan):
    obj = None if plan.delete or plan.apply is None else (plan.apply.result or plan.apply.after or plan.live)
    return {"name": plan.name, "action": plan.action, "spec": (obj or {}).get("spec")}


def diff_of(plan):
    label = "%s %s" % (KIND, plan.name)
    after = None if plan.delete else comparable(plan.apply.after if plan.apply else plan.live)
    return {"before_header": label, "after_header": label, "before": comparable(plan.live) or {},
            "after": after or {}}


def run(module):
    params = module.params
    errors = bound_errors(params)
    requests = policy_requests(params)
    seen = set()
    for request in requests:
        errors.extend(policy_errors(request, seen))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    api_version = preferred_version(client, GROUP, params.get("api_version"))
    live = {item["metadata"]["name"]: item for item in client.list_all(object_path(api_version, PLURAL))[0]}
    plans = []
    for request in requests:
        plan = PolicyPlan(request, live.get(request["name"]))
        if request["state"] == "absent":
            plan.delete = plan.live is not None
        else:
            plan.apply = PlannedObject("%s %s" % (KIND, plan.name), object_path(api_version, PLURAL, plan.name),
                                       build_policy(request, api_version), plan.live)
        plans.append(plan)
    applying = [p.apply for p in plans if p.apply]
    kube_apply.plan_apply(client, applying, params["field_manager"], params["force_conflicts"], params["concurrency"])
    refused = ["%s: %s" % (item.label, item.error) for item in applying if item.error]
    if refused:
        raise ModuleFailure("the apiserver rejected the batch in a dry run, nothing was changed: "
                            + joined_errors(refused), refused)
    result = {"changed": any(p.changed for p in plans), "api_version": api_version}
    if module._diff:
        result["diff"] = [diff_of(p) for p in plans if p.changed]
    if not module.check_mode and result["changed"]:
        execute(client, plans, params, api_version)
    module.exit_json(policies=[result_of(p) for p in plans], **result)


def execute(client, plans, params, api_version):
    try:
        failed = kube_apply.apply_planned(client, [p.apply for p in plans if p.apply], params["field_manager"],
                                          params["force_conflicts"], params["concurrency"])
        for plan in plans:
            plan.written = bool(plan.apply and plan.apply.result is not None)
        if failed:
            raise ModuleFailure("; ".join("%s: %s" % (item.label, item.error) for item in failed))
        deleting = [p for p in plans if p.delete]
        outcomes = run_concurrently(lambda p: client.delete(object_path(api_version, PLURAL, p.name)), deleting,
                                    params["concurrency"])
        for plan, outcome in zip(deleting, outcomes):
            plan.written = not isinstance(outcome, Exception)
        raise_failures(deleting, outcomes, lambda p, err: "%s %s: delete: %s" % (KIND, p.name, err))
    except ModuleFailure as err:
        written = [p for p in plans if p.written]
        if not written:
            raise
        raise ModuleFailure(str(err), err.errors, changed=True, policies=[result_of(p) for p in written])
