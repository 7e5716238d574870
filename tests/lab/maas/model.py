"""The MAAS simulator's state: machines and their state machine, tags, zones, resource pools.

Statuses, labels and allowed transitions follow MAAS (`NodeStatus`, `NODE_TRANSITIONS`); long
operations (commissioning, deploying, releasing, erasing) finish after configurable durations.
Time is evaluated lazily: every request first moves each machine along by the clock, so there is no
background thread and a test that waits sees exactly what a MAAS user would.
"""

import copy
import functools
import hashlib
import json
import random
import re
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from .drivers import DRIVERS, missing_required

NEW, COMMISSIONING, FAILED_COMMISSIONING, MISSING, READY = 0, 1, 2, 3, 4
RESERVED, DEPLOYED, RETIRED, BROKEN, DEPLOYING, ALLOCATED = 5, 6, 7, 8, 9, 10
FAILED_DEPLOYMENT, RELEASING, FAILED_RELEASING, DISK_ERASING, FAILED_DISK_ERASING = 11, 12, 13, 14, 15
TESTING, FAILED_TESTING = 21, 22

STATUS_NAMES = {
    NEW: "New", COMMISSIONING: "Commissioning", FAILED_COMMISSIONING: "Failed commissioning", MISSING: "Missing",
    READY: "Ready", RESERVED: "Reserved", DEPLOYED: "Deployed", RETIRED: "Retired", BROKEN: "Broken",
    DEPLOYING: "Deploying", ALLOCATED: "Allocated", FAILED_DEPLOYMENT: "Failed deployment",
    RELEASING: "Releasing", FAILED_RELEASING: "Releasing failed", DISK_ERASING: "Disk erasing",
    FAILED_DISK_ERASING: "Failed disk erasing", TESTING: "Testing", FAILED_TESTING: "Failed testing",
}

# From MAAS's NODE_TRANSITIONS (the states this simulator reaches).
TRANSITIONS = {
    NEW: {COMMISSIONING, TESTING, MISSING, READY, RETIRED, BROKEN},
    COMMISSIONING: {FAILED_COMMISSIONING, READY, RETIRED, MISSING, NEW, BROKEN, TESTING},
    FAILED_COMMISSIONING: {COMMISSIONING, MISSING, RETIRED, BROKEN, TESTING},
    READY: {COMMISSIONING, ALLOCATED, RESERVED, RETIRED, MISSING, BROKEN, TESTING},
    ALLOCATED: {READY, RETIRED, MISSING, BROKEN, DEPLOYING, DISK_ERASING, RELEASING, TESTING},
    DEPLOYING: {ALLOCATED, MISSING, BROKEN, FAILED_DEPLOYMENT, DEPLOYED, READY, DISK_ERASING, RELEASING},
    FAILED_DEPLOYMENT: {ALLOCATED, MISSING, BROKEN, READY, DISK_ERASING, RELEASING, TESTING},
    DEPLOYED: {ALLOCATED, MISSING, BROKEN, READY, DISK_ERASING, RELEASING, TESTING},
    BROKEN: {COMMISSIONING, READY, DISK_ERASING, RELEASING, TESTING, DEPLOYED},
    RELEASING: {NEW, ALLOCATED, RESERVED, DEPLOYED, READY, BROKEN, MISSING, FAILED_DEPLOYMENT, FAILED_DISK_ERASING,
                FAILED_RELEASING},
    FAILED_RELEASING: {RELEASING, DISK_ERASING, READY, BROKEN, TESTING},
    DISK_ERASING: {BROKEN, DISK_ERASING, FAILED_DISK_ERASING, READY, RELEASING},
    FAILED_DISK_ERASING: {DISK_ERASING, RELEASING, BROKEN, ALLOCATED, READY, TESTING},
}

# The simplified status is never part of a machine's JSON: it is only the `simple_status` list filter, whose
# values are the lowercase names of SimplifiedNodeStatus (node_constraint_filter_forms.py:1394-1445,
# maascommon/enums/node.py SimplifiedNodeStatusEnum).
SIMPLE_STATUS = {
    NEW: "new", COMMISSIONING: "commissioning", READY: "ready", ALLOCATED: "allocated", DEPLOYING: "deploying",
    DEPLOYED: "deployed", BROKEN: "broken", RELEASING: "releasing", DISK_ERASING: "releasing", TESTING: "testing",
    FAILED_COMMISSIONING: "failed", FAILED_DEPLOYMENT: "failed", FAILED_RELEASING: "failed",
    FAILED_DISK_ERASING: "failed", FAILED_TESTING: "failed",
}
SIMPLE_STATUS_CHOICES = ("allocated", "broken", "commissioning", "deployed", "deploying", "failed", "new", "ready",
                         "releasing", "rescue_mode", "testing", "other")
# Commission is actionable only from these (node_action.py Commission.actionable_statuses).
COMMISSIONABLE = (NEW, FAILED_COMMISSIONING, READY, BROKEN)
# api/machines.py RELEASABLE_STATUSES.
RELEASABLE = (ALLOCATED, RESERVED, BROKEN, DEPLOYING, DEPLOYED, FAILED_DEPLOYMENT, FAILED_DISK_ERASING,
              FAILED_RELEASING)
# models/tag.py Tag.name: RegexValidator(_tag_name_regex), max_length=256.
TAG_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
COMMISSIONING_SCRIPTS = ("00-maas-00-support-info", "00-maas-01-cpuinfo", "00-maas-02-virtuality",
                         "00-maas-03-install-lldpd", "00-maas-06-dhcp-unconfigured-ifaces", "20-maas-01-install-lldpd",
                         "30-maas-01-bmc-config", "50-maas-01-commissioning")
FAILING_SCRIPT = "30-maas-01-bmc-config"
# Ubuntu releases the lab's boot resources hold, by series and by version (forms/__init__.py:561 accepts
# `jammy`, `ubuntu/jammy` and, since 3.6, `22.04`).
DISTROS = {"jammy": "22.04", "noble": "24.04", "focal": "20.04"}
# The lab's synced boot resources, as GET /boot-resources/ lists them (api/boot_resources.py:boot_resource_to_dict:
# the resource's `extra`, such as `subarches`, is merged into its JSON; api/examples/boot-resources.json).
BOOT_RESOURCES = [
    {"id": index + 1, "type": "Synced", "name": "ubuntu/%s" % series, "architecture": "%s/ga-%s" % (arch, version),
     "subarches": "generic,hwe-%s,ga-%s" % (version, version)}
    for index, (arch, (series, version)) in enumerate(
        (arch, distro) for arch in ("amd64", "arm64") for distro in sorted(DISTROS.items()))]
# create_machine (api/machines.py): an architecture or subarchitecture naming a kernel is refused up front.
HWE_IN_ARCHITECTURE = re.compile("(hwe|ga)-.+")


class StateViolation(Exception):
    """An action that MAAS refuses in the machine's state: HTTP 409."""


class BadRequest(Exception):
    """Invalid parameters: HTTP 400 with MAAS's {field: [messages]} body."""

    def __init__(self, errors: Dict[str, List[str]]):
        super().__init__(str(errors))
        self.errors = errors


class NotFound(Exception):
    pass


class Forbidden(Exception):
    """Django's PermissionDenied: HTTP 403 with the exception's text (often empty) (middleware.py:171)."""


ADMIN_ONLY = "This method is reserved for admin users."


@dataclass
class Durations:
    commissioning: float = 2.0
    deploying: float = 2.0
    releasing: float = 1.0
    erasing: float = 1.0
    power: float = 0.5  # a power change is queued and reaches the BMC a moment later


@dataclass
class Faults:
    fail_commissioning: List[str] = field(default_factory=list)  # hostnames or system ids, or "*"
    fail_deployment: List[str] = field(default_factory=list)
    http_503: int = 0  # the next N requests answer 503
    http_504: int = 0  # the next N requests answer 504, as when an RPC to the rack times out
    drop_connections: int = 0  # the next N requests are cut without an answer
    # MAAS itself never answers 429: no handler or middleware of src/maasserver (9e51f33) raises a "Too Many
    # Requests". A rate-limiting reverse proxy in front of the region can, with or without Retry-After, so the
    # lab keeps it as a knob: the next N requests get 429, with `Retry-After: retry_after` if retry_after_header.
    http_429: int = 0
    retry_after: int = 1
    retry_after_header: bool = True
    # The next N writes MAAS carries out (answer below 400) lose their answer: the connection drops after the
    # change is committed, as when a proxy or the network fails between MAAS and the client.
    lose_write_answers: int = 0
    slow_seconds: float = 0.0  # every request waits this long first


def _system_id(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_lowercase + string.digits) for _index in range(6))


def form_value(form: Dict[str, List[str]], key: str, default: Optional[str] = None) -> Optional[str]:
    """The first value of a form field (MAAS forms repeat fields), or the default."""
    return (form.get(key) or [default])[0]


@dataclass
class Machine:
    system_id: str
    hostname: str
    architecture: str
    power_type: str
    power_parameters: Dict[str, str]
    macs: List[str]
    domain: str = "maas"
    description: str = ""
    zone: str = "default"
    pool: str = "default"
    status: int = NEW
    power_state: str = "unknown"  # models/node.py:1189: POWER_STATE.UNKNOWN until the BMC is queried
    power_pending: Optional[tuple] = None  # (due time, state) of a power change on its way to the BMC
    tags: List[str] = field(default_factory=list)
    owner: Optional[str] = None
    osystem: str = ""
    distro_series: str = ""
    hwe_kernel: Optional[str] = None
    user_data: Optional[str] = None
    locked: bool = False
    commissioned: bool = False
    ip_addresses: List[str] = field(default_factory=list)
    status_message: str = ""
    previous_status: int = NEW
    pending: Optional[tuple] = None  # (due time, action) finishing a long operation
    results: List[dict] = field(default_factory=list)  # commissioning script results
    cpu_count: int = 0
    memory: int = 0


class MaasModel:
    def __init__(self, durations: Durations = None, seed: int = 0):
        self.lock = threading.RLock()
        self.durations = durations or Durations()
        self.faults = Faults()
        self.rng = random.Random(seed or time.time_ns())
        self.machines: Dict[str, Machine] = {}
        self.tags: Dict[str, dict] = {}
        self.zones: Dict[str, dict] = {"default": {"id": 1, "name": "default", "description": ""}}
        self.pools: Dict[str, dict] = {"default": {"id": 0, "name": "default", "description": "Default pool"}}
        self.next_id = 100

    # -- time -----------------------------------------------------------------------------------

    def advance(self, now: Optional[float] = None) -> None:
        """Finishes every long operation whose time has come."""
        now = now if now is not None else time.monotonic()
        with self.lock:
            for machine in self.machines.values():
                if machine.power_pending and machine.power_pending[0] <= now:
                    machine.power_state, machine.power_pending = machine.power_pending[1], None
                if machine.pending and machine.pending[0] <= now:
                    action = machine.pending[1]
                    machine.pending = None
                    getattr(self, "_finish_" + action)(machine)

    def _schedule(self, machine: Machine, seconds: float, action: str) -> None:
        machine.pending = (time.monotonic() + seconds, action)

    # -- lookups --------------------------------------------------------------------------------

    def machine(self, system_id: str) -> Machine:
        try:
            return self.machines[system_id]
        except KeyError:
            raise NotFound("No Machine matches the given query.")

    def _move(self, machine: Machine, target: int, action: str) -> None:
        if target != machine.status and target not in TRANSITIONS.get(machine.status, set()):
            raise StateViolation("Can't %s a machine that is in the '%s' state" % (action, STATUS_NAMES[machine.status]))
        machine.previous_status, machine.status = machine.status, target

    # -- creation and updates ---------------------------------------------------------------------

    def check_power(self, power_type: Optional[str], params: Dict[str, str], errors: Dict[str, List[str]]) -> None:
        if power_type is None:
            return
        if power_type not in DRIVERS:
            errors["power_type"] = ["Select a valid choice. %s is not one of the available choices." % power_type]
            return
        known = {f["name"] for f in DRIVERS[power_type]["fields"]}
        unknown = sorted(set(params) - known)
        if unknown:
            errors["power_parameters"] = ["Unknown parameter(s) for %s: %s" % (power_type, ", ".join(unknown))]
        missing = missing_required(power_type, params)
        if missing:
            errors["power_parameters"] = errors.get("power_parameters", []) + [
                "%s: This field is required." % p for p in missing]

    def create_machine(self, form: Dict[str, List[str]], is_admin: bool = True) -> Machine:
        """MachinesHandler.create (api/machines.py:1898-2017) through create_machine, get_machine_create_form and
        WithMACAddressesMixin (forms/__init__.py:1446-1588)."""
        value = functools.partial(form_value, form)
        if HWE_IN_ARCHITECTURE.search(value("architecture") or ""):
            # api/machines.py:create_machine raises MAASAPIValidationError with a plain message: a 400 text body.
            raise BadRequest("hwe kernel must be specified using the min_hwe_kernel argument.")
        errors: Dict[str, List[str]] = {}
        power_type = value("power_type")
        params = power_parameters_of(form, errors)
        self.check_power(power_type, params, errors)
        macs = [m.lower() for m in form.get("mac_addresses") or [] if m]
        needs_macs = requires_macs_and_architecture(form)
        if not macs and needs_macs:
            errors["mac_addresses"] = ["This field is required."]
        if not macs and power_type and power_type != "ipmi" and "power_type" not in errors:
            # MachineForm.clean (forms/__init__.py:872-890)
            errors["power_type"] = ["Can't set power type to %s without network interfaces" % power_type]
        for mac in macs:
            if not _valid_mac(mac):
                errors.setdefault("mac_addresses", []).append("'%s' is not a valid MAC address." % mac)
        architecture = fix_architecture(value("architecture"))
        if not architecture and needs_macs:
            errors["architecture"] = ["This field is required."]
        elif architecture and architecture not in usable_architectures():
            errors["architecture"] = [invalid_architecture(architecture)]
        if not architecture and not needs_macs:
            macs = []  # WithMACAddressesMixin.save: ipmi without architecture boots into enlistment instead
        if is_admin:
            # The administrator's create form (AdminMachineWithMACAddressesForm through get_machine_create_form,
            # forms/__init__.py) has AdminNodeForm's zone and pool fields, ModelChoiceFields by name, and
            # AdminMachineForm.save puts the machine in them; a user's form has neither field, so a user's zone and
            # pool are ignored (the machine lands in the defaults).
            if value("zone") is not None and value("zone") not in self.zones:
                errors["zone"] = ["Select a valid choice. That choice is not one of the available choices."]
            if value("pool") is not None and value("pool") not in self.pools:
                errors["pool"] = ["Select a valid choice. That choice is not one of the available choices."]
        hostname = value("hostname")
        with self.lock:
            holders = {m: machine.hostname for machine in self.machines.values() for m in machine.macs}
            in_use = ["MAC address %s already in use on %s." % (mac, holders[mac]) for mac in macs if mac in holders]
            if in_use:
                # WithMACAddressesMixin.clean_mac_addresses (_mac_in_use_on_node_error); with several MACs,
                # is_valid merges the field's errors into one (merge_error_messages, forms/__init__.py:1415).
                errors.setdefault("mac_addresses", []).extend(in_use)
            if len(form.get("mac_addresses") or []) > 1 and errors.get("mac_addresses"):
                errors["mac_addresses"] = ["One or more MAC addresses is invalid. (%s)"
                                           % " \u2014 ".join(errors["mac_addresses"][:10])]
            if hostname and any(m.hostname == hostname for m in self.machines.values()):
                errors["hostname"] = ["Node with this Hostname already exists."]
            if errors:
                raise BadRequest(errors)
            system_id = _system_id(self.rng)
            while system_id in self.machines:
                system_id = _system_id(self.rng)
            machine = Machine(system_id=system_id, hostname=hostname or "maas-%s" % system_id,
                              architecture=architecture or "",
                              power_type=power_type or "", power_parameters=params, macs=macs,
                              domain=value("domain") or "maas", description=value("description") or "")
            if is_admin:
                machine.zone, machine.pool = value("zone") or machine.zone, value("pool") or machine.pool
            self.machines[system_id] = machine
            if _true(value("deployed")):
                machine.status, machine.commissioned = DEPLOYED, True
            elif is_admin and (value("commission") is None or _true(value("commission"))):
                # MachinesHandler.create commissions only for users who can edit machines: a non-admin's
                # machine is created and left New.
                self._start_commissioning(machine)
            return machine

    def update_machine(self, machine: Machine, form: Dict[str, List[str]]) -> Machine:
        value = functools.partial(form_value, form)
        errors: Dict[str, List[str]] = {}
        if value("zone") is not None and value("zone") not in self.zones:
            errors["zone"] = ["Select a valid choice. That choice is not one of the available choices."]
        if value("pool") is not None and value("pool") not in self.pools:
            errors["pool"] = ["Select a valid choice. That choice is not one of the available choices."]
        architecture = fix_architecture(value("architecture"))
        if architecture and architecture not in usable_architectures():
            errors["architecture"] = [invalid_architecture(architecture)]  # MachineForm's architecture field
        params = power_parameters_of(form, errors)
        power_type = value("power_type")
        if power_type is not None or params:
            merged = dict(machine.power_parameters if power_type in (None, machine.power_type) else {}, **params)
            self.check_power(power_type or machine.power_type, merged, errors)
        hostname = value("hostname")
        if hostname and any(m.hostname == hostname and m is not machine for m in self.machines.values()):
            errors["hostname"] = ["Node with this Hostname already exists."]
        if errors:
            raise BadRequest(errors)
        for key in ("hostname", "domain", "zone", "pool", "description"):
            if value(key) is not None:
                setattr(machine, key, value(key))
        machine.architecture = architecture or machine.architecture
        if power_type is not None:
            machine.power_type = power_type
            machine.power_parameters = {}
        machine.power_parameters.update(params)
        return machine

    def delete_machine(self, machine: Machine) -> None:
        with self.lock:
            self.machines.pop(machine.system_id, None)
            for tag in self.tags.values():
                tag["machines"].discard(machine.system_id)

    # -- operations -------------------------------------------------------------------------------

    def _fails(self, machine: Machine, names: List[str]) -> bool:
        return "*" in names or machine.hostname in names or machine.system_id in names

    def _start_commissioning(self, machine: Machine) -> None:
        self._move(machine, COMMISSIONING, "commission")
        machine.status_message = "Commissioning"
        _power_observed(machine, "on")
        self._schedule(machine, self.durations.commissioning, "commissioning")

    def _finish_commissioning(self, machine: Machine) -> None:
        failed = self._fails(machine, self.faults.fail_commissioning)
        machine.results = [{"name": name, "status": 3 if failed and name == FAILING_SCRIPT else 2,
                            "status_name": "Failed" if failed and name == FAILING_SCRIPT else "Passed",
                            "exit_status": 1 if failed and name == FAILING_SCRIPT else 0}
                           for name in COMMISSIONING_SCRIPTS]
        _power_observed(machine, "off")
        if failed:
            machine.status, machine.status_message = FAILED_COMMISSIONING, "Failed commissioning"
            return
        machine.status, machine.commissioned, machine.status_message = READY, True, "Ready"
        digest = hashlib.sha256(machine.system_id.encode()).digest()
        machine.cpu_count, machine.memory = 8 + digest[0] % 4 * 8, 16384 * (1 + digest[1] % 4)
        if not machine.macs:
            # Commissioning discovers the interfaces a BMC-enlisted machine did not declare.
            machine.macs = ["52:54:00:%02x:%02x:%02x" % tuple(digest[2:5])]
        machine.architecture = machine.architecture or "amd64/generic"

    def commission(self, machine: Machine) -> None:
        """CommissionForm.clean (forms/ephemeral.py:53-58): a 400, not a 409, in a state it cannot start from."""
        with self.lock:
            if machine.status not in COMMISSIONABLE:
                raise BadRequest({"__all__": ["Commission is not available because of the current state of the node."]})
            self._start_commissioning(machine)

    def deploy(self, machine: Machine, form: Dict[str, List[str]], user: str) -> None:
        value = functools.partial(form_value, form)
        with self.lock:
            if machine.status == READY:
                self._move(machine, ALLOCATED, "deploy")
                machine.owner = user
            distro = series_of(value("distro_series") or "noble")
            if distro is None:
                raise BadRequest({"distro_series": ["'%s' is not a valid distro_series.  It should be one of: %s."
                                                    % (value("distro_series"),
                                                       ", ".join("'ubuntu/%s'" % d for d in DISTROS))]})
            self._move(machine, DEPLOYING, "deploy")
            machine.osystem, machine.distro_series = "ubuntu", distro
            machine.hwe_kernel, machine.user_data = value("hwe_kernel"), value("user_data")
            machine.status_message = "Deploying"
            _power_observed(machine, "on")
            machine.owner = machine.owner or user
            self._schedule(machine, self.durations.deploying, "deploying")

    def _finish_deploying(self, machine: Machine) -> None:
        if self._fails(machine, self.faults.fail_deployment):
            machine.status, machine.status_message = FAILED_DEPLOYMENT, "Failed deployment"
            return
        digest = hashlib.sha256(machine.system_id.encode()).digest()
        machine.ip_addresses = ["10.20.%d.%d" % (digest[0] % 250, 2 + digest[1] % 250)]
        machine.status, machine.status_message = DEPLOYED, "Deployed"

    def release(self, machine: Machine, form: Dict[str, List[str]]) -> None:
        """MachineHandler.release (api/machines.py:880-925); a locked machine is refused earlier (403)."""
        value = functools.partial(form_value, form)
        with self.lock:
            if machine.status in (READY, RELEASING):
                return  # the postcondition already holds: MAAS answers 200
            if machine.status not in RELEASABLE:
                raise StateViolation("Machine cannot be released in its current state ('%s')."
                                     % STATUS_NAMES[machine.status])
            erase = any(_true(value(k)) for k in ("erase", "secure_erase", "quick_erase"))
            self._move(machine, DISK_ERASING if erase else RELEASING, "release")
            machine.status_message = "Erasing disks" if erase else "Releasing"
            self._schedule(machine, self.durations.erasing if erase else self.durations.releasing, "releasing")

    def _finish_releasing(self, machine: Machine) -> None:
        machine.status, machine.status_message = READY, "Released"
        machine.owner, machine.osystem, machine.distro_series = None, "", ""
        machine.ip_addresses, machine.user_data = [], None
        _power_observed(machine, "off")

    def abort(self, machine: Machine) -> None:
        with self.lock:
            back = {COMMISSIONING: machine.previous_status if machine.previous_status != COMMISSIONING else NEW,
                    DEPLOYING: ALLOCATED, DISK_ERASING: FAILED_DISK_ERASING, RELEASING: FAILED_RELEASING}
            if machine.status not in back:
                raise StateViolation("Cannot abort in current state: '%s'" % STATUS_NAMES[machine.status])
            machine.pending = None
            machine.status = back[machine.status]
            _power_observed(machine, "off")

    def mark_broken(self, machine: Machine, comment: str) -> None:
        with self.lock:
            self._move(machine, BROKEN, "mark broken")
            machine.pending, machine.status_message = None, comment or "Marked broken"

    def mark_fixed(self, machine: Machine) -> None:
        """Node.mark_fixed (models/node.py:4116-4143): back to Deployed if it was Deployed, else Ready."""
        with self.lock:
            if machine.status != BROKEN:
                raise StateViolation("Can't mark a non-broken node as 'Ready'.")
            machine.status = DEPLOYED if machine.previous_status == DEPLOYED else READY
            machine.status_message = "Marked fixed"
            machine.osystem, machine.distro_series, machine.hwe_kernel = "", "", None

    def set_lock(self, machine: Machine, locked: bool) -> None:
        with self.lock:
            if locked and machine.status not in (DEPLOYED, DEPLOYING):
                raise StateViolation("Machine is not deployed")
            machine.locked = locked

    def power(self, machine: Machine, state: str) -> None:
        """NodeHandler.power_on/power_off (api/nodes.py:1020-1110) and Node.start/stop (models/node.py:6133,
        6181-6230): the change is queued after the request, so the answer still shows the old power_state."""
        with self.lock:
            if state == "on" and machine.owner is None:
                raise StateViolation("Can't start node: it hasn't been allocated.")
            if not DRIVERS.get(machine.power_type, {}).get("queryable", False):
                return  # a manual power type can neither start nor stop: a no-op, not an error
            machine.power_pending = (time.monotonic() + self.durations.power, state)

    def allocate(self, form: Dict[str, List[str]], user: str) -> Machine:
        value = functools.partial(form_value, form)
        wanted_tags = [t for v in form.get("tags") or [] for t in v.split(",") if t]
        not_tags = [t for v in form.get("not_tags") or [] for t in v.split(",") if t]
        with self.lock:
            self._check_allocate_names(value, wanted_tags)
            for machine in sorted(self.machines.values(), key=lambda m: m.hostname):
                if machine.status != READY or machine.locked:
                    continue
                if any(t not in machine.tags for t in wanted_tags) or any(t in machine.tags for t in not_tags):
                    continue
                if value("pool") and machine.pool != value("pool") or value("zone") and machine.zone != value("zone"):
                    continue
                if value("name") and machine.hostname != value("name"):
                    continue
                if value("system_id") and machine.system_id != value("system_id"):
                    continue
                if value("cpu_count") and machine.cpu_count < float(value("cpu_count")):
                    continue
                if value("mem") and machine.memory < float(value("mem")):
                    continue
                if not _true(value("dry_run")):
                    self._move(machine, ALLOCATED, "allocate")
                    machine.owner = user
                return machine
        constraints = ", ".join("%s=%s" % (k, ",".join(v)) for k, v in sorted(form.items()) if k != "op")
        raise StateViolation("No available machine matches constraints: [%s]" % constraints)

    def _check_allocate_names(self, value, wanted_tags: List[str]) -> None:
        """AcquireNodeForm.clean_tags, clean_zone, clean_pool (maasserver/node_constraint_filter_forms.py): a tag,
        zone or pool MAAS does not have is a 400 naming it, before any machine is looked at."""
        errors = {}
        unknown_tags = sorted(set(wanted_tags) - set(self.tags))
        if unknown_tags:
            errors["tags"] = ["No such tag(s): %s." % ", ".join("'%s'" % t for t in unknown_tags)]
        if value("zone") and value("zone") not in self.zones:
            errors["zone"] = ["No such zone: '%s'." % value("zone")]
        if value("pool") and value("pool") not in self.pools:
            errors["pool"] = ["No such pool: '%s'." % value("pool")]
        if errors:
            raise BadRequest(errors)

    # -- tags, zones, pools -------------------------------------------------------------------------

    def create_tag(self, name: str, comment: str = "", definition: str = "") -> dict:
        """TagsHandler.create with Tag.name's validators (models/tag.py:36-43)."""
        with self.lock:
            if not name:
                raise BadRequest({"name": ["This field is required."]})
            if len(name) > 256:
                raise BadRequest({"name": ["Ensure this value has at most 256 characters (it has %d)." % len(name)]})
            if not TAG_NAME.match(name):
                raise BadRequest({"name": ["Enter a valid value."]})
            if name in self.tags:
                raise BadRequest({"name": ["Tag with this Name already exists."]})
            self.tags[name] = {"name": name, "comment": comment, "definition": definition, "kernel_opts": "",
                               "machines": set()}
            return self.tags[name]

    def update_tag_nodes(self, name: str, add: List[str], remove: List[str]) -> dict:
        """TagHandler.update_nodes (api/tags.py:307-409): unknown ids are ignored; the counts are of the
        known machines named, whether or not they already had the tag."""
        with self.lock:
            if name not in self.tags:
                raise NotFound("No Tag matches the given query.")
            tag = self.tags[name]
            added = sorted({s for s in add if s in self.machines})
            removed = sorted({s for s in remove if s in self.machines})
            for system_id in added:
                tag["machines"].add(system_id)
                if name not in self.machines[system_id].tags:
                    self.machines[system_id].tags.append(name)
            for system_id in removed:
                tag["machines"].discard(system_id)
                if name in self.machines[system_id].tags:
                    self.machines[system_id].tags.remove(name)
            return {"added": len(added), "removed": len(removed)}

    def create_named(self, table: Dict[str, dict], name: str, description: str, what: str) -> dict:
        with self.lock:
            if not name:
                raise BadRequest({"name": ["This field is required."]})
            if name in table:
                raise BadRequest({"name": ["%s with this Name already exists." % what]})
            self.next_id += 1
            table[name] = {"id": self.next_id, "name": name, "description": description or ""}
            return table[name]

    def snapshot(self, machine: Machine) -> Machine:
        with self.lock:
            return copy.deepcopy(machine)


def fix_architecture(architecture: Optional[str]) -> Optional[str]:
    """api/machines.py:fix_architecture: an architecture without a '/' means its generic subarchitecture."""
    if architecture and "/" not in architecture:
        return architecture + "/generic"
    return architecture


def usable_architectures() -> List[str]:
    """BootResourceService.get_usable_architectures (maasservicelayer/services/bootresources.py): each synced
    resource's architecture and arch/subarch for its `subarches`, leaving out those naming a kernel (hwe-, ga-)."""
    usable = set()
    for resource in BOOT_RESOURCES:
        arch = resource["architecture"].split("/")[0]
        candidates = [resource["architecture"]] + ["%s/%s" % (arch, sub.strip())
                                                   for sub in resource.get("subarches", "").split(",") if sub]
        usable.update(c for c in candidates if "hwe-" not in c and "ga-" not in c)
    return sorted(usable)


def invalid_architecture(architecture: str) -> str:
    """The architecture ChoiceField's message (forms/__init__.py:set_up_architecture_field,
    utils/forms.py:compose_invalid_choice_text)."""
    return "'%s' is not a valid architecture.  It should be one of: %s." % (
        architecture, ", ".join("'%s'" % a for a in usable_architectures()))


def requires_macs_and_architecture(form: Dict[str, List[str]]) -> bool:
    """forms/__init__.py:1446-1450: only ipmi (or a deployed machine without a power type) may omit them."""
    power_type = form_value(form, "power_type", "unknown")
    return not (power_type == "ipmi" or (_true(form_value(form, "deployed")) and power_type == "unknown"))


def power_parameters_of(form: Dict[str, List[str]], errors: Dict[str, List[str]]) -> Dict[str, str]:
    """WithPowerTypeMixin._get_power_parameters (forms/__init__.py:262-288): a JSON `power_parameters`
    field, completed by `power_parameters_<key>` fields (api/utils.py:145)."""
    params: Dict[str, str] = {}
    text = form_value(form, "power_parameters")
    if text and text.strip():
        try:
            params.update(json.loads(text))
        except ValueError:
            errors["power_parameters"] = ["Failed to parse JSON power_parameters"]
    params.update({k[len("power_parameters_"):]: v[0] for k, v in form.items()
                   if k.startswith("power_parameters_") and k != "power_parameters_skip_check"})
    return params


def series_of(distro: str) -> Optional[str]:
    """The series a deploy's distro_series names: `jammy`, `ubuntu/jammy` or `22.04`, else None."""
    name = distro.split("/", 1)[1] if distro.startswith("ubuntu/") else distro
    if name in DISTROS:
        return name
    return next((series for series, version in DISTROS.items() if version == name), None)


def _power_observed(machine: Machine, state: str) -> None:
    """The power state MAAS records when a lifecycle step powers the machine; a driver MAAS cannot query
    (manual) never reports one, so such a machine stays `unknown`."""
    if DRIVERS.get(machine.power_type, {}).get("queryable", False):
        machine.power_state = state


def _true(value: Optional[str]) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _valid_mac(mac: str) -> bool:
    parts = mac.split(":")
    return len(parts) == 6 and all(len(p) == 2 and all(c in string.hexdigits for c in p) for p in parts)
