"""maas_machine when runs overlap, answers get lost, a proxy rate-limits, or a step fails after writes:
re-runs converge with nothing lost or duplicated, and a failure says what was written."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

from .helpers import ansible_env, next_bmc

MODULE = "palette.vmo.maas_machine"


# The lost-answer and concurrency tests need no time inside a transition.
FAST_MAAS_DURATIONS = {"commissioning": 0.5, "deploying": 0.5, "releasing": 0.5, "erasing": 0.5}


def ipmi(prefix, **extra):
    return dict({"hostname": f"{prefix}-{uuid.uuid4().hex[:6]}", "power_type": "ipmi",
                 "pxe_mac": "52:54:03:%02x:%02x:%02x" % tuple(uuid.uuid4().bytes[:3]),
                 "power_parameters": {"power_address": next_bmc(), "power_user": "admin", "power_pass": "pw"}},
                **extra)


def args(maas, **extra):
    return dict(maas.connection(), poll_interval=0.2, **extra)


def machines_named(maas, hostnames):
    """Every MAAS machine with one of these host names, read directly (duplicates would show twice)."""
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient

    client = MaasClient(dict(maas.connection(), validate_certs=True))
    return [m for m in client.get("/machines/") if m["hostname"] in hostnames]


def creates_refused_as_existing(maas, mark, hostnames):
    return [r for r in maas.writes_to(mark, *hostnames)
            if r["method"] == "POST" and r["path"].endswith("/machines/") and r["status"] == 400]


def test_a_failure_after_writes_reports_changed_and_what_was_written(run_module, fast_maas):
    healthy, sick = ipmi("ok"), ipmi("sick")
    tag = f"t{uuid.uuid4().hex[:6]}"
    fast_maas.faults(fail_commissioning=[sick["hostname"]])
    result = run_module(MODULE, args(fast_maas, state="ready", tags=[tag], machines=[healthy, sick]))
    assert result.get("failed") is True
    assert f"machine {sick['hostname']}: Failed commissioning" in result["msg"]
    assert result["changed"] is True
    written = {m["hostname"]: m["actions"] for m in result["machines"]}
    # The tag is created once, before the machines are tagged; creating a machine also starts commissioning.
    assert written == {healthy["hostname"]: ["create_tag", "create", "tag"], sick["hostname"]: ["create", "tag"]}


def run_playbooks_at_once(maas, playbook, count):
    env = ansible_env()
    binary = str(Path(sys.executable).parent / "ansible-playbook")
    procs = [subprocess.Popen([binary, str(playbook)], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _index in range(count)]
    return [(proc.wait(timeout=600), proc.stdout.read()) for proc in procs]


def test_two_concurrent_enrolls_of_the_same_machines_both_succeed(fast_maas, tmp_path):
    """Two ansible-playbook runs at once: whichever creates a machine second adopts the first one's."""
    machines = [ipmi(f"twin{i}") for i in range(10)]
    hostnames = [m["hostname"] for m in machines]
    tag = f"twin{uuid.uuid4().hex[:6]}"
    playbook = tmp_path / "enroll.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"palette.vmo.maas_machine": args(fast_maas, state="ready", tags=[tag], machines=machines)}]}]))
    # Slow answers keep both runs reading MAAS until both have seen it empty, so their creates do meet.
    fast_maas.faults(slow_seconds=0.3)
    mark = fast_maas.mark()
    outcomes = run_playbooks_at_once(fast_maas, playbook, 2)
    fast_maas.faults(slow_seconds=0)
    assert [rc for rc, _out in outcomes] == [0, 0], outcomes[0][1][-3000:] + outcomes[1][1][-3000:]
    assert creates_refused_as_existing(fast_maas, mark, hostnames)  # the runs did race
    found = machines_named(fast_maas, hostnames)
    assert sorted(m["hostname"] for m in found) == sorted(hostnames)
    assert all(m["status_name"] == "Ready" and m["tag_names"] == [tag] for m in found)


def test_lost_answers_to_writes_are_not_written_twice(run_module, fast_maas):
    """The create, tag and commission requests take effect but their answers are lost: the retried create meets
    the machine and adopts it; the re-run changes nothing."""
    machine = ipmi("lost", state="deployed")
    tag = f"lost{uuid.uuid4().hex[:6]}"
    mark = fast_maas.mark()
    fast_maas.faults(lose_write_answers=4)
    first = run_module(MODULE, args(fast_maas, tags=[tag], **machine))
    assert first.get("failed") is not True, first.get("msg")
    lost = [r for r in fast_maas.writes_to(mark, *fast_maas.objects_of(machine), f"tag:{tag}")
            if r.get("fault") == "lose_write_answers"]
    assert len(lost) == 4 and any(r["path"].endswith("/machines/") for r in lost)
    assert first["changed"] is True and "adopt" in first["machines"][0]["actions"]
    found = machines_named(fast_maas, [machine["hostname"]])
    assert len(found) == 1 and found[0]["status_name"] == "Deployed" and found[0]["tag_names"] == [tag]
    again = run_module(MODULE, args(fast_maas, tags=[tag], **machine))
    assert again["changed"] is False
    assert len(machines_named(fast_maas, [machine["hostname"]])) == 1


@pytest.mark.parametrize("with_header", [True, False], ids=["retry-after", "no-retry-after"])
def test_rate_limits_of_a_proxy_in_front_of_maas_are_ridden_out(run_module, fast_maas, with_header):
    machine = ipmi("rate")
    mark = fast_maas.mark()
    fast_maas.faults(http_429=3, retry_after=1, retry_after_header=with_header)
    result = run_module(MODULE, args(fast_maas, state="ready", **machine))
    assert result.get("failed") is not True, result.get("msg")
    assert result["machines"][0]["status_name"] == "Ready"
    assert [r.get("fault") for r in fast_maas.requests_since(mark)].count("429") == 3
    assert len(machines_named(fast_maas, [machine["hostname"]])) == 1
