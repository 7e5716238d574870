"""What the lab puts in a fresh cluster: Nodes, KubeVirt's and CDI's operators, KubeVirt and CDI deployed.

A bare lab (`up --bare`) gets the Nodes only, so that installing KubeVirt can be tested from nothing.
"""

import time
from pathlib import Path
from typing import List

import yaml

from . import gobuild, processes, releases
from .kube import JSON, Kube, KubeError, object_path
from .kubevirt import crds

FIELD_MANAGER = "lab-bootstrap"
NODES = ("lab-node-1", "lab-node-2", "lab-node-3")
KUBEVIRT_NAMESPACE = "kubevirt"
CDI_NAMESPACE = "cdi"
# The VMO pack's default KubeVirt feature gates.
VMO_FEATURE_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks",
                     "HotplugNICs", "VMLiveUpdateFeatures"]


def _node(name: str) -> JSON:
    return {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": {
        "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
        "kubevirt.io/schedulable": "true", "topology.kubernetes.io/zone": "lab"}}}


def _node_status(index: int) -> JSON:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    # No devices.kubevirt.io/kvm: like a cloud VM without nested virtualisation, the lab needs useEmulation.
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    # Loopback addresses: nothing is ever sent to them, but NodePort lookups have an address to report.
    addresses = [{"type": "InternalIP", "address": f"127.0.10.{index}"}, {"type": "Hostname", "address": NODES[index - 1]}]
    return {"status": {"capacity": capacity, "allocatable": capacity, "addresses": addresses, "conditions": [
        {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab node",
         "lastHeartbeatTime": now, "lastTransitionTime": now}]}}


def ensure_nodes(kube: Kube) -> None:
    for index, name in enumerate(NODES, start=1):
        path = object_path("v1", "nodes", name)
        kube.apply(path, _node(name), FIELD_MANAGER, force=True)
        kube.merge_patch(path + "/status", _node_status(index))


def ensure_namespace(kube: Kube, name: str) -> None:
    kube.apply(object_path("v1", "namespaces", name),
               {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, FIELD_MANAGER, force=True)


def wait_established(kube: Kube, names: List[str], timeout: float = 60) -> None:
    def established() -> bool:
        for name in names:
            crd = kube.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", name))
            if not any(c["type"] == "Established" and c["status"] == "True"
                       for c in crd.get("status", {}).get("conditions", [])):
                return False
        return True
    processes.wait_until(established, timeout, f"CRDs {', '.join(names)} to be Established")


def manifest_object_path(doc: JSON) -> str:
    """The REST path of one object of the operator manifests (their kinds all pluralise regularly)."""
    kind = doc["kind"].lower()
    plural = kind + ("es" if kind.endswith("s") else "s")
    return object_path(doc["apiVersion"], plural, doc["metadata"]["name"], doc["metadata"].get("namespace"))


def install_operators(kube: Kube) -> None:
    """Applies KubeVirt's and CDI's release operator manifests, as a user installing them does."""
    for text in (releases.kubevirt_operator_yaml(), releases.cdi_operator_yaml()):
        for doc in releases.documents(text):
            kube.apply(manifest_object_path(doc), doc, FIELD_MANAGER, force=True)
    wait_established(kube, [crds.KUBEVIRT_OPERATOR_CRD, crds.CDI_OPERATOR_CRD])


VMTEMPLATE_CRD = Path(__file__).parent / "vmo" / "vmtemplate-crd.yaml"


def _apply_crds(kube: Kube, definitions: List[JSON]) -> None:
    for crd in definitions:
        kube.apply(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", crd["metadata"]["name"]),
                   crd, FIELD_MANAGER, force=True)
    wait_established(kube, [crd["metadata"]["name"] for crd in definitions])


def install_vmo_crds(kube: Kube) -> None:
    """What the VMO pack registers beside KubeVirt: the VmTemplate kind, Multus's NetworkAttachmentDefinition
    (the pack bundles Multus) and the external-snapshotter's VolumeSnapshot kinds (it bundles a snapshot
    controller), each from the file the project's own module ships."""
    nad = gobuild.build("network-attachment-definition") / "networks-crd.yaml"
    snapshotter = gobuild.build("external-snapshotter")
    definitions = [yaml.safe_load(VMTEMPLATE_CRD.read_text()), yaml.safe_load(nad.read_text())]
    definitions += [yaml.safe_load(path.read_text()) for path in sorted(snapshotter.glob("*.yaml"))]
    _apply_crds(kube, definitions)


VELERO_NAMESPACE = "velero"


def install_velero(kube: Kube) -> None:
    """Velero's CRDs, from the files Velero's own module ships, and its namespace (`velero install` makes both)."""
    directory = gobuild.build("velero")
    ensure_namespace(kube, VELERO_NAMESPACE)
    _apply_crds(kube, [yaml.safe_load((directory / f"{plural}.yaml").read_text()) for plural in gobuild.VELERO_CRDS])
    kube.apply(object_path("velero.io/v1", "backupstoragelocations", "default", VELERO_NAMESPACE),
               default_backup_location(), FIELD_MANAGER, force=True)


def default_backup_location() -> JSON:
    """The BackupStorageLocation `velero install --provider aws --bucket velero --backup-location-config
    region=minio,s3ForcePathStyle=true,s3Url=...` makes (pkg/install/resources.go BackupStorageLocation: named
    default, Default true, labelled component=velero), with the configuration of Velero's MinIO example; the
    stand-in's object store (tests/lab/velero/objectstore.py) plays that MinIO."""
    return {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation",
            "metadata": {"name": "default", "namespace": VELERO_NAMESPACE, "labels": {"component": "velero"}},
            "spec": {"provider": "aws", "default": True, "objectStorage": {"bucket": "velero"},
                     "config": {"region": "minio", "s3ForcePathStyle": "true",
                                "s3Url": "http://minio.velero.svc:9000"}}}


# What the VMO pack's KubeVirt CR sets beside the feature gates: VMs live-migrate off a drained node,
# VM changes reach running VMs live, and workload updates (also CPU/memory hotplug) migrate them.
VMO_EVICTION_STRATEGY = "LiveMigrate"
VMO_VM_ROLLOUT_STRATEGY = "LiveUpdate"
VMO_WORKLOAD_UPDATE_METHODS = ["LiveMigrate"]


def kubevirt_cr(feature_gates: List[str], use_emulation: bool = True) -> JSON:
    return {"apiVersion": "kubevirt.io/v1", "kind": "KubeVirt",
            "metadata": {"name": "kubevirt", "namespace": KUBEVIRT_NAMESPACE},
            "spec": {"certificateRotateStrategy": {},
                     "workloadUpdateStrategy": {"workloadUpdateMethods": list(VMO_WORKLOAD_UPDATE_METHODS)},
                     "configuration": {
                         "evictionStrategy": VMO_EVICTION_STRATEGY,
                         "vmRolloutStrategy": VMO_VM_ROLLOUT_STRATEGY,
                         "developerConfiguration": {"featureGates": feature_gates, "useEmulation": use_emulation}}}}


def deploy_kubevirt(kube: Kube, timeout: float = 120) -> None:
    ensure_namespace(kube, KUBEVIRT_NAMESPACE)
    ensure_namespace(kube, CDI_NAMESPACE)
    kube.apply(object_path("kubevirt.io/v1", "kubevirts", "kubevirt", KUBEVIRT_NAMESPACE),
               kubevirt_cr(VMO_FEATURE_GATES), FIELD_MANAGER)
    kube.apply(object_path("cdi.kubevirt.io/v1beta1", "cdis", "cdi"),
               {"apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "CDI", "metadata": {"name": "cdi"},
                "spec": {"config": {}}}, FIELD_MANAGER)
    wait_deployed(kube, timeout)


def wait_deployed(kube: Kube, timeout: float = 120) -> None:
    def deployed() -> bool:
        kv = kube.get(object_path("kubevirt.io/v1", "kubevirts", "kubevirt", KUBEVIRT_NAMESPACE))
        cdi = kube.get(object_path("cdi.kubevirt.io/v1beta1", "cdis", "cdi"))
        service = kube.get(object_path("apiregistration.k8s.io/v1", "apiservices", "v1.subresources.kubevirt.io"))
        available = any(c["type"] == "Available" and c["status"] == "True"
                        for c in service.get("status", {}).get("conditions", []))
        return (kv.get("status", {}).get("phase") == "Deployed"
                and cdi.get("status", {}).get("phase") == "Deployed" and available)
    processes.wait_until(deployed, timeout, "KubeVirt and CDI Deployed and the subresources APIService Available")


def wait_controller_manager(kube: Kube, timeout: float = 60) -> None:
    """The service-account controller creates `default` in every namespace: proof it runs."""
    def has_default_sa() -> bool:
        try:
            kube.get(object_path("v1", "serviceaccounts", "default", "default"))
            return True
        except KubeError:
            return False
    processes.wait_until(has_default_sa, timeout, "kube-controller-manager to create the default ServiceAccount")
