"""maas_machine and maas_machine_info meet MAAS's own rules (admin-only operations, MAC requirements,
asynchronous power, wrong-state errors) as the simulator reproduces them from MAAS's source."""

import time
import uuid

import pytest

from .helpers import next_bmc

MODULE = "palette.vmo.maas_machine"
INFO = "palette.vmo.maas_machine_info"


@pytest.fixture
def fast_maas(maas):
    maas.reset()
    maas.durations(commissioning=0.5, deploying=0.5, releasing=0.5, erasing=0.5, power=1.0)
    yield maas
    maas.reset()


def ipmi(name, **extra):
    return dict({"hostname": name, "power_type": "ipmi",
                 "power_parameters": {"power_address": next_bmc(), "power_user": "operator", "power_pass": "pw"}}, **extra)


def args(maas, **extra):
    return dict(maas.connection(), poll_interval=0.2, **extra)


def name(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def test_a_non_admin_key_fails_before_any_write(run_module, maas):
    mark = maas.mark()
    machine = ipmi(name("user"))
    result = run_module(MODULE, dict(maas.connection(admin=False), state="ready", **machine))
    assert result.get("failed") is True
    assert result["msg"] == ("maas_machine needs a MAAS administrator's API key: "
                             "This method is reserved for admin users.")
    assert maas.writes_to(mark, *maas.objects_of(machine)) == []
    assert maas.user_api_key not in result["_stdout"]


def test_a_non_admin_key_reads_the_machines_its_user_may_see(run_module, fast_maas):
    free, taken = ipmi(name("free")), ipmi(name("taken"))
    assert run_module(MODULE, args(fast_maas, state="ready", **free)).get("failed") is not True
    deployed = run_module(MODULE, args(fast_maas, state="deployed", **taken))
    assert deployed.get("failed") is not True, deployed.get("msg")
    seen = run_module(INFO, dict(fast_maas.connection(admin=False), hostnames=[free["hostname"], taken["hostname"]]))
    # MAAS shows a user the machines nobody owns and their own; the administrator's deployed one is hidden.
    assert [(m["hostname"], m["status_name"]) for m in seen["machines"]] == [(free["hostname"], "Ready")]


def test_info_status_filter_takes_the_status_as_shown(run_module, fast_maas):
    machine = ipmi(name("shown"))
    assert run_module(MODULE, args(fast_maas, state="ready", **machine)).get("failed") is not True
    found = run_module(INFO, dict(fast_maas.connection(), hostnames=[machine["hostname"]], status="Ready"))
    assert found.get("failed") is not True, found.get("msg")
    assert [m["hostname"] for m in found["machines"]] == [machine["hostname"]]


def test_redfish_without_macs_is_refused_before_any_write(run_module, maas):
    redfish = {"hostname": name("rf"), "power_type": "redfish",
               "power_parameters": {"power_address": next_bmc(), "power_user": "rf-operator",
                                    "power_pass": "rf-secret"}}
    mark = maas.mark()
    result = run_module(MODULE, dict(maas.connection(), state="ready", machines=[redfish]))
    assert result.get("failed") is True
    assert f"machine {redfish['hostname']}: mac_addresses: a redfish machine needs pxe_mac or mac_addresses" \
        in result["msg"]
    assert maas.writes_to(mark, *maas.objects_of(redfish)) == []


def test_power_on_of_an_unallocated_machine_is_refused_before_any_write(run_module, fast_maas):
    machine = ipmi(name("cold"))
    mark = fast_maas.mark()
    result = run_module(MODULE, args(fast_maas, state="ready", power="on", **machine))
    assert result.get("failed") is True
    assert f"machine {machine['hostname']}: power: on needs" in result["msg"]
    assert "Can't start node: it hasn't been allocated." in result["msg"]
    assert fast_maas.writes_to(mark, *fast_maas.objects_of(machine)) == []


def power_requests(maas, mark):
    return [r for r in maas.requests_since(mark) if r["query"] in ("op=power_on", "op=power_off")]


def test_power_waits_for_the_machine_without_sending_twice(run_module, fast_maas):
    machine = ipmi(name("pwr"))
    deployed = run_module(MODULE, args(fast_maas, state="deployed", **machine))
    assert deployed["machines"][0]["power_state"] == "on"
    fast_maas.durations(power=2.0)
    mark = fast_maas.mark()
    planned = run_module(MODULE, args(fast_maas, state="deployed", power="off", **machine), check=True)
    assert planned["changed"] is True and planned["machines"][0]["actions"] == ["power_off"]
    assert fast_maas.writes_to(mark, deployed["machines"][0]["system_id"], *fast_maas.objects_of(machine)) == []
    off = run_module(MODULE, args(fast_maas, state="deployed", power="off", **machine))
    assert off["changed"] is True and off["machines"][0]["actions"] == ["power_off"]
    assert off["machines"][0]["power_state"] == "off"  # waited for: MAAS answered with the old state
    assert [r["query"] for r in power_requests(fast_maas, mark)] == ["op=power_off"]
    again = run_module(MODULE, args(fast_maas, state="deployed", power="off", **machine))
    assert again["changed"] is False


def test_manual_power_type_is_not_driven_and_says_so(run_module, fast_maas):
    machine = {"hostname": name("man"), "power_type": "manual", "pxe_mac": "52:54:01:%02x:%02x:%02x" % tuple(
        uuid.uuid4().bytes[:3])}
    deployed = run_module(MODULE, args(fast_maas, state="deployed", **machine))
    assert deployed.get("failed") is not True, deployed.get("msg")
    mark = fast_maas.mark()
    result = run_module(MODULE, args(fast_maas, state="deployed", power="off", **machine))
    assert result.get("failed") is not True and result["changed"] is False
    assert any("MAAS cannot drive a manual power type" in w for w in result.get("warnings", []))
    assert power_requests(fast_maas, mark) == []


def test_a_locked_machine_is_refused_before_any_write(run_module, fast_maas):
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient

    machine = ipmi(name("lock"))
    deployed = run_module(MODULE, args(fast_maas, state="deployed", **machine))
    client = MaasClient(dict(fast_maas.connection(), validate_certs=True))
    system_id = deployed["machines"][0]["system_id"]
    client.post(f"/machines/{system_id}/", op="lock")
    try:
        mark = fast_maas.mark()
        refused = run_module(MODULE, args(fast_maas, state="released", **machine))
        assert refused.get("failed") is True
        assert f"machine {machine['hostname']}: is locked in MAAS" in refused["msg"]
        assert fast_maas.writes_to(mark, system_id, *fast_maas.objects_of(machine)) == []
    finally:
        client.post(f"/machines/{system_id}/", op="unlock")


def test_wrong_state_errors_quote_maas(run_module, fast_maas):
    """A machine another client moved between our read and our write: the task quotes MAAS's own sentence."""
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient, MaasError

    machine = ipmi(name("race"))
    ready = run_module(MODULE, args(fast_maas, state="ready", **machine))
    client = MaasClient(dict(fast_maas.connection(), validate_certs=True))
    system_id = ready["machines"][0]["system_id"]
    client.post(f"/machines/{system_id}/", op="commission")
    with pytest.raises(MaasError) as commission:
        client.post(f"/machines/{system_id}/", op="commission")
    assert commission.value.status == 400
    assert commission.value.describe() == "Commission is not available because of the current state of the node."
    with pytest.raises(MaasError) as release:
        client.post(f"/machines/{system_id}/", op="release")
    assert (release.value.status, release.value.describe()) == (
        409, "Machine cannot be released in its current state ('Commissioning').")
    deadline = time.monotonic() + 30
    while client.get(f"/machines/{system_id}/")["status_name"] != "Ready" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.post(f"/machines/{system_id}/", op="release")["status_name"] == "Ready"  # a no-op 200


@pytest.mark.parametrize("series", ["ubuntu/jammy", "22.04"])
def test_distro_series_by_name_or_version(run_module, fast_maas, series):
    machine = ipmi(name("os"))
    deployed = run_module(MODULE, args(fast_maas, state="deployed", distro_series=series, **machine))
    assert deployed.get("failed") is not True, deployed.get("msg")
    assert deployed["machines"][0]["distro_series"] == "jammy"
    assert run_module(MODULE, args(fast_maas, state="deployed", distro_series=series, **machine))["changed"] is False


def test_unicode_tag_names_are_refused_before_any_write(run_module, maas):
    mark = maas.mark()
    machine = ipmi(name("tag"))
    result = run_module(MODULE, dict(maas.connection(), tags=["café"], **machine))
    assert result.get("failed") is True and "'café' is not a valid tag name" in result["msg"]
    assert maas.writes_to(mark, "tag:café", *maas.objects_of(machine)) == []


def test_mark_fixed_returns_a_deployed_machine_to_deployed(run_module, fast_maas):
    machine = ipmi(name("fix"))
    assert run_module(MODULE, args(fast_maas, state="deployed", **machine)).get("failed") is not True
    assert run_module(MODULE, args(fast_maas, state="broken", **machine))["machines"][0]["status_name"] == "Broken"
    fixed = run_module(MODULE, args(fast_maas, state="fixed", **machine))
    assert fixed["machines"][0]["status_name"] == "Deployed"
    assert run_module(MODULE, args(fast_maas, state="deployed", **machine))["changed"] is False


def test_gateway_timeouts_and_503_with_retry_after_are_ridden_out(run_module, fast_maas):
    mark = fast_maas.mark()
    fast_maas.faults(http_503=1, http_504=2)
    started = time.monotonic()
    result = run_module(MODULE, args(fast_maas, state="ready", **ipmi(name("busy"))))
    assert result.get("failed") is not True, result.get("msg")
    assert time.monotonic() - started >= 10  # MAAS's Retry-After: 10 was honoured
    faults = [r.get("fault") for r in fast_maas.requests_since(mark) if r.get("fault")]
    assert "503" in faults and "504" in faults
