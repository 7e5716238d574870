"""etcd, kube-apiserver and kube-controller-manager on loopback, configured like a small real cluster."""

import os
from pathlib import Path
from typing import Dict, List

import requests

from . import gobuild, pki, processes, state as lab_state
from .state import LabState

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
# One event per request, when the response is complete; metadata is enough to see who changed what.
omitStages: [RequestReceived]
rules:
- level: Metadata
"""


def _token_file(state: LabState) -> str:
    groups: Dict[str, str] = {
        lab_state.ADMIN_USER: "system:masters",
        lab_state.KUBEVIRT_STANDIN_USER: "system:masters",
        lab_state.CONTROLLER_MANAGER_USER: "",
    }
    lines = []
    for user, token in state.tokens.items():
        group = groups.get(user, "lab:people")
        lines.append(f'{token},{user},{user},"{group}"' if group else f"{token},{user},{user}")
    return "\n".join(lines) + "\n"


def _kubeconfig(state: LabState, user: str) -> str:
    return f"""\
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster:
    server: {state.apiserver_url}
    certificate-authority: {state.ca_file}
users:
- name: {user}
  user:
    token: {state.token(user)}
contexts:
- name: lab
  context: {{cluster: lab, user: {user}}}
current-context: lab
"""


def write_config(state: LabState) -> None:
    """Everything the processes read: PKI, token file, audit policy, kubeconfigs."""
    pki.make_lab_pki(state.dir / "pki")
    (state.dir / "logs").mkdir(parents=True, exist_ok=True)
    tokens = state.dir / "tokens.csv"
    tokens.write_text(_token_file(state))
    tokens.chmod(0o600)
    (state.dir / "audit-policy.yaml").write_text(AUDIT_POLICY)
    state.kubeconfig.write_text(_kubeconfig(state, lab_state.ADMIN_USER))
    state.kubeconfig.chmod(0o600)
    cm = state.dir / "controller-manager.kubeconfig"
    cm.write_text(_kubeconfig(state, lab_state.CONTROLLER_MANAGER_USER))
    cm.chmod(0o600)


def etcd_argv(state: LabState) -> List[str]:
    client = f"http://127.0.0.1:{state.ports['etcd']}"
    return [
        str(gobuild.program("etcd")),
        "--name=lab", f"--data-dir={state.dir / 'etcd'}",
        f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
        f"--listen-peer-urls=http://127.0.0.1:{state.ports['etcd-peer']}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{state.ports['etcd-peer']}",
        f"--initial-cluster=lab=http://127.0.0.1:{state.ports['etcd-peer']}",
        # A lab's data is disposable: skipping fsync makes every write much faster.
        "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def apiserver_argv(state: LabState) -> List[str]:
    pki_dir = state.dir / "pki"
    return [
        str(gobuild.program("kube-apiserver")),
        "--bind-address=127.0.0.1", f"--secure-port={state.ports['apiserver']}",
        "--advertise-address=127.0.0.1", "--endpoint-reconciler-type=none",
        f"--etcd-servers=http://127.0.0.1:{state.ports['etcd']}",
        f"--tls-cert-file={pki_dir / 'apiserver.crt'}", f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
        f"--client-ca-file={pki_dir / 'ca.crt'}",
        f"--token-auth-file={state.dir / 'tokens.csv'}",
        "--authorization-mode=RBAC",
        "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true",
        f"--service-account-issuer={state.apiserver_url}",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        f"--audit-policy-file={state.dir / 'audit-policy.yaml'}",
        f"--audit-log-path={state.audit_log}", "--audit-log-format=json",
        "--audit-log-mode=blocking",
        # The aggregation layer: the apiserver proxies subresources.kubevirt.io to the stand-in
        # virt-api with this client certificate, and the stand-in trusts the front-proxy CA.
        f"--requestheader-client-ca-file={pki_dir / 'front-proxy-ca.crt'}",
        "--requestheader-allowed-names=front-proxy-client",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki_dir / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki_dir / 'front-proxy-client.key'}",
    ]


CONTROLLERS = ",".join([
    "garbage-collector-controller", "namespace-controller", "serviceaccount-controller",
    "serviceaccount-token-controller", "root-ca-certificate-publisher-controller",
    # Storage, as on any cluster: binding PVCs to PVs (and asking the external provisioner through the
    # volume.kubernetes.io/storage-provisioner annotation), the expander that hands CSI volumes to the
    # external resizer, and the protection finalizers on PVCs and PVs in use.
    "persistentvolume-binder-controller", "persistentvolume-expander-controller",
    "persistentvolumeclaim-protection-controller", "persistentvolume-protection-controller",
])


def controller_manager_argv(state: LabState) -> List[str]:
    pki_dir = state.dir / "pki"
    kubeconfig = state.dir / "controller-manager.kubeconfig"
    return [
        str(gobuild.program("kube-controller-manager")),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}", f"--authorization-kubeconfig={kubeconfig}",
        "--leader-elect=false", f"--controllers={CONTROLLERS}",
        # As on kubeadm clusters: each controller acts as its own service account with its bootstrap role.
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki_dir / 'sa.key'}",
        f"--root-ca-file={pki_dir / 'ca.crt'}",
        "--bind-address=127.0.0.1", f"--secure-port={state.ports['controller-manager']}",
        "--concurrent-gc-syncs=5",
    ]


# The control plane's Go garbage collector runs less often (it spent a quarter of the apiserver's CPU under a
# batch of writes); a lab has the memory to spare, and nothing the products do depends on it.
GO_GC_PERCENT = "400"


def _start(state: LabState, name: str, argv: List[str]) -> None:
    log = state.dir / "logs" / f"{name}.log"
    pid = processes.start(argv, log, env=dict(os.environ, GOGC=GO_GC_PERCENT))
    state.processes[name] = {"pid": pid, "marker": argv[0]}
    state.save()


def _healthy(url: str, ca: Path) -> bool:
    return requests.get(url, verify=str(ca), timeout=2).status_code == 200


def start(state: LabState, timeout: float = 120.0) -> None:
    _start(state, "etcd", etcd_argv(state))
    etcd_log = state.dir / "logs" / "etcd.log"
    processes.wait_until(
        lambda: requests.get(f"http://127.0.0.1:{state.ports['etcd']}/health", timeout=2).ok,
        timeout, "etcd /health", etcd_log)
    _start(state, "apiserver", apiserver_argv(state))
    processes.wait_until(lambda: _healthy(f"{state.apiserver_url}/readyz", state.ca_file),
                         timeout, "kube-apiserver /readyz", state.dir / "logs" / "apiserver.log")
    # Its readiness shows in the cluster: bootstrap waits for the service account it creates.
    _start(state, "controller-manager", controller_manager_argv(state))
