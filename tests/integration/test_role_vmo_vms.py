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


def test_every_key_of_the_defaults_reaches_each_vm(ansible_playbook, admin, tmp_path):
    ns = f"role-defaults-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    defaults = {"memory": "128Mi", "state": "stopped", "annotations": {"team": "web"},
                "node_selector": {"kubernetes.io/os": "linux"}, "eviction_strategy": "External",
                "cpu": {"cores": 2}, "disks": [{"name": "root", "container_disk": "quay.io/containerdisks/fedora:41"}],
                "nics": [{"name": "default", "model": "e1000"}], "cloud_init": {"user_data": "#cloud-config\n"}}
    playbook = tmp_path / "defaults.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [{
        "role": "palette.vmo.vmo_vms", "vars": {"vmo_vms_defaults": defaults, "vmo_vms_wait": False, "vmo_vms_namespace": ns,
                                                "vmo_vms_list": [{"name": "web-1"}, {"name": "web-2", "memory": "256Mi"}]}}]}]))
    try:
        run = ansible_playbook(str(playbook))
        assert run.rc == 0, run
        for name, memory in (("web-1", "128Mi"), ("web-2", "256Mi")):
            vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", name, ns))
            template = vm["spec"]["template"]
            assert vm["spec"]["runStrategy"] == "Halted"
            assert vm["metadata"]["annotations"]["team"] == "web"
            assert template["spec"]["nodeSelector"] == {"kubernetes.io/os": "linux"}
            assert template["spec"]["evictionStrategy"] == "External"
            assert template["spec"]["domain"]["cpu"]["cores"] == 2
            assert template["spec"]["domain"]["memory"]["guest"] == memory
            assert [d["name"] for d in template["spec"]["domain"]["devices"]["disks"]] == ["root", "cloudinitdisk"]
            assert template["spec"]["domain"]["devices"]["interfaces"][0]["model"] == "e1000"

        typo = tmp_path / "typo.yml"
        typo.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [{
            "role": "palette.vmo.vmo_vms", "vars": {"vmo_vms_defaults": {"memroy": "1Gi"}, "vmo_vms_namespace": ns,
                                                    "vmo_vms_list": [{"name": "web-3"}]}}]}]))
        refused = ansible_playbook(str(typo))
        assert refused.rc != 0 and "memroy" in refused.stdout, refused
    finally:
        admin.delete(object_path("v1", "namespaces", ns))
