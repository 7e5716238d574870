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

import copy
import time

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
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import disk_expand
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import hotplug as kubevirt_hotplug
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import live_update
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import PowerConflict
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    MANAGED_BY, MANAGED_BY_LABEL, VmInputError, build_vm, hotplug_data_volume, instantiate_template, vm_label)
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_options import INVALID_INPUT, vm_requests
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors

PRESENT_STATES = ("present",) + kubevirt_power.POWER_STATES
CDI_API = "cdi.kubevirt.io/v1beta1"


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
        self.nics = kubevirt_hotplug.NicChanges()
        self.volumes = kubevirt_hotplug.VolumeChanges()
        self.hotplug_path = None
        self.data_volumes = []  # PlannedObject of each hotplugged disk's DataVolume still to be made
        self.live_data_volumes = {}  # name -> the hotplugged disks' DataVolumes that exist
        self.expansions = []  # disk_expand.Expansion of each claim to grow
        self.restart_reason = None  # why KubeVirt wants (or would want) a restart of the running VM
        self.restart = False  # restart to apply what KubeVirt cannot apply live (restart_if_required)
        self.restarted = False
        self.live_changes = {}  # sockets/guest memory raised or lowered live on the running instance
        self.live_update = True  # the cluster's vmRolloutStrategy is LiveUpdate (not Stage)

    @property
    def running(self):
        return kubevirt_power.vmi_active(self.vmi)

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
                    kubevirt_hotplug.check_hotplug_claims(plan.label, build_vm(request))
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


def plan_day2(plan, hotplug_path):
    """NIC and volume hotplug of a running VM, adjusting what is applied; raises VmInputError."""
    vmi_spec = (plan.vmi or {}).get("spec") or {}
    running_ifaces = dict((i.get("name"), i) for i in ((vmi_spec.get("domain") or {}).get("devices") or {})
                          .get("interfaces") or [])
    running_nets = dict((n.get("name"), n) for n in vmi_spec.get("networks") or [])
    plan.nics = kubevirt_hotplug.plan_nics(plan.label, plan.desired, plan.live, plan.running, running_ifaces,
                                           running_nets, [n.get("name") for n in plan.request.get("nics") or []])
    plan.hotplug_path = hotplug_path
    plan.volumes = kubevirt_hotplug.plan_volumes(plan.label, plan.desired, plan.live, plan.running, hotplug_path)
    if (plan.volumes.add or plan.volumes.remove) and hotplug_path is None:
        raise VmInputError(plan.label, "disks", "the VM runs and KubeVirt has volume hotplug off (neither the "
                           "DeclarativeHotplugVolumes nor the HotplugVolumes feature gate is on)")


def _hotplug_data_volumes(client, plans, concurrency):
    """A PlannedObject per hotplugged data_volume disk whose DataVolume does not exist yet."""
    wanted = []
    for plan in plans:
        if plan.state == "absent" or plan.desired is None:
            continue
        for disk in plan.request.get("disks") or []:
            if disk.get("hotplug") and disk.get("data_volume"):
                body = hotplug_data_volume(plan.label, disk)
                body.update({"apiVersion": CDI_API, "kind": "DataVolume"})
                body["metadata"].update({"namespace": plan.namespace, "labels": {MANAGED_BY_LABEL: MANAGED_BY}})
                path = object_path(CDI_API, "datavolumes", body["metadata"]["name"], plan.namespace)
                wanted.append((plan, PlannedObject("%s DataVolume %s" % (plan.label, body["metadata"]["name"]),
                                                   path, body, None)))
    found = run_concurrently(lambda item: client.get_or_none(item[1].path), wanted, concurrency)
    for (plan, planned), live in zip(wanted, found):
        if isinstance(live, Exception):
            raise live
        if live is None:
            plan.data_volumes.append(planned)
        else:
            plan.live_data_volumes[planned.desired["metadata"]["name"]] = live


def read_kubevirt_cr(client, api_version):
    """The cluster's KubeVirt CR, or None when this user may not read it."""
    try:
        items = client.list_all(object_path(api_version, "kubevirts"))[0]
    except KubeApiError as err:
        if err.status in (401, 403, 404):
            return None
        raise
    return items[0] if items else None


def plan_batch(client, plans, params, live_vms, live_vmis, api_version, hotplug_path=None, rollout_live=True):
    errors = []
    for plan in plans:
        plan.live, plan.vmi = live_vms.get(plan.key), live_vmis.get(plan.key)
        plan.live_update = rollout_live
        if plan.state == "absent":
            plan.delete = plan.live is not None
            continue
        plan_vm(plan, api_version)
        try:
            plan_day2(plan, hotplug_path)
        except VmInputError as err:
            errors.append(str(err))
        path = object_path(api_version, "virtualmachines", plan.name, plan.namespace)
        plan.apply = PlannedObject(plan.label, path, plan.desired, plan.live)
        if plan.migrate_running:
            plan.apply.removed_first = {"spec": {"running": None}}
    _hotplug_data_volumes(client, plans, params["concurrency"])
    expansions, expansion_errors = disk_expand.plan_expansions(client, plans, params["concurrency"])
    errors.extend(expansion_errors)
    if errors:
        raise batch_failure(INVALID_INPUT, errors)
    for expansion in expansions:
        expansion.plan.expansions.append(expansion)
    applying = [plan.apply for plan in plans if plan.apply]
    data_volumes = [dv for plan in plans for dv in plan.data_volumes]
    kube_apply.plan_apply(client, applying + data_volumes, params["field_manager"], params["force_conflicts"],
                          params["concurrency"])
    errors = ["VM %s: %s" % (item.label, item.error) for item in applying + data_volumes if item.error]
    if errors:
        raise batch_failure("the apiserver rejected the batch in a dry run, nothing was changed: ", errors)
    for plan in plans:
        if plan.state in kubevirt_power.POWER_STATES:
            plan.verb, plan.pause_when_running = kubevirt_power.plan_power(plan.state, plan.strategy, plan.vmi)
        plan_restart(plan)
        for expansion in plan.expansions:
            expansion.wait_node = runs_after(plan)
    check_volume_requests(client, plans, params["concurrency"])
    return plans


def runs_after(plan):
    """Whether the VM runs once this run is done (its pod then mounts its claims)."""
    if plan.verb == "stop":
        return False
    if plan.verb in ("start", "restart") or plan.pause_when_running:
        return True
    expected = kubevirt_power.expected_state(plan.state, plan.strategy)
    if expected in ("ready", "paused"):
        return True
    return plan.running if expected is None else False


def check_volume_requests(client, plans, concurrency):
    """Every addvolume/removevolume of the batch sent as a dry run first (volumes.go getDryRunOption).

    KubeVirt's virt-api checks the request (verifyVolumeOption, the VM status webhook) and writes nothing;
    a refusal fails the batch before any write. dryRun=All also goes in the query, where the apiserver's
    audit log shows it.
    """
    requests = _volume_requests(plans)
    if not requests:
        return
    version = preferred_version(client, "subresources.kubevirt.io")
    outcomes = run_concurrently(lambda r: _send_volume_request(client, r, version, dry_run=True), requests,
                                concurrency)
    errors = []
    for request, outcome in zip(requests, outcomes):
        if isinstance(outcome, KubeApiError):
            errors.append("VM %s: disks[%s]: KubeVirt refused %s in a dry run: %s" % (
                request.plan.label, request.body["name"], request.verb, outcome.message))
        elif isinstance(outcome, Exception):
            raise outcome
    if errors:
        raise batch_failure(INVALID_INPUT, errors)


def plan_restart(plan):
    """Whether the running VM needs a restart for this change (predicted), and whether it gets one."""
    if plan.apply is None or plan.live is None or not plan.running:
        return
    after = plan.apply.after if plan.apply.action == "update" else plan.live
    plan.restart_reason = live_update.predict_restart(plan.live, after, plan.vmi, plan.live_update)
    plan.live_changes = live_update.live_changes(plan.live, after)
    plan.restart = bool(plan.restart_reason and plan.request.get("restart_if_required") and plan.verb is None
                        and not plan.pause_when_running)


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
    return bool(plan.delete or plan.verb or plan.pause_when_running or plan.migrate_running or plan.restart
                or plan.volumes.add or plan.volumes.remove or plan.expansions or plan.data_volumes
                or (plan.apply and plan.apply.action in ("create", "update")))


def _after_requests(plan, after):
    """The VM as it will be once its volume requests are carried out (subresource hotplug)."""
    if not after or plan.hotplug_path != kubevirt_hotplug.SUBRESOURCE or not (plan.volumes.add or plan.volumes.remove):
        return after
    after = copy.deepcopy(after)
    tspec = after["spec"]["template"]["spec"]
    devices = tspec.setdefault("domain", {}).setdefault("devices", {})
    gone = set(plan.volumes.remove)
    tspec["volumes"] = [v for v in tspec.get("volumes") or [] if v.get("name") not in gone]
    devices["disks"] = [d for d in devices.get("disks") or [] if d.get("name") not in gone]
    for volume, disk in plan.volumes.add:
        tspec["volumes"].append(volume)
        if disk:
            devices["disks"].append(disk)
    return after


def plan_diff(plan):
    before = comparable(plan.live)
    after = None if plan.delete else comparable(_after_requests(plan, plan.apply.after if plan.apply else plan.live))
    return {"before_header": "VirtualMachine %s" % plan.label, "after_header": "VirtualMachine %s" % plan.label,
            "before": before or {}, "after": after or {}}


def plan_diffs(plan):
    """The VM's diff, then one per claim it grows and DataVolume it makes."""
    diffs = [plan_diff(plan)]
    for expansion in plan.expansions:
        header = "PersistentVolumeClaim %s/%s" % (plan.namespace, expansion.claim)
        diffs.append({"before_header": header, "after_header": header,
                      "before": {"spec": {"resources": {"requests": {"storage": expansion.previous}}}},
                      "after": {"spec": {"resources": {"requests": {"storage": expansion.requested}}}}})
    for planned in plan.data_volumes:
        header = "DataVolume %s/%s" % (plan.namespace, planned.desired["metadata"]["name"])
        diffs.append({"before_header": header, "after_header": header, "before": {},
                      "after": comparable(planned.after) or {}})
    return diffs


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


def _run_items(step, items, concurrency, describe):
    """step(item) for items that belong to a plan (`item.plan`), marking the plans written."""
    outcomes = run_concurrently(step, items, concurrency)
    for item, outcome in zip(items, outcomes):
        item.plan.written = item.plan.written or not isinstance(outcome, Exception)
    raise_failures(items, outcomes, describe)


class _VolumeRequest(object):
    def __init__(self, plan, verb, body):
        self.plan, self.verb, self.body = plan, verb, body


def _volume_requests(plans):
    requests = []
    for plan in plans:
        if plan.hotplug_path != kubevirt_hotplug.SUBRESOURCE:
            continue
        for volume, disk in plan.volumes.add:
            requests.append(_VolumeRequest(plan, "addvolume", kubevirt_hotplug.add_volume_options(volume, disk)))
        for name in plan.volumes.remove:
            requests.append(_VolumeRequest(plan, "removevolume", {"name": name}))
    return requests


def _send_volume_request(client, request, subresource_version, dry_run=False):
    path = object_path(subresource_version, "virtualmachines", request.plan.name, request.plan.namespace,
                       subresource=request.verb)
    if dry_run:
        client.request("PUT", path, query={"dryRun": "All"}, body=dict(request.body, dryRun=["All"]))
    else:
        client.request("PUT", path, body=request.body)


def execute(client, plans, params, subresource_version):
    concurrency = params["concurrency"]
    migrations = [p for p in plans if p.migrate_running]
    run_step(lambda p: _migrate_running(client, p), migrations, concurrency,
             _step_error("migrating spec.running to runStrategy"))
    making = [(p, dv) for p in plans for dv in p.data_volumes]
    failed = kube_apply.apply_planned(client, [dv for _p, dv in making], params["field_manager"],
                                      params["force_conflicts"], concurrency)
    for plan, planned in making:
        plan.written = plan.written or planned.result is not None
    if failed:
        raise ModuleFailure("; ".join("VM %s: %s" % (item.label, item.error) for item in failed))
    applying = [p for p in plans if p.apply]
    failed = kube_apply.apply_planned(client, [p.apply for p in applying], params["field_manager"],
                                      params["force_conflicts"], concurrency)
    for plan in applying:
        plan.written = plan.written or plan.apply.result is not None
    if failed:
        raise ModuleFailure("; ".join("VM %s: %s" % (item.label, item.error) for item in failed))
    expansions = [e for p in plans for e in p.expansions]
    _run_items(lambda e: disk_expand.expand(client, e), expansions, concurrency,
               lambda e, err: "VM %s: disks[%s]: growing PVC %s failed: %s" % (
                   e.plan.label, e.disk, e.claim, getattr(err, "message", None) or err))
    _run_items(lambda r: _send_volume_request(client, r, subresource_version), _volume_requests(plans), concurrency,
               lambda r, err: "VM %s: %s %s failed: %s" % (
                   r.plan.label, r.verb, r.body["name"], getattr(err, "message", None) or err))
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


def _processed(plan):
    """A predicate: KubeVirt's VM controller has seen the VM as this run wrote it (vm.go updateStatus sets
    status.desiredGeneration to the generation it synced)."""
    generation = ((plan.apply.result or {}).get("metadata") or {}).get("generation") or 0

    def seen(vm):
        return bool(vm) and ((vm.get("status") or {}).get("desiredGeneration") or 0) >= generation
    return seen


def observe_restart_required(client, plans, params, deadline):
    """The RestartRequired condition of every running VM this run updated, once KubeVirt has synced it.

    A VM whose sync is not seen in time keeps the predicted answer.
    """
    updated = [p for p in plans if p.apply and p.apply.result is not None and p.apply.action == "update" and p.running]
    if not updated:
        return
    targets = [WaitTarget(p.namespace, p.name, _processed(p), "sync", kubevirt_power.describe_vm) for p in updated]
    try:
        seen = wait_for(client, updated[0].desired["apiVersion"], "virtualmachines", targets,
                        max(1, _left(deadline)))
    except WaitTimeout:
        seen = {}  # not synced in time: the predicted answer stands
    for plan in updated:
        vm = seen.get(plan.key)
        if vm and _processed(plan)(vm):
            cond = live_update.restart_required_condition(vm)
            plan.restart_reason = cond.get("message") or "RestartRequired" if cond else None
            plan.restart = bool(plan.restart_reason and plan.request.get("restart_if_required")
                                and plan.verb is None and not plan.pause_when_running)


def restart_vms(client, plans, params, subresource_version):
    restarting = [p for p in plans if p.restart]
    run_step(lambda p: _power(client, p, "restart", subresource_version), restarting, params["concurrency"],
             _power_error("restart", lambda p: "restart"))
    for plan in restarting:
        plan.restarted = True


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


def day2_pending(plan, vm):
    """What of this run's day-2 changes the VM does not show yet (restart, hotplug, unplug)."""
    if vm is None or plan.state == "absent":
        return []
    pending = []
    if plan.restarted and live_update.restart_required_condition(vm):
        pending.append("restart (RestartRequired still set)")
    tspec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    volumes = set(v.get("name") for v in tspec.get("volumes") or [])
    requests_planned = plan.volumes.add or plan.volumes.remove or plan.volumes.in_flight
    if plan.hotplug_path == kubevirt_hotplug.SUBRESOURCE and requests_planned:
        missing = [n for n in plan.volumes.names_added if n not in volumes]
        missing += [n for n in plan.volumes.remove if n in volumes]
        if missing or (vm.get("status") or {}).get("volumeRequests"):
            pending.append("volume requests (%s)" % ", ".join(missing or ["pending"]))
    ifaces = set(i.get("name") for i in ((tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or [])
    unplugging = [n for n in plan.nics.unplug if n in ifaces]
    if unplugging:
        pending.append("NIC unplug (%s)" % ", ".join(unplugging))
    return pending


def _with_day2(target, plan):
    base, describe = target.predicate, target.describe

    def predicate(vm):
        return base(vm) and not day2_pending(plan, vm)

    def described(vm):
        pending = day2_pending(plan, vm)
        return describe(vm) + ("; pending: %s" % "; ".join(pending) if pending else "")
    return WaitTarget(target.namespace, target.name, predicate, target.expectation, described)


def wait_vms(client, plans, params, expectation=None, timeout=None):
    targets = [_with_day2(_wait_target(plan, params, expectation), plan) for plan in plans]
    api_version = next((p.desired["apiVersion"] for p in plans if p.desired), "kubevirt.io/v1")
    return wait_for(client, api_version, "virtualmachines", targets,
                    params["wait_timeout"] if timeout is None else timeout)


def instance_pending(plan, vmi):
    """What of this run's live changes the running instance does not show yet."""
    pending = []
    if plan.live_changes and not plan.restart_reason and not plan.restarted:
        pending += live_update.instance_pending(vmi, plan.live_changes)
    status = (vmi or {}).get("status") or {}
    volumes = dict((v.get("name"), v) for v in status.get("volumeStatus") or [])
    not_ready = [n for n in plan.volumes.names_added if (volumes.get(n) or {}).get("phase") != "Ready"]
    not_gone = [n for n in plan.volumes.remove if n in volumes]
    if not_ready:
        pending.append("volumes Ready (%s)" % ", ".join(
            "%s: %s" % (n, (volumes.get(n) or {}).get("phase") or "not attached") for n in not_ready))
    if not_gone:
        pending.append("volumes detached (%s)" % ", ".join(not_gone))
    ifaces = set(i.get("name") for i in status.get("interfaces") or [])
    missing = [n for n in plan.nics.hotplug if n not in ifaces]
    if missing:
        pending.append("interfaces on the instance (%s)" % ", ".join(missing))
    return pending


def wait_instances(client, plans, deadline):
    """One watch of the instances of VMs changed live, until each shows what this run changed."""
    changing = [p for p in plans if p.running and p.written and not p.restarted
                and ((p.live_changes and not p.restart_reason) or p.volumes.add or p.volumes.remove or p.nics.hotplug)]
    if not changing:
        return {}
    targets = [WaitTarget(p.namespace, p.name, lambda vmi, p=p: not instance_pending(p, vmi), "the live changes",
                          lambda vmi, p=p: "pending: %s" % "; ".join(instance_pending(p, vmi)) if vmi else "absent")
               for p in changing]
    return wait_for(client, changing[0].desired["apiVersion"], "virtualmachineinstances", targets, _left(deadline))


def _left(deadline):
    """Whole seconds left until the deadline (what a timeout message names)."""
    return max(0, int(round(deadline - time.monotonic())))


def wait_claims(client, plans, deadline):
    expansions = [e for p in plans for e in p.expansions]
    if not expansions:
        return {}
    seen = wait_for(client, "v1", "persistentvolumeclaims", [disk_expand.wait_target(e) for e in expansions],
                    _left(deadline))
    for expansion in expansions:
        disk_expand.observe(expansion, seen.get((expansion.plan.namespace, expansion.claim)))
    return seen


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
        "name": plan.name, "namespace": plan.namespace, "action": _action(plan),
        "power": "restart" if plan.restarted or (plan.restart and plan.verb is None) else plan.verb,
        "run_strategy": plan.strategy, "printable_status": status.get("printableStatus"),
        "ready": bool(status.get("ready")), "node": vmi_status.get("nodeName"),
        "ip_address": addresses[0] if addresses else None, "ip_addresses": addresses,
        "restart_required": bool(plan.restart_reason) and not (plan.restarted or plan.restart
                                                               or plan.verb in ("restart", "stop")),
        "restart_reason": plan.restart_reason, "restarted": plan.restarted or plan.restart,
        "hotplugged_volumes": plan.volumes.names_added, "unplugged_volumes": list(plan.volumes.remove),
        "hotplugged_nics": list(plan.nics.hotplug), "unplugged_nics": list(plan.nics.unplug),
        "expanded_disks": [e.result() for e in plan.expansions],
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
    hotplug_path, kubevirt_cr = None, None
    hotplugging = any(p.request.get("disks") and any(d.get("hotplug") for d in p.request["disks"]) for p in plans) \
        or any(kubevirt_hotplug.hotplugged_volumes(vm) for vm in live_vms.values())
    if hotplugging or any(p.key in live_vmis for p in plans if p.state != "absent"):
        # Hotplug's path and the rollout strategy (what a running VM takes live) come from the KubeVirt CR.
        kubevirt_cr = read_kubevirt_cr(client, api_version)
    if hotplugging:
        hotplug_path = kubevirt_hotplug.hotplug_path(kubevirt_cr)
    plan_batch(client, plans, params, live_vms, live_vmis, api_version, hotplug_path,
               live_update.rollout_live_update(kubevirt_cr))
    if params["exclusive"]:
        plans += plan_exclusive(plans, live_vms, namespaces)
    changed = any(plan_changed(plan) for plan in plans)
    result = {"changed": changed, "api_version": api_version}
    if module._diff:
        result["diff"] = [diff for plan in plans if plan_changed(plan) for diff in plan_diffs(plan)]
    observed, vmis = {}, live_vmis
    try:
        # One budget for every wait after the writes: KubeVirt's sync, the VMs' states, the claims' capacity.
        deadline = time.monotonic() + params["wait_timeout"]
        if not module.check_mode and changed:
            subresources = preferred_version(client, "subresources.kubevirt.io")
            execute(client, plans, params, subresources)
            deadline = time.monotonic() + params["wait_timeout"]
            observe_restart_required(client, plans, params, deadline)
            restart_vms(client, plans, params, subresources)
        if params["wait"] and not module.check_mode:
            observed = wait_vms(client, plans, params, timeout=_left(deadline))
            wait_instances(client, plans, deadline)
            wait_claims(client, plans, deadline)
            # Addresses and nodes come from the instances, which the wait did not watch.
            vmis = read_live(client, api_version, namespaces, params["concurrency"])[1]
    except ModuleFailure as err:
        raise failure_after_writes(err, plans)
    result["vms"] = [vm_result(plan, observed.get(plan.key) or _last_known(plan), vmis.get(plan.key))
                     for plan in plans]
    module.exit_json(**result)
