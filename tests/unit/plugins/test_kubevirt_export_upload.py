"""Pure logic of kubevirt_vm_export and kubevirt_disk_upload: input checks, the idempotence test on files,
progress milestones, the transfer helpers against a local HTTP server."""

import hashlib
import http.server
import threading

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import disk_transfer, export_runner, upload_runner


def export_params(**overrides):
    params = dict(vm=None, pvc=None, snapshot=None, vms=None, pvcs=None, snapshots=None, namespace="ns", dest="/tmp", format="raw", ttl=None,
                  export_ca_cert=None, wait_timeout=60, concurrency=4)
    params.update(overrides)
    return params


def test_export_sources_from_every_option_and_their_names():
    sources = export_runner.parse_sources(export_params(vm="a", vms=["b", {"name": "c", "namespace": "other"}],
                                                        pvcs=["d"]))
    assert [(s.kind, s.namespace, s.name) for s in sources] == [
        ("vm", "ns", "b"), ("vm", "other", "c"), ("pvc", "ns", "d"), ("vm", "ns", "a")]
    assert sources[0].export_name == "b-vm-export"
    long_name = export_runner.Source("vm", "x" * 63, "ns", "vm").export_name
    assert len(long_name) <= 63


@pytest.mark.parametrize("overrides, message", [
    (dict(), "vm: one of vm, pvc, snapshot, vms, pvcs or snapshots is required"),
    (dict(vm="Bad_Name"), "VirtualMachine ns/Bad_Name: name: 'Bad_Name' is not a valid name"),
    (dict(vms=["a", "a"]), "VirtualMachine ns/a: name: is named more than once in this task"),
    (dict(vm="a", ttl="soon"), "ttl: 'soon' is not a duration"),
    (dict(vm="a", namespace=None), "VirtualMachine a: namespace: is required"),
    (dict(vm="a", wait_timeout=-1), "wait_timeout: -1 is out of range"),
])
def test_export_bad_input(overrides, message):
    with pytest.raises(ModuleFailure) as err:
        export_runner.parse_sources(export_params(**overrides))
    assert str(err.value).startswith(export_runner.INVALID_INPUT)
    assert message in str(err.value)


@pytest.mark.parametrize("url", ["http://proxy", "https://proxy/base", "proxy:8443", "https://proxy?x=1", "https://:443"])
def test_export_proxy_url_is_a_bare_https_address(url):
    with pytest.raises(ModuleFailure) as err:
        export_runner.parse_sources(export_params(vm="a", export_proxy_url=url))
    assert "export_proxy_url: %r is not an https URL of a host and an optional port" % url in str(err.value)


def _export(links):
    return {"metadata": {"namespace": "ns", "name": "e"}, "status": {"phase": "Ready", "links": links}}


def test_links_on_export_proxy_url_keep_the_external_path_or_build_the_proxy_path():
    raw = {"format": "raw", "url": "https://ingress.example/api/export.kubevirt.io/v1/namespaces/ns/"
                                   "virtualmachineexports/e/volumes/d/disk.img"}
    external = {"cert": "EXT", "volumes": [{"name": "d", "formats": [raw]}]}
    internal = {"cert": "INT", "volumes": [{"name": "d", "formats": [
        {"format": "raw", "url": "https://virt-export-e.ns.svc/volumes/d/disk.img"}]}]}
    # no option: the external link as it is
    assert export_runner.volume_links(_export({"internal": internal, "external": external}), None) == external
    moved = export_runner.volume_links(_export({"internal": internal, "external": external}), "https://10.0.0.5:8443")
    assert moved["cert"] == "EXT" and moved["volumes"][0]["formats"][0]["url"] == (
        "https://10.0.0.5:8443/api/export.kubevirt.io/v1/namespaces/ns/virtualmachineexports/e/volumes/d/disk.img")
    built = export_runner.volume_links(_export({"internal": internal}), "https://10.0.0.5")
    assert built["cert"] == "INT" and built["volumes"][0]["formats"][0]["url"] == (
        "https://10.0.0.5/api/export.kubevirt.io/v1/namespaces/ns/virtualmachineexports/e/volumes/d/disk.img")


def test_an_export_ready_without_external_link_ends_the_wait_for_all():
    seen = []
    predicate = export_runner._ready_predicate({"export_proxy_url": None}, seen)
    pending = {"metadata": {"namespace": "ns", "name": "other"}, "status": {"phase": "Pending"}}
    assert predicate(pending) is False
    assert predicate(_export({"internal": {}})) is True and predicate(pending) is True
    assert "VirtualMachineExport ns/e is Ready without an external link" in export_runner.no_external_link_error(seen)
    # with export_proxy_url, Ready is enough and pending stays pending
    with_proxy = export_runner._ready_predicate({"export_proxy_url": "https://p"}, [])
    assert with_proxy(_export({"internal": {}})) is True and with_proxy(pending) is False


class _Client(object):
    def __init__(self, dv):
        self.dv = dv

    def get_or_none(self, path):
        return self.dv


@pytest.mark.parametrize("pvc, dv, image", [
    ({"spec": {"volumeMode": "Block"}}, None, True),
    ({"metadata": {"annotations": {"cdi.kubevirt.io/storage.contentType": ""}}}, None, True),
    ({"metadata": {"annotations": {"cdi.kubevirt.io/storage.contentType": "archive"}}}, None, False),
    ({}, None, False),
    ({"metadata": {"ownerReferences": [{"kind": "DataVolume", "apiVersion": "cdi.kubevirt.io/v1beta1", "name": "d",
                                        "controller": True}]}}, {"spec": {}}, True),
    ({"metadata": {"ownerReferences": [{"kind": "DataVolume", "apiVersion": "cdi.kubevirt.io/v1beta1", "name": "d",
                                        "controller": True}]}}, {"spec": {"contentType": "archive"}}, False),
])
def test_which_claims_kubevirt_exports_as_disk_images(pvc, dv, image):
    pvc = dict({"metadata": {}, "spec": {}}, **pvc)
    assert export_runner._is_disk_image(_Client(dv), "ns", pvc) is image


def test_a_file_counts_as_downloaded_only_with_an_agreeing_sha256(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"abc")
    assert not export_runner.already_downloaded(str(image))
    (tmp_path / "disk.img.sha256").write_text("%s  disk.img\n" % hashlib.sha256(b"abc").hexdigest())
    assert export_runner.already_downloaded(str(image))
    image.write_bytes(b"abd")
    assert not export_runner.already_downloaded(str(image))


def upload_params(**overrides):
    params = dict(namespace="ns", name=None, src=None, size=None, storage_class=None, access_modes=None,
                  volume_mode=None, upload_proxy_url=None, upload_proxy_ca=None, wait_timeout=60, concurrency=4,
                  disks=None, force_bind=True)
    params.update(overrides)
    return params


def _qcow2_header(virtual_size):
    import struct
    return struct.pack(">4sIQIIQ", b"QFI\xfb", 3, 0, 0, 16, virtual_size).ljust(512, b"\0")


def test_a_qcow2_image_is_sized_by_its_virtual_size(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(_qcow2_header(10 * 1024 * 1024 + 1))
    assert disk_transfer.image_info(str(image)) == {"format": "qcow2", "virtual_size": 10 * 1024 * 1024 + 1}
    [disk] = upload_runner.parse_disks(upload_params(name="d", src=str(image)))
    assert (disk.size, disk.image_format, disk.image_bytes) == ("11Mi", "qcow2", 512)
    with pytest.raises(ModuleFailure) as err:
        upload_runner.parse_disks(upload_params(name="d", src=str(image), size="10Mi"))
    assert "is smaller than the virtual size of the qcow2 image" in str(err.value)
    plain = tmp_path / "disk.img"
    plain.write_bytes(b"QFI")
    assert disk_transfer.image_info(str(plain)) == {"format": "raw", "virtual_size": 3}


def test_force_bind_asks_cdi_for_immediate_binding(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"x")
    [disk] = upload_runner.parse_disks(upload_params(name="d", src=str(image)))
    disk.sha256 = "abc"
    annotations = upload_runner.dv_body(disk, "cdi.kubevirt.io/v1beta1")["metadata"]["annotations"]
    assert annotations["cdi.kubevirt.io/storage.bind.immediate.requested"] == "true"
    annotations = upload_runner.dv_body(disk, "cdi.kubevirt.io/v1beta1", False)["metadata"]["annotations"]
    assert "cdi.kubevirt.io/storage.bind.immediate.requested" not in annotations


def test_upload_size_defaults_to_the_image_and_may_not_be_smaller(tmp_path):
    image = tmp_path / "disk.img"
    image.write_bytes(b"x" * (3 * 1024 * 1024 + 1))
    params = dict(namespace="ns", name=None, src=None, size=None, storage_class=None, access_modes=None,
                  volume_mode=None, upload_proxy_url=None, upload_proxy_ca=None, wait_timeout=60, concurrency=4,
                  disks=[{"name": "d", "src": str(image)}])
    disks = upload_runner.parse_disks(params)
    assert disks[0].size == "4Mi" and disks[0].image_bytes == 3 * 1024 * 1024 + 1
    params["size"] = "3Mi"
    with pytest.raises(ModuleFailure) as err:
        upload_runner.parse_disks(params)
    assert "DataVolume ns/d: size: 3Mi (3145728 bytes) is smaller than the image" in str(err.value)
    params.update(size="1Gi", upload_proxy_url="http://proxy")
    with pytest.raises(ModuleFailure) as err:
        upload_runner.parse_disks(params)
    assert "upload_proxy_url: 'http://proxy' must be an https:// URL or a host[:port]" in str(err.value)


def test_progress_marks_each_tenth():
    progress = disk_transfer.Progress(1000)
    for _step in range(40):
        progress.add(25)
    assert [m["percent"] for m in progress.milestones] == [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert progress.summary()["bytes"] == 1000


class _Server(http.server.BaseHTTPRequestHandler):
    body = b"disk image " * 5000
    received = {}
    failures = []  # statuses to answer first, one per request

    def log_message(self, *args):
        pass

    def do_GET(self):  # noqa: N802
        if _Server.failures:
            self.send_response(_Server.failures.pop(0))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if self.headers.get("x-kubevirt-export-token") != "secret":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def do_POST(self):  # noqa: N802
        length = int(self.headers["Content-Length"])
        _Server.received["body"] = self.rfile.read(length)
        _Server.received["auth"] = self.headers.get("Authorization")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield "http://127.0.0.1:%d" % httpd.server_address[1]
    httpd.shutdown()


def test_download_and_upload_stream_with_checksums(server, tmp_path):
    dest = tmp_path / "disk.img"
    with pytest.raises(disk_transfer.TransferError) as err:
        disk_transfer.download(server + "/disk.img", {}, str(dest), "VM ns/a: volume a")
    assert "VM ns/a: volume a: HTTP 401" in str(err.value) and not dest.exists()
    summary = disk_transfer.download(server + "/disk.img", {"x-kubevirt-export-token": "secret"}, str(dest), "x")
    assert dest.read_bytes() == _Server.body
    assert summary["sha256"] == summary["image_sha256"] == hashlib.sha256(_Server.body).hexdigest()
    assert summary["bytes"] == summary["total_bytes"] == len(_Server.body)
    sent = disk_transfer.upload(server + "/v1beta1/upload", {"Authorization": "Bearer t"}, str(dest), "x")
    assert _Server.received == {"body": _Server.body, "auth": "Bearer t"}
    assert sent["sha256"] == hashlib.sha256(_Server.body).hexdigest()
    assert list(tmp_path.iterdir()) == [dest]  # no partial file left


def test_a_download_is_tried_again_after_a_server_error(server, tmp_path):
    _Server.failures[:] = [503, 502]
    dest = tmp_path / "disk.img"
    disk_transfer.download(server + "/disk.img", {"x-kubevirt-export-token": "secret"}, str(dest), "x",
                           sleep=lambda seconds: None)
    assert dest.read_bytes() == _Server.body and _Server.failures == []
    _Server.failures[:] = [404]
    with pytest.raises(disk_transfer.TransferError) as err:
        disk_transfer.download(server + "/disk.img", {"x-kubevirt-export-token": "secret"}, str(dest), "VM a",
                               sleep=lambda seconds: None)
    assert "VM a: HTTP 404" in str(err.value)
