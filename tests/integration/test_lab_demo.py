"""The first playbook on the lab: a namespace and a VM declared with kubernetes.core, then Running."""

import uuid

from tests.lab.kube import object_path


def test_demo_playbook_brings_a_vm_to_running_and_reruns_unchanged(ansible_playbook, admin):
    namespace = f"demo-{uuid.uuid4().hex[:6]}"
    try:
        first = ansible_playbook("playbooks/lab_demo.yml", "-e", f"vmo_demo_namespace={namespace}")
        assert first.rc == 0, first
        assert first.recap["localhost"]["changed"] == 2, first
        assert "demo-vm is Running on lab-node-" in first.stdout, first

        vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "demo-vm", namespace))
        assert vm["status"]["printableStatus"] == "Running"
        assert vm["status"]["ready"] is True

        second = ansible_playbook("playbooks/lab_demo.yml", "-e", f"vmo_demo_namespace={namespace}")
        assert second.rc == 0, second
        assert second.recap["localhost"]["changed"] == 0, second
    finally:
        admin.delete(object_path("v1", "namespaces", namespace))
