"""The changelog: fragments that antsibull-changelog accepts, and a release that names everything the collection has."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO_ROOT

BIN = Path(sys.executable).parent
# What antsibull-changelog reads to build a release: the collection's metadata, plugins, roles and fragments.
RELEASE_INPUTS = ("galaxy.yml", "meta", "plugins", "roles", "changelogs")


def changelog_tool(*args, cwd=REPO_ROOT):
    env = dict(os.environ, PATH=str(BIN) + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))
    return subprocess.run([str(BIN / "antsibull-changelog"), *args], cwd=cwd, env=env, check=False,
                          capture_output=True, text=True)


def test_fragments_and_changelog_pass_the_linter():
    lint = changelog_tool("lint")
    assert lint.returncode == 0 and lint.stdout == "", lint.stdout + lint.stderr


def test_a_release_names_every_module_inventory_plugin_and_role(tmp_path):
    version = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())["version"]
    copy = tmp_path / "ansible_collections" / "palette" / "vmo"
    copy.mkdir(parents=True)
    for name in RELEASE_INPUTS:
        source = REPO_ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy / name)
    release = changelog_tool("release", "--version", version, "--date", "2026-01-01", cwd=copy)
    assert release.returncode == 0, release.stdout + release.stderr

    entry = yaml.safe_load((copy / "changelogs" / "changelog.yaml").read_text())["releases"][version]
    assert entry["changes"]["release_summary"]
    assert sorted(m["name"] for m in entry["modules"]) == sorted(
        p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py"))
    assert sorted(p["name"] for p in entry["plugins"]["inventory"]) == sorted(
        p.stem for p in (REPO_ROOT / "plugins" / "inventory").glob("*.py"))
    assert sorted(r["name"] for r in entry["objects"]["role"]) == sorted(
        p.name for p in (REPO_ROOT / "roles").iterdir() if p.is_dir()), "add changelogs/fragments/role-<name>.yml"
    assert "## v%s" % version.replace(".", "\\.") in (copy / "CHANGELOG.md").read_text()
