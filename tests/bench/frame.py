"""What every benchmark shares: where things are, Ansible's environment, timing a command or a playbook,
the lab, and writing results."""

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def ansible_env():
    """The checkout's ansible.cfg and temp dir, as `make` sets them; no colour in captured output."""
    return dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
                ANSIBLE_LOCAL_TEMP=str(REPO / "build" / "ansible-tmp"))


def timed(argv, env=None):
    """Wall seconds of one command; its output when it fails."""
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=env, check=False, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return elapsed


def run_playbook(workdir, name, tasks):
    """Wall seconds of `ansible-playbook` running `tasks` on localhost, Ansible's start-up included."""
    path = Path(workdir) / f"{name}.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    return timed([str(BIN / "ansible-playbook"), str(path)], ansible_env())


def lab_up():
    """The running lab (started if needed, as `make lab-up` does)."""
    from tests.lab.state import LabState

    subprocess.run([sys.executable, "-m", "tests.lab", "up"], cwd=REPO, check=True)
    return LabState.load()


def write_result(out, filename, result):
    """`result` with the medians of its samples, as JSON in `out`; the report reads it from there."""
    result = dict(result, medians={key: statistics.median(values) for key, values in result["samples"].items()})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / filename).write_text(json.dumps(result, indent=1))
    print(json.dumps(result["medians"]))
    return result
