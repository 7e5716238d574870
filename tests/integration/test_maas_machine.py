"""palette.vmo.maas_machine against the MAAS simulator: batches, idempotence, check mode, faults, states."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import REPO_ROOT

from .helpers import ansible_env, next_bmc

MODULE = "palette.vmo.maas_machine"


def unique():
    return uuid.uuid4().hex[:6]


def bmc_machine(name, address, **extra):
    return dict({"hostname": name, "power_type": "ipmi",
                 "power_parameters": {"power_address": address, "power_user": "admin", "power_pass": "bmc-secret"}},
                **extra)


def batch(prefix, count):
    return [bmc_machine(f"{prefix}-{i:02d}", next_bmc()) for i in range(count)]


def args(maas, **extra):
    return dict(maas.connection(), poll_interval=0.2, **extra)


def test_enroll_and_commission_twenty_in_one_task(run_module, fast_maas):
    prefix = f"n{unique()}"
    machines = batch(prefix, 20)
    tag = f"vmo-{prefix}"  # a new tag: twenty machines are tagged at once right after it is created
    mark = fast_maas.mark()
    planned = run_module(MODULE, args(fast_maas, state="ready", tags=[tag], machines=machines), check=True, diff=True)
    assert planned["changed"] is True
    assert all(m["actions"][0] == "create" for m in planned["machines"])
    assert planned["diff"][0]["after"]["status"] == "Ready" and planned["diff"][0]["before"] == {}
    assert fast_maas.writes_to(mark, *fast_maas.objects_of(*machines), f"tag:{tag}") == []

    started = time.monotonic()
    first = run_module(MODULE, args(fast_maas, state="ready", tags=[tag], machines=machines))
    elapsed = time.monotonic() - started
    assert first.get("failed") is not True, first.get("msg")
    assert [m["status_name"] for m in first["machines"]] == ["Ready"] * 20
    assert all(m["tags"] == [tag] for m in first["machines"])
    assert elapsed < 60  # twenty machines commissioned side by side, not one after another
    assert "bmc-secret" not in first["_stdout"]

    mark = fast_maas.mark()
    second = run_module(MODULE, args(fast_maas, state="ready", tags=[tag], machines=machines))
    assert second["changed"] is False and all(not m["actions"] for m in second["machines"])
    system_ids = [m["system_id"] for m in first["machines"]]
    assert fast_maas.writes_to(mark, *fast_maas.objects_of(*machines), f"tag:{tag}", *system_ids) == []
    again = run_module(MODULE, args(fast_maas, state="ready", tags=[tag], machines=machines), check=True)
    assert again["changed"] is False


def test_found_again_by_bmc_address_without_a_hostname(run_module, fast_maas):
    name, address = f"bmc-{unique()}", next_bmc()
    first = run_module(MODULE, args(fast_maas, state="ready", **bmc_machine(name, address)))
    assert first["changed"] is True and first["machines"][0]["hostname"] == name
    by_bmc = run_module(MODULE, args(fast_maas, state="ready", power_type="ipmi",
                                     power_parameters={"power_address": address, "power_user": "admin",
                                                       "power_pass": "bmc-secret"}))
    assert by_bmc["changed"] is False
    assert by_bmc["machines"][0]["system_id"] == first["machines"][0]["system_id"]


def test_interrupted_run_converges_without_duplicates(fast_maas, lab, tmp_path):
    fast_maas.durations(commissioning=4)
    prefix = f"k{unique()}"
    machines = batch(prefix, 3)
    playbook = tmp_path / "enroll.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"palette.vmo.maas_machine": args(fast_maas, state="ready", machines=machines)}]}]))
    env = ansible_env()
    binary = str(Path(sys.executable).parent / "ansible-playbook")
    mark = fast_maas.mark()
    proc = subprocess.Popen([binary, str(playbook)], cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        created = [r for r in fast_maas.requests_since(mark)
                   if r["method"] == "POST" and r["path"].endswith("/machines/") and r["status"] == 200]
        if len(created) == 3:
            break
        time.sleep(0.1)
    assert len(created) == 3
    os.killpg(proc.pid, signal.SIGKILL)  # mid-commissioning
    proc.wait()
    rerun = subprocess.run([binary, str(playbook)], cwd=REPO_ROOT, env=env, check=False, capture_output=True,
                           text=True)
    assert rerun.returncode == 0, rerun.stdout[-3000:]
    info = subprocess.run([str(Path(sys.executable).parent / "ansible"), "localhost", "-m",
                           "palette.vmo.maas_machine_info", "-a",
                           json.dumps(dict(fast_maas.connection(), hostnames=[m["hostname"] for m in machines]))],
                          cwd=REPO_ROOT, env=dict(env, ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                                                  ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
                          check=False, capture_output=True, text=True)
    found = json.loads(info.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]["machines"]
    assert sorted(m["hostname"] for m in found) == sorted(m["hostname"] for m in machines)
    assert [m["status_name"] for m in found] == ["Ready"] * 3


def test_503_bursts_and_dropped_connections_are_survived(run_module, fast_maas):
    mark = fast_maas.mark()
    fast_maas.faults(http_503=1, drop_connections=3)  # MAAS's 503 asks for 10 s: one is enough
    result = run_module(MODULE, args(fast_maas, state="ready", **bmc_machine(f"flaky-{unique()}", next_bmc())))
    assert result.get("failed") is not True, result.get("msg")
    assert result["machines"][0]["status_name"] == "Ready"
    faults = [r.get("fault") for r in fast_maas.requests_since(mark) if r.get("fault")]
    assert "503" in faults and "dropped" in faults


def test_deploy_release_broken_fixed_absent(run_module, fast_maas):
    machine = bmc_machine(f"life-{unique()}", next_bmc())
    deployed = run_module(MODULE, args(fast_maas, state="deployed", distro_series="jammy",
                                       user_data="#cloud-config\n", **machine))
    assert deployed.get("failed") is not True, deployed.get("msg")
    summary = deployed["machines"][0]
    assert summary["status_name"] == "Deployed" and summary["distro_series"] == "jammy" and summary["ip_addresses"]
    assert run_module(MODULE, args(fast_maas, state="deployed", distro_series="jammy", **machine))["changed"] is False
    released = run_module(MODULE, args(fast_maas, state="released", erase=True, **machine))
    assert released["changed"] is True and released["machines"][0]["actions"] == ["release"]
    assert released["machines"][0]["status_name"] == "Ready"
    broken = run_module(MODULE, args(fast_maas, state="broken", comment="bad DIMM", **machine))
    assert broken["machines"][0]["status_name"] == "Broken"
    fixed = run_module(MODULE, args(fast_maas, state="fixed", **machine))
    assert fixed["machines"][0]["status_name"] == "Ready"
    gone = run_module(MODULE, args(fast_maas, state="absent", **machine))
    assert gone["changed"] is True and gone["machines"][0]["system_id"] is None
    assert run_module(MODULE, args(fast_maas, state="absent", **machine))["changed"] is False


def test_commissioned_leaves_a_deployed_machine_where_it_is(run_module, fast_maas):
    """`commissioned` commissions a new machine; once something else (Palette) deployed it, a re-run leaves it."""
    machine = bmc_machine(f"taken-{unique()}", next_bmc())
    first = run_module(MODULE, args(fast_maas, state="commissioned", **machine))
    assert first["changed"] is True and first["machines"][0]["status_name"] == "Ready", first
    deployed = run_module(MODULE, args(fast_maas, state="deployed", distro_series="jammy", **machine))
    assert deployed["machines"][0]["status_name"] == "Deployed", deployed
    mark = fast_maas.mark()
    again = run_module(MODULE, args(fast_maas, state="commissioned", **machine))
    assert again["changed"] is False and again["machines"][0]["status_name"] == "Deployed", again
    assert fast_maas.writes_since(mark) == []
    # `ready` would release it: the difference the state exists for.
    planned = run_module(MODULE, args(fast_maas, state="ready", **machine), check=True)
    assert planned["changed"] is True and planned["machines"][0]["actions"] == ["release"], planned


def test_failed_commissioning_names_the_script(run_module, fast_maas):
    name = f"sick-{unique()}"
    fast_maas.faults(fail_commissioning=[name])
    result = run_module(MODULE, args(fast_maas, state="ready", **bmc_machine(name, next_bmc())))
    assert result.get("failed") is True
    assert f"machine {name}: Failed commissioning: 30-maas-01-bmc-config (exit 1)" in result["msg"]


def test_tags_exclusive_pool_zone_and_power(run_module, fast_maas):
    machine = bmc_machine(f"attrs-{unique()}", next_bmc())
    run_module(MODULE, args(fast_maas, state="deployed", tags=["a", "b"], **machine))
    result = run_module(MODULE, args(fast_maas, state="deployed", tags=["b", "c"], tags_exclusive=True, power="off",
                                     **machine), diff=True)
    assert result["changed"] is True
    assert result["machines"][0]["tags"] == ["b", "c"] and result["machines"][0]["power_state"] == "off"
    assert result["diff"][0]["before"]["tags"] == ["a", "b"] and result["diff"][0]["after"]["tags"] == ["b", "c"]


def test_a_new_machine_is_created_in_its_zone_and_pool(run_module, fast_maas):
    """MAAS's administrator create form takes zone and pool (AdminNodeForm's fields, AdminMachineForm.save): the
    first run puts the machine there and the second run has nothing to change."""
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient

    zone, pool = f"zone-{unique()}", f"pool-{unique()}"
    client = MaasClient(dict(fast_maas.connection(), validate_certs=True))
    client.post("/zones/", name=zone)
    client.post("/resourcepools/", name=pool)
    machine = bmc_machine(f"placed-{unique()}", next_bmc(), zone=zone, pool=pool)
    first = run_module(MODULE, args(fast_maas, state="ready", **machine))
    assert first.get("failed") is not True, first.get("msg")
    assert (first["machines"][0]["zone"], first["machines"][0]["pool"]) == (zone, pool)
    mark = fast_maas.mark()
    second = run_module(MODULE, args(fast_maas, state="ready", **machine))
    assert second["changed"] is False and second["machines"][0]["actions"] == []
    assert fast_maas.writes_to(mark, *fast_maas.objects_of(machine), first["machines"][0]["system_id"]) == []
