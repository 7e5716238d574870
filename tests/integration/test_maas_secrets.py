"""No MAAS API key or BMC password in `ansible-playbook -vvv` output: task options, `machines` items, the
MAAS_API_KEY environment variable, maas_enroll role variables, argument-validation failures and failures after
writes (whose results list the machines)."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import REPO_ROOT

from .helpers import ansible_env, next_bmc

SECRETS = {name: f"{name}-{uuid.uuid4().hex}" for name in
           ("task_pass", "item_pass", "argfail_pass", "failure_pass", "role_pass", "role_user")}


def bmc(password, user="admin"):
    return {"power_address": next_bmc(), "power_user": user, "power_pass": password}


def machine(prefix, password, **extra):
    return dict({"hostname": f"{prefix}-{uuid.uuid4().hex[:6]}", "power_type": "ipmi",
                 "power_parameters": bmc(password)}, **extra)


def tasks(maas):
    connection = {"maas_url": maas.url, "maas_ca_cert": maas.ca_file}
    top = machine("sec-top", SECRETS["task_pass"])
    return [
        {"name": "key as an option, BMC password at task level",
         "palette.vmo.maas_machine": dict(connection, maas_api_key=maas.api_key, state="present", **top)},
        {"name": "key from MAAS_API_KEY, BMC passwords in machines items",
         "palette.vmo.maas_machine": dict(connection, state="present",
                                          machines=[machine("sec-item", SECRETS["item_pass"])])},
        {"name": "argument validation fails", "ignore_errors": True,
         "palette.vmo.maas_machine": dict(connection, concurrency="many",
                                          machines=[machine("sec-arg", SECRETS["argfail_pass"])])},
        {"name": "a failure after writes lists the machines", "ignore_errors": True,
         "palette.vmo.maas_machine": dict(connection, state="ready", machines=[
             machine("sec-fail", SECRETS["failure_pass"])])},
    ]


def role_play(maas):
    servers = [machine("sec-role", SECRETS["role_pass"])]
    servers[0]["power_parameters"]["power_user"] = SECRETS["role_user"]
    return {"hosts": "localhost", "gather_facts": False, "roles": [{"role": "palette.vmo.maas_enroll", "vars": {
        "maas_enroll_url": maas.url, "maas_enroll_api_key": maas.api_key, "maas_enroll_ca_cert": maas.ca_file,
        "maas_enroll_state": "present", "maas_enroll_servers": servers}}]}


def test_vvv_output_shows_no_maas_secret(maas, tmp_path):
    maas.reset()
    maas.faults(fail_commissioning=["*"])  # the "failure after writes" task fails once it has created
    playbook = tmp_path / "secrets.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": tasks(maas)},
                                    role_play(maas)]))
    env = ansible_env(MAAS_API_KEY=maas.api_key)
    try:
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-vvv", str(playbook)],
                              cwd=REPO_ROOT, env=env, check=False, capture_output=True, text=True, timeout=600)
    finally:
        maas.reset()
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "ok=" in output and "ignored=2" in output  # every task ran; the two failing ones failed
    assert "Failed commissioning" in output and "module_args" in output  # the failure and the invocation dump
    token_secret = maas.api_key.split(":")[2]
    secrets = dict(SECRETS, api_key=maas.api_key, token_secret=token_secret)
    leaks = {name: output.count(value) for name, value in secrets.items()}
    assert leaks == {name: 0 for name in leaks}
