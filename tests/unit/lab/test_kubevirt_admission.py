"""KubeVirt's VM and VMI admission as the stand-in mirrors it: each rule's message and field."""

import base64
import copy

import pytest

from tests.lab.kubevirt import admission
from tests.lab.kubevirt.admission import Quantity


def valid_vm(**spec):
    """A VM like the collection writes: container disk, data volume, cloud-init, pod and multus NICs."""
    vm = {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": "vm", "namespace": "ns"},
        "spec": {
            "runStrategy": "Halted",
            "dataVolumeTemplates": [{"metadata": {"name": "vm-data"},
                                     "spec": {"storage": {"resources": {"requests": {"storage": "1Gi"}}},
                                              "source": {"blank": {}}}}],
            "template": {"spec": {
                "domain": {
                    "cpu": {"cores": 2, "sockets": 1, "threads": 1},
                    "memory": {"guest": "128Mi"},
                    "resources": {"requests": {"memory": "128Mi", "cpu": "100m"}},
                    "devices": {
                        "disks": [{"name": "root", "disk": {"bus": "virtio"}, "bootOrder": 1},
                                  {"name": "data", "disk": {"bus": "virtio"}},
                                  {"name": "claim", "disk": {}},
                                  {"name": "cloudinit", "disk": {"bus": "virtio"}}],
                        "interfaces": [{"name": "default", "masquerade": {}},
                                       {"name": "data-net", "bridge": {}, "macAddress": "02:00:00:00:00:01"}],
                    },
                },
                "networks": [{"name": "default", "pod": {}},
                             {"name": "data-net", "multus": {"networkName": "vlan-42"}}],
                "volumes": [
                    {"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}},
                    {"name": "data", "dataVolume": {"name": "vm-data"}},
                    {"name": "claim", "persistentVolumeClaim": {"claimName": "existing"}},
                    {"name": "cloudinit", "cloudInitNoCloud": {"userData": "#cloud-config\n"}},
                ],
            }},
        },
    }
    vm["spec"].update(spec)
    return vm


def template(vm):
    return vm["spec"]["template"]["spec"]


def admit(vm, operation="CREATE", config=None):
    request = {"uid": "u-1", "operation": operation, "object": vm,
               "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"}}
    return admission.admit_vm(request, config or {})


def causes(vm, **kwargs):
    response = admit(vm, **kwargs)
    assert response["allowed"] is False, response
    assert response["status"]["code"] == 422 and response["status"]["reason"] == "Invalid"
    return [(c["field"], c["message"]) if "field" in c else (None, c["message"])
            for c in response["status"]["details"]["causes"]]


def test_a_vm_like_the_collection_writes_is_admitted():
    assert admit(valid_vm()) == {"allowed": True}


def test_a_vm_with_no_devices_gets_kubevirt_defaults_and_is_admitted():
    vm = valid_vm(dataVolumeTemplates=[])
    template(vm)["domain"]["devices"] = {}
    template(vm).pop("networks")
    template(vm)["volumes"] = [{"name": "root", "containerDisk": {"image": "quay.io/x:1"}}]
    assert admit(vm)["allowed"] is True


def test_duplicate_disk_names():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["disks"][1]["name"] = "root"
    found = causes(vm)
    assert ("spec.template.spec.domain.devices.disks[1].name",
            "spec.template.spec.domain.devices.disks[1] and spec.template.spec.domain.devices.disks[0] "
            "must not have the same Name.") in found


def test_disk_without_a_volume():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["disks"].append({"name": "orphan", "disk": {}})
    assert causes(vm) == [("spec.template.spec.domain.devices.disks[4].name",
                           "spec.template.spec.domain.devices.disks[4].Name 'orphan' not found.")]


def test_duplicate_volume_names():
    vm = valid_vm()
    template(vm)["volumes"].append({"name": "root", "containerDisk": {"image": "quay.io/y:1"}})
    assert causes(vm) == [("spec.template.spec.volumes[4].name",
                           "spec.template.spec.volumes[4] and spec.template.spec.volumes[0] must not have the same Name.")]


def test_volume_with_two_sources():
    vm = valid_vm()
    template(vm)["volumes"][0]["persistentVolumeClaim"] = {"claimName": "x"}
    assert causes(vm) == [("spec.template.spec.volumes[0]",
                           "spec.template.spec.volumes[0] must have exactly one source type set")]


def test_cloud_init_user_data_over_2048_bytes():
    vm = valid_vm()
    template(vm)["volumes"][3]["cloudInitNoCloud"] = {"userData": "#" * 2049}
    assert causes(vm) == [("spec.template.spec.volumes[3].cloudInitNoCloud",
                           "spec.template.spec.volumes[3].cloudInitNoCloud userdata exceeds 2048 byte limit. "
                           "Should use UserDataSecretRef for larger data.")]


def test_cloud_init_with_two_user_data_sources_and_none():
    vm = valid_vm()
    template(vm)["volumes"][3]["cloudInitNoCloud"] = {
        "userData": "a", "userDataBase64": base64.b64encode(b"b").decode()}
    assert causes(vm) == [("spec.template.spec.volumes[3].cloudInitNoCloud",
                           "spec.template.spec.volumes[3].cloudInitNoCloud must have only one userdatasource set.")]
    template(vm)["volumes"][3]["cloudInitNoCloud"] = {}
    assert causes(vm) == [("spec.template.spec.volumes[3].cloudInitNoCloud",
                           "spec.template.spec.volumes[3].cloudInitNoCloud must have at least one userdatasource "
                           "or one networkdatasource set.")]


def test_disk_name_must_be_a_dns_label_with_kubevirts_field_path():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["disks"][0]["name"] = "Root"
    template(vm)["volumes"][0]["name"] = "Root"
    assert causes(vm) == [(
        "spec.template.spec.domain.devices.disks.domain.devices.disks[0].name",
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and "
        "end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')")]


def test_unknown_bus_and_duplicate_boot_order():
    vm = valid_vm()
    disks = template(vm)["domain"]["devices"]["disks"]
    disks[1]["disk"]["bus"] = "floppy"
    disks[1]["bootOrder"] = 1
    assert causes(vm) == [
        ("spec.template.spec.domain.devices.disks[1].bootOrder",
         "Boot order for spec.template.spec.domain.devices.disks[1].bootOrder already set for a different device."),
        ("spec.template.spec.domain.devices.disks[1].disk.bus",
         "spec.template.spec.domain.devices.disks[1] is set with an unrecognized bus floppy, must be one of: "
         "[virtio scsi sata usb]")]


def test_duplicate_interface_names():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["interfaces"][1]["name"] = "default"
    found = causes(vm)
    assert ("spec.template.spec.domain.devices.interfaces[1].name",
            "Only one interface can be connected to one specific network") in found
    # The network data-net is then left without an interface, which KubeVirt reports too.
    assert ("spec.template.spec.networks[1].name", "spec.template.spec.networks[1].name 'data-net' not found.") in found


def test_interface_without_a_network():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["interfaces"].append({"name": "extra", "bridge": {}})
    assert causes(vm) == [("spec.template.spec.domain.devices.interfaces[2].name",
                           "spec.template.spec.domain.devices.interfaces[2].name 'extra' not found.")]


def test_duplicate_network_names():
    vm = valid_vm()
    template(vm)["networks"].append({"name": "data-net", "multus": {"networkName": "other"}})
    assert causes(vm) == [("spec.template.spec.networks[2].name",
                           'Network with name "data-net" already exists, every network must have a unique name')]


def test_two_pod_networks():
    vm = valid_vm()
    template(vm)["networks"][1] = {"name": "data-net", "pod": {}}
    template(vm)["domain"]["devices"]["interfaces"][1] = {"name": "data-net", "masquerade": {}}
    assert causes(vm) == [("spec.template.spec.interfaces",
                           "more than one interface is connected to a pod network in spec.template.spec.interfaces")]


def test_masquerade_needs_the_pod_network_and_one_binding():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["interfaces"][1] = {"name": "data-net", "masquerade": {}, "bridge": {}}
    assert causes(vm) == [
        ("spec.template.spec.domain.devices.interfaces[1]",
         "logical data-net interface must have exactly one binding method or binding plugin"),
        ("spec.template.spec.domain.devices.interfaces[1].name", "Masquerade interface only implemented with pod network")]


def test_bridge_on_pod_network_follows_the_kubevirt_configuration():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["interfaces"][0] = {"name": "default", "bridge": {}}
    assert admit(vm)["allowed"] is True
    assert causes(vm, config={"network": {"permitBridgeInterfaceOnPodNetwork": False}}) == [
        ("spec.template.spec.domain.devices.interfaces[0].name",
         "Bridge on pod network configuration is not enabled under kubevirt-config")]


def test_multus_network_needs_a_name_and_a_network_one_type():
    vm = valid_vm()
    template(vm)["networks"][1] = {"name": "data-net", "multus": {}}
    assert causes(vm) == [("spec.template.spec.networks[1]", "CNI delegating plugin must have a networkName")]
    template(vm)["networks"][1] = {"name": "data-net"}
    assert causes(vm) == [("spec.template.spec.networks[1]", "should have a network type")]


def test_bad_mac_and_model():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["interfaces"][1].update(macAddress="02:zz", model="rtl9999")
    assert causes(vm) == [
        ("spec.template.spec.domain.devices.interfaces[1].model",
         "interface spec.template.spec.domain.devices.interfaces[1].name uses model rtl9999 that is not supported."),
        ("spec.template.spec.domain.devices.interfaces[1].macAddress",
         "interface spec.template.spec.domain.devices.interfaces[1].name has malformed MAC address (02:zz).")]


@pytest.mark.parametrize("memory, message", [
    ("-1Gi", "spec.template.spec.domain.resources.requests.memory '-1Gi': must be greater than or equal to 0."),
    ("512k", "spec.template.spec.domain.resources.requests.memory '512k': must be greater than or equal to 1M."),
])
def test_memory_requests_negative_or_too_small(memory, message):
    vm = valid_vm()
    template(vm)["domain"]["resources"]["requests"]["memory"] = memory
    assert causes(vm) == [("spec.template.spec.domain.resources.requests.memory", message)]


def test_memory_requests_above_limits():
    vm = valid_vm()
    template(vm)["domain"]["resources"]["requests"]["memory"] = "1024Mi"
    template(vm)["domain"]["resources"]["limits"] = {"memory": "512Mi"}
    assert causes(vm) == [("spec.template.spec.domain.resources.requests.memory",
                           "spec.template.spec.domain.resources.requests.memory '1Gi' is greater than "
                           "spec.template.spec.domain.resources.limits.memory '512Mi'")]


def test_guest_memory_above_limit_is_checked_only_under_the_stage_rollout_strategy():
    vm = valid_vm()
    template(vm)["domain"]["memory"]["guest"] = "1Gi"
    template(vm)["domain"]["resources"] = {"limits": {"memory": "512Mi"}}
    assert admit(vm)["allowed"] is True  # LiveUpdate, KubeVirt's default, skips validateGuestMemoryLimit
    assert causes(vm, config={"vmRolloutStrategy": "Stage"}) == [(
        "spec.template.spec.domain.memory.guest",
        "spec.template.spec.domain.memory.guest '1Gi' must be equal to or less than the memory limit "
        "spec.template.spec.domain.resources.limits.memory '512Mi'")]


def test_99999999Ei_is_admitted_as_kubevirt_admits_it():
    # resource.ParseQuantity caps a binary quantity at the largest int64 (~8Ei), so every memory check
    # of KubeVirt v1.9.0's VM admitter sees a positive, large enough value: virt-api admits the VM.
    vm = valid_vm()
    template(vm)["domain"]["resources"]["requests"]["memory"] = "99999999Ei"
    template(vm)["domain"]["memory"]["guest"] = "99999999Ei"
    assert admit(vm)["allowed"] is True


def test_cpu_requests_and_limits():
    vm = valid_vm()
    template(vm)["domain"]["resources"] = {"requests": {"memory": "128Mi", "cpu": "2"}, "limits": {"cpu": "1"}}
    assert causes(vm) == [("spec.template.spec.domain.resources.requests.cpu",
                           "spec.template.spec.domain.resources.requests.cpu '2' is greater than "
                           "spec.template.spec.domain.resources.limits.cpu '1'")]
    template(vm)["domain"]["resources"] = {"requests": {"cpu": "-1"}}
    assert causes(vm) == [("spec.template.spec.domain.resources.requests.cpu",
                           "spec.template.spec.domain.resources.requests.cpu '-1': must be greater than or equal to 0.")]


def test_sockets_above_max_sockets_reported_by_both_kubevirt_checks():
    vm = valid_vm()
    template(vm)["domain"]["cpu"] = {"sockets": 4, "maxSockets": 2, "cores": 1, "threads": 1}
    message = "Number of sockets in CPU topology is greater than the maximum sockets allowed"
    # validateCPUHotplug (the VMI spec) and validateLiveUpdateCPU (the VM, LiveUpdate rollout)
    assert causes(vm) == [("spec.template.spec.domain.cpu.sockets", message)] * 2
    assert causes(vm, config={"vmRolloutStrategy": "Stage"}) == [("spec.template.spec.domain.cpu.sockets", message)]


def test_negative_cpu_topology_fails_to_unmarshal_with_a_400():
    vm = valid_vm()
    template(vm)["domain"]["cpu"] = {"sockets": 1, "cores": -1}
    response = admit(vm)
    assert response == {"allowed": False, "status": {"code": 400, "message": (
        "json: cannot unmarshal number -1 into Go struct field CPU.spec.template.spec.domain.cpu.cores "
        "of type uint32")}}


@pytest.mark.parametrize("strategy", ["Always", "RerunOnFailure", "Manual", "Halted", "Once"])
def test_valid_run_strategies(strategy):
    assert admit(valid_vm(runStrategy=strategy))["allowed"] is True


def test_run_strategy_rules():
    assert causes(valid_vm(runStrategy="Sometimes")) == [("spec.runStrategy", "Invalid RunStrategy (Sometimes)")]
    assert causes(valid_vm(running=True)) == [
        ("spec.running", "Running and RunStrategy are mutually exclusive. Note that Running is deprecated, "
                         "please use RunStrategy instead")]
    vm = valid_vm()
    vm["spec"].pop("runStrategy")
    assert causes(vm) == [("spec.running", "RunStrategy must be specified")]
    assert causes(valid_vm(runStrategy="WaitAsReceiver")) == [
        ("spec.runStrategy", "Invalid RunStrategy (WaitAsReceiver), DecentralizedLiveMigration feature gate is not "
                             "enabled in kubevirt resource")]
    gate = {"developerConfiguration": {"featureGates": ["DecentralizedLiveMigration"]}}
    assert admit(valid_vm(runStrategy="WaitAsReceiver"), config=gate)["allowed"] is True


def test_running_alone_is_admitted_with_kubevirts_deprecation_warning():
    vm = valid_vm(running=False)
    vm["spec"].pop("runStrategy")
    assert admit(vm) == {"allowed": True,
                         "warnings": ["spec.running is deprecated, please use spec.runStrategy instead."]}


def test_data_volume_template_must_be_referenced_and_have_a_source():
    vm = valid_vm()
    template(vm)["volumes"][1]["dataVolume"]["name"] = "other"
    assert causes(vm) == [("spec.dataVolumeTemplate[0]",
                           "DataVolumeTemplate entry spec.dataVolumeTemplate[0] must be referenced in the VMI "
                           "template's 'volumes' list")]
    vm = valid_vm()
    vm["spec"]["dataVolumeTemplates"][0]["spec"].pop("source")
    assert causes(vm) == [("spec.dataVolumeTemplate[0].source.sourceRef",
                           "Data volume should have either Source, SourceRef, or be externally populated")]


def test_missing_template():
    vm = valid_vm()
    vm["spec"].pop("template")
    assert causes(vm) == [("spec.template", "missing virtual machine template.")]


def test_a_vm_being_deleted_is_admitted():
    vm = valid_vm(runStrategy="Sometimes")
    vm["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert admit(vm) == {"allowed": True}


def test_at_most_ten_causes_in_the_message():
    vm = valid_vm()
    template(vm)["domain"]["devices"]["disks"] += [{"name": f"x{i}", "disk": {}} for i in range(12)]
    response = admit(vm)
    assert len(response["status"]["details"]["causes"]) == 10
    assert response["status"]["message"].endswith(", and 2 more validation errors")


def vmi_request(spec):
    return {"uid": "u-2", "operation": "CREATE", "object": {"metadata": {"name": "vm"}, "spec": spec},
            "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachineinstances"}}


def test_vmi_create_admits_the_template_of_a_valid_vm():
    assert admission.admit_vmi_create(vmi_request(copy.deepcopy(template(valid_vm()))), {}) == {"allowed": True}


def test_vmi_create_requires_memory():
    spec = copy.deepcopy(template(valid_vm()))
    spec["domain"].pop("memory")
    spec["domain"].pop("resources")
    response = admission.admit_vmi_create(vmi_request(spec), {})
    assert response["status"]["details"]["causes"] == [{
        "reason": "FieldValueRequired",
        "message": "no memory requested, at least one of 'spec.domain.memory.guest', "
                   "'spec.domain.memory.hugepages.pageSize' or 'spec.domain.resources.requests.memory' must be set"}]


def test_vmi_create_reports_duplicate_disks_with_vmi_paths():
    spec = copy.deepcopy(template(valid_vm()))
    spec["domain"]["devices"]["disks"][1]["name"] = "root"
    # The volume 'data' left without a disk gets a default one (util.go SetDefaultVolumeDisk), as the
    # mutating webhook gives it on a cluster, so only the duplicate is refused.
    assert [c["field"] for c in admission.admit_vmi_create(vmi_request(spec), {})["status"]["details"]["causes"]] \
        == ["spec.domain.devices.disks[1].name"]


def test_vmi_create_volume_disk_mapping():
    spec = {"domain": {"devices": {"disks": [{"name": "a"}]}}, "volumes": [{"name": "b", "emptyDisk": {}}]}
    assert admission.validate_volume_disks("spec", spec) == [
        {"reason": "FieldValueInvalid", "message": "spec.domain.volumes[0].name 'b' not found.",
         "field": "spec.domain.volumes[0].name"}]


def test_review_wraps_the_answer_with_the_request_uid():
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "abc", "operation": "CREATE", "object": valid_vm(),
                        "resource": {"group": "kubevirt.io", "version": "v1", "resource": "virtualmachines"}}}
    assert admission.review(body, admission.admit_vm, {}) == {
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": {"allowed": True, "uid": "abc"}}


# Value() and String() as k8s.io/apimachinery v0.36's resource.Quantity gives them.
@pytest.mark.parametrize("text, value, canonical", [
    ("99999999Ei", 9223372036854775807, "9223372036854775807"),
    ("1e30", 0, "1e30"),
    ("1.5", 2, "1500m"),
    ("100m", 1, "100m"),
    ("-1Gi", -1073741824, "-1Gi"),
    ("1024Mi", 1073741824, "1Gi"),
    ("0.5Gi", 536870912, "512Mi"),
    ("512k", 512000, "512k"),
    ("1536Mi", 1610612736, "1536Mi"),
    ("1000Ki", 1024000, "1000Ki"),
    ("1024", 1024, "1024"),
    ("1000M", 1000000000, "1G"),
    ("1e3", 1000, "1e3"),
    ("0", 0, "0"),
    ("2000000", 2000000, "2M"),
])
def test_quantity_value_and_canonical_form(text, value, canonical):
    parsed = Quantity(text)
    assert (parsed.value(), str(parsed)) == (value, canonical)
