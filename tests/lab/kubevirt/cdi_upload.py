"""Stand-ins for CDI's upload path at containerized-data-importer v1.65.0: cdi-apiserver's UploadTokenRequest
API (an aggregated API) and cdi-uploadproxy with the upload server behind it, each an HTTPS server on 127.0.0.1.

cdi-apiserver, pkg/apiserver/apiserver.go:
* composeUploadTokenAPI: group upload.cdi.kubevirt.io, version v1beta1; POST
  /apis/upload.cdi.kubevirt.io/v1beta1/namespaces/<ns>/uploadtokenrequests; GET of the version gives the
  APIResourceList (uploadtokenrequests, kind UploadTokenRequest, verbs [create], short names utr, utrs).
* uploadHandler: the caller is authorized (authorizer.go Authorize: a SubjectAccessReview for the user the
  aggregator names in X-Remote-User / X-Remote-Group, verb create on uploadtokenrequests; refused -> 401 with
  the review's reason; the review not made -> 500, no body); a body that does not decode -> 400; the answer is the request with status.token, HTTP
  200. Nothing is stored.
* The token (pkg/token/token.go generator.Generate, newUploadTokenGenerator): a JWT signed PS256 with
  cdi-apiserver's RSA key, issuer "cdi-apiserver" (common.UploadTokenIssuer), iat/nbf now, exp in 5 minutes,
  private claims operation "Upload", name = spec.pvcName, namespace, resource {group "", version v1, resource
  persistentvolumeclaims}.
* Registered as the APIService v1beta1.upload.cdi.kubevirt.io to the Service cdi-api in CDI's namespace (as
  cdi-operator does, pkg/operator/resources/cluster/apiserver.go), once the CDI CR is Deployed; removed with
  the CDI CR. As for virt-api (operator.py), an ExternalName Service points the aggregator to loopback.

cdi-uploadproxy, pkg/uploadproxy/uploadproxy.go handleUploadRequest, on common.ProxyPaths (the sync and
async upload paths of v1alpha1 and v1beta1; the form-data paths are not served by the lab):
* no Authorization header, or not "Bearer <token>" -> 400; a token whose signature, issuer or time does not
  validate (token.go Validate, leeway 10 s) -> 401; a token not for an Upload to a persistentvolumeclaims
  name/namespace -> 400.
* uploadReady, polled each second for up to 10 s: the claim absent -> 503 "rejecting Upload Request for PVC
  <name> that doesn't exist"; not an upload target (controller.UploadPossibleForPVC) -> 503 "PVC <name> is not
  an upload target"; its pod Succeeded -> 503 "rejecting Upload Request for PVC <name> that already finished
  uploading"; not ready within 10 s -> 503 "context deadline exceeded". resolveUploadPath: content type
  kubevirt or empty; archive is not handled by the lab; any other -> 503 "rejecting upload request for PVC
  <name> - upload content-type <type> is invalid".
* The proxy writes its 503 bodies through Go's html.EscapeString ("doesn&#39;t").
* The upload server behind it (pkg/uploadserver/uploadserver.go): POST only; the stream goes through CDI's
  DataProcessor (pkg/importer/upload-datasource.go Transfer, data-processor.go convert / validate): a qcow2
  image is converted to raw (qemu-img convert; here qcow2_to_raw reads the header and the L1/L2 tables,
  compressed clusters too, no backing file), any other stream is raw. The image's VIRTUAL size (qcow2 header
  size, else the byte count) is checked against the available space (pkg/image/qemu.go checkIfURLIsValid:
  data-processor.go calculateTargetSize, for a Filesystem claim min(free space, requested size), here the
  claim's requested size), else 400 with handleStreamError's body "Saving stream failed: effective image size
  is larger than the reported available storage: virtual image size <n> is larger than the reported
  available storage <m>. A larger PVC is required". Not mirrored: the resize of a Filesystem volume's raw
  image to min(requested, usable space) (data-processor.go resize), gz/xz decompression, vmdk/vdi/vhd(x). The
  server then exits: the claim's pod phase becomes Succeeded (upload-controller.go reconcilePVC) and the
  DataVolume Succeeded.

The proxy's address is published to clients the way CDI publishes it: CDIConfig spec.uploadProxyURLOverride,
which the stand-in sets at start (as a site administrator would, the lab having no Ingress for the proxy),
becomes status.uploadProxyURL (storage.py reconcile_cdi_config).
"""

import base64
import json
import logging
import re
import ssl
import struct
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from ..kube import JSON, Kube, KubeError, object_path
from . import volume_data
from .runtime import Manager
from .storage import storage_bytes
from .vm_export import server_cert

log = logging.getLogger("standin.cdi-upload")

GROUP = "upload.cdi.kubevirt.io"
VERSION = "v1beta1"
API_SERVICE = f"{VERSION}.{GROUP}"
SERVICE = "cdi-api"
ISSUER = "cdi-apiserver"
TOKEN_LIFETIME = 300.0
LEEWAY = 10.0
WAIT_READY = 10.0
FIELD_MANAGER = "lab-cdi-operator"
PROXY_PATHS = ("/v1beta1/upload", "/v1alpha1/upload", "/v1beta1/upload-async", "/v1alpha1/upload-async")
TOKEN_ROUTE = re.compile(rf"^/apis/{re.escape(GROUP)}/{VERSION}/namespaces/(?P<ns>[a-z0-9][a-z0-9\-]*)/uploadtokenrequests$")
BEARER = re.compile(r"(?i)^Bearer\s+([A-Za-z0-9\-\._~\+\/]+)$")
ANN = "cdi.kubevirt.io"
ANN_POD_PHASE = f"{ANN}/storage.pod.phase"
ANN_POD_READY = f"{ANN}/storage.pod.ready"
ANN_UPLOAD_REQUEST = f"{ANN}/storage.upload.target"
ANN_CONTENT_TYPE = f"{ANN}/storage.contentType"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)  # go-jose PS256: salt = hash length


class Tokens:
    """pkg/token/token.go: the generator (cdi-apiserver) and the validator (upload proxy) over one key pair."""

    def __init__(self, key_file: Path):
        if not key_file.exists():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
            key_file.chmod(0o600)
        self.key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)

    def generate(self, payload: JSON) -> str:
        moment = int(time.time())
        claims = dict(payload, iss=ISSUER, iat=moment, nbf=moment, exp=moment + int(TOKEN_LIFETIME))
        signing = _b64(json.dumps({"alg": "PS256"}).encode()) + "." + \
            _b64(json.dumps(claims, separators=(",", ":")).encode())
        return signing + "." + _b64(self.key.sign(signing.encode(), PSS, hashes.SHA256()))

    def validate(self, token: str) -> Optional[JSON]:
        try:
            header, body, signature = token.split(".")
            if json.loads(_unb64(header)).get("alg") != "PS256":
                return None
            self.key.public_key().verify(_unb64(signature), f"{header}.{body}".encode(), PSS, hashes.SHA256())
            claims = json.loads(_unb64(body))
        except Exception:  # noqa: BLE001 - any malformed or forged token is invalid
            return None
        moment = time.time()
        if claims.get("iss") != ISSUER or moment > claims.get("exp", 0) + LEEWAY or \
                moment < claims.get("nbf", 0) - LEEWAY:
            return None
        return claims


def go_html_escape(text: str) -> str:
    """Go's html.EscapeString: < > & ' " as &lt; &gt; &amp; &#39; &#34;."""
    return (text.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;"))


QCOW2_MAGIC = b"QFI\xfb"


class ImageError(Exception):
    """The stream is not an image CDI would convert (the upload server answers 500)."""


def qcow2_virtual_size(header: bytes) -> Optional[int]:
    """The qcow2 header's virtual size (big-endian u64 at offset 24), None for anything that is not qcow2."""
    if len(header) < 32 or header[:4] != QCOW2_MAGIC:
        return None
    return struct.unpack(">Q", header[24:32])[0]


def qcow2_to_raw(path: Path) -> Iterator[bytes]:
    """qemu-img convert -O raw of a qcow2 file: every guest cluster from its L2 entry (unallocated and zero
    clusters read as zeros, compressed clusters inflated), virtual size bytes in all."""
    with open(path, "rb") as src:
        header = src.read(72)
        (_magic, _version, backing_offset, _backing_size, cluster_bits, size, crypt, l1_size,
         l1_offset) = struct.unpack(">4sIQIIQIIQ", header[:48])
        if backing_offset:
            raise ImageError(f"Image {path.name} is invalid because it has invalid backing file")
        if crypt:
            raise ImageError("encrypted qcow2 images are not supported")
        cluster = 1 << cluster_bits
        per_l2 = cluster // 8
        src.seek(l1_offset)
        l1 = struct.unpack(f">{l1_size}Q", src.read(8 * l1_size)) if l1_size else ()
        offset_mask = 0x00FFFFFFFFFFFE00
        compressed_bits = 62 - (cluster_bits - 8)
        written = 0
        index = 0
        while written < size:
            length = min(cluster, size - written)
            l2_offset = l1[index // per_l2] & offset_mask if index // per_l2 < len(l1) else 0
            entry = 0
            if l2_offset:
                src.seek(l2_offset + 8 * (index % per_l2))
                entry = struct.unpack(">Q", src.read(8))[0]
            if entry & (1 << 62):
                host = entry & ((1 << compressed_bits) - 1)
                sectors = ((entry >> compressed_bits) & ((1 << (cluster_bits - 8)) - 1)) + 1
                src.seek(host)
                data = zlib.decompressobj(-15).decompress(src.read(sectors * 512 - (host & 511)), cluster)
            elif entry & offset_mask and not entry & 1:
                src.seek(entry & offset_mask)
                data = src.read(cluster)
            else:
                data = b""
            yield (data + b"\0" * cluster)[:length]
            written += length
            index += 1


def resource_list() -> JSON:
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{GROUP}/{VERSION}",
            "resources": [{"name": "uploadtokenrequests", "singularName": "uploadtokenrequest", "namespaced": True,
                           "group": GROUP, "version": VERSION, "kind": "UploadTokenRequest", "verbs": ["create"],
                           "shortNames": ["utr", "utrs"]}]}


def api_group() -> JSON:
    version = {"groupVersion": f"{GROUP}/{VERSION}", "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [version],
            "preferredVersion": version,
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


class _Base(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        log.info("%s %s", self.command, self.path.split("?")[0])  # never a header: tokens travel there

    def _send(self, code: int, body: Any = None, content_type: str = "application/json") -> None:
        if body is None:
            data = b""
        elif isinstance(body, (bytes, str)):
            data = body.encode() if isinstance(body, str) else body
        else:
            data = json.dumps(body).encode()
        self.send_response(code)
        if data:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body_chunks(self) -> Iterator[bytes]:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(self.headers.get("Content-Length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(volume_data.CHUNK, remaining))
            if not chunk:
                return
            remaining -= len(chunk)
            yield chunk

    def _drain(self) -> None:
        for _chunk in self._body_chunks():
            pass


def make_api_handler(kube: Kube, tokens: Tokens) -> type:
    class Handler(_Base):
        def do_GET(self) -> None:  # noqa: N802
            if not self.connection.getpeercert():
                return self._send(401, "Unauthorized", "text/plain")
            path = self.path.split("?")[0].rstrip("/")
            if path == f"/apis/{GROUP}/{VERSION}":
                return self._send(200, resource_list())
            if path == f"/apis/{GROUP}":
                return self._send(200, api_group())
            if path in ("/healthz", ""):
                return self._send(200, "ok", "text/plain")
            self._send(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
                             "reason": "NotFound", "message": "the server could not find the requested resource"})

        def do_POST(self) -> None:  # noqa: N802
            raw = b"".join(self._body_chunks())
            match = TOKEN_ROUTE.match(self.path.split("?")[0])
            if not self.connection.getpeercert():
                return self._send(401, "Unauthorized", "text/plain")
            if not match:
                return self._send(404, None)
            namespace = match["ns"]
            allowed, reason = self._authorize(namespace)
            if allowed is None:
                return self._send(500, None)
            if not allowed:
                return self._send(401, reason, "text/plain")
            try:
                request = json.loads(raw)
                pvc_name = (request.get("spec") or {}).get("pvcName", "")
            except (ValueError, AttributeError) as err:
                return self._send(400, str(err), "text/plain")
            token = tokens.generate({"operation": "Upload", "name": pvc_name, "namespace": namespace,
                                     "resource": {"group": "", "version": "v1", "resource": "persistentvolumeclaims"}})
            request["status"] = {"token": token}
            self._send(200, request)

        def _authorize(self, namespace: str) -> tuple:
            """authorizer.go Authorize / generateAccessReview."""
            user = self.headers.get("X-Remote-User")
            if not user:
                return False, "request is not authenticated"
            groups = self.headers.get_all("X-Remote-Group") or []
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                      "spec": {"user": user, "groups": groups,
                               "resourceAttributes": {"namespace": namespace, "verb": "create", "group": GROUP,
                                                      "version": VERSION, "resource": "uploadtokenrequests"}}}
            try:
                result = kube.create(object_path("authorization.k8s.io/v1", "subjectaccessreviews"), review)
            except KubeError:
                return None, ""  # uploadHandler: Authorize's error -> 500 with no body
            status = result.get("status") or {}
            return bool(status.get("allowed")), status.get("reason", "")

    return Handler


class UploadProxy:
    def __init__(self, kube: Kube, tokens: Tokens):
        self.kube, self.tokens = kube, tokens
        self.uploading: set = set()
        self.lock = threading.Lock()

    def _pvc_path(self, namespace: str, name: str) -> str:
        return object_path("v1", "persistentvolumeclaims", name, namespace)

    def upload_ready(self, namespace: str, name: str) -> JSON:
        """uploadproxy.go uploadReady: raises ValueError with the message the proxy answers 503 with."""
        deadline = time.monotonic() + WAIT_READY
        while True:
            pvc = self.kube.get_or_none(self._pvc_path(namespace, name))
            if pvc is None:
                raise ValueError(f"rejecting Upload Request for PVC {name} that doesn't exist")
            annotations = pvc["metadata"].get("annotations") or {}
            if ANN_UPLOAD_REQUEST not in annotations:
                raise ValueError(f"PVC {name} is not an upload target")
            if annotations.get(ANN_POD_PHASE) == "Succeeded":
                raise ValueError(f"rejecting Upload Request for PVC {name} that already finished uploading")
            if annotations.get(ANN_POD_READY) == "true":
                return pvc
            if time.monotonic() >= deadline:
                raise ValueError("context deadline exceeded")
            time.sleep(1.0)

    def complete(self, pvc: JSON) -> None:
        """The upload server exits after the upload: its pod Succeeded (upload-controller.go reconcilePVC)."""
        meta = pvc["metadata"]
        self.kube.merge_patch(self._pvc_path(meta["namespace"], meta["name"]), {"metadata": {"annotations": {
            ANN_POD_PHASE: "Succeeded", ANN_POD_READY: "false", f"{ANN}/storage.condition.running": "false",
            f"{ANN}/storage.condition.running.message": "Upload Complete",
            f"{ANN}/storage.condition.running.reason": "Completed"}}})
        self.kube.create(object_path("v1", "events", namespace=meta["namespace"]), {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta["namespace"],
                               "name": meta["name"], "uid": meta["uid"]},
            "reason": "UploadSucceeded", "message": "Upload Successful", "type": "Normal",
            "source": {"component": "upload-controller"}})


def make_proxy_handler(proxy: UploadProxy) -> type:
    class Handler(_Base):
        def do_GET(self) -> None:  # noqa: N802
            if self.path.split("?")[0] == "/healthz":
                return self._send(200, "OK", "text/plain")
            self._send(404, None)

        def do_POST(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            if path not in PROXY_PATHS:
                self._drain()
                return self._send(404, None)
            header = self.headers.get("Authorization") or ""
            match = BEARER.match(header)
            if not match:
                self._drain()
                return self._send(400, None)
            claims = proxy.tokens.validate(match[1])
            if claims is None:
                self._drain()
                return self._send(401, None)
            name, namespace = claims.get("name"), claims.get("namespace")
            if claims.get("operation") != "Upload" or not name or not namespace or \
                    (claims.get("resource") or {}).get("resource") != "persistentvolumeclaims":
                self._drain()
                return self._send(400, None)
            try:
                pvc = proxy.upload_ready(namespace, name)
                content = (pvc["metadata"].get("annotations") or {}).get(ANN_CONTENT_TYPE, "")
                if content not in ("kubevirt", ""):
                    raise ValueError(f"rejecting upload request for PVC {name} - upload content-type {content} "
                                     "is invalid")
            except ValueError as err:
                self._drain()
                return self._send(503, go_html_escape(str(err)), "text/plain")
            self._upload(pvc)

        def _upload(self, pvc: JSON) -> None:
            """uploadserver.go: one upload at a time (503 while one runs), the stream onto the volume."""
            meta = pvc["metadata"]
            key = (meta["namespace"], meta["name"])
            with proxy.lock:
                busy = key in proxy.uploading
                proxy.uploading.add(key)
            if busy:
                self._drain()
                return self._send(503, None)
            try:
                volume = (pvc.get("spec") or {}).get("volumeName")
                pv = proxy.kube.get_or_none(object_path("v1", "persistentvolumes", volume)) if volume else None
                handle = volume_data.volume_handle(pv)
                if handle is None:
                    self._drain()
                    return self._send(503, f"PVC {meta['name']} has no volume", "text/plain")
                requested = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
                available = storage_bytes(requested) if requested else 0
                staged = volume_data.path_for(handle).with_suffix(".upload")
                staged.parent.mkdir(parents=True, exist_ok=True)
                received = 0
                with open(staged, "wb") as out:
                    for chunk in self._body_chunks():
                        out.write(chunk)
                        received += len(chunk)
                with open(staged, "rb") as src:
                    virtual = qcow2_virtual_size(src.read(32))
                # qemu.go checkIfURLIsValid on the image's virtual size, answered by handleStreamError
                size = received if virtual is None else virtual
                if available and size > available:
                    staged.unlink()
                    return self._send(400, "Saving stream failed: effective image size is larger than the reported "
                                           f"available storage: virtual image size {size} is larger than the reported "
                                           f"available storage {available}. A larger PVC is required", "text/plain")
                try:
                    if virtual is None:
                        with open(staged, "rb") as src:
                            volume_data.write_stream(handle, iter(lambda: src.read(volume_data.CHUNK), b""))
                    else:
                        volume_data.write_stream(handle, qcow2_to_raw(staged))
                except (ImageError, struct.error, zlib.error) as err:
                    return self._send(500, f"Saving stream failed: {err}", "text/plain")
                finally:
                    staged.unlink()
                proxy.complete(pvc)
                self._send(200, None)
            finally:
                with proxy.lock:
                    proxy.uploading.discard(key)

    return Handler


def _serve(handler: type, port: int, cert: str, key: str, client_ca: Optional[str], name: str) -> ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_OPTIONAL
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return server


class UploadApiRegistration:
    """cdi-operator's part: the cdi-api Service and the upload APIService while a CDI CR is Deployed, and the
    CDIConfig's upload proxy override (see the module docstring)."""

    def __init__(self, manager: Manager, kube: Kube, api_port: int, proxy_port: int, ca_bundle: str):
        self.kube, self.api_port, self.proxy_port, self.ca_bundle = kube, api_port, proxy_port, ca_bundle
        self.cdis = manager.informer("upload-cdis", object_path("cdi.kubevirt.io/v1beta1", "cdis"), ("UploadAPI",))
        self.configs = manager.informer("upload-cdiconfigs", object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs"),
                                        ("UploadAPI",))
        manager.reconciler("UploadAPI", self.reconcile)

    def _namespace(self) -> Optional[str]:
        deployments = self.kube.get(object_path("apps/v1", "deployments"), fieldSelector="metadata.name=cdi-operator")
        items = deployments.get("items") or []
        return items[0]["metadata"]["namespace"] if items else None

    def reconcile(self, _namespace: str, _name: str) -> Optional[float]:
        api_path = object_path("apiregistration.k8s.io/v1", "apiservices", API_SERVICE)
        deployed = [c for c in self.cdis.list() if (c.get("status") or {}).get("phase") == "Deployed"
                    and not c["metadata"].get("deletionTimestamp")]
        if not deployed:
            if self.kube.get_or_none(api_path) is not None:
                self.kube.delete(api_path)
            return None
        namespace = self._namespace()
        if namespace is None:
            return 2.0
        self.kube.apply(object_path("v1", "services", SERVICE, namespace), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": SERVICE, "namespace": namespace, "labels": {"cdi.kubevirt.io": "cdi-api"}},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": self.api_port, "protocol": "TCP"}]}},
            FIELD_MANAGER, force=True)
        self.kube.apply(api_path, {
            "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
            "metadata": {"name": API_SERVICE, "labels": {"cdi.kubevirt.io": "cdi-api"}},
            "spec": {"group": GROUP, "version": VERSION,
                     "service": {"namespace": namespace, "name": SERVICE, "port": self.api_port},
                     "caBundle": self.ca_bundle, "groupPriorityMinimum": 1000, "versionPriority": 15}},
            FIELD_MANAGER, force=True)
        for config in self.configs.list():
            if not (config.get("spec") or {}).get("uploadProxyURLOverride"):
                self.kube.merge_patch(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", config["metadata"]["name"]),
                                      {"spec": {"uploadProxyURLOverride": f"127.0.0.1:{self.proxy_port}"}})
        return None


def register(manager: Manager, kube: Kube, api_port: int, proxy_port: int, pki: Path) -> Dict[str, object]:
    tokens = Tokens(pki / "cdi-apiserver-signer.key")
    # the aggregator verifies the certificate for <service>.<namespace>.svc: CDI's namespace of the lab's releases
    api_cert, api_key = server_cert(pki, "cdi-api", ("cdi-api.cdi.svc",))
    proxy_cert, proxy_key = server_cert(pki, "cdi-uploadproxy")
    ca_bundle = base64.b64encode((pki / "ca.crt").read_bytes()).decode()
    _serve(make_api_handler(kube, tokens), api_port, api_cert, api_key, str(pki / "front-proxy-ca.crt"), "cdi-api")
    proxy = UploadProxy(kube, tokens)
    _serve(make_proxy_handler(proxy), proxy_port, proxy_cert, proxy_key, None, "cdi-uploadproxy")
    return {"tokens": tokens, "proxy": proxy,
            "registration": UploadApiRegistration(manager, kube, api_port, proxy_port, ca_bundle)}
