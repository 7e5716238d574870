"""The MAAS simulator's state machine and OAuth check, in process (no HTTP)."""

import time

import pytest

from tests.lab.maas import model
from tests.lab.maas.api import ApiKey, authenticate
from tests.lab.maas.model import BadRequest, MaasModel, StateViolation

KEY = "consumer123456789a:token1234567890abc:secret1234567890secret1234567890ab"


def form(**values):
    return {k: v if isinstance(v, list) else [v] for k, v in values.items()}


def fast_model():
    return MaasModel(model.Durations(commissioning=0, deploying=0, releasing=0, erasing=0))


def test_plaintext_signature_must_match_the_key():
    key = ApiKey(KEY)
    good = ('OAuth realm="", oauth_consumer_key="%s", oauth_token="%s", oauth_signature_method="PLAINTEXT", '
            'oauth_signature="%%26%s", oauth_timestamp="1", oauth_nonce="n", oauth_version="1.0"'
            % (key.consumer, key.token, key.secret))
    assert authenticate(good, [key]) is key
    assert authenticate(good.replace(key.secret, "wrong"), [key]) is None
    assert authenticate(good.replace('oauth_nonce="n", ', ""), [key]) is None
    assert authenticate("Bearer x", [key]) is None


def test_enlist_by_bmc_without_mac_commission_deploy_release():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi",
                                       power_parameters_power_address="127.0.0.10", power_parameters_power_user="u"))
    assert machine.status == model.COMMISSIONING and machine.macs == []
    maas.advance()
    assert machine.status == model.READY and machine.macs  # commissioning found its NIC
    maas.deploy(machine, form(distro_series="jammy"), "admin")
    assert machine.status == model.DEPLOYING
    maas.advance()
    assert machine.status == model.DEPLOYED and machine.ip_addresses
    maas.release(machine, form(erase="true"))
    assert machine.status == model.DISK_ERASING
    maas.advance()
    assert machine.status == model.READY and machine.owner is None


def test_mac_is_required_for_non_bmc_power_types_and_bad_input_is_a_400():
    maas = fast_model()
    with pytest.raises(BadRequest) as err:
        maas.create_machine(form(architecture="amd64", power_type="manual"))
    assert err.value.errors["mac_addresses"] == ["This field is required."]
    assert err.value.errors["power_type"] == ["Can't set power type to manual without network interfaces"]
    with pytest.raises(BadRequest) as err:
        maas.create_machine(form(architecture="amd64", power_type="smoke-signals", mac_addresses="00:11:22:33:44:55"))
    assert "power_type" in err.value.errors
    with pytest.raises(BadRequest) as err:
        maas.create_machine(form(architecture="amd64", power_type="ipmi"))
    assert "power_address: This field is required." in err.value.errors["power_parameters"]


def test_illegal_transitions_are_conflicts():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", mac_addresses="00:11:22:33:44:55", commission="false"))
    assert machine.status == model.NEW
    with pytest.raises(StateViolation) as err:
        maas.deploy(machine, form(), "admin")
    assert str(err.value) == "Can't deploy a machine that is in the 'New' state"
    with pytest.raises(StateViolation):
        maas.mark_fixed(machine)


def test_failed_commissioning_names_the_script():
    maas = fast_model()
    maas.faults.fail_commissioning = ["bad-1"]
    machine = maas.create_machine(form(architecture="amd64", hostname="bad-1", mac_addresses="00:11:22:33:44:56"))
    maas.advance()
    assert machine.status == model.FAILED_COMMISSIONING
    failed = [r["name"] for r in machine.results if r["status_name"] == "Failed"]
    assert failed == [model.FAILING_SCRIPT]


def test_tags_and_allocation():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", hostname="a", mac_addresses="00:11:22:33:44:57"))
    maas.advance()
    maas.create_tag("vmo")
    assert maas.update_tag_nodes("vmo", [machine.system_id], []) == {"added": 1, "removed": 0}
    # MAAS counts the known machines named, tagged before or not, and ignores unknown ids (api/tags.py:307-409).
    assert maas.update_tag_nodes("vmo", [machine.system_id, "nosuch"], ["gone"]) == {"added": 1, "removed": 0}
    assert maas.allocate(form(tags="vmo"), "admin") is machine and machine.status == model.ALLOCATED
    with pytest.raises(StateViolation) as err:
        maas.allocate(form(tags="vmo"), "admin")
    assert "No available machine matches constraints" in str(err.value)


def test_only_ipmi_may_omit_macs_and_architecture():
    maas = fast_model()
    redfish = form(architecture="amd64", power_type="redfish", power_parameters_power_address="10.0.0.1",
                   power_parameters_power_user="u", power_parameters_power_pass="p")
    with pytest.raises(BadRequest) as err:
        maas.create_machine(redfish)
    assert err.value.errors == {"mac_addresses": ["This field is required."],
                                "power_type": ["Can't set power type to redfish without network interfaces"]}
    # ipmi without an architecture: MAAS drops the MACs, the machine enlists through its BMC.
    machine = maas.create_machine(form(power_type="ipmi", mac_addresses="00:11:22:33:44:60",
                                       power_parameters_power_address="10.0.0.2"))
    assert machine.macs == [] and machine.status == model.COMMISSIONING


def test_power_parameters_as_a_json_field():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi",
                                       power_parameters='{"power_address": "10.0.0.3", "power_user": "u"}',
                                       power_parameters_power_pass="p"))
    assert machine.power_parameters == {"power_address": "10.0.0.3", "power_user": "u", "power_pass": "p"}


def test_a_non_admin_machine_is_created_new_and_not_commissioned():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", mac_addresses="00:11:22:33:44:61"), is_admin=False)
    assert machine.status == model.NEW and machine.power_state == "unknown"


def test_power_on_needs_an_owner_and_changes_a_moment_later():
    maas = MaasModel(model.Durations(commissioning=0, deploying=0, releasing=0, erasing=0, power=60))
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi", hostname="p",
                                       power_parameters_power_address="10.0.0.4"))
    maas.advance()
    assert machine.status == model.READY
    with pytest.raises(StateViolation) as err:
        maas.power(machine, "on")
    assert str(err.value) == "Can't start node: it hasn't been allocated."
    maas.allocate(form(name="p"), "admin")
    maas.power(machine, "on")
    assert machine.power_state == "off"  # queued: still the old state
    maas.advance(time.monotonic() + 61)
    assert machine.power_state == "on"


def test_manual_power_is_a_no_op():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="manual", mac_addresses="00:11:22:33:44:62",
                                       commission="false"))
    machine.owner = "admin"
    maas.power(machine, "on")
    maas.advance(time.monotonic() + 60)
    assert machine.power_state == "unknown" and machine.power_pending is None


def test_wrong_state_errors_use_maas_words():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi", hostname="w",
                                       power_parameters_power_address="10.0.0.5"))
    with pytest.raises(BadRequest) as err:
        maas.commission(machine)  # already commissioning
    assert err.value.errors == {"__all__": ["Commission is not available because of the current state of the node."]}
    maas.advance()
    maas.release(machine, form())  # Ready: nothing to do, not an error
    maas.mark_broken(machine, "")
    maas.commission(machine)
    with pytest.raises(StateViolation) as err:
        maas.release(machine, form())
    assert str(err.value) == "Machine cannot be released in its current state ('Commissioning')."
    with pytest.raises(StateViolation) as err:
        maas.mark_fixed(machine)
    assert str(err.value) == "Can't mark a non-broken node as 'Ready'."


def test_mark_fixed_returns_a_deployed_machine_to_deployed():
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi",
                                       power_parameters_power_address="10.0.0.6"))
    maas.advance()
    maas.deploy(machine, form(distro_series="ubuntu/jammy"), "admin")
    maas.advance()
    assert machine.status == model.DEPLOYED and machine.distro_series == "jammy"
    maas.mark_broken(machine, "disk")
    maas.mark_fixed(machine)
    assert machine.status == model.DEPLOYED


@pytest.mark.parametrize("series", ["jammy", "ubuntu/jammy", "22.04"])
def test_distro_series_by_name_or_version(series):
    maas = fast_model()
    machine = maas.create_machine(form(architecture="amd64", power_type="ipmi",
                                       power_parameters_power_address="10.0.0.7"))
    maas.advance()
    maas.deploy(machine, form(distro_series=series), "admin")
    assert machine.distro_series == "jammy"


@pytest.mark.parametrize("name, message", [("vmo-nodes_1", None), ("caf\u00e9", "Enter a valid value."),
                                           ("a" * 257, "Ensure this value has at most 256 characters (it has 257).")])
def test_tag_names_are_ascii_and_at_most_256(name, message):
    maas = fast_model()
    if message is None:
        assert maas.create_tag(name)["name"] == name
        return
    with pytest.raises(BadRequest) as err:
        maas.create_tag(name)
    assert err.value.errors == {"name": [message]}


USER_KEY = "userconsumer123456:usertoken123456ab:usersecret1234567890usersecret12"


def api_and_signers():
    from tests.lab.maas.api import MaasApi
    from tests.lab.simulator_http import RequestLog

    admin, user = ApiKey(KEY), ApiKey(USER_KEY, username="user", is_admin=False)
    api = MaasApi(fast_model(), [admin, user], RequestLog("/dev/null"))

    def call(method, path, key=admin, body=b""):
        signed = {"Authorization": 'OAuth oauth_consumer_key="%s", oauth_token="%s", oauth_signature_method="PLAINTEXT", '
                                   'oauth_signature="%%26%s", oauth_timestamp="1", oauth_nonce="n"'
                                   % (key.consumer, key.token, key.secret),
                  "Content-Type": "application/x-www-form-urlencoded"}
        return api.handle(method, "/MAAS/api/2.0" + path, signed, body)
    return api, call, user


def test_power_types_are_described_by_the_rack_controllers_for_admins_only():
    _api, call, user = api_and_signers()
    assert call("GET", "/general/?op=describe_power_types")[0] == 404
    status, types = call("GET", "/rackcontrollers/?op=describe_power_types")
    assert status == 200
    ipmi = next(t for t in types if t["name"] == "ipmi")
    assert set(ipmi) == {"name", "description", "fields", "chassis", "can_probe", "missing_packages", "queryable",
                         "driver_type"}
    assert set(ipmi["fields"][0]) == {"name", "label", "required", "field_type", "choices", "default", "scope",
                                      "secret"}
    assert call("GET", "/rackcontrollers/?op=describe_power_types", user) == (
        403, "This method is reserved for admin users.")


def test_a_non_admin_is_refused_admin_operations():
    api, call, user = api_and_signers()
    assert call("GET", "/users/?op=whoami", user)[1]["is_superuser"] is False
    assert call("GET", "/users/?op=whoami")[1]["is_superuser"] is True
    status, created = call("POST", "/machines/", user, b"architecture=amd64&mac_addresses=00:11:22:33:44:70")
    assert status == 200 and created["status_name"] == "New"
    sid = created["system_id"]
    refused = [call("POST", "/machines/%s/?op=commission" % sid, user), call("GET", "/machines/?op=power_parameters", user),
               call("GET", "/machines/%s/?op=power_parameters" % sid, user), call("POST", "/tags/", user, b"name=x")]
    assert all(answer == (403, "This method is reserved for admin users.") for answer in refused), refused
    call("POST", "/tags/", body=b"name=x")
    assert call("POST", "/tags/x/?op=update_nodes", user, ("add=%s" % sid).encode())[0] == 403
    api.model.machines[sid].status = model.BROKEN
    assert call("POST", "/machines/%s/?op=mark_fixed" % sid, user)[0] == 403


def test_a_locked_machine_refuses_edits_with_403():
    api, call, _user = api_and_signers()
    machine = api.model.create_machine(form(architecture="amd64", power_type="ipmi",
                                            power_parameters_power_address="10.0.0.8"))
    api.model.advance()
    api.model.deploy(machine, form(), "admin")
    api.model.advance()
    api.model.set_lock(machine, True)
    assert call("POST", "/machines/%s/?op=release" % machine.system_id) == (403, "")
    assert call("PUT", "/machines/%s/" % machine.system_id, body=b"description=x") == (403, "")


def test_machine_json_and_power_parameters_as_maas_answers_them():
    api, call, _user = api_and_signers()
    machine = api.model.create_machine(form(architecture="amd64", power_type="ipmi",
                                            power_parameters_power_address="10.0.0.9"))
    api.model.advance()
    status, listed = call("GET", "/machines/?simple_status=ready")
    assert status == 200 and [m["system_id"] for m in listed] == [machine.system_id]
    shown = listed[0]
    assert "simple_status" not in shown and (shown["status"], shown["status_name"]) == (4, "Ready")
    assert shown["blockdevice_set"] and {"system_id", "tags", "effective_mtu", "vlan", "links"} <= set(
        shown["interface_set"][0])
    assert call("GET", "/machines/?op=power_parameters")[1] == {machine.system_id: {"power_address": "10.0.0.9"}}
    assert call("GET", "/machines/?simple_status=Ready")[0] == 400


def test_architecture_is_a_choice_among_the_usable_boot_resources():
    """forms/__init__.py:set_up_architecture_field with get_usable_architectures; api/machines.py:fix_architecture
    and create_machine's refusal of a kernel in the architecture."""
    maas = fast_model()
    assert model.usable_architectures() == ["amd64/generic", "arm64/generic"]
    bare = maas.create_machine(form(architecture="arm64", power_type="ipmi", power_parameters_power_address="127.0.0.2"))
    assert bare.architecture == "arm64/generic"
    with pytest.raises(BadRequest) as bad:
        maas.create_machine(form(architecture="sparc", power_type="manual", mac_addresses="52:54:00:00:10:01"))
    assert bad.value.errors == {"architecture": ["'sparc/generic' is not a valid architecture.  It should be one "
                                                 "of: 'amd64/generic', 'arm64/generic'."]}
    with pytest.raises(BadRequest) as kernel:
        maas.create_machine(form(architecture="amd64/hwe-22.04", power_type="manual", mac_addresses="52:54:00:00:10:02"))
    assert kernel.value.errors == "hwe kernel must be specified using the min_hwe_kernel argument."
    assert len(maas.machines) == 1


def test_boot_resources_list_the_subarchitectures_they_serve():
    _api, call, _user = api_and_signers()
    status, resources = call("GET", "/boot-resources/")
    assert status == 200
    jammy = next(r for r in resources if (r["name"], r["architecture"]) == ("ubuntu/jammy", "amd64/ga-22.04"))
    assert jammy["subarches"] == "generic,hwe-22.04,ga-22.04"


def test_the_request_log_names_the_objects_a_write_touched():
    api, call, _user = api_and_signers()
    signed = {"Content-Type": "application/x-www-form-urlencoded"}
    body = (b"hostname=log-node&architecture=amd64&power_type=ipmi&mac_addresses=52:54:00:AA:00:01"
            b"&power_parameters=%7B%22power_address%22%3A%20%22127.8.0.1%22%7D")
    status, created = call("POST", "/machines/", body=body)
    assert status == 200
    objects = api.objects_of("POST", "/MAAS/api/2.0/machines/", signed, body, created)
    assert objects == sorted(["log-node", "52:54:00:aa:00:01", "127.8.0.1", created["system_id"]])
    sid = created["system_id"]
    assert api.objects_of("POST", "/MAAS/api/2.0/tags/vmo/?op=update_nodes", signed, b"add=" + sid.encode(),
                          {"added": 1}) == sorted(["tag:vmo", sid])
    assert api.objects_of("POST", "/MAAS/api/2.0/tags/", signed, b"name=vmo", {}) == ["tag:vmo"]
    assert api.objects_of("DELETE", "/MAAS/api/2.0/machines/%s/" % sid, {}, b"", None) == [sid]
    assert api.objects_of("POST", "/MAAS/api/2.0/no-such-thing/", signed, b"", None) is None


def test_answering_faults_are_taken_one_at_a_time_in_order():
    from tests.lab.maas.api import take_count, take_fault

    maas = fast_model()
    maas.faults.http_429, maas.faults.drop_connections, maas.faults.lose_write_answers = 2, 1, 1
    assert [take_fault(maas) for _attempt in range(4)] == ["drop_connections", "http_429", "http_429", None]
    assert take_count(maas, "lose_write_answers") and not take_count(maas, "lose_write_answers")


def test_a_mac_in_use_names_the_machine_holding_it():
    """WithMACAddressesMixin.clean_mac_addresses and is_valid's merged message for several MACs."""
    maas = fast_model()
    maas.create_machine(form(hostname="first", architecture="amd64", power_type="manual",
                             mac_addresses="52:54:00:00:20:01"))
    with pytest.raises(BadRequest) as one:
        maas.create_machine(form(architecture="amd64", power_type="manual", mac_addresses="52:54:00:00:20:01"))
    assert one.value.errors == {"mac_addresses": ["MAC address 52:54:00:00:20:01 already in use on first."]}
    with pytest.raises(BadRequest) as two:
        maas.create_machine(form(architecture="amd64", power_type="manual",
                                 mac_addresses=["52:54:00:00:20:02", "52:54:00:00:20:01"]))
    assert two.value.errors == {"mac_addresses": [
        "One or more MAC addresses is invalid. (MAC address 52:54:00:00:20:01 already in use on first.)"]}


def test_a_tests_own_writes_are_told_from_other_tests_writes(tmp_path):
    """MaasLab.writes_to: another test's writes are left out; a write to one of the test's objects (or to the
    system id a create of its host name was given), and a write the log could not attribute, are kept."""
    import json
    from types import SimpleNamespace

    from tests.conftest import MaasLab

    log = tmp_path / "maas-requests.jsonl"
    entries = [
        {"method": "POST", "mutating": True, "objects": ["other-node", "s-other"]},
        {"method": "POST", "mutating": True, "objects": ["mine", "127.9.0.9", "s-mine"]},
        {"method": "POST", "mutating": True, "objects": ["tag:vmo", "s-mine"]},
        {"method": "GET", "mutating": False},
        {"method": "POST", "mutating": True, "objects": None},
    ]
    log.write_text("".join(json.dumps(e) + "\n" for e in entries))
    lab = MaasLab(SimpleNamespace(maas_url="https://127.0.0.1:1/MAAS", maas_api_key="a:b:c", ca_file=tmp_path / "ca",
                                  maas_user_api_key="d:e:f", maas_request_log=log))
    assert lab.writes_to(0, "mine") == [entries[1], entries[2], entries[4]]
    assert lab.writes_to(0, "nobody") == [entries[4]]


def test_an_administrator_creates_a_machine_in_its_zone_and_pool():
    """AdminMachineWithMACAddressesForm has AdminNodeForm's zone and pool; a user's create form has neither."""
    maas = fast_model()
    maas.create_named(maas.zones, "rack-1", "", "Zone")
    maas.create_named(maas.pools, "vmo", "", "Resource pool")
    machine = maas.create_machine(form(architecture="amd64", mac_addresses="00:11:22:33:44:01", zone="rack-1",
                                       pool="vmo", domain="lab"))
    assert (machine.zone, machine.pool, machine.domain) == ("rack-1", "vmo", "lab")
    with pytest.raises(BadRequest) as err:
        maas.create_machine(form(architecture="amd64", mac_addresses="00:11:22:33:44:02", pool="no-such-pool"))
    assert err.value.errors == {"pool": ["Select a valid choice. That choice is not one of the available choices."]}
    by_user = maas.create_machine(form(architecture="amd64", mac_addresses="00:11:22:33:44:03", zone="rack-1",
                                       pool="no-such-pool"), is_admin=False)
    assert (by_user.zone, by_user.pool) == ("default", "default")
