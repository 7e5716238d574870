"""Where the lab keeps its files.

Built binaries and generated CRDs live in a cache outside the checkout (keyed by version), so a
fresh clone on the same machine starts in seconds. Run-time state (certificates, etcd data, logs,
kubeconfig) lives in a state directory that `down` removes.
"""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
LAB_SOURCE = Path(__file__).resolve().parent


def cache_dir() -> Path:
    """The build cache, shared by every checkout on this machine."""
    explicit = os.environ.get("PALETTE_VMO_LAB_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "palette-vmo-lab"


def state_dir() -> Path:
    """The running lab's files: one lab per checkout unless PALETTE_VMO_LAB_STATE says otherwise."""
    explicit = os.environ.get("PALETTE_VMO_LAB_STATE")
    if explicit:
        return Path(explicit)
    return REPO_ROOT / ".lab"
