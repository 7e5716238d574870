"""The Palette simulator's state: projects, the pack registry, cluster profiles and the lab cluster.

Handlers in api.py call these methods under `PaletteModel.lock`; every refusal is an ApiError that
carries Palette's status code and error body ({code, message, details, ref}: the spec's v1Error).
"""

import base64
import copy
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from . import values as pack_values

PACK_NAME = "virtual-machine-orchestrator"
PACK_TAGS = ("4.6.3", "4.9.9", "4.10.7")
PACKS_DIR = Path(__file__).parent / "packs"
REGISTRY_NAME = "Public Repo"
LAB_PROJECT, EMPTY_PROJECT = "lab", "empty"
LAB_CLUSTER = "lab-cluster"
INFRA_PROFILE = "lab-maas-infra"
MANIFEST_PACK_UID = "spectro-manifest-pack"
PROFILE_TYPES = ("cluster", "infra", "add-on", "system")
PACK_TYPES = ("spectro", "helm", "manifest", "oci")
PACK_LAYERS = ("kernel", "os", "k8s", "cni", "csi", "addon")
PAGE_LIMIT = 50
# Palette's rule for profile names (a DNS label) and versions (semantic versions).
NAME_RULE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
VERSION_RULE = re.compile(r"^\d+\.\d+\.\d+$")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict:
        # palette-apis-spec-4.8.json definitions.v1Error; the provider's mock server (tests/mockApiServer/routes/
        # common.go getError) fills ref the same way.
        return {"code": self.code, "message": self.message, "details": {}, "ref": secrets.token_hex(8)}


def new_uid() -> str:
    """Palette's object ids are 24 hex characters (MongoDB ObjectIds)."""
    return secrets.token_hex(12)


def now() -> str:
    stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + ".%03dZ" % (int(stamp * 1000) % 1000)


def page(items: list, limit: Optional[int], token: Optional[str], offset: Optional[int] = None) -> Tuple[list, dict]:
    """One page of a list and its listmeta; `continue` is an opaque token for the next page."""
    limit = PAGE_LIMIT if not limit or limit <= 0 else min(limit, PAGE_LIMIT)
    start = offset or 0
    if token:
        try:
            kind, value = base64.urlsafe_b64decode(token.encode()).decode().split(":")
            assert kind == "offset"
            start = int(value)
        except Exception:  # noqa: BLE001 - any malformed token is the client's error
            raise ApiError(400, "InvalidContinueToken", f"continue token {token!r} is not valid") from None
    chunk = items[start:start + limit]
    following = start + len(chunk)
    more = following < len(items)
    meta = {"count": len(items), "limit": limit, "offset": start,
            "continue": base64.urlsafe_b64encode(f"offset:{following}".encode()).decode() if more else ""}
    return chunk, meta


@dataclass
class PackVersion:
    uid: str
    tag: str
    values: str


@dataclass
class Profile:
    uid: str
    name: str
    version: str
    project_uid: str  # "" for a tenant-scoped profile
    profile_type: str
    cloud_type: str
    labels: Dict[str, str] = field(default_factory=dict)
    annotations: Dict[str, str] = field(default_factory=dict)
    draft: Optional[List[dict]] = None  # packs of the draft template
    published: Optional[List[dict]] = None  # packs of the published template
    revision: int = 0  # bumped by every publish
    variables: list = field(default_factory=list)
    created: str = field(default_factory=now)
    modified: str = field(default_factory=now)

    @property
    def scope(self) -> str:
        return "project" if self.project_uid else "tenant"


@dataclass
class Attachment:
    """A profile attached to the cluster: what the agent applied and each pack's condition.

    Until the agent picks the attachment up, `status.packs` goes on showing `earlier_statuses`: what it
    showed before for this profile uid (a re-apply) or for the version it replaced, Ready conditions
    included. Palette's agent on the cluster picks a change up on its next sync, and the provider's wait
    (cluster_common_attachment.go waitForAddonDeployment) gives it a 30 s Delay before its first look.
    """

    profile_uid: str
    packs: List[dict]
    revision: int
    conditions: Dict[str, dict] = field(default_factory=dict)
    generation: int = 0
    earlier_statuses: List[dict] = field(default_factory=list)
    picked_up: bool = False
    start_time: str = ""
    end_time: str = ""
    dispatched: bool = False  # handed to the agent (a MAAS cluster's add-ons wait until it is Running)


@dataclass
class Cluster:
    """lab-cluster, backed by the lab's apiserver and always Running (maas_clusters.MaasCluster adds the others)."""

    uid: str
    name: str
    project_uid: str
    attachments: Dict[str, Attachment] = field(default_factory=dict)
    rbacs: List[dict] = field(default_factory=list)
    created: str = field(default_factory=now)
    # Lab knob nodes_not_ready_seconds: until this time.monotonic() value, condition NodesReady is False.
    nodes_not_ready_until: float = 0.0
    nodes_not_ready_since: str = ""
    infra_uid: str = ""  # the cluster's infra (or full cluster) profile: attached for good, never re-applied

    @property
    def cloud_config_uid(self) -> str:
        return self.uid[::-1]

    def state(self) -> str:
        return "Running"

    def conditions(self) -> List[dict]:
        """status.conditions (v1ClusterCondition): the provider waits for every one to be True before it looks at
        packs (cluster_common_attachment.go resourceAddonDeploymentStateRefreshFunc)."""
        ready = {"type": "ControlPlaneReady", "status": "True", "reason": "", "message": "",
                 "lastProbeTime": self.created, "lastTransitionTime": self.created}
        nodes = dict(ready, type="NodesReady")
        if time.monotonic() < self.nodes_not_ready_until:
            nodes.update(status="False", reason="NodesNotReady", message="1 of 3 nodes is not ready",
                         lastTransitionTime=self.nodes_not_ready_since)
        return [ready, nodes]

    def health(self) -> str:
        """The overview's status.health.state: Healthy unless a condition is False."""
        return "Healthy" if all(c["status"] == "True" for c in self.conditions()) else "UnHealthy"


def condition(ctype: str, status: str, reason: str, message: str) -> dict:
    stamp = now()
    return {"type": ctype, "status": status, "reason": reason, "message": message,
            "lastProbeTime": stamp, "lastTransitionTime": stamp}


def duplicate_error(status: int, name: str, version: str) -> ApiError:
    """A create or clone of a name and version that exists, answered with `status` (see duplicate_status)."""
    if status >= 500:
        return ApiError(status, "InternalError", "Internal server error")
    return ApiError(status, "ClusterProfileAlreadyExists",
                    f"cluster profile {name!r} version {version!r} already exists")


def pack_ref_view(pack: dict) -> dict:
    """A pack as GET returns it: manifests are references, their content has its own path."""
    view = {k: v for k, v in pack.items() if k != "manifests"}
    view["manifests"] = [{"name": m["name"], "uid": m["uid"], "kind": "manifest"} for m in pack.get("manifests", [])]
    return view


class PaletteModel:
    def __init__(self):
        self.lock = threading.RLock()
        self.registry_uid = new_uid()
        self.projects = {new_uid(): LAB_PROJECT, new_uid(): EMPTY_PROJECT}
        self.packs = {tag: PackVersion(new_uid(), tag, (PACKS_DIR / f"{PACK_NAME}-{tag}.yaml").read_text())
                      for tag in PACK_TAGS}
        self.profiles: Dict[str, Profile] = {}
        lab_project = self.project_uid(LAB_PROJECT)
        infra = self._infra_profile(lab_project)
        self.infra_profile_uid = infra.uid
        self.cluster = Cluster(new_uid(), LAB_CLUSTER, lab_project, infra_uid=infra.uid)
        # Every cluster by uid: lab-cluster and the MAAS clusters (maas_clusters.py) made through the API.
        self.clusters: Dict[str, Cluster] = {self.cluster.uid: self.cluster}
        self.cluster.attachments[infra.uid] = Attachment(infra.uid, copy.deepcopy(infra.published), infra.revision, {
            p["name"]: condition("Ready", "True", "Deployed", f"{p['name']} is deployed") for p in infra.published},
            picked_up=True)
        # Lab knob duplicate_profile_status: the published API documents only 201 for a create
        # (v1ClusterProfilesCreate) or clone (v1ClusterProfilesUidClone); the provider's mock server answers a
        # duplicate 409 ClusterProfileAlreadyExists (tests/mockApiServer/routes/mockClusterProfile.go:272), and
        # real Palette's answer is not published, so a test can make it 400 or 500 too.
        self.duplicate_status = 409

    # -- projects and scope -----------------------------------------------------------------------

    def project_uid(self, name: str) -> str:
        return next(uid for uid, project in self.projects.items() if project == name)

    def check_scope(self, project_uid: str) -> None:
        if project_uid and project_uid not in self.projects:
            raise ApiError(403, "ProjectNotFound", f"project {project_uid!r} does not exist or the key has no access to it")

    # -- packs ------------------------------------------------------------------------------------

    def pack_by_uid(self, uid: str) -> Optional[PackVersion]:
        return next((p for p in self.packs.values() if p.uid == uid), None)

    def pack_tags(self) -> List[dict]:
        return [{"tag": p.tag, "version": p.tag, "packUid": p.uid, "group": "",
                 "parentTags": ["4.x", ".".join(p.tag.split(".")[:2]) + ".x"]} for p in self.packs.values()]

    def pack_entity(self, versions: List[PackVersion]) -> dict:
        return {"name": PACK_NAME, "displayName": "Virtual Machine Orchestrator", "layer": "addon",
                "addonType": "system app", "addonSubType": "", "cloudTypes": ["all"],
                "registryUid": self.registry_uid, "logoUrl": "", "tags": self.pack_tags(),
                "packValues": [{"packUid": v.uid, "values": v.values, "readme": f"# {PACK_NAME} {v.tag}\n",
                                "presets": [], "schema": [], "annotations": {}, "dependencies": []}
                               for v in versions]}

    def pack_summaries(self) -> List[dict]:
        return [{"apiVersion": "v1", "kind": "PackSummary",
                 "metadata": {"name": PACK_NAME, "uid": p.uid, "creationTimestamp": "2025-01-01T00:00:00.000Z"},
                 "spec": {"name": PACK_NAME, "displayName": "Virtual Machine Orchestrator", "version": p.tag,
                          "layer": "addon", "type": "spectro", "addonType": "system app", "cloudTypes": ["all"],
                          "registryUid": self.registry_uid, "values": p.values, "presets": [], "schema": []},
                 "status": {}} for p in self.packs.values()]

    def _resolve_pack(self, entry: dict, where: str, old: Optional[dict]) -> dict:
        """A pack of a create/update body checked and completed as Palette stores it."""
        name, ptype = entry.get("name"), entry.get("type") or "spectro"
        if not name:
            raise ApiError(400, "InvalidPack", f"{where}: name is required")
        if ptype not in PACK_TYPES:
            raise ApiError(400, "InvalidPack", f"{where} {name!r}: type {ptype!r} is not one of {', '.join(PACK_TYPES)}")
        layer = entry.get("layer") or "addon"
        if layer not in PACK_LAYERS:
            raise ApiError(400, "InvalidPack", f"{where} {name!r}: layer {layer!r} is not one of {', '.join(PACK_LAYERS)}")
        if ptype == "manifest":
            return self._resolve_manifest_pack(entry, name, layer, where, old)
        wanted_uid = entry.get("uid") or entry.get("packUid")
        version = self.pack_by_uid(wanted_uid) if wanted_uid else self.packs.get(entry.get("tag") or "")
        if name != PACK_NAME or version is None:
            raise ApiError(400, "PackNotFound", f"{where}: pack {name!r} with tag {entry.get('tag')!r} (uid "
                           f"{wanted_uid!r}) was not found in registry {REGISTRY_NAME!r}")
        if entry.get("registryUid") and entry["registryUid"] != self.registry_uid:
            raise ApiError(400, "RegistryNotFound", f"{where} {name!r}: registry {entry['registryUid']!r} not found")
        text = entry.get("values")
        if text is None or text == "":
            text = version.values
        try:
            pack_values.parse(text)
        except pack_values.ValuesError as err:
            raise ApiError(400, "InvalidPackValues", f"{where} {name!r}: {err}") from None
        return {"name": name, "type": "spectro", "layer": layer, "tag": version.tag, "version": version.tag,
                "packUid": version.uid, "registryUid": self.registry_uid, "values": text, "manifests": []}

    def _resolve_manifest_pack(self, entry: dict, name: str, layer: str, where: str, old: Optional[dict]) -> dict:
        known = {m["name"]: m for m in (old or {}).get("manifests", [])}
        manifests = []
        for index, item in enumerate(entry.get("manifests") or []):
            mname = item.get("name")
            if not mname:
                raise ApiError(400, "InvalidManifest", f"{where} {name!r}: manifests[{index}].name is required")
            content = item.get("content")
            if content is None and mname in known:
                content = known[mname]["content"]  # an update may refer to unchanged content by uid
            try:
                pack_values.parse_manifest(content or "")
            except pack_values.ValuesError as err:
                raise ApiError(400, "InvalidManifest", f"{where} {name!r}: manifest {mname!r}: {err}") from None
            uid = known[mname]["uid"] if mname in known else new_uid()
            manifests.append({"name": mname, "uid": uid, "content": content or ""})
        text = entry.get("values") or ""
        try:
            pack_values.parse(text)
        except pack_values.ValuesError as err:
            raise ApiError(400, "InvalidPackValues", f"{where} {name!r}: {err}") from None
        return {"name": name, "type": "manifest", "layer": layer, "tag": entry.get("tag") or "1.0.0",
                "version": entry.get("tag") or "1.0.0", "packUid": MANIFEST_PACK_UID, "registryUid": "",
                "values": text, "manifests": manifests}

    def _resolve_packs(self, entries, old_packs: Optional[List[dict]]) -> List[dict]:
        if not isinstance(entries, list):
            raise ApiError(400, "InvalidProfile", "spec.template.packs must be a list")
        old = {p["name"]: p for p in old_packs or []}
        packs, seen = [], set()
        for index, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise ApiError(400, "InvalidPack", f"spec.template.packs[{index}] must be an object")
            pack = self._resolve_pack(entry, f"spec.template.packs[{index}]", old.get(entry.get("name")))
            if pack["name"] in seen:
                raise ApiError(400, "DuplicatePack", f"pack {pack['name']!r} appears twice in the profile")
            seen.add(pack["name"])
            packs.append(pack)
        return packs

    # -- profiles ---------------------------------------------------------------------------------

    def _infra_profile(self, project_uid: str) -> Profile:
        """The lab cluster's base layers, as a real MAAS cluster's infra profile would hold them."""
        layers = (("ubuntu-maas", "os", "22.04"), ("kubernetes", "k8s", "1.31.4"),
                  ("cni-calico", "cni", "3.29.1"), ("csi-rook-ceph", "csi", "1.16.0"))
        packs = [{"name": n, "type": "spectro", "layer": layer, "tag": tag, "version": tag, "packUid": new_uid(),
                  "registryUid": self.registry_uid, "values": f"pack:\n  namespace: {n}\n", "manifests": []}
                 for n, layer, tag in layers]
        profile = Profile(new_uid(), INFRA_PROFILE, "1.0.0", project_uid, "cluster", "maas",
                          published=packs, revision=1)
        self.profiles[profile.uid] = profile
        return profile

    def visible(self, profile: Profile, project_uid: str) -> bool:
        """A project sees its own profiles and the tenant's; the tenant sees only its own."""
        return profile.project_uid in ("", project_uid) if project_uid else not profile.project_uid

    def profile(self, uid: str, project_uid: str, writable: bool = False) -> Profile:
        profile = self.profiles.get(uid)
        if profile is None or not self.visible(profile, project_uid):
            raise ApiError(404, "ClusterProfileNotFound", f"cluster profile {uid!r} not found")
        if writable and profile.project_uid != project_uid:
            raise ApiError(403, "Forbidden", f"cluster profile {profile.name!r} is tenant-scoped; "
                           "change it from the tenant scope")
        return profile

    def validate_name(self, name: str, version: str, project_uid: str, skip_uid: str = "",
                      duplicate_status: int = 409) -> None:
        if not name or not NAME_RULE.match(name):
            raise ApiError(400, "InvalidName", f"cluster profile name {name!r} must be 1-63 lowercase letters, "
                           "digits or '-', starting and ending with a letter or digit")
        if not VERSION_RULE.match(version or ""):
            raise ApiError(400, "InvalidVersion", f"cluster profile version {version!r} must be like 1.0.0")
        for other in self.profiles.values():
            if other.uid != skip_uid and other.project_uid == project_uid \
                    and (other.name, other.version) == (name, version):
                raise duplicate_error(duplicate_status, name, version)

    def create_profile(self, body: dict, project_uid: str, publish: bool) -> Profile:
        metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
        template = spec.get("template") or {}
        name, version = metadata.get("name") or "", spec.get("version") or "1.0.0"
        self.validate_name(name, version, project_uid, duplicate_status=self.duplicate_status)
        ptype = template.get("type") or "cluster"
        if ptype not in PROFILE_TYPES:
            raise ApiError(400, "InvalidProfileType",
                           f"spec.template.type {ptype!r} is not one of {', '.join(PROFILE_TYPES)}")
        packs = self._resolve_packs(template.get("packs") or [], None)
        profile = Profile(new_uid(), name, version, project_uid, ptype, template.get("cloudType") or "all",
                          labels=dict(metadata.get("labels") or {}), annotations=dict(metadata.get("annotations") or {}),
                          variables=list(spec.get("variables") or []))
        profile.draft = packs
        if publish:
            self.publish(profile)
        self.profiles[profile.uid] = profile
        return profile

    def update_profile(self, profile: Profile, body: dict) -> None:
        """PUT: the body's template becomes the draft; publish makes it the published one."""
        spec = body.get("spec") or {}
        template = spec.get("template") or {}
        version = spec.get("version") or profile.version
        name = (body.get("metadata") or {}).get("name") or profile.name
        self.validate_name(name, version, profile.project_uid, skip_uid=profile.uid)
        ptype = template.get("type") or profile.profile_type
        if ptype != profile.profile_type:
            raise ApiError(400, "InvalidProfileType", f"the type of profile {profile.name!r} cannot change "
                           f"({profile.profile_type!r} to {ptype!r})")
        base = profile.draft if profile.draft is not None else profile.published
        profile.draft = self._resolve_packs(template.get("packs") or [], base)
        profile.name, profile.version, profile.modified = name, version, now()

    def patch_metadata(self, profile: Profile, body: dict) -> None:
        metadata = body.get("metadata")
        if not isinstance(metadata, dict):
            raise ApiError(400, "InvalidRequest", "metadata is required")
        name = metadata.get("name") or profile.name
        version = (body.get("spec") or {}).get("version") or profile.version
        self.validate_name(name, version, profile.project_uid, skip_uid=profile.uid)
        profile.name, profile.version = name, version
        if metadata.get("labels") is not None:
            profile.labels = dict(metadata["labels"])
        if metadata.get("annotations") is not None:
            profile.annotations = dict(metadata["annotations"])
        profile.modified = now()

    def publish(self, profile: Profile) -> None:
        """The draft becomes the published template with the next revision; no draft, nothing to do."""
        if profile.draft is None:
            return
        profile.published, profile.draft = profile.draft, None
        profile.revision += 1
        profile.modified = now()

    def clone_profile(self, source: Profile, body: dict, project_uid: str) -> Profile:
        metadata = body.get("metadata") or {}
        target = metadata.get("target") or {}
        scope = target.get("scope") or ("project" if project_uid else "tenant")
        if scope not in ("project", "tenant"):
            raise ApiError(400, "InvalidScope", f"metadata.target.scope {scope!r} must be project or tenant")
        target_project = (target.get("projectUid") or project_uid) if scope == "project" else ""
        if scope == "project" and not target_project:
            raise ApiError(400, "InvalidScope", "metadata.target.projectUid is required for a project scope")
        self.check_scope(target_project)
        name, version = metadata.get("name") or "", metadata.get("version") or source.version
        self.validate_name(name, version, target_project, duplicate_status=self.duplicate_status)
        clone = Profile(new_uid(), name, version, target_project, source.profile_type, source.cloud_type,
                        labels=dict(source.labels), annotations=dict(source.annotations),
                        variables=copy.deepcopy(source.variables))
        if source.published is not None:
            clone.published, clone.revision = copy.deepcopy(source.published), 1
        else:
            clone.draft = copy.deepcopy(source.draft)
        self.profiles[clone.uid] = clone
        return clone

    def delete_profile(self, profile: Profile) -> None:
        for cluster in self.clusters.values():
            if profile.uid in cluster.attachments:
                raise ApiError(409, "ClusterProfileInUse", f"cluster profile {profile.name!r} is in use by cluster "
                               f"{cluster.name!r}; remove it from the cluster first")
        del self.profiles[profile.uid]

    def versions(self, profile: Profile) -> List[dict]:
        same = [p for p in self.profiles.values() if p.name == profile.name and p.project_uid == profile.project_uid]
        return [{"uid": p.uid, "version": p.version}
                for p in sorted(same, key=lambda p: tuple(int(x) for x in p.version.split(".")))]

    def metadata_view(self, profile: Profile) -> dict:
        annotations = dict(profile.annotations, scope=profile.scope)
        if profile.project_uid:
            annotations["projectUid"] = profile.project_uid
        return {"name": profile.name, "uid": profile.uid, "labels": dict(profile.labels), "annotations": annotations,
                "creationTimestamp": profile.created, "lastModifiedTimestamp": profile.modified}

    def in_use(self, profile: Profile) -> List[dict]:
        return [{"name": c.name, "uid": c.uid} for c in self.clusters.values() if profile.uid in c.attachments]

    def template_view(self, profile: Profile, packs: Optional[List[dict]], revision: int) -> Optional[dict]:
        if packs is None:
            return None
        return {"name": profile.name, "uid": profile.uid, "profileVersion": profile.version, "version": revision,
                "type": profile.profile_type, "cloudType": profile.cloud_type, "packServerRefs": [],
                "packs": [pack_ref_view(p) for p in packs]}

    def profile_view(self, profile: Profile) -> dict:
        uses = self.in_use(profile)
        return {"apiVersion": "v1", "kind": "ClusterProfile", "metadata": self.metadata_view(profile),
                "spec": {"version": profile.version, "versions": self.versions(profile),
                         "draft": self.template_view(profile, profile.draft, profile.revision + 1),
                         "published": self.template_view(profile, profile.published, profile.revision)},
                "status": {"isPublished": profile.published is not None, "hasUserMacros": False,
                           "inUseClusterUids": [u["uid"] for u in uses], "inUseClusters": uses,
                           "inUseClusterTemplates": []}}

    def summary_view(self, profile: Profile) -> dict:
        def template(packs):
            if packs is None:
                return None
            return {"cloudType": profile.cloud_type, "type": profile.profile_type,
                    "packs": [{k: p[k] for k in ("name", "tag", "type", "layer", "packUid", "version")} for p in packs]}
        uses = self.in_use(profile)
        return {"metadata": self.metadata_view(profile),
                "specSummary": {"version": profile.version, "versions": self.versions(profile),
                                "draft": template(profile.draft), "published": template(profile.published)},
                "status": {"isPublished": profile.published is not None, "inUseClusters": uses,
                           "inUseClusterUids": [u["uid"] for u in uses]}}

    def listed_profiles(self, project_uid: str) -> List[Profile]:
        return sorted((p for p in self.profiles.values() if self.visible(p, project_uid)),
                      key=lambda p: (p.created, p.uid))

    def seed_profiles(self, count: int, prefix: str, project_uid: str, version: str = "1.0.0") -> List[str]:
        """Published add-on profiles with an empty manifest layer, for pagination tests."""
        uids = []
        for index in range(count):
            body = {"metadata": {"name": f"{prefix}-{index:04d}"},
                    "spec": {"version": version, "template": {"type": "add-on", "cloudType": "all", "packs": [
                        {"name": "seed", "type": "manifest", "manifests": [{"name": "seed", "content": ""}]}]}}}
            uids.append(self.create_profile(body, project_uid, publish=True).uid)
        return uids

    # -- the cluster ------------------------------------------------------------------------------

    def cluster_by_uid(self, uid: str, project_uid: str) -> Cluster:
        # The tenant scope sees every project's clusters; a project sees only its own.
        cluster = self.clusters.get(uid)
        if cluster is None or (project_uid and project_uid != cluster.project_uid):
            raise ApiError(404, "SpectroClusterNotFound", f"cluster {uid!r} not found")
        return cluster

    def visible_clusters(self, project_uid: str) -> List[Cluster]:
        return sorted((c for c in self.clusters.values() if not project_uid or c.project_uid == project_uid),
                      key=lambda c: (c.created, c.uid))

    def _infra_name(self, cluster: Cluster) -> str:
        profile = self.profiles.get(cluster.infra_uid)
        return profile.name if profile else cluster.infra_uid

    def attach(self, cluster: Cluster, entries, project_uid: str, replace_all: bool) -> List[Attachment]:
        """PATCH (add or update the listed profiles) or PUT (the listed profiles are the whole set)."""
        if not isinstance(entries, list):
            raise ApiError(400, "InvalidRequest", "profiles must be a list")
        plans = [self._attachment_plan(cluster, entry, index, project_uid) for index, entry in enumerate(entries)]
        if replace_all:
            kept = {plan[0].uid for plan in plans}
            if cluster.infra_uid not in kept:
                raise ApiError(400, "InvalidRequest", f"PUT replaces every profile of cluster {cluster.name!r}: "
                               f"its infra profile {self._infra_name(cluster)!r} ({cluster.infra_uid}) must be listed")
            for uid in [u for u in cluster.attachments if u not in kept]:
                del cluster.attachments[uid]
        started = []
        for profile, packs, replaced in plans:
            earlier = self.pack_statuses(cluster.attachments.pop(replaced)) if replaced in cluster.attachments else []
            if profile.uid == cluster.infra_uid:
                continue
            previous = cluster.attachments.get(profile.uid)
            if previous is not None:
                earlier = self.pack_statuses(previous) + earlier
            attachment = Attachment(profile.uid, packs, profile.revision,
                                    generation=(previous.generation + 1) if previous else 1,
                                    earlier_statuses=earlier)
            cluster.attachments[profile.uid] = attachment
            started.append(attachment)
        return started

    def _attachment_plan(self, cluster: Cluster, entry, index: int, project_uid: str):
        where = f"profiles[{index}]"
        if not isinstance(entry, dict) or not entry.get("uid"):
            raise ApiError(400, "InvalidRequest", f"{where}.uid is required")
        profile = self.profile(entry["uid"], project_uid or cluster.project_uid)
        if profile.published is None:
            raise ApiError(400, "ClusterProfileNotPublished", f"{where}: cluster profile {profile.name!r} "
                           "has no published version")
        if profile.profile_type != "add-on" and profile.uid != cluster.infra_uid:
            raise ApiError(400, "InvalidProfileType", f"{where}: only add-on profiles can be attached to a running "
                           f"cluster; {profile.name!r} is {profile.profile_type!r}")
        replaced = entry.get("replaceWithProfile") or ""
        if replaced and replaced not in cluster.attachments:
            raise ApiError(400, "InvalidRequest", f"{where}.replaceWithProfile {replaced!r} is not attached to "
                           f"cluster {cluster.name!r}")
        if replaced == cluster.infra_uid:
            raise ApiError(400, "InvalidRequest", f"{where}: the infra profile cannot be replaced by an add-on")
        packs = copy.deepcopy(profile.published)
        by_name = {p["name"]: p for p in packs}
        for vindex, override in enumerate(entry.get("packValues") or []):
            pack = by_name.get((override or {}).get("name"))
            if pack is None:
                raise ApiError(400, "InvalidRequest", f"{where}.packValues[{vindex}]: profile {profile.name!r} has "
                               f"no pack {override.get('name')!r}")
            if override.get("values"):
                try:
                    pack_values.parse(override["values"])
                except pack_values.ValuesError as err:
                    raise ApiError(400, "InvalidPackValues", f"{where}.packValues[{vindex}]: {err}") from None
                pack["values"] = override["values"]
        return profile, packs, replaced

    def detach(self, cluster: Cluster, uids) -> None:
        if not isinstance(uids, list):
            raise ApiError(400, "InvalidRequest", "profileUids must be a list")
        if cluster.infra_uid in uids:
            raise ApiError(400, "InvalidRequest", f"the infra profile {self._infra_name(cluster)!r} cannot be removed")
        for uid in uids:
            cluster.attachments.pop(uid, None)

    def pick_up(self, attachment: Attachment) -> None:
        """The agent starts on the attachment: from now on status.packs lists its packs, each Ready=False.

        A re-applied profile's packs go from their earlier Ready to not Ready here, so a poller sees the
        transition (v1ClusterPackStatus: condition, startTime, endTime).
        """
        if self._holder(attachment) is None:
            return
        attachment.conditions = {p["name"]: condition("Ready", "False", "Deploying", f"deploying {p['name']}")
                                 for p in attachment.packs}
        attachment.picked_up, attachment.start_time, attachment.end_time = True, now(), ""
        attachment.earlier_statuses = []

    def finish(self, attachment: Attachment, conditions: Dict[str, dict]) -> None:
        """The agent's result, unless the profile was detached or attached again meanwhile."""
        if self._holder(attachment) is not None:
            attachment.conditions.update(conditions)
            attachment.end_time = now()

    def _holder(self, attachment: Attachment) -> Optional[Cluster]:
        """The cluster the attachment is still attached to (not detached or attached again meanwhile)."""
        return next((c for c in self.clusters.values()
                     if c.attachments.get(attachment.profile_uid) is attachment), None)

    def pack_statuses(self, attachment: Attachment) -> List[dict]:
        """The attachment's entries of status.packs (v1ClusterPackStatus), or the earlier ones until picked up."""
        if not attachment.picked_up:
            return copy.deepcopy(attachment.earlier_statuses)
        statuses = []
        for pack in attachment.packs:
            cond = attachment.conditions.get(pack["name"])
            statuses.append({"name": pack["name"], "profileUid": attachment.profile_uid, "type": pack["type"],
                             "version": pack["tag"], "condition": dict(cond) if cond else None,
                             "startTime": attachment.start_time, "endTime": attachment.end_time,
                             "manifests": [{"name": m["name"], "uid": m["uid"], "condition": dict(cond)}
                                           for m in pack.get("manifests", [])] if cond else []})
        return statuses

    def cluster_profiles_view(self, cluster: Cluster) -> List[dict]:
        views = []
        for attachment in cluster.attachments.values():
            profile = self.profiles.get(attachment.profile_uid)
            name = profile.name if profile else attachment.profile_uid
            views.append({"metadata": {"name": name, "uid": attachment.profile_uid},
                          "spec": {"cloudType": profile.cloud_type if profile else "all",
                                   "type": profile.profile_type if profile else "add-on",
                                   "version": attachment.revision,
                                   "packs": [{"metadata": {"name": p["name"], "uid": p["packUid"]},
                                              "spec": pack_ref_view(p), "status": {}} for p in attachment.packs]}})
        return views

    def cluster_view(self, cluster: Cluster) -> dict:
        templates, statuses = [], []
        for attachment in cluster.attachments.values():
            profile = self.profiles.get(attachment.profile_uid)
            templates.append({"uid": attachment.profile_uid, "name": profile.name if profile else "",
                              "profileVersion": profile.version if profile else "", "version": attachment.revision,
                              "type": profile.profile_type if profile else "add-on",
                              "cloudType": profile.cloud_type if profile else "all",
                              "packs": [pack_ref_view(p) for p in attachment.packs]})
            statuses.extend(self.pack_statuses(attachment))
        project = self.projects[cluster.project_uid]
        return {"apiVersion": "v1", "kind": "SpectroCluster",
                "metadata": {"name": cluster.name, "uid": cluster.uid, "creationTimestamp": cluster.created,
                             "annotations": {"scope": "project", "projectUid": cluster.project_uid,
                                             "projectName": project},
                             "labels": {}},
                "spec": {"cloudType": "maas", "cloudConfigRef": {"kind": "MaasCloudConfig", "name": cluster.name,
                                                                 "uid": cluster.cloud_config_uid},
                         "clusterType": "PureManage", "clusterProfileTemplates": templates,
                         "clusterConfig": {"clusterRbac": [], "clusterResources": {"namespaces": [], "rbacs": []}}},
                "status": {"state": cluster.state(), "packs": statuses, "conditions": cluster.conditions(),
                           "services": [], "apiEndpoints": []}}

    # -- cluster RBAC (Settings > RBAC) -----------------------------------------------------------

    def set_rbacs(self, cluster: Cluster, body: dict) -> List[dict]:
        """PUT config/rbacs: checks every binding, then the given entries replace the cluster's."""
        entries = (body or {}).get("rbacs")
        if not isinstance(entries, list):
            raise ApiError(400, "InvalidRequest", "rbacs must be a list")
        rbacs = []
        for index, entry in enumerate(entries):
            bindings = ((entry or {}).get("spec") or {}).get("bindings")
            if not isinstance(bindings, list):
                raise ApiError(400, "InvalidRequest", f"rbacs[{index}].spec.bindings must be a list")
            for bindex, binding in enumerate(bindings):
                check_binding(binding, f"rbacs[{index}].spec.bindings[{bindex}]")
            metadata = (entry or {}).get("metadata") or {}
            rbacs.append({"metadata": {"name": metadata.get("name") or f"{cluster.name}-rbac-{index + 1}",
                                       "uid": metadata.get("uid") or new_uid()},
                          "spec": {"bindings": copy.deepcopy(bindings), "isSystem": False,
                                   "relatedObject": {"kind": "spectrocluster", "name": cluster.name,
                                                     "uid": cluster.uid}},
                          "status": {"errors": []}})
        cluster.rbacs = rbacs
        return rbacs


def check_binding(binding, where: str) -> None:
    if not isinstance(binding, dict):
        raise ApiError(400, "InvalidRbac", f"{where} must be an object")
    btype = binding.get("type")
    if btype not in ("ClusterRoleBinding", "RoleBinding"):
        raise ApiError(400, "InvalidRbac", f"{where}.type {btype!r} must be ClusterRoleBinding or RoleBinding")
    if btype == "RoleBinding" and not binding.get("namespace"):
        raise ApiError(400, "InvalidRbac", f"{where}.namespace is required for a RoleBinding")
    role = binding.get("role") or {}
    allowed_kinds = ("ClusterRole", "Role") if btype == "RoleBinding" else ("ClusterRole",)
    if role.get("kind") not in allowed_kinds or not role.get("name"):
        raise ApiError(400, "InvalidRbac", f"{where}.role needs a name and a kind of {' or '.join(allowed_kinds)}")
    subjects = binding.get("subjects")
    if not isinstance(subjects, list) or not subjects:
        raise ApiError(400, "InvalidRbac", f"{where}.subjects must be a non-empty list")
    for sindex, subject in enumerate(subjects):
        stype = (subject or {}).get("type")
        if stype not in ("User", "Group", "ServiceAccount") or not subject.get("name"):
            raise ApiError(400, "InvalidRbac", f"{where}.subjects[{sindex}] needs a name and a type of User, "
                           "Group or ServiceAccount")
        if stype == "ServiceAccount" and not subject.get("namespace"):
            raise ApiError(400, "InvalidRbac", f"{where}.subjects[{sindex}].namespace is required for a ServiceAccount")
