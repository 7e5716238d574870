"""The Palette API key never appears in `ansible-playbook -vvv` output, given as an option or by PALETTE_API_KEY."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

from .helpers import ansible_env


def _play(tmp_path, connection):
    """Reads of both Palette modules (check mode), then a task refused by argument validation, whose result
    carries the invocation too."""
    profile = "secret-probe-%s" % uuid.uuid4().hex[:6]
    playbook = tmp_path / "palette.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "profile plan", "palette.vmo.vmo_profile": dict(connection, name=profile, pack_tag="4.9.9"),
         "check_mode": True},
        {"name": "rbac plan", "palette.vmo.vmo_rbac": dict(connection, palette_cluster="lab-cluster", bindings=[]),
         "check_mode": True},
        {"name": "refused", "palette.vmo.vmo_profile": dict(connection, name=profile, pack_tag="4.9.9", colour="blue"),
         "ignore_errors": True},
    ]}]))
    return playbook


@pytest.mark.parametrize("form", ["option", "environment"])
def test_vvv_output_shows_no_palette_api_key(palette, lab, tmp_path, form):
    connection = palette.connection()
    key = connection["palette_api_key"]
    extra = {"KUBECONFIG": str(lab.kubeconfig)}
    if form == "environment":
        extra["PALETTE_API_KEY"] = connection.pop("palette_api_key")
    mark = palette.mark()
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(_play(tmp_path, connection)),
                           "-vvv"], cwd=REPO_ROOT, env=ansible_env(**extra), check=False, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ok=3" in proc.stdout and "Unsupported parameters" in proc.stdout, proc.stdout[-3000:]
    assert proc.stdout.count(key) == 0 and proc.stderr.count(key) == 0
    assert [r for r in palette.requests_since(mark) if r["mutating"]] == []
