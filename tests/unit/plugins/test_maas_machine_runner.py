"""maas_machine's planning rules that follow MAAS, without a network."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.maas_client import MaasError
from ansible_collections.palette.vmo.plugins.module_utils.maas_machine_runner import (
    PowerTypes, TaskFailure, creation_problems, power_problems, validate)

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
    with pytest.raises(TaskFailure) as err:
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
