"""`ansible-galaxy collection build` makes a tarball without the lab or dev files, and it installs."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from tests.conftest import REPO_ROOT

GALAXY = str(Path(sys.executable).parent / "ansible-galaxy")


def test_built_collection_leaves_out_the_lab_and_installs(tmp_path):
    build = subprocess.run([GALAXY, "collection", "build", "--force", "--output-path", str(tmp_path)],
                           cwd=REPO_ROOT, check=False, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    tarball = tmp_path / "palette-vmo-0.1.0.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("MANIFEST.json"))
    assert "meta/runtime.yml" in names and "README.md" in names and "LICENSE" in names
    forbidden = ("tests/lab", "tests/unit", "tests/integration", ".lab", ".venv", ".ci", "build/", "Makefile",
                 "requirements-dev.txt", "constraints.txt")
    assert not [n for n in names if n.startswith(forbidden)], [n for n in names if n.startswith(forbidden)]
    info = manifest["collection_info"]
    assert (info["namespace"], info["name"], info["version"]) == ("palette", "vmo", "0.1.0")
    assert info["dependencies"] == {"kubernetes.core": ">=5.2.0,<7.0.0"}
    assert info["license"] == ["GPL-3.0-or-later"]

    target = tmp_path / "collections"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(target))
    # --offline: kubernetes.core is already installed with the `ansible` package in the virtualenv.
    install = subprocess.run([GALAXY, "collection", "install", str(tarball), "-p", str(target), "--offline"],
                             cwd=tmp_path, env=env, check=False, capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    installed = target / "ansible_collections" / "palette" / "vmo"
    assert (installed / "MANIFEST.json").exists()
    assert not (installed / "tests" / "lab").exists()
