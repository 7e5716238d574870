"""Shared fixtures: the running lab (started the way a user starts it) and clients for its users."""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
# Tests import the collection as Ansible does, from the checkout linked by `make collections`.
COLLECTIONS = REPO_ROOT / "build" / "collections"
if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def pytest_configure(config):  # pylint: disable=unused-argument
    """Under pytest-xdist every worker but the first gets a lab of its own (`.lab-gw1`, ...), started by the
    `lab` fixture. Tests change lab-wide things (a simulator's faults, the cluster's KubeVirt CR, the audit log
    they count writes in), so two tests never share a lab at the same time; `make lab-down` stops them all."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and worker != "gw0":
        from tests.lab import paths

        os.environ["PALETTE_VMO_LAB_STATE"] = "%s-%s" % (paths.state_dir(), worker)


@pytest.fixture(scope="session")
def lab():
    """Starts the lab if needed (`python -m tests.lab up` is idempotent) and returns its state."""
    from tests.lab.state import LabState

    subprocess.run([sys.executable, "-m", "tests.lab", "up"], cwd=REPO_ROOT, check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state = LabState.load()
    assert state is not None and state.ready
    return state


@pytest.fixture(scope="session")
def admin(lab):
    from tests.lab.kube import Kube
    from tests.lab.state import ADMIN_USER

    return Kube(lab.apiserver_url, lab.token(ADMIN_USER), str(lab.ca_file))


@pytest.fixture(scope="session")
def user_client(lab):
    """A client acting as one of the lab's unprivileged people, by their token."""
    from tests.lab.kube import Kube

    def make(user: str) -> Kube:
        return Kube(lab.apiserver_url, lab.token(user), str(lab.ca_file))

    return make


@pytest.fixture(scope="session")
def audit(lab):
    from tests.lab.audit import AuditLog

    return AuditLog(lab.audit_log)


@pytest.fixture
def namespace(admin, request):
    """A fresh namespace per test, deleted afterwards (the namespace controller empties it)."""
    import re
    import uuid

    from tests.lab.kube import object_path

    base = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-")
    name = f"{base}-{uuid.uuid4().hex[:5]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": name}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


class MaasLab:
    """The lab's MAAS simulator: its connection, its request log and its fault knobs."""

    def __init__(self, state):
        import requests as _requests

        self.url, self.api_key, self.ca_file = state.maas_url, state.maas_api_key, str(state.ca_file)
        self.user_api_key = state.maas_user_api_key  # a MAAS user who is not an administrator
        self.log_path = state.maas_request_log
        self.session = _requests.Session()
        self.session.trust_env = False
        self.session.verify = self.ca_file
        self.base = self.url.rsplit("/MAAS", 1)[0]

    def connection(self, admin: bool = True) -> dict:
        """The module options that reach the simulator, as its administrator or (admin=False) as a user."""
        return {"maas_url": self.url, "maas_api_key": self.api_key if admin else self.user_api_key,
                "maas_ca_cert": self.ca_file}

    def mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests_since(self, mark: int) -> list:
        import json as _json

        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return [_json.loads(line) for line in log.read().splitlines() if line.strip()]

    def writes_since(self, mark: int) -> list:
        return [r for r in self.requests_since(mark) if r["mutating"]]

    def writes_to(self, mark: int, *objects) -> list:
        """The writes since `mark` that touched any of `objects` (host names, MACs, BMC addresses, system ids,
        `tag:<name>`, `zone:<name>`), so a test's "nothing written" ignores other tests' writes to the shared
        simulator. A write that touched one of them brings in every object it named (the system id a create was
        given, the machines a tag write named); a write the simulator could not attribute counts as the test's."""
        mine = {str(o).lower() for o in objects if o}
        found = []
        for entry in self.writes_since(mark):
            touched = entry.get("objects")
            named = {o.lower() for o in touched or []}
            if touched is None or named & mine:
                found.append(entry)
                mine |= named
        return found

    @staticmethod
    def objects_of(*machines) -> list:
        """Everything by which the simulator's log may name these maas_machine items (for writes_to)."""
        objects = []
        for item in machines:
            objects += [item.get("hostname"), item.get("system_id"), item.get("pxe_mac")]
            objects += list(item.get("mac_addresses") or [])
            objects.append((item.get("power_parameters") or {}).get("power_address"))
            objects += ["tag:%s" % tag for tag in item.get("tags") or []]
        return [o for o in objects if o]

    def faults(self, **faults) -> None:
        """fail_commissioning, fail_deployment, http_503, http_504, http_429 (retry_after, retry_after_header),
        drop_connections, lose_write_answers, slow_seconds (tests/lab/maas/model.py Faults)."""
        self.session.put(self.base + "/__lab__/faults", json=faults, timeout=10).raise_for_status()

    def durations(self, **durations) -> None:
        self.session.put(self.base + "/__lab__/durations", json=durations, timeout=10).raise_for_status()

    def reset(self) -> None:
        self.session.post(self.base + "/__lab__/reset", timeout=10).raise_for_status()


@pytest.fixture(scope="session")
def maas(lab):
    return MaasLab(lab)


class PaletteLab:
    """The lab's Palette simulator: its connection, its request log, its fault knobs and direct API calls."""

    def __init__(self, state):
        import requests as _requests

        self.host, self.api_key, self.ca_file = state.palette_url, state.palette_api_key, str(state.ca_file)
        self.project, self.cluster = "lab", "lab-cluster"
        self.log_path = state.palette_request_log
        self.session = _requests.Session()
        self.session.trust_env = False
        self.session.verify = self.ca_file

    def connection(self) -> dict:
        return {"palette_host": self.host, "palette_api_key": self.api_key, "palette_project": self.project,
                "palette_ca_cert": self.ca_file}

    def mark(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def requests_since(self, mark: int) -> list:
        import json as _json

        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return [_json.loads(line) for line in log.read().splitlines() if line.strip()]

    def writes_since(self, mark: int) -> list:
        return [r for r in self.requests_since(mark) if r["mutating"]]

    def _lab(self, method: str, path: str, body=None):
        answer = self.session.request(method, self.host + "/__lab__/" + path, json=body, timeout=60)
        answer.raise_for_status()
        return answer.json()

    def faults(self, **faults) -> dict:
        """http_429, retry_after, retry_after_header, http_5xx, status_5xx, drop_connections, lose_write_answers,
        refuse_writes, refuse_status, slow_seconds, rate_limit, deploy_seconds, apply_delay_seconds,
        duplicate_profile_status, nodes_not_ready_seconds, maas_cluster_step_seconds,
        force_delete_after_seconds (tests/lab/palette/__init__.py)."""
        return self._lab("PUT", "faults", faults)

    @contextlib.contextmanager
    def faulted(self, **knobs):
        """The knobs set for the block, then each one back as it was (other tests share the lab); a count left
        unspent (a fault the block did not meet) is cleared too."""
        before = dict(self.faults(), nodes_not_ready_seconds=0)
        self.faults(**knobs)
        try:
            yield
        finally:
            self.faults(**{key: before[key] for key in knobs})

    def reset(self) -> None:
        """Profiles, attachments, RBAC, faults and limits as in a fresh lab; KubeVirt and CDI CRs at their baseline."""
        self._lab("POST", "reset")

    def restore_baseline(self) -> None:
        """Only the apiserver side: the lab's KubeVirt and CDI CRs back, agent namespaces and bindings gone."""
        self._lab("POST", "baseline")

    def seed(self, count: int, prefix: str = "seed", project: str = "lab", version: str = "1.0.0") -> list:
        """`count` published add-on profiles (project "" for the tenant scope); returns their uids."""
        return self._lab("POST", "seed", {"count": count, "prefix": prefix, "project": project,
                                          "version": version})["uids"]

    def info(self) -> dict:
        """Uids of the simulator's fixed objects: cluster_uid, registry_uid, projects, packs (by tag), infra_profile_uid."""
        return self._lab("GET", "info")

    def project_uid(self, name: str = "lab") -> str:
        return self.info()["projects"][name]

    def api(self, method: str, path: str, project: str = "lab", api_key: str = None, **kwargs):
        """A Palette API call (`path` starts with /v1); project is a name, a uid or "" for the tenant scope."""
        headers = dict(kwargs.pop("headers", None) or {})
        headers["ApiKey"] = self.api_key if api_key is None else api_key
        if project:
            projects = self.info()["projects"]
            headers["ProjectUid"] = projects.get(project, project)
        return self.session.request(method, self.host + path, headers=headers, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def palette(lab):
    """The Palette simulator; at the end of the session it is reset, so the shared KubeVirt CR is back."""
    simulator = PaletteLab(lab)
    yield simulator
    simulator.reset()


class BareLab:
    """A second lab beside the session's one, started with `up --bare`: Nodes, no KubeVirt, CDI or VMO objects.

    It has its own state directory, so every private lab has its own (`beside_session`: the session lab's with a
    suffix). `env` holds what `python -m tests.lab env` prints for it (KUBECONFIG, LAB_RELEASE_URL, ...).
    """

    def __init__(self, state_dir: Path):
        import os

        self.state_dir = state_dir
        self._env = dict(os.environ, PALETTE_VMO_LAB_STATE=str(state_dir))
        self.env = {}

    @classmethod
    def beside_session(cls, suffix: str) -> "BareLab":
        """A bare lab whose state directory is the session lab's with `suffix` added."""
        from tests.lab import paths

        return cls(paths.state_dir().with_name(paths.state_dir().name + suffix))

    @classmethod
    def running(cls, suffix: str):
        """Yields a started bare lab beside the session's and stops it (removing its state) afterwards."""
        bare = cls.beside_session(suffix)
        bare.start()
        try:
            yield bare
        finally:
            bare.command("down")

    def command(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tests.lab", *args], cwd=REPO_ROOT, env=self._env,
                              check=False, capture_output=True, text=True, timeout=900)

    def start(self) -> None:
        import shlex

        self.command("down")  # from nothing: never a cluster left over from an earlier session
        started = self.command("up", "--bare")
        assert started.returncode == 0, started.stdout + started.stderr
        for line in self.command("env").stdout.splitlines():
            key, _equals, value = line.removeprefix("export ").partition("=")
            self.env[key] = shlex.split(value)[0] if value else ""

    @property
    def kubeconfig(self) -> str:
        return self.env["KUBECONFIG"]

    def admin(self):
        from tests.lab.kube import Kube

        return Kube(self.env["LAB_APISERVER"], self.env["LAB_TOKEN_ADMIN"], self.env["LAB_CA_FILE"])

    def audit(self):
        from tests.lab.audit import AuditLog

        return AuditLog(Path(self.env["LAB_AUDIT_LOG"]))


@pytest.fixture(scope="session")
def bare_lab(lab):
    """A bare lab for installs from nothing, stopped (and its state removed) at the end of the session."""
    yield from BareLab.running("-bare")
