"""`make demo`, as the README tells a new user to run it: the whole site on the lab, then unchanged."""

import os
import subprocess

from tests.conftest import REPO_ROOT


def make_demo() -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    return subprocess.run(["make", "--no-print-directory", "demo"], cwd=REPO_ROOT, env=env, check=False,
                          capture_output=True, text=True, timeout=900)


def test_make_demo_ends_with_running_vms_and_the_summary_then_changes_nothing(lab, palette, maas):
    palette.reset()  # no MAAS cluster left holding machines, before MAAS itself starts from nothing
    maas.reset()
    maas.durations(commissioning=0.5, deploying=0.5, releasing=0.5, erasing=0.5)
    try:
        first = make_demo()
        assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
        summary = first.stdout[first.stdout.index("TASK [Show the site summary]"):]
        # The machines, the cluster Palette deployed on them and its nodes, the pack, the bindings and the VMs.
        for line in ('"vmo-lab-1: Ready"', '"cluster": "vmo-lab-maas Running Healthy"', '"nodes": [',
                     '"web-1 Running 10.', '"db-1 Running 10.', '"spectro-vm-viewer virtual-machines dave"',
                     "vmo-lab-maas virtual-machine-orchestrator Ready True"):
            assert line in summary, summary
        assert "The lab keeps running. Its kubeconfig:" in first.stdout

        second = make_demo()
        assert second.returncode == 0, second.stdout[-4000:]
        assert "changed=0" in second.stdout and "failed=0" in second.stdout, second.stdout[-4000:]
        assert "changed: [" not in second.stdout, second.stdout[-4000:]
    finally:
        from tests.integration.test_site_playbooks import run_playbook
        from tests.lab.cli import environment

        teardown = run_playbook("playbooks/teardown.yml", environment(lab))
        palette.reset()
    assert teardown.rc == 0, teardown
