"""Which power verb a declared state needs: none when the VM is already there."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import (
    PowerConflict, check_power_options, expected_state, plan_power)


def vmi(phase="Running", paused=False, deleting=False):
    meta = {"deletionTimestamp": "x"} if deleting else {}
    conditions = [{"type": "Paused", "status": "True"}] if paused else []
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize("state, strategy, instance, expected", [
    ("started", "Always", vmi(), (None, False)),
    ("started", "Always", None, (None, False)),          # KubeVirt starts it itself
    ("started", "Halted", None, ("start", False)),
    ("started", "Manual", vmi("Succeeded"), ("start", False)),
    ("stopped", "Always", vmi(), ("stop", False)),
    ("stopped", "Manual", None, (None, False)),
    ("stopped", "Manual", vmi(deleting=True), (None, False)),
    ("restarted", "Always", vmi(), ("restart", False)),
    ("restarted", "Manual", None, ("start", False)),
    ("paused", "Always", vmi(), ("pause", False)),
    ("paused", "Always", vmi(paused=True), (None, False)),
    ("paused", "Manual", None, ("start", True)),
    ("paused", "Always", None, (None, True)),
    ("unpaused", "Always", vmi(paused=True), ("unpause", False)),
    ("unpaused", "Always", vmi(), (None, False)),
])
def test_plan_power(state, strategy, instance, expected):
    assert plan_power(state, strategy, instance) == expected


@pytest.mark.parametrize("state, strategy", [("started", "Halted"), ("paused", "Halted"), ("stopped", "Always"),
                                             ("stopped", "RerunOnFailure")])
def test_contradictions_are_refused(state, strategy):
    with pytest.raises(PowerConflict):
        check_power_options(state, strategy)


def test_expectations():
    assert expected_state("present", "Always") == "ready"
    assert expected_state("present", "Halted") == "stopped"
    assert expected_state("present", "Manual") is None
    assert expected_state("paused", "Manual") == "paused"


@pytest.mark.parametrize("path, expected", [
    ("status.printableStatus", "Running"),
    ("{.status.printableStatus}", "Running"),
    (".status.interfaces[0].ipAddress", "10.0.0.5"),
    ("status.interfaces[3].ipAddress", None),
    ("status.missing.deeper", None),
])
def test_field_value_paths(path, expected):
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_runner import field_value

    vm = {"status": {"printableStatus": "Running", "interfaces": [{"ipAddress": "10.0.0.5"}]}}
    assert field_value(vm, path) == expected
