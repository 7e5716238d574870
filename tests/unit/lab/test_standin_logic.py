"""Pure logic of the KubeVirt stand-in: run strategies, printable status, the work queue."""

import threading
import time

import pytest

from tests.lab.kubevirt import controller
from tests.lab.kubevirt.runtime import WorkQueue


def vm(strategy=None, running=None, requests=None, deleting=False):
    spec = {}
    if strategy:
        spec["runStrategy"] = strategy
    if running is not None:
        spec["running"] = running
    meta = {"name": "vm", "namespace": "ns", "uid": "vm-uid"}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status = {"stateChangeRequests": requests} if requests else {}
    return {"metadata": meta, "spec": spec, "status": status}


def vmi(phase="Running", uid="vmi-uid", paused=False, deleting=False, unschedulable=False):
    conditions = []
    if paused:
        conditions.append({"type": "Paused", "status": "True"})
    if unschedulable:
        conditions.append({"type": "PodScheduled", "status": "False", "reason": "Unschedulable"})
    meta = {"name": "vm", "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "status": {"phase": phase, "conditions": conditions}}


@pytest.mark.parametrize("spec, expected", [
    (vm("Manual"), "Manual"),
    (vm(running=True), "Always"),
    (vm(running=False), "Halted"),
    (vm(), "Halted"),
])
def test_run_strategy_reads_run_strategy_or_the_deprecated_running(spec, expected):
    assert controller.run_strategy(spec) == expected


@pytest.mark.parametrize("the_vm, the_vmi, expected", [
    (vm("Halted"), None, "Stopped"),
    (vm("Always"), None, "Starting"),
    (vm("Always"), vmi("Scheduling"), "Starting"),
    (vm("Always"), vmi("Running"), "Running"),
    (vm("Always"), vmi("Running", paused=True), "Paused"),
    (vm("Always"), vmi("Running", deleting=True), "Stopping"),
    (vm("Halted"), vmi("Running"), "Stopping"),
    (vm("Always", deleting=True), vmi("Running"), "Terminating"),
    (vm("Always"), vmi("Scheduling", unschedulable=True), "ErrorUnschedulable"),
    (vm("Manual"), None, "Stopped"),
    (vm("Manual", requests=[{"action": "Start"}]), None, "Starting"),
    (vm("Manual", requests=[{"action": "Stop", "uid": "vmi-uid"}]), vmi("Running"), "Stopping"),
    (vm("Once"), vmi("Succeeded"), "Stopped"),
    (vm("RerunOnFailure"), vmi("Succeeded"), "Stopped"),
])
def test_printable_status_follows_kubevirt_precedence(the_vm, the_vmi, expected):
    assert controller.printable_status(the_vm, the_vmi) == expected


def test_stop_request_applies_only_to_the_vmi_it_names():
    request = [{"action": "Stop", "uid": "old-uid"}]
    assert controller.has_stop_request_for(vm("Always", requests=request), vmi(uid="old-uid"))
    assert not controller.has_stop_request_for(vm("Always", requests=request), vmi(uid="new-uid"))


def test_work_queue_deduplicates_and_delays():
    queue = WorkQueue()
    key = ("VM", "ns", "a")
    queue.add(key)
    queue.add(key)
    assert queue.get() == key
    queue.done(key)
    queue.add(key, after=0.2)
    started = time.monotonic()
    assert queue.get() == key
    assert time.monotonic() - started >= 0.15


def test_work_queue_never_hands_one_key_to_two_workers():
    queue = WorkQueue()
    key = ("VM", "ns", "a")
    queue.add(key)
    assert queue.get() == key
    queue.add(key)  # changed again while being worked on
    got = []
    worker = threading.Thread(target=lambda: got.append(queue.get()), daemon=True)
    worker.start()
    worker.join(0.2)
    assert got == []  # held back until the first worker is done
    queue.done(key)
    worker.join(2)
    assert got == [key]
