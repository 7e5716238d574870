"""kubevirt_vm_export and kubevirt_disk_upload against the lab: a VM's disk exported and downloaded (the file's
sha256 is the lab volume's), uploaded back into a new DataVolume that a new VM boots from; re-runs change
nothing; check mode writes nothing; bad input fails naming the object and the field, with no write."""

import base64
import hashlib
import json
import os

import pytest

from tests.lab.kube import object_path
from tests.lab.kubevirt import vm_export, volume_data
from tests.lab.state import ADMIN_USER

EXPORT = "palette.vmo.kubevirt_vm_export"
UPLOAD = "palette.vmo.kubevirt_disk_upload"
SOURCE = {"registry": {"url": "docker://quay.io/containerdisks/fedora:41"}}


def via_proxy(lab):
    """The lab's export proxy listens on 127.0.0.1:<port>; the Ingress host of the export links names no address."""
    return {"export_proxy_url": f"https://127.0.0.1:{lab.ports['virt-exportproxy']}"}


@pytest.fixture
def no_export_ingress(admin, lab):
    """A cluster without an Ingress for virt-exportproxy: KubeVirt gives exports no external link (put back after)."""
    admin.delete(object_path("networking.k8s.io/v1", "ingresses", vm_export.INGRESS_NAME, "kubevirt"))
    try:
        yield
    finally:
        vm_export.ensure_pack_ingress(admin, lab.dir / "pki", "kubevirt")


def dv_path(namespace, name=""):
    return object_path("cdi.kubevirt.io/v1beta1", "datavolumes", name, namespace)


def handle_of(admin, namespace, claim):
    pvc = admin.get(object_path("v1", "persistentvolumeclaims", claim, namespace))
    return volume_data.volume_handle(admin.get(object_path("v1", "persistentvolumes", pvc["spec"]["volumeName"])))


def writes(audit, mark, namespace):
    """Every request of the module's user that changed something in the namespace (or cluster-wide)."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") in (namespace, None)]


def make_vm(run_module, admin, namespace, name="src", running=False, disk="src-disk"):
    admin.create(dv_path(namespace), {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                                      "metadata": {"name": disk},
                                      "spec": {"source": SOURCE, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}})
    result = run_module("palette.vmo.kubevirt_vm", {
        "namespace": namespace, "name": name, "memory": "128Mi", "state": "started" if running else "stopped",
        "wait": True, "wait_timeout": 120, "disks": [{"name": "root", "pvc": disk}]})
    assert result.get("failed") is not True, result.get("msg")
    return disk


def wait_dv(admin, namespace, name, timeout=60):
    import time
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dv = admin.get_or_none(dv_path(namespace, name))
        if ((dv or {}).get("status") or {}).get("phase") == "Succeeded":
            return dv
        time.sleep(0.2)
    raise AssertionError(f"DataVolume {namespace}/{name} not Succeeded: {(dv or {}).get('status')}")


@pytest.fixture
def exported_vm(run_module, admin, ns):
    disk = make_vm(run_module, admin, ns)
    wait_dv(admin, ns, disk)
    return disk


def test_export_downloads_the_served_image_and_reruns_change_nothing(run_module, admin, audit, lab, ns, exported_vm,
                                                                     tmp_path):
    dest = tmp_path / "exports"
    mark = audit.mark()
    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(dest)}, check=True)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["exports"][0]["volumes"][0]["action"] == "would download"
    assert writes(audit, mark, ns) == [] and not dest.exists()

    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(dest)})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    volume = result["exports"][0]["volumes"][0]
    path = dest / ns / "src-disk.img"
    assert volume["path"] == str(path) and volume["action"] == "downloaded"
    served = volume_data.sha256(handle_of(admin, ns, exported_vm))
    assert hashlib.sha256(path.read_bytes()).hexdigest() == served == volume["sha256"] == volume["image_sha256"]
    assert (dest / ns / "src-disk.img.sha256").read_text() == f"{served}  src-disk.img\n"
    assert volume["bytes"] == volume_data.size(handle_of(admin, ns, exported_vm))
    assert volume["progress"][-1]["percent"] == 100 and volume["bytes_per_second"] > 0
    assert "x-kubevirt-export-token" not in volume["url"]
    # the external link's path on export_proxy_url
    assert volume["url"] == (f"https://127.0.0.1:{lab.ports['virt-exportproxy']}/api/export.kubevirt.io/v1/namespaces/"
                             f"{ns}/virtualmachineexports/src-vm-export/volumes/src-disk/disk.img")
    # the export is deleted once downloaded, its token secret with it (garbage collector)
    assert admin.get_or_none(object_path("export.kubevirt.io/v1", "virtualmachineexports", "src-vm-export", ns)) is None

    mark = audit.mark()
    again = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(dest)})
    assert again["changed"] is False and again["exports"][0]["action"] == "unchanged"
    assert again["exports"][0]["volumes"][0]["sha256"] == served
    assert writes(audit, mark, ns) == []


def test_gzip_export_keeps_the_image_checksum_and_never_shows_the_token(
        run_module, admin, lab, ns, exported_vm, tmp_path):
    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "pvcs": [exported_vm], "dest": str(tmp_path), "format": "gzip",
                                 "keep_export": True, "export_ca_cert": str(lab.ca_file)})
    assert result.get("failed") is not True, result.get("msg")
    volume = result["exports"][0]["volumes"][0]
    assert volume["path"].endswith("/src-disk.img.gz")
    import gzip
    assert hashlib.sha256(gzip.decompress(open(volume["path"], "rb").read())).hexdigest() == volume["image_sha256"]
    assert volume["image_sha256"] == volume_data.sha256(handle_of(admin, ns, exported_vm))
    secret = admin.get(object_path("v1", "secrets", "export-token-src-disk-pvc-export", ns))
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert token not in result["_stdout"]


def test_upload_back_into_a_new_datavolume_that_a_new_vm_boots_from(
        run_module, admin, audit, lab, ns, exported_vm, tmp_path):
    exported = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(tmp_path)})
    image = exported["exports"][0]["volumes"][0]["path"]
    args = {"namespace": ns, "name": "restored", "src": image, "size": "1Gi", "upload_proxy_ca": str(lab.ca_file)}
    mark = audit.mark()
    check = run_module(UPLOAD, args, check=True)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True and writes(audit, mark, ns) == []

    result = run_module(UPLOAD, args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    disk = result["disks"][0]
    digest = hashlib.sha256(open(image, "rb").read()).hexdigest()
    assert disk["sha256"] == digest and disk["phase"] == "Succeeded" and disk["action"] == "uploaded"
    assert volume_data.sha256(handle_of(admin, ns, "restored")) == digest
    assert "eyJ" not in result["_stdout"]  # no upload token (a JWT) anywhere in the output

    booted = run_module("palette.vmo.kubevirt_vm", {
        "namespace": ns, "name": "from-upload", "memory": "128Mi", "state": "started", "wait": True,
        "wait_timeout": 120, "disks": [{"name": "root", "pvc": "restored"}]})
    assert booted.get("failed") is not True, booted.get("msg")
    vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "from-upload", ns))
    assert vm["status"]["printableStatus"] == "Running"

    mark = audit.mark()
    again = run_module(UPLOAD, args)
    assert again["changed"] is False and again["disks"][0]["action"] == "unchanged"
    assert writes(audit, mark, ns) == []


def test_upload_many_in_one_task(run_module, admin, lab, ns, tmp_path):
    images = []
    for index in range(3):
        path = tmp_path / f"disk-{index}.img"
        path.write_bytes(os.urandom(256 * 1024 + index))
        images.append(path)
    result = run_module(UPLOAD, {"namespace": ns, "upload_proxy_ca": str(lab.ca_file), "size": "64Mi",
                                 "disks": [{"name": f"d{i}", "src": str(p)} for i, p in enumerate(images)]})
    assert result.get("failed") is not True, result.get("msg")
    for index, path in enumerate(images):
        assert volume_data.sha256(handle_of(admin, ns, f"d{index}")) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bad_ns(admin, run_module, tmp_path_factory):
    """A namespace with a running VM ("up"), a stopped VM ("down") and a DataVolume uploaded with other content."""
    import uuid
    name = f"export-bad-input-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    make_vm(run_module, admin, name, "up", running=True, disk="up-disk")
    make_vm(run_module, admin, name, "down", disk="down-disk")
    wait_dv(admin, name, "down-disk")
    # a Filesystem claim made without CDI: no content-type annotation, no DataVolume
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=name), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "plain"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    base = tmp_path_factory.mktemp("export-bad")
    (base / "plain-file").write_text("x")
    (base / "image.img").write_bytes(b"\1" * (2 * 1024 * 1024))
    # a qcow2 file of 200 KiB or so whose disk is 8 MiB
    (base / "image.qcow2").write_bytes(volume_data.qcow2_image(b"\1" * 65536 + b"\0" * (8 * 1024 * 1024 - 65536)))
    return base


CASES = [
    ("no-such-vm", EXPORT, {"vm": "ghost", "dest": "{tmp}/out"},
     ["VirtualMachine {ns}/ghost: name: no such VirtualMachine in namespace {ns}"]),
    ("vm-running", EXPORT, {"vms": ["down", "up"], "dest": "{tmp}/out"},
     ["VirtualMachine {ns}/up: name: is running", "stop it first"]),
    ("no-such-pvc", EXPORT, {"pvc": "missing", "dest": "{tmp}/out"},
     ["PersistentVolumeClaim {ns}/missing: name: no such PersistentVolumeClaim missing in namespace {ns}"]),
    ("pvc-in-use", EXPORT, {"pvc": "up-disk", "dest": "{tmp}/out"},
     ["PersistentVolumeClaim {ns}/up-disk: name: is in use by the running VirtualMachineInstance up"]),
    ("dest-is-a-file", EXPORT, {"vm": "down", "dest": "{tmp}/plain-file"},
     ["dest: {tmp}/plain-file exists and is not a directory"]),
    ("bad-ttl", EXPORT, {"vm": "down", "dest": "{tmp}/out", "ttl": "5 minutes"},
     ["ttl: '5 minutes' is not a duration"]),
    ("bad-item-name", EXPORT, {"vms": ["down", "Bad_Name"], "dest": "{tmp}/out"},
     ["VirtualMachine {ns}/Bad_Name: name: 'Bad_Name' is not a valid name"]),
    ("no-such-snapshot", EXPORT, {"snapshot": "ghost", "dest": "{tmp}/out"},
     ["VirtualMachineSnapshot {ns}/ghost: name: no such VirtualMachineSnapshot in namespace {ns}"]),
    ("pvc-not-a-disk-image", EXPORT, {"pvc": "plain", "dest": "{tmp}/out"},
     ["PersistentVolumeClaim {ns}/plain: name: PersistentVolumeClaim plain is not a disk image for KubeVirt",
      "as an archive (dir, tar.gz) only"]),
    ("bad-export-proxy-url", EXPORT, {"vm": "down", "dest": "{tmp}/out", "export_proxy_url": "https://proxy/api/x"},
     ["export_proxy_url: 'https://proxy/api/x' is not an https URL of a host and an optional port"]),
    ("nothing-named", EXPORT, {"dest": "{tmp}/out"}, ["vm: one of vm, pvc, snapshot, vms, pvcs or snapshots is required"]),
    ("upload-missing-src", UPLOAD, {"name": "new", "src": "{tmp}/nope.img", "size": "1Gi"},
     ["DataVolume {ns}/new: src: {tmp}/nope.img is not a readable file"]),
    ("upload-too-small", UPLOAD, {"name": "new", "src": "{tmp}/image.img", "size": "1Mi"},
     ["DataVolume {ns}/new: size: 1Mi (1048576 bytes) is smaller than the image {tmp}/image.img (2097152 bytes)"]),
    ("upload-qcow2-virtual-size", UPLOAD, {"name": "new", "src": "{tmp}/image.qcow2", "size": "4Mi"},
     ["DataVolume {ns}/new: size: 4Mi (4194304 bytes) is smaller than the virtual size of the qcow2 image "
      "{tmp}/image.qcow2 (8388608 bytes), which CDI writes as raw"]),
    ("upload-bad-size", UPLOAD, {"name": "new", "src": "{tmp}/image.img", "size": "lots"},
     ["DataVolume {ns}/new: size: 'lots' is not a Kubernetes quantity"]),
    ("upload-existing-other", UPLOAD, {"name": "down-disk", "src": "{tmp}/image.img", "size": "1Gi"},
     ["DataVolume {ns}/down-disk: name: exists and was not uploaded from this image"]),
    ("upload-twice", UPLOAD, {"disks": [{"name": "a", "src": "{tmp}/image.img"}, {"name": "a", "src": "{tmp}/image.img"}],
                              "size": "1Gi"},
     ["DataVolume {ns}/a: name: is named more than once in this task"]),
    ("upload-bad-proxy-url", UPLOAD, {"name": "new", "src": "{tmp}/image.img", "size": "1Gi",
                                      "upload_proxy_url": "ftp://proxy"},
     ["upload_proxy_url: 'ftp://proxy' must be an https:// URL or a host[:port]"]),
]


def _fill(value, namespace, tmp):
    if isinstance(value, str):
        return value.replace("{ns}", namespace).replace("{tmp}", str(tmp))
    if isinstance(value, list):
        return [_fill(v, namespace, tmp) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, namespace, tmp) for k, v in value.items()}
    return value


@pytest.mark.parametrize("case_id, module, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_without_writing(run_module, audit, lab, bad_ns, files, case_id, module, args, expected):
    args = _fill(dict({"namespace": bad_ns}, **args), bad_ns, files)
    if module == UPLOAD:
        args["upload_proxy_ca"] = str(lab.ca_file)
    mark = audit.mark()
    result = run_module(module, args)
    assert result.get("failed") is True, json.dumps(result)[:2000]
    for text in _fill(expected, bad_ns, files):
        assert text in result["msg"], (text, result["msg"])
    assert writes(audit, mark, bad_ns) == []
    assert not (files / "out").exists()


def test_an_interrupted_export_and_upload_are_finished_by_the_next_run(
        run_module, admin, audit, lab, ns, exported_vm, tmp_path):
    # an export left behind (keep_export) and its file gone: the next run uses that export, then deletes it
    first = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(tmp_path), "keep_export": True})
    path = first["exports"][0]["volumes"][0]["path"]
    os.unlink(path)
    export_path = object_path("export.kubevirt.io/v1", "virtualmachineexports", "src-vm-export", ns)
    assert admin.get_or_none(export_path) is not None
    mark = audit.mark()
    again = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(tmp_path)})
    assert again["changed"] is True and os.path.exists(path)
    verbs = [(e["verb"], e["objectRef"].get("resource")) for e in writes(audit, mark, ns)]
    assert verbs == [("delete", "virtualmachineexports")]
    # a DataVolume of this task waiting for its upload (the upload never came): the next run uploads into it
    digest = hashlib.sha256(open(path, "rb").read()).hexdigest()
    admin.create(dv_path(ns), {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume",
                               "metadata": {"name": "pending", "annotations": {"palette.vmo/upload-sha256": digest}},
                               "spec": {"source": {"upload": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}})
    result = run_module(UPLOAD, {"namespace": ns, "name": "pending", "src": path, "size": "1Gi",
                                 "upload_proxy_ca": str(lab.ca_file)})
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True and result["disks"][0]["phase"] == "Succeeded"
    assert volume_data.sha256(handle_of(admin, ns, "pending")) == digest


def test_diff_mode_names_the_files_and_the_datavolumes(run_module, ns, lab, exported_vm, tmp_path):
    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(tmp_path)}, check=True, diff=True)
    assert result["diff"][0]["after"] == {"path": [str(tmp_path / ns / "src-disk.img")], "exported": True}
    image = tmp_path / "i.img"
    image.write_bytes(b"\0" * 4096)
    result = run_module(UPLOAD, {"namespace": ns, "name": "d", "src": str(image), "upload_proxy_ca": str(lab.ca_file)},
                        check=True, diff=True)
    assert result["diff"][0]["after"]["spec"]["source"] == {"upload": {}}
    assert result["disks"][0]["size"] == "1Mi" and result["disks"][0]["action"] == "would upload"


def test_export_of_a_vm_snapshot(run_module, admin, lab, ns, exported_vm, tmp_path, audit):
    snapshots = object_path("snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshots", namespace=ns)
    admin.create(snapshots, {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                             "metadata": {"name": "before"},
                             "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "src"}}})
    import time
    deadline = time.monotonic() + 60
    while not ((admin.get(snapshots + "/before").get("status") or {}).get("readyToUse")):
        assert time.monotonic() < deadline, "snapshot not ready"
        time.sleep(0.2)
    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "snapshot": "before", "dest": str(tmp_path), "keep_export": True})
    assert result.get("failed") is not True, result.get("msg")
    export = result["exports"][0]
    assert (export["kind"], export["export"]) == ("VirtualMachineSnapshot", "before-snapshot-export")
    volume = export["volumes"][0]
    assert volume["name"] == exported_vm and volume["path"] == str(tmp_path / ns / f"before-{exported_vm}.img")
    # the export restored the claim <export>-<claim> from the snapshot; the file holds its bytes
    restored = handle_of(admin, ns, f"before-snapshot-export-{exported_vm}")
    assert volume["sha256"] == volume_data.sha256(restored)
    mark = audit.mark()
    again = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "snapshot": "before", "dest": str(tmp_path)})
    assert again["changed"] is False and writes(audit, mark, ns) == []


def test_without_an_external_link_the_export_fails_naming_it_and_the_option(
        run_module, admin, lab, ns, exported_vm, tmp_path, no_export_ingress):
    """No Ingress to virt-exportproxy: KubeVirt's exports get no external link; the task fails once the export is
    Ready, naming it and export_proxy_url, and deletes it; with export_proxy_url the proxy's path for the export
    plus the internal link's path is downloaded."""
    result = run_module(EXPORT, {"namespace": ns, "vm": "src", "dest": str(tmp_path)})
    assert result.get("failed") is True and result["changed"] is True
    assert f"VirtualMachineExport {ns}/src-vm-export is Ready without an external link" in result["msg"]
    assert "give export_proxy_url" in result["msg"]
    export_path = object_path("export.kubevirt.io/v1", "virtualmachineexports", "src-vm-export", ns)
    assert admin.get_or_none(export_path) is None
    assert not (tmp_path / ns / "src-disk.img").exists()

    result = run_module(EXPORT, {**via_proxy(lab), "namespace": ns, "vm": "src", "dest": str(tmp_path)})
    assert result.get("failed") is not True, result.get("msg")
    volume = result["exports"][0]["volumes"][0]
    assert volume["url"] == (f"https://127.0.0.1:{lab.ports['virt-exportproxy']}/api/export.kubevirt.io/v1/namespaces/"
                             f"{ns}/virtualmachineexports/src-vm-export/volumes/src-disk/disk.img")
    assert volume["sha256"] == volume_data.sha256(handle_of(admin, ns, exported_vm))


def test_a_qcow2_image_is_uploaded_as_raw_sized_by_its_virtual_size(run_module, admin, lab, ns, tmp_path):
    """CDI converts a qcow2 upload to raw and checks its virtual size; the module sizes the DataVolume from the
    virtual size and asks for immediate binding (as virtctl image-upload --force-bind)."""
    raw = os.urandom(300 * 1024) + b"\0" * (5 * 1024 * 1024)
    image = tmp_path / "disk.qcow2"
    image.write_bytes(volume_data.qcow2_image(raw, compressed=True))
    result = run_module(UPLOAD, {"namespace": ns, "name": "fromq", "src": str(image), "upload_proxy_ca": str(lab.ca_file)})
    assert result.get("failed") is not True, result.get("msg")
    disk = result["disks"][0]
    assert (disk["image_format"], disk["virtual_size"], disk["size"]) == ("qcow2", len(raw), "6Mi")
    assert disk["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert volume_data.sha256(handle_of(admin, ns, "fromq")) == hashlib.sha256(raw).hexdigest()
    dv = admin.get(dv_path(ns, "fromq"))
    assert dv["metadata"]["annotations"]["cdi.kubevirt.io/storage.bind.immediate.requested"] == "true"
