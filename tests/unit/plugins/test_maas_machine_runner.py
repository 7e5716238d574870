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
