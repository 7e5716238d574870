"""Palette's agent on the lab cluster: turns attached packs and cluster RBAC into objects in the real apiserver.

Everything is server-side applied with the field manager `palette-agent` (force: the agent owns what
the pack sets, as Helm would). The lab's baseline KubeVirt and CDI CRs (tests/lab/bootstrap.py) are
shared with every other test, so `restore_baseline` gives them back after a test changed them.
"""

import threading
import time
from typing import Callable, Dict, List, Set, Tuple

from .. import bootstrap
from ..kube import Kube, KubeError, object_path
from . import values as pack_values
from .model import PACK_NAME, Attachment, condition

FIELD_MANAGER = "palette-agent"
RBAC_LABEL = "spectrocloud.com/clusterRbac"
CLUSTER_LABEL = "spectrocloud.com/clusterId"
RBAC_API = "rbac.authorization.k8s.io/v1"
KUBEVIRT_API, CDI_API = "kubevirt.io/v1", "cdi.kubevirt.io/v1beta1"
DEPLOYED_TIMEOUT = 30.0
DEPLOY_SECONDS = 0.5
# Palette's agent takes a moment to pick an attach up; the lab does it at once unless a test sets the knob
# apply_delay_seconds (tests/lab/tests/test_palette_simulator.py expects the packs listed right after the PATCH).
APPLY_DELAY_SECONDS = 0.0


def _default_cluster_roles() -> List[dict]:
    # Imported late: the collection is importable only once build/collections is on sys.path (__main__ does it).
    from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import vmo_cluster_roles

    return vmo_cluster_roles()


class PackFailed(Exception):
    """The message a pack's Error condition carries."""


class Agent:
    def __init__(self, kube: Kube, cluster_uid: str, cluster_roles: Callable[[], List[dict]] = _default_cluster_roles):
        self.kube, self.cluster_uid = kube, cluster_uid
        self.cluster_roles = cluster_roles
        self.deploy_seconds = DEPLOY_SECONDS  # how long a pack stays not Ready at least, so a poller sees it
        self.apply_delay_seconds = APPLY_DELAY_SECONDS  # until the agent picks an attach up (its next sync)
        # What the agent created (namespaces, manifest objects): `restore_baseline` deletes it again.
        self.created: Set[str] = set()
        self._resources: Dict[Tuple[str, str], Tuple[str, bool]] = {}
        self._lock = threading.Lock()

    # -- packs ------------------------------------------------------------------------------------

    def deploy(self, attachment: Attachment, pick_up: Callable[[Attachment], None],
               report: Callable[[Attachment, Dict[str, dict]], None]) -> None:
        """Applies each pack of an attached profile (in a thread of its own) and reports its condition.

        Like Palette's agent on a cluster, it picks the change up only after `apply_delay_seconds` (its next
        sync); until then the cluster goes on reporting the packs it reported before (model.Attachment).
        """
        delay = self.apply_delay_seconds
        if delay <= 0:
            pick_up(attachment)  # at once: the PATCH's answer already finds the packs deploying

        def run():
            if delay > 0:
                time.sleep(delay)
                pick_up(attachment)
            started = time.monotonic()
            results = {}
            for pack in attachment.packs:
                try:
                    self.apply_pack(pack)
                    results[pack["name"]] = condition("Ready", "True", "Deployed", f"{pack['name']} is deployed")
                except PackFailed as err:
                    results[pack["name"]] = condition("Error", "True", "DeploymentFailed", str(err))
            time.sleep(max(0.0, self.deploy_seconds - (time.monotonic() - started)))
            report(attachment, results)
        threading.Thread(target=run, daemon=True, name=f"palette-agent-{attachment.profile_uid}").start()

    def apply_pack(self, pack: dict) -> None:
        if pack["type"] == "manifest":
            namespace = pack_values.lookup(pack_values.parse(pack.get("values")), "pack.namespace") or "default"
            for manifest in pack.get("manifests", []):
                try:
                    objects = pack_values.parse_manifest(manifest["content"])
                except pack_values.ValuesError as err:
                    raise PackFailed(f"manifest {manifest['name']!r}: {err}") from None
                for obj in objects:
                    self._apply(obj, namespace, f"manifest {manifest['name']!r}", track=True)
        elif pack["name"] == PACK_NAME:
            self._apply_vmo(pack)

    def _apply_vmo(self, pack: dict) -> None:
        try:
            settings = pack_values.vmo_settings(pack_values.parse(pack.get("values")))
        except pack_values.ValuesError as err:
            raise PackFailed(f"values of {PACK_NAME} {pack['tag']}: {err}") from None
        namespaces = [settings.kubevirt_namespace, bootstrap.CDI_NAMESPACE, settings.pack_namespace,
                      settings.golden_images_namespace] + settings.vm_namespaces
        for name in dict.fromkeys(namespaces):
            self._apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, "", "namespaces",
                        track=True)
        for role in self.cluster_roles():
            self._apply(role, "", "VMO roles")
        kubevirt = self._apply(kubevirt_cr(settings), "", "KubeVirt")
        self._apply(cdi_cr(settings), "", "CDI")
        self._wait_deployed(kubevirt)

    def _wait_deployed(self, kubevirt: dict) -> None:
        path = object_path(KUBEVIRT_API, "kubevirts", kubevirt["metadata"]["name"], kubevirt["metadata"]["namespace"])
        generation = kubevirt["metadata"].get("generation", 1)
        deadline = time.monotonic() + DEPLOYED_TIMEOUT
        status: dict = {}
        while time.monotonic() < deadline:
            status = (self.kube.get_or_none(path) or {}).get("status") or {}
            if status.get("phase") == "Deployed" and status.get("observedGeneration", 0) >= generation:
                return
            time.sleep(0.1)
        raise PackFailed(f"KubeVirt {kubevirt['metadata']['namespace']}/{kubevirt['metadata']['name']} was not "
                         f"Deployed after {DEPLOYED_TIMEOUT:.0f}s (phase {status.get('phase')!r})")

    def _apply(self, obj: dict, default_namespace: str, what: str, track: bool = False) -> dict:
        api_version, kind, name = obj["apiVersion"], obj["kind"], obj["metadata"]["name"]
        try:
            plural, namespaced = self._resource(api_version, kind)
            namespace = (obj["metadata"].get("namespace") or default_namespace or "default") if namespaced else ""
            if namespaced:
                obj = dict(obj, metadata=dict(obj["metadata"], namespace=namespace))
            path = object_path(api_version, plural, name, namespace)
            if track and self.kube.get_or_none(path) is None:
                with self._lock:
                    self.created.add(path)
            return self.kube.apply(path, obj, FIELD_MANAGER, force=True, fieldValidation="Strict")
        except KubeError as err:
            message = err.body.get("message") if isinstance(err.body, dict) else err.body
            raise PackFailed(f"{what}: {kind} {name}: the apiserver refused it (HTTP {err.status}): {message}") from None
        except LookupError as err:
            raise PackFailed(f"{what}: {err}") from None

    def _resource(self, api_version: str, kind: str) -> Tuple[str, bool]:
        """(plural, namespaced) for a kind, from the apiserver's discovery (refreshed on a miss)."""
        key = (api_version, kind)
        if key not in self._resources:
            path = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
            try:
                listing = self.kube.get(path)
            except KubeError:
                raise LookupError(f"the apiserver does not serve {api_version}") from None
            for resource in listing.get("resources", []):
                if "/" not in resource["name"]:
                    self._resources[(api_version, resource["kind"])] = (resource["name"], resource["namespaced"])
        if key not in self._resources:
            raise LookupError(f"the apiserver has no kind {kind} in {api_version}")
        return self._resources[key]

    # -- cluster RBAC -----------------------------------------------------------------------------

    def apply_rbacs(self, rbacs: List[dict], cluster_uid: str = "", name_suffix: str = "") -> None:
        """The bindings of every entry as spectro-on-demand-<n>; bindings no longer listed are removed.

        `cluster_uid` (lab-cluster's by default) labels them; the lab's clusters share one apiserver, so another
        cluster's bindings carry `name_suffix` (`-<cluster name>`) to keep their names apart (a lab decision).
        """
        cluster_uid = cluster_uid or self.cluster_uid
        wanted = set()
        counter = 0
        for rbac in rbacs:
            errors = []
            for binding in rbac["spec"]["bindings"]:
                counter += 1
                obj = binding_object(binding, f"spectro-on-demand-{counter}{name_suffix}", cluster_uid)
                wanted.add((obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))
                try:
                    self._drop_if_role_changed(obj)
                    self._apply(obj, "", "RBAC")
                except PackFailed as err:
                    errors.append({"name": obj["metadata"]["name"], "resourceType": obj["kind"], "msg": str(err)})
            rbac["status"]["errors"] = errors
        self._remove_stale_bindings(wanted, cluster_uid)

    def remove_rbacs(self, cluster_uid: str) -> None:
        """Every binding made for the cluster's RBAC settings (the cluster is gone)."""
        self._remove_stale_bindings(set(), cluster_uid)

    def _drop_if_role_changed(self, obj: dict) -> None:
        # roleRef is immutable: a binding that now names another role is made again.
        plural = "clusterrolebindings" if obj["kind"] == "ClusterRoleBinding" else "rolebindings"
        path = object_path(RBAC_API, plural, obj["metadata"]["name"], obj["metadata"].get("namespace", ""))
        live = self.kube.get_or_none(path)
        if live is not None and live.get("roleRef") != obj["roleRef"]:
            self.kube.delete(path)

    def _remove_stale_bindings(self, wanted: set, cluster_uid: str = "") -> None:
        selector = f"{RBAC_LABEL}=true,{CLUSTER_LABEL}={cluster_uid or self.cluster_uid}"
        for kind, plural in (("ClusterRoleBinding", "clusterrolebindings"), ("RoleBinding", "rolebindings")):
            for item in self.kube.get(object_path(RBAC_API, plural), labelSelector=selector).get("items", []):
                meta = item["metadata"]
                if (kind, meta.get("namespace", ""), meta["name"]) not in wanted:
                    self.kube.delete(object_path(RBAC_API, plural, meta["name"], meta.get("namespace", "")))

    # -- giving the shared lab back ---------------------------------------------------------------

    def _replace_spec(self, path: str, baseline: dict) -> None:
        """The object's spec back to the baseline, owned by the bootstrap alone.

        A replace that also clears managedFields, then the bootstrap's apply: taking fields back by
        apply alone can leave a map the agent emptied as null, which the CRD refuses.
        """
        live = self.kube.get_or_none(path)
        if live is None:
            return
        live["spec"] = baseline["spec"]
        live["metadata"]["managedFields"] = [{}]
        self.kube.request("PUT", path, live)
        self.kube.apply(path, baseline, bootstrap.FIELD_MANAGER, force=True)

    def restore_baseline(self) -> None:
        """KubeVirt and CDI CRs as bootstrap made them, agent namespaces and bindings gone."""
        kv_path = object_path(KUBEVIRT_API, "kubevirts", "kubevirt", bootstrap.KUBEVIRT_NAMESPACE)
        cdi_path = object_path(CDI_API, "cdis", "cdi")
        for path, baseline in ((kv_path, bootstrap.kubevirt_cr(bootstrap.VMO_FEATURE_GATES)), (cdi_path, BASELINE_CDI)):
            self._replace_spec(path, baseline)
        with self._lock:
            created, self.created = self.created, set()
        # Objects before namespaces: a cluster-scoped object would outlive its namespace's deletion.
        for path in sorted(created, key=_is_namespace):
            self.kube.delete(path)
        self._remove_stale_bindings(set())
        # A namespace goes away only once the namespace controller has emptied it: wait, so the next attach does
        # not meet a namespace still being terminated.
        terminating = [path for path in created if _is_namespace(path)]
        deadline = time.monotonic() + BASELINE_TIMEOUT
        while terminating and time.monotonic() < deadline:
            terminating = [path for path in terminating if self.kube.get_or_none(path) is not None]
            if terminating:
                time.sleep(0.2)


BASELINE_TIMEOUT = 120  # seconds restore_baseline waits for the namespaces it deleted to be gone


def _is_namespace(path: str) -> bool:
    return path.startswith("/api/v1/namespaces/") and path.count("/") == 4


# The CDI CR of tests/lab/bootstrap.py.
BASELINE_CDI = {"apiVersion": CDI_API, "kind": "CDI", "metadata": {"name": "cdi"}, "spec": {"config": {}}}


def kubevirt_cr(settings: pack_values.VmoSettings) -> dict:
    """The KubeVirt CR the pack's chart renders: the feature gates are exactly additionalFeatureGates."""
    developer = dict(settings.kubevirt_additional_dev_config, featureGates=list(settings.feature_gates),
                     useEmulation=settings.use_emulation)
    configuration = dict(settings.kubevirt_additional_config, developerConfiguration=developer)
    if settings.eviction_strategy:
        configuration["evictionStrategy"] = settings.eviction_strategy
    if settings.vm_rollout_strategy:
        configuration["vmRolloutStrategy"] = settings.vm_rollout_strategy
    spec: dict = {"configuration": configuration}
    if settings.kubevirt_uninstall_strategy:
        spec["uninstallStrategy"] = settings.kubevirt_uninstall_strategy
    if settings.workload_update_methods is not None:
        spec["workloadUpdateStrategy"] = {"workloadUpdateMethods": list(settings.workload_update_methods)}
    return {"apiVersion": KUBEVIRT_API, "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": settings.kubevirt_namespace}, "spec": spec}


def cdi_cr(settings: pack_values.VmoSettings) -> dict:
    config = dict(settings.cdi_additional_config, featureGates=list(settings.cdi_feature_gates))
    return {"apiVersion": CDI_API, "kind": "CDI", "metadata": {"name": "cdi"},
            "spec": dict(settings.cdi_additional_spec, config=config)}


def binding_object(binding: dict, name: str, cluster_uid: str) -> dict:
    """A Palette RBAC binding as the RoleBinding or ClusterRoleBinding the agent makes of it."""
    subjects = []
    for subject in binding["subjects"]:
        if subject["type"] == "ServiceAccount":
            subjects.append({"kind": "ServiceAccount", "name": subject["name"], "namespace": subject["namespace"]})
        else:
            subjects.append({"kind": subject["type"], "name": subject["name"], "apiGroup": "rbac.authorization.k8s.io"})
    metadata: dict = {"name": name, "labels": {RBAC_LABEL: "true", CLUSTER_LABEL: cluster_uid}}
    if binding["type"] == "RoleBinding":
        metadata["namespace"] = binding["namespace"]
    return {"apiVersion": RBAC_API, "kind": binding["type"], "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": binding["role"]["kind"],
                        "name": binding["role"]["name"]},
            "subjects": subjects}
