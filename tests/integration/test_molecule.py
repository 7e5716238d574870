"""Every molecule scenario (extensions/molecule/<role>/) against the lab: converge, idempotence, verify, cleanup."""

import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SCENARIOS = REPO_ROOT / "extensions" / "molecule"
RECAP = re.compile(r"^(?P<scenario>\S+)\s+: actions=(?P<actions>\d+)\s+successful=(?P<successful>\d+)"
                   r"\s+disabled=\d+\s+skipped=\d+\s+missing=\d+\s+failed=(?P<failed>\d+)", re.M)


def scenarios():
    return sorted(p.parent.name for p in SCENARIOS.glob("*/molecule.yml"))


def test_every_role_has_a_scenario():
    """A scenario is named after its role, or `<role>_<variant>` for another path through it."""
    for role in (p.name for p in (REPO_ROOT / "roles").iterdir() if p.is_dir()):
        assert [s for s in scenarios() if s == role or s.startswith(role + "_")], "no scenario for %s" % role


@pytest.fixture
def lab_baseline(palette):
    """A scenario may change the lab cluster through Palette (the KubeVirt CR); put it back afterwards."""
    yield
    palette.restore_baseline()


@pytest.mark.parametrize("scenario", scenarios())
def test_scenario_converges_idempotently_and_verifies(scenario, lab, maas, lab_baseline):
    from tests.lab.cli import environment

    maas.durations(commissioning=0.5, deploying=0.5, releasing=0.5, erasing=0.5)
    suffix = uuid.uuid4().hex[:6]
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, **environment(lab), PATH=bindir + os.pathsep + os.environ.get("PATH", ""),
               MOLECULE_VMO_NAMESPACE="molecule-%s" % suffix, MOLECULE_MAAS_PREFIX="mol%s" % suffix,
               ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", NO_COLOR="1")
    env.pop("ANSIBLE_CONFIG", None)  # the scenario's own configuration, as `molecule test` from a shell has it
    proc = subprocess.run([os.path.join(bindir, "molecule"), "test", "--scenario-name", scenario], cwd=REPO_ROOT,
                          env=env, check=False, capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", output)
    recap = {m["scenario"]: m for m in RECAP.finditer(plain)}
    assert recap[scenario]["failed"] == "0", output[-3000:]
    for action in ("converge", "idempotence", "verify", "cleanup"):
        assert "%s > %s: Executed: Successful" % (scenario, action) in plain, output[-3000:]
