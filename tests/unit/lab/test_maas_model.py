"""The MAAS simulator's state machine and OAuth check, in process (no HTTP)."""

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
    assert maas.update_tag_nodes("vmo", [machine.system_id], []) == {"added": 0, "removed": 0}
    assert maas.allocate(form(tags="vmo"), "admin") is machine and machine.status == model.ALLOCATED
    with pytest.raises(StateViolation) as err:
        maas.allocate(form(tags="vmo"), "admin")
    assert "No available machine matches constraints" in str(err.value)
