# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmo_rbac on a Kubernetes cluster: validate, plan every object, then write, then verify.

Nothing is written until every binding passed the module's checks (roles and namespaces exist, names
are free or already ours) and the apiserver's dry run. Check mode returns that plan. ClusterRoles are
written before the bindings that use them; bindings whose role changes are replaced, since the apiserver
does not allow roleRef to change.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.outcomes import raise_failures
from ansible_collections.palette.vmo.plugins.module_utils.kube import apply as kube_apply
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject, comparable
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteClient
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_bindings import (
    CLUSTER_ROLE_BINDING, RBAC_API, ROLE_BINDING, RbacInputError, binding_object, is_managed, managed_labels,
    object_key, parse_bindings)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_palette import run_palette
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_verify import describe_mismatches, verify_bindings
from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import VMO_ROLE_NAMES, vmo_cluster_roles

PLURALS = {ROLE_BINDING: "rolebindings", CLUSTER_ROLE_BINDING: "clusterrolebindings", "ClusterRole": "clusterroles"}


class ObjectPlan(object):
    """One RBAC object: what is live, what is declared, and what this run does to it."""

    def __init__(self, key, live, desired=None, role=None):
        self.key, self.live, self.desired, self.role = key, live, desired, role
        self.apply = None  # PlannedObject, for objects to create or update
        self.delete = False
        self.replace = False  # roleRef changed: delete, then create
        self.left_alone = None  # why an existing object is not touched
        self.written = False  # the apiserver accepted this run's delete or apply of it

    @property
    def kind(self):
        return self.key[0]

    @property
    def path(self):
        kind, namespace, name = self.key
        return object_path(RBAC_API, PLURALS[kind], name, namespace or None)

    @property
    def label(self):
        kind, namespace, name = self.key
        return "%s %s" % (kind, "%s/%s" % (namespace, name) if namespace else name)

    @property
    def action(self):
        if self.left_alone:
            return "left_alone"
        if self.replace:
            return "replaced"
        if self.delete:
            return "deleted"
        if self.apply is None:
            return "absent"
        return {"create": "created", "update": "updated"}.get(self.apply.action, "unchanged")

    @property
    def changed(self):
        return self.action in ("created", "updated", "replaced", "deleted")


def connect(module):
    return KubeClient(module_connection(module), concurrency=module.params["concurrency"])


# -- checks against the cluster ---------------------------------------------------------------------

def check_roles_exist(client, bindings, roles_state, concurrency):
    """Each bound role must exist, or be one of the VMO roles this task creates."""
    wanted = sorted({b.role for b in bindings if b.state == "present"
                     and not (roles_state == "present" and b.role in VMO_ROLE_NAMES)})
    found = dict(zip(wanted, run_concurrently(
        lambda role: client.get_or_none(object_path(RBAC_API, "clusterroles", role)), wanted, concurrency)))
    errors = []
    for binding in bindings:
        if binding.state != "present":
            continue
        if roles_state == "absent" and binding.role in VMO_ROLE_NAMES:
            errors.append("%s: role: %s is removed by roles: absent in the same task" % (binding.label, binding.role))
            continue
        outcome = found.get(binding.role)
        if isinstance(outcome, Exception):
            raise outcome
        if binding.role in found and outcome is None:
            hint = " (install the VMO pack, or set roles: present)" if binding.role in VMO_ROLE_NAMES else ""
            errors.append("%s: role: ClusterRole %s does not exist%s" % (binding.label, binding.role, hint))
    return errors


def check_namespaces(client, bindings, concurrency):
    namespaces = sorted({ns for b in bindings if b.state == "present" for ns in b.namespaces})
    found = dict(zip(namespaces, run_concurrently(
        lambda ns: client.get_or_none(object_path("v1", "namespaces", ns)), namespaces, concurrency)))
    errors = []
    for binding in bindings:
        for position, namespace in enumerate(binding.namespaces if binding.state == "present" else []):
            outcome = found[namespace]
            if isinstance(outcome, KubeApiError) and outcome.status == 403:
                continue  # may not read namespaces: the dry run will tell
            if isinstance(outcome, Exception):
                raise outcome
            if outcome is None:
                errors.append("%s: namespaces[%d]: namespace %s does not exist" % (binding.label, position, namespace))
    return errors


def read_live_bindings(client):
    """Every RoleBinding and ClusterRoleBinding by (kind, namespace, name): ours, and the names ours must avoid."""
    live = {}
    for kind in (ROLE_BINDING, CLUSTER_ROLE_BINDING):
        items = client.list_all(object_path(RBAC_API, PLURALS[kind]))[0]
        for item in items:
            item = dict(item, kind=kind, apiVersion=RBAC_API)  # list items carry neither
            live[object_key(item)] = item
    return live


# -- planning ---------------------------------------------------------------------------------------

def plan_bindings(bindings, live, params):
    """ObjectPlans for the declared bindings and, in exclusive mode, for the managed ones not declared."""
    plans, errors, declared = [], [], set()
    for binding in bindings:
        for key in binding.keys():
            declared.add(key)
            before = live.get(key)
            if before is not None and not is_managed(before):
                errors.append("%s: name: %s exists and is not managed by palette.vmo (give the binding another "
                              "name)" % (binding.label, ObjectPlan(key, before).label))
                continue
            plan = ObjectPlan(key, before, role=binding.role)
            if binding.state == "absent":
                plan.delete = before is not None
            else:
                plan.desired = binding_object(binding, key)
                plan.replace = before is not None and before.get("roleRef") != plan.desired["roleRef"]
                plan.apply = PlannedObject(plan.label, plan.path, plan.desired, None if plan.replace else before)
            plans.append(plan)
    if errors:
        raise RbacInputError(errors)
    if params["exclusive"]:
        plans.extend(_undeclared(live, declared, bindings, params["exclusive_scope"]))
    return plans


def _undeclared(live, declared, bindings, scope):
    namespaces = {ns for b in bindings for ns in b.namespaces}
    extra = []
    for key, obj in sorted(live.items()):
        if key in declared or not is_managed(obj):
            continue
        if scope == "namespaces" and (key[0] != ROLE_BINDING or key[1] not in namespaces):
            continue
        plan = ObjectPlan(key, obj, role=(obj.get("roleRef") or {}).get("name"))
        plan.delete = True
        extra.append(plan)
    return extra


def plan_cluster_roles(client, params):
    """ObjectPlans for the four VMO ClusterRoles (roles: present or absent)."""
    state = params["roles"]
    if state == "unmanaged":
        return []
    plans = []
    for desired in vmo_cluster_roles(labels=managed_labels()):
        key = ("ClusterRole", "", desired["metadata"]["name"])
        plan = ObjectPlan(key, None, role=key[2])
        plan.live = client.get_or_none(plan.path)
        if plan.live is not None and not is_managed(plan.live) and not params["force_roles"]:
            plan.left_alone = "not managed by palette.vmo (%s); set force_roles to take it over" % _owner(plan.live)
        elif state == "present":
            plan.desired = desired
            plan.apply = PlannedObject(plan.label, plan.path, plan.desired, plan.live)
        else:
            plan.delete = plan.live is not None
        plans.append(plan)
    return plans


def _owner(obj):
    """Who manages an object, as far as its labels and field managers tell."""
    metadata = obj.get("metadata") or {}
    owner = (metadata.get("labels") or {}).get("app.kubernetes.io/managed-by")
    managers = sorted({entry.get("manager") for entry in metadata.get("managedFields") or [] if entry.get("manager")})
    if owner:
        return "managed-by %s" % owner
    return "written by %s" % ", ".join(managers) if managers else "no owner recorded"


def dry_run(client, plans, params):
    for plan in plans:
        if plan.replace:
            # A roleRef cannot change, so the dry run could only refuse; the subjects were checked already.
            plan.apply.after, plan.apply._action = plan.desired, "create"
    applying = [plan.apply for plan in plans if plan.apply and not plan.replace]
    kube_apply.plan_apply(client, applying, params["field_manager"], True, params["concurrency"])
    errors = ["%s: %s" % (item.label, item.error) for item in applying if item.error]
    if errors:
        raise ModuleFailure("the apiserver rejected the plan in a dry run, nothing was changed: "
                            + "; ".join(errors), errors)


def diff_of(plan):
    after = None if plan.delete and not plan.replace else comparable(plan.apply.after if plan.apply else plan.live)
    return {"before_header": plan.label, "after_header": plan.label,
            "before": comparable(plan.live) or {}, "after": after or {}}


# -- writing ----------------------------------------------------------------------------------------

def _delete_failure(plan, error):
    return "%s: delete: %s" % (plan.label, kube_apply.describe_api_error(error)
                               if isinstance(error, KubeApiError) else error)


def execute(client, plans, params):
    """Writes the plans; each one the apiserver accepted is marked `written`, also when another one fails."""
    concurrency = params["concurrency"]
    # Roles first (bindings may name them), the roleRef replacements' deletes before their creates.
    for group in ([p for p in plans if p.kind == "ClusterRole"], [p for p in plans if p.kind != "ClusterRole"]):
        removing = [p for p in group if p.replace or p.delete]
        outcomes = run_concurrently(lambda p: client.delete(p.path), removing, concurrency)
        for plan, outcome in zip(removing, outcomes):
            plan.written = not isinstance(outcome, Exception)
        raise_failures(removing, outcomes, _delete_failure)
        applying = [p for p in group if p.apply]
        failed = kube_apply.apply_planned(client, [p.apply for p in applying], params["field_manager"],
                                          True, concurrency)
        for plan in applying:
            plan.written = plan.written or plan.apply.result is not None
        if failed:
            raise ModuleFailure("; ".join("%s: %s" % (item.label, item.error) for item in failed))


# -- the task ---------------------------------------------------------------------------------------

def object_result(plan):
    obj = plan.desired or plan.live or {}
    result = {"kind": plan.kind, "name": plan.key[2], "namespace": plan.key[1] or None, "action": plan.action}
    if plan.kind == "ClusterRole":
        result["reason"] = plan.left_alone
    else:
        result["role"] = plan.role
        result["subjects"] = obj.get("subjects") or []
    return result


def run_kubernetes(module, bindings):
    params = module.params
    client = connect(module)
    concurrency = params["concurrency"]
    errors = check_roles_exist(client, bindings, params["roles"], concurrency)
    errors += check_namespaces(client, bindings, concurrency)
    if errors:
        raise RbacInputError(errors)
    role_plans = plan_cluster_roles(client, params)
    binding_plans = plan_bindings(bindings, read_live_bindings(client), params)
    plans = role_plans + binding_plans
    dry_run(client, plans, params)
    changed = any(plan.changed for plan in plans)
    result = {"changed": changed}
    if module._diff:
        result["diff"] = [diff_of(plan) for plan in plans if plan.changed]
    if changed and not module.check_mode:
        try:
            execute(client, plans, params)
        except ModuleFailure as err:
            err.result.update(written_result(role_plans, binding_plans))
            raise
    result["roles"] = [object_result(plan) for plan in role_plans]
    result["bindings"] = [object_result(plan) for plan in binding_plans]
    if params["verify"]:
        result.update(verify_result(module, client, bindings, result))
    return result


def written_result(role_plans, binding_plans):
    """What a failed write reports: changed=true and the objects written before it, when there are any."""
    if not any(plan.written for plan in role_plans + binding_plans):
        return {}
    return {"changed": True, "roles": [object_result(plan) for plan in role_plans if plan.written],
            "bindings": [object_result(plan) for plan in binding_plans if plan.written]}


def verify_result(module, client, bindings, result):
    """SubjectAccessReviews after the write; skipped in check mode, where the bindings may not exist yet.

    A mismatch that fails the task still reports `result`, what the task wrote.
    """
    if module.check_mode:
        return {"verify": [], "verify_skipped": "check mode: the declared bindings are not written"}
    entries = verify_bindings(client, bindings, module.params["concurrency"])
    mismatches = describe_mismatches(entries)
    if mismatches and module.params["verify_fail"]:
        raise ModuleFailure("access does not match the VMO role table: " + "; ".join(mismatches), mismatches,
                            verify=entries, verify_mismatches=len(mismatches), **result)
    return {"verify": entries, "verify_mismatches": len(mismatches)}


def run(module):
    params = module.params
    bounds = bound_errors(params)
    if bounds:
        raise RbacInputError(bounds)
    bindings = parse_bindings(params["bindings"])
    # With rbac_api kubernetes, a Palette cluster is only where the kubeconfig comes from (KubeModule.connection).
    if params.get("palette_cluster") and params.get("rbac_api", "palette") == "palette":
        result = run_palette_mode(module, bindings)
    else:
        result = run_kubernetes(module, bindings)
    module.exit_json(**result)


def run_palette_mode(module, bindings):
    params = module.params
    if params["roles"] != "unmanaged":
        raise RbacInputError(["roles: Palette installs the VMO roles with the pack; use roles: unmanaged with "
                              "palette_cluster (or rbac_api: kubernetes to manage them through the cluster's "
                              "kubeconfig)"])
    result = run_palette(module, PaletteClient(params), bindings)
    if params["verify"]:
        result.update(verify_result(module, connect(module), bindings, result))
    return result
