# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""kubevirt_vm_clone without the network: the requests, the preflight against what was read, the
VirtualMachineClone objects and the results.

Idempotence rests on the clone object's name, which is the target VM's: a task run again finds its clone
Succeeded and the target VM there, and writes nothing (unless the VM is to be started and is not).

The preflight refuses, before anything is written, what KubeVirt's clone controller
(pkg/virt-controller/watch/clone/clone.go) would leave pending or fail later: a source VM or snapshot that
does not exist, a snapshot that failed or is not ready, a source volume whose snapshots KubeVirt reports as
not supported (VM status.volumeSnapshotStatuses, validateVolumeSnapshotStatus), a target VM that exists and
was not made by this clone, and new MAC addresses that are malformed or name no interface of the source.

MAC addresses go to KubeVirt in their hyphen form (02-00-00-00-00-01), which net.ParseMAC reads as the same
address: KubeVirt v1.9.0's restore admitter (pkg/storage/admitters/vmrestore.go validatePatches) splits each
patch of a restore at every ':' and refuses the clone controller's restore when a MAC contains colons.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.restore_plan import label_item_error
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import VmInputError, check_name

INVALID_INPUT = "invalid input, nothing was changed: "
REFUSED = "preflight refused the batch, nothing was changed: "

CLONE_API = "clone.kubevirt.io/v1beta1"
PLURAL = "virtualmachineclones"
KIND = "VirtualMachineClone"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "palette.vmo"

ITEM_OPTIONS = dict(
    target=dict(type="str", required=True),
    source_vm=dict(type="str"),
    source_snapshot=dict(type="str"),
    namespace=dict(type="str"),
    label_filters=dict(type="list", elements="str"),
    annotation_filters=dict(type="list", elements="str"),
    template_label_filters=dict(type="list", elements="str"),
    template_annotation_filters=dict(type="list", elements="str"),
    new_mac_addresses=dict(type="dict"),
    new_smbios_serial=dict(type="str"),
    start=dict(type="bool"),
)
TASK_DEFAULTS = ("namespace", "label_filters", "annotation_filters", "template_label_filters",
                 "template_annotation_filters", "start")

_MAC = re.compile(r"^[0-9A-Fa-f]{2}([:-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{4}\.){2}[0-9A-Fa-f]{4}$")


def hyphen_mac(mac):
    """The same EUI-48 address in the form net.ParseMAC reads without a ':' (see the module docstring)."""
    digits = re.sub(r"[^0-9A-Fa-f]", "", mac).lower()
    return "-".join(digits[i:i + 2] for i in range(0, 12, 2))


class CloneRequest(object):
    def __init__(self, item, defaults):
        self.target = item["target"]
        self.source_vm = item.get("source_vm")
        self.source_snapshot = item.get("source_snapshot")
        values = {}
        for key in TASK_DEFAULTS:
            values[key] = item.get(key) if item.get(key) is not None else defaults.get(key)
        self.namespace = values["namespace"]
        self.label_filters = values["label_filters"]
        self.annotation_filters = values["annotation_filters"]
        self.template_label_filters = values["template_label_filters"]
        self.template_annotation_filters = values["template_annotation_filters"]
        self.start = bool(values["start"])
        self.new_macs = item.get("new_mac_addresses") or {}
        self.serial = item.get("new_smbios_serial")
        self.name = self.target
        self.existing = None
        self.source = None  # the source VM or snapshot as read
        self.target_vm = None
        self.clone = None
        self.action = None  # created, adopted, unchanged
        self.start_action = None  # started, unchanged, None
        self.written = False
        self.final = None
        self.final_vm = None

    @property
    def label(self):
        return "%s/%s" % (self.namespace or "?", self.target)

    @property
    def source_kind(self):
        return "VirtualMachine" if self.source_vm else "VirtualMachineSnapshot"

    @property
    def source_name(self):
        return self.source_vm or self.source_snapshot


def parse_requests(params):
    if params.get("clones"):
        validated, errors = validate_items("clones", params["clones"], ITEM_OPTIONS)
        errors = [label_item_error(error, params["clones"], "clones", "target") for error in errors]
        if errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
        items, where = validated, "clones[%d]"
    else:
        items = [dict((k, params.get(k)) for k in ("target", "source_vm", "source_snapshot", "new_mac_addresses",
                                                   "new_smbios_serial"))]
        where = None
    errors, requests = [], []
    for index, item in enumerate(items):
        label = (where % index + " (%s)" % item.get("target")) if where else "%s" % item.get("target")
        if not item.get("target"):
            errors.append("%s: target: required (the new VM's name)" % (where % index if where else "task"))
            continue
        request = CloneRequest(item, params)
        try:
            if not request.namespace:
                raise VmInputError(label, "namespace", "required (per item or for the task)")
            if bool(request.source_vm) == bool(request.source_snapshot):
                raise VmInputError(label, "source_vm", "give exactly one of source_vm and source_snapshot")
            check_name(label, "namespace", request.namespace)
            check_name(label, "target", request.target)
            check_name(label, "source_vm" if request.source_vm else "source_snapshot", request.source_name, 253)
            if request.source_vm == request.target:
                raise VmInputError(label, "target", "must differ from source_vm")
            for iface, mac in sorted(request.new_macs.items()):
                if not isinstance(mac, str) or not _MAC.match(mac):
                    raise VmInputError(label, "new_mac_addresses.%s" % iface,
                                       "%r is not a MAC address (six hex pairs, for example 02:00:00:00:00:01)" % (mac,))
        except VmInputError as err:
            errors.append(str(err))
            continue
        requests.append(request)
    seen = set()
    for request in requests:
        key = (request.namespace, request.target)
        if key in seen:
            errors.append("VM %s: target: cloned into twice in this task" % request.label)
        seen.add(key)
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors)
    return requests


def phase(clone):
    return ((clone or {}).get("status") or {}).get("phase") or ""


def is_final(clone):
    return clone is None or phase(clone) in ("Succeeded", "Failed")


def _interfaces(vm_spec):
    return ((((vm_spec or {}).get("template") or {}).get("spec") or {}).get("domain") or {}).get("devices", {}) \
        .get("interfaces") or []


def source_vm_spec(request, content):
    if request.source_vm:
        return (request.source or {}).get("spec") or {}
    return ((((content or {}).get("spec") or {}).get("source") or {}).get("virtualMachine") or {}).get("spec") or {}


def preflight(request, content, clones):
    problems = []
    request.existing = clones.get(request.name)
    if request.existing is not None:
        spec = request.existing.get("spec") or {}
        source = spec.get("source") or {}
        if source.get("kind") != request.source_kind or source.get("name") != request.source_name:
            problems.append("VM %s: target: VirtualMachineClone %s exists for another source (%s %s)"
                            % (request.label, request.name, source.get("kind"), source.get("name")))
        elif phase(request.existing) == "Failed":
            conditions = (request.existing.get("status") or {}).get("conditions") or []
            reason = next((c.get("reason") for c in conditions if c.get("type") == "Ready"), "")
            problems.append("VM %s: VirtualMachineClone %s failed earlier (%s); delete it to try again"
                            % (request.label, request.name, reason))
        request.action = "unchanged" if phase(request.existing) == "Succeeded" else "adopted"
        if request.action == "unchanged" and request.target_vm is None:
            problems.append("VM %s: target: VirtualMachineClone %s Succeeded but its VM is gone (KubeVirt deletes the "
                            "clone then)" % (request.label, request.name))
        return problems
    request.action = "created"
    kind = "source_vm: VirtualMachine" if request.source_vm else "source_snapshot: VirtualMachineSnapshot"
    where = "VM %s: %s" % (request.label, kind)
    if request.source is None:
        problems.append("%s %s does not exist in namespace %s" % (where, request.source_name, request.namespace))
        return problems
    if request.target_vm is not None:
        problems.append("VM %s: target: VirtualMachine %s already exists (a clone makes a new VM)"
                        % (request.label, request.target))
    if request.source_snapshot:
        status = request.source.get("status") or {}
        if status.get("phase") == "Failed":
            problems.append("%s %s failed and cannot be cloned" % (where, request.source_name))
        elif not status.get("readyToUse"):
            problems.append("%s %s is not ready to use (phase %s)"
                            % (where, request.source_name, status.get("phase") or "unset"))
        elif content is None:
            problems.append("%s %s has no VirtualMachineSnapshotContent" % (where, request.source_name))
    else:
        statuses = {s.get("name"): s for s in (request.source.get("status") or {}).get("volumeSnapshotStatuses") or []}
        for volume in (((request.source.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []:
            found = statuses.get(volume.get("name"))
            if (volume.get("persistentVolumeClaim") or volume.get("dataVolume")) and found is not None \
                    and not found.get("enabled"):
                problems.append("%s %s: volume %s cannot be snapshotted (%s), so KubeVirt cannot clone it"
                                % (where, request.source_name, volume.get("name"), found.get("reason") or "not supported"))
    vm_spec = source_vm_spec(request, content)
    if request.serial is not None and \
            ((((vm_spec.get("template") or {}).get("spec") or {}).get("domain") or {}).get("firmware")) is None:
        # vm-target.go addSmbiosSerialPatches: KubeVirt sets the serial only on a VM with a firmware section
        problems.append("VM %s: new_smbios_serial: the source has no firmware section, where KubeVirt would set the "
                        "serial (it would be ignored)" % request.label)
    names = [i.get("name") for i in _interfaces(vm_spec)]
    for iface in sorted(request.new_macs):
        if iface not in names:
            problems.append("VM %s: new_mac_addresses.%s: the source has no interface %s (it has %s)"
                            % (request.label, iface, iface, ", ".join(names) or "none"))
    return problems


def build_clone(request):
    spec = {"source": {"apiGroup": "kubevirt.io" if request.source_vm else "snapshot.kubevirt.io",
                       "kind": request.source_kind, "name": request.source_name},
            "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": request.target}}
    for key, value in (("labelFilters", request.label_filters), ("annotationFilters", request.annotation_filters)):
        if value is not None:
            spec[key] = list(value)
    template = {}
    if request.template_label_filters is not None:
        template["labelFilters"] = list(request.template_label_filters)
    if request.template_annotation_filters is not None:
        template["annotationFilters"] = list(request.template_annotation_filters)
    if template:
        spec["template"] = template
    if request.new_macs:
        spec["newMacAddresses"] = dict((k, hyphen_mac(v)) for k, v in request.new_macs.items())
    if request.serial is not None:
        spec["newSMBiosSerial"] = request.serial
    return {"apiVersion": CLONE_API, "kind": KIND,
            "metadata": {"name": request.name, "namespace": request.namespace,
                         "labels": {MANAGED_BY_LABEL: MANAGED_BY}},
            "spec": spec}


def needs_start(vm):
    spec = (vm or {}).get("spec") or {}
    if spec.get("running") is not None:
        return not spec["running"]
    return (spec.get("runStrategy") or "Halted") == "Halted"


def start_patch(vm):
    spec = (vm or {}).get("spec") or {}
    if spec.get("running") is not None:
        return {"spec": {"running": True}}
    return {"spec": {"runStrategy": "Always"}}


def describe_clone(clone):
    if clone is None:
        return "not seen (yet)"
    status = clone.get("status") or {}
    text = "phase %s" % (status.get("phase") or "not set yet")
    conditions = ["%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["reason"] if c.get("reason") else "")
                  for c in status.get("conditions") or []]
    if conditions:
        text += ", conditions " + ", ".join(conditions)
    return text


def plan_diff(request):
    return {"before_header": "%s (no VM)" % request.label,
            "after_header": "%s (clone of %s %s)" % (request.label, request.source_kind, request.source_name),
            "before": {}, "after": {"vm": request.target, "clone": build_clone(request)["spec"],
                                    "start": request.start}}


def clone_result(request, events=None):
    final = request.final or request.existing
    status = (final or {}).get("status") or {}
    conditions = status.get("conditions") or []
    failure = None
    if phase(final) == "Failed":
        failure = next((c.get("reason") for c in conditions if c.get("type") == "Ready"), None)
    vm = request.final_vm or request.target_vm
    return {
        "target": request.target, "namespace": request.namespace, "clone": request.name,
        "source_kind": request.source_kind, "source": request.source_name, "action": request.action,
        "phase": phase(final) or None,
        "started": request.start_action == "started",
        "mac_addresses": dict((i.get("name"), i.get("macAddress")) for i in _interfaces((vm or {}).get("spec"))),
        "conditions": [{k: c.get(k) for k in ("type", "status", "reason")} for c in conditions],
        "failure": failure,
        "events": [e.get("message") for e in events or []],
    }
