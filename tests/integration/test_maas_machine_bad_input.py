"""Bad input to maas_machine: a clear error naming the machine and the option, and not one write to MAAS.

"Not one write" is counted among the writes that touch the test's own machines and tags (MaasLab.writes_to), so
other tests may write to the shared simulator meanwhile."""

import uuid

import pytest

from .helpers import next_bmc

MODULE = "palette.vmo.maas_machine"
BMC = {"power_address": "127.9.0.1", "power_user": "admin", "power_pass": "pw"}


def machine(**overrides):
    return dict({"hostname": "bad-node", "power_type": "ipmi", "power_parameters": dict(BMC)}, **overrides)


CASES = [
    ("unknown-power-type", machine(power_type="smoke-signals"), ["bad-node: power_type:", "'smoke-signals'"]),
    ("missing-bmc-address", machine(power_parameters={"power_user": "admin"}),
     ["bad-node: power_parameters:", "ipmi needs power_address"]),
    ("unknown-power-parameter", machine(power_parameters=dict(BMC, power_colour="blue")),
     ["bad-node: power_parameters:", "power_colour"]),
    ("parameters-without-type", {"hostname": "bad-node", "power_parameters": dict(BMC)},
     ["bad-node: power_type:", "is required with power_parameters"]),
    ("bad-pxe-mac", machine(pxe_mac="52:54:00:zz:00:01"), ["bad-node: pxe_mac:", "not a MAC address"]),
    ("bad-extra-mac", machine(mac_addresses=["52:54:00:00:00"]), ["bad-node: mac_addresses:", "not a MAC address"]),
    ("unknown-pool", machine(pool="no-such-pool"), ["bad-node: pool:", "'no-such-pool' does not exist"]),
    ("unknown-zone", machine(zone="mars"), ["bad-node: zone:", "'mars' does not exist"]),
    ("bad-hostname", machine(hostname="Bad_Node"), ["Bad_Node: hostname:", "not a valid host name"]),
    ("nothing-to-find-it-by", {"power_type": "manual", "state": "ready"},
     ["hostname:", "needs system_id, hostname, pxe_mac or power_parameters.power_address"]),
    ("user-data-without-deploy", machine(state="ready", user_data="#cloud-config"),
     ["bad-node: user_data:", "only applies with state=deployed"]),
    ("erase-while-deploying", machine(state="deployed", erase=True), ["bad-node: erase:", "only applies when"]),
    ("distro-without-deploy", machine(state="broken", distro_series="noble"),
     ["bad-node: distro_series:", "only applies with state=deployed"]),
    ("power-and-absent", machine(state="absent", power="on"), ["bad-node: power:", "cannot be combined"]),
    ("bad-tag-name", machine(tags=["vmo nodes"]), ["bad-node: tags:", "'vmo nodes' is not a valid tag name"]),
    ("unknown-system-id", {"system_id": "nosuch", "state": "ready"}, ["machine nosuch: system_id nosuch does not exist"]),
]


@pytest.mark.parametrize("case_id, options, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_machine_options(run_module, maas, case_id, options, expected):
    mark = maas.mark()
    result = run_module(MODULE, dict(maas.connection(), machines=[options]))
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], (text, result["msg"])
    assert maas.writes_to(mark, *maas.objects_of(options)) == []


def test_duplicate_machine_in_one_task(run_module, maas):
    mark = maas.mark()
    result = run_module(MODULE, dict(maas.connection(), machines=[machine(), machine()]))
    assert result.get("failed") is True and "declared more than once" in result["msg"]
    assert maas.writes_to(mark, *maas.objects_of(machine())) == []


def fresh(prefix, **overrides):
    """A valid machine no other test names: its own host name, BMC address and MAC."""
    name = "%s-%s" % (prefix, uuid.uuid4().hex[:6])
    return dict({"hostname": name, "power_type": "ipmi", "pxe_mac": "52:54:02:%02x:%02x:%02x" % tuple(
        uuid.uuid4().bytes[:3]), "power_parameters": dict(BMC, power_address=next_bmc())}, **overrides)


def same_bmc():
    first = fresh("bmc-a")
    return [first, fresh("bmc-b", power_parameters=dict(first["power_parameters"]))]


def bmc_only_twice():
    first = fresh("bmc-c")
    second = {"power_type": "ipmi", "power_parameters": dict(first["power_parameters"])}
    return [first, second]


def same_pxe_mac():
    first = fresh("mac-a")
    return [first, fresh("mac-b", pxe_mac=first["pxe_mac"])]


def mac_as_extra_mac():
    first = fresh("mac-c")
    return [first, fresh("mac-d", mac_addresses=[first["pxe_mac"].upper()])]


def good_then(**bad):
    """A valid machine first: the old code created it before meeting the bad one."""
    return [fresh("good"), fresh("bad", **bad)]


# (id, machines, task options, what the message says); each batch is refused before its first write.
BATCH_CASES = [
    ("same-bmc-two-hostnames", same_bmc, {}, ["power_parameters.power_address:", "declared more than once",
                                              "also by machine bmc-a-"]),
    ("bmc-only-item-shares-a-bmc", bmc_only_twice, {}, ["power_parameters.power_address:",
                                                        "declared more than once"]),
    ("same-pxe-mac-two-hosts", same_pxe_mac, {}, ["pxe_mac:", "declared more than once", "also by machine mac-a-"]),
    ("pxe-mac-again-as-extra-mac", mac_as_extra_mac, {}, ["mac_addresses:", "declared more than once"]),
    ("architecture-maas-has-no-images-for", lambda: good_then(architecture="s390x"), {},
     ["architecture: 's390x' is not an architecture this MAAS has boot images for (amd64/generic, arm64/generic)"]),
    ("architecture-naming-a-kernel", lambda: good_then(architecture="amd64/hwe-22.04"), {},
     ["architecture: 'amd64/hwe-22.04' names a kernel"]),
    ("x86_64-is-not-a-maas-architecture", lambda: [fresh("arch", architecture="x86_64")], {},
     ["architecture: 'x86_64' is not an architecture this MAAS has boot images for"]),
    ("task-level-bmc-shared-by-two-items", lambda: [{"hostname": fresh("tl")["hostname"], "pxe_mac": fresh("x")["pxe_mac"]}
                                                    for _index in range(2)],
     {"power_type": "ipmi", "power_parameters": dict(BMC, power_address=next_bmc())},
     ["power_parameters.power_address:", "declared more than once"]),
    ("negative-wait-timeout", lambda: [fresh("wait")], {"wait_timeout": -5},
     ["wait_timeout: -5 is out of range, give 0 or more seconds"]),
    ("zero-poll-interval", lambda: [fresh("poll")], {"poll_interval": 0}, ["poll_interval: 0.0 is out of range"]),
    ("zero-concurrency", lambda: [fresh("conc")], {"concurrency": 0}, ["concurrency: 0 is out of range, give at least 1"]),
    ("negative-concurrency", lambda: [fresh("conc")], {"concurrency": -3}, ["concurrency: -3 is out of range"]),
]


@pytest.mark.parametrize("case_id, make_machines, options, expected", BATCH_CASES, ids=[c[0] for c in BATCH_CASES])
def test_bad_batches_write_nothing(run_module, maas, case_id, make_machines, options, expected):
    machines = make_machines()
    mark = maas.mark()
    result = run_module(MODULE, dict(maas.connection(), state="ready", machines=machines, **options))
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], (text, result["msg"])
    assert result.get("changed") is False
    assert maas.writes_to(mark, *maas.objects_of(*machines, options)) == []


def test_machines_known_only_by_their_bmc_are_one_batch(run_module, maas):
    """Several machines without host names, each found by its BMC address, are distinct machines."""
    machines = [{"power_type": "ipmi", "power_parameters": dict(BMC, power_address=next_bmc())} for _index in range(3)]
    mark = maas.mark()
    planned = run_module(MODULE, dict(maas.connection(), state="ready", machines=machines), check=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert [m["actions"][0] for m in planned["machines"]] == ["create"] * 3
    assert maas.writes_to(mark, *maas.objects_of(*machines)) == []


def test_conflicting_state_choice(run_module, maas):
    result = run_module(MODULE, dict(maas.connection(), machines=[machine(state="halfway")]))
    assert result.get("failed") is True and "'halfway' is not one of" in result["msg"]


def test_api_key_format(run_module, maas):
    result = run_module(MODULE, dict(maas.connection(), maas_api_key="not-a-key", **machine()))
    assert result.get("failed") is True and "consumer_key:token_key:token_secret" in result["msg"]


def test_wrong_api_key(run_module, maas):
    mark = maas.mark()
    wrong = "aaaaaaaaaaaaaaaaaa:bbbbbbbbbbbbbbbbbb:cccccccccccccccccccccccccccccccc"
    result = run_module(MODULE, dict(maas.connection(), maas_api_key=wrong, **machine()))
    assert result.get("failed") is True
    assert "HTTP 401: Authorization Error: Invalid API key." in result["msg"]
    assert wrong not in result["_stdout"]
    assert maas.writes_to(mark, *maas.objects_of(machine())) == []


def test_wrong_ca(run_module, maas, tmp_path):
    from tests.lab import pki

    other = tmp_path / "other-ca"
    pki.make_ca(other, "not-the-lab-ca")
    result = run_module(MODULE, dict(maas.connection(), maas_ca_cert=str(other.with_suffix(".crt")), **machine()))
    assert result.get("failed") is True and "TLS verification of" in result["msg"]


def test_missing_url(run_module, maas):
    result = run_module(MODULE, dict(maas.connection(), maas_url=None, **machine()), env_extra={"MAAS_URL": ""})
    assert result.get("failed") is True and "no MAAS URL" in result["msg"]


def test_illegal_transition_is_reported(run_module, maas):
    """MAAS refuses any change to a locked machine (403, no reason given): the task says so before writing."""
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient

    maas.durations(commissioning=0.5, deploying=0.5)
    try:
        node = machine(hostname="locked-node", power_parameters=dict(BMC, power_address="127.9.0.77"))
        deployed = run_module(MODULE, dict(maas.connection(), state="deployed", poll_interval=0.2, **node))
        assert deployed.get("failed") is not True, deployed.get("msg")
        client = MaasClient(dict(maas.connection(), validate_certs=True))
        client.post("/machines/%s/" % deployed["machines"][0]["system_id"], op="lock")
        mark = maas.mark()
        refused = run_module(MODULE, dict(maas.connection(), state="released", **node))
        assert refused.get("failed") is True
        assert "machine locked-node: is locked in MAAS, which refuses every change to it" in refused["msg"]
        assert maas.writes_to(mark, deployed["machines"][0]["system_id"], *maas.objects_of(node)) == []
        client.post("/machines/%s/" % deployed["machines"][0]["system_id"], op="unlock")
        assert run_module(MODULE, dict(maas.connection(), state="absent", **node))["changed"] is True
    finally:
        maas.reset()
