# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_export, end to end: read and check every source, dry run the VirtualMachineExports, create
them, one shared wait until each is Ready, download every volume (bounded concurrency) with its export token,
write the sha256 beside each file, delete the exports.

A disk whose file and `.sha256` are already there and agree is not exported again (changed=false, nothing
written to the cluster). Nothing is written until every source passed the checks and every export its dry run.

KubeVirt gives an export external links only when an Ingress or Route in its namespace leads to virt-exportproxy
(links.go getExternalLinks). With `export_proxy_url` the downloads go to that address instead, with the path of
the external link, or, without one, the proxy's path for the export (externalUrlLinkFormat) plus the internal
link's path: what a LoadBalancer Service or a port-forward to virt-exportproxy reaches. Without either, the
task fails as soon as an export is Ready without an external link.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import re

from ansible.module_utils.six.moves.urllib.parse import urlsplit, urlunsplit

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import disk_transfer
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import DNS_LABEL

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "refused before any change, nothing was changed: "
PLURAL = "virtualmachineexports"
KIND = "VirtualMachineExport"
TOKEN_HEADER = "x-kubevirt-export-token"  # virt-exportserver's authHeader
SOURCE_LABEL = "palette.vmo/export-source"
KINDS = {"vm": "VirtualMachine", "pvc": "PersistentVolumeClaim", "snapshot": "VirtualMachineSnapshot"}
API_GROUPS = {"vm": "kubevirt.io", "snapshot": "snapshot.kubevirt.io"}
EXTENSIONS = {"raw": ".img", "gzip": ".img.gz"}
CONTENT_TYPE = "cdi.kubevirt.io/storage.contentType"
# links.go externalUrlLinkFormat: the export proxy's path of an export
PROXY_PATH = "/api/export.kubevirt.io/v1/namespaces/%s/virtualmachineexports/%s"
DURATION = re.compile(r"^(\d+(\.\d+)?(h|m|s|ms))+$")
ITEM_OPTIONS = dict(name=dict(type="str", required=True), namespace=dict(type="str"))


class Source(object):
    """One VM or PVC whose disks the task exports."""

    def __init__(self, kind, name, namespace, option):
        self.kind, self.name, self.namespace, self.option = kind, name, namespace, option
        self.claims = []  # PVC names
        self.files = {}  # claim -> path
        self.action = None  # "unchanged" | "downloaded"
        self.export = None
        self.volumes = []
        self.written = False

    @property
    def label(self):
        return "%s %s/%s" % (KINDS[self.kind], self.namespace, self.name)

    @property
    def export_name(self):
        name = "%s-%s-export" % (self.name, self.kind)
        if len(name) > 63:
            import hashlib
            name = name[:54].rstrip("-") + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
        return name


def parse_sources(params):
    errors, sources = [], []
    namespace = params.get("namespace")
    for option, kind in (("vms", "vm"), ("pvcs", "pvc"), ("snapshots", "snapshot")):
        items = [{"name": i} if isinstance(i, str) else i for i in params.get(option) or []]
        validated, item_errors = validate_items(option, items, ITEM_OPTIONS)
        errors.extend(item_errors)
        for item in validated:
            sources.append(Source(kind, item["name"], item.get("namespace") or namespace, option))
    for option, kind in (("vm", "vm"), ("pvc", "pvc"), ("snapshot", "snapshot")):
        if params.get(option):
            sources.append(Source(kind, params[option], namespace, option))
    if not sources and not errors:
        errors.append("vm: one of vm, pvc, snapshot, vms, pvcs or snapshots is required")
    seen = set()
    for source in sources:
        if not source.namespace:
            errors.append("%s %s: namespace: is required (give it per item or for the task)"
                          % (KINDS[source.kind], source.name))
            continue
        for field, value in (("namespace", source.namespace), ("name", source.name)):
            if not value or len(value) > 63 or not DNS_LABEL.match(value):
                errors.append("%s: %s: %r is not a valid name" % (source.label, field, value))
        if (source.kind, source.namespace, source.name) in seen:
            errors.append("%s: name: is named more than once in this task" % source.label)
        seen.add((source.kind, source.namespace, source.name))
    errors.extend(option_errors(params))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return sources


def option_errors(params):
    errors = bound_errors(params)
    dest = params.get("dest") or ""
    if not dest:
        errors.append("dest: is required (the directory the disk images are written to)")
    elif os.path.exists(dest) and not os.path.isdir(dest):
        errors.append("dest: %s exists and is not a directory" % dest)
    elif not os.path.exists(dest) and not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
        errors.append("dest: %s does not exist and neither does its parent directory" % dest)
    ttl = params.get("ttl")
    if ttl is not None and not DURATION.match(ttl):
        errors.append("ttl: %r is not a duration (for example 30m, 1h or 1h30m)" % ttl)
    if params.get("export_ca_cert") and not os.path.isfile(params["export_ca_cert"]):
        errors.append("export_ca_cert: %s is not a file" % params["export_ca_cert"])
    proxy = params.get("export_proxy_url")
    if proxy is not None:
        parts = urlsplit(proxy)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme != "https" or not parts.hostname or not port_ok or parts.path not in ("", "/") or \
                parts.query or parts.fragment:
            errors.append("export_proxy_url: %r is not an https URL of a host and an optional port (for example "
                          "https://203.0.113.10 or https://127.0.0.1:8443), with no path" % proxy)
    return errors


# -- reading and checks --------------------------------------------------------------------------------

def _claims_of_vm(vm):
    """The claims KubeVirt exports for a VM (vm-source.go getPVCsFromVM): PVC and DataVolume volumes."""
    claims = []
    for volume in ((vm.get("spec") or {}).get("template") or {}).get("spec", {}).get("volumes") or []:
        name = (volume.get("persistentVolumeClaim") or {}).get("claimName") or (volume.get("dataVolume") or {}).get("name")
        if name:
            claims.append(name)
    return claims


def _populated(client, namespace, pvc):
    """KubeVirt exports a DataVolume's claim once the DataVolume Succeeded (cdiv1.IsPopulated)."""
    for ref in pvc["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "DataVolume" and ref.get("controller"):
            dv = client.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", ref["name"], namespace))
            phase = ((dv or {}).get("status") or {}).get("phase")
            return phase == "Succeeded", phase
    return True, None


def _is_disk_image(client, namespace, pvc):
    """export.go isKubevirtContentType: KubeVirt offers raw and gzip links for a Block claim, one whose content-type
    annotation is present and kubevirt (or empty), or one whose controlling DataVolume has that content type;
    any other claim is exported as an archive (dir, tar.gz) of its file system."""
    if (pvc.get("spec") or {}).get("volumeMode") == "Block":
        return True
    annotations = pvc["metadata"].get("annotations") or {}
    if CONTENT_TYPE in annotations and annotations[CONTENT_TYPE] in ("kubevirt", ""):
        return True
    owner = next((r for r in pvc["metadata"].get("ownerReferences") or [] if r.get("controller")), None)
    if owner is None or owner.get("kind") != "DataVolume" or owner.get("apiVersion") != "cdi.kubevirt.io/v1beta1":
        return False
    dv = client.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", owner["name"], namespace))
    return dv is not None and (dv.get("spec") or {}).get("contentType", "") in ("kubevirt", "")


def _running_users(vmis, claim):
    for vmi in vmis:
        if (vmi.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            continue
        for volume in (vmi.get("spec") or {}).get("volumes") or []:
            ref = volume.get("persistentVolumeClaim") or volume.get("dataVolume") or {}
            if ref.get("claimName", ref.get("name")) == claim:
                return vmi["metadata"]["name"]
    return None


def _check_snapshot(client, source, params):
    """A VirtualMachineSnapshot's volumes (vmsnapshot-source.go): the claims of its content's volume backups,
    which KubeVirt restores for the export; the snapshot must be ready to use."""
    ns = source.namespace
    version = params["snapshot_api_version"]
    snapshot = client.get_or_none(object_path(version, "virtualmachinesnapshots", source.name, ns))
    if snapshot is None:
        return ["%s: name: no such VirtualMachineSnapshot in namespace %s" % (source.label, ns)]
    status = snapshot.get("status") or {}
    if not status.get("readyToUse"):
        return ["%s: name: is not ready to use (phase %s)" % (source.label, status.get("phase") or "none")]
    content = client.get_or_none(object_path(version, "virtualmachinesnapshotcontents",
                                             status.get("virtualMachineSnapshotContentName") or "-", ns)) or {}
    backups = (content.get("spec") or {}).get("volumeBackups") or []
    source.claims = [((b.get("persistentVolumeClaim") or {}).get("metadata") or {}).get("name") for b in backups]
    source.claims = [c for c in source.claims if c]
    if not source.claims:
        return ["%s: name: holds no volume snapshots to export" % source.label]
    for claim in source.claims:
        file_name = "%s-%s%s" % (source.name, claim, EXTENSIONS[params["format"]])
        source.files[claim] = os.path.join(params["dest"], ns, file_name)
    return []


def check_source(client, api_version, source, params):
    """Reads the source and its claims; returns the problems that stop the task before any write."""
    problems = []
    ns = source.namespace
    if source.kind == "snapshot":
        return _check_snapshot(client, source, params)
    vmis = client.list_all(object_path(api_version, "virtualmachineinstances", namespace=ns))[0]
    if source.kind == "vm":
        vm = client.get_or_none(object_path(api_version, "virtualmachines", source.name, ns))
        if vm is None:
            return ["%s: name: no such VirtualMachine in namespace %s" % (source.label, ns)]
        vmi = next((v for v in vmis if v["metadata"]["name"] == source.name), None)
        phase = ((vmi or {}).get("status") or {}).get("phase")
        if vmi is not None and phase not in ("Succeeded", "Failed"):
            return ["%s: name: is running (its VirtualMachineInstance is %s); KubeVirt exports the disks of a "
                    "stopped VM only - stop it first" % (source.label, phase or "starting")]
        source.claims = _claims_of_vm(vm)
        if not source.claims:
            return ["%s: name: has no volume backed by a PVC or DataVolume to export" % source.label]
    else:
        source.claims = [source.name]
    for claim in source.claims:
        pvc = client.get_or_none(object_path("v1", "persistentvolumeclaims", claim, ns))
        if pvc is None:
            field = "name" if source.kind == "pvc" else "volumes"
            problems.append("%s: %s: no such PersistentVolumeClaim %s in namespace %s" % (source.label, field, claim, ns))
            continue
        if not _is_disk_image(client, ns, pvc):
            field = "name" if source.kind == "pvc" else "volumes"
            problems.append("%s: %s: PersistentVolumeClaim %s is not a disk image for KubeVirt (Filesystem, no %s "
                            "annotation kubevirt and no DataVolume of content type kubevirt), so KubeVirt exports it "
                            "as an archive (dir, tar.gz) only, which this module does not download"
                            % (source.label, field, claim, CONTENT_TYPE))
            continue
        populated, phase = _populated(client, ns, pvc)
        if not populated:
            problems.append("%s: volumes: the DataVolume %s is not populated yet (phase %s)"
                            % (source.label, claim, phase or "none"))
        user = _running_users(vmis, claim) if source.kind == "pvc" else None
        if user:
            problems.append("%s: name: is in use by the running VirtualMachineInstance %s; KubeVirt exports a claim "
                            "no pod uses" % (source.label, user))
        source.files[claim] = os.path.join(params["dest"], ns, claim + EXTENSIONS[params["format"]])
    return problems


def already_downloaded(path):
    """The file and its `.sha256` are there and agree."""
    checksum = path + ".sha256"
    if not (os.path.isfile(path) and os.path.isfile(checksum)):
        return False
    with open(checksum) as src:
        recorded = (src.read().split() or [""])[0]
    return bool(recorded) and disk_transfer.sha256_of(path) == recorded


def export_body(source, api_version, params):
    spec = {"source": {"kind": KINDS[source.kind], "name": source.name}}
    if source.kind in API_GROUPS:
        spec["source"]["apiGroup"] = API_GROUPS[source.kind]
    if params.get("ttl"):
        spec["ttlDuration"] = params["ttl"]
    return {"apiVersion": api_version, "kind": KIND,
            "metadata": {"name": source.export_name, "namespace": source.namespace,
                         "labels": {SOURCE_LABEL: "%s.%s" % (source.kind, source.name)}},
            "spec": spec}


def _same_export(live, body):
    return (live.get("spec") or {}).get("source") == body["spec"]["source"]


# -- the flow ------------------------------------------------------------------------------------------

def _ready(obj):
    return obj is not None and (obj.get("status") or {}).get("phase") == "Ready"


def _external_links(obj):
    return ((obj.get("status") or {}).get("links") or {}).get("external")


def _ready_predicate(params, seen_without_link):
    """Ready; without export_proxy_url, an export Ready without an external link ends the whole wait at once
    (KubeVirt gives none to any export while no Ingress or Route leads to virt-exportproxy)."""
    def predicate(obj):
        if _ready(obj) and not params.get("export_proxy_url") and not _external_links(obj):
            seen_without_link.append(obj)
        return bool(seen_without_link) or _ready(obj)
    return predicate


def no_external_link_error(exports):
    names = ", ".join(sorted(set("%s/%s" % (o["metadata"]["namespace"], o["metadata"]["name"]) for o in exports)))
    return ("export_proxy_url: the VirtualMachineExport %s is Ready without an external link: KubeVirt gives exports "
            "one only when an Ingress or Route in its namespace leads to virt-exportproxy; give export_proxy_url, the "
            "address that reaches virt-exportproxy from here (for example its LoadBalancer Service "
            "virt-exportproxy-lb or a port-forward), or create such an Ingress" % names)


def volume_links(export_obj, proxy_url):
    """The export's volume links to download from: the external link's, or with `proxy_url` those on that
    address (the external link's path, else the proxy's path for the export plus the internal link's path),
    and the certificate the link names."""
    links = (export_obj.get("status") or {}).get("links") or {}
    external = links.get("external")
    if not proxy_url:
        return external or {}
    base = urlsplit(proxy_url)
    meta = export_obj["metadata"]
    chosen = external or links.get("internal") or {}
    prefix = "" if external else PROXY_PATH % (meta["namespace"], meta["name"])
    volumes = []
    for volume in chosen.get("volumes") or []:
        formats = []
        for fmt in volume.get("formats") or []:
            parts = urlsplit(fmt.get("url") or "")
            formats.append(dict(fmt, url=urlunsplit(("https", base.netloc, prefix + parts.path, parts.query, ""))))
        volumes.append(dict(volume, formats=formats))
    return {"cert": chosen.get("cert"), "volumes": volumes}


def _describe(obj):
    if obj is None:
        return "absent"
    status = obj.get("status") or {}
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    text = "phase %s" % (status.get("phase") or "none")
    if ready.get("reason"):
        text += ", Ready %s (%s)%s" % (ready.get("status"), ready["reason"],
                                       (": " + ready["message"]) if ready.get("message") else "")
    return text


def _token(client, export_obj, module):
    ref = (export_obj.get("status") or {}).get("tokenSecretRef")
    secret = client.get(object_path("v1", "secrets", ref, export_obj["metadata"]["namespace"]))
    token = base64.b64decode((secret.get("data") or {}).get("token", "")).decode()
    module.no_log_values.add(token)
    return token


def _download(client, module, source, export_obj, params):
    token = _token(client, export_obj, module)
    links = volume_links(export_obj, params.get("export_proxy_url"))
    by_name = {v["name"]: v for v in links.get("volumes") or []}
    wanted = {"raw": "raw", "gzip": "gzip"}[params["format"]]
    results = []
    with disk_transfer.CaFile(None if params.get("export_ca_cert") else links.get("cert")) as link_ca:
        for claim in source.claims:
            path = source.files[claim]
            if already_downloaded(path):
                results.append({"name": claim, "path": path, "format": params["format"], "action": "unchanged",
                                "sha256": disk_transfer.sha256_of(path)})
                continue
            fmt = next((f for f in (by_name.get(claim) or {}).get("formats") or [] if f.get("format") == wanted), None)
            if fmt is None:
                raise disk_transfer.TransferError("%s: the export offers no %s link for volume %s (it offers %s)"
                                                  % (source.label, wanted, claim,
                                                     ", ".join(f.get("format") for f in (by_name.get(claim) or {})
                                                               .get("formats") or []) or "none"))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            summary = disk_transfer.download(
                fmt["url"], {TOKEN_HEADER: token}, path, "%s: volume %s" % (source.label, claim),
                gzipped=params["format"] == "gzip", validate_certs=params["export_validate_certs"],
                ca_path=params.get("export_ca_cert") or link_ca, timeout=params["wait_timeout"] or 600)
            with open(path + ".sha256", "w") as out:
                out.write("%s  %s\n" % (summary["sha256"], os.path.basename(path)))
            summary.update(name=claim, path=path, format=params["format"], url=fmt["url"], action="downloaded")
            results.append(summary)
    return results


def source_result(source):
    return {"kind": KINDS[source.kind], "name": source.name, "namespace": source.namespace,
            "export": source.export_name, "action": source.action, "volumes": source.volumes}


def _fail(prefix, errors, sources):
    raise ModuleFailure(prefix + joined_errors(errors), errors,
                        changed=any(s.written for s in sources), exports=[source_result(s) for s in sources])


def run(module):
    params = dict(module.params)
    sources = parse_sources(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    api_version = preferred_version(client, "kubevirt.io", None)
    export_version = preferred_version(client, "export.kubevirt.io", params.get("api_version"))
    if any(s.kind == "snapshot" for s in sources):
        params["snapshot_api_version"] = preferred_version(client, "snapshot.kubevirt.io", None)
    outcomes = run_concurrently(lambda s: check_source(client, api_version, s, params), sources, params["concurrency"])
    problems = []
    for outcome in outcomes:
        if isinstance(outcome, Exception):
            raise outcome
        problems.extend(outcome)
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)
    todo = []
    for source in sources:
        if not params["force"] and all(already_downloaded(p) for p in source.files.values()):
            source.action = "unchanged"
            source.volumes = [{"name": c, "path": source.files[c], "format": params["format"], "action": "unchanged",
                               "sha256": disk_transfer.sha256_of(source.files[c])} for c in source.claims]
        else:
            source.action = "downloaded"
            todo.append(source)
    # Existing exports of ours (an interrupted run) are used; someone else's export under the name stops the task.

    def path_of(source, name=None):
        return object_path(export_version, PLURAL, name, source.namespace)

    live = run_concurrently(lambda s: client.get_or_none(path_of(s, s.export_name)), todo, params["concurrency"])
    conflicts = []
    for source, obj in zip(todo, live):
        if isinstance(obj, Exception):
            raise obj
        source.export = obj
        if obj is not None and not _same_export(obj, export_body(source, export_version, params)):
            conflicts.append("%s: VirtualMachineExport %s/%s exists and exports %s %s; delete it or export under "
                             "another name" % (source.label, source.namespace, source.export_name,
                                               obj["spec"]["source"].get("kind"), obj["spec"]["source"].get("name")))
    if conflicts:
        raise ModuleFailure(REFUSED + joined_errors(conflicts), conflicts)
    creating = [s for s in todo if s.export is None]
    dry = run_concurrently(lambda s: client.request("POST", path_of(s), {"dryRun": "All"},
                                                    export_body(s, export_version, params)),
                           creating, params["concurrency"])
    refused = ["%s: %s" % (s.label, describe_api_error(o)) for s, o in zip(creating, dry) if isinstance(o, KubeApiError)]
    for outcome in dry:
        if isinstance(outcome, Exception) and not isinstance(outcome, KubeApiError):
            raise outcome
    if refused:
        raise ModuleFailure(REFUSED + "the apiserver refused the exports: " + joined_errors(refused), refused)
    result = {"changed": bool(todo), "api_version": export_version}
    if module._diff:
        result["diff"] = [{"before": {"path": list(s.files.values()), "exported": False},
                           "after": {"path": list(s.files.values()), "exported": True}} for s in todo]
    if module.check_mode:
        for source in todo:
            source.volumes = [{"name": c, "path": source.files[c], "format": params["format"],
                               "action": "would download"} for c in source.claims]
        module.exit_json(exports=[source_result(s) for s in sources], **result)
    if params.get("dest") and not os.path.isdir(params["dest"]):
        os.makedirs(params["dest"], exist_ok=True)
    created = run_concurrently(lambda s: client.request("POST", path_of(s), None, export_body(s, export_version, params)),
                               creating, params["concurrency"])
    errors = []
    for source, outcome in zip(creating, created):
        if isinstance(outcome, Exception):
            errors.append("%s: %s" % (source.label, describe_api_error(outcome) if isinstance(outcome, KubeApiError)
                                      else outcome))
        else:
            source.written = True
    if errors:
        _fail("the apiserver refused creates: ", errors, sources)
    without_link = []
    try:
        ready = wait_for(client, export_version, PLURAL,
                         [WaitTarget(s.namespace, s.export_name, _ready_predicate(params, without_link), "phase Ready",
                                     _describe) for s in todo], params["wait_timeout"])
    except WaitTimeout as err:
        cleanup(client, todo, path_of, params)
        _fail("", [str(err)], sources)
    if without_link:
        cleanup(client, todo, path_of, params)
        _fail("", [no_external_link_error(without_link)], sources)
    outcomes = run_concurrently(lambda s: _download(client, module, s, ready[(s.namespace, s.export_name)], params),
                                todo, params["concurrency"])
    for source, outcome in zip(todo, outcomes):
        if isinstance(outcome, Exception):
            errors.append(str(outcome) if isinstance(outcome, ModuleFailure) else "%s: %s" % (source.label, outcome))
        else:
            source.volumes = outcome
    cleanup(client, todo, path_of, params)
    if errors:
        _fail("%d of %d exports failed: " % (len(errors), len(todo)), errors, sources)
    module.exit_json(exports=[source_result(s) for s in sources], **result)


def cleanup(client, sources, path_of, params):
    """The exports are deleted once downloaded (their token secret and service go with them), unless kept."""
    if params["keep_export"]:
        return
    for source in sources:
        try:
            client.delete(path_of(source, source.export_name))
            source.written = True
        except KubeApiError:
            pass
