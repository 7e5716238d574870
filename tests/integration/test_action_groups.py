"""module_defaults through the per-backend action groups of meta/runtime.yml, as the README advises."""

import json


def _play(tmp_path, module_defaults):
    playbook = tmp_path / "groups.yml"
    playbook.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False, "module_defaults": module_defaults,
        # No kubeconfig but the one module_defaults gives.
        "environment": {"KUBECONFIG": str(tmp_path / "none"), "HOME": str(tmp_path)},
        "tasks": [
            {"name": "kubernetes", "palette.vmo.kubevirt_vm_info": {"namespace": "default"}, "register": "vms"},
            {"name": "maas", "palette.vmo.maas_machine_info": {"hostnames": ["no-such-machine"]}, "register": "found"},
            {"name": "results", "ansible.builtin.assert": {"that": ["vms.api_version == 'kubevirt.io/v1'",
                                                                    "found.machines == []"]}},
        ]}]))
    return str(playbook)


def test_kubernetes_group_sets_kubeconfig_and_leaves_maas_modules_alone(ansible_playbook, lab, maas, tmp_path):
    run = ansible_playbook(_play(tmp_path, {"group/palette.vmo.kubernetes": {"kubeconfig": str(lab.kubeconfig)},
                                            "group/palette.vmo.maas": maas.connection()}))
    assert run.rc == 0 and run.recap["localhost"]["failed"] == 0 and run.recap["localhost"]["ok"] == 3, run


def test_the_all_group_holds_every_module(ansible_playbook, lab, maas, tmp_path):
    """`all` still reaches every module, for options every module takes (here none: the MAAS module refuses)."""
    run = ansible_playbook(_play(tmp_path, {"group/palette.vmo.all": {"kubeconfig": str(lab.kubeconfig)},
                                            "group/palette.vmo.maas": maas.connection()}))
    assert run.rc != 0 and "Unsupported parameters for (palette.vmo.maas_machine_info) module: kubeconfig" in run.stdout
