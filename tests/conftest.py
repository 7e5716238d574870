"""Shared fixtures: the running lab (started the way a user starts it) and clients for its users."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


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
