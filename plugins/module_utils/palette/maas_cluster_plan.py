# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What palette_maas_cluster is asked for, and what it takes to get there from what Palette has.

`check_input` checks the task's own options (every problem at once); `plan_cluster` compares the desired
cluster with the one Palette has and lists the writes, each with the words that report it. Only what the task
declares is compared: an option left out keeps Palette's value, so a second run plans nothing. Everything
here is pure: the runner feeds it what it read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.items import joined_errors, validate_items
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import (
    COMMON_BOUNDS, TIMEOUT, bound_errors)
from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import YamlInputError, load_yaml
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_spec import (
    CONTROL_PLANE_POOL, cluster_config, cluster_entity, comparable_config, current_pool, declared_pools,
    merged_pool, pool_differences, pool_entity, pool_summary, profile_entity, updated_cluster_config, values_text)

INVALID_INPUT = "invalid input, nothing was changed: "
POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
INFRA_TYPES = ("infra", "cluster")
VERSION = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")

PROFILE_OPTIONS = dict(
    name=dict(type="str", required=True),
    version=dict(type="str"),
    pack_values=dict(type="list", elements="dict", options=dict(
        name=dict(type="str", required=True), values=dict(type="raw", required=True))),
    variables=dict(type="dict"),
)
TAINT_OPTIONS = dict(key=dict(type="str", required=True), value=dict(type="str", default=""),
                     effect=dict(type="str", required=True, choices=["NoSchedule", "PreferNoSchedule", "NoExecute"]))
POOL_PLACEMENT = dict(
    resource_pool=dict(type="str", required=True),
    azs=dict(type="list", elements="str"),
    node_tags=dict(type="list", elements="str"),
    min_cpu=dict(type="int"),
    min_memory_mb=dict(type="int"),
    additional_labels=dict(type="dict"),
)
CONTROL_PLANE_OPTIONS = dict(POOL_PLACEMENT, size=dict(type="int", default=1),
                             as_worker=dict(type="bool", default=False))
WORKER_POOL_OPTIONS = dict(POOL_PLACEMENT, name=dict(type="str", required=True),
                           size=dict(type="int", required=True),
                           taints=dict(type="list", elements="dict", options=TAINT_OPTIONS))
PRESENT_ONLY = ("kubeconfig_dest", "return_kubeconfig")


class ClusterInputError(ModuleFailure):
    """The task's options, or what they name in Palette, are wrong; `errors` lists every problem."""

    def __init__(self, cluster, errors):
        super(ClusterInputError, self).__init__(
            INVALID_INPUT + "cluster %s: %s" % (cluster, joined_errors(errors)), errors)


# -- the task's options ---------------------------------------------------------------------------------

class Request(object):
    """The task's options, checked: the declared pools (flat) and profiles (pack values parsed)."""

    def __init__(self, params, pools, profiles):
        self.params, self.pools, self.profiles = params, pools, profiles
        self.name = params["name"]
        self.worker_pools_declared = params.get("worker_pools") is not None


def check_input(params, no_log):
    """The Request of a task, or a ClusterInputError naming every problem; nothing has been read yet."""
    name = params.get("name")
    bounds = bound_errors(params, dict(COMMON_BOUNDS, force_delete_after=TIMEOUT))
    if bounds:
        raise ClusterInputError(name, bounds)
    errors = []
    if not (name or "").strip():
        errors.append("name: must not be empty")
    if params.get("return_kubeconfig") and not no_log:
        errors.append("return_kubeconfig: the kubeconfig holds the cluster's credentials; set no_log: true on the "
                      "task to have it returned, or write it to kubeconfig_dest")
    if params.get("state") == "absent":
        errors.extend("%s: only applies with state=present" % option for option in PRESENT_ONLY
                      if params.get(option) not in (None, False))
        if errors:
            raise ClusterInputError(name, errors)
        return Request(params, [], [])
    errors.extend(_kubeconfig_dest_errors(params.get("kubeconfig_dest")))
    profiles = _checked_profiles(params.get("profiles"), errors)
    pools = _checked_pools(params, errors)
    if errors:
        raise ClusterInputError(name, errors)
    return Request(params, pools, profiles)


def _kubeconfig_dest_errors(dest):
    if not dest:
        return []
    if os.path.isdir(dest):
        return ["kubeconfig_dest: %s is a directory; give the path of the file to write" % dest]
    parent = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(parent):
        return ["kubeconfig_dest: directory %s does not exist" % parent]
    return []


def _checked_profiles(items, errors):
    if not items:
        errors.append("profiles: give the cluster's profiles (one infra or cluster profile, and any add-on)")
        return []
    validated, item_errors = validate_items("profiles", items, PROFILE_OPTIONS)
    errors.extend(item_errors)
    if item_errors:
        return []
    seen, profiles = set(), []
    for index, item in enumerate(validated):
        where = "profiles[%d] (%s)" % (index, item["name"])
        if item["name"] in seen:
            errors.append("%s: name: listed twice" % where)
        seen.add(item["name"])
        if item.get("version") is not None and not VERSION.match(item["version"]):
            errors.append("%s: version: %r is not a profile version (MAJOR.MINOR.PATCH, such as 1.0.0)"
                          % (where, item["version"]))
        profile = {"name": item["name"], "version": item.get("version"), "variables": item.get("variables") or {},
                   "pack_values": _checked_pack_values(where, item.get("pack_values") or [], errors)}
        profiles.append(profile)
    return profiles


def _checked_pack_values(where, items, errors):
    checked, seen = [], set()
    for index, item in enumerate(items):
        label = "%s: pack_values[%d] (%s)" % (where, index, item["name"])
        if item["name"] in seen:
            errors.append("%s: name: listed twice" % label)
        seen.add(item["name"])
        values = item["values"]
        if isinstance(values, dict):
            parsed = values
        elif isinstance(values, str):
            try:
                parsed = load_yaml(values)
            except YamlInputError as err:
                errors.append("%s: values: %s" % (label, err))
                continue
            if parsed is not None and not isinstance(parsed, dict):
                errors.append("%s: values: must be a YAML mapping, not %s" % (label, type(parsed).__name__))
                continue
        else:
            errors.append("%s: values: must be YAML text or a mapping, not %s" % (label, type(values).__name__))
            continue
        checked.append({"name": item["name"], "text": values_text(values), "parsed": parsed or {}})
    return checked


def _checked_pools(params, errors):
    control_plane = params.get("control_plane")
    if control_plane is not None:
        if control_plane.get("size") is not None and control_plane["size"] < 1:
            errors.append("control_plane: size: %r is out of range, give 1 or more" % control_plane["size"])
        errors.extend("control_plane: %s" % e for e in _minimum_errors(control_plane))
    items = params.get("worker_pools")
    validated, item_errors = validate_items("worker_pools", items, WORKER_POOL_OPTIONS)
    errors.extend(item_errors)
    if item_errors:
        return []
    seen = set()
    for index, item in enumerate(validated):
        where = "worker_pools[%d] (%s)" % (index, item["name"])
        if not POOL_NAME.match(item["name"]):
            errors.append("%s: name: %r is not a pool name (1-63 lower case letters, digits or '-', starting and "
                          "ending with a letter or digit)" % (where, item["name"]))
        elif item["name"] == CONTROL_PLANE_POOL:
            errors.append("%s: name: %r is the control plane's pool" % (where, item["name"]))
        elif item["name"] in seen:
            errors.append("%s: name: listed twice" % where)
        seen.add(item["name"])
        if item["size"] < 0:
            errors.append("%s: size: %r is out of range, give 0 or more" % (where, item["size"]))
        errors.extend("%s: %s" % (where, e) for e in _minimum_errors(item))
    return declared_pools(dict(params, worker_pools=validated if items is not None else None))


def _minimum_errors(options):
    return ["%s: %r is out of range, give 0 or more" % (key, options[key]) for key in ("min_cpu", "min_memory_mb")
            if options.get(key) is not None and options[key] < 0]


# -- profiles -------------------------------------------------------------------------------------------

def version_key(version):
    """Sort key of a profile version; versions not in MAJOR.MINOR.PATCH form sort first."""
    match = VERSION.match(version or "")
    return tuple(int(part) for part in match.groups()) if match else (-1, -1, -1)


def profile_candidates(items, name, version):
    """Uids of the listed profiles (dashboard metadata items) that may be `name` at `version`, best first.

    With a version: that version, the project's own before the tenant's. Without: every version, newest first
    (the runner takes the first one that is published).
    """
    matches = []
    for item in items:
        meta, spec = item.get("metadata") or {}, item.get("spec") or {}
        if meta.get("name") != name or not meta.get("uid"):
            continue
        if version is not None and spec.get("version") != version:
            continue
        scope = (meta.get("annotations") or {}).get("scope")
        matches.append((version_key(spec.get("version")), scope == "project", meta["uid"]))
    return [uid for _key, _own, uid in sorted(matches, reverse=True)]


def profile_type_errors(profiles):
    """One infra or cluster profile, and only add-ons besides; each profile for MAAS (or for every cloud)."""
    errors = []
    infra = [p for p in profiles if p["type"] in INFRA_TYPES]
    if not infra:
        errors.append("profiles: none of %s is an infra or cluster profile; a cluster needs exactly one (OS, "
                      "Kubernetes, network and storage)" % ", ".join(_label(p) for p in profiles))
    elif len(infra) > 1:
        errors.append("profiles: %s are all infra or cluster profiles; a cluster has exactly one"
                      % ", ".join(_label(p) for p in infra))
    for index, profile in enumerate(profiles):
        where = "profiles[%d] (%s)" % (index, profile["name"])
        if profile["type"] not in INFRA_TYPES + ("add-on",):
            errors.append("%s: profile %s is of type %r, which a cluster cannot use"
                          % (where, _label(profile), profile["type"]))
        if profile.get("cloud_type") not in (None, "", "maas", "all"):
            errors.append("%s: profile %s is for cloud %r, not maas" % (where, _label(profile), profile["cloud_type"]))
        for vindex, override in enumerate(profile.get("pack_values") or []):
            if override["name"] not in profile["packs"]:
                errors.append("%s: pack_values[%d] (%s): profile %s has no pack %r (packs: %s)"
                              % (where, vindex, override["name"], _label(profile), override["name"],
                                 ", ".join(sorted(profile["packs"])) or "none"))
    return errors


def _label(profile):
    return "%s %s" % (profile["name"], profile.get("version") or "")


# -- the plan -------------------------------------------------------------------------------------------

class Desired(object):
    """The cluster as the task wants it, its lookups resolved (account uid, profile uids and types)."""

    def __init__(self, request, account_uid, profiles):
        params = request.params
        self.name = request.name
        self.account_uid = account_uid
        self.domain, self.ssh_keys, self.ntp_servers = (params.get("domain"), params.get("ssh_keys"),
                                                        params.get("ntp_servers"))
        self.pools = request.pools
        self.worker_pools_declared = request.worker_pools_declared
        self.profiles = profiles


class Current(object):
    """The cluster as Palette has it: the cluster document, its cloud config's spec, its pools (flat)."""

    def __init__(self, cluster, cloud_config):
        spec, status = cluster.get("spec") or {}, cluster.get("status") or {}
        self.uid = (cluster.get("metadata") or {}).get("uid")
        self.state = status.get("state") or "Unknown"
        self.conditions = status.get("conditions") or []
        self.cloud_type = spec.get("cloudType")
        self.cloud_config_uid = (spec.get("cloudConfigRef") or {}).get("uid")
        config_spec = (cloud_config or {}).get("spec") or {}
        self.config = dict(config_spec.get("clusterConfig") or {})
        self.pools = [current_pool(p) for p in config_spec.get("machinePoolConfig") or []]
        self.templates = [_template(t) for t in spec.get("clusterProfileTemplates") or []]


def _template(template):
    packs = {}
    for pack in template.get("packs") or []:
        packs[pack.get("name")] = pack.get("values")
    return {"uid": template.get("uid"), "name": template.get("name"), "type": template.get("type") or "add-on",
            "version": template.get("profileVersion") or "", "packs": packs}


class Plan(object):
    """The writes, in order, each a dict with `kind`; `actions` says each one in words."""

    def __init__(self):
        self.steps, self.actions = [], []
        self.pools_after, self.grown = [], []
        self.before, self.after = {}, {}

    def add(self, action, **step):
        self.actions.append(action)
        self.steps.append(step)


def plan_cluster(desired, current):
    """The Plan from `current` (None: no such cluster) to `desired`."""
    plan = Plan()
    if current is None:
        _plan_create(plan, desired)
    else:
        plan.before = _view(desired, current.pools, [(t["name"], t["version"]) for t in current.templates],
                            current.config)
        _plan_config(plan, desired, current)
        _plan_profiles(plan, desired, current)
        _plan_pools(plan, desired, current)
    plan.after = _view(desired, plan.pools_after, [(p["name"], p["version"]) for p in desired.profiles],
                       cluster_config(desired.domain, desired.ssh_keys, desired.ntp_servers))
    return plan


def _plan_create(plan, desired):
    if not any(pool["control_plane"] for pool in desired.pools):
        raise ClusterInputError(desired.name, ["control_plane: required to create the cluster (its size and "
                                               "resource_pool at least)"])
    plan.pools_after = [merged_pool(None, pool) for pool in desired.pools]
    plan.grown = [pool["name"] for pool in plan.pools_after]
    config = cluster_config(desired.domain, desired.ssh_keys, desired.ntp_servers)
    body = cluster_entity(desired.name, desired.account_uid, config, plan.pools_after, desired.profiles)
    plan.add("create cluster %s (pools: %s; profiles: %s)" % (
        desired.name, ", ".join("%s %d" % (p["name"], p["size"]) for p in plan.pools_after),
        ", ".join(_label(p) for p in desired.profiles)), kind="create", body=body)


# The cluster config fields a task can declare: option, key in v1MaasClusterConfig.
CONFIG_FIELDS = (("domain", "domain"), ("ssh_keys", "sshKeys"), ("ntp_servers", "ntpServers"))


def config_differences(desired, config):
    """Options of the declared domain, SSH keys and NTP servers that differ from the cluster's config (Palette's
    v1MaasClusterConfig), compared as comparable_config says; an option the task leaves out is not compared."""
    wanted = {"domain": desired.domain, "ssh_keys": desired.ssh_keys, "ntp_servers": desired.ntp_servers}
    return [option for option, key in CONFIG_FIELDS if wanted[option] is not None
            and comparable_config(option, wanted[option]) != comparable_config(option, config.get(key))]


def _plan_config(plan, desired, current):
    """One PUT of the cluster config when the declared domain, SSH keys or NTP servers differ, first, so machines a
    scale-up of the same task deploys get the new ones. The PUT is the whole config: what the task leaves out is sent
    as the cluster has it."""
    differing = config_differences(desired, current.config)
    if not differing:
        return
    body = {"clusterConfig": updated_cluster_config(current.config, desired.domain, desired.ssh_keys,
                                                    desired.ntp_servers)}
    plan.add("update cluster config (%s)" % ", ".join(differing), kind="cluster_config", body=body)


def attached_match(desired_profile, templates):
    """The attached template the desired profile is, or replaces: same uid; else, for the infra or cluster profile,
    the attached infra or cluster profile; else an add-on of the same name."""
    for template in templates:
        if template["uid"] == desired_profile["uid"]:
            return template
    infra = desired_profile["type"] in INFRA_TYPES
    for template in templates:
        if infra and template["type"] in INFRA_TYPES:
            return template
        if not infra and template["type"] not in INFRA_TYPES and template["name"] == desired_profile["name"]:
            return template
    return None


def changed_pack_values(profile, template):
    """Names of the declared packs whose values differ from the values the cluster holds."""
    changed = []
    for override in profile.get("pack_values") or []:
        text = template["packs"].get(override["name"])
        try:
            have = load_yaml(text) if isinstance(text, str) else text
        except YamlInputError:
            have = None
        if (have or {}) != (override["parsed"] or {}):
            changed.append(override["name"])
    return changed


def _plan_profiles(plan, desired, current):
    entries, resolves, words = [], [], []
    for profile in desired.profiles:
        template = attached_match(profile, current.templates)
        if template is None:
            entries.append(profile_entity(profile))
            resolves.append(False)
            words.append("attach profile %s" % _label(profile))
        elif template["uid"] != profile["uid"]:
            entries.append(profile_entity(profile, replaces=template["uid"]))
            resolves.append(True)
            words.append("replace profile %s %s with %s" % (template["name"], template["version"], _label(profile)))
        else:
            packs = changed_pack_values(profile, template)
            if packs:
                entries.append(profile_entity(profile))
                resolves.append(True)
                words.append("update pack values of profile %s (%s)" % (_label(profile), ", ".join(packs)))
    # One PATCH per profile, as Palette's provider attaches them; a replace or new values is applied at once.
    for word, entry, resolve in zip(words, entries, resolves):
        plan.add(word, kind="profiles", entries=[entry], resolve=resolve)


def _plan_pools(plan, desired, current):
    by_name = dict((pool["name"], pool) for pool in current.pools)
    control_plane = [pool for pool in current.pools if pool["control_plane"]]
    after, declared_names, errors = dict(by_name), set(), []
    adds, updates, removes = [], [], []
    for pool in desired.pools:
        if pool["control_plane"]:
            have = control_plane[0] if control_plane else None
            if have is None:
                errors.append("control_plane: cluster %s has no control-plane pool in Palette" % desired.name)
                continue
        else:
            have = by_name.get(pool["name"])
            if have is not None and have["control_plane"]:
                errors.append("%s: name: it is the cluster's control-plane pool in Palette" % pool["option"])
                continue
        declared_names.add(have["name"] if have else pool["name"])
        if have is None:
            new = merged_pool(None, pool)
            after[new["name"]] = new
            adds.append(("add pool %s (size %d)" % (new["name"], new["size"]), new))
            continue
        differing = pool_differences(pool, have)
        if not differing:
            continue
        new = merged_pool(have, pool)
        new["name"] = have["name"]
        after[new["name"]] = new
        if differing == ["size"]:
            words = "scale pool %s from %d to %d" % (new["name"], have["size"], new["size"])
        else:
            words = "update pool %s (%s)" % (new["name"], ", ".join(differing))
        updates.append((words, new, have))
    if errors:
        raise ClusterInputError(desired.name, errors)
    if desired.worker_pools_declared:
        for pool in current.pools:
            if not pool["control_plane"] and pool["name"] not in declared_names:
                del after[pool["name"]]
                removes.append(("remove pool %s (size %d)" % (pool["name"], pool["size"]), pool))
    # New pools first and removed ones last, so the workloads always have somewhere to run.
    for words, pool in adds:
        plan.add(words, kind="pool_add", name=pool["name"], body=pool_entity(pool))
        plan.grown.append(pool["name"])
    for words, pool, have in updates:
        plan.add(words, kind="pool_update", name=pool["name"], body=pool_entity(pool))
        if pool["size"] > have["size"] or pool_differences(pool, have) != ["size"]:
            plan.grown.append(pool["name"])
    for words, pool in removes:
        plan.add(words, kind="pool_remove", name=pool["name"])
    plan.pools_after = [after[p["name"]] for p in current.pools if p["name"] in after] + \
        [pool for _words, pool in adds]


def _view(desired, pools, profiles, config):
    """The declared fields of a cluster, for the diff."""
    view = {"name": desired.name, "domain": config.get("domain"),
            "profiles": ["%s %s" % (name, version) for name, version in profiles],
            "pools": [pool_summary(p) for p in pools]}
    if desired.ssh_keys is not None:
        view["ssh_keys"] = comparable_config("ssh_keys", config.get("sshKeys"))
    if desired.ntp_servers is not None:
        view["ntp_servers"] = comparable_config("ntp_servers", config.get("ntpServers"))
    return view


def capacity_needs(plan, held):
    """What MAAS must still have Ready for the pools the plan creates or grows, the control plane first (it is
    deployed first): one dict per pool short of machines - name, needed (its size to be less the machines it holds
    now, `held` {pool: count}), resource_pool, zones, tags, min_cpu, min_memory_mb.

    Only the pool's last node tag counts, as Palette's MAAS provider sends only that one to MAAS (see tag_warnings).
    """
    needs = []
    for pool in sorted((p for p in plan.pools_after if p["name"] in plan.grown), key=lambda p: not p["control_plane"]):
        needed = pool["size"] - held.get(pool["name"], 0)
        if needed <= 0:
            continue
        needs.append({"name": pool["name"], "needed": needed, "resource_pool": pool.get("resource_pool") or "",
                      "zones": list(pool.get("azs") or []), "tags": list(pool.get("node_tags") or [])[-1:],
                      "min_cpu": pool.get("min_cpu") or 0, "min_memory_mb": pool.get("min_memory_mb") or 0})
    return needs


def tag_warnings(pools):
    """A warning for each declared pool with more than one node tag: Palette's MAAS provider allocates with the
    last tag only (maas-client-go WithTags sets the `tags` parameter once per tag, each replacing the one before),
    so MAAS may hand out machines that lack the others."""
    warnings = []
    for pool in pools:
        tags = pool.get("node_tags") or []
        if len(tags) > 1:
            warnings.append("%s: node_tags: Palette's MAAS provider sends only the last tag (%s) to MAAS when it "
                            "allocates the machines of pool %s, so they may lack %s"
                            % (pool["option"], tags[-1], pool["name"], ", ".join(tags[:-1])))
    return warnings


def validation_errors(answer, pools, profiles):
    """The problems Palette's validate found in the pools the plan creates or grows, and in the profiles.

    `answer` is a v1SpectroClusterValidatorResponse; `pools` the names of the pools to check; `profiles`
    {uid: label} of the task's profiles.
    """
    errors = []
    for result in ((answer or {}).get("machinePools") or {}).get("results") or []:
        pool = result.get("name") or result.get("displayName")
        if pool not in pools:
            continue
        for error in result.get("errors") or []:
            errors.append("pool %s: %s%s" % (pool, error.get("message") or "refused",
                                             " (%s)" % error["code"] if error.get("code") else ""))
    for profile in (answer or {}).get("profiles") or []:
        label = profiles.get(profile.get("uid"), profile.get("uid"))
        for result in ((profile.get("packs") or {}).get("results")) or []:
            pack = result.get("name") or result.get("displayName")
            for error in result.get("errors") or []:
                errors.append("profile %s: pack %s: %s" % (label, pack, error.get("message") or error.get("code")
                                                           or "refused"))
    return errors
