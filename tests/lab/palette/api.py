"""The Palette simulator's HTTP API: Palette's `/v1` paths, ApiKey auth, ProjectUid scope, 429s, a request log.

The handlers are thin over model.PaletteModel; attaching a profile hands its packs to agent.Agent.
`/__lab__/` paths (no ApiKey; the collection never calls them) inject faults and reset the simulator.
"""

import base64
import json
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, urlsplit

import yaml

from ..simulator_http import RequestLog, VerbHandler, mirrors, spend_fault
from . import model as palette_model
from .agent import APPLY_DELAY_SECONDS, DEPLOY_SECONDS, Agent
from .kubeconfigs import Kubeconfigs, admin_user, client_user
from .maas_client import MaasClient
from .maas_clusters import ACCOUNT_NAME, MaasCluster, MaasClusters
from .maas_clusters import FORCE_DELETE_AFTER_SECONDS
from .maas_clusters import STEP_SECONDS as MAAS_STEP_SECONDS
from .model import ApiError, PaletteModel

# Palette's published limits per parent resource: (path pattern, requests per second, burst factor).
RATE_LIMITS = (
    (re.compile(r"^/v1/spectroclusters/[^/]+/assets"), 10, 5),
    (re.compile(r"^/v1/(clusterprofiles|cloudconfigs|spectroclusters)(/|$)"), 50, 5),
)
DEFAULT_RATE, DEFAULT_BURST = 10, 5
READ_ONLY_POSTS = re.compile(r"^/v1/(dashboard/clusterprofiles|dashboard/spectroclusters/search|packs/search"
                             r"|spectroclusters/maas/validate)$")


def parent_resource(path: str) -> Tuple[str, float, int]:
    """The bucket a request counts against: `/v1/clusterprofiles` and `/v1/clusterprofiles/macros` count together."""
    for pattern, rate, burst in RATE_LIMITS:
        match = pattern.match(path)
        if match:
            return match.group(0).rstrip("/"), rate, burst
    parts = path.split("/")
    return "/".join(parts[:3]), DEFAULT_RATE, DEFAULT_BURST


class RateLimiter:
    """Token buckets per parent resource: `rate` tokens a second, at most rate x burst in store."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.buckets: Dict[str, List[float]] = {}  # key -> [tokens, last refill]
        self.lock = threading.Lock()

    def admit(self, path: str) -> Optional[int]:
        """None if the request may go on, else the seconds for Retry-After."""
        key, rate, burst = parent_resource(path)
        now = self.clock()
        with self.lock:
            tokens, last = self.buckets.get(key, [float(rate * burst), now])
            tokens = min(float(rate * burst), tokens + (now - last) * rate)
            if tokens >= 1.0:
                self.buckets[key] = [tokens - 1.0, now]
                return None
            self.buckets[key] = [tokens, now]
            return max(1, math.ceil((1.0 - tokens) / rate))

    def reset(self) -> None:
        with self.lock:
            self.buckets.clear()


@dataclass
class Faults:
    http_429: int = 0  # the next n API requests are answered 429 (a storm), with Retry-After below
    retry_after: int = 1
    # Whether a 429 carries Retry-After at all: Palette's SDK never reads it (api/apiutil/transport/runtime.go
    # Submit retries 429 on its own backoff), so a client must cope without it.
    retry_after_header: bool = True
    http_5xx: int = 0  # the next n API requests fail with status_5xx
    status_5xx: int = 503
    drop_connections: int = 0  # the next n API requests are cut without an answer
    lose_write_answers: int = 0  # the next n writes are carried out, then cut before their answer
    refuse_writes: int = 0  # the next n writes are refused with refuse_status and Palette's error body, not done
    refuse_status: int = 500
    slow_seconds: float = 0.0  # every API request waits this long first
    rate_limit: bool = True  # Palette's per-resource limits


@dataclass
class Request:
    method: str
    path: str
    query: Dict[str, List[str]]
    body: object
    project: str  # the ProjectUid header, "" for the tenant scope

    def arg(self, name: str, default: str = "") -> str:
        return (self.query.get(name) or [default])[0]

    def flag(self, name: str) -> bool:
        return self.arg(name).lower() == "true"


Response = Tuple[int, object]


class PaletteApi:
    def __init__(self, model: PaletteModel, api_key: str, log: RequestLog, agent: Agent, kubeconfig: str,
                 kubeconfigs: Optional[Kubeconfigs] = None, maas: Optional[MaasClient] = None,
                 ledger: Optional[Path] = None):
        self.model, self.api_key, self.log, self.agent = model, api_key, log, agent
        self.kubeconfig = kubeconfig  # lab-cluster's kubeconfig and adminKubeconfig: the lab's admin kubeconfig
        self.kubeconfigs = kubeconfigs  # the client (and MAAS clusters' admin) kubeconfigs, signed by the lab CA
        # The MAAS cloud account and clusters (maas_clusters.py); without a MAAS client (unit tests, the contract
        # check) they are there but cannot reach MAAS.
        self.maas = MaasClusters(model, maas or MaasClient("https://127.0.0.1:1/MAAS", "a:b:c", ""),
                                 agent.kube if agent else None, kubeconfigs, self._dispatch,
                                 agent.remove_rbacs if agent else (lambda _uid: None), ledger)
        self.faults = Faults()
        self.limiter = RateLimiter()
        profile, cluster = r"/v1/clusterprofiles/(?P<uid>[^/]+)", r"/v1/spectroclusters/(?P<uid>[^/]+)"
        account, config = r"/v1/cloudaccounts/maas/(?P<uid>[^/]+)", r"/v1/cloudconfigs/maas/(?P<config>[^/]+)"
        self.routes = [(method, re.compile("^" + pattern + "$"), handler) for method, pattern, handler in (
            ("GET", r"/v1/dashboard/projects/metadata", self.projects_metadata),
            ("GET", r"/v1/registries/metadata", self.registries_metadata),
            ("GET", r"/v1/packs", self.packs_list),
            ("GET", r"/v1/packs/(?P<name>[^/]+)/registries/(?P<registry>[^/]+)", self.pack_by_name),
            ("GET", r"/v1/packs/(?P<uid>[^/]+)", self.pack_by_uid),
            ("POST", r"/v1/clusterprofiles", self.profile_create),
            ("GET", r"/v1/clusterprofiles/validate/name", self.profile_validate_name),
            ("GET", profile, self.profile_get),
            ("PUT", profile, self.profile_put),
            ("DELETE", profile, self.profile_delete),
            ("PATCH", profile + "/metadata", self.profile_patch_metadata),
            ("PATCH", profile + "/publish", self.profile_publish),
            ("POST", profile + "/clone", self.profile_clone),
            ("GET", profile + "/variables", self.profile_variables),
            ("GET", profile + r"/packs/(?P<pack>[^/]+)/manifests", self.profile_manifests),
            ("GET", profile + r"/packs/(?P<pack>[^/]+)/manifests/(?P<manifest>[^/]+)", self.profile_manifest),
            ("GET", r"/v1/dashboard/clusterprofiles/metadata", self.profiles_metadata),
            ("POST", r"/v1/dashboard/clusterprofiles", self.profiles_summary),
            ("GET", r"/v1/cloudaccounts/maas", self.maas_accounts),
            ("GET", account, self.maas_account),
            ("GET", account + "/properties/resourcePools", self.maas_account_pools),
            ("GET", account + "/properties/azs", self.maas_account_azs),
            ("GET", account + "/properties/tags", self.maas_account_tags),
            ("GET", account + "/properties/domains", self.maas_account_domains),
            ("POST", r"/v1/spectroclusters/maas", self.maas_cluster_create),
            ("POST", r"/v1/spectroclusters/maas/validate", self.maas_cluster_validate),
            ("GET", config, self.maas_cloud_config),
            ("PUT", config + "/clusterConfig", self.maas_cluster_config_update),
            ("POST", config + "/machinePools", self.maas_pool_create),
            ("PUT", config + r"/machinePools/(?P<name>[^/]+)", self.maas_pool_update),
            ("DELETE", config + r"/machinePools/(?P<name>[^/]+)", self.maas_pool_delete),
            ("GET", config + r"/machinePools/(?P<name>[^/]+)/machines", self.maas_pool_machines),
            ("GET", cluster, self.cluster_get),
            ("DELETE", cluster, self.cluster_delete),
            ("GET", r"/v1/dashboard/spectroclusters/(?P<uid>[^/]+)/overview", self.cluster_overview),
            ("GET", cluster + "/profiles", self.cluster_profiles),
            ("PATCH", cluster + "/profiles", self.cluster_profiles_patch),
            ("PUT", cluster + "/profiles", self.cluster_profiles_put),
            ("DELETE", cluster + "/profiles", self.cluster_profiles_delete),
            ("GET", cluster + "/assets/kubeconfig", self.cluster_kubeconfig),
            ("GET", cluster + "/assets/adminKubeconfig", self.cluster_admin_kubeconfig),
            ("GET", cluster + "/assets/kubeconfigclient", self.cluster_client_kubeconfig),
            ("GET", cluster + "/config/rbacs", self.cluster_rbacs),
            ("PUT", cluster + "/config/rbacs", self.cluster_rbacs_put),
            ("POST", r"/v1/dashboard/spectroclusters/search", self.clusters_search),
        )]

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        for method, pattern, handler in self.routes:
            match = pattern.match(request.path)
            if match and method == request.method:
                try:
                    with self.model.lock:
                        self.model.check_scope(request.project)
                        return handler(request, **match.groupdict())
                except ApiError as err:
                    return err.status, err.body()
        if any(pattern.match(request.path) for _method, pattern, _handler in self.routes):
            return 405, ApiError(405, "MethodNotAllowed", f"{request.method} is not allowed on {request.path}").body()
        return 404, ApiError(404, "ResourceNotFound", f"no such API path: {request.path}").body()

    @staticmethod
    def mutating(method: str, path: str) -> bool:
        return method in ("POST", "PUT", "PATCH", "DELETE") and not READ_ONLY_POSTS.match(path)

    # -- projects, registries, packs --------------------------------------------------------------

    @mirrors("v1ProjectsMetadata", source="palette-sdk-go client/project.go GetProjects")
    def projects_metadata(self, request: Request) -> Response:
        wanted = request.arg("name")
        return 200, {"items": [{"metadata": {"name": name, "uid": uid}}
                               for uid, name in self.model.projects.items() if not wanted or name == wanted]}

    @mirrors("v1RegistriesMetadata", source="palette-sdk-go client/registry.go getRegistryCommon")
    def registries_metadata(self, _request: Request) -> Response:
        return 200, {"items": [{"name": palette_model.REGISTRY_NAME, "uid": self.model.registry_uid, "kind": "pack",
                                "scope": "system", "isPrivate": False, "isDefault": True}]}

    @mirrors("v1PacksSummaryList", source="palette-sdk-go client/pack.go GetPacks")
    def packs_list(self, request: Request) -> Response:
        summaries = [s for s in self.model.pack_summaries() if pack_filter_matches(request.arg("filters"), s)]
        items, meta = palette_model.page(summaries, _int(request.arg("limit")), request.arg("continue"),
                                         _int(request.arg("offset")))
        return 200, {"items": items, "listmeta": meta}

    @mirrors("v1PacksNameRegistryUidList", source="palette-sdk-go client/pack.go GetPacksByNameAndRegistry")
    def pack_by_name(self, _request: Request, name: str, registry: str) -> Response:
        if name != palette_model.PACK_NAME or registry != self.model.registry_uid:
            raise ApiError(404, "PackNotFound", f"pack {name!r} not found in registry {registry!r}")
        return 200, self.model.pack_entity(list(self.model.packs.values()))

    @mirrors("v1PacksUid", source="palette-sdk-go client/pack.go GetPack")
    def pack_by_uid(self, _request: Request, uid: str) -> Response:
        version = self.model.pack_by_uid(uid)
        if version is None:
            raise ApiError(404, "PackNotFound", f"pack {uid!r} not found")
        return 200, self.model.pack_entity([version])

    # -- cluster profiles -------------------------------------------------------------------------

    def _profile(self, request: Request, uid: str, writable: bool = False):
        return self.model.profile(uid, request.project, writable)

    @mirrors("v1ClusterProfilesCreate", source="palette-sdk-go client/cluster_profile.go CreateClusterProfile")
    def profile_create(self, request: Request) -> Response:
        profile = self.model.create_profile(_object(request.body), request.project, request.flag("publish"))
        return 201, {"uid": profile.uid}

    @mirrors("v1ClusterProfilesValidateNameVersion",
             source="palette-sdk-go api/client/v1 V1ClusterProfilesValidateNameVersion")
    def profile_validate_name(self, request: Request) -> Response:
        self.model.validate_name(request.arg("name"), request.arg("version") or "1.0.0", request.project)
        return 204, None

    @mirrors("v1ClusterProfilesGet", source="palette-sdk-go client/cluster_profile.go GetClusterProfile")
    def profile_get(self, request: Request, uid: str) -> Response:
        return 200, self.model.profile_view(self._profile(request, uid))

    @mirrors("v1ClusterProfilesUpdate", source="palette-sdk-go client/cluster_profile.go UpdateClusterProfile")
    def profile_put(self, request: Request, uid: str) -> Response:
        self.model.update_profile(self._profile(request, uid, writable=True), _object(request.body))
        return 204, None

    @mirrors("v1ClusterProfilesDelete", source="palette-sdk-go client/cluster_profile.go DeleteClusterProfile")
    def profile_delete(self, request: Request, uid: str) -> Response:
        self.model.delete_profile(self._profile(request, uid, writable=True))
        return 204, None

    @mirrors("v1ClusterProfilesUidMetadataUpdate",
             source="palette-sdk-go client/cluster_profile.go PatchClusterProfile")
    def profile_patch_metadata(self, request: Request, uid: str) -> Response:
        self.model.patch_metadata(self._profile(request, uid, writable=True), _object(request.body))
        return 204, None

    @mirrors("v1ClusterProfilesPublish", source="palette-sdk-go client/cluster_profile.go PublishClusterProfile")
    def profile_publish(self, request: Request, uid: str) -> Response:
        self.model.publish(self._profile(request, uid, writable=True))
        return 204, None

    @mirrors("v1ClusterProfilesUidClone", source="palette-sdk-go client/cluster_profile.go CloneClusterProfile")
    def profile_clone(self, request: Request, uid: str) -> Response:
        clone = self.model.clone_profile(self._profile(request, uid), _object(request.body), request.project)
        return 201, {"uid": clone.uid}

    @mirrors("V1ClusterProfilesUidVariablesGet", source="palette-sdk-go client/cluster_profile.go GetProfileVariables")
    def profile_variables(self, request: Request, uid: str) -> Response:
        return 200, {"variables": list(self._profile(request, uid).variables)}

    def _manifest_views(self, request: Request, uid: str, pack_name: str) -> List[dict]:
        profile = self._profile(request, uid)
        found: Dict[str, dict] = {}
        for state, packs in (("published", profile.published), ("draft", profile.draft)):
            for pack in packs or []:
                if pack["name"] != pack_name:
                    continue
                for manifest in pack.get("manifests", []):
                    view = found.setdefault(manifest["uid"], {"metadata": {"name": manifest["name"],
                                                                           "uid": manifest["uid"]}, "spec": {}})
                    view["spec"][state] = {"content": manifest["content"], "digest": ""}
        if not found and not any(p["name"] == pack_name for p in (profile.published or []) + (profile.draft or [])):
            raise ApiError(404, "PackNotFound", f"cluster profile {profile.name!r} has no pack {pack_name!r}")
        return list(found.values())

    @mirrors("v1ClusterProfilesUidPacksUidManifests",
             source="palette-sdk-go client/pack.go GetClusterProfileManifestPack")
    def profile_manifests(self, request: Request, uid: str, pack: str) -> Response:
        return 200, {"items": self._manifest_views(request, uid, pack)}

    @mirrors("v1ClusterProfilesUidPacksNameManifestsUidGet",
             source="palette-sdk-go api/client/v1 V1ClusterProfilesUIDPacksNameManifestsUIDGet")
    def profile_manifest(self, request: Request, uid: str, pack: str, manifest: str) -> Response:
        for view in self._manifest_views(request, uid, pack):
            if view["metadata"]["uid"] == manifest:
                return 200, view
        raise ApiError(404, "ManifestNotFound", f"manifest {manifest!r} not found in pack {pack!r}")

    @mirrors("v1ClusterProfilesMetadata",
             source="palette-sdk-go client/cluster_profile.go GetClusterProfileUID, GetClusterProfiles")
    def profiles_metadata(self, request: Request) -> Response:
        return 200, {"items": [{"metadata": {"name": p.name, "uid": p.uid, "annotations": {"scope": p.scope}},
                                "spec": {"cloudType": p.cloud_type, "version": p.version}}
                               for p in self.model.listed_profiles(request.project)]}

    @mirrors("v1ClusterProfilesFilterSummary", source="palette-sdk-go api/client/v1 V1ClusterProfilesFilterSummary")
    def profiles_summary(self, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        profiles = [p for p in self.model.listed_profiles(request.project)
                    if profile_filter_matches(body.get("filter") or {}, p)]
        for sort in reversed(body.get("sort") or []):
            attribute = {"profileName": "name", "profileType": "profile_type", "environment": "cloud_type",
                         "creationTimestamp": "created", "lastModifiedTimestamp": "modified"}.get(sort.get("field"))
            if attribute:
                profiles.sort(key=lambda p, a=attribute: getattr(p, a), reverse=sort.get("order") == "desc")
        items, meta = palette_model.page(profiles, _int(request.arg("limit")), request.arg("continue"),
                                         _int(request.arg("offset")))
        return 200, {"items": [self.model.summary_view(p) for p in items], "listmeta": meta}

    # -- the cluster ------------------------------------------------------------------------------

    def _cluster(self, request: Request, uid: str):
        return self.model.cluster_by_uid(uid, request.project)

    # status.conditions and status.packs as the provider's add-on wait reads them: terraform-provider-spectrocloud
    # spectrocloud/cluster_common_attachment.go resourceAddonDeploymentStateRefreshFunc (model.cluster_view).
    @mirrors("v1SpectroClustersGet", source="palette-sdk-go client/cluster.go GetCluster")
    def cluster_get(self, request: Request, uid: str) -> Response:
        return 200, self.model.cluster_view(self._cluster(request, uid))

    @mirrors("v1SpectroClustersGetProfiles", source="palette-sdk-go api/client/v1 V1SpectroClustersGetProfiles")
    def cluster_profiles(self, request: Request, uid: str) -> Response:
        return 200, {"profiles": self.model.cluster_profiles_view(self._cluster(request, uid))}

    def _attach(self, request: Request, uid: str, replace_all: bool) -> Response:
        cluster = self._cluster(request, uid)
        if cluster.state() == "Deleting":
            raise ApiError(409, "SpectroClusterDeleting", f"cluster {cluster.name!r} is being deleted")
        started = self.model.attach(cluster, _object(request.body).get("profiles"), request.project, replace_all)
        for attachment in started:
            # A MAAS cluster's add-ons wait until it is Running: its controller hands them over then.
            if cluster.state() == "Running":
                self._dispatch(cluster, attachment)
        return 204, None

    def _dispatch(self, _cluster, attachment) -> None:
        attachment.dispatched = True
        self.agent.deploy(attachment, self._pick_up, self._report)

    def _pick_up(self, attachment) -> None:
        with self.model.lock:
            self.model.pick_up(attachment)

    def _report(self, attachment, conditions) -> None:
        with self.model.lock:
            self.model.finish(attachment, conditions)

    @mirrors("v1SpectroClustersPatchProfiles",
             source="palette-sdk-go client/addon_deployment_update.go ClustersPatchProfiles")
    def cluster_profiles_patch(self, request: Request, uid: str) -> Response:
        return self._attach(request, uid, replace_all=False)

    @mirrors("v1SpectroClustersUpdateProfiles", source="palette-sdk-go client/cluster.go UpdateClusterProfileValues")
    def cluster_profiles_put(self, request: Request, uid: str) -> Response:
        return self._attach(request, uid, replace_all=True)

    @mirrors("v1SpectroClustersDeleteProfiles",
             source="palette-sdk-go client/addon_deployment_update.go DeleteAddonDeployment")
    def cluster_profiles_delete(self, request: Request, uid: str) -> Response:
        self.model.detach(self._cluster(request, uid), _object(request.body).get("profileUids"))
        return 204, None

    def _kubeconfig(self, request: Request, uid: str) -> Response:
        cluster = self._cluster(request, uid)
        if isinstance(cluster, MaasCluster):
            self._kubeconfig_ready(cluster)
            return 200, self.kubeconfigs.admin(cluster.name).encode()
        return 200, self_contained(self.kubeconfig).encode()

    @staticmethod
    def _kubeconfig_ready(cluster) -> None:
        # Lab decision: Palette has a cluster's kubeconfig once its control plane runs; until then a 404.
        if isinstance(cluster, MaasCluster) and not cluster.kubeconfig_ready:
            raise ApiError(404, "KubeconfigNotFound", f"cluster {cluster.name!r} has no kubeconfig yet: its control "
                           f"plane is not running (state {cluster.state()})")

    @mirrors("v1SpectroClustersUidKubeConfig", source="palette-sdk-go client/cluster.go GetClusterKubeConfig")
    def cluster_kubeconfig(self, request: Request, uid: str) -> Response:
        return self._kubeconfig(request, uid)

    @mirrors("v1SpectroClustersUidAdminKubeConfig", source="palette-sdk-go client/cluster.go GetClusterAdminKubeConfig")
    def cluster_admin_kubeconfig(self, request: Request, uid: str) -> Response:
        return self._kubeconfig(request, uid)

    # The client kubeconfig: a certificate with no system:masters organisation, made cluster-admin by a
    # ClusterRoleBinding (kubeconfigs.py; the lab decision is documented there).
    @mirrors("v1SpectroClustersUidKubeConfigClientGet",
             source="palette-sdk-go client/cluster.go GetClusterClientKubeConfig")
    def cluster_client_kubeconfig(self, request: Request, uid: str) -> Response:
        cluster = self._cluster(request, uid)
        self._kubeconfig_ready(cluster)
        return 200, self.kubeconfigs.client(cluster.name).encode()

    @mirrors("v1SpectroClustersUidConfigRbacsGet",
             source="palette-sdk-go client/cluster_rbac_config.go GetClusterRbacConfig")
    def cluster_rbacs(self, request: Request, uid: str) -> Response:
        return 200, {"items": self._cluster(request, uid).rbacs}

    @mirrors("v1SpectroClustersUidConfigRbacsUpdate",
             source="palette-sdk-go client/cluster_rbac_config.go UpdateClusterRbacConfig")
    def cluster_rbacs_put(self, request: Request, uid: str) -> Response:
        cluster = self._cluster(request, uid)
        rbacs = self.model.set_rbacs(cluster, _object(request.body))
        if cluster is self.model.cluster:
            self.agent.apply_rbacs(rbacs)
        else:
            self.agent.apply_rbacs(rbacs, cluster.uid, f"-{cluster.name}")
        return 204, None

    @mirrors("v1SpectroClustersSearchFilterSummary", source="palette-sdk-go client/cluster.go SearchClusterSummaries")
    def clusters_search(self, request: Request) -> Response:
        body = request.body if isinstance(request.body, dict) else {}
        matches = [c for c in self.model.visible_clusters(request.project)
                   if cluster_filter_matches(body.get("filter") or {}, c)]
        items, meta = palette_model.page(matches, _int(request.arg("limit")), request.arg("continue"),
                                         _int(request.arg("offset")))
        return 200, {"items": [{
            "metadata": {"name": c.name, "uid": c.uid, "creationTimestamp": c.created,
                         "annotations": {"scope": "project", "projectUid": c.project_uid}},
            "specSummary": {"projectMeta": {"name": self.model.projects[c.project_uid], "uid": c.project_uid},
                            "cloudConfig": {"cloudType": "maas", "uid": c.cloud_config_uid,
                                            "machinePools": self.maas.pool_meta(c)},
                            "clusterProfileTemplates": [{"uid": a.profile_uid} for a in c.attachments.values()]},
            "status": {"state": c.state(), "health": {"state": c.health()}}} for c in items], "listmeta": meta}

    @mirrors("v1SpectroClustersDelete", source="palette-sdk-go client/cluster.go DeleteCluster, ForceDeleteCluster; "
             "terraform-provider-spectrocloud spectrocloud/cluster_common_crud.go resourceClusterDelete "
             "(force_delete_delay); docs.spectrocloud.com Cluster Removal (force delete after 15 minutes Deleting); "
             "cluster-api-provider-maas controllers/maasmachine_controller.go reconcileDelete, "
             "pkg/maas/machine/machine.go ReleaseMachine")
    def cluster_delete(self, request: Request, uid: str) -> Response:
        cluster = self._cluster(request, uid)
        if not isinstance(cluster, MaasCluster):
            raise ApiError(400, "InvalidRequest", f"cluster {cluster.name!r} is the lab's own cluster: it cannot be "
                           "deleted")
        self.maas.delete(cluster, request.flag("forceDelete"))
        return 204, None

    @mirrors("v1SpectroClustersSummaryUidOverview", source="palette-sdk-go client/cluster.go GetClusterOverview; "
             "terraform-provider-spectrocloud spectrocloud/cluster_common_crud.go (Running-Healthy)")
    def cluster_overview(self, request: Request, uid: str) -> Response:
        cluster = self._cluster(request, uid)
        view = self.model.cluster_view(cluster)
        return 200, {"metadata": view["metadata"],
                     "spec": {"cloudConfig": {"cloudType": "maas", "uid": cluster.cloud_config_uid,
                                              "machinePools": self.maas.pool_meta(cluster)},
                              "cloudaccount": {"name": ACCOUNT_NAME, "uid": self.maas.account_uid},
                              "clusterProfileTemplates": view["spec"]["clusterProfileTemplates"]},
                     "status": {"state": cluster.state(), "conditions": view["status"]["conditions"],
                                "packs": view["status"]["packs"],
                                "health": {"state": cluster.health(), "lastHeartBeatTimestamp": palette_model.now(),
                                           "conditions": [{"type": c["type"], "message": c["message"]}
                                                          for c in view["status"]["conditions"]
                                                          if c["status"] != "True"]}}}

    # -- the MAAS cloud account and MAAS clusters (maas_clusters.py) --------------------------------------

    @mirrors("v1CloudAccountsMaasList", source="palette-sdk-go client/account_maas.go GetCloudAccountsMaas; "
             "client/account.go GetCloudAccountMaasByName")
    def maas_accounts(self, request: Request) -> Response:
        items, meta = palette_model.page([self.maas.account_view()], _int(request.arg("limit")),
                                         request.arg("continue"), _int(request.arg("offset")))
        return 200, {"items": items, "listmeta": meta}

    @mirrors("v1CloudAccountsMaasGet", source="palette-sdk-go client/account_maas.go GetCloudAccountMaas")
    def maas_account(self, _request: Request, uid: str) -> Response:
        return 200, self.maas.account(uid)

    # The properties are read from MAAS at each request, as Palette reads them through the account's PCG.
    @mirrors("v1MaasAccountsUidPools", source="spec v1MaasAccountsUidPools; MAAS api/resourcepools.py "
             "ResourcePoolsHandler.read")
    def maas_account_pools(self, _request: Request, uid: str) -> Response:
        return 200, self.maas.properties(uid, "resourcePools")

    @mirrors("v1MaasAccountsUidAzs", source="spec v1MaasAccountsUidAzs; MAAS api/zones.py ZonesHandler.read")
    def maas_account_azs(self, _request: Request, uid: str) -> Response:
        return 200, self.maas.properties(uid, "azs")

    @mirrors("v1MaasAccountsUidTags", source="spec v1MaasAccountsUidTags; MAAS api/tags.py TagsHandler.read")
    def maas_account_tags(self, _request: Request, uid: str) -> Response:
        return 200, self.maas.properties(uid, "tags")

    @mirrors("v1MaasAccountsUidDomains", source="spec v1MaasAccountsUidDomains; MAAS api/domains.py "
             "DomainsHandler.read")
    def maas_account_domains(self, _request: Request, uid: str) -> Response:
        return 200, self.maas.properties(uid, "domains")

    def _project_for_create(self, request: Request) -> str:
        if not request.project:
            raise ApiError(400, "InvalidRequest", "a cluster is made in a project: send its uid in the ProjectUid "
                           "header")
        return request.project

    @mirrors("v1SpectroClustersMaasCreate", source="palette-sdk-go client/cluster_maas.go CreateClusterMaas; "
             "cluster-api-provider-maas pkg/maas/machine/machine.go DeployMachine")
    def maas_cluster_create(self, request: Request) -> Response:
        project = self._project_for_create(request)
        found = self.maas.check(request.body, project)
        refusal = self.maas.refusal(found)
        if refusal is not None:
            raise refusal
        return 201, {"uid": self.maas.create(found, project).uid}

    @mirrors("v1SpectroClustersMaasValidate", source="spec v1SpectroClustersMaasValidate "
             "(v1SpectroClusterValidatorResponse); the checks are the lab's (maas_clusters.py check)")
    def maas_cluster_validate(self, request: Request) -> Response:
        found = self.maas.check(request.body, self._project_for_create(request), create=False)
        return 200, self.maas.validation_view(found)

    @mirrors("v1CloudConfigsMaasGet", source="palette-sdk-go client/cluster_maas.go GetCloudConfigMaas")
    def maas_cloud_config(self, request: Request, config: str) -> Response:
        return 200, self.maas.cloud_config_view(self.maas.cluster_by_config(config, request.project))

    @mirrors("v1CloudConfigsMaasUidClusterConfig",
             source="palette-sdk-go client/cluster_maas.go UpdateCloudConfigMaas; terraform-provider-spectrocloud "
             "spectrocloud/resource_cluster_maas.go resourceClusterMaasUpdate (toMaasCloudConfigUpdate)")
    def maas_cluster_config_update(self, request: Request, config: str) -> Response:
        self.maas.put_cluster_config(self.maas.cluster_by_config(config, request.project), request.body)
        return 204, None

    @mirrors("v1CloudConfigsMaasMachinePoolCreate",
             source="palette-sdk-go client/cluster_maas.go CreateMachinePoolMaas")
    def maas_pool_create(self, request: Request, config: str) -> Response:
        cluster = self.maas.cluster_by_config(config, request.project)
        pool = self.maas.add_pool(cluster, self.maas.pool_check(cluster, request.body, None))
        return 201, {"uid": pool.uid}

    @mirrors("v1CloudConfigsMaasMachinePoolUpdate",
             source="palette-sdk-go client/cluster_maas.go UpdateMachinePoolMaas")
    def maas_pool_update(self, request: Request, config: str, name: str) -> Response:
        cluster = self.maas.cluster_by_config(config, request.project)
        self.maas.put_pool(cluster, self.maas.pool_check(cluster, request.body, name))
        return 204, None

    @mirrors("v1CloudConfigsMaasMachinePoolDelete",
             source="palette-sdk-go client/cluster_maas.go DeleteMachinePoolMaas")
    def maas_pool_delete(self, request: Request, config: str, name: str) -> Response:
        self.maas.delete_pool(self.maas.cluster_by_config(config, request.project), name)
        return 204, None

    @mirrors("v1CloudConfigsMaasPoolMachinesList", source="palette-sdk-go client/cluster_maas.go GetNodeStatusMapMaas; "
             "client/node_actions.go GetMachinesListMaas")
    def maas_pool_machines(self, request: Request, config: str, name: str) -> Response:
        items = self.maas.machines_view(self.maas.cluster_by_config(config, request.project), name)
        return 200, {"items": items, "listmeta": {"count": len(items), "limit": len(items), "offset": 0,
                                                  "continue": ""}}

    # -- /__lab__ ---------------------------------------------------------------------------------

    def lab(self, method: str, path: str, body: dict) -> Response:
        if path == "/__lab__/health":
            return 200, {"ok": True}
        if path == "/__lab__/faults" and method == "PUT":
            return self._set_faults(body)
        if path == "/__lab__/reset" and method == "POST":
            return self._reset()
        if path == "/__lab__/baseline" and method == "POST":
            self.maas.remove_all()
            self.agent.restore_baseline()
            return 200, {}
        if path == "/__lab__/seed" and method == "POST":
            with self.model.lock:
                project = self.model.project_uid(body["project"]) if body.get("project") else ""
                uids = self.model.seed_profiles(int(body.get("count", 60)), body.get("prefix", "seed"), project,
                                                body.get("version", "1.0.0"))
            return 200, {"uids": uids}
        if path == "/__lab__/info" and method == "GET":
            with self.model.lock:
                return 200, {"cluster_uid": self.model.cluster.uid, "registry_uid": self.model.registry_uid,
                             "projects": {name: uid for uid, name in self.model.projects.items()},
                             "packs": {tag: p.uid for tag, p in self.model.packs.items()},
                             "infra_profile_uid": self.model.infra_profile_uid,
                             "cluster_client_user": client_user(self.model.cluster.name),
                             "cluster_client_binding": client_user(self.model.cluster.name),
                             "maas_account": ACCOUNT_NAME, "maas_account_uid": self.maas.account_uid,
                             "maas_cluster_step_seconds": self.maas.step_seconds,
                             "force_delete_after_seconds": self.maas.force_delete_after,
                             "maas_clusters": {c.name: {"uid": c.uid, "project": self.model.projects[c.project_uid],
                                                        "cloud_config_uid": c.config_uid, "state": c.state(),
                                                        "client_user": client_user(c.name),
                                                        "admin_user": admin_user(c.name)}
                                               for c in self.model.clusters.values() if isinstance(c, MaasCluster)}}
        return 404, {"message": f"unknown lab path {method} {path}"}

    def _knobs(self) -> dict:
        return dict(vars(self.faults), deploy_seconds=self.agent.deploy_seconds,
                    apply_delay_seconds=self.agent.apply_delay_seconds,
                    duplicate_profile_status=self.model.duplicate_status,
                    maas_cluster_step_seconds=self.maas.step_seconds,
                    force_delete_after_seconds=self.maas.force_delete_after)

    def _set_faults(self, body: dict) -> Response:
        """PUT /__lab__/faults: the Faults fields, and the agent's and model's timing and answer knobs."""
        for key, value in body.items():
            if key == "deploy_seconds":
                self.agent.deploy_seconds = float(value)
            elif key == "apply_delay_seconds":
                self.agent.apply_delay_seconds = float(value)
            elif key == "duplicate_profile_status":
                self.model.duplicate_status = int(value)
            elif key == "maas_cluster_step_seconds":
                self.maas.step_seconds = float(value)
            elif key == "force_delete_after_seconds":
                self.maas.force_delete_after = float(value)
            elif key == "nodes_not_ready_seconds":
                with self.model.lock:
                    self.model.cluster.nodes_not_ready_until = time.monotonic() + float(value)
                    self.model.cluster.nodes_not_ready_since = palette_model.now()
            elif hasattr(self.faults, key):
                setattr(self.faults, key, type(getattr(self.faults, key))(value))
            else:
                return 400, {"message": f"unknown fault {key!r}"}
        return 200, self._knobs()

    def _reset(self) -> Response:
        """Faults, limits, profiles, attachments and RBAC back to a fresh lab; the apiserver to its baseline."""
        self.faults = Faults()
        self.limiter.reset()
        self.maas.remove_all()
        self.maas.step_seconds = MAAS_STEP_SECONDS
        self.maas.force_delete_after = FORCE_DELETE_AFTER_SECONDS
        self.agent.deploy_seconds, self.agent.apply_delay_seconds = DEPLOY_SECONDS, APPLY_DELAY_SECONDS
        with self.model.lock:
            model = self.model
            model.duplicate_status = 409
            model.cluster.nodes_not_ready_until = 0.0
            model.profiles = {uid: p for uid, p in model.profiles.items() if uid == model.infra_profile_uid}
            model.cluster.attachments = {uid: a for uid, a in model.cluster.attachments.items()
                                         if uid == model.infra_profile_uid}
            model.cluster.rbacs = []
        self.agent.restore_baseline()
        if self.kubeconfigs is not None:
            self.kubeconfigs.ensure_bound(model.cluster.name, model.cluster.uid)
        return 200, {}


def self_contained(kubeconfig_path: str) -> str:
    """lab-cluster's kubeconfig: the lab's admin kubeconfig with its CA file embedded as certificate-authority-data.
    Palette's kubeconfigs carry their certificates inline (palette-sdk-go client/cluster.go GetClusterAdminKubeConfig
    returns the file Palette stores, which a user downloads and uses anywhere); a path on the lab's disk would not be."""
    with open(kubeconfig_path) as source:
        config = yaml.safe_load(source)
    for entry in config.get("clusters") or []:
        cluster = entry.get("cluster") or {}
        path = cluster.pop("certificate-authority", None)
        if path:
            cluster["certificate-authority-data"] = base64.b64encode(Path(path).read_bytes()).decode()
    return yaml.safe_dump(config, sort_keys=False)


def _int(text: str) -> Optional[int]:
    try:
        return int(text) if text else None
    except ValueError:
        raise ApiError(400, "InvalidRequest", f"{text!r} is not an integer") from None


def _object(body) -> dict:
    if not isinstance(body, dict):
        raise ApiError(400, "InvalidRequest", "the request body must be a JSON object")
    return body


def pack_filter_matches(filters: str, summary: dict) -> bool:
    """Palette's `filters=` syntax as the Terraform provider writes it: `spec.name=x AND spec.version=y`."""
    for term in re.split(r"\s*AND\s*", filters or ""):
        if not term:
            continue
        if "_in_" in term:
            key, wanted = term.split("_in_", 1)
            options = wanted.split(",")
        elif "=" in term:
            key, wanted = term.split("=", 1)
            options = [wanted]
        else:
            raise ApiError(400, "InvalidFilter", f"filter term {term!r} is neither key=value nor key_in_a,b")
        node = summary
        for part in key.strip().split("."):
            node = node.get(part) if isinstance(node, dict) else None
        values = node if isinstance(node, list) else [node]
        if not any(str(v) in options for v in values):
            return False
    return True


def string_matches(condition: dict, value: str) -> bool:
    """Palette's FilterString: eq, ne, contains, beginsWith, optionally ignoring case."""
    fold = (lambda s: s.lower()) if condition.get("ignoreCase") else (lambda s: s)
    value = fold(value)
    checks = {"eq": lambda w: value == w, "ne": lambda w: value != w,
              "contains": lambda w: w in value, "beginsWith": value.startswith}
    return all(checks[op](fold(str(wanted))) for op, wanted in condition.items() if op in checks and wanted)


def profile_filter_matches(flt: dict, profile) -> bool:
    if flt.get("profileName") and not string_matches(flt["profileName"], profile.name):
        return False
    version = {k: v for k, v in (flt.get("version") or {}).items() if k in ("eq", "ne", "beginsWith")}
    if version and not string_matches(version, profile.version):
        return False
    if flt.get("profileType") and profile.profile_type not in flt["profileType"]:
        return False
    if flt.get("environment") and profile.cloud_type not in flt["environment"]:
        return False
    return not flt.get("scope") or flt["scope"] == profile.scope


def _cluster_property(cluster, name: str):
    return {"clusterName": cluster.name, "environment": "maas", "cloudType": "maas", "isDeleted": False,
            "clusterState": cluster.state(), "projectUid": cluster.project_uid}.get(name)


def _search_item_matches(item: dict, cluster) -> bool:
    value = _cluster_property(cluster, item.get("property", ""))
    condition = item.get("condition") or {}
    if "bool" in condition:
        return value == bool((condition["bool"] or {}).get("value"))
    text = condition.get("string") or {}
    if value is None or not text:
        return value is None and not text
    wanted = (text.get("match") or {}).get("values") or []
    fold = (lambda s: s.lower()) if text.get("ignoreCase") else (lambda s: s)
    check = {"eq": lambda w: fold(value) == fold(w), "contains": lambda w: fold(w) in fold(value),
             "beginsWith": lambda w: fold(value).startswith(fold(w))}[text.get("operator") or "eq"]
    combine = all if (text.get("match") or {}).get("conjunction") == "and" else any
    hit = combine(check(w) for w in wanted) if wanted else True
    return hit != bool(text.get("negation"))


def cluster_filter_matches(flt: dict, cluster) -> bool:
    """Palette's search DSL: groups of property conditions joined by and/or; unknown properties never match."""
    groups = flt.get("filterGroups") or []
    results = []
    for group in groups:
        checks = [_search_item_matches(item, cluster) for item in group.get("filters") or []]
        results.append((all if group.get("conjunction", "and") != "or" else any)(checks) if checks else True)
    if not results:
        return True
    return any(results) if flt.get("conjunction") == "or" else all(results)


def make_handler(api: PaletteApi) -> type:
    class Handler(VerbHandler):
        def _send(self, status: int, payload, headers: Optional[Dict[str, str]] = None) -> None:
            if payload is None:
                data, ctype = b"", "application/json"
            elif isinstance(payload, bytes):
                data, ctype = payload, "application/octet-stream"
            else:
                data, ctype = json.dumps(payload).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            url = urlsplit(self.path)
            if url.path.startswith("/__lab__/"):
                try:
                    return self._send(*api.lab(method, url.path, json.loads(raw or b"{}")))
                except Exception as err:  # noqa: BLE001 - the lab path reports what went wrong
                    return self._send(500, {"message": f"{type(err).__name__}: {err}"})
            project = self.headers.get("ProjectUid") or ""
            entry = {"time": time.time(), "method": method, "path": url.path, "query": url.query,
                     "project": project, "mutating": api.mutating(method, url.path)}
            status, payload, headers = self._answer(method, url, raw, project, entry)
            api.log.write(dict(entry, status=status))
            if status:
                self._send(status, payload, headers)

        def _answer(self, method: str, url, raw: bytes, project: str, entry: dict):
            faults = api.faults
            if faults.slow_seconds:
                time.sleep(faults.slow_seconds)
            if self.headers.get("ApiKey") != api.api_key:
                return 401, palette_model.ApiError(401, "Unauthorized",
                                                   "the ApiKey header is missing or not valid").body(), None
            with api.model.lock:
                fault = next((name for name in ("drop_connections", "http_429", "http_5xx")
                              if getattr(faults, name) > 0), None)
                if fault:
                    setattr(faults, fault, getattr(faults, fault) - 1)
                    entry["fault"] = fault
            if fault == "drop_connections":
                self.close_connection = True
                self.connection.close()
                return 0, None, None
            if fault == "http_5xx":
                return faults.status_5xx, palette_model.ApiError(faults.status_5xx, "InternalError",
                                                                 "injected server error").body(), None
            retry_after = faults.retry_after if fault == "http_429" else (
                api.limiter.admit(url.path) if faults.rate_limit else None)
            if retry_after is not None:
                header = {"Retry-After": str(retry_after)} if faults.retry_after_header else None
                return 429, {"code": "TooManyRequests", "message": "rate limit exceeded", "details": {},
                             "ref": palette_model.new_uid()}, header
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                return 400, {"code": "InvalidRequest", "message": "the request body is not JSON"}, None
            if entry["mutating"] and self._spend(entry, "refuse_writes"):
                return faults.refuse_status, palette_model.ApiError(
                    faults.refuse_status, "InternalError" if faults.refuse_status >= 500 else "InvalidRequest",
                    "injected refusal: the request was not carried out").body(), None
            request = Request(method, url.path, parse_qs(url.query, keep_blank_values=True), body, project)
            status, payload = api.handle(request)
            # lose_write_answers: a write that took effect, whose answer a dropped connection loses.
            if entry["mutating"] and status < 400 and self._spend(entry, "lose_write_answers"):
                self.close_connection = True
                self.connection.close()
                return 0, None, None
            return status, payload, None

        def _spend(self, entry: dict, fault: str) -> bool:
            """One of the fault counter `fault`, spent on this request and noted in its log entry."""
            if not spend_fault(api.model.lock, api.faults, fault):
                return False
            entry["fault"] = fault
            return True

    return Handler
