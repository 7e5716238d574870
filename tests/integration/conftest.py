"""Running playbooks from the checkout the way a user does, against the lab."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

from .helpers import ansible_env

RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)"
                   r"\s+failed=(?P<failed>\d+)", re.M)


class PlaybookRun:
    def __init__(self, proc: subprocess.CompletedProcess):
        self.rc, self.stdout, self.stderr = proc.returncode, proc.stdout, proc.stderr
        self.recap = {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
                      for m in RECAP.finditer(self.stdout)}

    def __repr__(self) -> str:
        return f"rc={self.rc}\n{self.stdout[-4000:]}\n{self.stderr[-2000:]}"


# Transitions short enough for a test, long enough to be seen under way; a test module may set its own.
FAST_MAAS_DURATIONS = {"commissioning": 1, "deploying": 1, "releasing": 0.5, "erasing": 0.5}


@pytest.fixture
def fast_maas(maas, request):
    """The MAAS simulator with short transitions (the test module's FAST_MAAS_DURATIONS), reset before and after."""
    maas.reset()
    maas.durations(**getattr(request.module, "FAST_MAAS_DURATIONS", FAST_MAAS_DURATIONS))
    yield maas
    maas.reset()


@pytest.fixture
def ns(namespace):
    """A fresh namespace for one test (see tests/conftest.py)."""
    return namespace


@pytest.fixture(scope="session")
def ansible_playbook(lab):
    binary = Path(sys.executable).parent / "ansible-playbook"

    def run(playbook: str, *args: str) -> PlaybookRun:
        env = ansible_env(KUBECONFIG=str(lab.kubeconfig))
        proc = subprocess.run([str(binary), playbook, *args], cwd=REPO_ROOT, env=env,
                              check=False, capture_output=True, text=True, timeout=600)
        return PlaybookRun(proc)

    return run


@pytest.fixture(scope="session")
def run_module(lab):
    """Runs one module as an ad-hoc task, the way Ansible runs it, and returns its result dict."""
    import json as _json

    binary = Path(sys.executable).parent / "ansible"

    def run(module: str, args: dict, check: bool = False, diff: bool = False, env_extra: dict = None) -> dict:
        env = ansible_env(**dict({"KUBECONFIG": str(lab.kubeconfig), "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                                  "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"}, **(env_extra or {})))
        argv = [str(binary), "localhost", "-m", module, "-a", _json.dumps(args)]
        if check:
            argv.append("--check")
        if diff:
            argv.append("--diff")
        proc = subprocess.run(argv, cwd=REPO_ROOT, env=env, check=False, capture_output=True, text=True, timeout=900)
        try:
            report = _json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"no JSON from ansible (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
        result["_stdout"] = proc.stdout
        return result

    return run


@pytest.fixture(scope="session")
def vmo_cluster_roles(admin):
    """The four VMO ClusterRoles, as vmo_rbac's `roles: present` makes them (the lab has no VMO pack)."""
    from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_bindings import managed_labels
    from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import vmo_cluster_roles as roles

    from tests.lab.kube import object_path

    for role in roles(labels=managed_labels()):
        admin.apply(object_path("rbac.authorization.k8s.io/v1", "clusterroles", role["metadata"]["name"]), role,
                    field_manager="palette.vmo", force=True)
    return [role["metadata"]["name"] for role in roles()]
