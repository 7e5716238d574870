# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The request bodies of a Palette MAAS cluster, built in one place, and the pools in one comparable form.

A machine pool is handled in a flat form that both the task's options and Palette's cloud config map onto
(`name, control_plane, size, resource_pool, azs, node_tags, min_cpu, min_memory_mb, additional_labels, taints,
as_worker`); the bodies follow the Terraform provider's mapping (resource_cluster_maas.go toMaasCluster,
toMachinePoolMaas): `labels` ["control-plane"] or ["worker"], `minSize` and `maxSize` equal to `size`,
node tags as the pool's MAAS `tags`, the resource pool under `cloudConfig.resourcePool`.
Everything here is pure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

try:
    import yaml

    HAS_YAML = True
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False

# The name Palette's console gives a MAAS cluster's control-plane pool.
CONTROL_PLANE_POOL = "control-plane-pool"
POOL_FIELDS = ("size", "resource_pool", "azs", "node_tags", "min_cpu", "min_memory_mb", "additional_labels",
               "taints", "as_worker")


# -- pools ----------------------------------------------------------------------------------------------

def declared_pools(params):
    """The pools the task declares, flat; an option the task leaves out is None (it is then not compared).

    The control plane first (when declared), then the worker pools in the task's order.
    """
    pools = []
    control_plane = params.get("control_plane")
    if control_plane is not None:
        pool = _declared_pool(control_plane, CONTROL_PLANE_POOL, True, "control_plane")
        pool["as_worker"] = bool(control_plane.get("as_worker"))
        pools.append(pool)
    for index, item in enumerate(params.get("worker_pools") or []):
        pools.append(_declared_pool(item, item.get("name"), False,
                                    "worker_pools[%d] (%s)" % (index, item.get("name"))))
    return pools


def _declared_pool(options, name, control_plane, option):
    taints = options.get("taints")
    return {"name": name, "control_plane": control_plane, "option": option, "size": options.get("size"),
            "resource_pool": options.get("resource_pool"), "azs": _strings(options.get("azs")),
            "node_tags": _strings(options.get("node_tags")), "min_cpu": options.get("min_cpu"),
            "min_memory_mb": options.get("min_memory_mb"),
            "additional_labels": _labels(options.get("additional_labels")),
            "taints": None if taints is None else [_taint(t) for t in taints],
            "as_worker": None}


def current_pool(config):
    """The flat form of one `spec.machinePoolConfig[]` entry of a MAAS cloud config (v1MaasMachinePoolConfig)."""
    instance = config.get("instanceType") or {}
    control_plane = bool(config.get("isControlPlane")) or "control-plane" in (config.get("labels") or [])
    return {"name": config.get("name"), "control_plane": control_plane, "size": config.get("size") or 0,
            "resource_pool": config.get("resourcePool") or "", "azs": _strings(config.get("azs")) or [],
            "node_tags": _strings(config.get("tags")) or [], "min_cpu": instance.get("minCPU") or 0,
            "min_memory_mb": instance.get("minMemInMB") or 0,
            "additional_labels": _labels(config.get("additionalLabels")) or {},
            "taints": [_taint(t) for t in config.get("taints") or []],
            "as_worker": bool(config.get("useControlPlaneAsWorker")) if control_plane else None}


def merged_pool(current, declared):
    """The pool as it is to be: `current` (or nothing, for a new pool) with every declared option over it."""
    pool = copy.deepcopy(current) if current else {
        "name": declared["name"], "control_plane": declared["control_plane"], "size": 0, "resource_pool": "",
        "azs": [], "node_tags": [], "min_cpu": 0, "min_memory_mb": 0, "additional_labels": {}, "taints": [],
        "as_worker": False if declared["control_plane"] else None}
    for field in POOL_FIELDS:
        if declared.get(field) is not None:
            pool[field] = copy.deepcopy(declared[field])
    return pool


def comparable(field, value):
    """A pool field in a form where equal meaning compares equal: zones and tags as sets, taints unordered."""
    if value is None:
        return None
    if field in ("azs", "node_tags"):
        return sorted(set(value))
    if field == "taints":
        return sorted((t["key"], t["value"], t["effect"]) for t in value)
    return value


def pool_differences(declared, current):
    """Names of the declared fields of a pool whose value differs from Palette's, in POOL_FIELDS order."""
    return [field for field in POOL_FIELDS if declared.get(field) is not None
            and comparable(field, declared[field]) != comparable(field, current.get(field))]


def pool_entity(pool):
    """v1MaasMachinePoolConfigEntity of a flat pool, as the Terraform provider's toMachinePoolMaas builds it."""
    cloud = {"resourcePool": pool.get("resource_pool") or "", "azs": list(pool.get("azs") or []),
             "tags": list(pool.get("node_tags") or []),
             "instanceType": {"minCPU": pool.get("min_cpu") or 0, "minMemInMB": pool.get("min_memory_mb") or 0}}
    config = {"name": pool["name"], "size": pool["size"], "minSize": pool["size"], "maxSize": pool["size"],
              "labels": ["control-plane"] if pool["control_plane"] else ["worker"],
              "isControlPlane": bool(pool["control_plane"]),
              "useControlPlaneAsWorker": bool(pool.get("as_worker")) if pool["control_plane"] else False,
              "additionalLabels": dict(pool.get("additional_labels") or {}),
              "taints": [dict(t) for t in pool.get("taints") or []]}
    return {"cloudConfig": cloud, "poolConfig": config}


def pool_summary(pool):
    """A pool as the task writes it, for the diff and the result."""
    summary = {"name": pool["name"], "control_plane": bool(pool["control_plane"])}
    for field in POOL_FIELDS:
        if pool.get(field) is not None:
            summary[field] = comparable(field, pool[field]) if field in ("azs", "node_tags") else pool[field]
    if summary.get("taints") is not None:
        summary["taints"] = [dict(t) for t in pool["taints"]]
    return summary


def _strings(values):
    return None if values is None else [str(v) for v in values]


def _labels(labels):
    return None if labels is None else dict((str(k), "" if v is None else str(v)) for k, v in labels.items())


def _taint(taint):
    return {"key": str(taint.get("key") or ""), "value": str(taint.get("value") or ""),
            "effect": str(taint.get("effect") or "")}


# -- profiles -------------------------------------------------------------------------------------------

def values_text(values):
    """Pack values for Palette, which takes them as YAML text: text as given, a mapping dumped as YAML."""
    if values is None:
        return None
    if isinstance(values, dict):
        return yaml.safe_dump(values, default_flow_style=False, sort_keys=False)
    return str(values)


def profile_entity(profile, replaces=None):
    """v1SpectroClusterProfileEntity of a resolved profile: its uid, the declared pack values and variables.

    Each pack value entry carries the pack's tag and type from the profile, as Palette's console sends them.
    """
    entity = {"uid": profile["uid"]}
    pack_values = []
    for override in profile.get("pack_values") or []:
        pack = profile["packs"].get(override["name"]) or {}
        entry = {"name": override["name"], "values": override["text"]}
        if pack.get("tag"):
            entry["tag"] = pack["tag"]
        if pack.get("type"):
            entry["type"] = pack["type"]
        pack_values.append(entry)
    if pack_values:
        entity["packValues"] = pack_values
    if profile.get("variables"):
        entity["variables"] = [{"name": str(name), "value": _variable(value)}
                               for name, value in sorted(profile["variables"].items())]
    if replaces:
        entity["replaceWithProfile"] = replaces
    return entity


def _variable(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


# -- the cluster ----------------------------------------------------------------------------------------

def cluster_config(domain, ssh_keys, ntp_servers):
    """v1MaasClusterConfig: the domain, and the SSH keys and NTP servers when given."""
    config = {"domain": domain}
    if ssh_keys is not None:
        config["sshKeys"] = trimmed_keys(ssh_keys)
    if ntp_servers is not None:
        config["ntpServers"] = list(ntp_servers)
    return config


def trimmed_keys(keys):
    """SSH public keys without the whitespace around them (a key read from a file ends with a newline), as the
    Terraform provider sends them (resource_cluster_maas.go, strings.TrimSpace of each key)."""
    return [str(key).strip() for key in keys]


def comparable_config(option, value):
    """A cluster config field in a form where equal meaning compares equal: the SSH keys as a set of trimmed keys
    (authorized_keys has no order, and the provider's ssh_keys is a set), the NTP servers in their order (Palette
    keeps the list as given, and the machines' time client tries the servers in that order), the domain as it is."""
    if option == "ssh_keys":
        return sorted(set(trimmed_keys(value or [])))
    if option == "ntp_servers":
        return list(value or [])
    return value or ""


def updated_cluster_config(current, domain, ssh_keys, ntp_servers):
    """v1MaasClusterConfig for `PUT .../clusterConfig`, which replaces the whole config (the provider's
    toMaasCloudConfigUpdate sends all of it): the cluster's config as Palette has it (enableLxdVm, staticIp and
    any other field kept), with the declared domain, SSH keys and NTP servers over it."""
    config = copy.deepcopy(current or {})
    config["domain"] = domain
    if ssh_keys is not None:
        config["sshKeys"] = trimmed_keys(ssh_keys)
    if ntp_servers is not None:
        config["ntpServers"] = list(ntp_servers)
    return config


def cluster_entity(name, account_uid, config, pools, profiles):
    """v1SpectroMaasClusterEntity: the body of a create, and of the read-only validate."""
    return {"metadata": {"name": name},
            "spec": {"cloudAccountUid": account_uid, "cloudConfig": config,
                     "machinepoolconfig": [pool_entity(pool) for pool in pools],
                     "profiles": [profile_entity(profile) for profile in profiles]}}
