"""The vmo_vms role: a list of VMs from variables, converged in one task, then unchanged."""

import json
import uuid

from tests.lab.kube import object_path


def test_role_declares_vms_and_reruns_unchanged(ansible_playbook, admin, tmp_path):
    ns = f"role-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    playbook = tmp_path / "vms.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "palette.vmo.vmo_vms", "vars": {
            "vmo_vms_namespace": ns, "vmo_vms_defaults": {"memory": "128Mi"},
            "vmo_vms_list": [{"name": "web-1"}, {"name": "web-2"}, {"name": "db-1", "state": "stopped"}]}}]}]))
    try:
        first = ansible_playbook(str(playbook))
        assert first.rc == 0, first
        assert first.recap["localhost"]["changed"] == 1, first
        assert f"{ns} web-1 created Running 10.244." in first.stdout
        assert f"{ns} db-1 created Stopped" in first.stdout
        second = ansible_playbook(str(playbook))
        assert second.rc == 0 and second.recap["localhost"]["changed"] == 0, second

        bad = tmp_path / "bad.yml"
        bad.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                    "roles": [{"role": "palette.vmo.vmo_vms", "vars": {"vmo_vms_list": "not-a-list"}}]}]))
        rejected = ansible_playbook(str(bad))
        assert rejected.rc != 0 and "vmo_vms_list" in rejected.stdout
    finally:
        admin.delete(object_path("v1", "namespaces", ns))
