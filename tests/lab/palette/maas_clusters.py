"""MAAS clusters of the Palette simulator: the cloud account, validation, and what Palette's MAAS provider does.

The seeded cloud account `lab-maas` points at the lab's MAAS simulator; its properties (resource pools,
zones, tags, domains) are read live from MAAS over HTTP (maas_client.py). A cluster made with
`POST /v1/spectroclusters/maas` gets a controller thread that does, one Palette-side step every
`step_seconds` (the lab knob `maas_cluster_step_seconds`), what cluster-api-provider-maas does
(pkg/maas/machine/machine.go DeployMachine, ReleaseMachine; controllers/maasmachine_controller.go):

- allocate a machine per missing pool member, whether or not MAAS can give one (Palette checks nothing against
  MAAS before: a machine MAAS answers with a 409 or 400 stays Pending, MAAS's answer its message, retried every
  step): `POST /MAAS/api/2.0/machines/?op=allocate` with `pool` (resourcePool), `zone` (the machine's failure
  domain, fixed when the machine is made: of the pool's azs the one with the fewest machines of the pool, as CAPI
  spreads a pool's machines over its failure domains by count; DeployMachine sends that zone and no other, so a
  machine whose zone has no matching Ready machine waits there), `tags` (only the pool's last tag, as
  maas-client-go's WithTags sends them: params.Set in a loop, maasclient/machine.go WithTags, params.go Set is
  url.Values.Set), `cpu_count` (minCPU), `mem` (minMemInMB); the lab adds `agent_name` (`palette-<cluster>`) and
  `comment` so MAAS says whose machine it is (MAAS accepts both; the provider sends neither);
- deploy it: `PUT swap_size=0`, then `op=deploy` with cloud-init user data (the cluster's SSH keys and NTP
  servers) and `distro_series` from the infra profile's OS layer (jammy for 22.04). The real provider deploys
  Palette's custom image instead (`osystem=custom`, `distro_series=<MaasMachine.spec.image>`, e.g.
  u-2004-0-k-1243-0 in examples/sample-with-workerpool.yaml; machine.go DeployMachine), which must be in
  MAAS's boot resources; the lab deploys stock Ubuntu (lab decision: the lab MAAS has no custom images);
- poll MAAS until it says Deployed (MAAS's own durations), then make the Node and mark it Ready;
- release (`op=release`) the newest machines of a pool scaled down, every machine of a deleted pool or
  cluster, and a machine whose deployment failed (a new one is allocated in its place); a machine leaves its pool
  as soon as MAAS accepts its release, and a deleted cluster is gone (GET 404) once MAAS accepted every release,
  while MAAS may still be releasing them (reconcileDelete removes the finalizer right after op=release).

Lab decisions (Palette does not document them): the Node labels (see node_object), the validation messages
(validation checks the body, the account and the profiles, never MAAS: see "validation"), the kubeconfig
identities (kubeconfigs.py), placement changes of a pool (resource pool, azs, tags, instance type) applying to
machines allocated from then on rather than rolling the pool (a machine not yet allocated whose zone left the
pool's azs is placed again), and a new cluster config (`PUT .../clusterConfig`: domain, SSH keys, NTP servers)
stored and reaching only machines deployed after it (see put_cluster_config).
"""

import base64
import copy
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import requests

from ..kube import Kube, KubeError, object_path
from .kubeconfigs import Kubeconfigs, client_user
from .maas_client import DEPLOYED, READY, MaasClient, MaasError
from .model import NAME_RULE, ApiError, Attachment, Cluster, PaletteModel, condition, new_uid, now

ACCOUNT_NAME = "lab-maas"
STEP_SECONDS = 0.2
# docs.spectrocloud.com "Cluster Removal": a cluster stuck in the Deleting state for 15 minutes becomes eligible for
# force deletion (the provider's force_delete_delay, default 20 minutes, waits at least that long before it forces).
FORCE_DELETE_AFTER_SECONDS = 900.0
FIELD_MANAGER = "palette-maas-provider"
CLUSTER_UID_LABEL = "palette.lab/cluster-uid"
POOL_LABEL = "palette.lab/machine-pool"
REMOVE_TIMEOUT = 180.0  # seconds /__lab__/reset waits for MAAS clusters to be gone
# Ubuntu releases by the version an OS layer names (ubuntu-maas 22.04 -> MAAS's distro_series jammy).
SERIES = {"20.04": "focal", "22.04": "jammy", "24.04": "noble"}
TRANSPORT_ERRORS = (MaasError, KubeError, requests.RequestException)


# -- the desired state: pools as the API gives them ---------------------------------------------------------


@dataclass
class PoolSpec:
    """One machine pool of v1MaasMachinePoolConfigEntity, checked; `view` is its v1MaasMachinePoolConfig."""

    name: str
    size: int
    control_plane: bool
    resource_pool: str
    azs: List[str]
    tags: List[str]
    min_cpu: int
    min_mem: int
    additional_labels: Dict[str, str]
    taints: List[dict]
    cp_as_worker: bool = False
    entity: dict = field(default_factory=dict)

    def view(self) -> dict:
        cloud, pool = self.entity.get("cloudConfig") or {}, self.entity.get("poolConfig") or {}
        instance = cloud.get("instanceType") or {}
        return {"name": self.name, "size": self.size, "isControlPlane": self.control_plane,
                "useControlPlaneAsWorker": self.cp_as_worker,
                "labels": list(pool.get("labels") or ["control-plane" if self.control_plane else "worker"]),
                "resourcePool": self.resource_pool, "azs": list(self.azs), "tags": list(self.tags),
                "instanceType": {"minCPU": self.min_cpu, "minMemInMB": self.min_mem,
                                 "minDiskSizeInGB": int(instance.get("minDiskSizeInGB") or 0)},
                "additionalLabels": dict(self.additional_labels),
                "additionalAnnotations": dict(pool.get("additionalAnnotations") or {}),
                "taints": copy.deepcopy(self.taints),
                "minSize": int(pool.get("minSize") or self.size), "maxSize": int(pool.get("maxSize") or self.size),
                "nodeRepaveInterval": int(pool.get("nodeRepaveInterval") or 0),
                "updateStrategy": pool.get("updateStrategy") or {"type": "RollingUpdateScaleOut"},
                "useLxdVm": bool(cloud.get("useLxdVm")), "network": cloud.get("network")}


class PoolProblem(Exception):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field, self.message = field_name, message


def _int(value, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise PoolProblem(where, f"{where} must be an integer of at least {minimum}, not {value!r}")
    return int(value)


def _strings(value, where: str) -> List[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PoolProblem(where, f"{where} must be a list of non-empty strings")
    return list(value)


def parse_pool(entry) -> PoolSpec:
    """A v1MaasMachinePoolConfigEntity checked field by field (PoolProblem names the field)."""
    if not isinstance(entry, dict):
        raise PoolProblem("", "a machine pool must be an object with cloudConfig and poolConfig")
    cloud, pool = entry.get("cloudConfig"), entry.get("poolConfig")
    if not isinstance(pool, dict) or not isinstance(cloud, dict):
        raise PoolProblem("cloudConfig" if not isinstance(cloud, dict) else "poolConfig",
                          "cloudConfig and poolConfig are required objects")
    name = pool.get("name")
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise PoolProblem("poolConfig.name", f"poolConfig.name {name!r} must be 1-63 lowercase letters, digits or '-'")
    control_plane = bool(pool.get("isControlPlane"))
    if "size" not in pool:
        raise PoolProblem("poolConfig.size", "poolConfig.size is required")
    size = _int(pool.get("size"), "poolConfig.size", 1 if control_plane else 0)
    if "resourcePool" not in cloud or not isinstance(cloud.get("resourcePool"), str):
        raise PoolProblem("cloudConfig.resourcePool", "cloudConfig.resourcePool is required")
    instance = cloud.get("instanceType")
    if not isinstance(instance, dict):
        raise PoolProblem("cloudConfig.instanceType", "cloudConfig.instanceType is required")
    min_cpu = _int(instance.get("minCPU") or 0, "cloudConfig.instanceType.minCPU")
    min_mem = _int(instance.get("minMemInMB") or 0, "cloudConfig.instanceType.minMemInMB")
    labels = pool.get("additionalLabels") or {}
    if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
        raise PoolProblem("poolConfig.additionalLabels", "poolConfig.additionalLabels must map strings to strings")
    taints = pool.get("taints") or []
    for index, taint in enumerate(taints if isinstance(taints, list) else [None]):
        if not isinstance(taint, dict) or not taint.get("key") or \
                taint.get("effect") not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise PoolProblem(f"poolConfig.taints[{index}]", f"poolConfig.taints[{index}] needs a key and an effect "
                              "of NoSchedule, PreferNoSchedule or NoExecute")
    return PoolSpec(name, size, control_plane, cloud["resourcePool"], _strings(cloud.get("azs"), "cloudConfig.azs"),
                    _strings(cloud.get("tags"), "cloudConfig.tags"), min_cpu, min_mem, dict(labels),
                    [{k: t[k] for k in ("key", "value", "effect") if t.get(k) is not None} for t in taints],
                    bool(pool.get("useControlPlaneAsWorker")) and control_plane, copy.deepcopy(entry))


CONFIG_LISTS = ("sshKeys", "ntpServers")
CONFIG_FLAGS = ("enableLxdVm", "staticIp")


def cluster_config_problems(config, where: str) -> List[Tuple[str, str]]:
    """What is wrong with a v1MaasClusterConfig (`where` is its place in the body): the domain is required (the spec's
    only required field), the lists are lists of strings, the flags booleans. Other fields are left alone, as
    Palette's API (go-swagger) ignores fields it does not know."""
    if not isinstance(config, dict):
        return [(where, f"{where} must be an object (v1MaasClusterConfig) with at least the domain")]
    problems = []
    if not isinstance(config.get("domain"), str) or not config["domain"]:
        problems.append((f"{where}.domain", f"{where}.domain is required: the MAAS domain of the cluster's machines"))
    for key in CONFIG_LISTS:
        value = config.get(key)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
            problems.append((f"{where}.{key}", f"{where}.{key} must be a list of strings"))
    for key in CONFIG_FLAGS:
        if config.get(key) is not None and not isinstance(config[key], bool):
            problems.append((f"{where}.{key}", f"{where}.{key} must be true or false"))
    return problems


def stored_cluster_config(config: dict) -> dict:
    """The v1MaasClusterConfig Palette keeps of a checked one: every field the spec has, absent ones empty (a PUT
    replaces the whole clusterConfig, as the provider's toMaasCloudConfigUpdate sends all of it)."""
    return {"domain": config["domain"], "sshKeys": list(config.get("sshKeys") or []),
            "ntpServers": list(config.get("ntpServers") or []), "enableLxdVm": bool(config.get("enableLxdVm")),
            "staticIp": bool(config.get("staticIp"))}


# -- the observed state: machines and pools of a cluster ------------------------------------------------


@dataclass
class Machine:
    """One machine of a pool (v1MaasMachine): Palette's record of a MAAS machine it allocated."""

    uid: str
    name: str
    seq: int
    created: str = field(default_factory=now)
    state: str = "Pending"  # instanceState: Pending, Provisioning, Provisioned, Running, Deleting, Failed
    state_changed: str = field(default_factory=now)
    system_id: str = ""
    hostname: str = ""
    zone: str = ""
    addresses: List[str] = field(default_factory=list)
    architecture: str = "amd64"
    cpu: int = 0
    memory: int = 0
    deploy_requested: bool = False
    release_requested: bool = False
    deleting: bool = False
    node_generation: int = 0  # the pool generation the Node's labels and taints were last applied from
    message: str = ""

    def move(self, state: str, message: str = "") -> None:
        if state != self.state:
            self.state, self.state_changed = state, now()
        self.message = message

    @property
    def ready(self) -> bool:
        return self.state == "Running" and not self.deleting


@dataclass
class Pool:
    spec: PoolSpec
    uid: str = field(default_factory=new_uid)
    machines: List[Machine] = field(default_factory=list)
    deleting: bool = False
    generation: int = 1  # bumped by a PUT: the Nodes get the pool's labels and taints again

    def active(self) -> List[Machine]:
        return [m for m in self.machines if not m.deleting]

    def ready(self) -> List[Machine]:
        return [m for m in self.machines if m.ready]

    def satisfied(self) -> bool:
        return not self.deleting and len(self.active()) == self.spec.size == len(self.ready())


@dataclass
class MaasCluster(Cluster):
    account_uid: str = ""
    config_uid: str = field(default_factory=new_uid)
    cluster_config: dict = field(default_factory=dict)  # v1MaasClusterConfig: domain, sshKeys, ntpServers, ...
    pools: Dict[str, Pool] = field(default_factory=dict)
    phase: str = "Pending"
    phase_changed: str = field(default_factory=now)
    force_delete: bool = False
    deleting_since: float = 0.0  # time.monotonic() of the DELETE: force deletion is allowed once it is old enough
    kubeconfig_ready: bool = False  # once the first control-plane machine runs: its kubeconfig can be fetched
    last_error: str = ""
    next_seq: int = 0
    os_version: str = "22.04"
    k8s_version: str = "1.31.4"

    @property
    def cloud_config_uid(self) -> str:
        return self.config_uid

    def move(self, phase: str) -> None:
        if phase != self.phase:
            self.phase, self.phase_changed = phase, now()

    def state(self) -> str:
        return self.phase

    def live_pools(self) -> List[Pool]:
        return [p for p in self.pools.values() if not p.deleting]

    def control_plane(self) -> Optional[Pool]:
        return next((p for p in self.live_pools() if p.spec.control_plane), None)

    def all_satisfied(self) -> bool:
        deleted_pools_empty = all(not p.machines for p in self.pools.values() if p.deleting)
        return all(p.satisfied() for p in self.live_pools()) and deleted_pools_empty

    def progress(self, pools: List[Pool]) -> str:
        """What the pools wait for, machine by machine, as a condition message."""
        parts = []
        for pool in pools:
            ready = len(pool.ready())
            waiting = [f"{m.name} ({m.hostname or 'no machine yet'}) {m.state}"
                       + (f": {m.message}" if m.message else "") for m in pool.machines if not m.ready]
            parts.append(f"pool {pool.spec.name}: {ready} of {pool.spec.size} machines ready"
                         + (f"; {', '.join(waiting)}" if waiting else ""))
        return "; ".join(parts)

    def conditions(self) -> List[dict]:
        plane = self.control_plane()
        plane_ready = plane is not None and len(plane.ready()) >= min(1, plane.spec.size) and plane.satisfied()
        nodes_ready = self.all_satisfied()

        def cond(ctype: str, ok: bool, reason: str, message: str) -> dict:
            return {"type": ctype, "status": "True" if ok else "False", "reason": "" if ok else reason,
                    "message": "" if ok else message, "lastProbeTime": now(), "lastTransitionTime": self.phase_changed}
        extra = f" (last error: {self.last_error})" if self.last_error else ""
        return [cond("ControlPlaneReady", plane_ready, "WaitingForControlPlane",
                     self.progress([plane] if plane else []) + extra),
                cond("NodesReady", nodes_ready, "WaitingForMachines", self.progress(self.live_pools()) + extra)]

    def health(self) -> str:
        if self.phase != "Running":
            return "Unknown"
        return "Healthy" if self.all_satisfied() else "UnHealthy"


# -- the Nodes -----------------------------------------------------------------------------------------


def node_object(cluster: MaasCluster, pool: Pool, machine: Machine) -> dict:
    """The Node a deployed machine becomes once kubeadm joins it (lab decision on labels: those kubelet sets,
    the node role, the zone, the pool's additionalLabels, and the lab's own cluster and pool labels)."""
    role = "control-plane" if pool.spec.control_plane else "worker"
    labels = {"kubernetes.io/hostname": machine.hostname, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": machine.architecture, "kubevirt.io/schedulable": "true",
              "topology.kubernetes.io/zone": machine.zone, f"node-role.kubernetes.io/{role}": "",
              CLUSTER_UID_LABEL: cluster.uid, POOL_LABEL: pool.spec.name}
    labels.update(pool.spec.additional_labels)
    taints = [dict(t) for t in pool.spec.taints]
    if pool.spec.control_plane and not pool.spec.cp_as_worker:
        # kubeadm taints a control-plane node; useControlPlaneAsWorker removes the taint.
        taints.insert(0, {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"})
    owner = ("KubeadmControlPlane", f"{cluster.name}-cp") if pool.spec.control_plane else \
        ("MachineSet", f"{cluster.name}-{pool.spec.name}")
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": machine.hostname, "labels": labels, "annotations": {
                "cluster.x-k8s.io/cluster-name": cluster.name, "cluster.x-k8s.io/machine": machine.name,
                "cluster.x-k8s.io/owner-kind": owner[0], "cluster.x-k8s.io/owner-name": owner[1]}},
            # pkg/maas/scope/machine.go SetProviderID: maas:///<zone>/<system id>.
            "spec": {"providerID": f"maas:///{machine.zone}/{machine.system_id}", "taints": taints}}


def node_status(cluster: MaasCluster, machine: Machine) -> dict:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    capacity = {"cpu": str(machine.cpu or 1), "memory": f"{machine.memory or 1024}Mi", "pods": "110"}
    addresses = [{"type": "InternalIP", "address": a} for a in machine.addresses[:1]]
    addresses.append({"type": "Hostname", "address": machine.hostname})
    return {"status": {"capacity": capacity, "allocatable": capacity, "addresses": addresses,
                       "nodeInfo": {"architecture": machine.architecture, "operatingSystem": "linux",
                                    "osImage": f"Ubuntu {cluster.os_version} LTS",
                                    "kubeletVersion": f"v{cluster.k8s_version}",
                                    "kubeProxyVersion": f"v{cluster.k8s_version}",
                                    "containerRuntimeVersion": "containerd://1.7.24", "kernelVersion": "",
                                    "machineID": machine.system_id, "systemUUID": machine.system_id,
                                    "bootID": machine.uid},
                       "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                       "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp,
                                       "lastTransitionTime": stamp}]}}


# -- the controller ------------------------------------------------------------------------------------


class MaasClusters:
    """The MAAS cloud account and every MAAS cluster's controller; api.py's handlers call it under model.lock."""

    def __init__(self, model: PaletteModel, maas: MaasClient, kube: Kube, kubeconfigs: Kubeconfigs,
                 dispatch: Callable[[Cluster, Attachment], None], remove_rbacs: Callable[[str], None],
                 ledger: Optional[Path] = None):
        """`dispatch` hands an add-on attachment to the agent once its cluster runs; `remove_rbacs(uid)` deletes
        the bindings a cluster's RBAC settings made; `ledger` records the MAAS machines the clusters hold, so a
        restarted simulator (which forgets its clusters) can give them back to MAAS."""
        self.model, self.maas, self.kube, self.kubeconfigs = model, maas, kube, kubeconfigs
        self.dispatch, self.remove_rbacs = dispatch, remove_rbacs
        self.ledger = ledger
        self.step_seconds = STEP_SECONDS
        self.force_delete_after = FORCE_DELETE_AFTER_SECONDS  # the lab knob force_delete_after_seconds
        self.account_uid = new_uid()
        self.overlord_uid = new_uid()
        self.created = now()
        self._ledger_lock = threading.Lock()

    # -- the cloud account --------------------------------------------------------------------------

    def account_view(self) -> dict:
        """v1MaasAccount, without the API key (Palette never returns a secret)."""
        return {"apiVersion": "v1", "kind": "MaasCloudAccount",
                "metadata": {"name": ACCOUNT_NAME, "uid": self.account_uid, "creationTimestamp": self.created,
                             "annotations": {"scope": "tenant", "overlordUid": self.overlord_uid}},
                "spec": {"apiEndpoint": self.maas.url, "preferredSubnets": []},
                "status": {"state": "Running"}}

    def account(self, uid: str) -> dict:
        if uid != self.account_uid:
            raise ApiError(404, "CloudAccountNotFound", f"MAAS cloud account {uid!r} not found")
        return self.account_view()

    def properties(self, uid: str, kind: str) -> dict:
        """The account's resourcePools, azs, tags or domains, as MAAS lists them now."""
        self.account(uid)
        try:
            if kind == "resourcePools":
                items = [{"name": p["name"], "description": p.get("description") or ""} for p in self.maas.pools()]
            elif kind == "azs":
                items = [{"name": z["name"], "description": z.get("description") or ""} for z in self.maas.zones()]
            elif kind == "tags":
                items = [{"name": t["name"], "comment": t.get("comment") or "", "definition": t.get("definition") or "",
                          "kernelOpts": t.get("kernel_opts") or "", "resourceUri": t.get("resource_uri") or ""}
                         for t in self.maas.tags()]
            else:
                items = [{"name": d["name"]} for d in self.maas.domains()]
        except TRANSPORT_ERRORS as err:
            raise ApiError(502, "CloudAccountError", f"MAAS of cloud account {ACCOUNT_NAME!r} did not answer: {err}")
        return {"items": items}

    # -- validation -----------------------------------------------------------------------------------
    #
    # Palette does not say what it checks of a MAAS cluster beyond the spec's schema (v1SpectroMaasClusterEntity:
    # required fields and types), and nothing in palette-sdk-go or terraform-provider-spectrocloud asks MAAS anything
    # before a create: MAAS is asked only when cluster-api-provider-maas allocates a machine (pkg/maas/machine/
    # machine.go DeployMachine, op=allocate). So no check here reads MAAS: not the resource pool, zones or tags (MAAS
    # answers an unknown one with a 400 to op=allocate, node_constraint_filter_forms.py AcquireNodeForm, which
    # becomes the machine's message, see _allocate) nor whether MAAS has enough Ready machines (a machine MAAS cannot
    # give stays Pending, its op=allocate retried every step). What is checked is the body's shape, the cloud account
    # and the profiles (the validator response has a place for each pool's and each profile's errors).

    def _resolve_profiles(self, entries, project_uid: str) -> Tuple[list, List[Tuple[str, str, str]]]:
        """([(profile, packs)], problems [(uid, field, message)]): one infra or cluster profile for MAAS, add-ons."""
        problems: List[Tuple[str, str, str]] = []
        resolved = []
        if not isinstance(entries, list) or not entries:
            return [], [("", "spec.profiles", "spec.profiles must list the cluster's infra profile and its add-ons")]
        infra = []
        for index, entry in enumerate(entries):
            uid = (entry or {}).get("uid") if isinstance(entry, dict) else None
            where = f"spec.profiles[{index}]"
            if not uid:
                problems.append(("", f"{where}.uid", f"{where}.uid is required"))
                continue
            profile = self.model.profiles.get(uid)
            if profile is None or not self.model.visible(profile, project_uid):
                problems.append((uid, f"{where}.uid", f"{where}: cluster profile {uid!r} not found"))
                continue
            if profile.published is None:
                problems.append((uid, f"{where}.uid", f"{where}: cluster profile {profile.name!r} has no published "
                                 "version"))
                continue
            if profile.profile_type in ("cluster", "infra"):
                if profile.cloud_type not in ("maas", "all"):
                    problems.append((uid, f"{where}.uid", f"{where}: profile {profile.name!r} is for cloud "
                                     f"{profile.cloud_type!r}, not maas"))
                    continue
                infra.append(profile)
            elif profile.profile_type != "add-on":
                problems.append((uid, f"{where}.uid", f"{where}: profile {profile.name!r} is of type "
                                 f"{profile.profile_type!r}; a cluster takes one infra profile and add-ons"))
                continue
            holder = Cluster("", "", project_uid, infra_uid=profile.uid)
            try:
                _profile, packs, _replaced = self.model._attachment_plan(
                    holder, dict(entry, replaceWithProfile=""), index, project_uid)
            except ApiError as err:
                problems.append((uid, f"{where}.packValues", f"{where}: {err.message}"))
                continue
            resolved.append((profile, packs))
        if len(infra) != 1 and not any(p[1].endswith(".uid") for p in problems):
            names = ", ".join(repr(p.name) for p in infra) or "none"
            problems.append((infra[1].uid if len(infra) > 1 else "", "spec.profiles",
                             f"spec.profiles must hold exactly one infra (or full cluster) profile for MAAS; it holds "
                             f"{names}"))
        return resolved, problems

    def check(self, body, project_uid: str, create: bool = True) -> dict:
        """Every problem of a create body: {general: [(field, message)], pools: {name: [(field, message)]},
        profiles: {uid: [(field, message)]}, ...}; nothing is written, MAAS is not asked.

        A create of a name the project has is a 409 (the brief's contract: names are unique per project). A validate
        (`create` False) checks the body as any create body, whether or not a cluster has its name: the spec says only
        "Validates MAAS cluster create operation" and documents no answer for a taken name, so the lab adds none (lab
        decision, the least it can invent); the name is refused by the create itself."""
        if not isinstance(body, dict):
            raise ApiError(400, "InvalidRequest", "the request body must be a v1SpectroMaasClusterEntity object")
        metadata, spec = body.get("metadata") or {}, body.get("spec")
        name = metadata.get("name") if isinstance(metadata, dict) else None
        if not isinstance(name, str) or not NAME_RULE.match(name):
            raise ApiError(400, "InvalidName", f"metadata.name {name!r} must be 1-63 lowercase letters, digits or '-', "
                           "starting and ending with a letter or digit")
        if not isinstance(spec, dict):
            raise ApiError(400, "InvalidRequest", "spec is required")
        existing = next((c for c in self.model.clusters.values()
                         if c.name == name and c.project_uid == project_uid), None)
        if existing is not None and create:
            raise ApiError(409, "SpectroClusterNameExists", f"a cluster named {name!r} already exists in the project")
        found = {"general": [], "pools": {}, "profiles": {}, "name": name}
        account_known = spec.get("cloudAccountUid") == self.account_uid
        if not account_known:
            found["general"].append(("spec.cloudAccountUid", f"spec.cloudAccountUid: MAAS cloud account "
                                     f"{spec.get('cloudAccountUid')!r} not found"))
        config = spec.get("cloudConfig")
        found["general"] += cluster_config_problems(config, "spec.cloudConfig")
        resolved, profile_problems = self._resolve_profiles(spec.get("profiles"), project_uid)
        for uid, fname, message in profile_problems:
            found["profiles"].setdefault(uid, []).append((fname, message))
        entries = spec.get("machinepoolconfig")
        specs: List[PoolSpec] = []
        if not isinstance(entries, list) or not entries:
            found["general"].append(("spec.machinepoolconfig", "spec.machinepoolconfig must list the cluster's machine "
                                     "pools, one of them the control plane"))
            entries = []
        for index, entry in enumerate(entries):
            pool_name = ((entry or {}).get("poolConfig") or {}).get("name") if isinstance(entry, dict) else None
            try:
                parsed = parse_pool(entry)
            except PoolProblem as err:
                key = pool_name if isinstance(pool_name, str) and pool_name else f"machinepoolconfig[{index}]"
                found["pools"].setdefault(key, []).append((err.field, err.message))
                continue
            if any(s.name == parsed.name for s in specs):
                found["pools"].setdefault(parsed.name, []).append(("poolConfig.name", f"two pools are named "
                                                                   f"{parsed.name!r}"))
                continue
            specs.append(parsed)
        planes = [s for s in specs if s.control_plane]
        if entries and len(planes) != 1 and len(specs) == len(entries):
            found["general"].append(("spec.machinepoolconfig", f"exactly one machine pool must be the control plane "
                                     f"(isControlPlane); {len(planes)} are"))
        found["specs"], found["resolved"] = sorted(specs, key=lambda s: not s.control_plane), resolved
        found["config"] = config if isinstance(config, dict) else {}
        return found

    @staticmethod
    def refusal(found: dict) -> Optional[ApiError]:
        """The 400 a create answers for the problems `check` found (each names its pool or field), or None."""
        messages = [message for _field, message in found["general"]]
        for uid, problems in found["profiles"].items():
            messages += [message for _field, message in problems]
        for pool, problems in found["pools"].items():
            messages += [f"machine pool {pool!r}: {fname}: {message}" for fname, message in problems]
        if not messages:
            return None
        code = "InvalidMachinePool" if found["pools"] and not found["general"] and not found["profiles"] \
            else "InvalidClusterSpec"
        return ApiError(400, code, "; ".join(messages))

    def validation_view(self, found: dict) -> dict:
        """v1SpectroClusterValidatorResponse: each pool's errors, each profile's; the rest is a 400 (lab decision)."""
        if found["general"]:
            raise ApiError(400, "InvalidClusterSpec", "; ".join(message for _f, message in found["general"]))
        checked = [s.name for s in found["specs"]]
        names = checked + [n for n in found["pools"] if n not in checked]
        results = [{"name": name, "displayName": name,
                    "errors": [{"code": "InvalidMachinePool", "message": f"{fname}: {message}"}
                               for fname, message in found["pools"].get(name, [])]} for name in names]
        profiles = [{"uid": profile.uid, "packs": {"results": []}} for profile, _packs in found["resolved"]]
        for uid, problems in found["profiles"].items():
            profiles.append({"uid": uid, "packs": {"results": [{"name": uid or "spec.profiles", "displayName": uid,
                                                                "errors": [{"code": "InvalidProfile", "message": m}
                                                                           for _f, m in problems]}]}})
        return {"machinePools": {"results": results}, "profiles": profiles}

    # -- creating, changing and deleting ---------------------------------------------------------------

    def create(self, found: dict, project_uid: str) -> MaasCluster:
        """A checked body (`check` found no problem) becomes a cluster, Pending, and its controller starts."""
        infra = next(p for p, _packs in found["resolved"] if p.profile_type in ("cluster", "infra"))
        config = found["config"]
        cluster = MaasCluster(new_uid(), found["name"], project_uid, infra_uid=infra.uid,
                              account_uid=self.account_uid, cluster_config=stored_cluster_config(config))
        for pack in infra.published or []:
            if pack.get("layer") == "os":
                cluster.os_version = pack.get("tag") or cluster.os_version
            if pack.get("layer") == "k8s":
                cluster.k8s_version = pack.get("tag") or cluster.k8s_version
        for profile, packs in found["resolved"]:
            if profile.uid == infra.uid:
                cluster.attachments[profile.uid] = Attachment(profile.uid, packs, profile.revision, {
                    p["name"]: condition("Ready", "False", "Provisioning", f"{p['name']} is being provisioned")
                    for p in packs}, picked_up=True, start_time=now())
            else:
                pending = [{"name": p["name"], "profileUid": profile.uid, "type": p["type"], "version": p["tag"],
                            "condition": condition("Ready", "False", "Pending",
                                                   f"{p['name']} waits for the cluster to be Running"),
                            "startTime": "", "endTime": "", "manifests": []} for p in packs]
                cluster.attachments[profile.uid] = Attachment(profile.uid, packs, profile.revision, generation=1,
                                                              earlier_statuses=pending)
        for spec in found["specs"]:
            cluster.pools[spec.name] = Pool(spec)
        self.model.clusters[cluster.uid] = cluster
        threading.Thread(target=self._run, args=(cluster,), daemon=True, name=f"maas-cluster-{cluster.name}").start()
        return cluster

    def pool_check(self, cluster: MaasCluster, body, name: Optional[str]) -> PoolSpec:
        """A pool of a PUT (name given) or POST: checked against its cluster (not against MAAS: see "validation");
        ApiError 400 names the field."""
        if cluster.phase == "Deleting":
            raise ApiError(409, "SpectroClusterDeleting", f"cluster {cluster.name!r} is being deleted")
        entry = dict(body) if isinstance(body, dict) else body
        if name is not None and isinstance(entry, dict):
            pool = dict(entry.get("poolConfig") or {})
            if pool.get("name") not in (None, name):
                raise ApiError(400, "InvalidMachinePool", f"machine pool {name!r}: poolConfig.name {pool['name']!r} "
                               "differs from the pool in the path")
            pool["name"] = name
            entry["poolConfig"] = pool
        try:
            spec = parse_pool(entry)
        except PoolProblem as err:
            raise ApiError(400, "InvalidMachinePool", f"machine pool {name or '?'!r}: {err.field}: {err.message}")
        current = cluster.pools.get(spec.name)
        if name is not None:
            if current is None or current.deleting:
                raise ApiError(404, "MachinePoolNotFound", f"cluster {cluster.name!r} has no machine pool {name!r}")
            if spec.control_plane != current.spec.control_plane:
                raise ApiError(400, "InvalidMachinePool", f"machine pool {name!r}: poolConfig.isControlPlane cannot "
                               "change")
        else:
            if current is not None:
                raise ApiError(409, "MachinePoolExists", f"cluster {cluster.name!r} already has a machine pool "
                               f"{spec.name!r}" + (" (still being deleted)" if current.deleting else ""))
            if spec.control_plane:
                raise ApiError(400, "InvalidMachinePool", f"machine pool {spec.name!r}: poolConfig.isControlPlane: the "
                               "cluster has its control-plane pool already")
        return spec

    def put_cluster_config(self, cluster: MaasCluster, body) -> None:
        """`PUT .../clusterConfig` (v1MaasCloudClusterConfigEntity): the cluster's v1MaasClusterConfig replaced.

        Palette keeps it on the cloud config (`GET /v1/cloudconfigs/maas/{uid}` spec.clusterConfig shows it at once).
        Lab decisions, as Palette does not document what follows: the machines already deployed keep the SSH keys and
        NTP servers they were deployed with (MAAS's cloud-init ran once; nothing is redeployed or rolled); machines
        deployed from then on (a scale up, a replacement) get the new ones (_deploy reads the config when it deploys);
        the domain is stored only (the lab's Nodes and machines do not carry it); MAAS is not asked whether the domain
        exists (no more than at create); the cluster's state and health do not change.
        """
        if cluster.phase == "Deleting":
            raise ApiError(409, "SpectroClusterDeleting", f"cluster {cluster.name!r} is being deleted")
        if not isinstance(body, dict) or "clusterConfig" not in body:
            raise ApiError(400, "InvalidRequest", "the request body must be a v1MaasCloudClusterConfigEntity: "
                           "{\"clusterConfig\": {\"domain\": ..., \"sshKeys\": [...], \"ntpServers\": [...]}}")
        problems = cluster_config_problems(body["clusterConfig"], "clusterConfig")
        if problems:
            raise ApiError(400, "InvalidClusterConfig", "; ".join(message for _field, message in problems))
        cluster.cluster_config = stored_cluster_config(body["clusterConfig"])

    def put_pool(self, cluster: MaasCluster, spec: PoolSpec) -> None:
        pool = cluster.pools[spec.name]
        if pool.spec.view() != spec.view():
            pool.spec = spec
            pool.generation += 1

    def add_pool(self, cluster: MaasCluster, spec: PoolSpec) -> Pool:
        pool = Pool(spec)
        cluster.pools[spec.name] = pool
        return pool

    def delete_pool(self, cluster: MaasCluster, name: str) -> None:
        pool = cluster.pools.get(name)
        if pool is None or pool.deleting:
            raise ApiError(404, "MachinePoolNotFound", f"cluster {cluster.name!r} has no machine pool {name!r}")
        if pool.spec.control_plane:
            raise ApiError(400, "InvalidMachinePool", f"machine pool {name!r} is the control plane: it cannot be "
                           "deleted")
        pool.deleting = True

    def delete(self, cluster: MaasCluster, force: bool) -> None:
        """`DELETE /v1/spectroclusters/{uid}[?forceDelete=true]`, under the lock.

        A plain delete moves the cluster to Deleting (again: a no-op). forceDelete ("the cluster will be force deleted
        and user has to manually clean up the provisioned cloud resources", the spec's parameter) is accepted once the
        cluster has been Deleting for `force_delete_after` seconds (docs "Cluster Removal": eligible after 15 minutes
        in Deleting; the provider first deletes, waits force_delete_delay, then forces). Before that it is refused
        with a 400 v1Error: no source says which status Palette answers, the 400 is a lab decision. A forced cluster is
        gone at the next step: its MAAS machines are left as MAAS has them (not released), its Nodes and bindings in
        the lab's apiserver deleted (lab decision: the apiserver is shared by the lab's clusters)."""
        if force:
            waited = time.monotonic() - cluster.deleting_since if cluster.phase == "Deleting" else None
            if waited is None or waited < self.force_delete_after:
                so_far = "it is not being deleted" if waited is None else \
                    f"it has been Deleting for {waited:.0f}s"
                raise ApiError(400, "ForceDeleteNotAllowed", f"cluster {cluster.name!r} cannot be force deleted: "
                               f"{so_far}; a cluster becomes eligible for force deletion once it has been Deleting "
                               f"for {self.force_delete_after:.0f}s")
            cluster.force_delete = True
            return
        if cluster.phase != "Deleting":
            cluster.deleting_since = time.monotonic()
        cluster.move("Deleting")

    def remove_all(self, timeout: float = REMOVE_TIMEOUT) -> None:
        """Every MAAS cluster deleted (machines released, Nodes and bindings gone); waits until they are."""
        with self.model.lock:
            for cluster in self.model.clusters.values():
                if isinstance(cluster, MaasCluster):
                    self.delete(cluster, force=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.model.lock:
                if not any(isinstance(c, MaasCluster) for c in self.model.clusters.values()):
                    return
            time.sleep(0.05)
        raise RuntimeError(f"MAAS clusters still being deleted after {timeout:.0f}s")

    # -- views --------------------------------------------------------------------------------------

    def cluster_by_config(self, config_uid: str, project_uid: str) -> MaasCluster:
        for cluster in self.model.clusters.values():
            if isinstance(cluster, MaasCluster) and cluster.config_uid == config_uid and \
                    (not project_uid or project_uid == cluster.project_uid):
                return cluster
        raise ApiError(404, "CloudConfigNotFound", f"MAAS cloud config {config_uid!r} not found")

    def cloud_config_view(self, cluster: MaasCluster) -> dict:
        return {"apiVersion": "v1", "kind": "MaasCloudConfig",
                "metadata": {"name": cluster.name, "uid": cluster.config_uid, "creationTimestamp": cluster.created,
                             "annotations": {"scope": "project", "projectUid": cluster.project_uid}},
                "spec": {"cloudAccountRef": {"kind": "MaasCloudAccount", "name": ACCOUNT_NAME,
                                             "uid": cluster.account_uid},
                         "clusterConfig": copy.deepcopy(cluster.cluster_config),
                         "machinePoolConfig": [p.spec.view() for p in cluster.live_pools()]},
                "status": {"conditions": cluster.conditions()}}

    @staticmethod
    def machine_view(machine: Machine) -> dict:
        return {"apiVersion": "v1", "kind": "MaasMachine",
                "metadata": {"name": machine.name, "uid": machine.uid, "creationTimestamp": machine.created,
                             "annotations": {"systemId": machine.system_id}},
                "spec": {"hostname": machine.hostname, "az": machine.zone, "nics": []},
                "status": {"instanceState": "Deleting" if machine.deleting and machine.state != "Failed"
                           else machine.state,
                           "instanceStateLastUpdate": machine.state_changed, "ready": machine.ready,
                           "health": {"state": "Healthy" if machine.ready else "Unknown",
                                      "conditions": [{"type": "Ready", "status": "True" if machine.ready else "False",
                                                      "message": machine.message}]},
                           "addresses": [{"type": "InternalIP", "address": a} for a in machine.addresses]}}

    def machines_view(self, cluster: MaasCluster, name: str) -> List[dict]:
        pool = cluster.pools.get(name)
        if pool is None:
            raise ApiError(404, "MachinePoolNotFound", f"cluster {cluster.name!r} has no machine pool {name!r}")
        return [self.machine_view(m) for m in sorted(pool.machines, key=lambda m: m.seq)]

    def pool_meta(self, cluster: Cluster) -> List[dict]:
        if not isinstance(cluster, MaasCluster):
            return []
        return [{"cloudType": "maas", "isControlPlane": p.spec.control_plane, "labels": p.spec.view()["labels"],
                 "size": p.spec.size, "healthy": len(p.ready()), "maintenanceMode": 0} for p in cluster.live_pools()]

    # -- the controller thread --------------------------------------------------------------------------

    def _run(self, cluster: MaasCluster) -> None:
        while True:
            time.sleep(self.step_seconds)
            try:
                if self._step(cluster):
                    return
                cluster.last_error = ""
            except TRANSPORT_ERRORS as err:  # MAAS or the apiserver did not answer: tried again next step
                with self.model.lock:
                    cluster.last_error = str(err)

    def _step(self, cluster: MaasCluster) -> bool:
        """One Palette-side step; True once a deleted cluster is gone."""
        with self.model.lock:
            forced = cluster.force_delete
        if forced:
            return self._force_gone(cluster)
        with self.model.lock:
            deleting = cluster.phase == "Deleting"
            if not deleting and cluster.phase == "Pending":
                cluster.move("Provisioning")
                return False
            work, fresh = [], set()
            for pool in list(cluster.pools.values()):
                if deleting or pool.deleting:
                    for machine in pool.machines:
                        machine.deleting = True
                else:
                    for machine in pool.machines:
                        if machine.state == "Failed":
                            machine.deleting = True  # a replacement is allocated in its place
                    active = pool.active()
                    newest = sorted(active, key=lambda m: m.seq, reverse=True)
                    for machine in newest[:max(0, len(active) - pool.spec.size)]:
                        machine.deleting = True  # scale down: the newest machines go first
                    for machine in pool.active():
                        if not machine.system_id and machine.zone not in (pool.spec.azs or [""]):
                            machine.zone = ""  # its zone left the pool's azs before MAAS gave it a machine
                    for machine in pool.active():
                        if not machine.system_id and not machine.zone:
                            machine.zone = _place(pool)
                    for _index in range(pool.spec.size - len(active)):
                        cluster.next_seq += 1
                        pool.machines.append(Machine(new_uid(), f"{cluster.name}-{pool.spec.name}-{_suffix()}",
                                                     cluster.next_seq))
                        pool.machines[-1].zone = _place(pool)
                        fresh.add(pool.machines[-1].uid)  # shown Pending for a step before it is allocated
                work += [(pool, machine) for machine in pool.machines if machine.uid not in fresh]
        for pool, machine in work:
            self._advance(cluster, pool, machine)
        with self.model.lock:
            for pool in list(cluster.pools.values()):
                pool.machines = [m for m in pool.machines if m.state != "Released"]
                if pool.deleting and not pool.machines:
                    del cluster.pools[pool.spec.name]
            if deleting:
                return self._finish_delete(cluster)
            self._after_step(cluster)
        return False

    def _advance(self, cluster: MaasCluster, pool: Pool, machine: Machine) -> None:
        """One transition of one machine, talking to MAAS and the apiserver outside the model's lock."""
        try:
            if machine.deleting or machine.state == "Failed":
                self._release(cluster, pool, machine)
            elif machine.state == "Pending":
                self._allocate(cluster, pool, machine)
            elif machine.state == "Provisioning" and not machine.deploy_requested:
                self._deploy(cluster, machine)
            elif machine.state == "Provisioning":
                self._watch_deployment(machine)
            elif machine.state == "Provisioned" or (
                    machine.state == "Running" and machine.node_generation != pool.generation):
                self._join(cluster, pool, machine)
        except TRANSPORT_ERRORS as err:
            with self.model.lock:
                machine.message = str(err)

    def _allocate(self, cluster: MaasCluster, pool: Pool, machine: Machine) -> None:
        """op=allocate as DeployMachine sends it (pkg/maas/machine/machine.go): the machine's own failure domain as
        `zone` (fixed when the machine was made, see _place; no other zone is tried), `pool`, `cpu_count`, `mem`, and
        `tags` as maas-client-go's WithTags sets them: `params.Set("tags", tag)` in a loop (maasclient/machine.go
        WithTags, params.go Set is url.Values.Set), so only the pool's LAST tag reaches MAAS."""
        with self.model.lock:
            spec, zone = pool.spec, machine.zone
        form = [("pool", spec.resource_pool), ("zone", zone)] + ([("tags", spec.tags[-1])] if spec.tags else [])
        form += [("cpu_count", str(spec.min_cpu)), ("mem", str(spec.min_mem)),
                 ("agent_name", f"palette-{cluster.name}"),
                 ("comment", f"Palette cluster {cluster.name}, machine pool {spec.name}, machine {machine.name}")]
        try:
            found = self.maas.allocate([(k, v) for k, v in form
                                        if v != "" and not (k in ("cpu_count", "mem") and v == "0")])
        except MaasError as err:
            # 409: no Ready machine matches; 400: MAAS does not know the pool, zone or tag (AcquireNodeForm).
            # DeployMachine returns the error ("Unable to allocate machine") and the controller requeues: the
            # machine stays Pending, MAAS's answer its message, op=allocate sent again next step in the same zone.
            if err.status not in (400, 409):
                raise
            with self.model.lock:
                machine.message = f"Unable to allocate machine: MAAS answered op=allocate with HTTP {err.status}: " \
                    f"{err.text}"
            return
        self._record(found["system_id"], cluster.name)
        with self.model.lock:
            machine.system_id, machine.hostname = found["system_id"], found["hostname"]
            machine.zone = (found.get("zone") or {}).get("name") or zone
            machine.architecture = (found.get("architecture") or "amd64/generic").split("/")[0]
            machine.cpu, machine.memory = int(found.get("cpu_count") or 0), int(found.get("memory") or 0)
            machine.move("Provisioning", "allocated in MAAS")

    def _deploy(self, cluster: MaasCluster, machine: Machine) -> None:
        with self.model.lock:  # the config as it is now: a PUT of clusterConfig reaches the machines deployed after it
            config = copy.deepcopy(cluster.cluster_config)
        cloud_init = {"ssh_authorized_keys": config.get("sshKeys") or []}
        if config.get("ntpServers"):
            cloud_init["ntp"] = {"enabled": True, "servers": config["ntpServers"]}
        user_data = base64.b64encode(("#cloud-config\n" + json.dumps(cloud_init)).encode()).decode()
        # DeployMachine disables swap first (m.Modifier().SetSwapSize(0).Update: PUT swap_size=0), then deploys.
        self.maas.request("PUT", f"/machines/{machine.system_id}/", data={"swap_size": "0"})
        self.maas.deploy(machine.system_id, {"distro_series": SERIES.get(cluster.os_version, "jammy"),
                                             "user_data": user_data})
        with self.model.lock:
            machine.deploy_requested = True
            machine.message = "MAAS is deploying it"

    def _watch_deployment(self, machine: Machine) -> None:
        try:
            found = self.maas.machine(machine.system_id)
        except MaasError as err:
            if err.status != 404:
                raise
            found = {"status_name": "Missing", "status_message": "MAAS no longer has the machine"}
        status = found.get("status_name")
        with self.model.lock:
            if status == DEPLOYED:
                machine.addresses = list(found.get("ip_addresses") or [])
                machine.move("Provisioned", "deployed; joining the cluster")
            elif status in ("Failed deployment", "Broken", "Missing", READY):
                machine.move("Failed", f"MAAS: {status}: {found.get('status_message') or ''}".strip())
            else:
                machine.message = f"MAAS: {status}"

    def _join(self, cluster: MaasCluster, pool: Pool, machine: Machine) -> None:
        with self.model.lock:
            obj, status = node_object(cluster, pool, machine), node_status(cluster, machine)
            generation = pool.generation
        path = object_path("v1", "nodes", machine.hostname)
        self.kube.apply(path, obj, FIELD_MANAGER, force=True)
        if machine.state == "Provisioned":
            self.kube.merge_patch(path + "/status", status)
            # The apiserver taints a new Node not-ready (admission TaintNodesByCondition); once it is Ready the node
            # lifecycle controller takes the taint off. The lab runs no such controller: the taints are set again.
            self.kube.apply(path, obj, FIELD_MANAGER, force=True)
        with self.model.lock:
            machine.node_generation = generation
            machine.move("Running")

    def _release(self, cluster: MaasCluster, pool: Pool, machine: Machine) -> None:
        with self.model.lock:
            replacing = any(m.state == "Pending" and not m.deleting for m in pool.machines)
        if machine.state == "Failed" and not machine.release_requested and replacing:
            return  # kept allocated until its replacement is, so MAAS does not hand the same machine out again
        if not machine.system_id:
            with self.model.lock:
                machine.move("Released")
            return
        self.kube.delete(object_path("v1", "nodes", machine.hostname))
        why = "deleted" if cluster.phase == "Deleting" else ("scaled down" if machine.state != "Failed"
                                                             else "failed to deploy")
        try:
            self.maas.release(machine.system_id, f"Palette cluster {cluster.name}: machine {machine.name} {why}")
        except MaasError as err:
            if err.status != 404:
                raise  # not accepted (MAAS down, a 409): the machine stays Deleting, the release sent again next step
        # Accepted: cluster-api-provider-maas reconcileDelete (controllers/maasmachine_controller.go) removes the
        # MaasMachine's finalizer right after ReleaseMachine returns, without waiting for MAAS to report the machine
        # Ready (it may still be Releasing or Disk erasing): the machine leaves its pool, and a deleted cluster is
        # gone once its last machine is.
        self._forget(machine.system_id)
        with self.model.lock:
            machine.release_requested = True
            machine.move("Released")

    def _force_gone(self, cluster: MaasCluster) -> bool:
        """A force-deleted cluster: its Nodes deleted, its machines left in MAAS as they are (the user cleans them up),
        forgotten by the ledger; then the cluster is gone."""
        with self.model.lock:
            machines = [m for pool in cluster.pools.values() for m in pool.machines]
        for machine in machines:
            if machine.hostname:
                self.kube.delete(object_path("v1", "nodes", machine.hostname))
            if machine.system_id:
                self._forget(machine.system_id)
        with self.model.lock:
            for pool in cluster.pools.values():
                pool.machines = []
            return self._finish_delete(cluster)

    def _finish_delete(self, cluster: MaasCluster) -> bool:
        """Under the lock: once MAAS accepted every machine's release, the cluster's binding and RBAC go, and so does
        it (GET 404), whatever MAAS still does with the machines."""
        if any(pool.machines for pool in cluster.pools.values()):
            return False
        if not any(c.name == cluster.name for c in self.model.clusters.values() if c is not cluster):
            self.kubeconfigs.unbind(cluster.name)
        self.remove_rbacs(cluster.uid)
        self.model.clusters.pop(cluster.uid, None)
        return True

    def _after_step(self, cluster: MaasCluster) -> None:
        """Under the lock: the cluster's state, its kubeconfig, its infra packs and add-ons follow its machines."""
        plane = cluster.control_plane()
        if not cluster.kubeconfig_ready and plane is not None and plane.ready():
            self.kubeconfigs.bind(cluster.name, cluster.uid)
            cluster.kubeconfig_ready = True
        if cluster.phase == "Provisioning" and cluster.all_satisfied():
            cluster.move("Running")
            infra = cluster.attachments.get(cluster.infra_uid)
            if infra is not None:
                infra.conditions = {p["name"]: condition("Ready", "True", "Deployed", f"{p['name']} is deployed")
                                    for p in infra.packs}
                infra.end_time = now()
        if cluster.phase == "Running":
            for attachment in list(cluster.attachments.values()):
                if attachment.profile_uid != cluster.infra_uid and not attachment.dispatched:
                    attachment.dispatched = True
                    self.dispatch(cluster, attachment)

    # -- the ledger of allocated machines ---------------------------------------------------------------

    def _load(self) -> Dict[str, str]:
        if self.ledger is None or not self.ledger.exists():
            return {}
        return json.loads(self.ledger.read_text() or "{}")

    def _record(self, system_id: str, cluster_name: str) -> None:
        with self._ledger_lock:
            if self.ledger is not None:
                held = self._load()
                held[system_id] = cluster_name
                self.ledger.write_text(json.dumps(held))

    def _forget(self, system_id: str) -> None:
        with self._ledger_lock:
            if self.ledger is not None:
                held = self._load()
                held.pop(system_id, None)
                self.ledger.write_text(json.dumps(held))

    def recover(self) -> None:
        """At start: what an earlier run of the simulator left (it keeps no clusters) given back: the MAAS machines it
        held released, its Nodes and MAAS clusters' bindings deleted."""
        with self._ledger_lock:
            held = self._load()
        for system_id in held:
            try:
                self.maas.release(system_id, "Palette simulator restarted: its clusters are gone")
            except MaasError:
                pass  # gone, or already released
            self._forget(system_id)
        for item in self.kube.get(object_path("v1", "nodes"), labelSelector=CLUSTER_UID_LABEL).get("items", []):
            self.kube.delete(object_path("v1", "nodes", item["metadata"]["name"]))
        lab_binding = client_user(self.model.cluster.name)
        for name in self.kubeconfigs.bindings():
            if name != lab_binding:
                self.kube.delete(object_path("rbac.authorization.k8s.io/v1", "clusterrolebindings", name))


def _place(pool: Pool) -> str:
    """The failure domain of a new machine of the pool: of the pool's azs, the one with the fewest of its machines (the
    earlier in azs on a tie), as CAPI spreads a pool's machines over its failure domains by count, whatever MAAS has
    free ("" with no azs: op=allocate then sends no zone)."""
    counts = {zone: sum(1 for m in pool.active() if m.zone == zone) for zone in pool.spec.azs}
    return min(pool.spec.azs, key=lambda z: (counts[z], pool.spec.azs.index(z))) if pool.spec.azs else ""


def _suffix() -> str:
    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _index in range(5))


__all__ = ["ACCOUNT_NAME", "MaasCluster", "MaasClusters", "STEP_SECONDS"]
