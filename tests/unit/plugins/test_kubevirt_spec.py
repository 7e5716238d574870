"""Typed VM options to a VirtualMachine object: pure logic, no cluster."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import (
    VmInputError, build_vm, instantiate_template)


def base(**options):
    return dict({"name": "web", "namespace": "vms", "memory": "1Gi"}, **options)


def test_defaults_give_a_pod_network_nic_and_the_managed_label():
    vm = build_vm(base(run_strategy="Always"))
    spec = vm["spec"]["template"]["spec"]
    assert vm["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo"
    assert spec["domain"]["memory"] == {"guest": "1Gi"}
    assert spec["domain"]["devices"]["interfaces"] == [{"name": "default", "masquerade": {}}]
    assert spec["networks"] == [{"name": "default", "pod": {}}]
    assert vm["spec"]["runStrategy"] == "Always" and "running" not in vm["spec"]
    assert vm["spec"]["template"]["metadata"]["labels"]["kubevirt.io/domain"] == "web"


def test_disks_of_every_source():
    vm = build_vm(base(disks=[
        {"name": "root", "container_disk": "quay.io/containerdisks/fedora:41", "boot_order": 1},
        {"name": "data", "data_volume": {"size": "20Gi", "registry": "docker://quay.io/x:1", "storage_class": "ceph"}},
        {"name": "clone", "data_volume": {"size": "20Gi", "clone": {"name": "golden", "namespace": "images"}}},
        {"name": "scratch", "empty_disk": "1Gi", "bus": "sata"},
        {"name": "old", "pvc": "existing-claim"},
    ], cloud_init={"ssh_authorized_keys": ["ssh-ed25519 AAA me"]}))
    spec = vm["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["root"]["containerDisk"]["image"] == "quay.io/containerdisks/fedora:41"
    assert volumes["data"]["dataVolume"]["name"] == "web-data"
    assert volumes["scratch"]["emptyDisk"] == {"capacity": "1Gi"}
    assert volumes["old"]["persistentVolumeClaim"] == {"claimName": "existing-claim"}
    assert volumes["cloudinitdisk"]["cloudInitNoCloud"]["userData"].startswith("#cloud-config\nssh_authorized_keys:")
    templates = {t["metadata"]["name"]: t for t in vm["spec"]["dataVolumeTemplates"]}
    assert templates["web-data"]["spec"]["storage"]["storageClassName"] == "ceph"
    assert templates["web-clone"]["spec"]["source"] == {"pvc": {"name": "golden", "namespace": "images"}}
    disks = {d["name"]: d for d in spec["domain"]["devices"]["disks"]}
    assert disks["root"]["bootOrder"] == 1 and disks["scratch"]["disk"]["bus"] == "sata"


def test_multus_nic_is_bridged_and_raw_spec_is_extended():
    vm = build_vm(base(nics=[{"name": "default"}, {"name": "storage", "network": "vms/vlan-10", "model": "e1000e"}],
                       spec={"terminationGracePeriodSeconds": 30}))
    spec = vm["spec"]["template"]["spec"]
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["domain"]["devices"]["interfaces"][1] == {"name": "storage", "bridge": {}, "model": "e1000e"}
    assert spec["networks"][1] == {"name": "storage", "multus": {"networkName": "vms/vlan-10"}}


def test_instancetype_and_preference_matchers():
    vm = build_vm({"name": "small", "namespace": "vms", "instancetype": "u1.small",
                   "preference": {"name": "fedora", "kind": "VirtualMachinePreference"}})
    assert vm["spec"]["instancetype"] == {"name": "u1.small", "kind": "VirtualMachineClusterInstancetype"}
    assert vm["spec"]["preference"] == {"name": "fedora", "kind": "VirtualMachinePreference"}


@pytest.mark.parametrize("options, option", [
    ({"name": "Web"}, "name"),
    ({"memory": "1 GB"}, "memory"),
    ({"run_strategy": "Sometimes"}, "run_strategy"),
    ({"cpu": {"cores": 0}}, "cpu.cores"),
    ({"disks": [{"name": "root"}]}, "disks[root]"),
    ({"disks": [{"name": "root", "pvc": "x", "colour": "red"}]}, "disks[root]"),
    ({"nics": [{"name": "n", "binding": "tunnel"}]}, "nics[n].binding"),
    ({"cloud_init": {}}, "cloud_init"),
    ({"eviction_strategy": "Evaporate"}, "eviction_strategy"),
])
def test_bad_options_name_the_vm_and_the_option(options, option):
    with pytest.raises(VmInputError) as err:
        build_vm(base(**options))
    assert err.value.option == option
    assert str(err.value).startswith("VM vms/")


def test_template_instances_get_their_own_data_volumes():
    template = {"spec": {
        "running": False,
        "dataVolumeTemplates": [{"metadata": {"name": "root"}, "spec": {"source": {"blank": {}}}}],
        "template": {"spec": {"domain": {"memory": {"guest": "2Gi"}, "devices": {}},
                              "volumes": [{"name": "root", "dataVolume": {"name": "root"}}]}}}}
    spec = instantiate_template(template, "vm-a")
    assert "running" not in spec
    assert spec["dataVolumeTemplates"][0]["metadata"]["name"] == "vm-a-root"
    assert spec["template"]["spec"]["volumes"][0]["dataVolume"]["name"] == "vm-a-root"
    assert template["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] == "root"  # the template is untouched


def test_quantities_beyond_int64_bytes_are_refused():
    for too_large in ("99999999Ei", "8Ei", "1e19"):
        with pytest.raises(VmInputError, match="memory: %r is too large" % too_large):
            build_vm(base(memory=too_large))
    assert build_vm(base(memory="7Ei"))["spec"]["template"]["spec"]["domain"]["memory"] == {"guest": "7Ei"}


def test_disk_and_nic_names_are_unique_in_one_vm():
    with pytest.raises(VmInputError, match="VM vms/web: disks: 'root' is given more than once"):
        build_vm(base(disks=[{"name": "root", "container_disk": "quay.io/x:1"}, {"name": "root", "pvc": "r"}]))
    with pytest.raises(VmInputError, match="VM vms/web: nics: 'default' is given more than once"):
        build_vm(base(nics=[{"name": "default"}, {"name": "default", "model": "e1000"}]))
