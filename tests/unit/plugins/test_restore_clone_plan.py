"""kubevirt_vm_restore's and kubevirt_vm_clone's decisions without a cluster: requests, names, preflight,
the objects they create and their results."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import clone_plan, restore_plan

RESTORE_PARAMS = dict(namespace="vms", vm=None, snapshot=None, target=None, restores=None, stop_vm=False,
                      restore_id=None, volume_restore_policy=None)
CLONE_PARAMS = dict(namespace="vms", target=None, source_vm=None, source_snapshot=None, clones=None,
                    label_filters=None, annotation_filters=None, template_label_filters=None,
                    template_annotation_filters=None, new_mac_addresses=None, new_smbios_serial=None, start=False)


def snapshot(ready=True, phase="Succeeded", source_uid="uid-vm", content="content-1"):
    return {"metadata": {"name": "snap"}, "status": {"readyToUse": ready, "phase": phase, "sourceUID": source_uid,
                                                     "virtualMachineSnapshotContentName": content}}


def vm(name="vm", uid="uid-vm", **status):
    return {"metadata": {"name": name, "uid": uid}, "spec": {"runStrategy": "Halted"}, "status": status}


def restore_request(**overrides):
    (request,) = restore_plan.parse_requests(dict(RESTORE_PARAMS, vm="vm", snapshot="snap", **overrides))
    request.snapshot, request.content = snapshot(), {"spec": {}}
    request.target_vm = vm() if request.target == "vm" else None
    return request


def test_restore_names_are_deterministic_and_bounded():
    assert restore_plan.restore_name("db", "nightly") == "db-nightly"
    assert restore_plan.restore_name("db", "nightly", "t-42") == "db-nightly-t-42"
    long = restore_plan.restore_name("a" * 200, "b" * 100)
    assert len(long) == 253 and long != restore_plan.restore_name("a" * 200, "b" * 99 + "c")


def test_restore_items_are_validated_and_named_by_their_vm():
    with pytest.raises(ModuleFailure) as err:
        restore_plan.parse_requests(dict(RESTORE_PARAMS, restores=[{"vm": "db", "snapshot": "s", "stop_vm": "x"}]))
    assert str(err.value).startswith("invalid input, nothing was changed: restores[0] (db): argument 'stop_vm'")
    with pytest.raises(ModuleFailure) as err:
        restore_plan.parse_requests(dict(RESTORE_PARAMS, vm="db"))
    assert "snapshot: required unless restores is given" in str(err.value)
    with pytest.raises(ModuleFailure) as err:
        restore_plan.parse_requests(dict(RESTORE_PARAMS, namespace=None, vm="db", snapshot="s"))
    assert "VM ?/db: namespace: required" in str(err.value)


def test_restore_preflight_refuses_what_kubevirt_would_fail_later():
    request = restore_request()
    assert restore_plan.preflight(request, []) == [] and request.action == "created"

    request = restore_request()
    request.snapshot = snapshot(ready=False, phase="InProgress")
    assert restore_plan.preflight(request, []) == [
        "VM vms/vm: snapshot: VirtualMachineSnapshot snap is not ready to use (phase InProgress)"]

    request = restore_request(target="other")
    request.target_vm = vm("other", uid="uid-other")
    assert "not the source of snapshot snap" in restore_plan.preflight(request, [])[0]

    request = restore_request()
    request.target_vmi = {"status": {"phase": "Running"}}
    assert "stop_vm: the VM is running (its instance is Running)" in restore_plan.preflight(request, [])[0]
    request = restore_request(stop_vm=True)
    request.target_vmi = {"status": {"phase": "Running"}}
    assert restore_plan.preflight(request, []) == []
    assert restore_plan.build_restore(request)["spec"]["targetReadinessPolicy"] == "StopTarget"

    target = {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}
    busy = {"metadata": {"name": "someone-else"}, "spec": {"target": target}, "status": {"complete": False}}
    assert "VirtualMachineRestore someone-else of it is in progress" in restore_plan.preflight(restore_request(), [busy])[0]


def test_a_failed_restore_of_the_target_is_named_with_what_to_do():
    """KubeVirt's restore admitter counts every restore of the target whose status.complete is not true, a failed
    one included (vmrestore.go Admit): a retry is refused until the failed restore is deleted."""
    target = {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}
    failed = {"metadata": {"name": "vm-snap-old"}, "spec": {"target": target},
              "status": {"complete": False, "conditions": [
                  {"type": "Failure", "status": "True", "reason": "Restore target VMI must be powered off"}]}}
    request = restore_request(restore_id="retry")
    assert restore_plan.preflight(request, [failed]) == [
        "VM vms/vm: target: VirtualMachineRestore vm-snap-old of it failed (Restore target VMI must be powered off); "
        "KubeVirt refuses any new restore of the VM while a failed one exists - delete VirtualMachineRestore "
        "vms/vm-snap-old, then run again"]
    # a complete restore of the target, or a failed one of another VM, is no obstacle
    other = dict(failed, spec={"target": dict(target, name="other")})
    done = dict(failed, status={"complete": True})
    assert restore_plan.preflight(restore_request(restore_id="retry"), [other, done]) == []


def test_a_restore_of_the_same_name_is_unchanged_when_complete_and_followed_when_not():
    mine = {"metadata": {"name": "vm-snap"}, "spec": {"target": {"name": "vm"}, "virtualMachineSnapshotName": "snap"},
            "status": {"complete": True}}
    request = restore_request()
    assert restore_plan.preflight(request, [mine]) == [] and request.action == "unchanged"
    mine["status"] = {"complete": False}
    request = restore_request()
    assert restore_plan.preflight(request, [mine]) == [] and request.action == "adopted"
    mine["status"] = {"complete": False, "conditions": [{"type": "Failure", "status": "True", "reason": "boom"}]}
    assert restore_plan.preflight(restore_request(), [mine]) == [
        "VM vms/vm: target: VirtualMachineRestore vm-snap of it failed (boom); KubeVirt refuses any new restore of the "
        "VM while a failed one exists - delete VirtualMachineRestore vms/vm-snap, then run again"]


def test_restore_result_reports_volumes_and_failure():
    request = restore_request()
    request.action = "created"
    request.final = {"status": {"complete": True, "restoreTime": "t", "deletedDataVolumes": ["vm-root"],
                                "restores": [{"volumeName": "root", "persistentVolumeClaim": "restore-x-root",
                                              "dataVolumeName": "restore-x-root", "volumeSnapshotName": "vs"}]}}
    result = restore_plan.restore_result(request)
    assert result["volumes"] == [{"volume": "root", "claim": "restore-x-root", "data_volume": "restore-x-root",
                                  "volume_snapshot": "vs"}]
    assert result["deleted_data_volumes"] == ["vm-root"] and result["failure"] is None and result["new_vm"] is False


def clone_request(**overrides):
    (request,) = clone_plan.parse_requests(dict(CLONE_PARAMS, **overrides))
    return request


def test_clone_macs_are_sent_in_hyphen_form():
    assert clone_plan.hyphen_mac("02:16:3E:00:00:02") == "02-16-3e-00-00-02"
    assert clone_plan.hyphen_mac("0216.3e00.0002") == "02-16-3e-00-00-02"
    request = clone_request(source_vm="vm", target="copy", new_mac_addresses={"default": "02:16:3e:00:00:02"},
                            label_filters=["app"])
    spec = clone_plan.build_clone(request)["spec"]
    assert spec["newMacAddresses"] == {"default": "02-16-3e-00-00-02"}
    assert spec["labelFilters"] == ["app"] and "annotationFilters" not in spec
    assert spec["source"] == {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}


def test_clone_input_errors_name_the_item_and_option():
    cases = [
        (dict(source_vm="vm", source_snapshot="s", target="t"), "VM t: source_vm: give exactly one of"),
        (dict(source_vm="vm", target="vm"), "VM vm: target: must differ from source_vm"),
        (dict(source_vm="vm", target="t", new_mac_addresses={"eth0": "02:00"}),
         "VM t: new_mac_addresses.eth0: '02:00' is not a MAC address"),
        (dict(clones=[{"target": "a", "source_vm": "vm", "start": "perhaps"}]), "clones[0] (a): argument 'start'"),
    ]
    for params, message in cases:
        with pytest.raises(ModuleFailure) as err:
            clone_plan.parse_requests(dict(CLONE_PARAMS, **params))
        assert message in str(err.value), params


def test_clone_preflight():
    source = {"metadata": {"name": "vm"}, "spec": {"template": {"spec": {
        "domain": {"devices": {"interfaces": [{"name": "default"}]}},
        "volumes": [{"name": "root", "dataVolume": {"name": "vm-root"}}]}}},
        "status": {"volumeSnapshotStatuses": [{"name": "root", "enabled": False,
                                               "reason": "no VolumeSnapshotClass"}]}}
    request = clone_request(source_vm="vm", target="copy", new_mac_addresses={"eth1": "02:00:00:00:00:01"})
    request.source = source
    problems = clone_plan.preflight(request, None, {})
    assert problems == [
        "VM vms/copy: source_vm: VirtualMachine vm: volume root cannot be snapshotted (no VolumeSnapshotClass), so "
        "KubeVirt cannot clone it",
        "VM vms/copy: new_mac_addresses.eth1: the source has no interface eth1 (it has default)"]
    done = {"metadata": {"name": "copy"}, "spec": {"source": {"kind": "VirtualMachine", "name": "vm"}},
            "status": {"phase": "Succeeded"}}
    request = clone_request(source_vm="vm", target="copy", start=True)
    request.target_vm = {"spec": {"runStrategy": "Halted"}}
    assert clone_plan.preflight(request, None, {"copy": done}) == [] and request.action == "unchanged"
    assert clone_plan.needs_start(request.target_vm)
    assert clone_plan.start_patch(request.target_vm) == {"spec": {"runStrategy": "Always"}}
    assert clone_plan.start_patch({"spec": {"running": False}}) == {"spec": {"running": True}}


def test_a_new_serial_needs_a_firmware_section_in_the_source():
    source = {"metadata": {"name": "vm"}, "spec": {"template": {"spec": {"domain": {"devices": {}}}}}}
    request = clone_request(source_vm="vm", target="copy", new_smbios_serial="s-1")
    request.source = source
    assert clone_plan.preflight(request, None, {}) == [
        "VM vms/copy: new_smbios_serial: the source has no firmware section, where KubeVirt would set the serial "
        "(it would be ignored)"]
    source["spec"]["template"]["spec"]["domain"]["firmware"] = {"serial": "old"}
    assert clone_plan.preflight(request, None, {}) == []
    assert clone_plan.build_clone(request)["spec"]["newSMBiosSerial"] == "s-1"
