"""The shared wait against a fake watch: it ends when every object is where it should be, or at the deadline
naming what is still pending and how it last looked."""

import json
import queue
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient
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


class _FakeApiserver(BaseHTTPRequestHandler):
    """Lists VMs that are not ready yet; a watch sends the event that makes its VM ready, then streams nothing
    and holds its connection until the client closes it (as a real watch does until its timeoutSeconds)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send_json(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/version":
            return self._send_json({"gitVersion": "v1.33.0"})
        namespace = url.path.split("/")[5]
        meta = {"name": "vm", "namespace": namespace, "resourceVersion": "1"}
        vm_ns = dict(vm("vm", "Starting", False, "1"), metadata=meta)
        if "watch" not in query:
            return self._send_json({"items": [vm_ns], "metadata": {"resourceVersion": "1"}})
        self.server.watches.put(namespace)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        ready_vm = dict(vm_ns, status={"printableStatus": "Running", "ready": True})
        line = json.dumps({"type": "MODIFIED", "object": ready_vm}).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
        self.wfile.flush()
        self.connection.settimeout(30)  # a bound for this test server only
        try:
            self.rfile.read(1)  # returns when the client closes its connection
        except OSError:
            return
        self.server.closed.put(namespace)
        self.close_connection = True


class _Connection(object):
    proxy = None

    def __init__(self, server):
        self.server = server

    @staticmethod
    def pool_options():
        return {}

    @staticmethod
    def auth_headers():
        return {}

    @staticmethod
    def impersonate_group_headers():
        return []


@pytest.fixture
def apiserver():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeApiserver)
    server.daemon_threads = True
    server.watches, server.closed = queue.Queue(), queue.Queue()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_watches_in_more_namespaces_than_the_concurrency_neither_starve_nor_outlive_the_wait(apiserver):
    client = KubeClient(_Connection("http://127.0.0.1:%d" % apiserver.server_address[1]), concurrency=1)
    targets = [WaitTarget(ns, "vm", lambda obj: vm_matches(obj, "ready"), "ready", describe_vm) for ns in ("a", "b")]
    seen = wait_for(client, "kubevirt.io/v1", "virtualmachines", targets, timeout=20)
    assert sorted(key for key, obj in seen.items() if obj["status"]["ready"]) == [("a", "vm"), ("b", "vm")]
    # Both watches were closed when the wait returned, and their threads have ended.
    assert sorted(apiserver.closed.get(timeout=20) for _watch in range(2)) == ["a", "b"]
    assert not [t for t in threading.enumerate() if type(t).__name__ == "_NamespaceWatch"]
    # The one pooled connection is free for the next request.
    assert client.get("/version") == {"gitVersion": "v1.33.0"}
