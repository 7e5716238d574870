# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""vmo_profile, end to end: check the input, read what Palette has, plan, then write and wait.

Everything that can be wrong with the task (options, values, manifests, the pack tag, the registry,
the project, the clusters) is found by reading only; the first write comes after the whole plan is
known, so a failed task leaves Palette as it was. Check mode stops after the plan.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import HAS_YAML
from ansible_collections.palette.vmo.plugins.module_utils.palette import attach as palette_attach
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
    TENANT, PaletteClient, PaletteConfigError, PaletteError)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.pack_values import (
    ValuesError, desired_values, feature_gates, parse_yaml, validate_conveniences)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_plan import (
    changed_packs, diff_text, latest_version, manifest_layers, next_version, pack_entities, parse_version,
    profile_labels, published_pack, version_key, vmo_pack)

CONVENIENCES = ("feature_gates_extra", "cdi_feature_gates_extra", "vm_namespaces", "golden_images_namespace",
                "use_emulation")
PROFILE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
PRESENT_ONLY = ("pack_tag", "values", "manifests") + CONVENIENCES


# -- input --------------------------------------------------------------------------------------------

def check_input(params):
    """The parsed overrides and manifest layers, or a ModuleFailure listing every problem."""
    bounds = bound_errors(params)
    if bounds:
        # Ranges first and alone, as Ansible's own argument checks come before the module's.
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(bounds), bounds)
    errors = []

    def note(call, *args):
        try:
            return call(*args)
        except ValuesError as err:
            errors.append(str(err))

    if not PROFILE_NAME.match(params.get("name") or ""):
        errors.append("name: %r is not a profile name (1-63 lower case letters, digits or '-', starting and ending "
                      "with a letter or digit)" % params.get("name"))
    if params.get("version") is not None:
        note(parse_version, params["version"])
    if params.get("scope") == "project" and not params.get("palette_project"):
        errors.append("scope: project scope needs palette_project (or PALETTE_PROJECT)")
    overrides, layers = {}, []
    if params["state"] == "absent":
        for option in PRESENT_ONLY:
            if params.get(option) not in (None, [], {}, ""):
                errors.append("%s: only applies with state=present" % option)
    else:
        overrides = note(parse_yaml, params.get("values"), "values") or {}
        errors.extend(validate_conveniences(params))
        layers, layer_errors = manifest_layers(params.get("manifests"))
        errors.extend(layer_errors)
    if errors:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(errors), errors)
    return overrides, layers


# -- reads --------------------------------------------------------------------------------------------

def read_pack_defaults(client, registry_uid, registry_label, pack_name, tag):
    """(pack uid, default values text) of the pack at `tag` in the registry."""
    try:
        entity = client.get("/v1/packs/%s/registries/%s" % (quote(pack_name), quote(registry_uid)),
                            query={"cloudType": "all"}) or {}
    except PaletteError as err:
        if err.status == 404:
            raise PaletteConfigError("pack_name: registry %r has no pack %r" % (registry_label, pack_name))
        raise
    tags = entity.get("tags") or []
    match = [t for t in tags if tag in (t.get("tag"), t.get("version"))]
    if not match:
        known = sorted(set(t.get("tag") or t.get("version") for t in tags))
        raise PaletteConfigError("pack_tag: %s has no tag %r in registry %r (tags: %s)"
                                 % (pack_name, tag, registry_label, ", ".join(known) or "none"))
    pack_uid = match[0].get("packUid")
    for values in entity.get("packValues") or []:
        if values.get("packUid") == pack_uid:
            return pack_uid, values.get("values") or ""
    pack = client.get("/v1/packs/%s" % quote(pack_uid)) or {}
    values = [v for v in pack.get("packValues") or [] if v.get("packUid") in (pack_uid, None)] or \
        pack.get("packValues") or [{}]
    return pack_uid, values[0].get("values") or ""


def profile_versions(client, name, scope):
    """{version: uid} of the profiles called `name` in the scope.

    Palette's paged profile search, narrowed to names that begin with `name` (the exact name is
    matched here), in the scope only: a project also sees the tenant's profiles.
    """
    wanted_scope = "tenant" if scope == TENANT else "project"
    search = {"filter": {"profileName": {"beginsWith": name}, "scope": wanted_scope, "profileType": ["add-on"]},
              "sort": []}
    versions = {}
    for item in client.list_all("/v1/dashboard/clusterprofiles", method="POST", body=search, scope=scope):
        meta, spec = item.get("metadata") or {}, item.get("specSummary") or item.get("spec") or {}
        if (meta.get("annotations") or {}).get("scope", wanted_scope) != wanted_scope:
            continue
        if meta.get("name") == name and meta.get("uid"):
            versions[spec.get("version") or "1.0.0"] = meta["uid"]
    return versions


def read_profile(client, uid, scope):
    """(profile document, comparable published packs)."""
    profile = client.get("/v1/clusterprofiles/%s" % quote(uid), scope=scope) or {}
    published = (profile.get("spec") or {}).get("published") or {}
    if not (profile.get("status") or {}).get("isPublished", bool(published.get("packs"))):
        return profile, []  # a draft left by an interrupted run: everything is to be written again
    packs = []
    for ref in published.get("packs") or []:
        packs.append(published_pack(ref, manifest_contents(client, uid, ref, scope)))
    return profile, packs


def manifest_contents(client, profile_uid, pack_ref, scope):
    contents = {}
    for ref in pack_ref.get("manifests") or []:
        if ref.get("content") is not None:
            contents[ref.get("name")] = ref["content"]
            continue
        entity = client.get("/v1/clusterprofiles/%s/packs/%s/manifests/%s"
                            % (quote(profile_uid), quote(pack_ref["name"]), quote(ref.get("uid") or "")),
                            scope=scope) or {}
        spec = entity.get("spec") or {}
        contents[ref.get("name")] = ((spec.get("published") or spec.get("draft") or {}).get("content")
                                     or entity.get("content") or "")
    return contents


# -- plan -----------------------------------------------------------------------------------------------

def metadata_changes(profile, description, labels):
    """The metadata to PATCH, or None when the profile already carries the description and labels."""
    meta = profile.get("metadata") or {}
    annotations, current_labels = dict(meta.get("annotations") or {}), dict(meta.get("labels") or {})
    wanted_annotations = dict(annotations)
    if description is not None:
        wanted_annotations["description"] = description
    wanted_labels = dict(current_labels, **labels)
    if wanted_annotations == annotations and wanted_labels == current_labels:
        return None
    return {"name": meta.get("name"), "annotations": wanted_annotations, "labels": wanted_labels}


def choose_target(params, versions):
    """(version to hold the desired packs, uid of that version or None, uid to clone a new one from)."""
    latest = versions[latest_version(versions)] if versions else None
    if params.get("version"):
        version = params["version"]
        return version, versions.get(version), (None if version in versions else latest)
    if versions:
        # The newest version is the one in use: in_place changes it, new_version clones it when it differs.
        version = latest_version(versions)
        return version, versions[version], None
    return "1.0.0", None, None


class Plan(object):
    def __init__(self):
        self.actions, self.changed_packs, self.current, self.profile = [], [], [], {}
        self.metadata = None


def plan_profile(client, params, scope, desired):
    plan = Plan()
    versions = profile_versions(client, params["name"], scope)
    plan.version, plan.uid, plan.clone_from = choose_target(params, versions)
    if plan.uid is None:
        plan.actions.append("clone" if plan.clone_from else "create")
        plan.changed_packs = [p["name"] for p in desired]
        return plan
    plan.profile, plan.current = read_profile(client, plan.uid, scope)
    plan.changed_packs = changed_packs(desired, plan.current)
    labels = profile_labels(params.get("tags"), params.get("labels"))
    plan.metadata = metadata_changes(plan.profile, params.get("description"), labels)
    if plan.changed_packs and params["update_mode"] == "new_version":
        if params.get("version"):
            raise ModuleFailure("version: %s %s is published with other packs (%s) and update_mode=new_version "
                                "never changes a published version: give a new version or omit it"
                                % (params["name"], plan.version, ", ".join(plan.changed_packs)))
        plan.clone_from, plan.uid = plan.uid, None
        plan.version = next_version(versions.keys())
        plan.actions.append("clone")
    elif plan.changed_packs:
        plan.actions.append("update")
    if plan.metadata:
        plan.actions.append("update_metadata")
    return plan


# -- writes ---------------------------------------------------------------------------------------------

def create_or_adopt(client, name, version, scope, post):
    """(uid, adopted) of the profile version `post` makes.

    After ANY failure of the create or clone, the version is looked up by name and version and adopted when
    it is there, as Palette's Terraform provider does (resource_cluster_profile.go, resourceClusterProfileCreate:
    the create's error is not inspected). The plan found no such version, so one that is there now was made
    by this very call whose answer was lost (a dropped connection, retried): Palette's published API
    documents only 201 for both calls and does not say what a duplicate gets (a 409, a 400 or a 500 are all
    seen), so the status cannot tell. When the lookup finds nothing, or fails, Palette's own error stands.
    """
    try:
        return post()["uid"], False
    except ModuleFailure as failure:
        original = failure
    try:
        uid = profile_versions(client, name, scope).get(version)
    except ModuleFailure:
        uid = None
    if uid is None:
        raise original
    return uid, True


def write_profile(client, params, scope, plan, desired):
    labels = profile_labels(params.get("tags"), params.get("labels"))
    annotations = {"description": params["description"]} if params.get("description") is not None else {}
    if plan.uid is None and plan.clone_from is None:
        body = {"metadata": {"name": params["name"], "annotations": annotations, "labels": labels},
                "spec": {"version": plan.version, "template": {"cloudType": "all", "type": "add-on",
                                                               "packs": pack_entities(desired, [])}}}
        plan.uid, adopted = create_or_adopt(
            client, params["name"], plan.version, scope,
            lambda: client.post("/v1/clusterprofiles", body, query={"publish": "true"}, scope=scope))
        if not adopted:
            return
        plan.profile, plan.current = read_profile(client, plan.uid, scope)
        plan.actions.append("update")  # the adopted version gets the desired packs below
    if plan.uid is None:
        target = {"scope": "tenant" if scope == TENANT else "project"}
        if scope != TENANT:
            target["projectUid"] = client.project_uid
        clone = {"metadata": {"name": params["name"], "version": plan.version, "target": target}}
        plan.uid, _adopted = create_or_adopt(
            client, params["name"], plan.version, scope,
            lambda: client.post("/v1/clusterprofiles/%s/clone" % quote(plan.clone_from), clone, scope=scope))
        plan.profile, plan.current = read_profile(client, plan.uid, scope)
        plan.metadata = metadata_changes(plan.profile, params.get("description"), labels)
    path = "/v1/clusterprofiles/%s" % quote(plan.uid)
    if "update" in plan.actions or "clone" in plan.actions:
        client.put(path, {"metadata": {"name": params["name"], "uid": plan.uid},
                          "spec": {"version": plan.version,
                                   "template": {"type": "add-on", "packs": pack_entities(desired, plan.current)}}},
                   scope=scope)
    if plan.metadata:
        client.patch(path + "/metadata", {"metadata": plan.metadata, "spec": {"version": plan.version}}, scope=scope)
    if "update" in plan.actions or "clone" in plan.actions:
        client.patch(path + "/publish", scope=scope)


# -- the task -------------------------------------------------------------------------------------------

def desired_packs(client, params, overrides, layers):
    registry_label = params.get("registry_uid") or params["registry_name"]
    registry_uid = params.get("registry_uid") or client.registry_uid(params["registry_name"])
    pack_uid, defaults_text = read_pack_defaults(client, registry_uid, registry_label, params["pack_name"],
                                                 params["pack_tag"])
    defaults = parse_yaml(defaults_text, "default values of %s %s" % (params["pack_name"], params["pack_tag"]))
    options = {key: params.get(key) for key in CONVENIENCES}
    values, layout = desired_values(defaults, overrides, options)
    pack = vmo_pack(params["pack_tag"], pack_uid, registry_uid, values)
    pack["name"] = params["pack_name"]
    if values == defaults:
        pack["values_text"] = defaults_text  # keep the pack's own comments when nothing is overridden
    return [pack] + layers, layout


def resolve_clusters(client, names):
    clusters, errors = {}, []
    for name in names or []:
        try:
            clusters[client.cluster_uid(name)] = name
        except PaletteConfigError as err:
            errors.append("clusters: %s" % err)
    if errors:
        raise ModuleFailure("invalid input, nothing was changed: " + "; ".join(errors), errors)
    return clusters


def run_present(module, client, scope, overrides, layers, result):
    params = module.params
    desired, layout = desired_packs(client, params, overrides, layers)
    clusters = resolve_clusters(client, params.get("clusters"))
    plan = plan_profile(client, params, scope, desired)
    writes_packs = bool(set(plan.actions) & {"create", "clone", "update"})
    result.update(version=plan.version, uid=plan.uid, pack_tag=params["pack_tag"], layout=layout,
                  values=desired[0]["values"],
                  feature_gates=feature_gates(desired[0]["values"]), actions=list(plan.actions),
                  changed_packs=plan.changed_packs if writes_packs else [])
    if writes_packs:
        result["diff"] = {"before": diff_text(params["name"], plan.version if plan.uid else None, plan.current),
                          "after": diff_text(params["name"], plan.version, desired),
                          "before_header": "%s (published)" % params["name"],
                          "after_header": "%s %s" % (params["name"], plan.version)}
    cluster_plans = plan_clusters(client, clusters, plan, params["name"])
    result["clusters"] = [{key: entry[key] for key in ("name", "uid", "action")} for entry in cluster_plans]
    result["changed"] = bool(plan.actions) or any(entry["action"] != "none" for entry in cluster_plans)
    if module.check_mode:
        return
    if plan.actions:
        write_profile(client, params, scope, plan, desired)
        result["uid"] = plan.uid
    # What the clusters list for a profile applied again before the PATCH: Palette goes on listing it for a while.
    earlier = palette_attach.packs_before_reapply(
        client, [entry["uid"] for entry in cluster_plans if entry["action"] == "reapply"], plan.uid) \
        if params["wait"] else {}
    for entry in cluster_plans:
        if entry["action"] != "none":
            palette_attach.attach(client, entry["uid"], plan.uid, replaces=entry["replaces"],
                                  reapply=entry["action"] == "reapply")
    if clusters and params["wait"]:
        conditions = palette_attach.wait_for_packs(client, clusters, plan.uid, [p["name"] for p in desired],
                                                   params["wait_timeout"], params["poll_interval"], earlier=earlier)
        for entry in result["clusters"]:
            entry["packs"] = conditions.get(entry["uid"], {})


def plan_clusters(client, clusters, plan, name):
    """For each cluster of the task: its uid, name, action, and the uid of the version it replaces."""
    reapply = "update" in plan.actions
    planned = []
    for uid, cluster_name in clusters.items():
        attached = palette_attach.attached_profiles(client, uid)
        action, replaces = palette_attach.plan_attach(attached, plan.uid, name, reapply=reapply)
        planned.append({"uid": uid, "name": cluster_name, "action": action, "replaces": replaces})
    return planned


def refuse_versions_in_use(client, name, versions, detaching, scope):
    """Fails before any delete when a version is attached to a cluster the task does not detach it from:
    Palette would refuse that delete with a 409 after the other versions were already gone."""
    in_use = []
    for version, uid in sorted(versions.items()):
        status = (client.get("/v1/clusterprofiles/%s" % quote(uid), scope=scope) or {}).get("status") or {}
        others = sorted(set(status.get("inUseClusterUids") or []) - detaching)
        if others:
            in_use.append("%s %s is attached to cluster %s" % (name, version, ", ".join(others)))
    if in_use:
        raise ModuleFailure("nothing was deleted: %s; add those clusters to clusters to detach it first"
                            % "; ".join(in_use), errors=in_use)


def run_absent(module, client, scope, result):
    params = module.params
    versions = profile_versions(client, params["name"], scope)
    if params.get("version"):
        versions = {v: u for v, u in versions.items() if v == params["version"]}
    clusters = resolve_clusters(client, params.get("clusters"))
    detaching = []
    for uid, cluster_name in clusters.items():
        attached = palette_attach.attached_profiles(client, uid)
        doomed = sorted(set(attached) & set(versions.values()))
        if doomed:
            detaching.append((uid, cluster_name, doomed))
    refuse_versions_in_use(client, params["name"], versions, set(clusters), scope)
    result.update(actions=["delete"] if versions else [], versions=sorted(versions, key=version_key),
                  clusters=[{"name": n, "uid": u, "action": "detach"} for u, n, _d in detaching],
                  changed=bool(versions) or bool(detaching))
    if versions:
        result["diff"] = {"before": "\n".join("%s %s" % (params["name"], v) for v in result["versions"]) + "\n",
                          "after": ""}
    if module.check_mode:
        return
    for uid, _cluster_name, doomed in detaching:
        palette_attach.detach(client, uid, doomed)
    for uid in versions.values():
        delete_profile(client, uid, scope)


def delete_profile(client, uid, scope):
    """Deletes a profile version the task listed; a 404 means it is gone already, which is what was wanted.

    A DELETE whose answer was lost (a dropped connection) took effect, and the client's retry of it meets
    Palette's 404 (v1ClusterProfilesDelete documents 204; the SDK's DeleteClusterProfile returns its error).
    """
    try:
        client.delete("/v1/clusterprofiles/%s" % quote(uid), scope=scope)
    except PaletteError as err:
        if err.status != 404:
            raise


def run(module):
    params = module.params
    result = {"changed": False, "name": params.get("name")}
    client = None
    try:
        if not HAS_YAML:
            raise ModuleFailure("vmo_profile needs PyYAML on the host that runs the module")
        overrides, layers = check_input(params)
        client = PaletteClient(params)
        scope = TENANT if (params.get("scope") or ("project" if client.project_uid else "tenant")) == "tenant" \
            else None
        if params["state"] == "present":
            run_present(module, client, scope, overrides, layers, result)
        else:
            run_absent(module, client, scope, result)
    except ModuleFailure as err:
        add_progress(err, result, client)
        raise
    module.exit_json(**result)


def add_progress(err, result, client):
    """Gives a failure what the task planned and did: the plan's keys, and changed=true once Palette was written."""
    progress = {key: value for key, value in result.items() if key != "changed"}
    if client is not None and client.writes:
        progress["changed"] = True
    err.result = dict(progress, **err.result)
