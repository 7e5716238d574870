"""The running lab's record: ports, tokens and the processes `up` started, kept in lab.json."""

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, Optional

from . import paths

# Unprivileged people of the lab; tests bind them to roles as they need.
TEST_USERS = ("alice", "bob", "carol", "dave")
ADMIN_USER = "lab-admin"
# Identities of the lab's own components, each with a static token.
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
KUBEVIRT_STANDIN_USER = "lab:kubevirt-standin"


@dataclass
class LabState:
    ports: Dict[str, int] = field(default_factory=dict)
    tokens: Dict[str, str] = field(default_factory=dict)
    processes: Dict[str, Dict[str, object]] = field(default_factory=dict)  # name -> {pid, marker}
    ready: bool = False  # set once `up` has finished; a half-started lab is started again
    maas_api_key: str = ""  # consumer:token:secret, as MAAS prints it for `maas login`; an administrator's
    maas_user_api_key: str = ""  # the same for a MAAS user who is not an administrator
    palette_api_key: str = ""  # sent in Palette's ApiKey header
    bare: bool = False  # `up --bare`: no KubeVirt, CDI or VMO objects, for installs from nothing

    @property
    def dir(self) -> Path:
        return paths.state_dir()

    @property
    def apiserver_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    @property
    def kubeconfig(self) -> Path:
        return self.dir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.dir / "pki" / "ca.crt"

    @property
    def maas_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['maas']}/MAAS"

    @property
    def maas_request_log(self) -> Path:
        return self.dir / "logs" / "maas-requests.jsonl"

    @property
    def palette_url(self) -> str:
        return f"https://127.0.0.1:{self.ports['palette']}"

    @property
    def palette_request_log(self) -> Path:
        return self.dir / "logs" / "palette-requests.jsonl"

    @property
    def release_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['releases']}"

    @property
    def release_dir(self) -> Path:
        return self.dir / "releases"

    @property
    def audit_log(self) -> Path:
        return self.dir / "logs" / "audit.log"

    def token(self, user: str) -> str:
        return self.tokens[user]

    def save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / "lab.json"
        path.write_text(json.dumps(asdict(self), indent=2, sort_keys=True))
        path.chmod(0o600)

    @classmethod
    def load(cls) -> Optional["LabState"]:
        path = paths.state_dir() / "lab.json"
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))


def new_maas_api_key() -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

    def part(length: int) -> str:
        return "".join(secrets.choice(alphabet) for _index in range(length))

    return f"{part(18)}:{part(18)}:{part(32)}"


def new_palette_api_key() -> str:
    return secrets.token_urlsafe(32)


def new_tokens() -> Dict[str, str]:
    users = (ADMIN_USER, CONTROLLER_MANAGER_USER, KUBEVIRT_STANDIN_USER) + TEST_USERS
    return {user: secrets.token_urlsafe(32) for user in users}
