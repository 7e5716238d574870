"""module_utils reads as the flow: one folder per backend, and no backend uses another backend's helpers."""

import ast
from pathlib import Path

MODULE_UTILS = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
PREFIX = "ansible_collections.palette.vmo.plugins.module_utils."
# What each folder may import besides itself: the backends (kube, maas, palette) only what they share;
# KubeVirt is built on the Kubernetes client; VMO puts KubeVirt, Kubernetes and Palette together.
ALLOWED = {
    "common": set(),
    "kube": {"common"},
    "maas": {"common"},
    "palette": {"common"},
    "kubevirt": {"common", "kube"},
    "velero": {"common", "kube"},
    "vmo": {"common", "kube", "kubevirt", "palette"},
}


def imported_folders(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            yield node.module[len(PREFIX):].split(".")[0]


def test_module_utils_has_one_folder_per_backend_and_no_loose_files():
    assert sorted(p.name for p in MODULE_UTILS.iterdir() if p.is_dir() and p.name != "__pycache__") == sorted(ALLOWED)
    assert [p.name for p in MODULE_UTILS.glob("*.py")] == []


def test_no_folder_imports_what_it_may_not():
    crossings = []
    for folder, allowed in ALLOWED.items():
        for path in sorted((MODULE_UTILS / folder).glob("*.py")):
            for other in imported_folders(path):
                if other != folder and other not in allowed:
                    crossings.append("%s/%s imports from %s/" % (folder, path.name, other))
    assert crossings == []
