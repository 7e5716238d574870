"""The maas_enroll role and the maas_machines inventory plugin against the MAAS simulator."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.conftest import REPO_ROOT

from .helpers import ansible_env, next_bmc, unwrap


def test_role_enrolls_then_inventory_lists_deployed_machines(ansible_playbook, maas, tmp_path):
    maas.reset()
    maas.durations(commissioning=0.5, deploying=0.5)
    tag = f"site{uuid.uuid4().hex[:5]}"
    servers = [{"hostname": f"{tag}-{i}", "power_type": "ipmi",
                "power_parameters": {"power_address": next_bmc(),
                                     "power_user": "admin", "power_pass": "pw"}} for i in range(3)]
    playbook = tmp_path / "enroll.yml"
    play_vars = {"maas_enroll_url": maas.url, "maas_enroll_api_key": maas.api_key, "maas_enroll_ca_cert": maas.ca_file,
                 "maas_enroll_tags": [tag], "maas_enroll_state": "deployed", "maas_enroll_servers": servers}
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "palette.vmo.maas_enroll", "vars": play_vars}]}]))
    try:
        first = ansible_playbook(str(playbook))
        assert first.rc == 0, first
        assert first.recap["localhost"]["changed"] == 1
        assert f"{tag}-0 Deployed create" in first.stdout
        second = ansible_playbook(str(playbook))
        assert second.rc == 0 and second.recap["localhost"]["changed"] == 0, second

        source = tmp_path / "site.maas_machines.yml"
        source.write_text(json.dumps({"plugin": "palette.vmo.maas_machines", "tags": [tag],
                                      "keyed_groups": [{"key": "maas_distro_series", "prefix": "series"}]}))
        env = ansible_env(MAAS_URL=maas.url, MAAS_API_KEY=maas.api_key, MAAS_CA_CERT=maas.ca_file,
                          ANSIBLE_INVENTORY_ENABLED="auto")
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
                              cwd=REPO_ROOT, env=env, check=False, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        listed = unwrap(json.loads(proc.stdout))
        hostvars = listed["_meta"]["hostvars"]
        assert sorted(hostvars) == [f"{tag}-{i}" for i in range(3)]
        assert all(h["ansible_host"].startswith("10.20.") for h in hostvars.values())
        assert set(listed[f"tag_{tag}"]["hosts"]) == set(hostvars)
        assert set(listed["status_deployed"]["hosts"]) >= set(hostvars)
        assert set(listed["series_noble"]["hosts"]) == set(hostvars)
        assert maas.api_key not in proc.stdout
    finally:
        maas.reset()
