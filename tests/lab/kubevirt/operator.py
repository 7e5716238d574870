"""Stand-ins for virt-operator and cdi-operator.

They run where the release manifests put the operators: once the `virt-operator` Deployment exists
(KubeVirt's operator manifest), the stand-in marks it available, as the kubelet and the deployment
controller would, and from then on acts on KubeVirt CRs in that Deployment's namespace; likewise
`cdi-operator` for the CDI CR. Before that a CR just sits there, as on a cluster where the operator is
not installed, and the informers wait for the CRDs to appear.

On a KubeVirt CR the stand-in registers KubeVirt's CRDs, the subresources APIService and the
`virt-api-validator` ValidatingWebhookConfiguration (both served by the stand-in virt-api), then
reports `status.phase: Deployed`; on a CDI CR it registers CDI's CRDs.
Deleting the CR removes what it registered, as the real operators do.
"""

import base64
import logging
from datetime import datetime, timezone
from typing import Callable, List, Optional, Set

from .. import versions
from ..kube import JSON, Kube, object_path
from . import cdi_webhook, crds
from .runtime import Manager

log = logging.getLogger("standin.operator")

FIELD_MANAGER = "lab-virt-operator"
KUBEVIRT_FINALIZER = "foregroundDeleteKubeVirt"
CDI_FINALIZER = "operator.cdi.kubevirt.io"
SUBRESOURCE_VERSIONS = ("v1", "v1alpha3")
VIRT_API_SERVICE = "virt-api"
# virt-operator's components/webhooks.go VirtAPIValidatingWebhookName and the webhooks of it the
# stand-in serves: (name, resource, operations, path), from NewVirtAPIValidatingWebhookConfiguration.
VIRT_API_VALIDATOR = "virt-api-validator"
VIRT_API_WEBHOOKS = (
    ("virtualmachineinstances-create-validator.kubevirt.io", "virtualmachineinstances", ["CREATE"],
     "/virtualmachineinstances-validate-create"),
    ("virtualmachine-validator.kubevirt.io", "virtualmachines", ["CREATE", "UPDATE"], "/virtualmachines-validate"),
    ("migration-create-validator.kubevirt.io", "virtualmachineinstancemigrations", ["CREATE"],
     "/migration-validate-create"),
    ("migration-update-validator.kubevirt.io", "virtualmachineinstancemigrations", ["UPDATE"],
     "/migration-validate-update"),
    ("virtualmachineinstances-update-validator.kubevirt.io", "virtualmachineinstances", ["UPDATE"],
     "/virtualmachineinstances-validate-update"),
    # a webhook of another group: (name, resource, operations, path, group, versions)
    ("virtualmachineexport-validator.export.kubevirt.io", "virtualmachineexports", ["CREATE", "UPDATE"],
     "/virtualmachineexports-validate", "export.kubevirt.io", ["v1beta1", "v1"]),
    ("virtualmachinesnapshot-validator.snapshot.kubevirt.io", "virtualmachinesnapshots", ["CREATE", "UPDATE"],
     "/virtualmachinesnapshots-validate", "snapshot.kubevirt.io", ["v1beta1"]),
    ("virtualmachinerestore-validator.snapshot.kubevirt.io", "virtualmachinerestores", ["CREATE", "UPDATE"],
     "/virtualmachinerestores-validate", "snapshot.kubevirt.io", ["v1beta1"]),
    ("vm-clone-validator.kubevirt.io", "virtualmachineclones", ["CREATE", "UPDATE"],
     "/vm-clone-validate-create", "clone.kubevirt.io", ["v1beta1"]),
)
# components/webhooks.go VirtAPIMutatingWebhookName and, of NewVirtAPIMutatingWebhookConfiguration, the
# migrations mutator (the kubevirt.io/vmi-name label and the kubevirt.io/migrationJobFinalize finalizer).
VIRT_API_MUTATOR = "virt-api-mutator"
VIRT_API_MUTATING_WEBHOOKS = (
    ("migrations-mutator.kubevirt.io", "virtualmachineinstancemigrations", ["CREATE"], "/migration-mutate-create"),
    # KubeVirt registers it for CREATE and UPDATE; the lab's (vmi_update.py mutate_vmi) has the CREATE half
    ("virtualmachineinstances-mutator.kubevirt.io", "virtualmachineinstances", ["CREATE"], "/virtualmachineinstances-mutate"),
    ("virtualmachineclones-mutator.kubevirt.io", "virtualmachineclones", ["CREATE"], "/vm-clone-mutate-create",
     "clone.kubevirt.io", ["v1beta1"]),
)
# kubevirt.io/api core/v1 ApiSupportedWebhookVersions
WEBHOOK_API_VERSIONS = ["v1alpha3", "v1"]
# The operator Deployments of the release manifests, and the kind of CR each one acts on.
OPERATOR_DEPLOYMENTS = {"virt-operator": "KubeVirt", "cdi-operator": "CDI"}


def crd_groups(definitions: List[JSON]) -> Set[str]:
    return {crd["spec"]["group"] for crd in definitions}


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _deployment_available(deployment: Optional[JSON]) -> bool:
    if deployment is None or deployment["metadata"].get("deletionTimestamp"):
        return False
    status = deployment.get("status") or {}
    return (status.get("observedGeneration") == deployment["metadata"].get("generation")
            and (status.get("availableReplicas") or 0) >= 1)


def _status_current(deployment: JSON) -> bool:
    """The status says what the spec asks for (scaled to zero, the operator is not running)."""
    status = deployment.get("status") or {}
    return (status.get("observedGeneration") == deployment["metadata"].get("generation")
            and (status.get("availableReplicas") or 0) == deployment.get("spec", {}).get("replicas", 1))


def _available_status(deployment: JSON) -> JSON:
    replicas = deployment.get("spec", {}).get("replicas", 1)
    now = _now()
    return {"status": {
        "observedGeneration": deployment["metadata"].get("generation"), "replicas": replicas,
        "updatedReplicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
        "conditions": [
            {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
             "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
            {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
             "message": "ReplicaSet has successfully progressed.", "lastUpdateTime": now,
             "lastTransitionTime": now}]}}


def _conditions(deployed: bool, message: str) -> List[JSON]:
    now = _now()
    state = "True" if deployed else "False"
    return [
        {"type": "Available", "status": state, "reason": "AllComponentsReady" if deployed else "Deploying",
         "message": message, "lastProbeTime": now, "lastTransitionTime": now},
        {"type": "Progressing", "status": "False" if deployed else "True",
         "reason": "AllComponentsReady" if deployed else "Deploying", "message": message,
         "lastProbeTime": now, "lastTransitionTime": now},
        {"type": "Degraded", "status": "False", "reason": "AllComponentsReady", "message": message,
         "lastProbeTime": now, "lastTransitionTime": now},
    ]


class Operators:
    def __init__(self, manager: Manager, kube: Kube, virt_api_port: int, ca_bundle: bytes):
        self.kube = kube
        self.manager = manager
        self.queue = manager.queue
        self.virt_api_port = virt_api_port
        self.ca_bundle = base64.b64encode(ca_bundle).decode()
        self.applied: set = set()
        self.kubevirts = manager.informer(
            "kubevirts", object_path("kubevirt.io/v1", "kubevirts"), ("KubeVirt",))
        self.cdis = manager.informer("cdis", object_path("cdi.kubevirt.io/v1beta1", "cdis"), ("CDI",))
        self.deployments = manager.informer(
            "deployments", object_path("apps/v1", "deployments"), ("OperatorDeployment",))
        manager.reconciler("KubeVirt", self.reconcile_kubevirt)
        manager.reconciler("CDI", self.reconcile_cdi)
        manager.reconciler("OperatorDeployment", self.reconcile_operator_deployment)

    # -- what other stand-ins ask of the KubeVirt configuration --------------------------------

    def active_kubevirt(self) -> Optional[JSON]:
        for kv in self.kubevirts.list():
            if kv.get("status", {}).get("phase") == "Deployed":
                return kv
        return None

    def feature_gates(self) -> List[str]:
        kv = self.active_kubevirt() or {}
        config = kv.get("spec", {}).get("configuration", {})
        return list(config.get("developerConfiguration", {}).get("featureGates") or [])

    def kubevirt_config(self) -> JSON:
        """The deployed KubeVirt CR's spec.configuration (what virt-api's ClusterConfig reads)."""
        kv = self.active_kubevirt() or {}
        return kv.get("spec", {}).get("configuration") or {}

    def use_emulation(self) -> bool:
        kv = self.active_kubevirt() or {}
        config = kv.get("spec", {}).get("configuration", {})
        return bool(config.get("developerConfiguration", {}).get("useEmulation"))

    # -- the operators' own Deployments --------------------------------------------------------

    def operator_running(self, name: str, namespace: Optional[str] = None) -> bool:
        """True once the operator's Deployment is available (in `namespace`, or in any one)."""
        return any(_deployment_available(d) for d in self.deployments.list()
                   if d["metadata"]["name"] == name and namespace in (None, d["metadata"].get("namespace")))

    def reconcile_operator_deployment(self, namespace: str, name: str) -> Optional[float]:
        kind = OPERATOR_DEPLOYMENTS.get(name)
        if kind is None:
            return None
        deployment = self.deployments.get(namespace, name)
        if deployment is not None and not deployment["metadata"].get("deletionTimestamp") \
                and not _status_current(deployment):
            self.kube.merge_patch(object_path("apps/v1", "deployments", name, namespace) + "/status",
                                  _available_status(deployment))
            return None  # the watch brings the available Deployment back
        # The operator started (or went away): it looks at its CRs again.
        informer = self.kubevirts if kind == "KubeVirt" else self.cdis
        for cr in informer.list():
            self.queue.add((kind, cr["metadata"].get("namespace", ""), cr["metadata"]["name"]))
        return None

    # -- reconcile ------------------------------------------------------------------------------

    def _apply_crds(self, wanted: List[JSON], skip: str) -> bool:
        """Applies CRDs (once per process: they are large); True once every one is Established."""
        established = True
        for crd in wanted:
            name = crd["metadata"]["name"]
            if name == skip:
                continue
            path = object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name)
            if name not in self.applied:
                self.kube.apply(path, crd, FIELD_MANAGER, force=True)
                self.applied.add(name)
            live = self.kube.get(path)
            conditions = {c["type"]: c["status"] for c in live.get("status", {}).get("conditions") or []}
            established = established and conditions.get("Established") == "True"
        return established

    def _delete_crds(self, wanted: List[JSON], skip: str) -> None:
        for crd in wanted:
            if crd["metadata"]["name"] != skip:
                self.applied.discard(crd["metadata"]["name"])
                self.kube.delete(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                             crd["metadata"]["name"]))

    def _register_virt_api(self, namespace: str) -> None:
        # An ExternalName Service lets the aggregator reach a process on loopback: it dials
        # https://localhost:<port> and verifies the certificate for virt-api.<namespace>.svc.
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": VIRT_API_SERVICE, "namespace": namespace, "labels": {"kubevirt.io": "virt-api"}},
            "spec": {"type": "ExternalName", "externalName": "localhost",
                     "ports": [{"name": "https", "port": self.virt_api_port, "protocol": "TCP"}]},
        }
        self.kube.apply(object_path("v1", "services", VIRT_API_SERVICE, namespace), service,
                        FIELD_MANAGER, force=True)
        for version in SUBRESOURCE_VERSIONS:
            name = f"{version}.subresources.kubevirt.io"
            api_service = {
                "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                "metadata": {"name": name, "labels": {"kubevirt.io": "virt-api"}},
                "spec": {"group": "subresources.kubevirt.io", "version": version,
                         "service": {"namespace": namespace, "name": VIRT_API_SERVICE,
                                     "port": self.virt_api_port},
                         "caBundle": self.ca_bundle, "groupPriorityMinimum": 1000, "versionPriority": 15},
            }
            self.kube.apply(object_path("apiregistration.k8s.io/v1", "apiservices", name), api_service,
                            FIELD_MANAGER, force=True)

        self.kube.apply(object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                    VIRT_API_VALIDATOR), self._validating_webhooks(namespace), FIELD_MANAGER, force=True)
        self.kube.apply(object_path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations",
                                    VIRT_API_MUTATOR), self._mutating_webhooks(namespace), FIELD_MANAGER, force=True)

    def _webhooks(self, namespace: str, table: tuple) -> List[JSON]:
        return [{
            "name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "timeoutSeconds": 10,
            "sideEffects": "None",
            "rules": [{"operations": operations, "apiGroups": [group[0] if group else "kubevirt.io"],
                       "apiVersions": group[1] if group else WEBHOOK_API_VERSIONS, "resources": [resource]}],
            "clientConfig": {"caBundle": self.ca_bundle,
                             "service": {"namespace": namespace, "name": VIRT_API_SERVICE, "path": path,
                                         "port": self.virt_api_port}},
        } for name, resource, operations, path, *group in table]

    def _mutating_webhooks(self, namespace: str) -> JSON:
        """virt-operator's NewVirtAPIMutatingWebhookConfiguration, for the migrations mutator."""
        return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration",
                "metadata": {"name": VIRT_API_MUTATOR,
                             "labels": {"kubevirt.io": VIRT_API_MUTATOR,
                                        "app.kubernetes.io/managed-by": "virt-operator"}},
                "webhooks": self._webhooks(namespace, VIRT_API_MUTATING_WEBHOOKS)}

    def _validating_webhooks(self, namespace: str) -> JSON:
        """virt-operator's NewVirtAPIValidatingWebhookConfiguration, for the VM, VMI-create and migration-create webhooks."""
        webhooks = [{
            "name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "timeoutSeconds": 10,
            # sideEffects None: the apiserver calls the webhook for dry-run requests too.
            "sideEffects": "None",
            "rules": [{"operations": operations, "apiGroups": [group[0] if group else "kubevirt.io"],
                       "apiVersions": group[1] if group else WEBHOOK_API_VERSIONS, "resources": [resource]}],
            "clientConfig": {"caBundle": self.ca_bundle,
                             "service": {"namespace": namespace, "name": VIRT_API_SERVICE, "path": path,
                                         "port": self.virt_api_port}},
        } for name, resource, operations, path, *group in VIRT_API_WEBHOOKS]
        return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
                "metadata": {"name": VIRT_API_VALIDATOR,
                             "labels": {"kubevirt.io": VIRT_API_VALIDATOR,
                                        "app.kubernetes.io/managed-by": "virt-operator"}},
                "webhooks": webhooks}

    def _unregister_virt_api(self, namespace: str) -> None:
        # The webhook first: with failurePolicy Fail it must not outlive the server it points at.
        self.kube.delete(object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                                     VIRT_API_VALIDATOR))
        self.kube.delete(object_path("admissionregistration.k8s.io/v1", "mutatingwebhookconfigurations",
                                     VIRT_API_MUTATOR))
        for version in SUBRESOURCE_VERSIONS:
            self.kube.delete(object_path("apiregistration.k8s.io/v1", "apiservices",
                                         f"{version}.subresources.kubevirt.io"))
        self.kube.delete(object_path("v1", "services", VIRT_API_SERVICE, namespace))

    def _finalize(self, path: str, obj: JSON, finalizer: str, cleanup: Callable[[], None]) -> None:
        if finalizer in obj["metadata"].get("finalizers", []):
            cleanup()
            remaining = [f for f in obj["metadata"]["finalizers"] if f != finalizer]
            self.kube.json_patch(path, [
                {"op": "test", "path": "/metadata/finalizers", "value": obj["metadata"]["finalizers"]},
                {"op": "replace", "path": "/metadata/finalizers", "value": remaining}])

    def _ensure_finalizer(self, path: str, obj: JSON, finalizer: str) -> bool:
        """Adds the finalizer; True if it had to (the watch brings the updated object back)."""
        finalizers = obj["metadata"].get("finalizers", [])
        if finalizer in finalizers:
            return False
        self.kube.merge_patch(path, {"metadata": {"finalizers": finalizers + [finalizer]}})
        return True

    def reconcile_kubevirt(self, namespace: str, name: str) -> Optional[float]:
        kv = self.kubevirts.get(namespace, name)
        if kv is None or not self.operator_running("virt-operator", namespace):
            return None
        path = object_path("kubevirt.io/v1", "kubevirts", name, namespace)
        if kv["metadata"].get("deletionTimestamp"):
            def cleanup():
                self._unregister_virt_api(namespace)
                self._delete_crds(crds.kubevirt_crds(), crds.KUBEVIRT_OPERATOR_CRD)
            self._finalize(path, kv, KUBEVIRT_FINALIZER, cleanup)
            return None
        if self._ensure_finalizer(path, kv, KUBEVIRT_FINALIZER):
            return None
        # Deployed once virt-controller and virt-api would be Ready: their informers of KubeVirt's resources have
        # synced (cache.WaitForCacheSync before the controllers start, pkg/virt-controller/watch/application.go;
        # virt-operator waits for the deployments' readiness before it reports Deployed)
        ready = self._apply_crds(crds.kubevirt_crds(), crds.KUBEVIRT_OPERATOR_CRD) \
            and self.manager.caches_synced(crd_groups(crds.kubevirt_crds()))
        self._register_virt_api(namespace)
        status = kv.get("status", {})
        phase = "Deployed" if ready else "Deploying"
        generation = kv["metadata"].get("generation", 1)
        if status.get("phase") == phase and status.get("observedGeneration") == generation:
            return None if ready else 0.5
        message = "All components are ready." if ready else "Deploying version " + versions.KUBEVIRT
        self.kube.merge_patch(path + "/status", {"status": {
            "phase": phase, "conditions": _conditions(ready, message),
            "observedKubeVirtVersion": versions.KUBEVIRT, "targetKubeVirtVersion": versions.KUBEVIRT,
            "operatorVersion": versions.KUBEVIRT, "observedGeneration": generation,
            "defaultArchitecture": "amd64",
        }})
        return None if ready else 0.5

    def reconcile_cdi(self, _namespace: str, name: str) -> Optional[float]:
        cdi = self.cdis.get("", name)
        if cdi is None or not self.operator_running("cdi-operator"):
            return None
        path = object_path("cdi.kubevirt.io/v1beta1", "cdis", name)
        webhook = object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations",
                              cdi_webhook.WEBHOOK_CONFIGURATION)
        if cdi["metadata"].get("deletionTimestamp"):
            def cleanup():
                self.kube.delete(webhook)  # cdi_webhook.py: the DataVolume webhook goes with CDI
                self._delete_crds(crds.cdi_crds(), crds.CDI_OPERATOR_CRD)
            self._finalize(path, cdi, CDI_FINALIZER, cleanup)
            return None
        if self._ensure_finalizer(path, cdi, CDI_FINALIZER):
            return None
        ready = self._apply_crds(crds.cdi_crds(), crds.CDI_OPERATOR_CRD) \
            and self.manager.caches_synced(crd_groups(crds.cdi_crds()))
        if ready:
            # cluster/apiserver.go createDataVolumeValidatingWebhook, served by the stand-in (cdi_webhook.py)
            self.kube.apply(webhook, cdi_webhook.webhook_configuration(self.virt_api_port, self.ca_bundle),
                            FIELD_MANAGER, force=True)
        phase = "Deployed" if ready else "Deploying"
        if cdi.get("status", {}).get("phase") == phase:
            return None if ready else 0.5
        # The CDI CRD has no status subresource: status is part of the object.
        self.kube.merge_patch(path, {"status": {
            "phase": phase, "conditions": _conditions(ready, "Deployment Completed" if ready else "Deploying"),
            "observedVersion": versions.CDI, "targetVersion": versions.CDI, "operatorVersion": versions.CDI,
        }})
        return None if ready else 0.5
