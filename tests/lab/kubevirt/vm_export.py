"""Stand-in for KubeVirt's VirtualMachineExport at v1.9.0: the export controller (virt-controller), the
export admitter (virt-api) and the export server with the export proxy in front of it (virt-exportserver,
virt-exportproxy), on 127.0.0.1.

Controller, pkg/storage/export/export/export.go VMExportController.updateVMExport with the sources of
pvc-source.go, vm-source.go and vmsnapshot-source.go:
* populateInitialVMExportStatus: phase Pending, condition Ready False Initializing, ttlExpirationTime =
  creation + spec.ttlDuration (types.go DefaultDurationTTL 2h). checkPod: once the TTL has passed the export is
  deleted; manageExporterPod calls checkPod only when an exporter pod exists and the source is available
  (export.go:778-787), so an export whose source never became available stays Pending after its TTL.
* getOrCreateExportService / createServiceManifest: Service virt-export-<name> (getExportServiceName) owned by
  the export, labels {kubevirt.io: virt-exporter} plus the export's labels, annotations the export's, selector
  {kubevirt.io.virt-export-service: <export name>} (getExportLabelValue), port 443 named export (exportPort);
  handleVMExportToken: spec.tokenSecretRef is used as given, else a Secret
  export-token-<name> (getDefaultTokenSecretName) with data `token` = 20 alphanumerics
  (pkg/util/util.go GenerateVMExportToken), owned by the export, created once the source is available.
* Sources. PVC (getPVCFromSourcePVC / isSourceAvailablePVC): PVCReady condition (pvcConditionFromPVC:
  Bound -> True PVCBound, Pending -> False PVCPending, absent -> False PVCNotFound "PersistentVolumeClaim
  <ns>/<name> not found"); not populated (cdiv1.IsPopulated: a DataVolume's claim once the DataVolume
  Succeeded) -> Ready False PVCPending "PersistentVolumeClaim <ns>/<name> is not populated"; in use by a pod
  not of the export (isPVCInUse) -> Ready False InUse "PersistentVolumeClaim <ns>/<name> is in use".
  VM (getPVCFromSourceVM): absent -> VMNotFound "Virtual Machine <ns>/<name> not found"; no claims ->
  VMNoVolumes, phase Skipped; not all populated -> VolumesNotPopulated; a VMI not Succeeded/Failed ->
  InUse "Virtual Machine <ns>/<name> is running" (isSourceInUseVM); status.virtualMachineName.
  VirtualMachineSnapshot (vmsnapshot-source.go getPVCFromSourceVMSnapshot): absent -> VMSnapshotNotFound, phase
  Skipped; not readyToUse -> NotAllPVCsCreated; ready: one claim <export>-<claim> per volume backup restored
  from its VolumeSnapshot (getOrCreatePVCFromSnapshot with snapshot.CreateRestorePVCDef, contentType kubevirt for
  a VM disk volume, owned by the export), condition VolumesCreated, link volumes named without "<export>-"
  (volumeNamer). The claim's bytes are what the lab driver restores from the snapshot.
* manageExporterPod: the exporter pod is created when the source is available and has content and removed
  when the source stops being available (ExportPaused). updateCommonVMExportStatusFields: no pod ->
  source.ReadyCondition(), Pending; pod Pending -> Ready False PodPending; pod ready -> Ready True PodReady,
  phase Ready, links (links.go getLinks): per claim (paths.go, addVolumeEnvironmentVariables) raw
  /volumes/<claim>/disk.img and gzip /volumes/<claim>/disk.img.gz for kubevirt content, else tar.gz
  /volumes/<claim>/disk.tar.gz and dir /volumes/<claim>/dir/ (archive content, which this server does not
  serve). Kubevirt content (isKubevirtContentType, export.go:1451-1476): a Block claim, or one whose
  cdi.kubevirt.io/storage.contentType annotation is present with value kubevirt or "", or whose controlling
  DataVolume (cdi.kubevirt.io/v1beta1) has spec.contentType kubevirt or "". Internal links: host
  virt-export-<name>.<ns>.svc, cert the CA bundle. External links (getExternalLinks) ONLY when an Ingress in
  KubeVirt's namespace sends traffic to the virt-exportproxy Service (getHostFromIngress: default backend, or a
  rule path with a host) or a Route does (getHostFromRoute; the lab has no Routes): host that host +
  /api/export.kubevirt.io/v1/namespaces/<ns>/virtualmachineexports/<name> (externalUrlLinkFormat), cert from
  the Ingress's TLS secret in KubeVirt's namespace (getIngressCert/findCertByHostName: the certificate whose
  CN or SAN matches the host, with its issuer chain). No such Ingress: no external links at all.

The lab runs no pods: the exporter pod's phase (Pending for one step, then Running and ready) is kept by
this stand-in, and the server below serves the export's volumes while it is Running. The Ingress is the one
the VMO pack creates with `kubevirt.ingress` (path /api/export.kubevirt.io to virt-exportproxy, see the
reference palette-vmo.md 3c); ensure_pack_ingress makes it in the lab with host INGRESS_HOST (an Ingress host
carries no port), which names no real address: clients reach the lab's proxy at https://127.0.0.1:<port>
with the link's path (as virtctl vmexport --port-forward keeps the path). Not mirrored: the VM manifest links
(EXPORT_VM_DEF_URI, the auth-header secret manifest), OCI export, backup and template sources, certificate
rotation, the memory-dump and backend (persistent TPM/EFI) claims of a VM source (vm-source.go:270-311).

Server, pkg/storage/export/virt-exportserver/exportserver.go: tokenChecker accepts the token from the
query parameter or the header x-kubevirt-export-token, else 401 with no body; FileHandler serves the raw
volume with http.ServeContent (Content-Length, Range requests, HEAD); gzipHandler streams it gzip-compressed
(no Content-Length) and refuses any method but GET (exportserver.go:664-670); a method other than GET/HEAD ->
400. The proxy (cmd/virt-exportproxy/virt-exportproxy.go proxyHandler) forwards
/api/export.kubevirt.io/(v1beta1|v1)/namespaces/<ns>/virtualmachineexports/<name>/... to the export's service:
a path not of that form -> 400, no such export -> 404, an export not in phase Ready -> 503.

Admitter, pkg/storage/admitters/vmexport.go VMExportAdmitter.Admit on CREATE: spec.source.kind one of
PersistentVolumeClaim (apiGroup missing or blank), VirtualMachineSnapshot (apiGroup snapshot.kubevirt.io),
VirtualMachine (apiGroup kubevirt.io), VirtualMachineBackup (apiGroup backup.kubevirt.io),
VirtualMachineTemplate (only with the OCIExport feature gate and virt-template deployed, which the lab never
has), else "invalid kind" on spec.source.kind; an empty name is refused ("PVC name must not be empty", ...);
on UPDATE a changed spec is refused ("spec in immutable after creation",
field spec). Registered in virt-api-validator as virtualmachineexport-validator.export.kubevirt.io on
/virtualmachineexports-validate (components/webhooks.go).
"""

import base64
import logging
import os
import re
import secrets
import ssl
import string
import threading
import time
import zlib
from urllib.parse import unquote
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..kube import JSON, Kube, KubeError, object_path
from . import volume_data
from .admission import denied
from .runtime import Manager
from .storage import storage_bytes

log = logging.getLogger("standin.vm-export")

GROUP = "export.kubevirt.io"
SNAPSHOT_API = "snapshot.kubevirt.io/v1beta1"
VOLUME_SNAPSHOT_API = "snapshot.storage.k8s.io/v1"
API = f"{GROUP}/v1"
PLURAL = "virtualmachineexports"
KIND = "VirtualMachineExport"
DEFAULT_TTL = 2 * 3600.0  # types.go DefaultDurationTTL
TOKEN_KEY = "token"  # export.go secretTokenKey
AUTH_HEADER = "x-kubevirt-export-token"  # exportserver.go authHeader
EXPORT_PREFIX = "virt-export"
SERVICE_LABEL = "kubevirt.io.virt-export-service"  # export.go exportServiceLabel
RESTORE_ANNOTATIONS_TO_DELETE = ("pv.kubernetes.io", "volume.beta.kubernetes.io", "cdi.kubevirt.io",
                                 "volume.kubernetes.io", "k8s.io/CloneRequest", "k8s.io/CloneOf")
EXPORTER_APP = {"kubevirt.io": "virt-exporter"}  # createServiceManifest: virtv1.AppLabel: exportv1.App
PROXY_SERVICE = "virt-exportproxy"  # components.VirtExportProxyServiceName
CONTENT_TYPE = "cdi.kubevirt.io/storage.contentType"  # export.go annContentType
# The lab's Ingress for the export proxy, as the VMO pack makes it (kubevirt.ingress, palette-vmo.md 3c).
INGRESS_NAME = "virt-exportproxy"
INGRESS_HOST = "virt-exportproxy.lab.palette.vmo"
INGRESS_TLS_SECRET = "virt-exportproxy-ingress-tls"
VALIDATE_PATH = "/virtualmachineexports-validate"  # components/webhooks.go VMExportValidatePath
WEBHOOK_NAME = "virtualmachineexport-validator.export.kubevirt.io"
EXTERNAL_PATH = re.compile(r"^/api/export\.kubevirt\.io/(?:v1beta1|v1)/namespaces/(?P<ns>[^/]+)/virtualmachineexports/"
                           r"(?P<name>[^/]+)(?P<rest>/.*)$")
VOLUME_PATH = re.compile(r"^/volumes/(?P<claim>[^/]+)/(?P<file>disk\.img|disk\.img\.gz)$")


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def stamp(moment: Optional[datetime] = None) -> str:
    return (moment or now_utc()).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|ms|m|s|us|ns)")


def parse_duration(value: str) -> float:
    """metav1.Duration (Go time.ParseDuration) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    text = value.strip()
    if not text or _DURATION.sub("", text):
        raise ValueError(f"time: invalid duration {value!r}")
    return sum(float(num) * units[unit] for num, unit in _DURATION.findall(text))


def _fnv32a(text: str) -> str:
    """library-go naming hash: FNV-1a 32 bit, 8 hex digits."""
    value = 0x811C9DC5
    for byte in text.encode():
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return f"{value:08x}"


def get_name(base: str, suffix: str, limit: int = 63) -> str:
    """vendor/github.com/openshift/library-go/pkg/build/naming/namer.go GetName."""
    if limit <= 0:
        return ""
    name = f"{base}-{suffix}"
    if len(name) <= limit:
        return name
    base_length = limit - 10 - len(suffix)
    if base_length <= 0:
        short = f"{base[:min(len(base), max(0, limit - 9))]}-{_fnv32a(name)}"
        return short[:min(limit, len(short))]
    return f"{base[:base_length]}-{_fnv32a(base)}-{suffix}"


def export_label_value(export_name: str) -> str:
    """export.go getExportLabelValue: the export's name, or GetName(virt-export, name) over 63 characters."""
    return export_name if len(export_name) <= 63 else get_name(EXPORT_PREFIX, export_name)


def service_name(export_name: str) -> str:
    """export.go getExportServiceName."""
    suffix = export_name.replace(".", "-")
    if len(suffix) == 63 - 10:
        suffix = suffix[:-1]
    return get_name(EXPORT_PREFIX, suffix)


def token_secret_name(export_name: str) -> str:
    return get_name("export-token", export_name)  # getDefaultTokenSecretName


def generate_token() -> str:
    alphabet = string.digits + string.ascii_uppercase + string.ascii_lowercase
    return "".join(secrets.choice(alphabet) for _position in range(20))


def condition(kind: str, status: str, reason: str, message: str = "") -> JSON:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "lastProbeTime": None, "lastTransitionTime": stamp()}


def update_condition(conditions: List[JSON], new: JSON) -> List[JSON]:
    """export.go updateCondition: replaced when status, reason or message differ, else kept (its time too)."""
    out = []
    found = False
    for cond in conditions:
        if cond.get("type") == new["type"]:
            found = True
            if (cond.get("status"), cond.get("reason"), cond.get("message")) != \
                    (new["status"], new["reason"], new["message"]):
                cond = new
        out.append(cond)
    if not found:
        out.append(new)
    return out


# -- admitter ----------------------------------------------------------------------------------------

# VirtTemplateDeploymentEnabled: the lab deploys no virt-template.
_VIRT_TEMPLATE_DEPLOYED = False


def _cause(message: str, field: str) -> JSON:
    return {"reason": "FieldValueInvalid", "message": message, "field": field}


def admit_vm_export(request: JSON, config: JSON) -> JSON:
    """pkg/storage/admitters/vmexport.go VMExportAdmitter.Admit."""
    resource = request.get("resource") or {}
    if resource.get("group") != GROUP or resource.get("resource") != PLURAL:
        return {"allowed": False, "status": {"message": f"unexpected resource {resource}", "code": 400}}
    obj = request.get("object") or {}
    spec = obj.get("spec") or {}
    causes: List[JSON] = []
    if request.get("operation") == "CREATE":
        source = spec.get("source") or {}
        kind, name, group = source.get("kind", ""), source.get("name", ""), source.get("apiGroup")
        # (name message label, API group message label, API group)
        rules = {"PersistentVolumeClaim": ("PVC", "PVC", None),
                 "VirtualMachineSnapshot": ("VMSnapshot", "VMSnapshot", "snapshot.kubevirt.io"),
                 "VirtualMachine": ("Virtual Machine", "VM", "kubevirt.io"),
                 "VirtualMachineBackup": ("VirtualMachineBackup", "VirtualMachineBackup", "backup.kubevirt.io"),
                 "VirtualMachineTemplate": ("VirtualMachineTemplate", "VirtualMachineTemplate", "template.kubevirt.io")}
        gates = ((config or {}).get("developerConfiguration") or {}).get("featureGates") or []
        if kind not in rules:
            causes.append(_cause("invalid kind", "spec.source.kind"))
        elif kind == "VirtualMachineTemplate" and not ("OCIExport" in gates and _VIRT_TEMPLATE_DEPLOYED):
            causes.append(_cause("VirtualMachineTemplate source requires the OCIExport feature gate and virt-template "
                                 "deployment to be enabled", "spec.source.kind"))
        else:
            label, group_label, wanted = rules[kind]
            if not name:
                causes.append(_cause(f"{label} name must not be empty", "spec.source.name"))
            if wanted is None and group:
                causes.append(_cause("PVC API group must be missing or blank", "spec.source.APIGroup"))
            elif wanted is not None and group != wanted:
                causes.append(_cause(f"{group_label} API group must be {wanted}", "spec.source.APIGroup"))
    elif request.get("operation") == "UPDATE":
        old = (request.get("oldObject") or {}).get("spec") or {}
        if old != spec:
            causes.append(_cause("spec in immutable after creation", "spec"))
    else:
        return {"allowed": False, "status": {"message": f"unexpected operation {request.get('operation')}",
                                             "code": 400}}
    if causes:
        return denied(causes)  # webhooks.ToAdmissionResponse: at most 10 causes, code 422
    return {"allowed": True}


# -- controller --------------------------------------------------------------------------------------

class Exporter:
    """The exporter pod of one export, as far as the lab keeps it (see the module docstring)."""

    def __init__(self, export_uid: str, claims: List[JSON], prefix: str = ""):
        self.export_uid = export_uid
        self.claims = claims  # [{"name", "handle", "kubevirt"}]
        self.prefix = prefix  # a snapshot export's volumes are named without "<export>-" (volumeNamer)
        self.phase = "Pending"
        self.created = time.monotonic()


class VMExportController:
    def __init__(self, manager: Manager, kube: Kube, port: int, ca_pem: str):
        self.kube, self.port, self.ca_pem = kube, port, ca_pem
        self.step = float(os.environ.get("LAB_VMI_STEP_SECONDS", "0.3"))
        self.exports = manager.informer("vmexports", object_path(API, PLURAL), ("VMExport",))
        self.pods: Dict[Tuple[str, str], Exporter] = {}
        self.lock = threading.Lock()
        # virtinformers.go Ingress(): ingresses of KubeVirt's namespace (filtered in _external_host)
        self.ingresses = manager.watch("vmexport-ingresses", object_path("networking.k8s.io/v1", "ingresses"),
                                       self._requeue_all(manager))
        for name, path in (("vmexport-vms", object_path("kubevirt.io/v1", "virtualmachines")),
                           ("vmexport-vmis", object_path("kubevirt.io/v1", "virtualmachineinstances")),
                           ("vmexport-pvcs", object_path("v1", "persistentvolumeclaims")),
                           ("vmexport-dvs", object_path("cdi.kubevirt.io/v1beta1", "datavolumes"))):
            manager.watch(name, path, self._source_changed(manager))
        manager.reconciler("VMExport", self.reconcile)
        self.manager = manager

    def _source_changed(self, manager: Manager):
        """handleVM / handleVMI / handlePVC: the exports whose source is the changed object's namespace."""
        def on_change(obj: JSON) -> None:
            namespace = obj.get("metadata", {}).get("namespace", "")
            for export in self.exports.list():
                if export["metadata"]["namespace"] == namespace:
                    manager.queue.add(("VMExport", namespace, export["metadata"]["name"]))
        return on_change

    def _requeue_all(self, manager: Manager):
        def on_change(_obj: JSON) -> None:
            for export in self.exports.list():
                manager.queue.add(("VMExport", export["metadata"]["namespace"], export["metadata"]["name"]))
        return on_change

    def _kubevirt_namespace(self) -> str:
        """The namespace KubeVirt is deployed in (virt-controller's KubevirtNamespace)."""
        kvs = self.kube.get(object_path("kubevirt.io/v1", "kubevirts")).get("items", [])
        return kvs[0]["metadata"]["namespace"] if kvs else "kubevirt"

    def _external_host(self) -> Tuple[str, str]:
        """links.go getExternalLinkHostAndCert with getHostFromIngress and getIngressCert: the first Ingress of
        KubeVirt's namespace that sends traffic to virt-exportproxy names the host; ("", "") when none does."""
        namespace = self._kubevirt_namespace()
        for ingress in self.ingresses.list():
            if ingress["metadata"].get("namespace") != namespace:
                continue
            spec = ingress.get("spec") or {}
            host = ""
            default = ((spec.get("defaultBackend") or {}).get("service") or {})
            if default:
                if default.get("name") != PROXY_SERVICE:
                    continue
                host = ((spec.get("rules") or [{}])[0]).get("host", "")
            else:
                for rule in spec.get("rules") or []:
                    paths = (rule.get("http") or {}).get("paths") or []
                    if any(((p.get("backend") or {}).get("service") or {}).get("name") == PROXY_SERVICE
                           for p in paths) and rule.get("host"):
                        host = rule["host"]
                        break
            if host:
                return host, self._ingress_cert(host, ingress, namespace)
        return "", ""

    def _ingress_cert(self, host: str, ingress: JSON, namespace: str) -> str:
        """getIngressCert / findCertByHostName: from the first TLS secret of the Ingress, the certificate whose CN
        or a SAN is the host (or *.<domain>), then its issuer's; all valid certificates when none matches."""
        from cryptography import x509
        from cryptography.hazmat.primitives.serialization import Encoding
        secret_name = next((t.get("secretName") for t in (ingress.get("spec") or {}).get("tls") or []
                            if t.get("secretName")), "")
        secret = self._get(object_path("v1", "secrets", secret_name, namespace)) if secret_name else None
        data = ((secret or {}).get("data") or {}).get("tls.crt")
        if not data:
            return ""
        certs = x509.load_pem_x509_certificates(base64.b64decode(data))

        def names(cert):
            out = [a.value for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
            try:
                out += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
                    x509.DNSName)
            except x509.ExtensionNotFound:
                pass
            return out

        def find(name: str) -> str:
            wildcard = "*." + (name.split(".", 1)[1] if "." in name else name)
            match = next((c for c in certs if name in names(c) or wildcard in names(c)), None)
            if match is None:
                return "\n".join(c.public_bytes(Encoding.PEM).decode().strip() for c in certs)
            pem = match.public_bytes(Encoding.PEM).decode().strip()
            issuer = match.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            subject = match.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            is_ca = False
            try:
                is_ca = match.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
            except x509.ExtensionNotFound:
                pass
            if issuer and subject and issuer[0].value != subject[0].value and not is_ca:
                chain = next((c for c in certs if c.subject == match.issuer), None)
                if chain is not None:
                    pem += "\n" + chain.public_bytes(Encoding.PEM).decode().strip()
            return pem
        return find(host)

    def exporter(self, namespace: str, name: str) -> Optional[Exporter]:
        with self.lock:
            return self.pods.get((namespace, name))

    def _path(self, namespace: str, name: str) -> str:
        return object_path(API, PLURAL, name, namespace)

    def _owner(self, export: JSON) -> JSON:
        meta = export["metadata"]
        return {"apiVersion": API, "kind": KIND, "name": meta["name"], "uid": meta["uid"], "controller": True,
                "blockOwnerDeletion": True}

    def _get(self, path: str) -> Optional[JSON]:
        return self.kube.get_or_none(path)

    def _populated(self, pvc: JSON) -> bool:
        """cdiv1.IsPopulated: a claim a DataVolume owns is populated once the DataVolume Succeeded."""
        for ref in pvc["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "DataVolume" and ref.get("controller"):
                dv = self._get(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", ref["name"],
                                           pvc["metadata"]["namespace"]))
                return bool(dv) and (dv.get("status") or {}).get("phase") == "Succeeded"
        return True

    def _running_vmis_using(self, namespace: str, claim: str) -> bool:
        """isPVCInUse: the lab runs no virt-launcher pods; a VMI not final that mounts the claim stands for one."""
        vmis = self.kube.get(object_path("kubevirt.io/v1", "virtualmachineinstances", namespace=namespace))
        for vmi in vmis.get("items", []):
            if (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            for volume in (vmi.get("spec") or {}).get("volumes") or []:
                ref = volume.get("persistentVolumeClaim") or volume.get("dataVolume") or {}
                if ref.get("claimName", ref.get("name")) == claim:
                    return True
        return False

    def _is_kubevirt_content(self, pvc: JSON) -> bool:
        """export.go isKubevirtContentType."""
        if (pvc.get("spec") or {}).get("volumeMode") == "Block":
            return True
        annotations = pvc["metadata"].get("annotations") or {}
        if CONTENT_TYPE in annotations and annotations[CONTENT_TYPE] in ("kubevirt", ""):
            return True
        owner = next((r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
        if owner is None or owner.get("kind") != "DataVolume" or owner.get("apiVersion") != "cdi.kubevirt.io/v1beta1":
            return False
        dv = self._get(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", owner["name"], pvc["metadata"]["namespace"]))
        return dv is not None and (dv.get("spec") or {}).get("contentType", "") in ("kubevirt", "")

    def _claim_info(self, pvc: JSON) -> JSON:
        volume = (pvc.get("spec") or {}).get("volumeName")
        pv = self._get(object_path("v1", "persistentvolumes", volume)) if volume else None
        return {"name": pvc["metadata"]["name"], "handle": volume_data.volume_handle(pv),
                "kubevirt": self._is_kubevirt_content(pvc) if pvc.get("spec") else False}

    def _pvc_source(self, export: JSON) -> JSON:
        namespace, name = export["metadata"]["namespace"], export["spec"]["source"]["name"]
        pvc = self._get(object_path("v1", "persistentvolumeclaims", name, namespace))
        result = {"claims": [], "in_use": False, "populated": False,
                  "ready": condition("Ready", "False", "Initializing")}
        if pvc is None:
            result["source"] = condition("PVCReady", "False", "PVCNotFound",
                                         f"PersistentVolumeClaim {namespace}/{name} not found")
            return result
        result["claims"] = [pvc]
        result["populated"] = self._populated(pvc)
        if result["populated"]:
            result["in_use"] = self._running_vmis_using(namespace, name)
            if result["in_use"]:
                result["ready"] = condition("Ready", "False", "InUse",
                                            f"PersistentVolumeClaim {namespace}/{name} is in use")
        else:
            result["ready"] = condition("Ready", "False", "PVCPending",
                                        f"PersistentVolumeClaim {namespace}/{name} is not populated")
        phase = (pvc.get("status") or {}).get("phase")
        # pvcConditionFromPVC
        if phase == "Bound":
            result["source"] = condition("PVCReady", "True", "PVCBound")
        elif phase == "Lost":
            result["source"] = condition("PVCReady", "False", "Unknown")
        else:
            result["source"] = condition("PVCReady", "False", "PVCPending")
        return result

    def _vm_claims(self, namespace: str, vm: JSON) -> Tuple[List[JSON], bool]:
        """getPVCsFromVM: the claims of the VM's persistentVolumeClaim and dataVolume volumes; a missing claim is
        skipped, and marks the VM not populated only for a dataVolume volume (its claim is still to come)."""
        claims, populated = [], True
        for volume in ((vm.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []:
            name = (volume.get("persistentVolumeClaim") or {}).get("claimName") or \
                (volume.get("dataVolume") or {}).get("name")
            if not name:
                continue
            pvc = self._get(object_path("v1", "persistentvolumeclaims", name, namespace))
            if pvc is None:
                if volume.get("dataVolume"):
                    populated = False
                continue
            claims.append(pvc)
            populated = populated and self._populated(pvc)
        return claims, populated

    def _vm_source(self, export: JSON) -> JSON:
        namespace, name = export["metadata"]["namespace"], export["spec"]["source"]["name"]
        result = {"claims": [], "in_use": False, "populated": False,
                  "ready": condition("Ready", "False", "Initializing"), "vm": name}
        vm = self._get(object_path("kubevirt.io/v1", "virtualmachines", name, namespace))
        if vm is None:
            result["ready"] = condition("Ready", "False", "VMNotFound",
                                        f"Virtual Machine {namespace}/{name} not found")
            return result
        claims, populated = self._vm_claims(namespace, vm)
        result["populated"] = populated
        if not claims:
            result["populated"] = True
            result["ready"] = condition("Ready", "False", "VMNoVolumes",
                                        f"Virtual Machine {namespace}/{name} has no volumes")
        elif not populated:
            result["ready"] = condition("Ready", "False", "VolumesNotPopulated",
                                        f"Not all volumes in the Virtual Machine {namespace}/{name} are populated")
        else:
            vmi = self._get(object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace))
            if vmi is not None and (vmi.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                result["in_use"] = True
                result["ready"] = condition("Ready", "False", "InUse",
                                            f"Virtual Machine {namespace}/{name} is running")
        result["claims"] = claims
        return result

    def _snapshot_source(self, export: JSON) -> JSON:
        """vmsnapshot-source.go getPVCFromSourceVMSnapshot with handlePVCsForVirtualMachineSnapshot."""
        namespace, name = export["metadata"]["namespace"], export["spec"]["source"]["name"]
        not_found = f"VirtualMachineSnapshot {namespace}/{name} not found"
        no_volumes = f"VirtualMachineSnapshot {namespace}/{name} does not contain any volume snapshots"
        result = {"claims": [], "in_use": False, "populated": False, "prefix": f"{export['metadata']['name']}-",
                  "ready": condition("Ready", "False", "Initializing"),
                  "source": condition("VolumesCreated", "False", "VMSnapshotNoVolumes", no_volumes)}
        snapshot = self._get(object_path(SNAPSHOT_API, "virtualmachinesnapshots", name, namespace))
        if snapshot is None:
            result["ready"] = condition("Ready", "False", "VMSnapshotNotFound", not_found)
            return result
        result["vm"] = ((snapshot.get("spec") or {}).get("source") or {}).get("name", "")
        status = snapshot.get("status") or {}
        if not status.get("readyToUse"):
            message = f"VirtualMachineSnapshot {namespace}/{name} is not ready to use"
            result["ready"] = condition("Ready", "False", "NotAllPVCsCreated", message)
            result["source"] = condition("VolumesCreated", "False", "NotAllPVCsCreated", message)
            return result
        content = self._get(object_path(SNAPSHOT_API, "virtualmachinesnapshotcontents",
                                        status.get("virtualMachineSnapshotContentName") or "-", namespace))
        backups = ((content or {}).get("spec") or {}).get("volumeBackups") or []
        total = len(((content or {}).get("status") or {}).get("volumeSnapshotStatus") or [])
        claims = [self._restore_claim(export, backup, (content.get("spec") or {}).get("source") or {})
                  for backup in backups]
        if claims and len(claims) == total:
            result.update(claims=claims, populated=True,
                          source=condition("VolumesCreated", "True", "AllPVCsReady"))
        elif total:
            result["source"] = condition("VolumesCreated", "False", "NotAllPVCsCreated",
                                         "Not all PVCs have been successfully restored")
        return result

    def _restore_claim(self, export: JSON, backup: JSON, source: JSON) -> JSON:
        """getOrCreatePVCFromSnapshot: claim <export>-<claim> from the VolumeSnapshot (snapshot.CreateRestorePVCDef:
        the backed-up claim's access modes, class and volume mode, size at least the snapshot's restoreSize),
        kubevirt content type for a VM disk volume (volumeBackupIsKubeVirtContent), owned by the export."""
        meta = export["metadata"]
        claim = backup.get("persistentVolumeClaim") or {}
        name = f"{meta['name']}-{(claim.get('metadata') or {}).get('name', '')}"
        existing = self._get(object_path("v1", "persistentvolumeclaims", name, meta["namespace"]))
        if existing is not None:
            return existing
        snapshot = self._get(object_path(VOLUME_SNAPSHOT_API, "volumesnapshots", backup.get("volumeSnapshotName") or "-",
                                         meta["namespace"])) or {}
        spec = dict(claim.get("spec") or {})
        resources = {"requests": dict(((spec.get("resources") or {}).get("requests") or {}))}
        restore_size = (snapshot.get("status") or {}).get("restoreSize")
        if restore_size and (not resources["requests"].get("storage")
                             or storage_bytes(resources["requests"]["storage"]) < storage_bytes(restore_size)):
            resources["requests"]["storage"] = restore_size
        ref = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": backup.get("volumeSnapshotName")}
        body_spec = {"accessModes": spec.get("accessModes"), "resources": resources, "dataSource": ref,
                     "dataSourceRef": ref}
        for key in ("storageClassName", "volumeMode"):
            if spec.get(key):
                body_spec[key] = spec[key]
        # CreateRestorePVCDef: the backed-up claim's labels and annotations, less those under
        # restoreAnnotationsToDelete (restore.go:122-129) other than the content type
        backed_up = claim.get("metadata") or {}
        annotations = {key: value for key, value in (backed_up.get("annotations") or {}).items()
                       if key == CONTENT_TYPE or not key.startswith(RESTORE_ANNOTATIONS_TO_DELETE)}
        volumes = ((((source.get("virtualMachine") or {}).get("spec") or {}).get("template") or {}).get("spec")
                   or {}).get("volumes") or []
        if any(v.get("name") == backup.get("volumeName") and (v.get("dataVolume") or v.get("persistentVolumeClaim"))
               for v in volumes):
            annotations["cdi.kubevirt.io/storage.contentType"] = "kubevirt"
        body = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": name, "namespace": meta["namespace"], "annotations": annotations,
                             "labels": dict(backed_up.get("labels") or {}),
                             "ownerReferences": [self._owner(export)]},
                "spec": body_spec}
        try:
            return self.kube.create(object_path("v1", "persistentvolumeclaims", namespace=meta["namespace"]), body)
        except KubeError as err:
            if err.status != 409:
                raise
            return self.kube.get(object_path("v1", "persistentvolumeclaims", name, meta["namespace"]))

    def reconcile(self, namespace: str, name: str) -> Optional[float]:
        export = self.exports.get(namespace, name)
        if export is None or export["metadata"].get("deletionTimestamp"):
            with self.lock:
                self.pods.pop((namespace, name), None)
            return None
        spec = export.get("spec") or {}
        status = dict(export.get("status") or {})
        created = parse_time(export["metadata"]["creationTimestamp"])
        try:
            ttl = parse_duration(spec["ttlDuration"]) if spec.get("ttlDuration") else DEFAULT_TTL
        except ValueError:
            ttl = DEFAULT_TTL
        expires = created + timedelta(seconds=ttl)
        if not status:
            # populateInitialVMExportStatus
            status = {"phase": "Pending", "conditions": [condition("Ready", "False", "Initializing")],
                      "ttlExpirationTime": stamp(expires)}
        kind = (spec.get("source") or {}).get("kind")
        source = {"PersistentVolumeClaim": self._pvc_source, "VirtualMachine": self._vm_source,
                  "VirtualMachineSnapshot": self._snapshot_source}.get(kind)
        if source is None:
            return None
        info = source(export)
        available = not info["in_use"] and info["populated"]
        has_content = bool(info["claims"])
        # getOrCreateExportService
        svc = service_name(name)
        meta = export["metadata"]
        self._ensure(object_path("v1", "services", namespace=namespace), {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": svc, "namespace": namespace, "labels": {**EXPORTER_APP, **(meta.get("labels") or {})},
                         "annotations": dict(meta.get("annotations") or {}),
                         "ownerReferences": [self._owner(export)]},
            "spec": {"ports": [{"name": "export", "port": 443, "protocol": "TCP", "targetPort": 8443}],
                     "selector": {SERVICE_LABEL: export_label_value(name)}}})
        # handleVMExportToken
        if spec.get("tokenSecretRef"):
            status["tokenSecretRef"] = spec["tokenSecretRef"]
        elif available and has_content:
            status.setdefault("tokenSecretRef", token_secret_name(name))
            self._ensure(object_path("v1", "secrets", namespace=namespace), {
                "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": status["tokenSecretRef"], "namespace": namespace,
                             "ownerReferences": [self._owner(export)]},
                "stringData": {TOKEN_KEY: generate_token()}})
        requeue: Optional[float] = None
        # manageExporterPod
        pod = self.exporter(namespace, name)
        if pod is None and available and has_content:
            pod = Exporter(export["metadata"]["uid"], [self._claim_info(c) for c in info["claims"]],
                           info.get("prefix", ""))
            with self.lock:
                self.pods[(namespace, name)] = pod
        if pod is not None and not available:
            # ExportPaused: the source is in use again
            with self.lock:
                self.pods.pop((namespace, name), None)
            pod = None
        if pod is not None and now_utc() >= expires:
            # checkPod (only with an exporter and the source available): the TTL has passed -> deleted
            self.kube.delete(self._path(namespace, name))
            return None
        if pod is not None and pod.phase == "Pending":
            wait = pod.created + self.step - time.monotonic()
            if wait > 0:
                requeue = wait
            else:
                # the pod starts once its claims are bound (a snapshot export's claims are new)
                pod.claims = [self._claim_info(self._get(object_path("v1", "persistentvolumeclaims", c["name"],
                                                                     namespace)) or {"metadata": {"name": c["name"]}})
                              for c in pod.claims]
                if all(c["handle"] for c in pod.claims):
                    pod.phase = "Running"
                else:
                    requeue = 0.5
        # updateCommonVMExportStatusFields
        status["serviceName"] = svc
        conditions = list(status.get("conditions") or [])
        status["links"] = {}
        if pod is None:
            conditions = update_condition(conditions, info["ready"])
            status["phase"] = "Pending"
        elif pod.phase == "Running":
            conditions = update_condition(conditions, condition("Ready", "True", "PodReady"))
            status["phase"] = "Ready"
            status["links"] = {"internal": self._links(pod, f"{svc}.{namespace}.svc", self.ca_pem)}
            host, cert = self._external_host()  # getExternalLinks: none without an Ingress to the proxy
            if host:
                status["links"]["external"] = self._links(pod, f"{host}/api/{API}/namespaces/{namespace}/{PLURAL}/"
                                                               f"{name}", cert)
        else:
            conditions = update_condition(conditions, condition("Ready", "False", "PodPending"))
            status["phase"] = "Pending"
        if kind == "PersistentVolumeClaim":
            conditions = update_condition(conditions, info["source"])
        if kind == "VirtualMachineSnapshot":
            # VMSnapshotSource.UpdateStatus / updateVMSnapshotExportStatusConditions
            status["virtualMachineName"] = info.get("vm", "")
            if not has_content:
                conditions = update_condition(conditions, info["source"])
                if info["source"]["reason"] in ("VMSnapshotNoVolumes",) or info["ready"]["reason"] == "VMSnapshotNotFound":
                    status["phase"] = "Skipped"
            else:
                claims = [self._get(object_path("v1", "persistentvolumeclaims", c["metadata"]["name"], namespace)) or c
                          for c in info["claims"]]  # as they are now: the exporter may have waited for them
                bound = all((c.get("status") or {}).get("phase") == "Bound" for c in claims)
                conditions = update_condition(conditions, condition("VolumesCreated", "True", "AllPVCsReady") if bound
                                              else condition("VolumesCreated", "False", "NotAllPVCsReady",
                                                             "Not all PVCs are ready"))
        if kind == "VirtualMachine":
            status["virtualMachineName"] = info["vm"]
            if not has_content:
                status["phase"] = "Skipped"
        status["conditions"] = conditions
        if not info["populated"] or (not available and has_content):
            requeue = min(requeue or 3.0, 3.0)  # requeueTime
        if status != (export.get("status") or {}):
            self.kube.merge_patch(self._path(namespace, name) + "/status",
                                  {"metadata": {"resourceVersion": export["metadata"]["resourceVersion"]},
                                   "status": status})
        if requeue is None:
            requeue = max(1.0, (expires - now_utc()).total_seconds())
        return requeue

    def _ensure(self, collection: str, body: JSON) -> None:
        try:
            self.kube.create(collection, body)
        except KubeError as err:
            if err.status != 409:
                raise

    def _links(self, pod: Exporter, host_and_base: str, cert: str) -> JSON:
        """links.go getLinks with sourceVolumes.populateLink."""
        volumes = []
        for claim in pod.claims:
            base = f"https://{host_and_base}/volumes/{claim['name']}"
            if claim["kubevirt"]:
                formats = [{"format": "raw", "url": f"{base}/disk.img"},
                           {"format": "gzip", "url": f"{base}/disk.img.gz"}]
            else:
                formats = [{"format": "dir", "url": f"{base}/dir/"},
                           {"format": "tar.gz", "url": f"{base}/disk.tar.gz"}]
            name = claim["name"][len(pod.prefix):] if pod.prefix and claim["name"].startswith(pod.prefix) \
                else claim["name"]
            volumes.append({"name": name, "formats": formats})
        link: JSON = {"volumes": volumes}
        if cert:
            link["cert"] = cert
        return link


# -- export proxy + export server --------------------------------------------------------------------

def make_handler(kube: Kube, controller: VMExportController) -> type:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt: str, *args: Any) -> None:
            # the query string may carry the token: only the path is logged
            log.info("%s %s", self.command, self.path.split("?")[0])

        def _empty(self, code: int, body: bytes = b"") -> None:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if body and self.command != "HEAD":
                self.wfile.write(body)

        def _token_ok(self, namespace: str, export: JSON, query: str) -> bool:
            """exportserver.go tokenChecker: the query parameter or the header, equal to the secret's token."""
            ref = (export.get("status") or {}).get("tokenSecretRef")
            if not ref:
                return False
            secret = kube.get_or_none(object_path("v1", "secrets", ref, namespace))
            token = base64.b64decode(((secret or {}).get("data") or {}).get(TOKEN_KEY, "")).decode()
            offered = [self.headers.get(AUTH_HEADER, "")]
            for part in query.split("&"):
                key, _equals, value = part.partition("=")
                if key == AUTH_HEADER:
                    offered.append(unquote(value))
            return bool(token) and any(secrets.compare_digest(t, token) for t in offered if t)

        def _serve(self) -> None:
            path, _mark, query = self.path.partition("?")
            match = EXTERNAL_PATH.match(path)
            if not match:
                return self._empty(400)  # proxyHandler: not an export path
            namespace, name, rest = match["ns"], match["name"], match["rest"]
            export = controller.exports.get(namespace, name)
            if export is None:
                return self._empty(404)  # proxyHandler: no such export
            pod = controller.exporter(namespace, name)
            if (export.get("status") or {}).get("phase") != "Ready" or pod is None or pod.phase != "Running" or \
                    pod.export_uid != export["metadata"]["uid"]:
                return self._empty(503)  # proxyHandler: the export is not Ready
            if not self._token_ok(namespace, export, query):
                return self._empty(401)
            volume = VOLUME_PATH.match(rest)
            claim = next((c for c in pod.claims if volume and c["name"] == volume["claim"]), None)
            if claim is None or not claim["kubevirt"]:
                return self._empty(404)
            if self.command not in ("GET", "HEAD"):
                return self._empty(400)
            handle = claim["handle"]
            if volume["file"] == "disk.img.gz":
                if self.command != "GET":
                    return self._empty(400)  # gzipHandler: GET only
                return self._gzip(handle)
            return self._raw(handle)

        def _raw(self, handle: Optional[str]) -> None:
            """http.ServeContent: Content-Length, single byte ranges."""
            total = volume_data.size(handle) if handle else 0
            start, end = 0, total - 1
            rng = self.headers.get("Range", "")
            code = 200
            if rng.startswith("bytes=") and "," not in rng:
                first, _dash, last = rng[6:].partition("-")
                try:
                    if first:
                        start, end = int(first), (int(last) if last else total - 1)
                    else:
                        start, end = max(0, total - int(last)), total - 1
                except ValueError:
                    start, end = 0, total - 1
                else:
                    if start >= total or start > end:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{total}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    end = min(end, total - 1)
                    code = 206
            length = max(0, end - start + 1)
            self.send_response(code)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(length))
            if code == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{total}")
            self.end_headers()
            if self.command == "HEAD" or not handle or length == 0:
                return
            with open(volume_data.path_for(handle), "rb") as src:
                src.seek(start)
                remaining = length
                while remaining > 0:
                    chunk = src.read(min(volume_data.CHUNK, remaining))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    remaining -= len(chunk)

        def _gzip(self, handle: Optional[str]) -> None:
            """gzipHandler: the volume piped through gzip, no length (chunked)."""
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if self.command == "HEAD":
                self.wfile.write(b"0\r\n\r\n")
                return
            compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
            for chunk in volume_data.read_stream(handle) if handle else iter(()):
                self._chunk(compressor.compress(chunk))
            self._chunk(compressor.flush())
            self.wfile.write(b"0\r\n\r\n")

        def _chunk(self, data: bytes) -> None:
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            self._serve()

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve()

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._serve()

    return Handler


def serve(kube: Kube, controller: VMExportController, port: int, cert: str, key: str) -> ThreadingHTTPServer:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = ThreadingHTTPServer(("127.0.0.1", port), make_handler(kube, controller))
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="virt-exportproxy").start()
    return server


def server_cert(pki: Path, name: str, hosts: Tuple[str, ...] = ()) -> Tuple[str, str]:
    """A serving certificate for a loopback server of the stand-in, signed by the lab CA (made once)."""
    from .. import pki as lab_pki
    crt, key = pki / f"{name}.crt", pki / f"{name}.key"
    if not crt.exists() or not key.exists():
        lab_pki.make_leaf(pki / name, lab_pki.load_ca(pki / "ca"), name, hosts=hosts + ("localhost", "127.0.0.1"),
                          server=True)
    return str(crt), str(key)


def pack_ingress(namespace: str) -> JSON:
    """The Ingress the VMO pack makes with kubevirt.ingress (palette-vmo.md 3c): /api/export.kubevirt.io to the
    virt-exportproxy Service, TLS from INGRESS_TLS_SECRET. Not KubeVirt's: KubeVirt only reads it."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": {"name": INGRESS_NAME, "namespace": namespace},
            "spec": {"tls": [{"hosts": [INGRESS_HOST], "secretName": INGRESS_TLS_SECRET}],
                     "rules": [{"host": INGRESS_HOST, "http": {"paths": [
                         {"path": "/api/export.kubevirt.io", "pathType": "Prefix",
                          "backend": {"service": {"name": PROXY_SERVICE, "port": {"number": 443}}}}]}}]}}


def ensure_pack_ingress(kube: Kube, pki: Path, namespace: str = "kubevirt") -> None:
    """Makes the pack's Ingress and its TLS secret (a certificate for INGRESS_HOST from the lab CA, with the CA)."""
    crt, key = server_cert(pki, "virt-exportproxy-ingress", hosts=(INGRESS_HOST,))
    chain = Path(crt).read_text().strip() + "\n" + (pki / "ca.crt").read_text().strip() + "\n"
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
              "metadata": {"name": INGRESS_TLS_SECRET, "namespace": namespace},
              "data": {"tls.crt": base64.b64encode(chain.encode()).decode(),
                       "tls.key": base64.b64encode(Path(key).read_bytes()).decode()}}
    for collection, body in ((object_path("v1", "secrets", namespace=namespace), secret),
                             (object_path("networking.k8s.io/v1", "ingresses", namespace=namespace),
                              pack_ingress(namespace))):
        try:
            kube.create(collection, body)
        except KubeError as err:
            if err.status != 409:
                raise


def _make_pack_ingress_once_deployed(kube: Kube, pki: Path) -> None:
    """Waits for KubeVirt's namespace (made when the lab deploys KubeVirt), then makes the pack's Ingress."""
    while True:
        try:
            kvs = kube.get(object_path("kubevirt.io/v1", "kubevirts")).get("items", [])
            if kvs:
                ensure_pack_ingress(kube, pki, kvs[0]["metadata"]["namespace"])
                return
        except (KubeError, OSError) as err:
            log.info("pack Ingress for virt-exportproxy not made yet: %s", err)
        time.sleep(1.0)


def register(manager: Manager, kube: Kube, port: int, pki: Path) -> VMExportController:
    ca_pem = (pki / "ca.crt").read_text().strip()
    controller = VMExportController(manager, kube, port, ca_pem)
    cert, key = server_cert(pki, "virt-exportproxy")
    serve(kube, controller, port, cert, key)
    threading.Thread(target=_make_pack_ingress_once_deployed, args=(kube, pki), daemon=True,
                     name="vmo-pack-export-ingress").start()
    return controller
