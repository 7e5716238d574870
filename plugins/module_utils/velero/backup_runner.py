# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_backup, end to end: check everything, dry run, write, one wait, then read the backup's item list.

A backup is named: a Backup that exists under the name with the same spec is the task's own (changed=false,
waited for if still running); one with another spec is refused, since a Velero backup never changes. Chosen VMs
are selected the way Velero selects anything, by a label: each VM gets `velero.vmo.palette.io/backup=<name>`
and the Backup that label as its labelSelector; the kubevirt-velero-plugin's VM action brings each VM's
DataVolumes, PVCs (and through Velero's PVC action their PVs), its running instance and launcher pod.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.velero import objects
from ansible_collections.palette.vmo.plugins.module_utils.velero.objects import INVALID_INPUT, REFUSED

VM_LABEL = "velero.vmo.palette.io/backup"
MANAGED_BY = {"app.kubernetes.io/managed-by": "palette.vmo"}


class BackupRequest(object):
    def __init__(self, params):
        self.name = params["name"]
        self.velero_namespace = params["velero_namespace"]
        self.label = "Backup %s/%s" % (self.velero_namespace, self.name)
        self.vms = []  # (namespace, name)
        self.spec = {}
        self.vm_patches = []  # (namespace, name) of VMs that need the selection label
        self.existing = None
        self.final = None
        self.written = False


def _vm_entries(params, label, errors):
    entries, seen = [], set()
    for index, item in enumerate(params.get("vms") or []):
        if isinstance(item, dict):
            unknown = sorted(set(item) - {"name", "namespace"})
            if unknown:
                errors.append("%s: vms[%d]: unsupported parameters: %s" % (label, index, ", ".join(unknown)))
                continue
            name, namespace = item.get("name"), item.get("namespace") or params.get("namespace")
        elif isinstance(item, str):
            namespace, _slash, name = item.rpartition("/")
            namespace = namespace or params.get("namespace")
        else:
            errors.append("%s: vms[%d]: %r is neither a name, namespace/name, nor a dict" % (label, index, item))
            continue
        if not namespace:
            errors.append("%s: vms[%d] (%s): namespace: give namespace/name, or the namespace option" % (label, index, name))
            continue
        if not objects.valid_namespace(namespace):
            errors.append("VM %s/%s: namespace: %r is not a valid namespace name" % (namespace, name, namespace))
            continue
        if not name or not objects.valid_name(name):
            errors.append("VM %s/%s: name: %r is not a valid name" % (namespace, name, name))
            continue
        if (namespace, name) in seen:
            errors.append("VM %s/%s: name: is named more than once" % (namespace, name))
            continue
        seen.add((namespace, name))
        entries.append((namespace, name))
    return entries


def parse_request(params):
    """Checks that need no cluster; returns the request or raises with every problem found."""
    request = BackupRequest(params)
    label, errors = request.label, list(bound_errors(params))
    if not objects.valid_name(request.name):
        errors.append("%s: name: %r is not a valid name (lowercase letters, digits, '-' and '.')" % (label, request.name))
    if not objects.valid_namespace(request.velero_namespace):
        errors.append("%s: velero_namespace: %r is not a valid namespace name" % (label, request.velero_namespace))
    if params.get("state") == "absent":
        if errors:
            raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors, changed=False)
        return request
    request.vms = _vm_entries(params, label, errors)
    namespaces = params.get("included_namespaces") or []
    if not namespaces and not params.get("vms"):
        errors.append("%s: included_namespaces: give included_namespaces (['*'] for all) or vms" % label)
    for namespace in namespaces:
        if namespace != "*" and not objects.valid_namespace(namespace.replace("*", "x")):
            # includes_excludes.go validateNamespaceName: only '*' is a wildcard for a backup, '?' fails validation
            errors.append("%s: included_namespaces: %r is not a valid namespace name (only '*' alone selects all)"
                          % (label, namespace))
        elif namespace != "*":
            # item_collector.go collectNamespaces: an entry other than '*' that is not a namespace's name is logged as
            # an error, so a glob would leave the backup PartiallyFailed
            if "*" in namespace:
                errors.append("%s: included_namespaces: %r is a pattern; Velero 1.17 takes each entry but '*' as a "
                              "namespace name and fails the backup partially, list the namespaces" % (label, namespace))
    errors += ["%s: %s" % (label, e) for e in objects.includes_excludes_errors(
        "included_namespaces", namespaces, [], "excluded_namespaces")]
    errors += ["%s: %s" % (label, e) for e in objects.includes_excludes_errors(
        "included_resources", params.get("included_resources"), params.get("excluded_resources"), "excluded_resources")]
    if params.get("vms") and len(request.name) > 63:
        errors.append("%s: name: with vms the name is a label value, at most 63 characters" % label)
    ttl = params.get("ttl")
    if ttl is not None and not objects.valid_duration(ttl):
        errors.append("%s: ttl: %r is not a duration (for example 720h, 90m or 1h30m)" % (label, ttl))
    selector = None
    if params.get("label_selector") is not None:
        try:
            selector = objects.parse_label_selector(params["label_selector"])
        except ValueError as err:
            errors.append("%s: label_selector: %s" % (label, err))
    if params.get("storage_location") is not None and not objects.valid_name(params["storage_location"]):
        errors.append("%s: storage_location: %r is not a valid name" % (label, params["storage_location"]))
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors, changed=False)
    if request.vms:
        selector = {"matchLabels": {VM_LABEL: request.name}}
        namespaces = sorted({namespace for namespace, _name in request.vms})
    request.spec = {
        "includedNamespaces": list(namespaces),
        "labelSelector": selector,
        "includedResources": params.get("included_resources"),
        "excludedResources": params.get("excluded_resources"),
        "includeClusterResources": params.get("include_cluster_resources"),
        "storageLocation": params.get("storage_location"),
        "ttl": params.get("ttl"),
        "snapshotVolumes": params.get("snapshot_volumes"),
    }
    return request


def backup_manifest(request):
    return {"apiVersion": objects.API_VERSION, "kind": "Backup",
            "metadata": {"name": request.name, "namespace": request.velero_namespace, "labels": dict(MANAGED_BY)},
            "spec": {k: v for k, v in request.spec.items() if v is not None}}


def comparable_spec(spec):
    """The task's spec as Velero keeps it: prepareBackupRequest drops the CSI VolumeSnapshot resources from
    includedResources (and appends them to excludedResources, see `added`), a zero ttl is Velero's default."""
    spec = dict(spec)
    if spec.get("includedResources") is not None:
        spec["includedResources"] = [r for r in spec["includedResources"] if r not in objects.AUTO_EXCLUDED_RESOURCES]
    if spec.get("ttl") is not None and objects.duration_seconds(spec["ttl"]) == 0:
        spec["ttl"] = None
    return spec


def same_ttl(existing, spec):
    """Velero writes the ttl back as Go prints a duration (720h -> 720h0m0s): equal when the durations are."""
    have = (existing.get("spec") or {}).get("ttl")
    want = spec.get("ttl")
    if want is None or objects.duration_seconds(want) == 0:
        return True
    return have is not None and objects.duration_seconds(have) == objects.duration_seconds(want)


def preflight(client, request, params):
    """Checks against the cluster, before anything is written: the location, the namespaces, the VMs."""
    errors = []
    request.existing = objects.read_velero(client, "backups", request.velero_namespace, request.name)
    if request.existing is not None:
        differences = objects.spec_differences(request.existing.get("spec") or {}, comparable_spec(request.spec),
                                               defaulted=("storageLocation", "ttl"),
                                               added={"excludedResources": objects.AUTO_EXCLUDED_RESOURCES})
        differences = [d for d in differences if not d.startswith("ttl: ") or not same_ttl(request.existing, request.spec)]
        if differences:
            errors.append("%s: exists with another spec (%s); a backup never changes, give a new name"
                          % (request.label, "; ".join(differences)))
        if errors:
            raise ModuleFailure(REFUSED + joined_errors(errors), errors, changed=False)
        return
    problem = objects.location_problem(client, request.velero_namespace, params.get("storage_location"),
                                       "storage_location")
    if problem:
        errors.append("%s: %s" % (request.label, problem))
    for namespace in request.spec["includedNamespaces"]:
        if "*" in namespace:
            continue
        found = client.get_or_none(object_path("v1", "namespaces", namespace))
        if found is None:
            if not request.vms:
                errors.append("%s: included_namespaces: namespace %r does not exist" % (request.label, namespace))
        elif ((found["metadata"].get("labels") or {}).get(objects.EXCLUDE_LABEL)) == "true":
            # backup_controller.go prepareBackupRequest appends such namespaces to excludedNamespaces, then the
            # namespace lists fail validation ("excludes list cannot contain an item in the includes list")
            errors.append("%s: %s: namespace %r is labelled %s=true, Velero would fail the backup's validation"
                          % (request.label, "vms" if request.vms else "included_namespaces", namespace,
                             objects.EXCLUDE_LABEL))
    vms = run_concurrently(lambda key: client.get_or_none(
        object_path("kubevirt.io/v1", "virtualmachines", key[1], key[0])), request.vms, params["concurrency"])
    for (namespace, name), vm in zip(request.vms, vms):
        if isinstance(vm, KubeApiError) and vm.status == 404:
            vm = None
        if isinstance(vm, Exception):
            raise vm
        if vm is None:
            errors.append("VM %s/%s: name: no such VirtualMachine in namespace %s" % (namespace, name, namespace))
        elif ((vm["metadata"].get("labels") or {}).get(VM_LABEL)) != request.name:
            request.vm_patches.append((namespace, name))
    if errors:
        raise ModuleFailure(REFUSED + joined_errors(errors), errors, changed=False)


def _label_patch(request):
    return {"metadata": {"labels": {VM_LABEL: request.name}}}


def dry_run(client, request, params):
    outcomes = run_concurrently(lambda key: client.merge_patch(
        object_path("kubevirt.io/v1", "virtualmachines", key[1], key[0]), _label_patch(request), dry_run=True),
        request.vm_patches, params["concurrency"])
    errors = ["VM %s/%s: %s" % (key[0], key[1], describe_api_error(out))
              for key, out in zip(request.vm_patches, outcomes) if isinstance(out, KubeApiError)]
    for out in outcomes:
        if isinstance(out, Exception) and not isinstance(out, KubeApiError):
            raise out
    try:
        client.request("POST", objects.velero_path("backups", request.velero_namespace), {"dryRun": "All"},
                       backup_manifest(request))
    except KubeApiError as err:
        errors.append("%s: %s" % (request.label, describe_api_error(err)))
    if errors:
        raise ModuleFailure("the apiserver refused the dry run, nothing was changed: " + joined_errors(errors), errors,
                            changed=False)


def write(client, request, params):
    outcomes = run_concurrently(lambda key: client.merge_patch(
        object_path("kubevirt.io/v1", "virtualmachines", key[1], key[0]), _label_patch(request)),
        request.vm_patches, params["concurrency"])
    errors = []
    for key, out in zip(request.vm_patches, outcomes):
        if isinstance(out, Exception):
            errors.append("VM %s/%s: %s" % (key[0], key[1], describe_api_error(out) if isinstance(out, KubeApiError)
                                            else out))
        else:
            request.written = True
    if errors:
        raise ModuleFailure("the apiserver refused: " + joined_errors(errors), errors, changed=request.written)
    try:
        request.existing = client.request("POST", objects.velero_path("backups", request.velero_namespace),
                                          body=backup_manifest(request))
        request.written = True
    except KubeApiError as err:
        raise ModuleFailure("the apiserver refused %s: %s" % (request.label, describe_api_error(err)),
                            [describe_api_error(err)], changed=request.written)


def backup_result(request, obj):
    obj = obj or {"metadata": {"name": request.name}, "spec": backup_manifest(request)["spec"]}
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    return {
        "name": request.name, "namespace": request.velero_namespace,
        "phase": status.get("phase") or "New",
        "storage_location": spec.get("storageLocation"), "ttl": spec.get("ttl"),
        "included_namespaces": spec.get("includedNamespaces") or [],
        "label_selector": spec.get("labelSelector"),
        "vms": ["%s/%s" % key for key in request.vms],
        "start_timestamp": status.get("startTimestamp"), "completion_timestamp": status.get("completionTimestamp"),
        "expiration": status.get("expiration"),
        "progress": status.get("progress") or {},
        "warnings": status.get("warnings") or 0, "errors": status.get("errors") or 0,
        "validation_errors": status.get("validationErrors") or [],
        "failure_reason": status.get("failureReason"),
    }


def deletion_manifest(request):
    """pkg/backup/delete_helpers.go NewDeleteBackupRequest, as `velero backup delete` makes it."""
    meta = request.existing["metadata"]
    return {"apiVersion": objects.API_VERSION, "kind": "DeleteBackupRequest",
            "metadata": {"generateName": request.name + "-", "namespace": request.velero_namespace,
                         "labels": {"velero.io/backup-name": objects.valid_label_name(request.name),
                                    "velero.io/backup-uid": meta.get("uid")}},
            "spec": {"backupName": request.name}}


def delete_backup(module, client, request, params):
    """state=absent: a DeleteBackupRequest, as `velero backup delete` makes one; Velero deletes the backup's files,
    the restores of it and the Backup, then the request. Refused before any write where Velero would refuse."""
    request.existing = objects.read_velero(client, "backups", request.velero_namespace, request.name)
    if request.existing is None:
        module.exit_json(changed=False, backup={"name": request.name, "namespace": request.velero_namespace,
                                                "phase": "absent"}, items=[])
    phase = objects.phase_of(request.existing)
    location = (request.existing.get("spec") or {}).get("storageLocation")
    problems = []
    if phase in objects.IN_PROGRESS_PHASES:
        problems.append("%s: state: the backup is still in progress (phase %s), Velero would not delete it"
                        % (request.label, phase))
    problem = objects.location_problem(client, request.velero_namespace, location, "storage_location")
    if problem and "no BackupStorageLocation" not in problem:
        problems.append("%s: %s, Velero would not delete the backup" % (request.label, problem))
    if problems:
        raise ModuleFailure(REFUSED + joined_errors(problems), problems, changed=False)
    path = objects.velero_path("deletebackuprequests", request.velero_namespace)
    try:
        client.request("POST", path, {"dryRun": "All"}, deletion_manifest(request))
    except KubeApiError as err:
        raise ModuleFailure("the apiserver refused the dry run of deleting %s, nothing was changed: %s"
                            % (request.label, describe_api_error(err)), [describe_api_error(err)], changed=False)
    result = {"changed": True, "backup": backup_result(request, request.existing), "items": []}
    if module._diff:
        result["diff"] = {"before": {"name": request.name, "phase": phase}, "after": {}}
    if module.check_mode:
        module.exit_json(**result)
    try:
        created = client.request("POST", path, body=deletion_manifest(request))
    except KubeApiError as err:
        raise ModuleFailure("the apiserver refused deleting %s: %s" % (request.label, describe_api_error(err)),
                            [describe_api_error(err)], changed=False)
    name = created["metadata"]["name"]
    result["deletion_request"] = name
    if params["wait"]:
        target = WaitTarget(request.velero_namespace, name,
                            lambda obj: obj is None or objects.phase_of(obj) == "Processed",
                            "Velero to delete the backup", lambda obj: "phase %s" % objects.phase_of(obj))
        try:
            final = wait_for(client, objects.API_VERSION, "deletebackuprequests", [target],
                             params["wait_timeout"])[(request.velero_namespace, name)]
        except WaitTimeout as err:
            raise ModuleFailure(str(err), [str(err)], **result)
        errors = ((final or {}).get("status") or {}).get("errors") or []
        if errors:
            raise ModuleFailure("Velero could not delete %s: %s" % (request.label, joined_errors(errors)), errors,
                                **dict((k, v) for k, v in result.items() if k != "errors"))
        result["backup"]["phase"] = "absent"
    module.exit_json(**result)


def run(module):
    params = dict(module.params)
    request = parse_request(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    if params.get("state") == "absent":
        delete_backup(module, client, request, params)
        return
    preflight(client, request, params)
    creating = request.existing is None
    if creating:
        dry_run(client, request, params)
    result = {"changed": creating}
    if module._diff:
        result["diff"] = {"before": {}, "after": backup_manifest(request)} if creating else {"before": {}, "after": {}}
    if module.check_mode:
        module.exit_json(backup=backup_result(request, request.existing), items=[], **result)
    if creating:
        write(client, request, params)
    final = request.existing
    if params["wait"] and objects.phase_of(final) not in objects.FINAL_PHASES:
        try:
            final = objects.wait_final(client, "backups", request.velero_namespace, [request.name],
                                       params["wait_timeout"], "the backup")[request.name]
        except WaitTimeout as err:
            raise ModuleFailure(str(err), [str(err)], changed=request.written, backup=backup_result(request, final))
    summary = backup_result(request, final)
    result.update(backup=summary, items=[], warnings=[], errors=[])
    phase = summary["phase"]
    if phase in ("Completed", "PartiallyFailed") and params["list_items"]:
        wanted = [("BackupResourceList", request.name)]
        if summary["warnings"] or summary["errors"]:
            wanted.append(("BackupResults", request.name))
        ca_cert = objects.location_ca_cert(client, request.velero_namespace, summary["storage_location"])
        files = objects.download(client, request.velero_namespace, wanted, params["wait_timeout"], ca_cert)
        result["items"] = objects.items_of(files[("BackupResourceList", request.name)])
        lines = objects.messages_of(files.get(("BackupResults", request.name)))
        result["warnings"], result["errors"] = lines["warnings"], lines["errors"]
    if phase in ("Failed", "FailedValidation", "PartiallyFailed"):
        problems = summary["validation_errors"] + result["errors"] + \
            ([summary["failure_reason"]] if summary["failure_reason"] else [])
        extra = dict((k, v) for k, v in result.items() if k != "errors")
        raise ModuleFailure("%s is %s: %s" % (request.label, phase, joined_errors(problems) or "see Velero's logs"),
                            problems, backup_errors=result["errors"], **extra)
    module.exit_json(**result)
