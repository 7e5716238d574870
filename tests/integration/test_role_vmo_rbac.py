"""The vmo_rbac role: bindings from variables in one task, verified, then unchanged; bad variables are refused."""

import json

from tests.lab.kube import object_path


def test_role_binds_verifies_and_reruns_unchanged(ansible_playbook, admin, vmo_cluster_roles, ns, tmp_path):
    playbook = tmp_path / "rbac.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "roles": [{"role": "palette.vmo.vmo_rbac", "vars": {
            "vmo_rbac_verify_fail": True,
            "vmo_rbac_bindings": [
                {"role": "spectro-vm-user", "subjects": {"users": ["carol"]}, "namespaces": [ns]},
                {"role": "spectro-vm-viewer", "subjects": {"groups": ["auditors"]}, "namespaces": [ns]}]}}]}]))
    first = ansible_playbook(str(playbook))
    assert first.rc == 0, first
    assert first.recap["localhost"]["changed"] == 1, first
    assert f"RoleBinding {ns} spectro-vm-user created" in first.stdout
    assert f"User carol in {ns}: 0 mismatches" in first.stdout
    live = admin.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", "vmo-spectro-vm-viewer", ns))
    assert live["subjects"][0]["name"] == "auditors"
    second = ansible_playbook(str(playbook))
    assert second.rc == 0 and second.recap["localhost"]["changed"] == 0, second

    bad = tmp_path / "bad.yml"
    bad.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [
        {"role": "palette.vmo.vmo_rbac", "vars": {"vmo_rbac_bindings": [], "vmo_rbac_roles": "sometimes"}}]}]))
    rejected = ansible_playbook(str(bad))
    assert rejected.rc != 0 and "vmo_rbac_roles" in rejected.stdout
