# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""maas_machine, end to end: validate, find every machine (never duplicate one), then drive each
towards its state through MAAS's state machine, all machines at once, with one bounded wait.

The loop is state-driven: each round reads the machines, decides the next action of every machine
from its current status (commission, deploy, release, ...), sends those actions concurrently and waits
until no machine is in a transitional status. A run that was interrupted mid-way simply continues.
Check mode reads only and reports the first action each machine would take.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import re
import time
from contextlib import contextmanager

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.outcomes import raise_failures
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient, MaasError
from ansible_collections.palette.vmo.plugins.module_utils.maas.machine_states import (
    FINAL_STATUS, RETRIED_FAILURES, STATES, TRANSITIONAL, failed, next_transition, owned_after_run, reached)

MAC = re.compile(r"^([0-9a-f]{2}:){5}[0-9a-f]{2}$")
HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
# MAAS's Tag.name: ASCII letters, digits, '-' and '_', at most 256 characters (models/tag.py).
TAG_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,256}$")
# MAAS enlists a machine without MACs (and without architecture) only through an IPMI BMC.
MACLESS_POWER_TYPES = ("ipmi",)
# A machine MAAS starts only when someone owns it: power_on of a New or Ready machine is a 409.
NOT_ALLOCATED = "Can't start node: it hasn't been allocated."
# What a create did: the action names a machine's summary lists.
CREATED, ADOPTED = "create", "adopt"
# MAAS refuses an architecture or subarchitecture that names a kernel (api/machines.py:create_machine).
KERNEL_IN_ARCHITECTURE = re.compile("(hwe|ga)-.+")
# What MAAS answers when a create meets a machine that already holds the host name or a MAC (Node.hostname is
# unique; WithMACAddressesMixin.clean_mac_addresses: "MAC address <mac> already in use on <hostname>.").
ALREADY_EXISTS = re.compile(r"Node with this Hostname already exists\.|MAC address \S+ already in use")
MACHINE_OPTIONS = ("system_id", "hostname", "domain", "architecture", "description", "power_type",
                   "power_parameters", "pxe_mac", "mac_addresses", "state", "zone", "pool", "tags", "tags_exclusive",
                   "power", "distro_series", "hwe_kernel", "user_data", "erase", "secure_erase", "quick_erase",
                   "comment")


def label(request):
    return request.get("hostname") or request.get("system_id") or request.get("pxe_mac") or \
        (request.get("power_parameters") or {}).get("power_address") or "?"


# -- input ----------------------------------------------------------------------------------------------

def machine_requests(params):
    defaults = {key: params.get(key) for key in MACHINE_OPTIONS}
    items = params.get("machines") or [{}]
    requests, errors = [], []
    for index, item in enumerate(items):
        unknown = sorted(set(item) - set(MACHINE_OPTIONS))
        if unknown:
            errors.append("machines[%d] (%s): unknown option(s) %s" % (index, label(item), ", ".join(unknown)))
            continue
        request = dict(defaults)
        request.update({k: v for k, v in item.items() if v is not None})
        request["state"] = request.get("state") or "present"
        requests.append(request)
    if errors:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(errors), errors)
    return requests


def fix_architecture(architecture):
    """What MAAS makes of an architecture (api/machines.py:fix_architecture): no '/' means '<arch>/generic'."""
    return architecture if not architecture or "/" in architecture else architecture + "/generic"


def usable_architectures(boot_resources):
    """The architectures MAAS's create form accepts, from GET /boot-resources/: each resource's architecture
    and arch/subarch for each of its `subarches`, except those naming a kernel (hwe-, ga-); the same rule as
    MAAS's BootResourceService.get_usable_architectures, which feeds the form's architecture choices."""
    usable = set()
    for resource in boot_resources or []:
        arch = resource.get("architecture") or ""
        base = arch.split("/")[0]
        candidates = [arch] + ["%s/%s" % (base, sub.strip()) for sub in (resource.get("subarches") or "").split(",")
                               if sub.strip()]
        candidates += ["%s/%s" % (base, resource[key]) for key in ("platform",) if resource.get(key)]
        candidates += ["%s/%s" % (base, p.strip()) for p in (resource.get("supported_platforms") or "").split(",")
                       if p.strip()]
        usable.update(c for c in candidates if c and "hwe-" not in c and "ga-" not in c)
    return usable


def architecture_problem(architecture, architectures):
    if KERNEL_IN_ARCHITECTURE.search(architecture):
        return "%r names a kernel; MAAS takes the kernel as hwe_kernel, not in the architecture" % architecture
    if fix_architecture(architecture) not in architectures:
        return "%r is not an architecture this MAAS has boot images for (%s)" % (
            architecture, ", ".join(sorted(architectures)) or "none: import boot images first")
    return None


def identities(request):
    """(option, value) for every identity a request names: a machine is the same MAAS machine by any of them."""
    found = [("system_id", request.get("system_id")), ("hostname", request.get("hostname"))]
    if request.get("pxe_mac"):
        found.append(("pxe_mac", request["pxe_mac"].lower()))
    found += [("mac_addresses", mac.lower()) for mac in request.get("mac_addresses") or [] if mac]
    found.append(("power_parameters.power_address", (request.get("power_parameters") or {}).get("power_address")))
    return [(option, value) for option, value in found if value]


def duplicate_problems(requests):
    """A value of any identity declared by two machines of the batch would make both one MAAS machine."""
    problems, owner = [], {}
    for request in requests:
        for option, value in identities(request):
            kind = "mac" if option in ("pxe_mac", "mac_addresses") else option
            first = owner.setdefault((kind, value), request)
            if first is not request:
                problems.append("machine %s: %s: %s is declared more than once in this task (also by machine %s)"
                                % (label(request), option, value, label(first)))
    return problems


def validate(requests, power_types, zones, pools, architectures=None):
    """Every problem of every machine, before any request that writes."""
    errors = duplicate_problems(requests)
    for request in requests:
        name = label(request)

        def bad(option, reason):
            errors.append("machine %s: %s: %s" % (name, option, reason))

        if request["state"] not in STATES:
            bad("state", "%r is not one of %s" % (request["state"], ", ".join(STATES)))
        if not any(request.get(k) for k in ("system_id", "hostname", "pxe_mac")) and \
                not (request.get("power_parameters") or {}).get("power_address"):
            bad("hostname", "a machine needs system_id, hostname, pxe_mac or power_parameters.power_address "
                            "to be found again")
        if request.get("hostname") and not HOSTNAME.match(request["hostname"]):
            bad("hostname", "%r is not a valid host name" % request["hostname"])
        for mac in [request.get("pxe_mac")] + list(request.get("mac_addresses") or []):
            if mac and not MAC.match(mac.lower()):
                bad("pxe_mac" if mac == request.get("pxe_mac") else "mac_addresses", "%r is not a MAC address" % mac)
        power_type = request.get("power_type")
        if power_type:
            if power_type not in power_types:
                bad("power_type", "%r is not a power type this MAAS knows (%s)" % (power_type, ", ".join(sorted(power_types))))
            else:
                fields = power_types[power_type]
                given = request.get("power_parameters") or {}
                unknown = sorted(set(given) - set(fields))
                if unknown:
                    bad("power_parameters", "unknown for %s: %s (known: %s)" % (
                        power_type, ", ".join(unknown), ", ".join(sorted(fields))))
                missing = [f for f, required in fields.items() if required and not given.get(f)]
                if missing:
                    bad("power_parameters", "%s needs %s" % (power_type, ", ".join(missing)))
        elif request.get("power_parameters"):
            bad("power_type", "is required with power_parameters")
        if request.get("zone") and request["zone"] not in zones:
            bad("zone", "%r does not exist (zones: %s)" % (request["zone"], ", ".join(sorted(zones))))
        if request.get("pool") and request["pool"] not in pools:
            bad("pool", "%r does not exist (pools: %s)" % (request["pool"], ", ".join(sorted(pools))))
        for tag in request.get("tags") or []:
            if not TAG_NAME.match(tag):
                bad("tags", "%r is not a valid tag name (MAAS allows ASCII letters, digits, '-' and '_', at most "
                            "256 characters)" % tag)
        if request.get("user_data") is not None and request["state"] != "deployed":
            bad("user_data", "only applies with state=deployed")
        if request.get("distro_series") and request["state"] != "deployed":
            bad("distro_series", "only applies with state=deployed")
        if any(request.get(k) for k in ("erase", "secure_erase", "quick_erase")) and \
                request["state"] not in ("released", "ready", "absent"):
            bad("erase", "only applies when the machine is released")
        if request.get("power") and request["state"] in ("absent",):
            bad("power", "cannot be combined with state=absent")
        elif request.get("power") == "on" and request["state"] in ("ready", "released"):
            bad("power", "on needs state=deployed: MAAS starts only an allocated machine (%s)" % NOT_ALLOCATED)
        if request.get("architecture") and architectures is not None:
            problem = architecture_problem(request["architecture"], architectures)
            if problem:
                bad("architecture", problem)
    if errors:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(errors), errors)


# -- finding machines -----------------------------------------------------------------------------------

class Inventory(object):
    """The machines MAAS has, indexed every way a request can name one."""

    def __init__(self, machines, power_parameters):
        self.machines = {m["system_id"]: m for m in machines}
        self.power = power_parameters or {}

    def find(self, request):
        candidates = []
        if request.get("system_id"):
            candidates.append(self.machines.get(request["system_id"]))
        if request.get("hostname"):
            candidates.append(next((m for m in self.machines.values() if m["hostname"] == request["hostname"]), None))
        macs = [m.lower() for m in [request.get("pxe_mac")] + list(request.get("mac_addresses") or []) if m]
        for mac in macs:
            candidates.append(next((m for m in self.machines.values()
                                    if mac in [i["mac_address"] for i in m.get("interface_set") or []]), None))
        address = (request.get("power_parameters") or {}).get("power_address")
        if address:
            candidates.append(next((self.machines[sid] for sid, p in sorted(self.power.items())
                                    if sid in self.machines and p.get("power_address") == address), None))
        found = {m["system_id"]: m for m in candidates if m}
        if len(found) > 1:
            raise ModuleFailure("machine %s: matches several MAAS machines (%s); name it by system_id"
                                % (label(request), ", ".join("%s=%s" % (m["system_id"], m["hostname"]) for m in found.values())))
        if not found and request.get("system_id"):
            raise ModuleFailure("machine %s: system_id %s does not exist" % (label(request), request["system_id"]))
        return next(iter(found.values()), None)


class PowerTypes(object):
    """The power drivers MAAS describes: each one's fields, and whether MAAS can drive it at all."""

    def __init__(self, described):
        # A required field with a default is filled by MAAS from that default (driver_parameters.make_form_field).
        self.fields = {t["name"]: {f["name"]: bool(f.get("required")) and not f.get("default")
                                   for f in t.get("fields") or []} for t in described}
        # A driver MAAS cannot query (manual) cannot start or stop a machine either: power ops are no-ops.
        self.undriven = {t["name"] for t in described if t.get("queryable") is False}


@contextmanager
def admin_only():
    """Around a read only MAAS administrators may make; run before any write, so a user's key fails cleanly."""
    try:
        yield
    except MaasError as err:
        if err.status == 403:
            raise ModuleFailure("maas_machine needs a MAAS administrator's API key: %s"
                                % (err.describe() or "HTTP 403 Forbidden"))
        raise


def read_power_types(client):
    with admin_only():
        return PowerTypes(client.get("/rackcontrollers/", op="describe_power_types"))


def read_inventory(client):
    machines = client.get("/machines/")
    with admin_only():
        power = client.get("/machines/", op="power_parameters")
    return Inventory(machines, power)


# -- planning -----------------------------------------------------------------------------------------

def attribute_changes(request, machine):
    """PUT fields that differ (hostname, domain, zone, pool, description, power settings)."""
    changes = {}
    for key in ("hostname", "description", "architecture"):
        if request.get(key) is not None and machine.get(key) != request[key] and \
                not (key == "architecture" and machine.get(key, "").split("/")[0] == request[key].split("/")[0]):
            changes[key] = request[key]
    if request.get("domain") and (machine.get("domain") or {}).get("name") != request["domain"]:
        changes["domain"] = request["domain"]
    for key in ("zone", "pool"):
        if request.get(key) and (machine.get(key) or {}).get("name") != request[key]:
            changes[key] = request[key]
    return changes


def power_changes(request, machine, current_params):
    if not request.get("power_type"):
        return {}
    wanted = dict((request.get("power_parameters") or {}))
    if machine.get("power_type") == request["power_type"] and all(
            str(current_params.get(k)) == str(v) for k, v in wanted.items()):
        return {}
    changes = {"power_type": request["power_type"]}
    changes.update(("power_parameters_%s" % k, v) for k, v in wanted.items())
    return changes


def tag_changes(request, machine):
    wanted = set(request.get("tags") or [])
    have = set(machine.get("tag_names") or [])
    add = sorted(wanted - have)
    remove = sorted(have - wanted) if request.get("tags_exclusive") else []
    return add, remove


# -- acting ----------------------------------------------------------------------------------------------

class MachineRun(object):
    def __init__(self, request):
        self.request = request
        self.before = None
        self.machine = None
        self.actions = []
        self.attempted = set()
        self.inventory = None  # set when an existing machine was adopted instead of created


def _create_fields(request):
    fields = {"architecture": request.get("architecture") or "amd64/generic", "hostname": request.get("hostname"),
              "domain": request.get("domain"), "description": request.get("description"),
              # MAAS's administrator create form takes zone and pool (AdminNodeForm, AdminMachineForm.save);
              # without them the machine lands in the defaults and the next run would move it.
              "zone": request.get("zone"), "pool": request.get("pool"),
              "power_type": request.get("power_type"),
              "mac_addresses": [m for m in [request.get("pxe_mac")] + list(request.get("mac_addresses") or []) if m],
              # A machine declared only "present" is enlisted; every other state needs it commissioned.
              "commission": request["state"] not in ("present", "broken")}
    fields.update(("power_parameters_%s" % k, v) for k, v in (request.get("power_parameters") or {}).items())
    return {k: v for k, v in fields.items() if v not in (None, [])}


def _deploy_fields(request):
    fields = {"distro_series": request.get("distro_series"), "hwe_kernel": request.get("hwe_kernel")}
    if request.get("user_data"):
        fields["user_data"] = base64.b64encode(request["user_data"].encode()).decode()
    return fields


def _release_fields(request):
    return {k: True for k in ("erase", "secure_erase", "quick_erase") if request.get(k)}


def creation_problems(request, machine):
    """Why MAAS would refuse to create this machine, before anything is written (forms/__init__.py:1446)."""
    if machine is not None or request["state"] == "absent":
        return []
    if request.get("pxe_mac") or request.get("mac_addresses"):
        return []
    power_type = request.get("power_type")
    if power_type in MACLESS_POWER_TYPES:
        return []
    return ["machine %s: mac_addresses: a %s machine needs pxe_mac or mac_addresses to be created; MAAS enlists "
            "without MACs only through an ipmi BMC" % (label(request), power_type or "power_type-less")]


def power_problems(request, machine):
    if request.get("power") != "on" or owned_after_run(request, machine):
        return []
    return ["machine %s: power: on needs an allocated or deployed machine (MAAS: %s)" % (label(request), NOT_ALLOCATED)]


def plan_machine(run, inventory, tags_known):
    """Everything that brings one machine in line except the state transitions; returns the actions."""
    request, machine = run.request, run.machine
    actions = []
    if request["state"] == "absent":
        if machine is not None:
            actions.append(("delete", None))
        return actions
    if machine is None:
        actions.append(("create", _create_fields(request)))
        for tag in request.get("tags") or []:
            if tag not in tags_known:
                actions.append(("create_tag", tag))
        if request.get("tags"):
            actions.append(("tag", (sorted(request["tags"]), [])))
        return actions
    changes = attribute_changes(request, machine)
    changes.update(power_changes(request, machine, inventory.power.get(machine["system_id"]) or {}))
    if changes:
        actions.append(("update", changes))
    add, remove = tag_changes(request, machine)
    for tag in add:
        if tag not in tags_known:
            actions.append(("create_tag", tag))
    if add or remove:
        actions.append(("tag", (add, remove)))
    return actions


def power_op(run, power_types):
    """The power op a machine at its state still needs, or None (also for drivers MAAS cannot drive)."""
    wanted, machine = run.request.get("power"), run.machine
    if not wanted or machine is None or machine.get("power_state") == wanted:
        return None
    if machine.get("power_type") in power_types.undriven:
        return None
    return "power_" + wanted


def undriven_notes(runs, power_types):
    return ["machine %s: power: MAAS cannot drive a %s power type; it was not asked to power the machine %s "
            "(power it by hand)" % (label(item.request), item.machine.get("power_type"), item.request["power"])
            for item in runs if item.request.get("power") and item.machine and
            item.machine.get("power_state") != item.request["power"] and
            item.machine.get("power_type") in power_types.undriven]


def _machine_path(run):
    return "/machines/%s/" % run.machine["system_id"]


# Each action of a plan or of the state machine, done: `entry(client, run, action, argument, created_tags)`
# returns what the machine's actions record (None: nothing of this machine's).

def _create(client, run, _action, fields, _created_tags):
    return create_or_adopt(client, run, fields)  # `create`, or `adopt` when MAAS had it already


def _delete(client, run, action, _argument, _created_tags):
    try:
        client.delete(_machine_path(run))
    except MaasError as err:
        if err.status != 404:  # a 404 after a retry: our delete took effect, its answer was lost
            raise
    run.machine = None
    return action


def _update(client, run, action, changes, _created_tags):
    run.machine = client.put(_machine_path(run), **changes)
    return action


def _create_tag(client, _run, action, tag, created_tags):
    if tag in created_tags:
        return None  # another machine of the batch created it: not this machine's action
    try:
        client.post("/tags/", name=tag, comment="created by palette.vmo")
    except MaasError as err:
        # Created meanwhile by another run, or by our own request whose answer was lost.
        if "already exists" not in err.describe():
            raise
    created_tags.add(tag)
    return action


def _tag(client, run, action, changes, _created_tags):
    add, remove = changes
    for tag in add:
        client.post("/tags/%s/" % tag, op="update_nodes", add=run.machine["system_id"])
    for tag in remove:
        client.post("/tags/%s/" % tag, op="update_nodes", remove=run.machine["system_id"])
    return action


def _transition(send):
    """The entry of a state transition that `send(client, run)` posts. A refusal after which the machine no longer
    needs it (our earlier request took effect but its answer was lost, or another client moved it) is done."""
    def transition(client, run, action, _argument, _created_tags):
        try:
            run.machine = send(client, run)
        except MaasError as err:
            if not moved_on_its_own(client, run, action, err):
                raise
        return action
    return transition


def _power(send):
    """The entry of a power op that `send(client, run)` posts. MAAS queues it and answers with the power state from
    before the change, so the machine is kept and read again later (models/node.py:6181-6230)."""
    def power(client, run, action, _argument, _created_tags):
        send(client, run)
        return action
    return power


# The ops are literals here so that every MAAS request can be read off the source (tests/gates/contract.py).
EXECUTE = {
    "create": _create, "delete": _delete, "update": _update, "create_tag": _create_tag, "tag": _tag,
    "commission": _transition(lambda client, run: client.post(_machine_path(run), op="commission")),
    "deploy": _transition(lambda client, run: client.post(_machine_path(run), op="deploy",
                                                          **_deploy_fields(run.request))),
    "release": _transition(lambda client, run: client.post(_machine_path(run), op="release",
                                                           **_release_fields(run.request))),
    "mark_broken": _transition(lambda client, run: client.post(_machine_path(run), op="mark_broken",
                                                               comment=run.request.get("comment"))),
    "mark_fixed": _transition(lambda client, run: client.post(_machine_path(run), op="mark_fixed")),
    "power_on": _power(lambda client, run: client.post(_machine_path(run), op="power_on")),
    "power_off": _power(lambda client, run: client.post(_machine_path(run), op="power_off")),
}


def execute(client, run, action, argument, created_tags):
    """Does one action and records what it did in the machine's actions; returns that (or None)."""
    done = EXECUTE[action](client, run, action, argument, created_tags)
    if done:
        run.actions.append(done)
    return done


def act(client, run, action, argument, created_tags):
    """`execute`, with a refusal from MAAS worded for the machine: `machine <name>: <action>: <MAAS's words>`."""
    try:
        return execute(client, run, action, argument, created_tags)
    except MaasError as err:
        raise ModuleFailure("machine %s: %s: %s" % (label(run.request), action, err.describe()))


def failing_scripts(client, machine):
    try:
        results = client.get("/nodes/%s/results/" % machine["system_id"])
    except MaasError:
        return []
    names = []
    for result_set in results or []:
        for script in result_set.get("results") or []:
            if script.get("status_name") in ("Failed", "Timed out", "Failed installing"):
                names.append("%s (exit %s)" % (script.get("name"), script.get("exit_status")))
    return names


def summary(run):
    machine = run.machine
    if machine is None:
        return {"hostname": run.request.get("hostname"), "system_id": None, "status_name": None,
                "actions": run.actions, "changed": bool(run.actions)}
    return {
        "system_id": machine["system_id"], "hostname": machine["hostname"], "status_name": machine["status_name"],
        "power_state": machine.get("power_state"), "tags": machine.get("tag_names") or [],
        "zone": (machine.get("zone") or {}).get("name"), "pool": (machine.get("pool") or {}).get("name"),
        "ip_addresses": machine.get("ip_addresses") or [], "osystem": machine.get("osystem"),
        "distro_series": machine.get("distro_series"), "actions": run.actions, "changed": bool(run.actions),
    }


def diff_view(machine):
    if machine is None:
        return {}
    return {"hostname": machine.get("hostname"), "status": machine.get("status_name"),
            "zone": (machine.get("zone") or {}).get("name"), "pool": (machine.get("pool") or {}).get("name"),
            "tags": sorted(machine.get("tag_names") or []), "power_state": machine.get("power_state"),
            "distro_series": machine.get("distro_series") or None}


def predicted(run, actions, transition):
    """The machine as it would look after this run, for check mode and diffs."""
    view = diff_view(run.machine) if run.machine else {"hostname": run.request.get("hostname"), "status": "New"}
    if run.request["state"] == "absent":
        return {}
    for action, argument in actions:
        if action == "update":
            view.update({k: v for k, v in argument.items() if k in ("hostname", "zone", "pool")})
        elif action == "tag":
            view["tags"] = sorted((set(view.get("tags") or []) | set(argument[0])) - set(argument[1]))
    if transition in ("power_on", "power_off"):
        view["power_state"] = transition[len("power_"):]
        return view
    if transition or any(action[0] == "create" for action in actions):
        view["status"] = FINAL_STATUS.get(run.request["state"], view.get("status"))
    if run.request["state"] == "deployed":
        view["distro_series"] = run.request.get("distro_series") or view.get("distro_series") or "(default)"
    return view


def run(module):
    """Runs the task. Every failure, before or after a write, reaches run_module as a ModuleFailure that carries
    `changed` (true when anything was written) and `machines` (each written machine with its actions)."""
    runs = []  # filled once planned, so a failure can say what was written
    try:
        plan_and_apply(module, runs)
    except ModuleFailure as err:
        written = [summary(item) for item in runs if item.actions]
        err.result.update(changed=bool(written), machines=written)
        raise


def check_inputs(params):
    """The task's own input, before anything is read from MAAS."""
    requests = machine_requests(params)
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(bounds), bounds)
    return requests


def read_architectures(client):
    return usable_architectures(client.get("/boot-resources/"))


def plan_and_apply(module, runs):
    params = module.params
    requests = check_inputs(params)
    client = MaasClient(params)
    power_types = read_power_types(client)
    zones = {z["name"] for z in client.get("/zones/")}
    pools = {p["name"] for p in client.get("/resourcepools/")}
    validate(requests, power_types.fields, zones, pools, read_architectures(client))
    inventory = read_inventory(client)
    tags_known = {t["name"] for t in client.get("/tags/")}
    runs.extend(MachineRun(r) for r in requests)
    find_machines(runs, inventory)
    problems = [p for item in runs for p in creation_problems(item.request, item.machine) +
                power_problems(item.request, item.machine)]
    if problems:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(problems), problems)
    plans = [(item, plan_machine(item, inventory, tags_known)) for item in runs]
    # The first transition each machine needs now; check mode reports it, diff predicts from it. A
    # machine already at its state may still need its power changed.
    first_steps = [item.machine and (next_transition(item.request, item.machine) or
                                     power_op(item, power_types)) for item, _actions in plans]
    refuse_locked_changes(plans, first_steps)
    for note in undriven_notes(runs, power_types):
        module.warn(note)
    result = {"changed": any(actions or step for (_item, actions), step in zip(plans, first_steps))}
    if module._diff:
        result["diff"] = [{"before_header": "machine %s" % label(item.request),
                           "after_header": "machine %s" % label(item.request),
                           "before": diff_view(item.before), "after": predicted(item, actions, step)}
                          for (item, actions), step in zip(plans, first_steps) if actions or step]
    if module.check_mode:
        result["machines"] = [dict(summary(item), actions=[action[0] for action in actions] + ([step] if step else []),
                                   changed=bool(actions or step))
                              for (item, actions), step in zip(plans, first_steps)]
        return module.exit_json(**result)
    converge(client, plans, params, power_types)
    result["changed"] = any(item.actions for item, _actions in plans)
    result["machines"] = [summary(item) for item, _actions in plans]
    module.exit_json(**result)


def find_machines(runs, inventory):
    claimed = {}
    for item in runs:
        item.machine = item.before = inventory.find(item.request)
        if item.machine:
            other = claimed.setdefault(item.machine["system_id"], label(item.request))
            if other != label(item.request):
                raise ModuleFailure("machines %s and %s are the same MAAS machine %s"
                                    % (other, label(item.request), item.machine["system_id"]))


# -- a create that meets an existing machine ------------------------------------------------------------

def already_exists(err):
    """MAAS refused a create because a machine already holds the host name or one of the MACs."""
    return err.status == 400 and ALREADY_EXISTS.search(err.describe()) is not None


def same_machine(request, machine, power_parameters):
    """Whether `machine` carries every identity the request gives (host name, each MAC, BMC address)."""
    macs = {i["mac_address"].lower() for i in machine.get("interface_set") or []}
    for option, value in identities(request):
        if option == "hostname" and machine.get("hostname") != value or \
                option in ("pxe_mac", "mac_addresses") and value not in macs or \
                option == "power_parameters.power_address" and power_parameters.get("power_address") != value:
            return False
    return True


def adopt_existing(client, run, refusal):
    """After a create MAAS refused as existing (another run created the machine meanwhile, or our own create
    took effect and its answer was lost): the machine holding those identities, if it is this one."""
    inventory = read_inventory(client)
    machine = inventory.find(run.request)
    power = inventory.power.get(machine["system_id"]) or {} if machine else {}
    if machine is None or not same_machine(run.request, machine, power):
        raise ModuleFailure("machine %s: create: %s; %s" % (
            label(run.request), refusal.describe(),
            "the machine holding it is %s (%s), not this one" % (machine["system_id"], machine["hostname"])
            if machine else "and no machine with it could be read back"))
    run.machine, run.inventory = machine, inventory
    return machine


def create_or_adopt(client, run, fields):
    """Creates the machine; returns the action taken: `create`, or `adopt` when it was there already."""
    try:
        run.machine = client.post("/machines/", **fields)
        return CREATED
    except MaasError as err:
        if not already_exists(err):
            raise
        adopt_existing(client, run, err)
        return ADOPTED


def moved_on_its_own(client, run, op, refusal):
    """A transition MAAS refused as wrong for the machine's state (400 or 409): re-read it; if it no longer
    needs `op` (our earlier request took effect but its answer was lost, or another client moved it), the
    step is done."""
    if refusal.status not in (400, 409) or run.machine is None:
        return False
    fresh = client.get("/machines/%s/" % run.machine["system_id"])
    if fresh["status_name"] in TRANSITIONAL or next_transition(run.request, fresh) != op:
        run.machine = fresh
        return True
    return False


def refuse_locked_changes(plans, first_steps):
    """MAAS answers 403 to any change of a locked machine (models/node.py:666): say so before writing."""
    locked = ["machine %s: is locked in MAAS, which refuses every change to it; unlock it first"
              % label(item.request) for (item, actions), step in zip(plans, first_steps)
              if item.machine and item.machine.get("locked") and (actions or step)]
    if locked:
        raise ModuleFailure("nothing was changed: " + "; ".join(locked), locked)


def converge(client, plans, params, power_types):
    """Applies the plans, then drives every machine through MAAS's state machine and its power, within one
    deadline for the whole batch."""
    created_tags = set()
    deadline = time.monotonic() + params["wait_timeout"]
    apply_plans(client, plans, params["concurrency"], created_tags)
    runs = [item for item, _actions in plans if item.request["state"] != "absent"]
    drive_states(client, runs, params, deadline, created_tags)
    converge_power(client, runs, params, power_types, deadline, created_tags)


def apply_plans(client, plans, concurrency, created_tags):
    """Every planned action; tags first, once each: machines tagged concurrently must not race their tag's
    creation."""
    for item, actions in plans:
        for action, argument in actions:
            if action == "create_tag":
                act(client, item, action, argument, created_tags)

    def apply_plan(entry):
        item, actions = entry
        pending = [action for action in actions if action[0] != "create_tag"]
        while pending:
            action, argument = pending.pop(0)
            if act(client, item, action, argument, created_tags) == ADOPTED:
                # The machine was there already: bring its attributes and tags in line instead. Its tags
                # exist by now (created above), so none is created again.
                known = set(item.request.get("tags") or [])
                pending = [a for a in plan_machine(item, item.inventory, known) if a[0] != "create_tag"]
    raise_failures(plans, run_concurrently(apply_plan, plans, concurrency))


def drive_states(client, runs, params, deadline, created_tags):
    """Each round: every machine's next transition, sent concurrently, then one read of the batch while any is
    moving. A machine that fails again in a status it was already moved on from fails the task."""
    while True:
        steps = []
        for item in runs:
            if item.machine is None:
                continue
            if failed(item.request, item.machine) and item.machine["status_name"] in item.attempted:
                raise ModuleFailure("machine %s: %s: %s" % (label(item.request), item.machine["status_name"],
                                                            ", ".join(failing_scripts(client, item.machine)) or
                                                            item.machine.get("status_message") or "no details"))
            op = next_transition(item.request, item.machine)
            if op:
                steps.append((item, op))

        def step(entry):
            item, op = entry
            if item.machine["status_name"] in RETRIED_FAILURES:
                item.attempted.add(item.machine["status_name"])
            act(client, item, op, None, created_tags)
        raise_failures(steps, run_concurrently(step, steps, params["concurrency"]))
        moving = [item for item in runs if item.machine and item.machine["status_name"] in TRANSITIONAL]
        if not steps and not moving:
            break
        if not params["wait"] and not steps:
            break
        if time.monotonic() > deadline:
            raise ModuleFailure("timed out after %ss waiting for %s" % (params["wait_timeout"], ", ".join(
                "%s (%s)" % (label(i.request), i.machine["status_name"]) for i in moving)))
        if moving:
            time.sleep(params["poll_interval"])
        refresh(client, runs)
    unmet = [item for item in runs if params["wait"] and not reached(item.request, item.machine)]
    if unmet:
        raise ModuleFailure("; ".join("machine %s: is %s, not %s" % (
            label(i.request), i.machine and i.machine["status_name"], i.request["state"]) for i in unmet))


def converge_power(client, runs, params, power_types, deadline, created_tags):
    """Sends each power op once, then waits until MAAS reports the state: power changes are queued and the
    answer still shows the old power_state (models/node.py:6181-6230)."""
    steps = [(item, power_op(item, power_types)) for item in runs]
    steps = [(item, op) for item, op in steps if op]
    raise_failures(steps, run_concurrently(lambda entry: act(client, entry[0], entry[1], None, created_tags),
                                           steps, params["concurrency"]))
    sent = [item for item, _op in steps]
    while params["wait"] and sent:
        refresh(client, sent)
        sent = [item for item in sent if item.machine["power_state"] != item.request["power"]]
        if not sent:
            break
        if time.monotonic() > deadline:
            raise ModuleFailure("timed out after %ss waiting for the power state of %s" % (
                params["wait_timeout"], ", ".join("%s (%s, not %s)" % (
                    label(i.request), i.machine["power_state"], i.request["power"]) for i in sent)))
        time.sleep(params["poll_interval"])


def refresh(client, runs):
    """One request for every machine of the batch."""
    ids = [item.machine["system_id"] for item in runs if item.machine]
    if not ids:
        return
    fresh = {m["system_id"]: m for m in client.get("/machines/", id=ids)}
    for item in runs:
        if item.machine and item.machine["system_id"] in fresh:
            item.machine = fresh[item.machine["system_id"]]
            if item.machine["status_name"] in RETRIED_FAILURES:
                item.attempted.add(item.machine["status_name"])
