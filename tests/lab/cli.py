"""`python -m tests.lab up|down|status|env|build`: the lab's command line."""

import argparse
import os
import shlex
import shutil
import sys
import time
from typing import Dict, List

from . import bootstrap, controlplane, gobuild, paths, processes, releases, state as lab_state
from .kube import Kube
from .kubevirt import crds, storage
from .state import LabState

# Started in this order, stopped in the reverse one.
PROCESS_ORDER = ("etcd", "apiserver", "controller-manager", "releases", "kubevirt-standin", "maas", "palette")
PORTS = ("etcd", "etcd-peer", "apiserver", "controller-manager", "virt-api", "maas", "palette", "releases",
         # the KubeVirt stand-in's export proxy, cdi-apiserver (upload tokens) and cdi-uploadproxy (vm_export.py,
         # cdi_upload.py)
         "virt-exportproxy", "cdi-api", "cdi-uploadproxy")
# `up --bare`, or this variable set to 1: a cluster without KubeVirt, CDI and the VMO objects.
BARE_ENV = "PALETTE_VMO_LAB_BARE"


def _running(state: LabState) -> Dict[str, bool]:
    return {name: processes.is_running(int(info["pid"]), str(info["marker"]))
            for name, info in state.processes.items()}


def _controllers_current(state: LabState) -> bool:
    """Whether the running kube-controller-manager runs today's controllers (a lab started before one was
    added, e.g. the PersistentVolume binder, is started again)."""
    info = state.processes.get("controller-manager")
    return bool(info) and processes.is_running(int(info["pid"]), f"--controllers={controlplane.CONTROLLERS}")


def admin_client(state: LabState) -> Kube:
    return Kube(state.apiserver_url, state.token(lab_state.ADMIN_USER), str(state.ca_file))


def environment(state: LabState) -> Dict[str, str]:
    env = {
        "KUBECONFIG": str(state.kubeconfig),
        "LAB_APISERVER": state.apiserver_url,
        "LAB_CA_FILE": str(state.ca_file),
        "LAB_AUDIT_LOG": str(state.audit_log),
        "LAB_TOKEN_ADMIN": state.token(lab_state.ADMIN_USER),
        "MAAS_URL": state.maas_url,
        "MAAS_API_KEY": state.maas_api_key,
        "LAB_MAAS_USER_API_KEY": state.maas_user_api_key,
        "MAAS_CA_CERT": str(state.ca_file),
        "LAB_MAAS_REQUEST_LOG": str(state.maas_request_log),
        "PALETTE_HOST": state.palette_url,
        "PALETTE_API_KEY": state.palette_api_key,
        "PALETTE_PROJECT": "lab",
        "PALETTE_CA_CERT": str(state.ca_file),
        "LAB_PALETTE_CLUSTER": "lab-cluster",
        "LAB_PALETTE_MAAS_ACCOUNT": "lab-maas",  # the seeded MAAS cloud account (tests/lab/palette/maas_clusters.py)
        "LAB_PALETTE_REQUEST_LOG": str(state.palette_request_log),
        "LAB_RELEASE_URL": state.release_url,
        "LAB_RELEASE_DIR": str(state.release_dir),
    }
    for user in lab_state.TEST_USERS:
        if user in state.tokens:  # a lab started before a person was added lacks their token
            env[f"LAB_TOKEN_{user.upper()}"] = state.token(user)
    return env


def build_all() -> None:
    for family in gobuild.FAMILIES:
        gobuild.build(family)
    # Generate and parse the CRDs now, so the stand-in starts without waiting for it.
    crds.kubevirt_crds()
    crds.cdi_crds()
    releases.manifests()


def start_python_service(state: LabState, name: str, module: str) -> None:
    """One of the lab's Python services, as a process of its own (`python -m <module>`)."""
    pid = processes.start([sys.executable, "-m", module], state.dir / "logs" / f"{name}.log", cwd=paths.REPO_ROOT)
    state.processes[name] = {"pid": pid, "marker": module}
    state.save()


def start_and_wait(state: LabState, name: str, module: str, what: str, method: str, url: str, **request) -> None:
    """A lab service started as `python -m module`, then waited for until `method url` answers 200."""
    import requests

    session = requests.Session()
    session.trust_env = False

    def answers() -> bool:
        return session.request(method, url, timeout=2, **request).status_code == 200

    start_python_service(state, name, module)
    processes.wait_until(answers, 30, what, state.dir / "logs" / f"{name}.log")


def start_maas(state: LabState) -> None:
    if not state.maas_user_api_key:  # a lab started before MAAS had a non-admin user gets one now
        state.maas_user_api_key = lab_state.new_maas_api_key()
        state.save()
    # MAAS answers its version anonymously.
    start_and_wait(state, "maas", "tests.lab.maas", "the MAAS simulator", "GET", state.maas_url + "/api/2.0/version/",
                   verify=str(state.ca_file))


def start_palette(state: LabState) -> None:
    start_and_wait(state, "palette", "tests.lab.palette", "the Palette simulator", "GET",
                   state.palette_url + "/v1/dashboard/projects/metadata", headers={"ApiKey": state.palette_api_key},
                   verify=str(state.ca_file))


def start_kubevirt_standin(state: LabState) -> None:
    start_python_service(state, "kubevirt-standin", "tests.lab.kubevirt")


def start_releases(state: LabState) -> None:
    """The release manifests over HTTP on loopback, as a site's mirror of KubeVirt's and CDI's releases."""
    releases.write_tree(state.release_dir)
    start_and_wait(state, "releases", "tests.lab.releases", "the release manifest server", "HEAD",
                   f"{state.release_url}/{releases.KUBEVIRT_OPERATOR}")


def _bare_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "bare", False)) or os.environ.get(BARE_ENV) == "1"


def up(_args: argparse.Namespace) -> int:
    existing = LabState.load()
    bare = _bare_requested(_args)
    # A lab started before a service was added to PROCESS_ORDER is started again, with it.
    complete = existing and all(name in existing.processes for name in PROCESS_ORDER) and existing.bare == bare
    if existing and existing.ready and complete and all(_running(existing).values()) \
            and _controllers_current(existing):
        print(f"lab already running: {existing.apiserver_url} (kubeconfig {existing.kubeconfig})")
        return 0
    if existing:
        down(_args)
    started = time.monotonic()
    build_all()
    built = time.monotonic()
    state = LabState(tokens=lab_state.new_tokens(), ports={name: processes.free_port() for name in PORTS},
                     maas_api_key=lab_state.new_maas_api_key(), maas_user_api_key=lab_state.new_maas_api_key(),
                     palette_api_key=lab_state.new_palette_api_key(),
                     bare=bare)
    state.dir.mkdir(parents=True, exist_ok=True)
    state.save()
    controlplane.write_config(state)
    controlplane.start(state)
    kube = admin_client(state)
    bootstrap.wait_controller_manager(kube)
    bootstrap.ensure_nodes(kube)
    storage.ensure_storage_classes(kube)
    start_releases(state)
    if not bare:
        bootstrap.install_operators(kube)
    start_kubevirt_standin(state)
    if not bare:
        bootstrap.deploy_kubevirt(kube)
        bootstrap.install_vmo_crds(kube)
        bootstrap.install_velero(kube)
    start_maas(state)
    start_palette(state)
    env_file = state.dir / "env"
    env_file.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in environment(state).items()))
    env_file.chmod(0o600)
    state.ready = True
    state.save()
    kind = ", bare" if bare else ""
    print(f"lab up in {time.monotonic() - built:.1f}s (build check {built - started:.1f}s){kind}")
    for name in PROCESS_ORDER:
        info = state.processes.get(name)
        if info:
            print(f"  {name}: pid {info['pid']}")
    print(f"  apiserver: {state.apiserver_url}")
    print(f"  kubeconfig: {state.kubeconfig}")
    print(f"  env: eval \"$(python -m tests.lab env)\"  (or source {env_file})")
    return 0


def down(_args: argparse.Namespace) -> int:
    state = LabState.load()
    if state is None:
        print("lab is not running")
        return 0
    for name in reversed(PROCESS_ORDER):
        info = state.processes.get(name)
        if info:
            processes.stop(int(info["pid"]), str(info["marker"]))
            print(f"stopped {name}")
    shutil.rmtree(state.dir, ignore_errors=True)
    return 0


def status(_args: argparse.Namespace) -> int:
    state = LabState.load()
    if state is None:
        print("lab is not running")
        return 1
    running = _running(state)
    for name in PROCESS_ORDER:
        if name in running:
            print(f"{name}: {'running' if running[name] else 'stopped'} (pid {state.processes[name]['pid']})")
    print(f"apiserver: {state.apiserver_url}")
    return 0 if running and all(running.values()) else 1


def env(_args: argparse.Namespace) -> int:
    state = LabState.load()
    if state is None:
        print("lab is not running: python -m tests.lab up", file=sys.stderr)
        return 1
    for key, value in environment(state).items():
        print(f"export {key}={shlex.quote(value)}")
    return 0


# The lab's own Python services, which `restart` starts again in place (same ports, keys and tokens).
RESTARTABLE = {"maas": start_maas, "palette": start_palette, "kubevirt-standin": start_kubevirt_standin}


def restart(args: argparse.Namespace) -> int:
    """One simulator or the stand-in again, after its code changed; the rest of the lab keeps running."""
    state = LabState.load()
    if state is None or not state.ready:
        print("lab is not running: python -m tests.lab up", file=sys.stderr)
        return 1
    info = state.processes.get(args.service)
    if info:
        processes.stop(int(info["pid"]), str(info["marker"]))
    RESTARTABLE[args.service](state)
    print(f"restarted {args.service}: pid {state.processes[args.service]['pid']}")
    return 0


def build(_args: argparse.Namespace) -> int:
    build_all()
    return 0


def main(argv: List[str] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, text in (("up", up, "build if needed and start the lab (idempotent)"),
                             ("down", down, "stop what `up` started and remove the lab's state"),
                             ("status", status, "show the lab's processes"),
                             ("env", env, "print export lines for a shell to eval"),
                             ("build", build, "build and cache the lab's programs and CRDs"),
                             ("restart", restart, "start one simulator or the KubeVirt stand-in again")):
        sub.add_parser(name, help=text).set_defaults(func=func)
    sub.choices["up"].add_argument("--bare", action="store_true",
                                   help=f"no KubeVirt, CDI or VMO objects (also {BARE_ENV}=1)")
    sub.choices["restart"].add_argument("service", choices=sorted(RESTARTABLE))
    args = parser.parse_args(argv)
    return args.func(args)
