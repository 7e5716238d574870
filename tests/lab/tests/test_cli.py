"""`python -m tests.lab up|down|status|env` on a second, private lab beside the session's one."""

import json
import os
import subprocess
import sys

from tests.lab import processes
from tests.lab.state import TEST_USERS

from tests.conftest import REPO_ROOT


def _lab(command, state_dir):
    env = dict(os.environ, PALETTE_VMO_LAB_STATE=str(state_dir))
    return subprocess.run([sys.executable, "-m", "tests.lab", command], cwd=REPO_ROOT, env=env,
                          check=False, capture_output=True, text=True, timeout=300)


def test_up_is_idempotent_env_is_evaluable_and_down_stops_only_its_own(tmp_path, lab):
    state_dir = tmp_path / "lab"
    first = _lab("up", state_dir)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "lab up in" in first.stdout and "kubeconfig:" in first.stdout
    try:
        again = _lab("up", state_dir)
        assert again.returncode == 0 and "lab already running" in again.stdout

        printed = _lab("env", state_dir).stdout
        evaluated = subprocess.run(["bash", "-c", f"{printed}\nenv"], check=True, capture_output=True, text=True).stdout
        values = dict(line.split("=", 1) for line in evaluated.splitlines() if "=" in line)
        assert values["KUBECONFIG"] == str(state_dir / "kubeconfig")
        assert values["LAB_APISERVER"].startswith("https://127.0.0.1:")
        for user in TEST_USERS:
            assert values[f"LAB_TOKEN_{user.upper()}"]
        assert values["LAB_APISERVER"] != lab.apiserver_url

        status = _lab("status", state_dir)
        assert status.returncode == 0 and "kubevirt-standin: running" in status.stdout
        started = json.loads((state_dir / "lab.json").read_text())["processes"]
    finally:
        down = _lab("down", state_dir)
    assert down.returncode == 0
    for info in started.values():
        assert not processes.is_running(info["pid"], info["marker"])
    assert not state_dir.exists()
    # The session's lab is untouched.
    for info in lab.processes.values():
        assert processes.is_running(int(info["pid"]), str(info["marker"]))
    assert _lab("status", state_dir).returncode == 1
