"""Small helpers shared by the integration tests."""

import itertools
import os
import random

from tests.conftest import REPO_ROOT

ANSIBLE_TMP = REPO_ROOT / "build" / "ansible-tmp"


def ansible_env(*overlays: dict, **extra: str) -> dict:
    """The environment ansible and ansible-playbook run in from the checkout: the repository's ansible.cfg,
    a local temp directory inside build/, no colours; then `overlays` (for example the lab's env) under those
    settings and `extra` over them."""
    ANSIBLE_TMP.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    for overlay in overlays:
        env.update(overlay)
    env.update(ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(ANSIBLE_TMP),
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    env.update(extra)
    return env


def unwrap(value):
    """ansible-inventory marks values that came from an API as untrusted: {"__ansible_unsafe": v}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


_ADDRESSES = itertools.count(random.randrange(1, 200) * 250)


def next_bmc():
    """A BMC address no other test uses (loopback: the simulator never contacts a BMC)."""
    n = next(_ADDRESSES)
    return "127.%d.%d.%d" % (10 + n // 62500 % 240, n // 250 % 250, n % 250 + 1)
