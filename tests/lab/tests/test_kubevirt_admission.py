"""KubeVirt's validating admission on the lab: the real apiserver calls the stand-in virt-api's webhook.

Creates, updates and dry runs (dryRun=All) of VMs go through `virt-api-validator`, as on a cluster,
and come back 422 with KubeVirt's message and field when KubeVirt refuses them.
"""

import base64
import copy

import pytest

from tests.lab import bootstrap
from tests.lab.kube import KubeError, object_path

from .helpers import vm_manifest, vm_path, vmi_path

WEBHOOK = object_path("admissionregistration.k8s.io/v1", "validatingwebhookconfigurations", "virt-api-validator")
VM_WEBHOOK = "virtualmachine-validator.kubevirt.io"


def full_vm(name, namespace):
    """A VM with the sources the collection uses: container disk, PVC, cloud-init, pod and multus NICs."""
    vm = vm_manifest(name, namespace, run_strategy="Halted")
    spec = vm["spec"]["template"]["spec"]
    spec["domain"]["devices"] = {
        "disks": [{"name": "root", "disk": {"bus": "virtio"}}, {"name": "data", "disk": {"bus": "virtio"}},
                  {"name": "cloudinit", "disk": {"bus": "virtio"}}],
        "interfaces": [{"name": "default", "masquerade": {}}, {"name": "vlan", "bridge": {}}]}
    spec["networks"] = [{"name": "default", "pod": {}}, {"name": "vlan", "multus": {"networkName": "vlan-42"}}]
    spec["volumes"] = [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}},
                       {"name": "data", "persistentVolumeClaim": {"claimName": f"{name}-data"}},
                       {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}}]
    return vm


def template(vm):
    return vm["spec"]["template"]["spec"]


def refusal(call):
    with pytest.raises(KubeError) as caught:
        call()
    err = caught.value
    return err.status, err.body


def assert_refused(admin, namespace, vm, field, message):
    """Both a create and a dry-run create are refused with KubeVirt's 422, field and message."""
    for params in ({"dryRun": "All"}, {}):
        status, body = refusal(lambda: admin.create(vm_path(namespace), vm, **params))
        assert status == 422, body
        assert body["reason"] == "Invalid"
        assert body["message"].startswith(f'admission webhook "{VM_WEBHOOK}" denied the request: ')
        assert message in body["message"]
        assert {"field": field, "message": message} in [
            {"field": c.get("field"), "message": c.get("message")} for c in body["details"]["causes"]]
    assert admin.get_or_none(vm_path(namespace, vm["metadata"]["name"])) is None


def test_the_webhook_is_registered_like_virt_operator_does(admin, lab):
    config = admin.get(WEBHOOK)
    hooks = {h["name"]: h for h in config["webhooks"]}
    assert set(hooks) == {VM_WEBHOOK, "virtualmachineinstances-create-validator.kubevirt.io",
                          "migration-create-validator.kubevirt.io", "migration-update-validator.kubevirt.io",
                          "virtualmachineinstances-update-validator.kubevirt.io",
                          "virtualmachinesnapshot-validator.snapshot.kubevirt.io",
                          "virtualmachineexport-validator.export.kubevirt.io",
                          "virtualmachinerestore-validator.snapshot.kubevirt.io", "vm-clone-validator.kubevirt.io"}
    vm_hook = hooks[VM_WEBHOOK]
    assert vm_hook["failurePolicy"] == "Fail" and vm_hook["sideEffects"] == "None"
    assert vm_hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert vm_hook["rules"][0]["resources"] == ["virtualmachines"]
    assert vm_hook["clientConfig"]["service"] == {
        "namespace": bootstrap.KUBEVIRT_NAMESPACE, "name": "virt-api", "path": "/virtualmachines-validate",
        "port": lab.ports["virt-api"]}
    vmi_hook = hooks["virtualmachineinstances-create-validator.kubevirt.io"]
    assert vmi_hook["rules"][0]["operations"] == ["CREATE"]
    assert vmi_hook["clientConfig"]["service"]["path"] == "/virtualmachineinstances-validate-create"
    update_hook = hooks["virtualmachineinstances-update-validator.kubevirt.io"]
    assert update_hook["rules"][0]["operations"] == ["UPDATE"]
    assert update_hook["clientConfig"]["service"]["path"] == "/virtualmachineinstances-validate-update"
    ca = (lab.dir / "pki" / "ca.crt").read_bytes()
    assert all(base64.b64decode(h["clientConfig"]["caBundle"]) == ca for h in config["webhooks"])


def test_a_valid_vm_is_admitted_and_its_vmi_too(admin, namespace, wait):
    vm = full_vm("fine", namespace)
    admin.create(vm_path(namespace), vm, dryRun="All")
    assert admin.get_or_none(vm_path(namespace, "fine")) is None
    vm["spec"]["runStrategy"] = "Always"
    admin.create(vm_path(namespace), vm)
    # The stand-in's VMI passes the VMI-create webhook: it exists once admitted.
    wait.until(vmi_path(namespace, "fine"), lambda vmi: vmi is not None, what="the VMI of fine")


def test_duplicate_disk_names(admin, namespace):
    vm = full_vm("dup-disk", namespace)
    template(vm)["domain"]["devices"]["disks"][1]["name"] = "root"
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.devices.disks[1].name",
                   "spec.template.spec.domain.devices.disks[1] and spec.template.spec.domain.devices.disks[0] "
                   "must not have the same Name.")


def test_disk_without_a_volume(admin, namespace):
    vm = full_vm("orphan-disk", namespace)
    template(vm)["domain"]["devices"]["disks"].append({"name": "orphan", "disk": {}})
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.devices.disks[3].name",
                   "spec.template.spec.domain.devices.disks[3].Name 'orphan' not found.")


def test_duplicate_volume_names(admin, namespace):
    vm = full_vm("dup-volume", namespace)
    template(vm)["volumes"].append({"name": "data", "containerDisk": {"image": "quay.io/x:1"}})
    assert_refused(admin, namespace, vm, "spec.template.spec.volumes[3].name",
                   "spec.template.spec.volumes[3] and spec.template.spec.volumes[1] must not have the same Name.")


def test_duplicate_interface_names(admin, namespace):
    vm = full_vm("dup-nic", namespace)
    template(vm)["domain"]["devices"]["interfaces"].append({"name": "vlan", "bridge": {}})
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.devices.interfaces[2].name",
                   "Only one interface can be connected to one specific network")


def test_interface_without_a_network(admin, namespace):
    vm = full_vm("no-net", namespace)
    template(vm)["domain"]["devices"]["interfaces"].append({"name": "storage", "bridge": {}})
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.devices.interfaces[2].name",
                   "spec.template.spec.domain.devices.interfaces[2].name 'storage' not found.")


def test_duplicate_network_names(admin, namespace):
    vm = full_vm("dup-net", namespace)
    template(vm)["networks"].append({"name": "vlan", "multus": {"networkName": "vlan-43"}})
    assert_refused(admin, namespace, vm, "spec.template.spec.networks[2].name",
                   'Network with name "vlan" already exists, every network must have a unique name')


def test_two_pod_networks(admin, namespace):
    vm = full_vm("two-pods", namespace)
    template(vm)["networks"][1] = {"name": "vlan", "pod": {}}
    assert_refused(admin, namespace, vm, "spec.template.spec.interfaces",
                   "more than one interface is connected to a pod network in spec.template.spec.interfaces")


def test_masquerade_on_multus(admin, namespace):
    vm = full_vm("masq-multus", namespace)
    template(vm)["domain"]["devices"]["interfaces"][1] = {"name": "vlan", "masquerade": {}}
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.devices.interfaces[1].name",
                   "Masquerade interface only implemented with pod network")


def test_negative_memory_request(admin, namespace):
    vm = full_vm("neg-mem", namespace)
    template(vm)["domain"]["resources"] = {"requests": {"memory": "-1Gi"}}
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.resources.requests.memory",
                   "spec.template.spec.domain.resources.requests.memory '-1Gi': must be greater than or equal to 0.")


def test_memory_request_above_limit(admin, namespace):
    vm = full_vm("mem-limit", namespace)
    template(vm)["domain"]["resources"] = {"requests": {"memory": "1Gi"}, "limits": {"memory": "512Mi"}}
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.resources.requests.memory",
                   "spec.template.spec.domain.resources.requests.memory '1Gi' is greater than "
                   "spec.template.spec.domain.resources.limits.memory '512Mi'")


def test_99999999Ei_memory_is_admitted_as_kubevirt_admits_it(admin, namespace):
    # ParseQuantity caps a binary quantity at the largest int64, so KubeVirt v1.9.0's memory checks
    # all pass: the dry run cannot catch it on a real cluster either.
    vm = full_vm("huge", namespace)
    template(vm)["domain"]["resources"] = {"requests": {"memory": "99999999Ei"}}
    admin.create(vm_path(namespace), vm, dryRun="All")


def test_invalid_run_strategy(admin, namespace):
    vm = full_vm("sometimes", namespace)
    vm["spec"]["runStrategy"] = "Sometimes"
    assert_refused(admin, namespace, vm, "spec.runStrategy", "Invalid RunStrategy (Sometimes)")


def test_running_and_run_strategy_together(admin, namespace):
    vm = full_vm("both", namespace)
    vm["spec"]["running"] = False
    assert_refused(admin, namespace, vm, "spec.running",
                   "Running and RunStrategy are mutually exclusive. Note that Running is deprecated, "
                   "please use RunStrategy instead")


def test_sockets_above_max_sockets(admin, namespace):
    vm = full_vm("sockets", namespace)
    template(vm)["domain"]["cpu"] = {"sockets": 4, "maxSockets": 2}
    assert_refused(admin, namespace, vm, "spec.template.spec.domain.cpu.sockets",
                   "Number of sockets in CPU topology is greater than the maximum sockets allowed")


def test_cloud_init_user_data_over_the_limit(admin, namespace):
    vm = full_vm("big-cloudinit", namespace)
    template(vm)["volumes"][2]["cloudInitNoCloud"]["userData"] = "#cloud-config\n" + "#" * 2048
    assert_refused(admin, namespace, vm, "spec.template.spec.volumes[2].cloudInitNoCloud",
                   "spec.template.spec.volumes[2].cloudInitNoCloud userdata exceeds 2048 byte limit. "
                   "Should use UserDataSecretRef for larger data.")


def test_negative_cores_are_a_400_from_unmarshalling(admin, namespace):
    vm = full_vm("neg-cores", namespace)
    template(vm)["domain"]["cpu"] = {"cores": -1}
    status, body = refusal(lambda: admin.create(vm_path(namespace), vm, dryRun="All"))
    assert status == 400, body
    assert body["message"] == (f'admission webhook "{VM_WEBHOOK}" denied the request: json: cannot unmarshal '
                               f'number -1 into Go struct field CPU.spec.template.spec.domain.cpu.cores of type uint32')


def test_updates_are_validated_too(admin, namespace):
    vm = full_vm("later", namespace)
    admin.create(vm_path(namespace), vm)
    patch = {"spec": {"template": {"spec": {"domain": {"devices": {"disks": [
        {"name": "root", "disk": {}}, {"name": "root", "disk": {}}]}}}}}}
    for params in ({"dryRun": "All"}, {}):
        status, body = refusal(lambda: admin.merge_patch(vm_path(namespace, "later"), patch, **params))
        assert status == 422, body
        assert "spec.template.spec.domain.devices.disks[1].name" in [c.get("field") for c in body["details"]["causes"]]
    live = admin.get(vm_path(namespace, "later"))
    assert [d["name"] for d in template(live)["domain"]["devices"]["disks"]] == ["root", "data", "cloudinit"]


def test_a_vmi_created_directly_goes_through_the_vmi_webhook(admin, namespace):
    spec = copy.deepcopy(template(full_vm("direct", namespace)))
    spec["domain"].pop("memory")
    vmi = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
           "metadata": {"name": "direct", "namespace": namespace}, "spec": spec}
    status, body = refusal(lambda: admin.create(vmi_path(namespace), vmi, dryRun="All"))
    assert status == 422, body
    assert body["message"] == (
        'admission webhook "virtualmachineinstances-create-validator.kubevirt.io" denied the request: '
        "no memory requested, at least one of 'spec.domain.memory.guest', 'spec.domain.memory.hugepages.pageSize' "
        "or 'spec.domain.resources.requests.memory' must be set")
