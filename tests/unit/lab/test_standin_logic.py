"""Pure logic of the KubeVirt stand-in: run strategies, printable and VM status, the work queue, informer indexes."""

import threading
import time

import pytest

from tests.lab.kubevirt import controller
from tests.lab.kubevirt.runtime import MAX_RETRY_DELAY, Informer, Manager, WorkQueue, api_group


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


def test_a_stopped_vms_status_as_stored_needs_no_patch():
    # as the apiserver stores it: false created/ready and a zero lastProbeTime are absent
    stored = {"printableStatus": "Stopped", "runStrategy": "Halted",
              "conditions": [{"type": "Ready", "status": "False", "reason": "VMINotExists",
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}]}
    wanted = {"printableStatus": "Stopped", "ready": False, "created": False, "runStrategy": "Halted",
              "conditions": [{"type": "Ready", "status": "False", "reason": "VMINotExists", "lastProbeTime": None,
                              "lastTransitionTime": "2026-01-01T00:00:00Z"}],
              "observedGeneration": None, "desiredGeneration": None}
    assert controller.vm_status_patch(stored, wanted) is None
    starting = dict(wanted, printableStatus="Starting", created=True)
    assert controller.vm_status_patch(stored, starting)["created"] is True
    assert controller.vm_status_patch(dict(stored, ready=True), wanted)["ready"] is None  # removed


def test_informer_indexes_follow_changes_and_deletions():
    informer = Informer(None, "/x", lambda obj: None, "x")
    informer.add_index("vm", lambda obj: [obj["spec"]["vm"]] if obj["spec"].get("vm") else [])
    snap = {"metadata": {"namespace": "ns", "name": "s1", "resourceVersion": "5"}, "spec": {"vm": "a"}}
    informer._apply({"type": "ADDED", "object": snap})
    assert [o["metadata"]["name"] for o in informer.by_index("vm", "ns", "a")] == ["s1"]
    assert informer.by_index("vm", "other", "a") == []
    moved = {"metadata": {"namespace": "ns", "name": "s1", "resourceVersion": "6"}, "spec": {"vm": "b"}}
    informer._apply({"type": "MODIFIED", "object": moved})
    assert informer.by_index("vm", "ns", "a") == [] and len(informer.by_index("vm", "ns", "b")) == 1
    informer._apply({"type": "DELETED", "object": moved})
    assert informer.by_index("vm", "ns", "b") == [] and informer.get("ns", "s1") is None


def test_an_own_write_is_kept_until_a_newer_version_arrives():
    informer = Informer(None, "/x", lambda obj: None, "x")
    old = {"metadata": {"namespace": "", "name": "c", "resourceVersion": "10"}, "status": None}
    written = {"metadata": {"namespace": "", "name": "c", "resourceVersion": "11"}, "status": {"cut": True}}
    informer._apply({"type": "ADDED", "object": old})
    informer.remember(written)
    informer._apply({"type": "MODIFIED", "object": old})  # a late event of the version before the write
    assert informer.get("", "c")["status"] == {"cut": True}
    newer = {"metadata": {"namespace": "", "name": "c", "resourceVersion": "12"}, "status": {"cut": True, "ready": True}}
    informer._apply({"type": "MODIFIED", "object": newer})
    assert informer.get("", "c")["status"]["ready"] is True


def test_failed_reconciles_back_off_per_key_and_a_success_forgets():
    manager = Manager(None)
    key, other = ("VM", "ns", "a"), ("VM", "ns", "b")
    delays = [manager._retry_after(key) for attempt in range(5)]
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08]  # client-go's per-item exponential backoff
    assert manager._retry_after(other) == 0.005
    assert max(manager._retry_after(key) for attempt in range(30)) == MAX_RETRY_DELAY
    manager._forget(key)
    assert manager._retry_after(key) == 0.005


def test_caches_synced_looks_at_the_informers_of_the_groups_asked():
    manager = Manager(None)
    vms = manager.watch("vms", "/apis/kubevirt.io/v1/virtualmachines")
    pvcs = manager.watch("pvcs", "/api/v1/persistentvolumeclaims")
    assert api_group("/apis/kubevirt.io/v1/virtualmachines") == "kubevirt.io"
    assert api_group("/api/v1/persistentvolumeclaims") == ""
    assert not manager.caches_synced({"kubevirt.io"})
    vms.synced.set()
    assert manager.caches_synced({"kubevirt.io"}) and not manager.caches_synced({"kubevirt.io", ""})
    pvcs.synced.set()
    assert manager.caches_synced({"kubevirt.io", ""})
