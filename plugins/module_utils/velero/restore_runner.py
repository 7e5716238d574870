# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""velero_restore, end to end: check everything, dry run, create the Restore, one wait, then read what was restored.

A restore is named: a Restore that exists under the name with the same spec is the task's own (changed=false,
waited for if still running); one with another spec is refused. Before anything is written the backup must exist
and be restorable (Completed or PartiallyFailed), every namespace mapping must name a namespace the backup holds
and a valid target, and no two namespaces may map to one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import describe_api_error
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTimeout
from ansible_collections.palette.vmo.plugins.module_utils.velero import objects
from ansible_collections.palette.vmo.plugins.module_utils.velero.objects import INVALID_INPUT, REFUSED

# kubevirt-velero-plugin pkg/util/util.go: labels on the Restore that its VM restore action reads
RUN_STRATEGY_LABEL = "velero.kubevirt.io/restore-run-strategy"
CLEAR_MAC_LABEL = "velero.kubevirt.io/clear-mac-address"
MANAGED_BY = {"app.kubernetes.io/managed-by": "palette.vmo"}


class RestoreRequest(object):
    def __init__(self, params):
        self.name = params["name"]
        self.velero_namespace = params["velero_namespace"]
        self.backup = params["backup"]
        self.label = "Restore %s/%s" % (self.velero_namespace, self.name)
        self.spec, self.labels = {}, dict(MANAGED_BY)
        self.existing = None
        self.written = False


def parse_request(params):
    request = RestoreRequest(params)
    label, errors = request.label, list(bound_errors(params))
    if not objects.valid_name(request.name):
        errors.append("%s: name: %r is not a valid name (lowercase letters, digits, '-' and '.')" % (label, request.name))
    if not objects.valid_name(request.backup):
        errors.append("%s: backup: %r is not a valid backup name" % (label, request.backup))
    if not objects.valid_namespace(request.velero_namespace):
        errors.append("%s: velero_namespace: %r is not a valid namespace name" % (label, request.velero_namespace))
    mapping = params.get("namespace_mapping") or {}
    targets = {}
    for source, target in sorted(mapping.items()):
        if not objects.valid_namespace(source):
            errors.append("%s: namespace_mapping: %r is not a valid namespace name" % (label, source))
        if not isinstance(target, str) or not objects.valid_namespace(target):
            errors.append("%s: namespace_mapping.%s: %r is not a valid namespace name" % (label, source, target))
            continue
        if target in targets:
            errors.append("%s: namespace_mapping.%s: %r is also the target of %r; one namespace per target"
                          % (label, source, target, targets[target]))
        targets[target] = source
    for namespace in params.get("included_namespaces") or []:
        if namespace != "*" and not objects.valid_namespace(namespace.replace("*", "x").replace("?", "x")):
            errors.append("%s: included_namespaces: %r is not a valid namespace name" % (label, namespace))
    # restore_controller.go validateAndComplete: non-restorable resources, then ValidateIncludesExcludes of the
    # resource lists (the non-restorable ones appended to the excludes) and of the namespace lists
    included = params.get("included_resources") or []
    for resource in included:
        if resource in objects.NON_RESTORABLE:
            errors.append("%s: included_resources: %s are non-restorable resources" % (label, resource))
    errors += ["%s: %s" % (label, e) for e in objects.includes_excludes_errors(
        "included_resources", [r for r in included if r not in objects.NON_RESTORABLE],
        params.get("excluded_resources"), "excluded_resources")]
    errors += ["%s: %s" % (label, e) for e in objects.includes_excludes_errors(
        "included_namespaces", params.get("included_namespaces"), [], "excluded_namespaces")]
    if errors:
        raise ModuleFailure(INVALID_INPUT + joined_errors(errors), errors, changed=False)
    request.spec = {
        "backupName": request.backup,
        "namespaceMapping": {k: str(v) for k, v in mapping.items()} or None,
        "includedNamespaces": params.get("included_namespaces"),
        "includedResources": params.get("included_resources"),
        "excludedResources": params.get("excluded_resources"),
        "existingResourcePolicy": params.get("existing_resource_policy"),
        "restorePVs": params.get("restore_pvs"),
    }
    if params.get("vm_run_strategy"):
        request.labels[RUN_STRATEGY_LABEL] = params["vm_run_strategy"]
    if params.get("clear_mac_addresses"):
        request.labels[CLEAR_MAC_LABEL] = "true"
    return request


def restore_manifest(request):
    return {"apiVersion": objects.API_VERSION, "kind": "Restore",
            "metadata": {"name": request.name, "namespace": request.velero_namespace, "labels": dict(request.labels)},
            "spec": {k: v for k, v in request.spec.items() if v is not None}}


def _backup_namespaces(backup):
    """The namespaces a backup holds, when its spec names them plainly (no globs, not all)."""
    spec = backup.get("spec") or {}
    names = spec.get("includedNamespaces") or ["*"]
    if any("*" in n or "?" in n for n in names):
        return None
    return set(names) - set(spec.get("excludedNamespaces") or [])


def preflight(client, request):
    errors = []
    request.existing = objects.read_velero(client, "restores", request.velero_namespace, request.name)
    if request.existing is not None:
        existing_labels = request.existing["metadata"].get("labels") or {}
        differences = objects.spec_differences(request.existing.get("spec") or {}, request.spec,
                                               added={"excludedResources": objects.NON_RESTORABLE})
        differences += ["label %s: %r, not %r" % (key, existing_labels.get(key), value)
                        for key, value in sorted(request.labels.items())
                        if key != "app.kubernetes.io/managed-by" and existing_labels.get(key) != value]
        if differences:
            raise ModuleFailure(REFUSED + "%s: exists with another spec (%s); a restore never changes, give a new name"
                                % (request.label, "; ".join(differences)), differences, changed=False)
        return
    backup = objects.read_velero(client, "backups", request.velero_namespace, request.backup)
    if backup is None:
        errors.append("%s: backup: no Backup %r in namespace %s"
                      % (request.label, request.backup, request.velero_namespace))
    else:
        phase = objects.phase_of(backup)
        if phase not in objects.RESTORABLE_PHASES:
            errors.append("%s: backup: Backup %r is %s, a restore needs it Completed (or PartiallyFailed)"
                          % (request.label, request.backup, phase))
        held = _backup_namespaces(backup)
        if held is not None:
            for source in sorted(request.spec.get("namespaceMapping") or {}):
                if source not in held:
                    errors.append("%s: namespace_mapping.%s: backup %r holds no namespace %r (it holds %s)"
                                  % (request.label, source, request.backup, source, ", ".join(sorted(held))))
    if errors:
        raise ModuleFailure(REFUSED + joined_errors(errors), errors, changed=False)


def restore_result(request, obj):
    obj = obj or {"metadata": {"name": request.name}, "spec": restore_manifest(request)["spec"]}
    status, spec = obj.get("status") or {}, obj.get("spec") or {}
    return {
        "name": request.name, "namespace": request.velero_namespace, "backup": spec.get("backupName"),
        "phase": status.get("phase") or "New",
        "namespace_mapping": spec.get("namespaceMapping") or {},
        "existing_resource_policy": spec.get("existingResourcePolicy"),
        "start_timestamp": status.get("startTimestamp"), "completion_timestamp": status.get("completionTimestamp"),
        "progress": status.get("progress") or {},
        "warnings": status.get("warnings") or 0, "errors": status.get("errors") or 0,
        "validation_errors": status.get("validationErrors") or [],
        "failure_reason": status.get("failureReason"),
    }


def run(module):
    params = dict(module.params)
    request = parse_request(params)
    client = KubeClient(module_connection(module), concurrency=params["concurrency"])
    preflight(client, request)
    creating = request.existing is None
    path = objects.velero_path("restores", request.velero_namespace)
    if creating:
        try:
            client.request("POST", path, {"dryRun": "All"}, restore_manifest(request))
        except KubeApiError as err:
            raise ModuleFailure("the apiserver refused the dry run of %s, nothing was changed: %s"
                                % (request.label, describe_api_error(err)), [describe_api_error(err)], changed=False)
    result = {"changed": creating}
    if module._diff:
        result["diff"] = {"before": {}, "after": restore_manifest(request) if creating else {}}
    if module.check_mode:
        module.exit_json(restore=restore_result(request, request.existing), items=[], **result)
    if creating:
        try:
            request.existing = client.request("POST", path, body=restore_manifest(request))
        except KubeApiError as err:
            raise ModuleFailure("the apiserver refused %s: %s" % (request.label, describe_api_error(err)),
                                [describe_api_error(err)], changed=False)
        request.written = True
    final = request.existing
    if params["wait"] and objects.phase_of(final) not in objects.FINAL_PHASES:
        try:
            final = objects.wait_final(client, "restores", request.velero_namespace, [request.name],
                                       params["wait_timeout"], "the restore")[request.name]
        except WaitTimeout as err:
            raise ModuleFailure(str(err), [str(err)], changed=request.written, restore=restore_result(request, final))
    summary = restore_result(request, final)
    result.update(restore=summary, items=[], warnings=[])
    restore_errors = []
    phase = summary["phase"]
    if phase in ("Completed", "PartiallyFailed") and params["list_items"]:
        wanted = [("RestoreResourceList", request.name)]
        if summary["warnings"] or summary["errors"]:
            wanted.append(("RestoreResults", request.name))
        backup = objects.read_velero(client, "backups", request.velero_namespace, request.backup) or {}
        ca_cert = objects.location_ca_cert(client, request.velero_namespace,
                                           (backup.get("spec") or {}).get("storageLocation"))
        files = objects.download(client, request.velero_namespace, wanted, params["wait_timeout"], ca_cert)
        result["items"] = objects.items_of(files[("RestoreResourceList", request.name)])
        lines = objects.messages_of(files.get(("RestoreResults", request.name)))
        result["warnings"], restore_errors = lines["warnings"], lines["errors"]
    if phase in ("Failed", "FailedValidation", "PartiallyFailed"):
        problems = summary["validation_errors"] + restore_errors + \
            ([summary["failure_reason"]] if summary["failure_reason"] else [])
        raise ModuleFailure("%s is %s: %s" % (request.label, phase, joined_errors(problems) or "see Velero's logs"),
                            problems, **result)
    module.exit_json(**result)
