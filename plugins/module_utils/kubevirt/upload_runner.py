# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_disk_upload, end to end: check every disk and image, dry run the DataVolumes (source upload),
create them, one shared wait until each is UploadReady, then per disk an UploadTokenRequest and the image
POSTed to CDI's upload proxy (bounded concurrency), then one shared wait until each is Succeeded.

The DataVolume carries the image's sha256 in an annotation: a re-run finds it Succeeded with the same
sha256 and changes nothing; a DataVolume of that name with other content stops the task before any write.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

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
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import DNS_LABEL, QUANTITY, quantity_bytes

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "refused before any change, nothing was changed: "
SHA_ANNOTATION = "palette.vmo/upload-sha256"
# CDI's AnnImmediateBinding (controller/common/util.go), what virtctl image-upload --force-bind sets: CDI starts
# the upload pod for a claim of a WaitForFirstConsumer class instead of waiting for a consumer.
IMMEDIATE_BINDING = "cdi.kubevirt.io/storage.bind.immediate.requested"
# DataVolume phases in which CDI starts no upload pod until a consumer comes (WaitForFirstConsumer classes)
WAITING_FOR_CONSUMER = ("WaitForFirstConsumer", "PendingPopulation")
UPLOAD_GROUP = "upload.cdi.kubevirt.io"
UPLOAD_PATH = "/v1beta1/upload"  # CDI common.UploadPathSync
MIB = 1024 * 1024
DISK_KEYS = ("name", "namespace", "src", "size", "storage_class", "access_modes", "volume_mode")
ITEM_OPTIONS = dict(
    name=dict(type="str", required=True),
    namespace=dict(type="str"),
    src=dict(type="path", required=True),
    size=dict(type="str"),
    storage_class=dict(type="str"),
    access_modes=dict(type="list", elements="str"),
    volume_mode=dict(type="str", choices=["Filesystem", "Block"]),
)
PROXY_URL = re.compile(r"^(https://)?[A-Za-z0-9.\-\[\]:]+(:\d+)?(/.*)?$")


class Disk(object):
    def __init__(self, item, params):
        self.name = item["name"]
        self.namespace = item.get("namespace") or params.get("namespace")
        self.src = item.get("src")
        self.size = item.get("size") or params.get("size")
        self.storage_class = item.get("storage_class") or params.get("storage_class")
        self.access_modes = item.get("access_modes") or params.get("access_modes")
        self.volume_mode = item.get("volume_mode") or params.get("volume_mode")
        self.sha256 = None
        self.image_bytes = None
        self.image_format = None
        self.virtual_size = None
        self.live = None
        self.action = None
        self.transfer = {}
        self.phase = None
        self.written = False

    @property
    def label(self):
        return "DataVolume %s/%s" % (self.namespace, self.name)


def parse_disks(params):
    errors = []
    # Ansible gives every sub-option of a `disks` item, None when not set: validated again here without them
    items = [{k: v for k, v in item.items() if v is not None} for item in params.get("disks") or []]
    if params.get("name") or params.get("src"):
        items.insert(0, {k: params.get(k) for k in ("name", "src") if params.get(k) is not None})
    validated, item_errors = validate_items("disks", items, ITEM_OPTIONS)
    errors.extend(item_errors)
    if not items:
        errors.append("name: one of name (with src) or disks is required")
    disks = [Disk(item, params) for item in validated]
    seen = set()
    for disk in disks:
        if not disk.namespace:
            errors.append("DataVolume %s: namespace: is required (give it per item or for the task)" % disk.name)
            continue
        for field, value in (("namespace", disk.namespace), ("name", disk.name)):
            if not DNS_LABEL.match(value or "") or len(value) > 63:
                errors.append("%s: %s: %r is not a valid name" % (disk.label, field, value))
        if (disk.namespace, disk.name) in seen:
            errors.append("%s: name: is named more than once in this task" % disk.label)
        seen.add((disk.namespace, disk.name))
        errors.extend(_image_errors(disk))
    url = params.get("upload_proxy_url")
    if url is not None and (not PROXY_URL.match(url) or "://" in url and not url.startswith("https://")):
        errors.append("upload_proxy_url: %r must be an https:// URL or a host[:port]" % url)
    if params.get("upload_proxy_ca") and not os.path.isfile(params["upload_proxy_ca"]):
        errors.append("upload_proxy_ca: %s is not a file" % params["upload_proxy_ca"])
    errors.extend(bound_errors(params))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return disks


def _image_errors(disk):
    if not disk.src or not os.path.isfile(disk.src) or not os.access(disk.src, os.R_OK):
        return ["%s: src: %s is not a readable file" % (disk.label, disk.src)]
    disk.image_bytes = os.path.getsize(disk.src)
    info = disk_transfer.image_info(disk.src)
    disk.image_format, disk.virtual_size = info["format"], info["virtual_size"]
    if disk.size is None:
        # the image's virtual size (CDI writes a qcow2 image as raw), rounded up to a MiB (CDI aligns to 1 MiB)
        disk.size = "%dMi" % max(1, -(-disk.virtual_size // MIB))
        return []
    if not QUANTITY.match(str(disk.size)) or quantity_bytes(str(disk.size)) is None:
        return ["%s: size: %r is not a Kubernetes quantity (for example 10Gi)" % (disk.label, disk.size)]
    wanted = int(quantity_bytes(str(disk.size)))
    if wanted < disk.virtual_size:
        if disk.image_format == "qcow2":
            return ["%s: size: %s (%d bytes) is smaller than the virtual size of the qcow2 image %s (%d bytes), which "
                    "CDI writes as raw" % (disk.label, disk.size, wanted, disk.src, disk.virtual_size)]
        return ["%s: size: %s (%d bytes) is smaller than the image %s (%d bytes)"
                % (disk.label, disk.size, wanted, disk.src, disk.image_bytes)]
    return []


def dv_body(disk, api_version, force_bind=True):
    storage = {"resources": {"requests": {"storage": str(disk.size)}}}
    if disk.storage_class:
        storage["storageClassName"] = disk.storage_class
    if disk.access_modes:
        storage["accessModes"] = list(disk.access_modes)
    if disk.volume_mode:
        storage["volumeMode"] = disk.volume_mode
    annotations = {SHA_ANNOTATION: disk.sha256}
    if force_bind:
        annotations[IMMEDIATE_BINDING] = "true"
    return {"apiVersion": api_version, "kind": "DataVolume",
            "metadata": {"name": disk.name, "namespace": disk.namespace, "annotations": annotations},
            "spec": {"source": {"upload": {}}, "storage": storage}}


def _phase(obj):
    return ((obj or {}).get("status") or {}).get("phase")


def _describe(obj):
    if obj is None:
        return "absent"
    status = obj.get("status") or {}
    running = next((c for c in status.get("conditions") or [] if c.get("type") == "Running"), {})
    text = "phase %s" % (status.get("phase") or "none")
    if running.get("reason"):
        text += ", Running %s (%s)" % (running.get("status"), running.get("reason"))
    return text


def proxy_base(client, params):
    """The upload proxy: the option, else CDIConfig status.uploadProxyURL (as virtctl image-upload finds it)."""
    url = params.get("upload_proxy_url")
    if not url:
        config = client.get_or_none(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config")) or {}
        url = (config.get("status") or {}).get("uploadProxyURL")
        if not url:
            raise ModuleFailure(INVALID_INPUT + "upload_proxy_url: the cluster publishes no upload proxy (CDIConfig "
                                "config status.uploadProxyURL is empty); give upload_proxy_url",
                                ["upload_proxy_url: not given and not published by the cluster"])
    if not url.startswith("https://"):
        url = "https://" + url
    return url.rstrip("/")


def _token(client, module, disk, upload_version):
    body = {"apiVersion": upload_version, "kind": "UploadTokenRequest",
            "metadata": {"name": disk.name, "namespace": disk.namespace}, "spec": {"pvcName": disk.name}}
    answer = client.request("POST", object_path(upload_version, "uploadtokenrequests", namespace=disk.namespace),
                            None, body)
    token = ((answer or {}).get("status") or {}).get("token")
    if not token:
        raise disk_transfer.TransferError("%s: the UploadTokenRequest was answered without a token" % disk.label)
    module.no_log_values.add(token)
    return token


def _upload(client, module, disk, upload_version, base, params):
    token = _token(client, module, disk, upload_version)
    summary = disk_transfer.upload(base + UPLOAD_PATH, {"Authorization": "Bearer " + token}, disk.src,
                                   "%s: upload of %s" % (disk.label, disk.src),
                                   validate_certs=params["upload_proxy_validate_certs"], ca_path=params.get("upload_proxy_ca"),
                                   timeout=max(params["wait_timeout"], 60))
    if summary["sha256"] != disk.sha256:
        raise disk_transfer.TransferError("%s: src %s changed while it was read" % (disk.label, disk.src))
    return summary


def disk_result(disk):
    result = {"name": disk.name, "namespace": disk.namespace, "src": disk.src, "size": str(disk.size),
              "image_bytes": disk.image_bytes, "image_format": disk.image_format, "virtual_size": disk.virtual_size,
              "sha256": disk.sha256, "action": disk.action, "phase": disk.phase}
    result.update(disk.transfer)
    return result


def _fail(prefix, errors, disks):
    raise ModuleFailure(prefix + joined_errors(errors), errors, changed=any(d.written for d in disks),
                        disks=[disk_result(d) for d in disks])


def run(module):
    params = dict(module.params)
    disks = parse_disks(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    dv_version = preferred_version(client, "cdi.kubevirt.io", params.get("api_version"))
    upload_version = preferred_version(client, UPLOAD_GROUP, None)
    for disk, digest in zip(disks, run_concurrently(lambda d: disk_transfer.sha256_of(d.src), disks,
                                                    params["concurrency"])):
        if isinstance(digest, Exception):
            raise ModuleFailure(INVALID_INPUT + "%s: src: %s" % (disk.label, digest), [str(digest)])
        disk.sha256 = digest
    lives = run_concurrently(lambda d: client.get_or_none(object_path(dv_version, "datavolumes", d.name, d.namespace)),
                             disks, params["concurrency"])
    problems = []
    for disk, live in zip(disks, lives):
        if isinstance(live, Exception):
            raise live
        disk.live = live
        if live is None:
            disk.action = "uploaded"
            continue
        disk.phase = _phase(live)
        recorded = ((live.get("metadata") or {}).get("annotations") or {}).get(SHA_ANNOTATION)
        if recorded != disk.sha256 or "upload" not in ((live.get("spec") or {}).get("source") or {}):
            problems.append("%s: name: exists and was not uploaded from this image (DataVolumes cannot be changed: "
                            "delete it or upload under another name)" % disk.label)
        elif disk.phase == "Succeeded":
            disk.action = "unchanged"
        else:
            disk.action = "uploaded"  # an interrupted run: the DataVolume waits for its upload
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems)
    todo = [d for d in disks if d.action == "uploaded"]
    creating = [d for d in todo if d.live is None]
    base = proxy_base(client, params) if todo else None

    def path_of(disk):
        return object_path(dv_version, "datavolumes", namespace=disk.namespace)

    dry = run_concurrently(lambda d: client.request("POST", path_of(d), {"dryRun": "All"},
                                                    dv_body(d, dv_version, params["force_bind"])),
                           creating, params["concurrency"])
    refused = []
    for disk, outcome in zip(creating, dry):
        if isinstance(outcome, KubeApiError):
            refused.append("%s: %s" % (disk.label, describe_api_error(outcome)))
        elif isinstance(outcome, Exception):
            raise outcome
    if refused:
        raise ModuleFailure(REFUSED + "the apiserver refused the DataVolumes: " + joined_errors(refused), refused)
    result = {"changed": bool(todo), "api_version": dv_version}
    if module._diff:
        result["diff"] = [{"before": {}, "after": dv_body(d, dv_version, params["force_bind"])} for d in creating]
    if module.check_mode:
        for disk in todo:
            disk.action = "would upload"
        module.exit_json(disks=[disk_result(d) for d in disks], **result)
    created = run_concurrently(lambda d: client.request("POST", path_of(d), None,
                                                        dv_body(d, dv_version, params["force_bind"])),
                               creating, params["concurrency"])
    errors = []
    for disk, outcome in zip(creating, created):
        if isinstance(outcome, Exception):
            errors.append("%s: %s" % (disk.label, describe_api_error(outcome) if isinstance(outcome, KubeApiError)
                                      else outcome))
        else:
            disk.written = True
    if errors:
        _fail("the apiserver refused creates: ", errors, disks)

    def targets(phases, what):
        return [WaitTarget(d.namespace, d.name, lambda o: _phase(o) in phases, what, _describe) for d in todo]

    try:
        # a DataVolume waiting for a consumer gets no upload pod: the wait ends at once (force_bind=false)
        ready = wait_for(client, dv_version, "datavolumes",
                         targets(("UploadReady", "Succeeded") + WAITING_FOR_CONSUMER, "phase UploadReady"),
                         params["wait_timeout"])
    except WaitTimeout as err:
        _fail("", [str(err)], disks)
    waiting = [d for d in todo if _phase(ready.get((d.namespace, d.name))) in WAITING_FOR_CONSUMER]
    if waiting:
        _fail("", ["%s: phase %s: its storage class binds volumes on the first consumer and CDI starts no upload "
                   "pod until one comes; give force_bind=true (as virtctl image-upload --force-bind)"
                   % (d.label, _phase(ready.get((d.namespace, d.name)))) for d in waiting], disks)
    outcomes = run_concurrently(lambda d: _upload(client, module, d, upload_version, base, params), todo,
                                params["concurrency"])
    for disk, outcome in zip(todo, outcomes):
        if isinstance(outcome, Exception):
            errors.append(str(outcome) if isinstance(outcome, ModuleFailure) else "%s: %s" % (disk.label, outcome))
        else:
            disk.transfer = outcome
            disk.written = True
    if errors:
        _fail("%d of %d uploads failed: " % (len(errors), len(todo)), errors, disks)
    try:
        final = wait_for(client, dv_version, "datavolumes", targets(("Succeeded",), "phase Succeeded"),
                         params["wait_timeout"])
    except WaitTimeout as err:
        _fail("", [str(err)], disks)
    for disk in todo:
        disk.phase = _phase(final.get((disk.namespace, disk.name)))
    result["changed"] = any(d.written for d in disks)
    module.exit_json(disks=[disk_result(d) for d in disks], **result)
