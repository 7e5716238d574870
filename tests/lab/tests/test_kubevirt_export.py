"""Disk content, VirtualMachineExport and CDI upload in the lab: the importer writes a volume's bytes, the
export server serves them with the export token, the upload proxy writes an upload onto a new DataVolume."""

import base64
import gzip
import hashlib
import time
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.lab.kube import KubeError, object_path
from tests.lab.kubevirt import volume_data, vm_export
from tests.lab.kubevirt.storage import storage_bytes

from .helpers import vm_manifest, vm_path

EXPORT_API = "export.kubevirt.io/v1"


def dv(name, source):
    return {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": name},
            "spec": {"source": source, "storage": {"resources": {"requests": {"storage": "64Mi"}}}}}


def dv_path(namespace, name=""):
    return object_path("cdi.kubevirt.io/v1beta1", "datavolumes", name, namespace)


def export_path(namespace, name=""):
    return object_path(EXPORT_API, "virtualmachineexports", name, namespace)


def export(name, kind, source, api_group=None):
    spec = {"source": {"kind": kind, "name": source}}
    if api_group is not None:
        spec["source"]["apiGroup"] = api_group
    return {"apiVersion": EXPORT_API, "kind": "VirtualMachineExport", "metadata": {"name": name}, "spec": spec}


def phase_is(value):
    return lambda obj: obj is not None and (obj.get("status") or {}).get("phase") == value


def handle_of(admin, namespace, claim):
    pvc = admin.get(object_path("v1", "persistentvolumeclaims", claim, namespace))
    pv = admin.get(object_path("v1", "persistentvolumes", pvc["spec"]["volumeName"]))
    return volume_data.volume_handle(pv)


def token_of(admin, namespace, export_obj):
    secret = admin.get(object_path("v1", "secrets", export_obj["status"]["tokenSecretRef"], namespace))
    return base64.b64decode(secret["data"]["token"]).decode()


def proxied(lab, url):
    """The export proxy's address in the lab: the link's path on https://127.0.0.1:<port> (the Ingress host,
    virt-exportproxy.lab.palette.vmo, names no address)."""
    parts = urlsplit(url)
    assert parts.hostname == vm_export.INGRESS_HOST
    return urlunsplit(("https", f"127.0.0.1:{lab.ports['virt-exportproxy']}", parts.path, parts.query, ""))


@pytest.fixture
def no_export_ingress(admin, lab):
    """A cluster without the pack's Ingress for virt-exportproxy (put back afterwards)."""
    path = object_path("networking.k8s.io/v1", "ingresses", vm_export.INGRESS_NAME, "kubevirt")
    admin.delete(path)
    try:
        yield
    finally:
        vm_export.ensure_pack_ingress(admin, lab.dir / "pki", "kubevirt")


def session(lab):
    http = requests.Session()
    http.trust_env = False
    http.verify = str(lab.ca_file)
    return http


def imported(admin, wait, namespace, name="disk"):
    admin.create(dv_path(namespace), dv(name, {"registry": {"url": "docker://quay.io/containerdisks/cirros"}}))
    wait.until(dv_path(namespace, name), phase_is("Succeeded"), 30, f"DataVolume {name} Succeeded")
    return handle_of(admin, namespace, name)


def test_importer_writes_content_generated_and_fetched(admin, wait, namespace, lab):
    handle = imported(admin, wait, namespace)
    data = b"".join(volume_data.read_stream(handle))
    assert data == volume_data.generated_image("registry:docker://quay.io/containerdisks/cirros")
    assert len(data) == volume_data.GENERATED_SIZE
    # an http source on loopback is downloaded for real: the export link of the first disk
    admin.create(export_path(namespace), export("first", "PersistentVolumeClaim", "disk"))
    first = wait.until(export_path(namespace, "first"), phase_is("Ready"), 30, "export Ready")
    url = proxied(lab, first["status"]["links"]["external"]["volumes"][0]["formats"][0]["url"])
    token = token_of(admin, namespace, first)
    admin.create(dv_path(namespace), dv("copy", {"http": {"url": f"{url}?x-kubevirt-export-token={token}"}}))
    wait.until(dv_path(namespace, "copy"), phase_is("Succeeded"), 30, "copy Succeeded")
    assert volume_data.sha256(handle_of(admin, namespace, "copy")) == hashlib.sha256(data).hexdigest()


def test_pvc_export_serves_the_volume_with_its_token(admin, wait, namespace, lab):
    handle = imported(admin, wait, namespace)
    admin.create(export_path(namespace), export("ex", "PersistentVolumeClaim", "disk"))
    obj = wait.until(export_path(namespace, "ex"), phase_is("Ready"), 30, "export Ready")
    status = obj["status"]
    assert status["tokenSecretRef"] == "export-token-ex" and status["serviceName"] == "virt-export-ex"
    ready = {c["type"]: c for c in status["conditions"]}
    assert (ready["Ready"]["status"], ready["Ready"]["reason"]) == ("True", "PodReady")
    assert ready["PVCReady"]["reason"] == "PVCBound"
    assert status["ttlExpirationTime"]
    internal = status["links"]["internal"]["volumes"][0]
    assert internal["formats"][0]["url"] == "https://virt-export-ex.%s.svc/volumes/disk/disk.img" % namespace
    external = status["links"]["external"]
    formats = {f["format"]: proxied(lab, f["url"]) for f in external["volumes"][0]["formats"]}
    assert set(formats) == {"raw", "gzip"}
    assert external["volumes"][0]["formats"][0]["url"] == (
        f"https://{vm_export.INGRESS_HOST}/api/export.kubevirt.io/v1/namespaces/{namespace}/virtualmachineexports/ex"
        "/volumes/disk/disk.img")
    assert "BEGIN CERTIFICATE" in external["cert"]  # the Ingress TLS secret's certificate for the host
    # createServiceManifest: app label plus the export's labels, selector on the export's name
    service = admin.get(object_path("v1", "services", "virt-export-ex", namespace))
    assert service["metadata"]["labels"]["kubevirt.io"] == "virt-exporter"
    assert service["spec"]["selector"] == {"kubevirt.io.virt-export-service": "ex"}
    http = session(lab)
    assert http.get(formats["raw"]).status_code == 401
    assert http.get(formats["raw"], headers={"x-kubevirt-export-token": "wrong"}).status_code == 401
    token = token_of(admin, namespace, obj)
    raw = http.get(formats["raw"], headers={"x-kubevirt-export-token": token})
    assert raw.status_code == 200 and int(raw.headers["Content-Length"]) == volume_data.size(handle)
    assert hashlib.sha256(raw.content).hexdigest() == volume_data.sha256(handle)
    part = http.get(formats["raw"], headers={"x-kubevirt-export-token": token, "Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == raw.content[10:20]
    packed = http.get(formats["gzip"], params={"x-kubevirt-export-token": token})
    assert gzip.decompress(packed.content) == raw.content
    # the token secret and the service belong to the export: gone with it (garbage collector)
    admin.delete(export_path(namespace, "ex"))
    wait.gone(object_path("v1", "secrets", "export-token-ex", namespace), 60)
    # virt-exportproxy: no such export -> 404
    assert http.get(formats["raw"], headers={"x-kubevirt-export-token": token}).status_code == 404
    # gzipHandler answers GET only
    admin.create(export_path(namespace), export("ex2", "PersistentVolumeClaim", "disk"))
    obj = wait.until(export_path(namespace, "ex2"), phase_is("Ready"), 30, "export Ready")
    packed_url = proxied(lab, obj["status"]["links"]["external"]["volumes"][0]["formats"][1]["url"])
    assert http.head(packed_url, headers={"x-kubevirt-export-token": token_of(admin, namespace, obj)}).status_code == 400


def test_no_external_links_without_an_ingress_to_the_export_proxy(admin, wait, namespace, no_export_ingress):
    """links.go getExternalLinks: no Ingress or Route to virt-exportproxy, no external links (internal only)."""
    imported(admin, wait, namespace)
    admin.create(export_path(namespace), export("noext", "PersistentVolumeClaim", "disk"))
    obj = wait.until(export_path(namespace, "noext"), phase_is("Ready"), 30, "export Ready")
    assert set(obj["status"]["links"]) == {"internal"}


def test_a_claim_without_the_content_type_annotation_exports_as_an_archive(admin, wait, namespace):
    """export.go isKubevirtContentType: a Filesystem claim with no content-type annotation and no DataVolume is
    archive content (tar.gz and dir links)."""
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=namespace), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "plain"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}})
    wait.until(object_path("v1", "persistentvolumeclaims", "plain", namespace),
               lambda o: (o or {}).get("status", {}).get("phase") == "Bound", 30, "claim Bound")
    admin.create(export_path(namespace), export("px", "PersistentVolumeClaim", "plain"))
    obj = wait.until(export_path(namespace, "px"), phase_is("Ready"), 30, "export Ready")
    formats = [f["format"] for f in obj["status"]["links"]["internal"]["volumes"][0]["formats"]]
    assert formats == ["dir", "tar.gz"]


def test_vm_export_waits_while_the_vm_runs(admin, wait, namespace):
    imported(admin, wait, namespace)
    vm = vm_manifest("vm", namespace, run_strategy="Always")
    vm["spec"]["template"]["spec"]["volumes"] = [{"name": "root", "dataVolume": {"name": "disk"}}]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    admin.create(vm_path(namespace), vm)
    wait.printable(namespace, "vm", "Running")
    admin.create(export_path(namespace), export("vmx", "VirtualMachine", "vm", "kubevirt.io"))
    obj = wait.until(export_path(namespace, "vmx"),
                     lambda o: o is not None and any(c.get("reason") == "InUse"
                                                     for c in (o.get("status") or {}).get("conditions") or []),
                     30, "export InUse")
    assert obj["status"]["phase"] == "Pending"
    assert obj["status"]["virtualMachineName"] == "vm"
    ready = next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")
    assert ready["message"] == f"Virtual Machine {namespace}/vm is running"
    admin.merge_patch(vm_path(namespace, "vm"), {"spec": {"runStrategy": "Halted"}})
    obj = wait.until(export_path(namespace, "vmx"), phase_is("Ready"), 30, "export Ready once stopped")
    assert [v["name"] for v in obj["status"]["links"]["external"]["volumes"]] == ["disk"]


def test_a_pending_export_answers_503_and_outlives_its_ttl_until_its_source_is_available(admin, wait, namespace, lab):
    """export.go manageExporterPod: checkPod (the TTL) runs only with an exporter and the source available;
    virt-exportproxy answers 503 for an export not Ready."""
    imported(admin, wait, namespace)
    vm = vm_manifest("busy", namespace, run_strategy="Always")
    vm["spec"]["template"]["spec"]["volumes"] = [{"name": "root", "dataVolume": {"name": "disk"}}]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    admin.create(vm_path(namespace), vm)
    wait.printable(namespace, "busy", "Running")
    body = export("late", "VirtualMachine", "busy", "kubevirt.io")
    body["spec"]["ttlDuration"] = "2s"
    admin.create(export_path(namespace), body)
    obj = wait.until(export_path(namespace, "late"),
                     lambda o: o is not None and "InUse" in [c.get("reason") for c in (o.get("status") or {}).get("conditions", [])],
                     30, "export InUse")
    url = (f"https://127.0.0.1:{lab.ports['virt-exportproxy']}/api/export.kubevirt.io/v1/namespaces/{namespace}"
           "/virtualmachineexports/late/volumes/disk/disk.img")
    assert session(lab).get(url, headers={"x-kubevirt-export-token": "x"}).status_code == 503
    expiry = vm_export.parse_time(obj["status"]["ttlExpirationTime"]).timestamp()
    # past the TTL, a change of the source reconciles the export: it stays (no exporter, source in use)
    wait.until(export_path(namespace, "late"), lambda o: o is not None and time.time() > expiry + 1, 30, "TTL passed")
    admin.merge_patch(vm_path(namespace, "busy"), {"metadata": {"labels": {"touched": "yes"}}})
    wait.until(export_path(namespace, "late"), lambda o: o is not None and time.time() > expiry + 2, 30, "still there")
    # stopped: the exporter starts, checkPod finds the TTL passed and deletes the export
    admin.merge_patch(vm_path(namespace, "busy"), {"spec": {"runStrategy": "Halted"}})
    wait.gone(export_path(namespace, "late"), 60)


def test_export_ttl_deletes_it(admin, wait, namespace):
    imported(admin, wait, namespace)
    body = export("short", "PersistentVolumeClaim", "disk")
    body["spec"]["ttlDuration"] = "3s"
    admin.create(export_path(namespace), body)
    wait.gone(export_path(namespace, "short"), 30)


@pytest.mark.parametrize("source,field,message", [
    ({"kind": "Pod", "name": "x"}, "spec.source.kind", "invalid kind"),
    ({"kind": "PersistentVolumeClaim", "name": ""}, "spec.source.name", "PVC name must not be empty"),
    ({"kind": "VirtualMachine", "name": "x"}, "spec.source.APIGroup", "VM API group must be kubevirt.io"),
    ({"kind": "VirtualMachine", "name": "", "apiGroup": "kubevirt.io"}, "spec.source.name",
     "Virtual Machine name must not be empty"),
    ({"kind": "VirtualMachineBackup", "name": "b"}, "spec.source.APIGroup",
     "VirtualMachineBackup API group must be backup.kubevirt.io"),
    ({"kind": "VirtualMachineTemplate", "name": "t", "apiGroup": "template.kubevirt.io"}, "spec.source.kind",
     "VirtualMachineTemplate source requires the OCIExport feature gate and virt-template deployment to be enabled"),
])
def test_export_admitter_refuses(admin, namespace, source, field, message):
    body = {"apiVersion": EXPORT_API, "kind": "VirtualMachineExport", "metadata": {"name": "bad"},
            "spec": {"source": source}}
    with pytest.raises(KubeError) as err:
        admin.create(export_path(namespace), body, dryRun="All")
    assert err.value.status == 422
    causes = err.value.body["details"]["causes"]
    assert {"field": field, "message": message} in [{"field": c.get("field"), "message": c["message"]} for c in causes]


def test_export_spec_is_immutable(admin, wait, namespace):
    imported(admin, wait, namespace)
    admin.create(export_path(namespace), export("fixed", "PersistentVolumeClaim", "disk"))
    with pytest.raises(KubeError) as err:
        admin.merge_patch(export_path(namespace, "fixed"), {"spec": {"ttlDuration": "1h"}})
    assert "spec in immutable after creation" in str(err.value)


def upload_token(admin, namespace, claim):
    return admin.create(object_path("upload.cdi.kubevirt.io/v1beta1", "uploadtokenrequests", namespace=namespace),
                        {"apiVersion": "upload.cdi.kubevirt.io/v1beta1", "kind": "UploadTokenRequest",
                         "metadata": {"name": claim}, "spec": {"pvcName": claim}})["status"]["token"]


def test_upload_through_the_proxy(admin, wait, namespace, lab):
    config = wait.until(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config"),
                        lambda c: bool((c or {}).get("status", {}).get("uploadProxyURL")), 30, "uploadProxyURL")
    proxy = "https://" + config["status"]["uploadProxyURL"]
    admin.create(dv_path(namespace), dv("up", {"upload": {}}))
    wait.until(dv_path(namespace, "up"), phase_is("UploadReady"), 30, "UploadReady")
    http = session(lab)
    image = b"uploaded image\n" * 4096
    assert http.post(proxy + "/v1beta1/upload", data=image).status_code == 400  # no Authorization
    assert http.post(proxy + "/v1beta1/upload", data=image,
                     headers={"Authorization": "Bearer abc.def.ghi"}).status_code == 401
    token = upload_token(admin, namespace, "up")
    assert token.count(".") == 2
    other = upload_token(admin, namespace, "missing")
    resp = http.post(proxy + "/v1beta1/upload", data=image, headers={"Authorization": f"Bearer {other}"})
    # the proxy writes the error through Go's html.EscapeString
    assert (resp.status_code, resp.text) == (503, "rejecting Upload Request for PVC missing that doesn&#39;t exist")
    resp = http.post(proxy + "/v1beta1/upload", data=image, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 200, resp.text
    wait.until(dv_path(namespace, "up"), phase_is("Succeeded"), 30, "upload Succeeded")
    assert volume_data.sha256(handle_of(admin, namespace, "up")) == hashlib.sha256(image).hexdigest()
    resp = http.post(proxy + "/v1beta1/upload", data=image, headers={"Authorization": f"Bearer {token}"})
    assert (resp.status_code, resp.text) == (503, "rejecting Upload Request for PVC up that already finished uploading")


def test_upload_token_needs_rbac(user_client, namespace):
    with pytest.raises(KubeError) as err:
        upload_token(user_client("alice"), namespace, "up")
    assert err.value.status == 403


def test_snapshot_export_restores_its_claims_and_names_volumes_without_the_prefix(admin, wait, namespace):
    imported(admin, wait, namespace)
    vm = vm_manifest("snapvm", namespace, run_strategy="Halted")
    vm["spec"]["template"]["spec"]["volumes"] = [{"name": "root", "persistentVolumeClaim": {"claimName": "disk"}}]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "root", "disk": {"bus": "virtio"}}]
    admin.create(vm_path(namespace), vm)
    snap_path = object_path("snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshots", "s1", namespace)
    admin.create(object_path("snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshots", namespace=namespace), {
        "apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot", "metadata": {"name": "s1"},
        "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "snapvm"}}})
    wait.until(snap_path, lambda s: bool(((s or {}).get("status") or {}).get("readyToUse")), 30, "snapshot ready")
    admin.create(export_path(namespace), export("sx", "VirtualMachineSnapshot", "s1", "snapshot.kubevirt.io"))
    obj = wait.until(export_path(namespace, "sx"), phase_is("Ready"), 30, "snapshot export Ready")
    assert obj["status"]["virtualMachineName"] == "snapvm"
    conditions = {c["type"]: c for c in obj["status"]["conditions"]}
    assert (conditions["VolumesCreated"]["status"], conditions["VolumesCreated"]["reason"]) == ("True", "AllPVCsReady")
    [volume] = obj["status"]["links"]["external"]["volumes"]
    # CreateRestorePVCDef keeps the backed-up claim's labels and annotations (less cdi.kubevirt.io/... ones)
    claim = admin.get(object_path("v1", "persistentvolumeclaims", "sx-disk", namespace))
    source = admin.get(object_path("v1", "persistentvolumeclaims", "disk", namespace))
    assert (claim["metadata"].get("labels") or {}) == (source["metadata"].get("labels") or {})
    assert volume["name"] == "disk"  # volumeNamer: the claim sx-disk without "sx-"
    assert volume["formats"][0]["url"].endswith("/volumes/sx-disk/disk.img")
    claim = admin.get(object_path("v1", "persistentvolumeclaims", "sx-disk", namespace))
    assert claim["spec"]["dataSource"]["kind"] == "VolumeSnapshot"
    assert claim["metadata"]["ownerReferences"][0]["kind"] == "VirtualMachineExport"
    assert claim["metadata"]["annotations"]["cdi.kubevirt.io/storage.contentType"] == "kubevirt"


def test_a_clone_copies_the_source_volume_bytes(admin, wait, namespace):
    handle = imported(admin, wait, namespace)
    admin.create(dv_path(namespace), dv("cloned", {"pvc": {"name": "disk", "namespace": namespace}}))
    wait.until(dv_path(namespace, "cloned"), phase_is("Succeeded"), 30, "clone Succeeded")
    assert volume_data.sha256(handle_of(admin, namespace, "cloned")) == volume_data.sha256(handle)


def test_names_are_library_go_getname():
    """namer.go GetName with FNV-1a: base[:n]-hash(base)-suffix when the suffix fits, else base-hash(name)."""
    assert vm_export._fnv32a("") == "811c9dc5" and vm_export._fnv32a("a") == "e40c292c"
    assert vm_export.get_name("export-token", "short") == "export-token-short"
    long_name = "n" * 52
    name = vm_export.get_name("export-token", long_name)
    assert name == "export-token"[:63 - 10 - 52] + "-" + vm_export._fnv32a("export-token") + "-" + long_name
    too_long = "m" * 60
    assert vm_export.get_name("export-token", too_long) == "export-token-" + vm_export._fnv32a("export-token-" + too_long)
    assert vm_export.export_label_value("e" * 63) == "e" * 63
    assert vm_export.export_label_value("e" * 64) == "virt-export-" + vm_export._fnv32a("virt-export-" + "e" * 64)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_qcow2_upload_is_written_as_raw(admin, wait, namespace, lab, compressed):
    """upload-datasource.go Transfer -> data-processor.go convert: qcow2 to raw (qemu-img convert)."""
    config = wait.until(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config"),
                        lambda c: bool((c or {}).get("status", {}).get("uploadProxyURL")), 30, "uploadProxyURL")
    proxy = "https://" + config["status"]["uploadProxyURL"]
    admin.create(dv_path(namespace), dv("q", {"upload": {}}))
    wait.until(dv_path(namespace, "q"), phase_is("UploadReady"), 30, "UploadReady")
    raw = bytes(range(256)) * 512 + b"\0" * (1 << 20) + b"tail" * 1024
    image = volume_data.qcow2_image(raw, compressed=compressed)
    resp = session(lab).post(proxy + "/v1beta1/upload", data=image,
                             headers={"Authorization": f"Bearer {upload_token(admin, namespace, 'q')}"})
    assert resp.status_code == 200, resp.text
    wait.until(dv_path(namespace, "q"), phase_is("Succeeded"), 30, "upload Succeeded")
    assert volume_data.sha256(handle_of(admin, namespace, "q")) == hashlib.sha256(raw).hexdigest()


def test_an_upload_whose_virtual_size_exceeds_the_claim_is_refused(admin, wait, namespace, lab):
    """qemu.go checkIfURLIsValid on the virtual size, uploadserver.go handleStreamError's 400 body: a small qcow2
    file of a disk 1 MiB larger than the claim does not fit it."""
    config = wait.until(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config"),
                        lambda c: bool((c or {}).get("status", {}).get("uploadProxyURL")), 30, "uploadProxyURL")
    proxy = "https://" + config["status"]["uploadProxyURL"]
    admin.create(dv_path(namespace), dv("big", {"upload": {}}))
    ready = wait.until(dv_path(namespace, "big"), phase_is("UploadReady"), 30, "UploadReady")
    claim = admin.get(object_path("v1", "persistentvolumeclaims", "big", namespace))
    available = storage_bytes(claim["spec"]["resources"]["requests"]["storage"])
    virtual = -(-(available + 1024 * 1024) // 512) * 512  # a qcow2 size is a multiple of 512
    image = volume_data.qcow2_image(b"x" * 4096 + b"\0" * (virtual - 4096))
    assert len(image) < available
    resp = session(lab).post(proxy + "/v1beta1/upload", data=image,
                             headers={"Authorization": f"Bearer {upload_token(admin, namespace, 'big')}"})
    assert (resp.status_code, resp.text) == (400, (
        "Saving stream failed: effective image size is larger than the reported available storage: virtual image "
        f"size {virtual} is larger than the reported available storage {available}. A larger PVC is required"))
    assert ready["status"]["phase"] == "UploadReady"


def test_a_vm_export_skips_a_missing_plain_claim(admin, wait, namespace):
    """vm-source.go getPVCsFromVM: a persistentVolumeClaim volume whose claim does not exist is left out (only a
    missing DataVolume claim keeps the export waiting)."""
    imported(admin, wait, namespace)
    vm = vm_manifest("partial", namespace, run_strategy="Halted")
    vm["spec"]["template"]["spec"]["volumes"] = [
        {"name": "root", "dataVolume": {"name": "disk"}},
        {"name": "gone", "persistentVolumeClaim": {"claimName": "no-such-claim"}}]
    vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [
        {"name": "root", "disk": {"bus": "virtio"}}, {"name": "gone", "disk": {"bus": "virtio"}}]
    admin.create(vm_path(namespace), vm)
    admin.create(export_path(namespace), export("partial", "VirtualMachine", "partial", "kubevirt.io"))
    obj = wait.until(export_path(namespace, "partial"), phase_is("Ready"), 30, "export Ready")
    assert [v["name"] for v in obj["status"]["links"]["internal"]["volumes"]] == ["disk"]
