"""The kubeconfigs Palette hands out for a cluster, as certificates the lab CA signs for the lab's real apiserver.

Each simulated cluster (lab-cluster and every MAAS cluster) gets two identities, minted once and kept in the
lab's state directory (`<state>/palette-kubeconfigs/`), so a cluster's kubeconfig text stays the same for
the life of the lab:

- the client identity (`/assets/kubeconfigclient`): CN `palette-<cluster>-client`, no organisation (so no
  system:masters), bound to cluster-admin by the ClusterRoleBinding `palette-<cluster>-client` the simulator
  makes (labelled `palette.lab/kubeconfig-client=true`);
- the admin identity (`/assets/adminKubeconfig` of a MAAS cluster): CN `palette-<cluster>-admin`, organisation
  `system:masters`, as kubeadm's admin.conf (CN kubernetes-admin, O system:masters) on a cluster Palette built.

Lab decision: real Palette returns the kubeconfig of the cluster it built (its own apiserver and CA); the
lab's clusters all share one apiserver, so each is told apart by its user. The kubeconfig carries
certificate-authority-data, client-certificate-data and client-key-data, no file paths.
"""

import base64
import threading
from pathlib import Path
from typing import Optional

from .. import pki
from ..kube import Kube, object_path

RBAC_API = "rbac.authorization.k8s.io/v1"
CLIENT_LABEL = "palette.lab/kubeconfig-client"
CLUSTER_LABEL = "spectrocloud.com/clusterId"
FIELD_MANAGER = "palette-lab-kubeconfigs"


def client_user(cluster_name: str) -> str:
    return f"palette-{cluster_name}-client"


def admin_user(cluster_name: str) -> str:
    return f"palette-{cluster_name}-admin"


def binding_path(cluster_name: str) -> str:
    return object_path(RBAC_API, "clusterrolebindings", client_user(cluster_name))


class Kubeconfigs:
    def __init__(self, directory: Path, ca_path: Path, server: str, kube: Kube):
        """`ca_path` is the lab CA without suffix (`<state>/pki/ca`); `server` the apiserver's URL."""
        self.directory, self.ca_path, self.server, self.kube = Path(directory), Path(ca_path), server, kube
        self._lock = threading.Lock()

    def _certificate(self, user: str, organization: Optional[str]) -> Path:
        """`<dir>/<user>.crt` and `.key`, made once per lab."""
        path = self.directory / user
        with self._lock:
            if not path.with_suffix(".crt").exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                pki.make_leaf(path, pki.load_ca(self.ca_path), user, organization)
        return path

    def render(self, cluster_name: str, user: str, organization: Optional[str] = None) -> str:
        cert = self._certificate(user, organization)

        def data(path: Path) -> str:
            return base64.b64encode(path.read_bytes()).decode()

        context = f"{user}@{cluster_name}"
        return (
            "apiVersion: v1\nkind: Config\n"
            f"clusters:\n- name: {cluster_name}\n  cluster:\n    server: {self.server}\n"
            f"    certificate-authority-data: {data(self.ca_path.with_suffix('.crt'))}\n"
            f"users:\n- name: {user}\n  user:\n"
            f"    client-certificate-data: {data(cert.with_suffix('.crt'))}\n"
            f"    client-key-data: {data(cert.with_suffix('.key'))}\n"
            f"contexts:\n- name: {context}\n  context:\n    cluster: {cluster_name}\n    user: {user}\n"
            f"current-context: {context}\npreferences: {{}}\n")

    def client(self, cluster_name: str) -> str:
        """The client kubeconfig: a non-admin identity that the cluster's binding makes cluster-admin."""
        return self.render(cluster_name, client_user(cluster_name))

    def admin(self, cluster_name: str) -> str:
        return self.render(cluster_name, admin_user(cluster_name), "system:masters")

    def bind(self, cluster_name: str, cluster_uid: str) -> None:
        """The ClusterRoleBinding that makes the client identity cluster-admin (server-side applied: idempotent)."""
        self._certificate(client_user(cluster_name), None)
        self.kube.apply(binding_path(cluster_name), {
            "apiVersion": RBAC_API, "kind": "ClusterRoleBinding",
            "metadata": {"name": client_user(cluster_name),
                         "labels": {CLIENT_LABEL: "true", CLUSTER_LABEL: cluster_uid}},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": client_user(cluster_name), "apiGroup": "rbac.authorization.k8s.io"}],
        }, FIELD_MANAGER, force=True)

    def ensure_bound(self, cluster_name: str, cluster_uid: str) -> None:
        """The binding made again only if it is missing (a read otherwise: tests count the lab's writes)."""
        live = self.kube.get_or_none(binding_path(cluster_name))
        if live is None or (live["metadata"].get("labels") or {}).get(CLUSTER_LABEL) != cluster_uid:
            self.bind(cluster_name, cluster_uid)

    def unbind(self, cluster_name: str) -> None:
        self.kube.delete(binding_path(cluster_name))

    def bindings(self) -> list:
        """Names of every client binding the simulator made (any cluster)."""
        listing = self.kube.get(object_path(RBAC_API, "clusterrolebindings"), labelSelector=f"{CLIENT_LABEL}=true")
        return [item["metadata"]["name"] for item in listing.get("items", [])]
