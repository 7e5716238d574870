# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""palette_maas_cluster, end to end: check the input, read what Palette and its MAAS account have, plan, then
write and wait.

Everything that can be wrong with the task (options, the cloud account, the profiles, resource pools, zones,
tags and the domain; for a create, what Palette's own validate finds) is found by reading only (GET, and the
read-only POSTs of the cluster search and the validate); the first write comes after the whole plan is known, so a
failed check leaves Palette as it was. Check mode stops after the plan.

Palette does not check that MAAS has the machines: its MAAS provider allocates each machine when it reconciles it
and retries for ever. Pools larger than the matching Ready machines are found by the task's capacity check, a
callable the module gives when it has a MAAS connection (it reads MAAS itself); without one the task warns that
capacity was not checked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections import OrderedDict

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.palette import cluster_kubeconfig as kubeconfigs
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
    PaletteClient, PaletteConfigError, PaletteError)
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_plan import (
    ClusterInputError, Current, Desired, capacity_needs, check_input, plan_cluster, profile_candidates,
    profile_type_errors, tag_warnings, validation_errors)
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_spec import (
    HAS_YAML, cluster_config, cluster_entity)
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_wait import (
    ClusterWaitError, deletion_timeout, held_machines, observe, pool_machines, wait_until_deleted,
    wait_until_running, watch_deletion)

# MAAS properties of a cloud account, read from MAAS live, by the option that names them.
PROPERTIES = (("resource_pool", "resourcePools", "resource pool"), ("azs", "azs", "zone"),
              ("node_tags", "tags", "tag"))


# -- reads --------------------------------------------------------------------------------------------

def read_cluster(client, name):
    """The Current cluster of that name in the scope, or None; a cluster that is not MAAS is an error."""
    summary = client.find_cluster(name)
    if summary is None:
        return None
    uid = summary["metadata"]["uid"]
    cluster = client.get_or_none("/v1/spectroclusters/%s" % quote(uid))
    if cluster is None or (cluster.get("status") or {}).get("state") == "Deleted":
        return None
    cloud_type = (cluster.get("spec") or {}).get("cloudType")
    if cloud_type not in (None, "", "maas"):
        raise PaletteConfigError("cluster %s exists in %s and is a %s cluster, not a MAAS one"
                                 % (name, client.scope_label(), cloud_type))
    cloud_config = None
    config_uid = ((cluster.get("spec") or {}).get("cloudConfigRef") or {}).get("uid")
    if config_uid:
        cloud_config = client.get("/v1/cloudconfigs/maas/%s" % quote(config_uid))
    return Current(cluster, cloud_config)


def resolve_cloud_account(client, name_or_uid):
    """(uid, name, None) of the MAAS cloud account given by name or uid, or (None, None, the problem)."""
    accounts = client.list_all("/v1/cloudaccounts/maas")
    account = choose_account(accounts, name_or_uid)
    if account is not None:
        meta = account["metadata"]
        return meta["uid"], meta.get("name") or meta["uid"], None
    names = sorted((a.get("metadata") or {}).get("name") or "?" for a in accounts)
    return None, None, ("cloud_account: MAAS cloud account %r does not exist in %s (MAAS accounts: %s)"
                        % (name_or_uid, client.scope_label(), ", ".join(names) or "none"))


def choose_account(accounts, name_or_uid):
    """The listed account (v1MaasAccount) of that uid, or of that name - the project's own before the tenant's, as
    one name can be in both scopes (the SDK's GetCloudAccountMaasByName filters on metadata.annotations.scope)."""
    matches = [a for a in accounts if name_or_uid in ((a.get("metadata") or {}).get("name"),
                                                      (a.get("metadata") or {}).get("uid"))]
    matches.sort(key=lambda a: (((a["metadata"].get("uid") != name_or_uid),
                                 ((a["metadata"].get("annotations") or {}).get("scope") != "project"))))
    return matches[0] if matches else None


def resolve_profiles(client, declared):
    """The declared profiles with Palette's uid, version, type, cloud type and packs; the problems of all of them."""
    items = client.list_all("/v1/dashboard/clusterprofiles/metadata")
    resolved, errors = [], []
    for index, profile in enumerate(declared):
        where = "profiles[%d] (%s)" % (index, profile["name"])
        candidates = profile_candidates(items, profile["name"], profile["version"])
        if not candidates:
            versions = sorted(set((i.get("spec") or {}).get("version") or "?" for i in items
                                  if (i.get("metadata") or {}).get("name") == profile["name"]))
            if versions:
                errors.append("%s: version: profile %s has no version %s in %s (versions: %s)"
                              % (where, profile["name"], profile["version"], client.scope_label(),
                                 ", ".join(versions)))
            else:
                errors.append("%s: name: no cluster profile named %r in %s"
                              % (where, profile["name"], client.scope_label()))
            continue
        found = published_profile(client, candidates)
        if found is None:
            errors.append("%s: profile %s has no published version" % (
                where, " ".join(filter(None, (profile["name"], profile["version"])))))
            continue
        resolved.append(dict(profile, **found))
    if not errors:
        errors.extend(profile_type_errors(resolved))
    return resolved, errors


def published_profile(client, uids):
    """{uid, version, type, cloud_type, packs} of the first published profile of `uids`, or None."""
    for uid in uids:
        profile = client.get("/v1/clusterprofiles/%s" % quote(uid)) or {}
        spec, status = profile.get("spec") or {}, profile.get("status") or {}
        published = spec.get("published") or {}
        if not status.get("isPublished", bool(published)) or not published:
            continue
        packs = dict((p.get("name"), {"tag": p.get("tag"), "type": p.get("type")})
                     for p in published.get("packs") or [])
        return {"uid": uid, "version": spec.get("version") or published.get("profileVersion") or "",
                "type": published.get("type") or "add-on", "cloud_type": published.get("cloudType"),
                "packs": packs}
    return None


def account_properties(client, account_uid, kind):
    """Names of the account's MAAS resource pools, zones (azs), tags or domains, as Palette reads them from MAAS."""
    uid = quote(account_uid)
    if kind == "resourcePools":
        answer = client.get("/v1/cloudaccounts/maas/%s/properties/resourcePools" % uid)
    elif kind == "azs":
        answer = client.get("/v1/cloudaccounts/maas/%s/properties/azs" % uid)
    elif kind == "tags":
        answer = client.get("/v1/cloudaccounts/maas/%s/properties/tags" % uid)
    else:
        answer = client.get("/v1/cloudaccounts/maas/%s/properties/domains" % uid)
    return sorted(set(item.get("name") for item in (answer or {}).get("items") or [] if item.get("name")))


def placement_errors(client, account_uid, account_name, pools, domain):
    """Resource pools, zones, tags and the domain the task names that the account's MAAS does not have."""
    errors = []
    for option, kind, word in PROPERTIES:
        wanted = [(pool, value) for pool in pools for value in _as_list(pool.get(option))]
        if not wanted:
            continue
        known = account_properties(client, account_uid, kind)
        for pool, value in wanted:
            if value not in known:
                errors.append("%s: %s: %r is not a %s of MAAS account %s (%ss: %s)"
                              % (pool["option"], option, value, word, account_name, word, ", ".join(known) or "none"))
    if domain:
        known = account_properties(client, account_uid, "domains")
        if domain not in known:
            errors.append("domain: %r is not a domain of MAAS account %s (domains: %s)"
                          % (domain, account_name, ", ".join(known) or "none"))
    return errors


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def validate_create(client, desired, plan):
    """Palette's own validate (read-only) of a cluster to be created: the errors its answer gives for the pools and
    the profiles. Palette documents it for a create only, so it is never sent for a cluster that exists."""
    config = cluster_config(desired.domain, desired.ssh_keys, desired.ntp_servers)
    body = cluster_entity(desired.name, desired.account_uid, config, plan.pools_after, desired.profiles)
    try:
        answer = client.call("POST", "/v1/spectroclusters/maas/validate", body=body, writes=False)
    except PaletteError as err:
        if 400 <= err.status < 500 and err.status not in (401, 403, 429):
            return ["Palette's validation refused the cluster: %s" % err.describe()]
        raise
    labels = dict((p["uid"], "%s %s" % (p["name"], p["version"])) for p in desired.profiles)
    return validation_errors(answer if isinstance(answer, dict) else {}, set(plan.grown), labels)


def capacity_errors(module, client, name, capacity, plan, current):
    """The pools the plan creates or grows that MAAS has too few matching Ready machines for, as the `capacity`
    callable (needs -> problems) finds them; without one, a warning that capacity was not checked."""
    if not plan.grown:
        return []
    if capacity is None:
        module.warn("cluster %s: whether MAAS has enough Ready machines for pool%s %s was not checked (Palette does "
                    "not check it); give maas_url and maas_api_key (or MAAS_URL and MAAS_API_KEY) to have it checked "
                    "before anything is written" % (name, "" if len(plan.grown) == 1 else "s", ", ".join(plan.grown)))
        return []
    held = {}
    for pool in (current.pools if current else []):
        if pool["name"] in plan.grown and current.cloud_config_uid:
            held[pool["name"]] = held_machines(pool_machines(client, current.cloud_config_uid, pool["name"]),
                                               pool["size"])
    needs = capacity_needs(plan, held)
    if not needs:
        return []
    try:
        return capacity(needs)
    except ModuleFailure as err:
        raise ModuleFailure("cluster %s: reading MAAS's Ready machines to check the pools' capacity: %s"
                            % (name, err), err.errors)


# -- writes ---------------------------------------------------------------------------------------------

def create_or_adopt(client, name, body):
    """The uid of the cluster the create made. After any failure of the POST, a cluster of that name is adopted
    when it is there (the plan found none, so it is this very request's, whose answer was lost), as the
    profile create does; otherwise Palette's error stands."""
    try:
        return (client.post("/v1/spectroclusters/maas", body) or {})["uid"]
    except (ModuleFailure, KeyError) as failure:
        original = failure
    try:
        found = client.find_cluster(name)
    except ModuleFailure:
        found = None
    if found is None:
        if isinstance(original, KeyError):
            raise PaletteConfigError("POST /v1/spectroclusters/maas: Palette answered without the new cluster's uid")
        raise original
    return found["metadata"]["uid"]


def apply_step(client, step, uid, config_uid):
    """One write of the plan; returns the cluster uid (new after a create)."""
    kind = step["kind"]
    if kind == "create":
        return create_or_adopt(client, step["body"]["metadata"]["name"], step["body"])
    if kind == "profiles":
        client.patch("/v1/spectroclusters/%s/profiles" % quote(uid),
                     {"profiles": step["entries"], "spcApplySettings": {"actionType": "DownloadAndInstall"}},
                     query={"resolveNotification": "true" if step["resolve"] else "false"})
    elif kind == "cluster_config":
        client.put("/v1/cloudconfigs/maas/%s/clusterConfig" % quote(config_uid), step["body"])
    elif kind == "pool_add":
        client.post("/v1/cloudconfigs/maas/%s/machinePools" % quote(config_uid), step["body"])
    elif kind == "pool_update":
        client.put("/v1/cloudconfigs/maas/%s/machinePools/%s" % (quote(config_uid), quote(step["name"])),
                   step["body"])
    elif kind == "pool_remove":
        client.delete("/v1/cloudconfigs/maas/%s/machinePools/%s" % (quote(config_uid), quote(step["name"])))
    return uid


# -- the result -----------------------------------------------------------------------------------------

def cluster_result(name, uid, seen, pools, profiles):
    """The `cluster` of the result: state and health, profiles, and each pool with its machines."""
    return {"uid": uid, "name": name, "state": seen.state if seen else None,
            "health": seen.health if seen else None,
            "cloud_config_uid": seen.cloud_config_uid if seen else None,
            "profiles": [{"name": p["name"], "version": p["version"], "uid": p["uid"]} for p in profiles],
            "pools": [{"name": p["name"], "size": p["size"], "control_plane": bool(p["control_plane"]),
                       "machines": [dict((k, m[k]) for k in ("name", "hostname", "state", "ready"))
                                    for m in ((seen.machines if seen else {}).get(p["name"]) or [])]}
                      for p in pools]}


def handle_kubeconfig(module, client, name, uid, result):
    """Fetches the kubeconfig when the task asks for it; writes kubeconfig_dest (mode 0600) when it differs."""
    params = module.params
    dest, wanted = params.get("kubeconfig_dest"), params.get("return_kubeconfig")
    if not (dest or wanted):
        return
    if dest:
        result["kubeconfig_dest"] = dest
    if uid is None:  # check mode, the cluster is still to be created
        if dest:
            result["actions"].append("write kubeconfig %s (content)" % dest)
            result["changed"] = True
        return
    text = kubeconfigs.fetch_kubeconfig(client, name, uid, params["kubeconfig_kind"])
    if not wanted:
        # Ansible masks no_log values everywhere in the result, so the credentials of a kubeconfig that is returned
        # are left to the task's no_log (required for return_kubeconfig), which hides the whole result.
        module.no_log_values.update(kubeconfigs.kubeconfig_secrets(text))
    if dest:
        changes = kubeconfigs.file_changes(dest, text)
        if changes:
            result["actions"].append("write kubeconfig %s (%s)" % (dest, ", ".join(changes)))
            result["changed"] = True
            if not module.check_mode:
                kubeconfigs.write_kubeconfig(dest, text, changes)
    if wanted:
        result["kubeconfig"] = text


# -- the task -------------------------------------------------------------------------------------------

def run_present(module, client, request, result, capacity):
    params = module.params
    current = read_cluster(client, request.name)
    if current is not None and current.state in ("Deleting", "Deleted"):
        raise ModuleFailure("cluster %s is being deleted (state %s); run the task again once it is gone"
                            % (request.name, current.state))
    account_uid, account_name, unknown_account = resolve_cloud_account(client, params["cloud_account"])
    profiles, errors = resolve_profiles(client, request.profiles)
    if unknown_account:
        errors.insert(0, unknown_account)
    else:
        errors.extend(placement_errors(client, account_uid, account_name, request.pools, params.get("domain")))
    if errors:
        raise ClusterInputError(request.name, errors)
    for warning in tag_warnings(request.pools):
        module.warn(warning)
    desired = Desired(request, account_uid, profiles)
    plan = plan_cluster(desired, current)
    errors = validate_create(client, desired, plan) if current is None else []
    errors.extend(capacity_errors(module, client, request.name, capacity, plan, current))
    if errors:
        raise ClusterInputError(request.name, errors)

    result.update(changed=bool(plan.actions), actions=list(plan.actions))
    if plan.actions:
        result["diff"] = {"before": plan.before, "after": plan.after}
    uid = current.uid if current else None
    config_uid = current.cloud_config_uid if current else None
    if not module.check_mode and plan.steps:
        result["actions"] = []
        for words, step in zip(plan.actions, plan.steps):
            try:
                uid = apply_step(client, step, uid, config_uid)
            except ModuleFailure as err:
                raise ModuleFailure("cluster %s: %s: %s" % (request.name, words, err), err.errors, **err.result)
            result["actions"].append(words)
            result["uid"] = uid
    sizes = OrderedDict((p["name"], p["size"]) for p in plan.pools_after)  # the cloud config's pool order
    seen = None
    if uid is not None:
        try:
            if params["wait"] and not module.check_mode:
                seen = wait_until_running(client, request.name, uid, sizes, params["wait_timeout"])
            else:
                seen = observe(client, uid, list(sizes))
        except ClusterWaitError as err:
            result["cluster"] = cluster_result(request.name, uid, err.observation, plan.pools_after, profiles)
            raise
    result["uid"] = uid
    result["cluster"] = cluster_result(request.name, uid, seen, plan.pools_after, profiles)
    handle_kubeconfig(module, client, request.name, uid, result)


def run_absent(module, client, request, result):
    """Deletes the cluster and waits until Palette has it gone. With force_delete, a cluster still Deleting
    force_delete_after seconds after the DELETE gets a second one with forceDelete, as the Terraform provider does
    (cluster_common_crud.go: DeleteCluster, then ForceDeleteCluster after force_delete_delay)."""
    params = module.params
    current = read_cluster(client, request.name)
    if current is None:
        result.update(changed=False, actions=[], cluster=None)
        return
    pools = [p["name"] for p in current.pools]
    seen = observe(client, current.uid, pools)
    result["cluster"] = cluster_result(request.name, current.uid, seen, current.pools, [])
    result["uid"] = current.uid
    force, timeout = params["force_delete"], params["wait_timeout"]
    force_after = params["force_delete_after"]
    actions = [] if current.state == "Deleting" else [
        "delete cluster %s%s" % (request.name, " (forced if still Deleting after %ss)" % force_after if force else "")]
    result.update(changed=bool(actions), actions=actions)
    if actions:
        result["diff"] = {"before": {"name": request.name, "state": current.state,
                                     "pools": [{"name": p["name"], "size": p["size"]} for p in current.pools]},
                          "after": {}}
    if module.check_mode:
        return
    if actions:
        delete_cluster(client, current.uid, False)
    if not params["wait"]:
        if force:
            module.warn("cluster %s: force_delete needs wait; only the plain DELETE was sent" % request.name)
        return
    if force:
        first = min(force_after, timeout)
        seen = watch_deletion(client, current.uid, pools, first)
        if seen is not None:
            if force_after >= timeout:
                raise deletion_timeout(request.name, timeout, seen,
                                       "not forced: force_delete_after (%ss) is not less than wait_timeout"
                                       % force_after)
            delete_cluster(client, current.uid, True)
            result["actions"].append("force delete cluster %s (still Deleting after %ss)" % (request.name, first))
            result["changed"] = True
            remaining = timeout - first
            seen = watch_deletion(client, current.uid, pools, remaining)
            if seen is not None:
                raise deletion_timeout(request.name, timeout, seen, "forced after %ss" % first)
    else:
        wait_until_deleted(client, request.name, current.uid, pools, timeout)
    result["cluster"]["state"] = "Deleted"


def delete_cluster(client, uid, force):
    try:
        client.call("DELETE", "/v1/spectroclusters/%s" % quote(uid),
                    query={"forceDelete": "true" if force else "false"})
    except PaletteError as err:
        if err.status != 404:  # a DELETE whose answer was lost took effect; its retry meets the 404
            raise


def run(module, capacity_check=None):
    """The task. `capacity_check(params)` gives the capacity check of the task's MAAS connection (a callable from
    capacity needs to problems), or None when the task has none."""
    params = module.params
    result = {"changed": False, "name": params.get("name"), "actions": []}
    client = None
    try:
        if not HAS_YAML:
            raise ModuleFailure("palette_maas_cluster needs PyYAML on the host that runs the module")
        request = check_input(params, module.no_log)
        client = PaletteClient(params)
        if params["state"] == "present":
            capacity = capacity_check(params) if capacity_check else None
            run_present(module, client, request, result, capacity)
        else:
            run_absent(module, client, request, result)
    except ModuleFailure as err:
        add_progress(err, result, client)
        raise
    module.exit_json(**result)


def add_progress(err, result, client):
    """Gives a failure what the task planned and did: the result so far, and changed=true once Palette was written."""
    progress = dict((key, value) for key, value in result.items() if key != "changed")
    if client is not None and client.writes:
        progress["changed"] = True
    err.result = dict(progress, **err.result)
