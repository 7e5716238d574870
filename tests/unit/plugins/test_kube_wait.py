"""The shared wait against a fake watch: it ends when every object is where it should be, or at the deadline
naming what is still pending and how it last looked."""

import time

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import describe_vm, vm_matches

PATH = "/apis/kubevirt.io/v1/namespaces/vms/virtualmachines"


def vm(name, printable="Starting", ready=False, version="1"):
    return {"metadata": {"name": name, "namespace": "vms", "resourceVersion": version},
            "status": {"printableStatus": printable, "ready": ready}}


def ready(name):
    return WaitTarget("vms", name, lambda obj: vm_matches(obj, "ready"), "ready", describe_vm)


class FakeWatch(object):
    """A list, then one stream of `events` per watch call (the next list of them each time); then quiet."""

    def __init__(self, items, *streams):
        self.items, self.streams = items, list(streams)
        self.lists, self.watches = 0, []

    def list_all(self, path, query=None):
        assert path == PATH
        self.lists += 1
        return list(self.items), "1"

    def watch(self, path, query=None, timeout_seconds=60):
        self.watches.append(query["resourceVersion"])
        if self.streams:
            return iter(self.streams.pop(0))
        time.sleep(0.02)
        return iter([])


def test_the_wait_ends_when_a_watch_event_brings_the_last_object_to_its_state():
    watch = FakeWatch([vm("a", "Running", True), vm("b")],
                      [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "2"}}},
                       {"type": "MODIFIED", "object": vm("b", "Running", True, "3")}])
    seen = wait_for(watch, "kubevirt.io/v1", "virtualmachines", [ready("a"), ready("b")], timeout=5)
    assert seen[("vms", "b")]["status"]["ready"] is True
    assert watch.watches[0] == "1"  # the watch starts where the list ended


def test_a_deletion_is_waited_for_through_its_event():
    gone = WaitTarget("vms", "a", lambda obj: obj is None, "deletion", describe_vm)
    watch = FakeWatch([vm("a", "Stopped")], [{"type": "DELETED", "object": vm("a", "Stopped", version="2")}])
    assert wait_for(watch, "kubevirt.io/v1", "virtualmachines", [gone], timeout=5) == {("vms", "a"): None}


def test_the_timeout_names_only_what_is_pending_and_its_last_state():
    watch = FakeWatch([vm("a", "Running", True), vm("b", "ErrorUnschedulable")])
    started = time.monotonic()
    with pytest.raises(WaitTimeout) as err:
        wait_for(watch, "kubevirt.io/v1", "virtualmachines", [ready("a"), ready("b"), ready("c")], timeout=0.3)
    assert time.monotonic() - started < 3
    assert str(err.value) == ("timed out after 0.3s waiting for 2 of 3: "
                              "vms/b (waiting for ready; last seen: printableStatus=ErrorUnschedulable ready=False), "
                              "vms/c (waiting for ready; last seen: absent)")
    assert [t.name for t in err.value.pending] == ["b", "c"]


def test_an_expired_watch_lists_again_and_another_error_ends_the_wait():
    expired = {"type": "ERROR", "object": {"code": 410, "message": "too old resource version"}}
    watch = FakeWatch([vm("a")], [expired])
    with pytest.raises(WaitTimeout):
        wait_for(watch, "kubevirt.io/v1", "virtualmachines", [ready("a")], timeout=0.3)
    assert watch.lists >= 2

    forbidden = {"type": "ERROR", "object": {"code": 403, "message": "forbidden"}}
    with pytest.raises(KubeApiError) as err:
        wait_for(FakeWatch([vm("a")], [forbidden]), "kubevirt.io/v1", "virtualmachines", [ready("a")], timeout=5)
    assert err.value.status == 403


def test_nothing_to_wait_for_returns_at_once():
    assert wait_for(None, "kubevirt.io/v1", "virtualmachines", [], timeout=5) == {}
