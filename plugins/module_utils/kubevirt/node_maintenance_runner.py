# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_node_maintenance, end to end: read the nodes and their VMs, plan, then cordon, migrate and wait.

Everything is decided before the first write: which nodes exist, which VMIs each holds, which of them can
move (node_maintenance.plan_node) and what happens to those that cannot (`unmovable`: refuse, report or stop).
Check mode returns that plan. Then the nodes are cordoned (`spec.unschedulable`, as `kubectl cordon`), so
nothing new lands on them, the movable VMIs are live-migrated (VirtualMachineInstanceMigration objects, built
as the migration module builds them, at most `concurrency` in flight), unmovable ones are stopped when asked,
and one shared watch waits until the nodes hold nothing more than what was left on purpose.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_plan, migration_runner
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import node_maintenance as nm

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "refused before any change, nothing was changed: "
# VMs that migrate onto a node while it is being cordoned (their migration started before) are moved in a
# further round; a few rounds are enough, since a cordoned node takes no new ones.
ROUNDS = 3
# KubeVirt's 409 when the VM is already stopped (pkg/virt-api/rest/subresource.go StopVMRequestHandler).
ALREADY_STOPPED = "VM is not running"


def batch_failure(prefix, errors, **result):
    return ModuleFailure(prefix + joined_errors(errors), errors, **result)


# -- input ---------------------------------------------------------------------------------------------

def input_errors(params):
    """Every problem of the options, found without the cluster."""
    errors = bound_errors(params)
    nodes = params.get("nodes")
    if not nodes:
        errors.append("nodes: give at least one node name")
    seen = set()
    for index, name in enumerate(nodes or []):
        if not isinstance(name, str) or not name.strip():
            errors.append("nodes[%d]: %r is not a node name" % (index, name))
            continue
        if not nm.NODE_NAME.match(name) or len(name) > 253:
            errors.append("nodes[%d]: %r is not a valid node name (a DNS subdomain: lowercase letters, digits, "
                          "'-' and '.')" % (index, name))
        if name in seen:
            errors.append("nodes[%d]: %r is named more than once" % (index, name))
        seen.add(name)
    if params.get("state") == "uncordoned" and params.get("unmovable") is not None:
        errors.append("unmovable: only applies to state=evacuated, not to state=uncordoned")
    return errors


def check_nodes_exist(wanted, nodes):
    known = sorted(nm.meta(n).get("name") for n in nodes)
    missing = [name for name in wanted if name not in known]
    if missing:
        raise batch_failure(INVALID_INPUT, ["nodes: node %r not found (the cluster has: %s)" % (name, ", ".join(known))
                                            for name in missing])


# -- reading the cluster -------------------------------------------------------------------------------

def read_kubevirt_cr(client, api_version):
    try:
        items = client.list_all(object_path(api_version, "kubevirts"))[0]
    except KubeApiError as err:
        if err.status == 403:
            raise ModuleFailure("cannot read the KubeVirt CR to learn the cluster's evictionStrategy: %s"
                                % (err.message or err))
        raise
    live = [kv for kv in items if not nm.meta(kv).get("deletionTimestamp")]
    return live[0] if live else None


def read_vmis(client, api_version, node_names):
    """The VMIs on the nodes, by KubeVirt's kubevirt.io/nodeName label, checked against status.nodeName."""
    selector = "kubevirt.io/nodeName in (%s)" % ",".join(sorted(node_names))
    items = client.list_all(object_path(api_version, "virtualmachineinstances"), {"labelSelector": selector})[0]
    return [vmi for vmi in items if nm.status(vmi).get("nodeName") in node_names]


def terminating_namespaces(client, namespaces):
    """The namespaces being deleted: their VMIs go with them, and the apiserver refuses new objects in them."""
    found = set()
    for namespace in sorted(namespaces):
        ns = client.get_or_none(object_path("v1", "namespaces", namespace))
        if ns is None or nm.meta(ns).get("deletionTimestamp") or nm.status(ns).get("phase") == "Terminating":
            found.add(namespace)
    return found


def read_migrations(client, api_version, namespaces):
    found = []
    for namespace in sorted(namespaces):
        found += client.list_all(object_path(api_version, migration_plan.PLURAL, namespace=namespace))[0]
    return found


class NodePlan(object):
    def __init__(self, node):
        self.node = node
        self.name = nm.meta(node).get("name")
        self.was_cordoned = nm.is_cordoned(node)
        self.vmis = []  # VmiPlans
        self.written = False

    def by_action(self, *actions):
        return [p for p in self.vmis if p.action in actions]


def plan_evacuation(client, api_version, params, all_nodes):
    """The plan of every node, and the migrations of the namespaces its VMIs are in (read once, for both)."""
    names = list(params["nodes"])
    by_name = {nm.meta(n)["name"]: n for n in all_nodes}
    cluster_strategy = nm.cluster_eviction_strategy(read_kubevirt_cr(client, api_version))
    vmis = read_vmis(client, api_version, set(names))
    namespaces = {nm.meta(v)["namespace"] for v in vmis}
    migrations = read_migrations(client, api_version, namespaces)
    terminating = terminating_namespaces(client, namespaces)
    plans = []
    for name in names:
        plan = NodePlan(by_name[name])
        plan.vmis = nm.plan_node(name, vmis, migrations, all_nodes, set(names), cluster_strategy, terminating)
        plans.append(plan)
    unmovable = [p for plan in plans for p in plan.by_action("unmovable")]
    policy = params.get("unmovable") or "fail"
    if unmovable and policy == "fail":
        raise batch_failure(REFUSED, ["VM %s on %s: %s" % (p.label, p.node, p.reason) for p in unmovable],
                            changed=False, unmovable=[nm.unmovable_summary(p) for p in unmovable])
    if policy == "stop":
        for plan in unmovable:
            plan.action = "stop"
    return plans, migrations


def evacuation_changed(plans):
    return any(not plan.was_cordoned or plan.by_action("migrate", "stop") for plan in plans)


def evacuation_diff(plan):
    header = "Node %s" % plan.name
    before = {"unschedulable": plan.was_cordoned, "vms": {p.label: plan.name for p in plan.vmis}}
    after_vms = {}
    for p in plan.vmis:
        if p.action in ("migrate", "adopt"):
            after_vms[p.label] = "another node (live migration)"
        elif p.action == "stop":
            after_vms[p.label] = "stopped"
        else:
            after_vms[p.label] = "%s (unmovable: %s)" % (plan.name, p.reason)
    return {"before_header": header, "after_header": header, "before": before,
            "after": {"unschedulable": True, "vms": after_vms}}


# -- acting --------------------------------------------------------------------------------------------

def set_unschedulable(client, name, unschedulable):
    """kubectl cordon / uncordon: spec.unschedulable true, or removed (its false default)."""
    client.merge_patch(object_path("v1", "nodes", name), {"spec": {"unschedulable": True if unschedulable else None}})


def migration_path(api_version, namespace, name=None):
    return object_path(api_version, migration_plan.PLURAL, name, namespace)


def migration_requests(plans, migrations, all_nodes, api_version, run_id):
    """The migration module's request for every VMI to move, planned by its preflight (migration_plan.plan_request):
    the VMIM it creates is the one the migration module would create, labelled with the node it empties."""
    by_vmi = {}
    for migration in migrations:
        by_vmi.setdefault((nm.meta(migration).get("namespace"), (migration.get("spec") or {}).get("vmiName")),
                          []).append(migration)
    params = {"api_version": api_version, "migration_id": run_id}
    requests, problems = [], []
    for plan in plans:
        for vmi_plan in plan.by_action("migrate", "adopt"):
            request = migration_plan.MigrationRequest(vmi_plan.name, vmi_plan.namespace, origin="vms")
            request.vmi = vmi_plan.vmi
            request.source_node = plan.name
            if vmi_plan.action == "adopt":
                request.action, request.existing = "adopted", vmi_plan.migration
            else:
                problems += migration_plan.plan_request(request, by_vmi.get(vmi_plan.key, []), all_nodes, params)
                if request.migration is not None:
                    nm.mark_evacuation(request.migration, plan.name)
            vmi_plan.request = request
            requests.append(request)
    if problems:
        raise batch_failure(REFUSED, problems, changed=False)
    return requests


class Evacuation(object):
    """The writes of one run and what they led to, for the result (also of a failed run)."""

    def __init__(self, client, api_version, params, plans):
        self.client, self.api_version, self.params, self.plans = client, api_version, params, plans
        self.results = {}  # VMI key -> migration_plan.migration_result once final
        self.requests = []
        self.stopped = {}  # VMI key -> how it was stopped
        self.failures = []  # every migration that could not be created or failed, in KubeVirt's words
        self.failed = set()  # the keys of their VMIs

    @property
    def written(self):
        return any(plan.written for plan in self.plans) or any(r.written for r in self.requests) \
            or bool(self.stopped)

    def cordon(self):
        todo = [plan for plan in self.plans if not plan.was_cordoned]
        outcomes = run_concurrently(lambda plan: set_unschedulable(self.client, plan.name, True), todo,
                                    self.params["concurrency"])
        errors = []
        for plan, outcome in zip(todo, outcomes):
            if isinstance(outcome, Exception):
                errors.append("node %s: cordon: %s" % (plan.name, outcome.message if isinstance(
                    outcome, KubeApiError) else outcome))
            else:
                plan.written = True
        if errors:
            raise ModuleFailure("; ".join(errors), errors)

    def migrate(self, requests, deadline):
        """The migrations in waves of at most `concurrency` in flight, each created and followed by the migration
        module's own create and shared wait. A wave with failures does not stop the next ones: every failure is
        kept (`failures`, the VMIs in `failed`) and reported once all waves ran."""
        window = self.params["concurrency"]
        ordered = [r for r in requests if r.action == "adopted"] + [r for r in requests if r.action == "created"]
        self.requests += ordered
        for start in range(0, len(ordered), window):
            wave = ordered[start:start + window]
            errors = migration_runner.create_migrations(self.client, wave, self.api_version, window)
            self.failures += errors
            followed = [r for r in wave if r.final is not None or r.existing is not None]
            self.failed.update(r.ident for r in wave if r not in followed)
            if not followed:
                continue
            try:
                migration_runner.wait_migrations(self.client, followed, self.api_version,
                                                 max(0.0, deadline - time.monotonic()))
            except WaitTimeout:
                raise self.timeout(followed)
            migration_runner.refresh_vmis(self.client, followed, self.api_version, window)
            failed = [r for r in followed if migration_plan.phase_of(r.final) == "Failed"]
            events = migration_runner.read_events(self.client, {r.namespace for r in failed}, window) if failed \
                else {}
            for request in followed:
                uid = nm.meta(request.final).get("uid")
                self.results[request.ident] = migration_plan.migration_result(request, events=events.get(uid))
            self.failures += migration_runner.migration_failures(followed, [self.results[r.ident] for r in followed])
            self.failed.update(r.ident for r in failed)

    def timeout(self, wave):
        """The timeout of a wave, naming each VM still migrating with its migration's phase as last read."""
        pending = []
        for request in wave:
            name = nm.meta(request.final or request.existing or request.migration).get("name")
            vmim = self.client.get_or_none(migration_path(self.api_version, request.namespace, name))
            if vmim is not None and migration_plan.is_final(vmim):
                continue
            pending.append("VM %s on %s (migration %s: %s)" % (request.label, request.source_node, name,
                                                               migration_runner.describe_migration(vmim)))
        queued = [r.label for r in self.requests if r.ident not in self.results and r not in wave]
        message = "timed out after %ss waiting for the nodes to be emptied; still migrating: %s" % (
            self.params["wait_timeout"], "; ".join(pending) or "none")
        if queued:
            message += "; not started yet: %s" % ", ".join(queued)
        if self.failures:
            message += "; failed before: %s" % joined_errors(self.failures)
        return ModuleFailure(message, pending + self.failures)

    def stop(self, vmi_plans, subresource_version):
        def stop_one(plan):
            if plan.vm_owned:
                try:
                    self.client.request("PUT", object_path(subresource_version, "virtualmachines", plan.name,
                                                           plan.namespace, subresource="stop"), body={})
                except KubeApiError as err:
                    if not (err.status == 409 and ALREADY_STOPPED in (err.message or "")):
                        raise
                self.stopped[plan.key] = "stopped through the VM's stop subresource"
            else:
                # A VMI without a VM has no stop subresource: deleting it is its stop.
                self.client.delete(object_path(self.api_version, "virtualmachineinstances", plan.name, plan.namespace))
                self.stopped[plan.key] = "deleted (a VMI without a VM)"

        outcomes = run_concurrently(stop_one, vmi_plans, self.params["concurrency"])
        errors = ["VM %s: stop: %s" % (p.label, o.message if isinstance(o, KubeApiError) else o)
                  for p, o in zip(vmi_plans, outcomes) if isinstance(o, Exception)]
        if errors:
            raise ModuleFailure("; ".join(errors), errors)


def describe_vmi(vmi):
    if vmi is None:
        return "gone"
    status = nm.status(vmi)
    migration = status.get("migrationState") or {}
    moving = migration.get("targetNode") and not migration.get("completed") and not migration.get("failed")
    return "phase %s on %s%s" % (status.get("phase") or "<none>", status.get("nodeName"),
                                 ", migrating to %s" % migration["targetNode"] if moving else "")


def wait_nodes_left(client, api_version, plans, timeout, failed=()):
    """One watch until every moved or stopped VMI is off its node (not those whose migration failed: KubeVirt
    keeps them on their node); the timeout names each with its phase."""
    targets = []
    for plan in plans:
        for vmi_plan in plan.by_action("migrate", "adopt", "stop", "leaving"):
            if vmi_plan.key in failed:
                continue
            targets.append(WaitTarget(vmi_plan.namespace, vmi_plan.name,
                                      lambda vmi, node=plan.name: vmi is None or not nm.vmi_on_node(vmi, node),
                                      "VM %s off node %s" % (vmi_plan.label, plan.name), describe_vmi))
    try:
        wait_for(client, api_version, "virtualmachineinstances", targets, timeout)
    except WaitTimeout as err:
        raise ModuleFailure("timed out waiting for the nodes to be emptied: %s" % err, [str(err)])


# -- results ---------------------------------------------------------------------------------------------

def node_result(plan, evacuation, remaining, check_mode):
    results = evacuation.results if evacuation else {}
    migrated = []
    for vmi_plan in plan.by_action("migrate", "adopt"):
        request = vmi_plan.request
        if vmi_plan.key in results:
            migrated.append(results[vmi_plan.key])
        elif request is not None and check_mode:
            migrated.append(migration_plan.migration_result(request))
    stopped = [{"vm": p.name, "namespace": p.namespace, "reason": p.reason,
                "how": (evacuation.stopped.get(p.key) if evacuation else None) or "planned"}
               for p in plan.by_action("stop")]
    if evacuation:
        stopped = [entry for entry in stopped if entry["how"] != "planned"]
    if check_mode:
        # What the run would leave: the VMIs it may not move.
        remaining = [p.vmi for p in plan.by_action("unmovable")]
    reasons = {p.key: p.reason for p in plan.vmis}
    left = [{"vm": nm.meta(v).get("name"), "namespace": nm.meta(v).get("namespace"),
             "phase": nm.status(v).get("phase"), "reason": reasons.get(nm.vmi_key(v))}
            for v in remaining if nm.vmi_on_node(v, plan.name)]
    return {
        "node": plan.name,
        "cordoned": True if check_mode else bool(plan.was_cordoned or plan.written),
        "was_cordoned": plan.was_cordoned,
        "migrated": migrated,
        "unmovable": [nm.unmovable_summary(p) for p in plan.by_action("unmovable")],
        "stopped": stopped,
        "leaving": [{"vm": p.name, "namespace": p.namespace, "reason": p.reason} for p in plan.by_action("leaving")],
        "remaining": left,
        "empty": not left,
    }


def uncordon(module, client, params, all_nodes):
    by_name = {nm.meta(n)["name"]: n for n in all_nodes}
    names = list(params["nodes"])
    todo = [name for name in names if nm.is_cordoned(by_name[name])]
    result = {"changed": bool(todo), "state": "uncordoned"}
    if module._diff:
        result["diff"] = [{"before_header": "Node %s" % name, "after_header": "Node %s" % name,
                           "before": {"unschedulable": True}, "after": {"unschedulable": False}} for name in todo]
    written = set()
    if not module.check_mode and todo:
        outcomes = run_concurrently(lambda name: set_unschedulable(client, name, False), todo, params["concurrency"])
        errors = []
        for name, outcome in zip(todo, outcomes):
            if isinstance(outcome, Exception):
                errors.append("node %s: uncordon: %s" % (name, outcome.message if isinstance(
                    outcome, KubeApiError) else outcome))
            else:
                written.add(name)
        result["changed"] = bool(written)
        if errors:
            raise ModuleFailure("; ".join(errors), errors, changed=bool(written),
                                nodes=[{"node": n, "was_cordoned": n in todo, "cordoned": n in todo and n not in written}
                                       for n in names])
    result["nodes"] = [{"node": name, "was_cordoned": name in todo, "cordoned": False} for name in names]
    module.exit_json(**result)


def evacuate_round(client, api_version, params, all_nodes, run_id):
    """Reads and plans the nodes' VMIs, and the migrations that move them (nothing written)."""
    plans, migrations = plan_evacuation(client, api_version, params, all_nodes)
    requests = migration_requests(plans, migrations, all_nodes, api_version, run_id)
    migration_runner.dry_run_creates(client, requests, api_version, params["concurrency"])
    return plans, requests


def carry_over(previous, plans):
    """What earlier rounds did stays in the plans the result is built from."""
    if previous is None:
        return plans
    for old, new in zip(previous, plans):
        new.was_cordoned, new.written = old.was_cordoned, old.written or new.written
        keys = {p.key for p in new.vmis}
        new.vmis = [p for p in old.vmis if p.key not in keys and p.action != "unmovable"] + new.vmis
    return plans


def run(module):
    params = dict(module.params)
    errors = input_errors(params)
    if errors:
        raise batch_failure(INVALID_INPUT, errors)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    api_version = preferred_version(client, "kubevirt.io", params.get("api_version"))
    params["api_version"] = api_version
    all_nodes = client.list_all(object_path("v1", "nodes"))[0]
    check_nodes_exist(params["nodes"], all_nodes)
    if params["state"] == "uncordoned":
        return uncordon(module, client, params, all_nodes)
    run_id = "evacuate-%d" % int(time.time() * 1000)
    plans, requests = evacuate_round(client, api_version, params, all_nodes, run_id)
    result = {"changed": evacuation_changed(plans), "state": "evacuated", "api_version": api_version}
    if module._diff:
        result["diff"] = [evacuation_diff(plan) for plan in plans if evacuation_changed([plan])]
    if module.check_mode:
        module.exit_json(nodes=[node_result(plan, None, [], True) for plan in plans], **result)
    deadline = time.monotonic() + params["wait_timeout"]
    evacuation = Evacuation(client, api_version, params, plans)
    subresources = None
    moving, handled = [], set()
    try:
        for _round in range(ROUNDS):
            evacuation.plans = plans
            evacuation.cordon()
            evacuation.migrate(requests, deadline)
            stopping = [p for plan in plans for p in plan.by_action("stop")]
            if stopping:
                subresources = subresources or preferred_version(client, "subresources.kubevirt.io")
                evacuation.stop(stopping, subresources)
            wait_nodes_left(client, api_version, plans, max(0.0, deadline - time.monotonic()), evacuation.failed)
            if evacuation.failures:
                break
            # VMs whose migration onto a node started before it was cordoned arrive afterwards: another round.
            again, requests = evacuate_round(client, api_version, params, all_nodes, run_id)
            for plan in again:
                plan.was_cordoned = True
            moving = [p for plan in again for p in plan.by_action("migrate", "adopt", "stop")]
            handled = {p.key for plan in plans for p in plan.by_action("migrate", "adopt", "stop")}
            plans = carry_over(plans, again)
            if not moving:
                break
        else:
            raise ModuleFailure(*rounds_exhausted(moving, handled))
        remaining = read_vmis(client, api_version, set(params["nodes"]))
        if evacuation.failures:
            raise ModuleFailure(*failed_migrations(evacuation.failures, remaining, params["nodes"]))
    except ModuleFailure as err:
        try:
            remaining = read_vmis(client, api_version, set(params["nodes"]))
        except ModuleFailure:
            remaining = [p.vmi for plan in plans for p in plan.vmis]  # the last known state
        changed = evacuation.written or err.result.get("changed", False)
        raise ModuleFailure(str(err), err.errors, **dict(
            err.result, changed=changed, nodes=[node_result(p, evacuation, remaining, False) for p in plans]))
    result["changed"] = evacuation.written
    result["nodes"] = [node_result(plan, evacuation, remaining, False) for plan in plans]
    actions = {p.key: p.action for plan in plans for p in plan.vmis}
    kept, other = [], []
    for node in result["nodes"]:
        for entry in node["remaining"]:
            where = "%s/%s on %s" % (entry["namespace"], entry["vm"], node["node"])
            if actions.get((entry["namespace"], entry["vm"])) == "unmovable":
                kept.append(where)
            else:
                other.append("%s (phase %s%s)" % (where, entry["phase"], ", " + entry["reason"] if entry["reason"] else ""))
    if kept:
        module.warn("%d VM%s left on the nodes as asked (unmovable: report): %s" % (
            len(kept), "s" if len(kept) > 1 else "", ", ".join(kept)))
    if other:
        module.warn("%d VM instance%s still on the nodes: %s" % (
            len(other), "s" if len(other) > 1 else "", ", ".join(other)))
    module.exit_json(**result)


def still_on_nodes(remaining, node_names):
    return ["VM %s/%s: %s" % (nm.meta(v).get("namespace"), nm.meta(v).get("name"), describe_vmi(v))
            for v in sorted(remaining, key=nm.vmi_key)
            if any(nm.vmi_on_node(v, name) for name in node_names)]


def failed_migrations(failures, remaining, node_names):
    """(message, errors) when migrations failed: every failure, then every VM instance the nodes still hold."""
    left = still_on_nodes(remaining, node_names)
    message = "%d migration%s failed (every other one ran): %s" % (
        len(failures), "s" if len(failures) > 1 else "", joined_errors(failures))
    message += "; still on the nodes: %s" % (joined_errors(left) if left else "none")
    return message, failures + ["still on the nodes: " + entry for entry in left]


def rounds_exhausted(moving, handled):
    """(message, errors) when the nodes still hold VMs to move after every round: VMs keep arriving on them."""
    errors = []
    for plan in moving:
        if plan.action == "adopt":
            why = "a migration started elsewhere is running for it (%s)" % nm.meta(plan.migration).get("name")
        elif plan.action == "stop":
            why = "arrived on the node and cannot move, it still needs stopping"
        elif plan.key in handled:
            why = "moved or stopped in an earlier round, it is on the node again"
        else:
            why = "arrived on the node after it was cordoned (a migration to it that started before the cordon, or " \
                  "an instance placed on it by name)"
        errors.append("VM %s on %s: %s" % (plan.label, plan.node, why))
    message = "after %d rounds the nodes still hold VMs to move, as VMs keep arriving on them: %s" % (
        ROUNDS, joined_errors(errors))
    return message, errors
