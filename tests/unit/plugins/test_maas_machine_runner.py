"""maas_machine's planning rules that follow MAAS, without a network."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasError
from ansible_collections.palette.vmo.plugins.module_utils.maas.machine_runner import (
    PowerTypes, already_exists, creation_problems, duplicate_problems, power_problems, same_machine,
    usable_architectures, validate)

IPMI = {"name": "ipmi", "queryable": True, "fields": [
    {"name": "power_driver", "required": True, "default": "LAN_2_0"},
    {"name": "power_address", "required": True, "default": ""}]}
MANUAL = {"name": "manual", "queryable": False, "fields": []}


def request(**values):
    return dict({"state": "ready", "hostname": "node-1"}, **values)


def test_a_required_field_with_a_default_need_not_be_given():
    types = PowerTypes([IPMI, MANUAL])
    assert types.fields["ipmi"] == {"power_driver": False, "power_address": True}
    assert types.undriven == {"manual"}
    validate([request(power_type="ipmi", power_parameters={"power_address": "10.0.0.1"})], types.fields, {}, {})


@pytest.mark.parametrize("tag", ["café", "a" * 257, "two words"])
def test_tag_names_outside_maas_rules_are_refused(tag):
    with pytest.raises(ModuleFailure) as err:
        validate([request(tags=[tag])], {}, {}, {})
    assert "machine node-1: tags: %r is not a valid tag name" % tag in str(err.value)


def test_only_ipmi_machines_are_created_without_macs():
    assert creation_problems(request(power_type="ipmi"), None) == []
    assert creation_problems(request(power_type="redfish", pxe_mac="52:54:00:00:00:01"), None) == []
    assert creation_problems(request(power_type="redfish"), {"system_id": "abc"}) == []
    assert creation_problems(request(power_type="redfish"), None) == [
        "machine node-1: mac_addresses: a redfish machine needs pxe_mac or mac_addresses to be created; "
        "MAAS enlists without MACs only through an ipmi BMC"]


def test_power_on_needs_an_owner_at_the_end_of_the_run():
    assert power_problems(request(state="deployed", power="on"), None) == []
    assert power_problems(request(state="present", power="on"), {"owner": "admin"}) == []
    assert "Can't start node: it hasn't been allocated." in power_problems(request(state="present", power="on"),
                                                                           {"owner": None})[0]


def test_form_wide_errors_are_quoted_as_maas_words():
    body = {"__all__": ["Commission is not available because of the current state of the node."]}
    assert MaasError(400, body, "POST", "/machines/x/").describe() == \
        "Commission is not available because of the current state of the node."
    assert MaasError(400, {"hostname": ["Taken."]}, "POST", "/").describe() == "hostname: Taken."


def test_the_example_inventory_servers_can_be_created():
    """The example group_vars are what users copy: every server there must pass the input checks MAAS's own
    create form makes (only ipmi may come without MACs)."""
    from pathlib import Path

    import yaml

    example = Path(__file__).parents[3] / "inventories" / "example" / "group_vars" / "all.yml"
    servers = yaml.safe_load(example.read_text())["maas_enroll_servers"]
    assert servers
    assert [p for server in servers for p in creation_problems(request(**server), None)] == []


# GET /boot-resources/ as MAAS answers it (src/maasserver/api/examples/boot-resources.json).
BOOT_RESOURCES = [
    {"name": "grub-efi-signed/uefi", "architecture": "amd64/generic"},
    {"name": "ubuntu/bionic", "architecture": "amd64/ga-18.04", "subarches": "generic,hwe-p,ga-16.04,ga-18.04"},
    {"name": "ubuntu/noble", "architecture": "arm64/ga-24.04", "subarches": "generic", "platform": "xgene-uboot"},
]


def test_usable_architectures_follow_maas_rule():
    assert usable_architectures(BOOT_RESOURCES) == {"amd64/generic", "arm64/generic", "arm64/xgene-uboot"}


@pytest.mark.parametrize("architecture, accepted", [("amd64", True), ("amd64/generic", True), ("arm64", True),
                                                    ("x86_64", False), ("amd64/hwe-22.04", False), ("s390x", False)])
def test_architecture_is_checked_against_the_boot_resources(architecture, accepted):
    usable = usable_architectures(BOOT_RESOURCES)
    if accepted:
        validate([request(architecture=architecture)], {}, {}, {}, usable)
    else:
        with pytest.raises(ModuleFailure) as err:
            validate([request(architecture=architecture)], {}, {}, {}, usable)
        assert "machine node-1: architecture: %r" % architecture in str(err.value)


def test_every_identity_is_unique_in_a_batch():
    bmc = {"power_address": "10.0.0.9"}
    assert duplicate_problems([{"power_parameters": {"power_address": "10.0.0.8"}},
                               {"power_parameters": {"power_address": "10.0.0.9"}}]) == []
    assert duplicate_problems([request(hostname="a", power_parameters=bmc), request(hostname="b", power_parameters=bmc)]) \
        == ["machine b: power_parameters.power_address: 10.0.0.9 is declared more than once in this task "
            "(also by machine a)"]
    assert duplicate_problems([request(hostname="a", pxe_mac="52:54:00:00:00:0A"),
                               request(hostname="b", mac_addresses=["52:54:00:00:00:0a"])]) == [
        "machine b: mac_addresses: 52:54:00:00:00:0a is declared more than once in this task (also by machine a)"]
    assert len(duplicate_problems([request(system_id="abc", hostname="a"), request(system_id="abc", hostname="b")])) == 1


def test_an_existing_machine_is_adopted_only_when_every_identity_matches():
    machine = {"system_id": "x1", "hostname": "node-1", "interface_set": [{"mac_address": "52:54:00:00:00:01"}]}
    wanted = request(pxe_mac="52:54:00:00:00:01", power_parameters={"power_address": "10.0.0.1"})
    assert same_machine(wanted, machine, {"power_address": "10.0.0.1"})
    assert not same_machine(wanted, machine, {"power_address": "10.0.0.2"})
    assert not same_machine(dict(wanted, pxe_mac="52:54:00:00:00:02"), machine, {"power_address": "10.0.0.1"})
    assert not same_machine(dict(wanted, hostname="node-2"), machine, {"power_address": "10.0.0.1"})


def test_only_maas_already_exists_answers_lead_to_adoption():
    assert already_exists(MaasError(400, {"hostname": ["Node with this Hostname already exists."]}, "POST", "/"))
    assert already_exists(MaasError(400, {"mac_addresses": [
        "MAC address 52:54:00:00:00:01 already in use on node-1."]}, "POST", "/"))
    assert not already_exists(MaasError(400, {"architecture": ["'x' is not a valid architecture."]}, "POST", "/"))
    assert not already_exists(MaasError(409, "Node with this Hostname already exists.", "POST", "/"))


# -- the plan and the converge loop against a fake MAAS ----------------------------------------------------

from ansible_collections.palette.vmo.plugins.module_utils.maas import machine_runner  # noqa: E402

# What MAAS moves a machine to when it finishes a transitional status, read by read.
FINISHES = {"Commissioning": "Ready", "Deploying": "Deployed", "Releasing": "Ready"}
DEFAULTS = dict({key: None for key in machine_runner.MACHINE_OPTIONS}, machines=None, wait=True, wait_timeout=60,
                poll_interval=0.001, concurrency=4, maas_url="https://maas.example/MAAS", maas_api_key="a:b:c")


class FakeMaas:
    """The requests maas_machine sends, answered as MAAS would; each read of machines finishes what is moving
    (unless `stuck`), and a host name in `fail_commissioning` fails its commissioning."""

    def __init__(self, *machines, fail_commissioning=(), stuck=False):
        self.machines = {m["system_id"]: m for m in machines}
        self.power = {m["system_id"]: {"power_address": m.pop("power_address", "")} for m in machines}
        self.tags, self.writes, self.fail_commissioning, self.stuck = set(), [], set(fail_commissioning), stuck

    @staticmethod
    def machine(system_id, hostname, status="Ready", **extra):
        return dict({"system_id": system_id, "hostname": hostname, "status_name": status, "power_state": "off",
                     "power_type": "ipmi", "tag_names": [], "zone": {"name": "default"}, "pool": {"name": "default"},
                     "domain": {"name": "maas"}, "architecture": "amd64/generic", "interface_set": [],
                     "owner": None, "locked": False}, **extra)

    def _advance(self):
        for machine in self.machines.values():
            if machine["status_name"] in FINISHES and not self.stuck:
                failing = machine["status_name"] == "Commissioning" and machine["hostname"] in self.fail_commissioning
                machine["status_name"] = "Failed commissioning" if failing else FINISHES[machine["status_name"]]

    def get(self, path, op=None, **query):
        if op == "describe_power_types":
            return [IPMI, MANUAL]
        if op == "power_parameters":
            return self.power
        if path in ("/zones/", "/resourcepools/"):
            return [{"name": "default"}, {"name": "rack-1"}, {"name": "vmo"}]
        if path == "/boot-resources/":
            return BOOT_RESOURCES
        if path == "/tags/":
            return [{"name": tag} for tag in sorted(self.tags)]
        if path == "/machines/":
            self._advance()
            return [dict(m) for sid, m in sorted(self.machines.items()) if sid in (query.get("id") or [sid])]
        if path.startswith("/nodes/"):
            return [{"results": [{"name": "30-maas-01-bmc-config", "status_name": "Failed", "exit_status": 1}]}]
        return dict(self.machines[path.split("/")[2]])

    def post(self, path, op=None, **data):
        self.writes.append(("POST", path, op, data))
        if path == "/machines/":
            system_id = "m%d" % (len(self.machines) + 1)
            self.machines[system_id] = self.machine(
                system_id, data["hostname"], "Commissioning" if data.get("commission") else "New",
                zone={"name": data.get("zone", "default")}, pool={"name": data.get("pool", "default")})
            self.power[system_id] = {"power_address": data.get("power_parameters_power_address")}
            return dict(self.machines[system_id])
        if path == "/tags/":
            self.tags.add(data["name"])
            return {"name": data["name"]}
        machine = self.machines.get(path.split("/")[2])
        if op == "update_nodes":
            machine = self.machines[data.get("add") or data.get("remove")]
            machine["tag_names"] = sorted(set(machine["tag_names"]) | {path.split("/")[2]} if "add" in data
                                          else set(machine["tag_names"]) - {path.split("/")[2]})
            return {}
        moves = {"commission": "Commissioning", "deploy": "Deploying", "release": "Releasing",
                 "mark_broken": "Broken", "mark_fixed": "Ready"}
        if op in moves:
            machine["status_name"] = moves[op]
        elif op in ("power_on", "power_off"):
            answer = dict(machine)  # MAAS answers with the power state from before the change
            machine["power_state"] = op[len("power_"):]
            return answer
        return dict(machine)

    def put(self, path, **data):
        self.writes.append(("PUT", path, None, data))
        machine = self.machines[path.split("/")[2]]
        machine.update({k: {"name": v} if k in ("zone", "pool", "domain") else v for k, v in data.items()})
        return dict(machine)

    def delete(self, path):
        self.writes.append(("DELETE", path, None, {}))
        del self.machines[path.split("/")[2]]


class Exited(Exception):
    pass


class FakeModule:
    def __init__(self, check_mode=False, **params):
        self.params = dict(DEFAULTS, **params)
        self.check_mode, self._diff, self.warnings, self.result = check_mode, False, [], None

    def warn(self, note):
        self.warnings.append(note)

    def exit_json(self, **result):
        self.result = result
        raise Exited()


def run_task(maas, monkeypatch, **params):
    """The task's result: what exit_json got, or the ModuleFailure's fail_json arguments with failed=True."""
    from ansible_collections.palette.vmo.plugins.module_utils.common.errors import failure_result

    monkeypatch.setattr(machine_runner, "MaasClient", lambda _params: maas)
    module = FakeModule(**params)
    try:
        machine_runner.run(module)
    except Exited:
        return module.result
    except ModuleFailure as err:
        return dict(failure_result(err), failed=True)
    raise AssertionError("the runner neither exited nor failed")


def actions_of(result):
    return [m["actions"] for m in result["machines"]]


def test_create_commission_tag_and_place_then_nothing_to_do(monkeypatch):
    maas = FakeMaas()
    task = dict(state="ready", zone="rack-1", pool="vmo", tags=["vmo"],
                machines=[{"hostname": "node-1", "power_type": "ipmi", "power_parameters": {"power_address": "10.0.0.1"}},
                          {"hostname": "node-2", "power_type": "ipmi", "power_parameters": {"power_address": "10.0.0.2"}}])
    planned = run_task(maas, monkeypatch, check_mode=True, **task)
    assert planned["changed"] is True and maas.writes == []
    assert actions_of(planned) == [["create", "create_tag", "tag"], ["create", "create_tag", "tag"]]
    first = run_task(maas, monkeypatch, **task)
    assert first["changed"] is True
    # Tags are created first, once each: the second machine does not list the first one's tag creation.
    assert actions_of(first) == [["create_tag", "create", "tag"], ["create", "tag"]]
    assert [(m["status_name"], m["zone"], m["pool"], m["tags"]) for m in first["machines"]] == \
        [("Ready", "rack-1", "vmo", ["vmo"])] * 2
    created = [w for w in maas.writes if w[1] == "/machines/"]
    assert [(w[3]["zone"], w[3]["pool"], w[3]["commission"]) for w in created] == [("rack-1", "vmo", True)] * 2
    del maas.writes[:]
    second = run_task(maas, monkeypatch, **task)
    assert second["changed"] is False and maas.writes == [] and actions_of(second) == [[], []]


def test_update_tags_and_power_of_an_existing_machine(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "node-1", "Deployed", tag_names=["old", "keep"], owner="admin",
                                     power_state="on"))
    result = run_task(maas, monkeypatch, hostname="node-1", state="deployed", pool="vmo", tags=["keep", "new"],
                      tags_exclusive=True, power="off")
    assert result["changed"] is True
    assert actions_of(result) == [["create_tag", "update", "tag", "power_off"]]
    assert ("PUT", "/machines/m1/", None, {"pool": "vmo"}) in maas.writes
    assert ("POST", "/machines/m1/", "power_off", {}) in maas.writes
    machine = result["machines"][0]
    assert (machine["pool"], machine["tags"], machine["power_state"]) == ("vmo", ["keep", "new"], "off")


def test_a_create_refused_as_existing_adopts_the_machine_and_converges_it(monkeypatch):
    maas = FakeMaas()
    existing = FakeMaas.machine("m9", "node-1", "Ready", interface_set=[{"mac_address": "52:54:00:00:00:01"}])

    def refuse_create(path, op=None, **data):
        if path == "/machines/":
            maas.machines["m9"], maas.power["m9"] = existing, {}  # created meanwhile by another run
            raise MaasError(400, {"hostname": ["Node with this Hostname already exists."]}, "POST", path)
        return FakeMaas.post(maas, path, op, **data)
    monkeypatch.setattr(maas, "post", refuse_create)
    result = run_task(maas, monkeypatch, hostname="node-1", pxe_mac="52:54:00:00:00:01", state="ready", pool="vmo")
    assert result["changed"] is True and actions_of(result) == [["adopt", "update"]]
    assert result["machines"][0]["pool"] == "vmo"


def test_deploy_walks_new_machines_through_commissioning(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "node-1", "New"))
    result = run_task(maas, monkeypatch, hostname="node-1", state="deployed", distro_series="jammy",
                      user_data="#cloud-config\n")
    assert actions_of(result) == [["commission", "deploy"]] and result["machines"][0]["status_name"] == "Deployed"
    deploy = next(w for w in maas.writes if w[2] == "deploy")
    assert deploy[3]["distro_series"] == "jammy" and deploy[3]["user_data"] == "I2Nsb3VkLWNvbmZpZwo="


def test_a_failed_commissioning_names_its_script(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "sick", "New"), fail_commissioning=["sick"])
    result = run_task(maas, monkeypatch, hostname="sick", state="ready")
    assert result["failed"] is True
    assert result["msg"] == "machine sick: Failed commissioning: 30-maas-01-bmc-config (exit 1)"
    assert [w[2] for w in maas.writes] == ["commission"]  # failed in this run: not tried again
    # Written before the failure: changed, and the machine with what was done to it.
    assert result["changed"] is True and actions_of(result) == [["commission"]]


def test_a_machine_found_failed_is_tried_once_more(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "sick", "Failed commissioning"), fail_commissioning=["sick"])
    result = run_task(maas, monkeypatch, hostname="sick", state="ready")
    assert result["msg"] == "machine sick: Failed commissioning: 30-maas-01-bmc-config (exit 1)"
    assert [w[2] for w in maas.writes] == ["commission"]
    healed = FakeMaas(FakeMaas.machine("m1", "sick", "Failed commissioning"))
    assert actions_of(run_task(healed, monkeypatch, hostname="sick", state="ready")) == [["commission"]]


def test_the_wait_times_out_naming_every_machine_still_moving(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "node-1", "New"), FakeMaas.machine("m2", "node-2", "Ready"),
                    FakeMaas.machine("m3", "node-3", "New"), stuck=True)
    result = run_task(maas, monkeypatch, state="ready", wait_timeout=0,
                      machines=[{"hostname": "node-1"}, {"hostname": "node-2"}, {"hostname": "node-3"}])
    assert result["failed"] is True
    assert result["msg"] == "timed out after 0s waiting for node-1 (Commissioning), node-3 (Commissioning)"
    assert result["changed"] is True and [m["hostname"] for m in result["machines"]] == ["node-1", "node-3"]


def test_a_refusal_names_the_machine_and_the_action_and_keeps_what_was_written(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "node-1", "Ready"), FakeMaas.machine("m2", "node-2", "Ready"))

    def refuse_m2(path, op=None, **data):
        if path == "/machines/m2/":
            raise MaasError(409, "Node is busy.", "POST", path + "?op=" + op)
        return FakeMaas.post(maas, path, op, **data)
    monkeypatch.setattr(maas, "post", refuse_m2)
    result = run_task(maas, monkeypatch, state="broken", comment="bad DIMM",
                      machines=[{"hostname": "node-1"}, {"hostname": "node-2"}])
    assert result["failed"] is True and result["msg"] == "machine node-2: mark_broken: Node is busy."
    assert result["errors"] == ["machine node-2: mark_broken: Node is busy."]
    assert result["changed"] is True and actions_of(result) == [["mark_broken"]]
    assert maas.machines["m1"]["status_name"] == "Broken"


def test_absent_deletes_and_a_repeated_delete_is_done(monkeypatch):
    maas = FakeMaas(FakeMaas.machine("m1", "node-1", "Ready"))
    result = run_task(maas, monkeypatch, hostname="node-1", state="absent")
    assert actions_of(result) == [["delete"]] and "m1" not in maas.machines
    assert run_task(maas, monkeypatch, hostname="node-1", state="absent")["changed"] is False


def test_bad_input_fails_before_any_request(monkeypatch):
    def no_maas(_params):
        raise AssertionError("no request expected")

    monkeypatch.setattr(machine_runner, "MaasClient", no_maas)
    with pytest.raises(ModuleFailure) as err:
        machine_runner.run(FakeModule(machines=[{"hostname": "node-1", "colour": "red"}]))
    assert err.value.result == {"changed": False, "machines": []}
    assert err.value.errors == ["machines[0] (node-1): unknown option(s) colour"]
