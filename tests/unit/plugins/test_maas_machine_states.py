"""maas_machine's view of MAAS's state machine: every declared state against every status MAAS names."""

import itertools

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.maas.machine_states import (
    STATES, STATUSES, TRANSITIONAL, failed, next_transition, reached)

# The op each state takes from each status; a status not listed takes none (the machine is there, moving, or
# in a status the state does not move it from).
COMMISSION = {"New": "commission", "Failed commissioning": "commission"}
RELEASE = {status: "release" for status in ("Deployed", "Allocated", "Failed deployment", "Releasing failed",
                                            "Failed disk erasing")}
EXPECTED_OP = {
    "present": {},
    "absent": {},
    "ready": dict(COMMISSION, Broken="mark_fixed", **RELEASE),
    # Commissioned once, a machine is left to whoever takes it (Palette allocating and deploying it into a cluster).
    "commissioned": dict(COMMISSION),
    "deployed": dict(COMMISSION, Ready="deploy", Allocated="deploy", Broken="mark_fixed"),
    "released": dict(RELEASE),
    "broken": {status: "mark_broken" for status in STATUSES if status != "Broken" and status not in TRANSITIONAL},
    "fixed": {"Broken": "mark_fixed"},
}
EXPECTED_REACHED = {
    "present": set(STATUSES), "absent": set(), "ready": {"Ready"}, "deployed": {"Deployed"},
    "commissioned": {"Ready", "Allocated", "Deploying", "Deployed", "Failed deployment", "Releasing", "Disk erasing"},
    "released": {"Ready", "New"}, "broken": {"Broken"}, "fixed": set(STATUSES) - {"Broken"},
}
FAILURES = {"Failed commissioning", "Failed deployment", "Releasing failed", "Failed disk erasing", "Failed testing"}


def test_every_status_maas_names_is_known():
    assert len(STATUSES) == len(set(STATUSES)) == 23
    assert set(TRANSITIONAL) <= set(STATUSES)
    assert all(status in STATUSES for ops in EXPECTED_OP.values() for status in ops)


@pytest.mark.parametrize("state, status", list(itertools.product(STATES, STATUSES)))
def test_each_state_from_each_status(state, status):
    request, machine = {"state": state}, {"status_name": status}
    assert next_transition(request, machine) == EXPECTED_OP[state].get(status)
    assert reached(request, machine) is (status in EXPECTED_REACHED[state])
    if state == "commissioned":
        assert failed(request, machine) is (status in ("Failed commissioning", "Failed testing"))
    else:
        assert failed(request, machine) is (status in FAILURES and state in ("ready", "deployed", "released"))


@pytest.mark.parametrize("status", TRANSITIONAL)
def test_a_moving_machine_is_left_to_move(status):
    assert all(next_transition({"state": state}, {"status_name": status}) is None for state in STATES)


@pytest.mark.parametrize("state", STATES)
def test_a_machine_maas_does_not_have(state):
    assert reached({"state": state}, None) is (state == "absent")
    assert failed({"state": state}, None) is False
