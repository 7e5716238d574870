# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""KubeVirt and CDI onto a cluster from their release operator manifests, then their CRs, then a wait.

Objects go on in three stages, because each stage needs the one before it on the server: namespaces
and CRDs; the rest of the operator manifests (which live in those namespaces); the KubeVirt and CDI
CRs (whose kinds those CRDs define). Each stage is planned with a server-side dry run and only what
changes is applied. In check mode the later stages cannot be dry-run where the earlier ones would first
create their namespace or CRD; such an object cannot exist yet, so it is predicted as a creation.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import time

from ansible_collections.palette.vmo.plugins.module_utils.kube import apply as kube_apply
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import module_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.manifest import (
    ManifestError, ResourceResolver, is_url, label, parse_manifest, read_manifest)
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, WaitTimeout, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.merge import deep_merge

KUBEVIRT_API = "kubevirt.io/v1"
CDI_API = "cdi.kubevirt.io/v1beta1"
CRD_API = "apiextensions.k8s.io/v1"
# The operator Deployment each release manifest must hold; its namespace is the install's namespace.
OPERATOR_DEPLOYMENTS = (("kubevirt_operator_manifest", "virt-operator"), ("cdi_operator_manifest", "cdi-operator"))
FIRST_STAGE_KINDS = ("Namespace", "CustomResourceDefinition")


def _unique(items):
    seen, out = set(), []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def load_operator_manifests(params):
    """{option: objects} for both operator manifests; fails before any write on a bad one."""
    loaded = {}
    for option, deployment in OPERATOR_DEPLOYMENTS:
        source = params[option]
        try:
            objects = parse_manifest(read_manifest(source, params["manifest_validate_certs"],
                                                   params.get("manifest_ca_cert")), source)
        except ManifestError as err:
            raise ModuleFailure("%s: %s" % (option, err))
        if not any(o["kind"] == "Deployment" and o["metadata"]["name"] == deployment for o in objects):
            raise ModuleFailure("%s: %s has no Deployment %s, so it is not the operator manifest it should be"
                                % (option, source, deployment))
        loaded[option] = objects
    return loaded


def operator_namespace(objects, deployment):
    return next(o["metadata"].get("namespace") for o in objects
                if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment)


def kubevirt_cr(params, namespace):
    developer = {"featureGates": _unique(params["feature_gates"]), "useEmulation": params["use_emulation"]}
    # Both strategies are non-pointer structs in KubeVirt's API, so its own CRs always carry them.
    spec = {"certificateRotateStrategy": {}, "workloadUpdateStrategy": {},
            "configuration": {"developerConfiguration": developer}}
    spec = deep_merge(spec, params.get("kubevirt_spec") or {})
    spec["configuration"]["developerConfiguration"].update(developer)  # the options win over kubevirt_spec
    return {"apiVersion": KUBEVIRT_API, "kind": "KubeVirt",
            "metadata": {"name": params["kubevirt_name"], "namespace": namespace}, "spec": spec}


def cdi_cr(params):
    spec = deep_merge({"config": {}}, params.get("cdi_spec") or {})
    if params["cdi_feature_gates"]:
        spec["config"]["featureGates"] = _unique(params["cdi_feature_gates"])
    return {"apiVersion": CDI_API, "kind": "CDI", "metadata": {"name": params["cdi_name"]}, "spec": spec}


def namespace_object(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def stages(params, manifests):
    """The three stages of objects, in order; a name appears once (the last definition wins)."""
    kubevirt_ns = operator_namespace(manifests["kubevirt_operator_manifest"], "virt-operator")
    operators = manifests["kubevirt_operator_manifest"] + manifests["cdi_operator_manifest"]
    first = [o for o in operators if o["kind"] in FIRST_STAGE_KINDS]
    first += [namespace_object(name) for name in params["namespaces"]]
    second = [o for o in operators if o["kind"] not in FIRST_STAGE_KINDS]
    third = [kubevirt_cr(params, kubevirt_ns), cdi_cr(params)]

    def deduplicated(objects):
        by_label = {}
        for obj in objects:
            by_label[label(obj) + "@" + obj["apiVersion"]] = obj
        return list(by_label.values())

    return [deduplicated(first), deduplicated(second), third]


# -- plan and apply -------------------------------------------------------------------------------

def _namespace_missing(client, obj, cache):
    namespace = (obj.get("metadata") or {}).get("namespace")
    if not namespace:
        return False
    if namespace not in cache:
        cache[namespace] = client.get_or_none(object_path("v1", "namespaces", namespace)) is None
    return cache[namespace]


def plan_stage(client, resolver, objects, params, namespaces_missing):
    """PlannedObjects of one stage; fails naming every object the dry run rejects."""
    planned, asking = [], []
    for obj in objects:
        desired = copy.deepcopy(obj)
        path = resolver.path(desired)
        item = kube_apply.PlannedObject(label(desired), path, desired, None)
        planned.append(item)
        if not resolver.served(desired) or _namespace_missing(client, desired, namespaces_missing):
            item.after, item._action = desired, "create"  # check mode only: its CRD or namespace comes first
            continue
        item.before = client.get_or_none(path)
        asking.append(item)
    kube_apply.plan_apply(client, asking, params["field_manager"], params["force"], params["concurrency"])
    errors = ["%s: %s" % (item.label, item.error) for item in planned if item.error]
    if errors:
        raise ModuleFailure("the apiserver rejected the plan in a dry run: " + "; ".join(errors))
    for item in planned:
        if item.desired["kind"] == "CustomResourceDefinition":
            resolver.learn_crd(item.desired)
    return planned


def apply_stage(client, planned, params):
    failed = kube_apply.apply_planned(client, planned, params["field_manager"], params["force"],
                                      params["concurrency"])
    if failed:
        raise ModuleFailure("applying failed: " + "; ".join("%s: %s" % (item.label, item.error) for item in failed))


# -- waits ----------------------------------------------------------------------------------------

def _conditions(obj):
    return ", ".join("%s=%s%s" % (c.get("type"), c.get("status"), " (%s)" % c["message"] if c.get("message") else "")
                     for c in (obj.get("status") or {}).get("conditions") or [])


def _describe(obj):
    if obj is None:
        return "absent"
    status = obj.get("status") or {}
    if not status:
        return "no status yet (is its operator running?)"
    text = "phase %s" % (status.get("phase") or "unset")
    if status.get("observedGeneration") not in (None, obj["metadata"].get("generation")):
        text += " for generation %s, not yet for %s" % (status["observedGeneration"], obj["metadata"].get("generation"))
    return text + ("; " + _conditions(obj) if status.get("conditions") else "")


def _established(obj):
    return obj is not None and any(c.get("type") == "Established" and c.get("status") == "True"
                                   for c in (obj.get("status") or {}).get("conditions") or [])


def _deployed(obj):
    if obj is None:
        return False
    status = obj.get("status") or {}
    observed = status.get("observedGeneration")
    current = observed is None or observed == obj["metadata"].get("generation")
    return status.get("phase") == "Deployed" and current


def wait_established(client, crds, deadline):
    targets = [WaitTarget(None, crd["metadata"]["name"], _established, "Established",
                          lambda o: "absent" if o is None else _conditions(o) or "no conditions") for crd in crds]
    _wait(client, CRD_API, "customresourcedefinitions", targets, deadline, "CRD")


def wait_served(resolver, crds, deadline):
    """An Established CRD reaches discovery a moment later; the CRs of the next stage need it there."""
    kinds = [{"apiVersion": "%s/%s" % (crd["spec"]["group"], version["name"]), "kind": crd["spec"]["names"]["kind"]}
             for crd in crds for version in crd["spec"].get("versions") or [] if version.get("served", True)]
    while True:
        for kind in kinds:
            resolver.forget(kind["apiVersion"])
        pending = [kind for kind in kinds if not resolver.served(kind)]
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise ModuleFailure("timed out waiting for the apiserver to serve %s"
                                % ", ".join("%s %s" % (k["apiVersion"], k["kind"]) for k in pending))
        time.sleep(0.2)


def wait_deployed(client, kubevirt, cdi, deadline):
    _wait(client, KUBEVIRT_API, "kubevirts",
          [WaitTarget(kubevirt["metadata"]["namespace"], kubevirt["metadata"]["name"], _deployed, "phase Deployed",
                      _describe)], deadline, "KubeVirt")
    _wait(client, CDI_API, "cdis", [WaitTarget(None, cdi["metadata"]["name"], _deployed, "phase Deployed", _describe)],
          deadline, "CDI")


def _wait(client, api_version, plural, targets, deadline, what):
    try:
        wait_for(client, api_version, plural, targets, max(1, deadline - time.monotonic()))
    except WaitTimeout as err:
        raise ModuleFailure("%s: %s" % (what, err))


# -- results --------------------------------------------------------------------------------------

def _diff_view(obj):
    """CRDs are shown by their names and versions: their schemas run to megabytes."""
    view = kube_apply.comparable(obj)
    if view and obj.get("kind") == "CustomResourceDefinition":
        spec = obj.get("spec") or {}
        view = dict(view, spec={"group": spec.get("group"), "names": spec.get("names"), "scope": spec.get("scope"),
                                "versions": [v.get("name") for v in spec.get("versions") or []]})
    return view


def object_result(item):
    metadata = item.desired["metadata"]
    return {"kind": item.desired["kind"], "name": metadata["name"], "namespace": metadata.get("namespace"),
            "action": item.action}


def facts(client, kubevirt, cdi):
    live_kv = client.get_or_none(object_path(KUBEVIRT_API, "kubevirts", kubevirt["metadata"]["name"],
                                             kubevirt["metadata"]["namespace"])) if _served(client, KUBEVIRT_API) else None
    live_cdi = client.get_or_none(object_path(CDI_API, "cdis", cdi["metadata"]["name"])) \
        if _served(client, CDI_API) else None
    developer = kubevirt["spec"]["configuration"]["developerConfiguration"]
    return {
        "kubevirt": {"name": kubevirt["metadata"]["name"], "namespace": kubevirt["metadata"]["namespace"],
                     "phase": ((live_kv or {}).get("status") or {}).get("phase"),
                     "version": ((live_kv or {}).get("status") or {}).get("observedKubeVirtVersion"),
                     "feature_gates": developer["featureGates"], "use_emulation": developer["useEmulation"]},
        "cdi": {"name": cdi["metadata"]["name"], "phase": ((live_cdi or {}).get("status") or {}).get("phase"),
                "version": ((live_cdi or {}).get("status") or {}).get("observedVersion")},
    }


def _served(client, api_version):
    try:
        client.get("/apis/%s" % api_version)
        return True
    except KubeApiError as err:
        if err.status == 404:
            return False
        raise


# -- the task -------------------------------------------------------------------------------------

def failure_after_writes(err, planned):
    """`err` with `changed: true` and the objects applied so far, when anything was applied before it."""
    written = [item for item in planned if item.result is not None]
    if not written:
        return err
    result = dict(err.result, changed=True, objects=[object_result(item) for item in written])
    return ModuleFailure(str(err), err.errors, **result)


def converge(client, params, check, manifests, deadline):
    """Plans and (unless `check`) applies the stages in order; returns (every PlannedObject, KubeVirt CR, CDI CR).

    A stage's plan can only be made once the stage before it is on the server: the stages run one by one.
    """
    resolver = ResourceResolver(client)
    planned_all, namespaces_missing = [], {}
    kubevirt = cdi = None
    try:
        for index, objects in enumerate(stages(params, manifests)):
            planned = plan_stage(client, resolver, objects, params, namespaces_missing)
            planned_all.extend(planned)
            if index == 2:
                kubevirt, cdi = objects
            if check:
                continue
            apply_stage(client, planned, params)
            if index == 0:
                crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
                wait_established(client, crds, deadline)
                wait_served(resolver, crds, deadline)
                namespaces_missing.clear()
        if params["wait"] and not check:
            wait_deployed(client, kubevirt, cdi, deadline)
    except ModuleFailure as err:
        raise failure_after_writes(err, planned_all)
    return planned_all, kubevirt, cdi


def install(module, client, manifests):
    params = module.params
    deadline = time.monotonic() + params["wait_timeout"]
    planned_all, kubevirt, cdi = converge(client, params, module.check_mode, manifests, deadline)
    changed_items = [item for item in planned_all if item.action in ("create", "update")]
    result = dict(changed=bool(changed_items), objects=[object_result(item) for item in planned_all])
    result.update(facts(client, kubevirt, cdi))
    if module._diff:
        result["diff"] = [{"before_header": item.label, "after_header": item.label,
                           "before": _diff_view(item.before) or {}, "after": _diff_view(item.after) or {}}
                          for item in changed_items]
    return result


def run(module):
    bounds = bound_errors(module.params)
    if bounds:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(bounds), bounds)
    for option in ("kubevirt_operator_manifest", "cdi_operator_manifest"):
        source = module.params[option]
        if not is_url(source) and "://" in source:
            raise ModuleFailure("%s: %s: only http and https URLs, or local paths, are supported" % (option, source))
    manifests = load_operator_manifests(module.params)
    client = KubeClient(module_connection(module), concurrency=module.params["concurrency"])
    module.exit_json(**install(module, client, manifests))
