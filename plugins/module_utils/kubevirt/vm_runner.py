# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm, end to end: validate every VM, plan the whole batch, then apply, power and wait.

Nothing is written until every VM has passed both our own checks and the apiserver's dry run; check
mode returns the plan itself. Writes, deletions and power verbs run concurrently (bounded), and one
shared watch waits for all the VMs at the end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.kube import apply as kube_apply

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import power as kubevirt_power
from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.outcomes import raise_failures
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject, comparable
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import DiscoveryError, preferred_version, serves
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import PowerConflict
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    MANAGED_BY, MANAGED_BY_LABEL, VmInputError, build_vm, instantiate_template, vm_label)
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_options import INVALID_INPUT, vm_requests
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors

PRESENT_STATES = ("present",) + kubevirt_power.POWER_STATES


def batch_failure(prefix, errors):
    """A failure listing every problem of the batch in `errors`, the first few of them in the message."""
    return ModuleFailure(prefix + joined_errors(errors), errors)


class VmPlan(object):
    """Everything decided for one declared VM."""

    def __init__(self, request):
        self.request = request
        self.state = request["state"]
        self.namespace, self.name = request.get("namespace"), request.get("name")
        self.label = vm_label(request)
        self.base_spec = None  # the VM spec of its VmTemplate, when it names one
        self.desired = None
        self.apply = None  # PlannedObject
        self.live = None
        self.vmi = None
        self.migrate_running = None  # the runStrategy that replaces a deprecated spec.running
        self.delete = False
        self.verb = None
        self.pause_when_running = False
        self.strategy = None
        self.written = False  # whether anything of this VM was written: reported when a later step fails

    @property
    def key(self):
        return (self.namespace, self.name)


# -- validation (no network) -----------------------------------------------------------------------

def validate_requests(requests):
    plans, errors, seen = [], [], set()
    for request in requests:
        plan = VmPlan(request)
        try:
            if not request.get("name") or not request.get("namespace"):
                raise VmInputError(plan.label, "name" if not request.get("name") else "namespace", "is required")
            if plan.key in seen:
                raise VmInputError(plan.label, "name", "is declared more than once in this task")
            seen.add(plan.key)
            if plan.state in PRESENT_STATES:
                kubevirt_power.check_power_options(plan.state, request.get("run_strategy"))
                if not request.get("template"):
                    # Only to check the options now; the VM is built once the cluster's state is known
                    # (templated VMs are checked once their template is read).
                    build_vm(request)
        except VmInputError as err:
            errors.append(str(err))
        except PowerConflict as err:
            errors.append("VM %s: state: %s" % (plan.label, err))
        plans.append(plan)
    if errors:
        raise batch_failure(INVALID_INPUT, errors)
    return plans


# -- reading the cluster ------------------------------------------------------------------------------

def connect(module):
    return KubeClient(module_connection(module), concurrency=module.params["concurrency"])


def _list_namespace(client, api_version, namespace):
    vms = client.list_all(object_path(api_version, "virtualmachines", namespace=namespace))[0]
    vmis = client.list_all(object_path(api_version, "virtualmachineinstances", namespace=namespace))[0]
    return namespace, vms, vmis


def check_namespaces(client, plans, concurrency):
    """A namespace that does not exist is one error for all its VMs, before any dry run."""
    namespaces = sorted({plan.namespace for plan in plans if plan.state != "absent"})
    found = run_concurrently(lambda ns: client.get_or_none(object_path("v1", "namespaces", ns)),
                             namespaces, concurrency)
    errors = []
    for namespace, outcome in zip(namespaces, found):
        if isinstance(outcome, KubeApiError) and outcome.status == 403:
            continue  # may not read namespaces: the dry run will tell
        if isinstance(outcome, Exception):
            raise outcome
        if outcome is None:
            names = [plan.name for plan in plans if plan.namespace == namespace]
            errors.append("namespace: %r does not exist (VM%s %s)" % (
                namespace, "s" if len(names) > 1 else "", ", ".join(names[:5]) + (" ..." if len(names) > 5 else "")))
    if errors:
        raise batch_failure(INVALID_INPUT, errors)


def read_live(client, api_version, namespaces, concurrency):
    """The VMs and VMIs of every namespace involved: one list each, concurrently."""
    vms, vmis = {}, {}
    outcomes = run_concurrently(lambda ns: _list_namespace(client, api_version, ns),
                                sorted(namespaces), concurrency)
    for namespace, outcome in zip(sorted(namespaces), outcomes):
        if isinstance(outcome, KubeApiError) and outcome.status == 404:
            continue  # the namespace does not exist yet; the dry run will say so per VM
        if isinstance(outcome, Exception):
            raise outcome
        ns_vms, ns_vmis = outcome[1:]
        vms.update({(namespace, vm["metadata"]["name"]): vm for vm in ns_vms})
        vmis.update({(namespace, vmi["metadata"]["name"]): vmi for vmi in ns_vmis})
    return vms, vmis


# -- planning ------------------------------------------------------------------------------------------

def resolve_run_strategy(request, state, live):
    """Declared, else kept from the live VM (so apply never drops it), else the default for the state."""
    if request.get("run_strategy"):
        return request["run_strategy"]
    if live is not None:
        return kubevirt_power.effective_run_strategy(live)
    return kubevirt_power.default_run_strategy(state)


def plan_vm(plan, api_version):
    """The VM's run strategy and its object, built once what is live is known."""
    plan.strategy = resolve_run_strategy(plan.request, plan.state, plan.live)
    if "running" in ((plan.live or {}).get("spec") or {}):
        # spec.running is deprecated and may not stand beside runStrategy: it is migrated away.
        plan.migrate_running = plan.strategy
    plan.desired = build_vm(plan.request, api_version, plan.strategy, plan.base_spec)


def plan_batch(client, plans, params, live_vms, live_vmis, api_version):
    for plan in plans:
        plan.live, plan.vmi = live_vms.get(plan.key), live_vmis.get(plan.key)
        if plan.state == "absent":
            plan.delete = plan.live is not None
            continue
        plan_vm(plan, api_version)
        path = object_path(api_version, "virtualmachines", plan.name, plan.namespace)
        plan.apply = PlannedObject(plan.label, path, plan.desired, plan.live)
        if plan.migrate_running:
            plan.apply.removed_first = {"spec": {"running": None}}
    applying = [plan.apply for plan in plans if plan.apply]
    kube_apply.plan_apply(client, applying, params["field_manager"], params["force_conflicts"], params["concurrency"])
    errors = ["VM %s: %s" % (item.label, item.error) for item in applying if item.error]
    if errors:
        raise batch_failure("the apiserver rejected the batch in a dry run, nothing was changed: ", errors)
    for plan in plans:
        if plan.state in kubevirt_power.POWER_STATES:
            plan.verb, plan.pause_when_running = kubevirt_power.plan_power(plan.state, plan.strategy, plan.vmi)
    return plans


def build_templated(client, plans, concurrency):
    """Reads each VmTemplate the batch names (once) and builds the VMs on top of them."""
    templated = [p for p in plans if p.state in PRESENT_STATES and p.request.get("template")]
    if not templated:
        return
    try:
        version = preferred_version(client, "spectrocloud.com")
    except DiscoveryError:
        raise ModuleFailure("; ".join("VM %s: template: the cluster serves no VmTemplate kind (is the VMO pack "
                                      "installed?)" % p.label for p in templated))
    names = sorted({p.request["template"] for p in templated})
    fetched = run_concurrently(
        lambda name: client.get_or_none(object_path(version, "vmtemplates", name)), names, concurrency)
    templates = dict(zip(names, fetched))
    errors = []
    for plan in templated:
        template = templates[plan.request["template"]]
        try:
            if isinstance(template, Exception):
                raise template
            if template is None:
                raise VmInputError(plan.label, "template", "VmTemplate %r not found (known: %s)" % (
                    plan.request["template"], ", ".join(_template_names(client, version)) or "none"))
            plan.base_spec = instantiate_template(template, plan.name)
            build_vm(plan.request, base_spec=plan.base_spec)  # only to check the options against it
        except VmInputError as err:
            errors.append(str(err))
    if errors:
        raise batch_failure(INVALID_INPUT, errors)


def _template_names(client, version):
    items = client.list_all(object_path(version, "vmtemplates"))[0]
    return sorted(item["metadata"]["name"] for item in items)


def check_networks(client, plans, concurrency):
    """Every Multus network a typed NIC names must exist as a NetworkAttachmentDefinition."""
    wanted = {}
    for plan in plans:
        for nic in plan.request.get("nics") or []:
            network = nic.get("network") or "pod"
            if network != "pod":
                namespace, _slash, name = network.rpartition("/")
                wanted.setdefault((namespace or plan.namespace, name), []).append((plan, nic["name"], network))
    keys = sorted(wanted)

    def exists(key):
        path = object_path("k8s.cni.cncf.io/v1", "network-attachment-definitions", key[1], key[0])
        return client.get_or_none(path) is not None

    errors = []
    for key, found in zip(keys, run_concurrently(exists, keys, concurrency)):
        if found is not True:
            for plan, nic, network in wanted[key]:
                errors.append("VM %s: nics[%s].network: unknown network %r (no NetworkAttachmentDefinition %s/%s)"
                              % (plan.label, nic, network, key[0], key[1]))
    if errors:
        raise batch_failure(INVALID_INPUT, errors)


def plan_exclusive(plans, live_vms, namespaces):
    """Managed VMs in the task's namespaces that the task does not declare: to be deleted."""
    declared = {plan.key for plan in plans}
    extra = []
    for key, vm in sorted(live_vms.items()):
        labels = (vm.get("metadata") or {}).get("labels") or {}
        if key[0] in namespaces and key not in declared and labels.get(MANAGED_BY_LABEL) == MANAGED_BY:
            plan = VmPlan({"name": key[1], "namespace": key[0], "state": "absent"})
            plan.live, plan.delete = vm, True
            extra.append(plan)
    return extra


def plan_changed(plan):
    return bool(plan.delete or plan.verb or plan.pause_when_running or plan.migrate_running
                or (plan.apply and plan.apply.action in ("create", "update")))


def plan_diff(plan):
    before = comparable(plan.live)
    after = None if plan.delete else comparable(plan.apply.after if plan.apply else plan.live)
    return {"before_header": "VirtualMachine %s" % plan.label, "after_header": "VirtualMachine %s" % plan.label,
            "before": before or {}, "after": after or {}}


# -- acting --------------------------------------------------------------------------------------------

def _migrate_running(client, plan):
    path = object_path(plan.desired["apiVersion"], "virtualmachines", plan.name, plan.namespace)
    client.merge_patch(path, {"spec": {"running": None, "runStrategy": plan.migrate_running}})
    # The migration changed the object; apply it against the new state.
    plan.apply.before = client.get(path)


# virt-api's 409 when a verb finds the VM already where the verb would take it (pkg/virt-api/rest/subresource.go):
# another run (or a person) got there first, which is the state this run declares, so it is not a failure.
ALREADY_THERE = {"start": "VM is already running", "stop": "VM is not running", "pause": "VMI is already paused",
                 "unpause": "VMI is not paused"}


def _power(client, plan, verb, subresource_version):
    plural = "virtualmachineinstances" if verb in ("pause", "unpause") else "virtualmachines"
    try:
        client.request("PUT", object_path(subresource_version, plural, plan.name, plan.namespace, subresource=verb),
                       body={})
    except KubeApiError as err:
        if not (err.status == 409 and verb in ALREADY_THERE and ALREADY_THERE[verb] in (err.message or "")):
            raise


def _step_error(what):
    """How a failed step of one VM is reported: the apiserver's own words when it refused."""
    def describe(plan, err):
        reason = kube_apply.describe_api_error(err) if isinstance(err, KubeApiError) else err
        return "VM %s: %s: %s" % (plan.label, what, reason)
    return describe


def _power_error(what, verb_of):
    """A refused power verb is named with the apiserver's message; anything else as a failed step."""
    def describe(plan, err):
        if isinstance(err, KubeApiError):
            return "VM %s: %s failed: %s" % (plan.label, verb_of(plan), err.message or err)
        return _step_error(what)(plan, err)
    return describe


def run_step(step, plans, concurrency, describe):
    """step(plan) for every plan, concurrently; marks the plans it wrote, then fails naming every failure."""
    outcomes = run_concurrently(step, plans, concurrency)
    for plan, outcome in zip(plans, outcomes):
        plan.written = plan.written or not isinstance(outcome, Exception)
    raise_failures(plans, outcomes, describe)


def execute(client, plans, params, subresource_version):
    concurrency = params["concurrency"]
    migrations = [p for p in plans if p.migrate_running]
    run_step(lambda p: _migrate_running(client, p), migrations, concurrency,
             _step_error("migrating spec.running to runStrategy"))
    applying = [p for p in plans if p.apply]
    failed = kube_apply.apply_planned(client, [p.apply for p in applying], params["field_manager"],
                                      params["force_conflicts"], concurrency)
    for plan in applying:
        plan.written = plan.written or plan.apply.result is not None
    if failed:
        raise ModuleFailure("; ".join("VM %s: %s" % (item.label, item.error) for item in failed))
    deleting = [p for p in plans if p.delete]
    run_step(lambda p: client.delete(object_path(p.live["apiVersion"], "virtualmachines", p.name, p.namespace),
                                     propagation_policy=params["propagation_policy"]),
             deleting, concurrency, _step_error("delete"))
    powering = [p for p in plans if p.verb]
    run_step(lambda p: _power(client, p, p.verb, subresource_version), powering, concurrency,
             _power_error("power", lambda p: p.verb))
    pausing = [p for p in plans if p.pause_when_running]
    if pausing:
        wait_vms(client, pausing, params, expectation="ready")
        run_step(lambda p: _power(client, p, "pause", subresource_version), pausing, concurrency,
                 _power_error("pause", lambda p: "pause"))


def field_value(obj, path):
    """The value at a dotted path with optional list indexes (`status.interfaces[0].ipAddress`), or None.

    A leading `.` and JSONPath braces (`{.status.ready}`) are accepted as kubectl writes them.
    """
    current = obj
    for part in path.strip().strip("{}").lstrip(".").replace("]", "").split("."):
        name, _bracket, index = part.partition("[")
        if name:
            current = current.get(name) if isinstance(current, dict) else None
        if index:
            try:
                current = current[int(index)] if isinstance(current, list) else None
            except (IndexError, ValueError):
                current = None
        if current is None:
            return None
    return current


def _wait_target(plan, params, expectation=None):
    if plan.state == "absent":
        return WaitTarget(plan.namespace, plan.name, lambda vm: vm is None, "deletion", kubevirt_power.describe_vm)
    field = params.get("wait_field")
    if field and expectation is None:
        def has_value(vm):
            value = field_value(vm or {}, field["path"])
            return value is not None and (field.get("value") is None or str(value).lower() == str(field["value"]).lower())
        wanted = "%s=%s" % (field["path"], field.get("value") if field.get("value") is not None else "<any>")
        return WaitTarget(plan.namespace, plan.name, has_value, wanted,
                          lambda vm: "%s; %s=%s" % (kubevirt_power.describe_vm(vm), field["path"],
                                                    field_value(vm or {}, field["path"])))
    condition = params.get("wait_condition")
    if condition and expectation is None:
        def has_condition(vm):
            for cond in ((vm or {}).get("status") or {}).get("conditions") or []:
                if cond.get("type") == condition["type"] and cond.get("status") == condition.get("status", "True") \
                        and (not condition.get("reason") or cond.get("reason") == condition["reason"]):
                    return True
            return False
        return WaitTarget(plan.namespace, plan.name, has_condition, "condition %s" % condition,
                          kubevirt_power.describe_vm)
    expectation = expectation or kubevirt_power.expected_state(plan.state, plan.strategy)
    return WaitTarget(plan.namespace, plan.name, lambda vm: kubevirt_power.vm_matches(vm, expectation),
                      expectation or "existence", kubevirt_power.describe_vm)


def wait_vms(client, plans, params, expectation=None):
    targets = [_wait_target(plan, params, expectation) for plan in plans]
    api_version = next((p.desired["apiVersion"] for p in plans if p.desired), "kubevirt.io/v1")
    return wait_for(client, api_version, "virtualmachines", targets, params["wait_timeout"])


# -- results -------------------------------------------------------------------------------------------

def _action(plan):
    if plan.delete:
        return "deleted"
    if plan.state == "absent":
        return "absent"
    return {"create": "created", "update": "updated"}.get(plan.apply.action, "unchanged")


def vm_result(plan, vm, vmi):
    status = (vm or {}).get("status") or {}
    vmi_status = (vmi or {}).get("status") or {}
    addresses = [i.get("ipAddress") for i in vmi_status.get("interfaces") or [] if i.get("ipAddress")]
    return {
        "name": plan.name, "namespace": plan.namespace, "action": _action(plan), "power": plan.verb,
        "run_strategy": plan.strategy, "printable_status": status.get("printableStatus"),
        "ready": bool(status.get("ready")), "node": vmi_status.get("nodeName"),
        "ip_address": addresses[0] if addresses else None, "ip_addresses": addresses,
    }


def _last_known(plan):
    """The freshest copy of the VM this run has without asking again."""
    if plan.apply:
        return plan.apply.result or plan.apply.after or plan.live
    return plan.live


def failure_after_writes(err, plans):
    """`err` with `changed: true` and the VMs written so far, when anything was written before it."""
    written = [plan for plan in plans if plan.written]
    if not written:
        return err
    result = dict(err.result, changed=True, vms=[vm_result(plan, _last_known(plan), plan.vmi) for plan in written])
    return ModuleFailure(str(err), err.errors, **result)


def run(module):
    params = module.params
    bounds = bound_errors(params)
    if bounds:
        raise batch_failure(INVALID_INPUT, bounds)
    plans = validate_requests(vm_requests(params))
    client = connect(module)
    if all(plan.state == "absent" for plan in plans) and not params["exclusive"] \
            and not serves(client, "kubevirt.io"):
        # Without KubeVirt's API no VM can exist: every one is already absent (a teardown run again after
        # KubeVirt itself was removed).
        module.exit_json(changed=False, api_version=None, vms=[vm_result(plan, None, None) for plan in plans])
    api_version = preferred_version(client, "kubevirt.io", params.get("api_version"))
    namespaces = {plan.namespace for plan in plans}
    check_namespaces(client, plans, params["concurrency"])
    build_templated(client, plans, params["concurrency"])
    check_networks(client, plans, params["concurrency"])
    live_vms, live_vmis = read_live(client, api_version, namespaces, params["concurrency"])
    plan_batch(client, plans, params, live_vms, live_vmis, api_version)
    if params["exclusive"]:
        plans += plan_exclusive(plans, live_vms, namespaces)
    changed = any(plan_changed(plan) for plan in plans)
    result = {"changed": changed, "api_version": api_version}
    if module._diff:
        result["diff"] = [plan_diff(plan) for plan in plans if plan_changed(plan)]
    observed, vmis = {}, live_vmis
    try:
        if not module.check_mode and changed:
            subresources = preferred_version(client, "subresources.kubevirt.io")
            execute(client, plans, params, subresources)
        if params["wait"] and not module.check_mode:
            observed = wait_vms(client, plans, params)
            # Addresses and nodes come from the instances, which the wait did not watch.
            vmis = read_live(client, api_version, namespaces, params["concurrency"])[1]
    except ModuleFailure as err:
        raise failure_after_writes(err, plans)
    result["vms"] = [vm_result(plan, observed.get(plan.key) or _last_known(plan), vmis.get(plan.key))
                     for plan in plans]
    module.exit_json(**result)
