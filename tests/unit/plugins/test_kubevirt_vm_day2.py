"""Day-2 planning of kubevirt_vm, pure: restart prediction, NIC and volume hotplug plans, options."""

import copy

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import disk_expand, hotplug, live_update
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import VmInputError, build_vm


def vm(tspec, conditions=None):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "web", "namespace": "vms"},
            "spec": {"runStrategy": "Always", "template": {"spec": tspec}},
            "status": {"conditions": conditions or []}}


def base_tspec(sockets=1, guest="2Gi", cores=1):
    return {"domain": {"cpu": {"sockets": sockets, "cores": cores, "maxSockets": 4},
                       "memory": {"guest": guest, "maxGuest": "8Gi"},
                       "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/x:1"}}]}


def vmi(sockets=1, guest="2Gi", at_boot="2Gi", tspec=None):
    spec = copy.deepcopy(tspec or base_tspec(sockets, guest))
    spec["domain"]["cpu"]["sockets"] = sockets
    spec["domain"]["memory"]["guest"] = guest
    return {"spec": spec, "status": {"phase": "Running", "memory": {"guestAtBoot": at_boot, "guestCurrent": guest}}}


def test_sockets_and_memory_within_the_maximums_are_live():
    before, after = vm(base_tspec()), vm(base_tspec(sockets=3, guest="4Gi"))
    assert live_update.predict_restart(before, after, vmi()) is None


@pytest.mark.parametrize("after, reason", [
    (base_tspec(cores=2), "a non-live-updatable field was changed in the template spec"),
    (base_tspec(sockets=5), "CPU sockets updated in template spec to a value higher than what's available"),
    (base_tspec(guest="1Gi"), "memory updated in template spec to a value lower than what the VM started with"),
    (base_tspec(guest="16Gi"), "memory hotplug not supported, Guest memory is greater than the configured maxGuest"),
])
def test_changes_kubevirt_cannot_apply_live_need_a_restart(after, reason):
    predicted = live_update.predict_restart(vm(base_tspec()), vm(after), vmi())
    assert predicted and predicted.startswith(reason), predicted


def kubevirt_cr(strategy=None):
    configuration = {} if strategy is None else {"vmRolloutStrategy": strategy}
    return {"spec": {"configuration": configuration}}


def test_the_rollout_strategy_is_read_as_kubevirt_does():
    # pkg/virt-config/virt-config.go IsVMRolloutStrategyLiveUpdate: unset is LiveUpdate.
    assert live_update.rollout_live_update(kubevirt_cr()) is True
    assert live_update.rollout_live_update(None) is True
    assert live_update.rollout_live_update(kubevirt_cr("LiveUpdate")) is True
    assert live_update.rollout_live_update(kubevirt_cr("Stage")) is False


@pytest.mark.parametrize("after", [base_tspec(sockets=2), base_tspec(guest="4Gi"),
                                   dict(base_tspec(), nodeSelector={"zone": "a"})])
def test_under_stage_sockets_memory_and_placement_need_a_restart(after):
    predicted = live_update.predict_restart(vm(base_tspec()), vm(after), vmi(), live_update=False)
    assert predicted == "a non-live-updatable field was changed in the template spec"
    assert live_update.predict_restart(vm(base_tspec()), vm(after), vmi()) is None


def test_under_stage_an_unchanged_vm_needs_no_restart():
    assert live_update.predict_restart(vm(base_tspec()), vm(base_tspec()), vmi(), live_update=False) is None


class _Plan(object):
    namespace, label, request = "vms", "vms/web", {"disks": []}


def claim(capacity, conditions=(), resize_status=None):
    status = {"capacity": {"storage": capacity}, "conditions": list(conditions)}
    if resize_status:
        status["allocatedResourceStatuses"] = {"storage": resize_status}
    return {"status": status}


PENDING = {"type": "FileSystemResizePending", "status": "True"}


@pytest.mark.parametrize("pvc, pending", [
    (claim("1Gi", [PENDING], "NodeResizePending"), True),
    (claim("1Gi", [PENDING]), True),
    (claim("1Gi", [], "NodeResizePending"), True),
    (claim("1Gi", [{"type": "Resizing", "status": "True"}], "ControllerResizeInProgress"), False),
    (claim("1Gi"), False),
])
def test_node_expansion_pending_is_read_from_the_claim(pvc, pending):
    assert disk_expand.node_expansion_pending(pvc) is pending


def test_a_stopped_vm_claim_is_done_once_only_node_expansion_is_left():
    expansion = disk_expand.Expansion(_Plan(), "data", "data-pvc", "2Gi")
    waiting = claim("1Gi", [PENDING], "NodeResizePending")
    assert disk_expand.expansion_done(expansion, waiting) is False  # the VM runs: its pod will mount it
    expansion.wait_node = False
    assert disk_expand.expansion_done(expansion, waiting) is True
    assert disk_expand.expansion_done(expansion, claim("1Gi", [{"type": "Resizing", "status": "True"}])) is False
    disk_expand.observe(expansion, waiting)
    assert expansion.result()["pending_node_expansion"] is True and expansion.result()["capacity"] == "1Gi"
    disk_expand.observe(expansion, claim("2Gi"))
    assert expansion.result()["pending_node_expansion"] is False and expansion.result()["capacity"] == "2Gi"


def test_fewer_sockets_need_a_restart():
    assert live_update.predict_restart(vm(base_tspec(sockets=2)), vm(base_tspec(sockets=1)), vmi(sockets=2)) == \
        "Reduction of CPU socket count requires a restart"


def test_a_pending_restart_stays_and_a_stopped_vm_needs_none():
    pending = vm(base_tspec(), [{"type": "RestartRequired", "status": "True", "message": "earlier change"}])
    assert live_update.predict_restart(pending, vm(base_tspec()), vmi()) == "earlier change"
    assert live_update.predict_restart(vm(base_tspec()), vm(base_tspec(cores=4)), None) is None


def test_hotplug_volumes_and_bridge_nics_are_live():
    after = base_tspec()
    after["volumes"].append({"name": "data", "persistentVolumeClaim": {"claimName": "data", "hotpluggable": True}})
    after["domain"]["devices"]["disks"].append({"name": "data", "disk": {"bus": "scsi"}})
    after["domain"]["devices"]["interfaces"].append({"name": "blue", "bridge": {}})
    after["networks"].append({"name": "blue", "multus": {"networkName": "blue"}})
    assert live_update.predict_restart(vm(base_tspec()), vm(after), vmi()) is None
    removed_plain = base_tspec()
    removed_plain["volumes"] = []
    removed_plain["domain"]["devices"]["disks"] = []
    assert live_update.predict_restart(vm(base_tspec()), vm(removed_plain), vmi()) is not None


def test_memory_hotplug_rules_follow_kubevirt():
    assert live_update.memory_hotplug_problem({"domain": {"memory": {"guest": "512Mi"}}}, "2Gi") == \
        "Memory hotplug is only available for VMs with at least 1Gi of guest memory"
    assert live_update.memory_hotplug_problem({"domain": {"memory": {"guest": "1025Mi"}}}, "2Gi") == \
        "Guest memory must be 2Mi aligned"
    assert live_update.memory_hotplug_problem({"domain": {"memory": {"guest": "2Gi"}}}, "4Gi") is None


def params(**extra):
    return dict({"name": "web", "namespace": "vms", "memory": "2Gi"}, **extra)


@pytest.mark.parametrize("extra, option, text", [
    ({"cpu": {"sockets": 5, "max_sockets": 4}}, "cpu.sockets", "5 is above cpu.max_sockets 4"),
    ({"memory": "8Gi", "memory_max": "4Gi"}, "memory", "8Gi is above memory_max 4Gi"),
    ({"memory": "512Mi", "memory_max": "4Gi"}, "memory", "below 1Gi"),
    ({"disks": [{"name": "d", "pvc": "d", "hotplug": True, "bus": "sata"}]}, "disks[d].bus", "cannot be hotplugged"),
    ({"disks": [{"name": "d", "container_disk": "quay.io/x:1", "hotplug": True}]}, "disks[d].hotplug",
     "needs a pvc or data_volume"),
    ({"disks": [{"name": "d", "container_disk": "quay.io/x:1", "size": "2Gi"}]}, "disks[d].size", "pvc disk"),
    ({"nics": [{"name": "default", "state": "absent"}]}, "nics[default].state", "bridge interface on a Multus"),
])
def test_day2_options_refused_by_the_builder(extra, option, text):
    with pytest.raises(VmInputError) as err:
        build_vm(params(**extra))
    assert err.value.option == option and text in str(err.value)


def test_day2_options_build_kubevirt_fields():
    built = build_vm(params(memory_max="8Gi", cpu={"sockets": 2, "max_sockets": 8},
                            disks=[{"name": "data", "pvc": "data-pvc", "hotplug": True}],
                            nics=[{"name": "blue", "network": "blue", "state": "absent"}]))
    tspec = built["spec"]["template"]["spec"]
    assert tspec["domain"]["cpu"] == {"sockets": 2, "maxSockets": 8}
    assert tspec["domain"]["memory"] == {"guest": "2Gi", "maxGuest": "8Gi"}
    assert tspec["domain"]["devices"]["disks"] == [{"name": "data", "disk": {"bus": "scsi"}}]
    assert tspec["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data-pvc",
                                                                           "hotpluggable": True}}]
    assert tspec["domain"]["devices"]["interfaces"] == [{"name": "blue", "bridge": {}, "state": "absent"}]


def test_a_claim_attached_twice_is_refused():
    built = build_vm(params(disks=[{"name": "a", "pvc": "shared"}, {"name": "b", "pvc": "shared", "hotplug": True}]))
    with pytest.raises(VmInputError) as err:
        hotplug.check_hotplug_claims("vms/web", built)
    assert err.value.option == "disks[b]" and "'shared'" in str(err.value)


def running_vm(extra_ifaces=(), extra_nets=()):
    tspec = base_tspec()
    tspec["domain"]["devices"]["interfaces"] += list(extra_ifaces)
    tspec["networks"] += list(extra_nets)
    return vm(tspec)


BLUE_IFACE, BLUE_NET = {"name": "blue", "bridge": {}}, {"name": "blue", "multus": {"networkName": "blue"}}


def test_a_nic_left_out_of_a_running_vm_is_unplugged_with_state_absent():
    live = running_vm([BLUE_IFACE], [BLUE_NET])
    desired = running_vm()
    running = {"default": {"name": "default"}, "blue": dict(BLUE_IFACE)}
    changes = hotplug.plan_nics("vms/web", desired, live, True, running, {}, ["default"])
    assert changes.unplug == ["blue"]
    ifaces = desired["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]
    assert {"name": "blue", "bridge": {}, "state": "absent"} in ifaces
    assert BLUE_NET in desired["spec"]["template"]["spec"]["networks"]


def test_an_absent_nic_the_vm_no_longer_has_is_not_declared():
    desired = running_vm([dict(BLUE_IFACE, state="absent")], [BLUE_NET])
    changes = hotplug.plan_nics("vms/web", desired, running_vm(), True, {"default": {}}, {}, ["default", "blue"])
    assert changes.unplug == [] and changes.hotplug == []
    assert [i["name"] for i in desired["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]] == ["default"]


def test_hotplug_of_a_pod_network_or_masquerade_nic_is_refused():
    desired = running_vm([{"name": "second", "bridge": {}}], [{"name": "second", "pod": {}}])
    with pytest.raises(VmInputError) as err:
        hotplug.plan_nics("vms/web", desired, running_vm(), True, {"default": {}}, {}, ["default", "second"])
    assert err.value.option == "nics[second]" and "bridge on the pod network" in str(err.value)
    desired = running_vm([BLUE_IFACE], [BLUE_NET])
    assert hotplug.plan_nics("vms/web", desired, running_vm(), True, {"default": {}}, {}, ["blue"]).hotplug == ["blue"]


def with_volume(base, name, claim, hotpluggable=True):
    tspec = copy.deepcopy(base["spec"]["template"]["spec"])
    tspec["volumes"].append({"name": name, "persistentVolumeClaim": {"claimName": claim, "hotpluggable": hotpluggable}})
    tspec["domain"]["devices"]["disks"].append({"name": name, "disk": {"bus": "scsi"}})
    return vm(tspec)


def test_volume_hotplug_on_the_subresource_path_leaves_the_vm_to_the_requests():
    live = with_volume(vm(base_tspec()), "old", "old-pvc")
    desired = with_volume(vm(base_tspec()), "new", "new-pvc")
    changes = hotplug.plan_volumes("vms/web", desired, live, True, hotplug.SUBRESOURCE)
    assert changes.names_added == ["new"] and changes.remove == ["old"]
    names = [v["name"] for v in desired["spec"]["template"]["spec"]["volumes"]]
    assert names == ["root", "old"]  # written as it stands; addvolume/removevolume change it
    assert hotplug.add_volume_options(*changes.add[0]) == {
        "name": "new", "disk": {"name": "new", "disk": {"bus": "scsi"}},
        "volumeSource": {"persistentVolumeClaim": {"claimName": "new-pvc", "hotpluggable": True}}}


def test_volume_hotplug_on_the_declarative_path_writes_the_vm():
    desired = with_volume(vm(base_tspec()), "new", "new-pvc")
    changes = hotplug.plan_volumes("vms/web", desired, vm(base_tspec()), True, hotplug.DECLARATIVE)
    assert changes.names_added == ["new"]
    assert [v["name"] for v in desired["spec"]["template"]["spec"]["volumes"]] == ["root", "new"]


@pytest.mark.parametrize("developer, path", [
    ({"featureGates": ["HotplugVolumes"]}, hotplug.SUBRESOURCE),
    ({"featureGates": ["HotplugVolumes", "DeclarativeHotplugVolumes"]}, hotplug.SUBRESOURCE),
    ({}, hotplug.DECLARATIVE),
    ({"disabledFeatureGates": ["DeclarativeHotplugVolumes"]}, None),
])
def test_hotplug_path_follows_the_feature_gates(developer, path):
    cr = {"spec": {"configuration": {"developerConfiguration": developer}}}
    assert hotplug.hotplug_path(cr) == path
    assert hotplug.hotplug_path(None) == hotplug.SUBRESOURCE


def test_a_restart_by_state_or_option_leaves_no_restart_pending():
    from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_runner import VmPlan, vm_result

    plan = VmPlan({"name": "web", "namespace": "vms", "state": "present"})
    plan.apply = PlannedObject("vms/web", "/vms/web", {}, {"spec": {}})
    plan.apply.after = {"spec": {}}
    plan.restart_reason = "a non-live-updatable field was changed in the template spec"
    assert vm_result(plan, None, None)["restart_required"] is True
    plan.verb = "restart"
    assert vm_result(plan, None, None)["restart_required"] is False
    plan.verb, plan.restart = None, True
    result = vm_result(plan, None, None)
    assert result["restart_required"] is False and result["restarted"] is True and result["power"] == "restart"


def test_a_volume_request_already_in_flight_is_not_sent_again():
    live = vm(base_tspec())
    live["status"]["volumeRequests"] = [{"addVolumeOptions": {"name": "new", "disk": {"name": "new"},
                                                              "volumeSource": {}}}]
    desired = with_volume(vm(base_tspec()), "new", "new-pvc")
    changes = hotplug.plan_volumes("vms/web", desired, live, True, hotplug.SUBRESOURCE)
    assert changes.add == [] and changes.in_flight == ["new"]
    assert [v["name"] for v in desired["spec"]["template"]["spec"]["volumes"]] == ["root"]
