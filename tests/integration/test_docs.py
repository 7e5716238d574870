"""Every plugin and role renders with ansible-doc, with examples and return values."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

DOC = str(Path(sys.executable).parent / "ansible-doc")
ENV = dict(os.environ, ANSIBLE_CONFIG=str(REPO_ROOT / "ansible.cfg"))


def doc_json(kind, name):
    proc = subprocess.run([DOC, "-t", kind, "--json", name], cwd=REPO_ROOT, env=ENV, check=False, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)[name]


def listed(kind):
    proc = subprocess.run([DOC, "-t", kind, "-l", "palette.vmo", "--json"], cwd=REPO_ROOT, env=ENV,
                          check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return sorted(json.loads(proc.stdout))


def test_every_module_is_in_the_action_group():
    import yaml

    runtime = yaml.safe_load((REPO_ROOT / "meta" / "runtime.yml").read_text())
    modules = sorted(p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py"))
    assert sorted(runtime["action_groups"]["all"]) == modules


@pytest.mark.parametrize("name", [p.stem for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")])
def test_module_docs_render(name):
    doc = doc_json("module", f"palette.vmo.{name}")
    assert doc["doc"]["short_description"] and doc["examples"] and doc["return"]
    assert f"palette.vmo.{name}" in listed("module")


@pytest.mark.parametrize("name", [p.stem for p in (REPO_ROOT / "plugins" / "inventory").glob("*.py")])
def test_inventory_docs_render(name):
    doc = doc_json("inventory", f"palette.vmo.{name}")
    assert doc["doc"]["short_description"] and doc["examples"]


@pytest.mark.parametrize("name", [p.name for p in (REPO_ROOT / "roles").iterdir() if p.is_dir()])
def test_role_argument_specs_render(name):
    doc = doc_json("role", f"palette.vmo.{name}")
    assert doc["entry_points"]["main"]["options"]


def test_reference_docs_are_generated_from_the_current_documentation():
    """docs/reference has one page per module, inventory plugin and role, as `make docs` writes them."""
    from tests.gates import docs

    pages = docs.render_pages()
    plugins = [docs.page_name("module", p.stem) for p in (REPO_ROOT / "plugins" / "modules").glob("*.py")]
    plugins += [docs.page_name("inventory", p.stem) for p in (REPO_ROOT / "plugins" / "inventory").glob("*.py")]
    plugins += [docs.page_name("role", p.name) for p in (REPO_ROOT / "roles").iterdir() if p.is_dir()]
    assert sorted(plugins) == sorted(set(pages) - {"README.md"})
    assert docs.stale_pages(pages) == ([], []), "run `make docs`"
