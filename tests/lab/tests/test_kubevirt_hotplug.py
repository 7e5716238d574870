"""Volume hotplug, NIC hotplug, CPU/memory live update and RestartRequired on the lab's KubeVirt stand-in,
as KubeVirt v1.9.0 does them with the VMO feature gates (HotplugVolumes listed: the VM-level request goes
through status.volumeRequests) and vmRolloutStrategy LiveUpdate."""

import copy
import time

import pytest

from tests.lab import bootstrap
from tests.lab.kube import KubeError, object_path

from .helpers import subresource_path, vm_manifest, vm_path, vmi_path

KUBEVIRT = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", bootstrap.KUBEVIRT_NAMESPACE)
NON_LIVE = "a non-live-updatable field was changed in the template spec"


def pvc_path(namespace, name=""):
    return object_path("v1", "persistentvolumeclaims", name, namespace)


def make_pvc(admin, wait, namespace, name, storage_class="lab-rwo", modes=("ReadWriteOnce",), bound=True):
    admin.create(pvc_path(namespace), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": list(modes), "resources": {"requests": {"storage": "1Gi"}},
                 "storageClassName": storage_class}})
    if bound:
        return wait.until(pvc_path(namespace, name), lambda p: p and p["status"].get("phase") == "Bound",
                          what=f"PVC {name} Bound")
    return None


def put(client, namespace, plural, name, verb, body):
    return client.request("PUT", subresource_path(namespace, plural, name, verb), body, expect_json=False)


def add_options(name, claim, bus="scsi", **extra):
    return {"name": name, "disk": {"disk": {"bus": bus}},
            "volumeSource": {"persistentVolumeClaim": {"claimName": claim}}, **extra}


def refused(call, *args):
    with pytest.raises(KubeError) as err:
        call(*args)
    return err.value


def running_vm(admin, wait, namespace, name, memory="128Mi", cpu=None, **spec_extra):
    manifest = vm_manifest(name, namespace, memory=memory)
    domain = manifest["spec"]["template"]["spec"]["domain"]
    if cpu:
        domain["cpu"] = cpu
    manifest["spec"]["template"]["spec"].update(spec_extra)
    admin.create(vm_path(namespace), manifest)
    wait.printable(namespace, name, "Running")
    return wait.until(vmi_path(namespace, name),
                      lambda vmi: vmi and vmi.get("status", {}).get("virtualMachineRevisionName")
                      and vmi["status"].get("phase") == "Running", what="VMI started with its revision")


def volume_status(vmi, name):
    return next((s for s in (vmi or {}).get("status", {}).get("volumeStatus") or [] if s["name"] == name), None)


def wait_volume(wait, namespace, vm, volume, predicate, what, seen=None):
    def check(vmi):
        status = volume_status(vmi, volume)
        if seen is not None and status is not None:
            if not seen or seen[-1] != status.get("phase"):
                seen.append(status.get("phase"))
        return predicate(status)
    return volume_status(wait.until(vmi_path(namespace, vm), check, what=what), volume)


def condition(obj, kind):
    return next((c for c in (obj or {}).get("status", {}).get("conditions") or [] if c["type"] == kind), None)


def patch_template(admin, namespace, name, mutate):
    """Read-modify-write of the VM template spec (PUT with the resourceVersion, retried on conflict)."""
    for _attempt in range(20):
        vm = admin.get(vm_path(namespace, name))
        mutate(vm["spec"]["template"]["spec"])
        try:
            return admin.request("PUT", vm_path(namespace, name), vm)
        except KubeError as err:
            if err.status != 409:
                raise
    raise AssertionError("VM kept changing")


# -- virt-api: the subresources ------------------------------------------------------------------


def test_discovery_lists_the_volume_subresources(admin):
    listing = admin.get("/apis/subresources.kubevirt.io/v1")
    names = {r["name"] for r in listing["resources"]}
    assert {"virtualmachines/addvolume", "virtualmachines/removevolume", "virtualmachineinstances/addvolume",
            "virtualmachineinstances/removevolume"} <= names


def test_addvolume_requests_are_checked_as_virt_api_does(admin, namespace, wait):
    running_vm(admin, wait, namespace, "checked")
    make_pvc(admin, wait, namespace, "data")
    vm = "checked"
    for body, message in [
            ({}, "AddVolumeOptions requires name to be set"),
            ({"name": "d"}, "AddVolumeOptions requires disk to not be nil"),
            ({"name": "d", "disk": {}}, "AddVolumeOptions requires VolumeSource to not be nil")]:
        err = refused(put, admin, namespace, "virtualmachines", vm, "addvolume", body)
        assert err.status == 400 and err.body["message"] == message
    err = refused(put, admin, namespace, "virtualmachines", vm, "removevolume", {})
    assert err.status == 400 and err.body["message"] == "RemoveVolumeOptions requires name to be set"
    err = refused(put, admin, namespace, "virtualmachines", "ghost", "addvolume", add_options("d", "data"))
    assert err.status == 404 and err.body["message"] == 'virtualmachine.kubevirt.io "ghost" not found'
    err = refused(put, admin, namespace, "virtualmachines", vm, "removevolume", {"name": "nothing"})
    assert err.status == 409
    assert err.body["message"] == ('Operation cannot be fulfilled on virtualmachine.kubevirt.io "checked": '
                                   'Unable to remove volume [nothing] because it does not exist')
    # The VM status webhook refuses a disk bus hotplug cannot use.
    err = refused(put, admin, namespace, "virtualmachines", vm, "addvolume", add_options("d", "data", bus="sata"))
    assert err.status == 422
    assert err.body["message"] == ('admission webhook "kubevirt-crd-status-validator.kubevirt.io" denied the request: '
                                   "AddVolume request for disk [d] requires bus to be 'scsi' or 'virtio'. "
                                   "[sata] is not permitted.")
    # A dry run answers 202 and changes nothing.
    before = admin.get(vm_path(namespace, vm))
    assert put(admin, namespace, "virtualmachines", vm, "addvolume",
               add_options("d", "data", dryRun=["All"])).status_code == 202
    after = admin.get(vm_path(namespace, vm))
    # The controller may still be writing the VM's status (conditions); the request itself left nothing.
    assert after["spec"] == before["spec"] and after["metadata"]["generation"] == before["metadata"]["generation"]
    assert not after["status"].get("volumeRequests")


ROOTDISK = {"name": "rootdisk", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}


def test_vm_addvolume_hotplugs_a_pvc_into_the_template_and_the_running_vmi(admin, namespace, wait):
    manifest = vm_manifest("hot", namespace)
    manifest["spec"]["template"]["spec"]["volumes"] = [ROOTDISK]
    manifest["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "rootdisk", "disk": {"bus": "virtio"}}]
    admin.create(vm_path(namespace), manifest)
    wait.until(vmi_path(namespace, "hot"), lambda vmi: vmi and vmi.get("status", {}).get("virtualMachineRevisionName")
               and vmi["status"].get("phase") == "Running", what="VMI started with its revision")
    make_pvc(admin, wait, namespace, "data", storage_class="lab-rwx", modes=("ReadWriteMany",))
    assert put(admin, namespace, "virtualmachines", "hot", "addvolume", add_options("data", "data")).status_code == 202
    seen = []
    ready = wait_volume(wait, namespace, "hot", "data", lambda s: s and s.get("phase") == "Ready",
                        "hotplugged volume Ready", seen)
    # virt-controller (attachment pod), virt-handler (mounted, then attached to the domain)
    assert seen[-3:] == ["AttachedToNode", "MountedToPod", "Ready"]
    assert ready["reason"] == "VolumeReady"
    assert ready["message"] == "Successfully attach hotplugged volume data to VM"
    assert ready["target"] == "sda"
    assert ready["hotplugVolume"]["attachPodName"].startswith("hp-volume-") and ready["hotplugVolume"]["attachPodUID"]
    info = ready["persistentVolumeClaimInfo"]
    assert info["claimName"] == "data" and info["accessModes"] == ["ReadWriteMany"]
    assert info["capacity"]["storage"] == "1Gi" and info["requests"]["storage"] == "1Gi"
    vm = wait.until(vm_path(namespace, "hot"), lambda v: not v["status"].get("volumeRequests"),
                    what="volume request trimmed")
    spec = vm["spec"]["template"]["spec"]
    assert {"name": "data", "persistentVolumeClaim": {"claimName": "data", "hotpluggable": True}} in spec["volumes"]
    assert {"name": "data", "disk": {"bus": "scsi"}} in spec["domain"]["devices"]["disks"]
    assert condition(vm, "RestartRequired") is None
    # Adding the same volume again is a conflict.
    err = refused(put, admin, namespace, "virtualmachines", "hot", "addvolume", add_options("data", "data"))
    assert err.status == 409 and err.body["message"].endswith(
        "Unable to add volume [data] because volume with that name already exists")
    # ... and so is a volume of the template that is not hotpluggable.
    err = refused(put, admin, namespace, "virtualmachines", "hot", "removevolume", {"name": "rootdisk"})
    assert err.status == 409 and err.body["message"].endswith(
        "Unable to remove volume [rootdisk] because it is not hotpluggable")
    assert volume_status(admin.get(vmi_path(namespace, "hot")), "rootdisk") == {"name": "rootdisk", "target": "vda"}

    assert put(admin, namespace, "virtualmachines", "hot", "removevolume", {"name": "data"}).status_code == 202
    seen = []
    wait_volume(wait, namespace, "hot", "data", lambda s: s is None, "unplugged volume gone", seen)
    assert "UnMountedFromPod" in seen and "Detaching" in seen
    vm = wait.until(vm_path(namespace, "hot"), lambda v: not v["status"].get("volumeRequests"), what="request trimmed")
    assert all(v["name"] != "data" for v in vm["spec"]["template"]["spec"].get("volumes") or [])
    vmi = admin.get(vmi_path(namespace, "hot"))
    assert all(v["name"] != "data" for v in vmi["spec"].get("volumes") or [])


def test_a_volume_whose_pvc_is_missing_stays_pending_until_it_binds(admin, namespace, wait):
    running_vm(admin, wait, namespace, "waiting")
    assert put(admin, namespace, "virtualmachines", "waiting", "addvolume", add_options("late", "late")).status_code == 202
    pending = wait_volume(wait, namespace, "waiting", "late", lambda s: s and s.get("phase") == "Pending",
                          "volume Pending")
    assert pending["reason"] == "FailedPvcNotFound" and pending["message"] == "PVC late not found"
    make_pvc(admin, wait, namespace, "late", bound=False)
    ready = wait_volume(wait, namespace, "waiting", "late", lambda s: s and s.get("phase") == "Ready", "volume Ready")
    assert ready["persistentVolumeClaimInfo"]["capacity"]["storage"] == "1Gi"


def test_vmi_addvolume_is_ephemeral(admin, namespace, wait):
    running_vm(admin, wait, namespace, "eph")
    make_pvc(admin, wait, namespace, "scratch")
    # HotplugVolumes (listed by VMO) allows it on a VMI a VM owns; the VM template is left alone.
    assert put(admin, namespace, "virtualmachineinstances", "eph", "addvolume",
               add_options("scratch", "scratch")).status_code == 202
    wait_volume(wait, namespace, "eph", "scratch", lambda s: s and s.get("phase") == "Ready", "volume Ready")
    vm = admin.get(vm_path(namespace, "eph"))
    assert all(v["name"] != "scratch" for v in vm["spec"]["template"]["spec"].get("volumes") or [])
    assert put(admin, namespace, "virtualmachineinstances", "eph", "removevolume", {"name": "scratch"}).status_code == 202
    wait_volume(wait, namespace, "eph", "scratch", lambda s: s is None, "volume unplugged")
    err = refused(put, admin, namespace, "virtualmachineinstances", "nothere", "addvolume",
                  add_options("scratch", "scratch"))
    assert err.status == 404 and err.body["message"] == 'virtualmachineinstance.kubevirt.io "nothere" not found'


def test_a_datavolume_is_hotplugged_once_cdi_has_imported_it(admin, namespace, wait):
    running_vm(admin, wait, namespace, "dvhot")
    admin.create(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", namespace=namespace), {
        "apiVersion": "cdi.kubevirt.io/v1beta1", "kind": "DataVolume", "metadata": {"name": "blank"},
        "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}})
    options = {"name": "blank", "disk": {"disk": {"bus": "scsi"}}, "volumeSource": {"dataVolume": {"name": "blank"}}}
    assert put(admin, namespace, "virtualmachines", "dvhot", "addvolume", options).status_code == 202
    ready = wait_volume(wait, namespace, "dvhot", "blank", lambda s: s and s.get("phase") == "Ready", "DV volume Ready")
    assert ready["persistentVolumeClaimInfo"]["claimName"] == "blank"
    dv = admin.get(object_path("cdi.kubevirt.io/v1beta1", "datavolumes", "blank", namespace))
    assert dv["status"]["phase"] == "Succeeded"
    vm = wait.until(vm_path(namespace, "dvhot"), lambda v: not v["status"].get("volumeRequests"), what="request trimmed")
    assert {"name": "blank", "dataVolume": {"name": "blank", "hotpluggable": True}} in \
        vm["spec"]["template"]["spec"]["volumes"]


def test_addvolume_on_a_stopped_vm_goes_into_the_template(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("cold", namespace, run_strategy="Halted"))
    wait.printable(namespace, "cold", "Stopped")
    assert put(admin, namespace, "virtualmachines", "cold", "addvolume", add_options("extra", "extra")).status_code == 202
    vm = wait.until(vm_path(namespace, "cold"), lambda v: not v["status"].get("volumeRequests")
                    and any(x["name"] == "extra" for x in v["spec"]["template"]["spec"].get("volumes") or []),
                    what="request applied to the template")
    assert {"name": "extra", "disk": {"bus": "scsi"}} in vm["spec"]["template"]["spec"]["domain"]["devices"]["disks"]
    # The volume is part of the VM from its next start on (the claim does not exist: the start waits on it in
    # KubeVirt; the lab only shows the VMI's volume as not found).
    assert put(admin, namespace, "virtualmachines", "cold", "removevolume", {"name": "extra"}).status_code == 202
    wait.until(vm_path(namespace, "cold"), lambda v: not v["status"].get("volumeRequests")
               and not v["spec"]["template"]["spec"].get("volumes"), what="volume removed from the template")


def _set_gates(admin, gates):
    admin.merge_patch(KUBEVIRT, {"spec": {"configuration": {"developerConfiguration": {"featureGates": gates}}}})


def test_without_hotplugvolumes_the_declarative_path_is_taken(admin, namespace, wait):
    running_vm(admin, wait, namespace, "decl")
    make_pvc(admin, wait, namespace, "d1")
    make_pvc(admin, wait, namespace, "d2")
    gates = [g for g in bootstrap.VMO_FEATURE_GATES if g != "HotplugVolumes"]
    _set_gates(admin, gates)
    try:
        # A VMI a VM owns takes no direct requests once HotplugVolumes is off (volumes.go vmiVolumePatch).
        deadline = time.monotonic() + 30
        while True:
            try:
                put(admin, namespace, "virtualmachineinstances", "decl", "addvolume",
                    add_options("d1", "d1", dryRun=["All"]))
            except KubeError as err:
                assert err.status == 400 and err.body["message"] == f"VMI {namespace}/decl is owned by a VM"
                break
            assert time.monotonic() < deadline, "virt-api never saw the feature gate change"
        # The VM request goes straight into the template, the controller syncs it to the VMI.
        assert put(admin, namespace, "virtualmachines", "decl", "addvolume", add_options("d1", "d1")).status_code == 202
        vm = admin.get(vm_path(namespace, "decl"))
        assert not vm["status"].get("volumeRequests")
        assert {"name": "d1", "persistentVolumeClaim": {"claimName": "d1", "hotpluggable": True}} in \
            vm["spec"]["template"]["spec"]["volumes"]
        wait_volume(wait, namespace, "decl", "d1", lambda s: s and s.get("phase") == "Ready", "d1 Ready")
        # Editing the template is the declarative way: add d2, drop d1.

        def edit(spec):
            spec["volumes"] = [v for v in spec["volumes"] if v["name"] != "d1"] + [
                {"name": "d2", "persistentVolumeClaim": {"claimName": "d2", "hotpluggable": True}}]
            spec["domain"]["devices"]["disks"] = [d for d in spec["domain"]["devices"]["disks"] if d["name"] != "d1"] + [
                {"name": "d2", "disk": {"bus": "scsi"}}]
        patch_template(admin, namespace, "decl", edit)
        wait_volume(wait, namespace, "decl", "d2", lambda s: s and s.get("phase") == "Ready", "d2 Ready")
        wait_volume(wait, namespace, "decl", "d1", lambda s: s is None, "d1 unplugged")
        assert condition(admin.get(vm_path(namespace, "decl")), "RestartRequired") is None
    finally:
        _set_gates(admin, list(bootstrap.VMO_FEATURE_GATES))


def test_an_empty_cdrom_needs_declarative_hotplug_which_is_on_unless_disabled(admin, namespace):
    manifest = vm_manifest("cd", namespace, run_strategy="Halted")
    manifest["spec"]["template"]["spec"]["domain"]["devices"]["disks"] = [{"name": "cd", "cdrom": {"bus": "sata"}}]
    # DeclarativeHotplugVolumes is Beta in v1.9: on with the VMO gates, which do not list it.
    admin.create(vm_path(namespace), copy.deepcopy(manifest), dryRun="All")
    message = "DeclarativeHotplugVolumes feature gate not enabled, cannot define an empty CD-ROM disk"
    admin.merge_patch(KUBEVIRT, {"spec": {"configuration": {"developerConfiguration": {
        "disabledFeatureGates": ["DeclarativeHotplugVolumes"]}}}})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                admin.create(vm_path(namespace), copy.deepcopy(manifest), dryRun="All")
            except KubeError as err:
                assert err.status == 422 and message in err.body["message"]
                break
            assert time.monotonic() < deadline, "virt-api never saw the disabled feature gate"
    finally:
        admin.merge_patch(KUBEVIRT, {"spec": {"configuration": {"developerConfiguration": {
            "disabledFeatureGates": None}}}})


# -- NIC hotplug ---------------------------------------------------------------------------------------


def iface_status(vmi, name):
    return next((i for i in (vmi or {}).get("status", {}).get("interfaces") or [] if i["name"] == name), None)


def test_bridge_interface_on_a_multus_network_is_hotplugged_and_unplugged(admin, namespace, wait):
    running_vm(admin, wait, namespace, "nics")
    wait.until(vmi_path(namespace, "nics"), lambda v: (condition(v, "AgentConnected") or {}).get("status") == "True",
               what="guest agent connected")

    def plug(spec):
        spec["domain"]["devices"]["interfaces"].append({"name": "blue", "bridge": {}})
        spec["networks"].append({"name": "blue", "multus": {"networkName": "blue-net"}})
    patch_template(admin, namespace, "nics", plug)
    sources = []

    def attached(vmi):
        status = iface_status(vmi, "blue")
        if status and (not sources or sources[-1] != status["infoSource"]):
            sources.append(status["infoSource"])
        return status is not None and "domain" in status["infoSource"]
    vmi = wait.until(vmi_path(namespace, "nics"), attached, what="hotplugged interface in the domain")
    assert sources == ["multus-status", "domain, guest-agent, multus-status"]
    status = iface_status(vmi, "blue")
    assert status["interfaceName"] == "eth1" and status["podInterfaceName"].startswith("pod")
    assert {"name": "blue", "bridge": {}} in vmi["spec"]["domain"]["devices"]["interfaces"]
    assert condition(admin.get(vm_path(namespace, "nics")), "RestartRequired") is None

    def unplug(spec):
        next(i for i in spec["domain"]["devices"]["interfaces"] if i["name"] == "blue")["state"] = "absent"
    patch_template(admin, namespace, "nics", unplug)
    wait.until(vmi_path(namespace, "nics"), lambda v: iface_status(v, "blue") is None
               and all(i["name"] != "blue" for i in v["spec"]["domain"]["devices"]["interfaces"]),
               what="interface unplugged from the VMI")
    # Once unplugged, the VM controller drops the absent interface and its network from the VM.
    vm = wait.until(vm_path(namespace, "nics"), lambda v: all(
        i["name"] != "blue" for i in v["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"]),
        what="absent interface cleared from the VM")
    assert all(n["name"] != "blue" for n in vm["spec"]["template"]["spec"]["networks"])
    assert condition(vm, "RestartRequired") is None


def test_interfaces_kubevirt_cannot_hotplug_or_unplug_are_refused(admin, namespace, wait):
    running_vm(admin, wait, namespace, "refuse")

    def masquerade(spec):
        spec["domain"]["devices"]["interfaces"].append({"name": "red", "masquerade": {}})
        spec["networks"].append({"name": "red", "multus": {"networkName": "red-net"}})
    err = refused(patch_template, admin, namespace, "refuse", masquerade)
    assert err.status == 422 and "Masquerade interface only implemented with pod network" in err.body["message"]

    def absent_default(spec):
        spec["domain"]["devices"]["interfaces"][0]["state"] = "absent"
    err = refused(patch_template, admin, namespace, "refuse", absent_default)
    assert err.status == 422
    assert '"default" interface\'s state "absent" is supported only for bridge binding' in err.body["message"]
    assert '"default" interface\'s state "absent" is not supported on default networks' in err.body["message"]


# -- CPU and memory live update, RestartRequired --------------------------------------------------------


def test_vmi_gets_the_hotplug_maxima_and_the_topology_status_at_start(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "defaults", memory="1Gi", cpu={"sockets": 2})
    assert vmi["spec"]["domain"]["cpu"]["maxSockets"] == 8  # sockets * maxHotplugRatio (4)
    assert vmi["spec"]["domain"]["memory"]["maxGuest"] == "4Gi"
    assert vmi["status"]["currentCPUTopology"] == {"sockets": 2}
    assert vmi["status"]["memory"] == {"guestAtBoot": "1Gi", "guestCurrent": "1Gi", "guestRequested": "1Gi"}
    revision = admin.get(object_path("apps/v1", "controllerrevisions", vmi["status"]["virtualMachineRevisionName"],
                                     namespace))
    assert revision["data"]["spec"]["template"]["spec"]["domain"]["cpu"] == {"sockets": 2}


def test_cpu_sockets_are_hotplugged_within_max_sockets(admin, namespace, wait):
    running_vm(admin, wait, namespace, "cpus", cpu={"sockets": 1, "cores": 1, "threads": 1})
    patch_template(admin, namespace, "cpus", lambda spec: spec["domain"]["cpu"].update(sockets=2))
    vmi = wait.until(vmi_path(namespace, "cpus"), lambda v: v["spec"]["domain"]["cpu"]["sockets"] == 2
                     and (condition(v, "HotVCPUChange") or v["status"]["currentCPUTopology"]["sockets"] == 2),
                     what="CPU hotplug on the VMI")
    hot = condition(vmi, "HotVCPUChange")
    assert hot is None or hot["status"] == "True"
    generation = admin.get(vm_path(namespace, "cpus"))["metadata"]["generation"]
    vm = wait.until(vm_path(namespace, "cpus"), lambda v: v["status"].get("desiredGeneration") == generation,
                    what="VM synced")
    assert condition(vm, "RestartRequired") is None
    # vm.go syncGenerationInfo: the template no longer equals the start revision, so the VMI's vm-generation
    # annotation (observedGeneration) stays where the VMI started.
    assert vm["status"]["observedGeneration"] == generation - 1


def test_the_workload_updater_migrates_a_cpu_and_memory_hotplug_to_completion(admin, namespace, wait):
    """End to end with the workload updater (LiveMigrate): the migration target applies the change
    (virt-handler migration-target.go hotplugCPU/hotplugMemory) and the conditions go."""
    running_vm(admin, wait, namespace, "grow", memory="1Gi", cpu={"sockets": 1})
    wait.until(vmi_path(namespace, "grow"), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what="LiveMigratable")

    def grow(spec):
        spec["domain"]["cpu"]["sockets"] = 2
        spec["domain"]["memory"]["guest"] = "2Gi"
    patch_template(admin, namespace, "grow", grow)
    vmi = wait.until(vmi_path(namespace, "grow"), lambda v: v["status"].get("currentCPUTopology", {}).get("sockets") == 2
                     and v["status"].get("memory", {}).get("guestRequested") == "2Gi"
                     and not condition(v, "HotVCPUChange") and not condition(v, "HotMemoryChange"),
                     timeout=90, what="hotplug applied by a migration")
    assert vmi["status"]["migrationState"]["completed"] is True
    assert vmi["spec"]["domain"]["memory"]["guest"] == "2Gi"
    assert condition(admin.get(vm_path(namespace, "grow")), "RestartRequired") is None


def test_sockets_above_max_sockets_or_fewer_sockets_need_a_restart(admin, namespace, wait):
    running_vm(admin, wait, namespace, "big", cpu={"sockets": 1})
    patch_template(admin, namespace, "big", lambda spec: spec["domain"]["cpu"].update(sockets=5))
    vm = wait.until(vm_path(namespace, "big"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    restart = condition(vm, "RestartRequired")
    assert restart["status"] == "True"
    assert restart["message"] == "CPU sockets updated in template spec to a value higher than what's available"
    assert admin.get(vmi_path(namespace, "big"))["spec"]["domain"]["cpu"]["sockets"] == 1

    running_vm(admin, wait, namespace, "small", cpu={"sockets": 2})
    patch_template(admin, namespace, "small", lambda spec: spec["domain"]["cpu"].update(sockets=1))
    vm = wait.until(vm_path(namespace, "small"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    assert condition(vm, "RestartRequired")["message"] == "Reduction of CPU socket count requires a restart"


def test_sockets_above_an_explicit_max_sockets_are_refused(admin, namespace, wait):
    running_vm(admin, wait, namespace, "capped", cpu={"sockets": 1, "maxSockets": 2})
    err = refused(patch_template, admin, namespace, "capped", lambda spec: spec["domain"]["cpu"].update(sockets=3))
    assert err.status == 422
    assert "Number of sockets in CPU topology is greater than the maximum sockets allowed" in err.body["message"]
    assert err.body["details"]["causes"][0]["field"] == "spec.template.spec.domain.cpu.sockets"


def test_a_non_live_updatable_change_needs_a_restart_which_clears_it(admin, namespace, wait):
    first = running_vm(admin, wait, namespace, "cores", cpu={"sockets": 1, "cores": 1})
    patch_template(admin, namespace, "cores", lambda spec: spec["domain"]["cpu"].update(cores=2))
    vm = wait.until(vm_path(namespace, "cores"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    restart = condition(vm, "RestartRequired")
    assert restart["status"] == "True" and restart["message"] == NON_LIVE
    assert restart.get("reason") is None
    assert admin.get(vmi_path(namespace, "cores"))["spec"]["domain"]["cpu"]["cores"] == 1
    assert put(admin, namespace, "virtualmachines", "cores", "restart", {}).status_code == 202
    vmi = wait.until(vmi_path(namespace, "cores"), lambda v: v and v["metadata"]["uid"] != first["metadata"]["uid"]
                     and v.get("status", {}).get("phase") == "Running", what="restarted VMI")
    assert vmi["spec"]["domain"]["cpu"]["cores"] == 2
    vm = wait.until(vm_path(namespace, "cores"), lambda v: condition(v, "RestartRequired") is None
                    and v["status"].get("observedGeneration") == v["metadata"]["generation"],
                    what="RestartRequired cleared")
    assert vm["status"]["desiredGeneration"] == vm["metadata"]["generation"]


def test_a_stopped_vm_keeps_its_generation_status_until_it_runs(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("idle", namespace, run_strategy="Halted"))
    vm = wait.printable(namespace, "idle", "Stopped")
    # vm.go updateStatus syncs the generations only while a VMI exists.
    assert "observedGeneration" not in vm["status"] and "desiredGeneration" not in vm["status"]
    patch_template(admin, namespace, "idle", lambda spec: spec["domain"].update(cpu={"cores": 2}))
    assert put(admin, namespace, "virtualmachines", "idle", "start", {}).status_code == 202
    vm = wait.until(vm_path(namespace, "idle"), lambda v: v["status"].get("printableStatus") == "Running"
                    and v["status"].get("observedGeneration") == v["metadata"]["generation"], what="VM running")
    assert vm["status"]["desiredGeneration"] == vm["metadata"]["generation"]


def test_guest_memory_is_hotplugged_within_max_guest(admin, namespace, wait):
    running_vm(admin, wait, namespace, "mem", memory="1Gi")
    wait.until(vmi_path(namespace, "mem"), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what="LiveMigratable")
    patch_template(admin, namespace, "mem", lambda spec: spec["domain"]["memory"].update(guest="2Gi"))
    vmi = wait.until(vmi_path(namespace, "mem"), lambda v: v["spec"]["domain"]["memory"]["guest"] == "2Gi"
                     and (condition(v, "HotMemoryChange") or v["status"]["memory"]["guestRequested"] == "2Gi"),
                     what="memory hotplug on the VMI")
    assert condition(admin.get(vm_path(namespace, "mem")), "RestartRequired") is None
    hot = condition(vmi, "HotMemoryChange")
    assert hot is None or hot["status"] == "True"


def test_guest_memory_beyond_max_guest_needs_a_restart(admin, namespace, wait):
    running_vm(admin, wait, namespace, "mem-over", memory="1Gi")
    wait.until(vmi_path(namespace, "mem-over"), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what="LiveMigratable")
    patch_template(admin, namespace, "mem-over", lambda spec: spec["domain"]["memory"].update(guest="8Gi"))
    vm = wait.until(vm_path(namespace, "mem-over"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    # vm.go handleMemoryHotplugRequest: ValidateLiveUpdateMemory against the VMI's maxGuest (4Gi) fails first
    assert condition(vm, "RestartRequired")["message"] == \
        "memory hotplug not supported, Guest memory is greater than the configured maxGuest memory"
    assert admin.get(vmi_path(namespace, "mem-over"))["spec"]["domain"]["memory"]["guest"] == "1Gi"


def test_memory_of_a_small_vm_cannot_be_hotplugged(admin, namespace, wait):
    running_vm(admin, wait, namespace, "tiny", memory="128Mi")
    vmi = admin.get(vmi_path(namespace, "tiny"))
    assert "maxGuest" not in vmi["spec"]["domain"]["memory"]  # below 1Gi: no memory hotplug
    wait.until(vmi_path(namespace, "tiny"), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what="LiveMigratable")
    patch_template(admin, namespace, "tiny", lambda spec: spec["domain"]["memory"].update(guest="256Mi"))
    vm = wait.until(vm_path(namespace, "tiny"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    assert condition(vm, "RestartRequired")["message"] == \
        "memory updated in template spec. Memory-hotplug is not available for this VM configuration"


def test_max_guest_with_a_guest_memory_hotplug_cannot_use_is_refused(admin, namespace):
    manifest = vm_manifest("unaligned", namespace, memory="1025Mi")
    manifest["spec"]["template"]["spec"]["domain"]["memory"]["maxGuest"] = "4Gi"
    err = refused(admin.create, vm_path(namespace), copy.deepcopy(manifest))
    assert err.status == 422
    assert "Guest memory must be 2Mi aligned" in err.body["message"]
    assert err.body["details"]["causes"][0]["field"] == "spec.template.spec.domain.memory.guest"


# -- vm.go sync: Failure condition, handler chaining, RestartRequired lifetime, syncConditions -------


def with_pvc_disk(manifest_spec, claim):
    manifest_spec["domain"]["devices"]["disks"] = [{"name": "data", "disk": {"bus": "virtio"}}]
    manifest_spec["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]


def test_a_cpu_change_during_a_cpu_hotplug_is_the_vms_failure_until_it_matches_again(admin, namespace, wait):
    make_pvc(admin, wait, namespace, "pinned-disk")
    manifest = vm_manifest("pinned", namespace)
    spec = manifest["spec"]["template"]["spec"]
    spec["domain"]["cpu"] = {"sockets": 1}
    with_pvc_disk(spec, "pinned-disk")
    admin.create(vm_path(namespace), manifest)
    wait.until(vmi_path(namespace, "pinned"), lambda v: v and v.get("status", {}).get("phase") == "Running"
               and (condition(v, "LiveMigratable") or {}).get("status") == "False", what="VMI running, not migratable")
    patch_template(admin, namespace, "pinned", lambda s: s["domain"]["cpu"].update(sockets=2))
    wait.until(vmi_path(namespace, "pinned"), lambda v: (condition(v, "HotVCPUChange") or {}).get("status") == "True",
               what="HotVCPUChange on the VMI")
    # vm.go syncConditions copies the VMI's conditions onto the VM
    vm = wait.until(vm_path(namespace, "pinned"), lambda v: condition(v, "HotVCPUChange"), what="HotVCPUChange on the VM")
    assert condition(vm, "HotVCPUChange")["status"] == "True"
    assert condition(vm, "LiveMigratable")["status"] == "False"
    assert condition(vm, "LiveMigratable")["reason"] == "DisksNotLiveMigratable"
    patch_template(admin, namespace, "pinned", lambda s: s["domain"]["cpu"].update(sockets=3))
    vm = wait.until(vm_path(namespace, "pinned"), lambda v: condition(v, "Failure"), what="Failure condition")
    failure = condition(vm, "Failure")
    assert failure["status"] == "True"
    assert failure["reason"] == "HotPlugCPUError"
    assert failure["message"] == "Error encountered while handling CPU change request: another CPU hotplug is in progress"
    assert admin.get(vmi_path(namespace, "pinned"))["spec"]["domain"]["cpu"]["sockets"] == 2
    patch_template(admin, namespace, "pinned", lambda s: s["domain"]["cpu"].update(sockets=2))
    wait.until(vm_path(namespace, "pinned"), lambda v: condition(v, "Failure") is None, what="Failure removed")


def test_a_cpu_change_needing_a_restart_still_lets_the_memory_change_through(admin, namespace, wait):
    running_vm(admin, wait, namespace, "both", memory="1Gi", cpu={"sockets": 1})
    wait.until(vmi_path(namespace, "both"), lambda v: (condition(v, "LiveMigratable") or {}).get("status") == "True",
               what="LiveMigratable")

    def grow(spec):
        spec["domain"]["cpu"]["sockets"] = 5  # above maxSockets 4
        spec["domain"]["memory"]["guest"] = "2Gi"
    patch_template(admin, namespace, "both", grow)
    vm = wait.until(vm_path(namespace, "both"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    assert condition(vm, "RestartRequired")["message"] == \
        "CPU sockets updated in template spec to a value higher than what's available"
    vmi = wait.until(vmi_path(namespace, "both"), lambda v: v["spec"]["domain"]["memory"]["guest"] == "2Gi",
                     what="memory hotplugged on the VMI")
    assert vmi["spec"]["domain"]["cpu"]["sockets"] == 1


def test_restart_required_keeps_its_first_message(admin, namespace, wait):
    running_vm(admin, wait, namespace, "first", cpu={"sockets": 1, "cores": 1})
    patch_template(admin, namespace, "first", lambda s: s["domain"]["cpu"].update(sockets=5))
    vm = wait.until(vm_path(namespace, "first"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    first = condition(vm, "RestartRequired")
    assert first["message"] == "CPU sockets updated in template spec to a value higher than what's available"
    patch_template(admin, namespace, "first", lambda s: s["domain"]["cpu"].update(cores=2))
    generation = admin.get(vm_path(namespace, "first"))["metadata"]["generation"]
    vm = wait.until(vm_path(namespace, "first"), lambda v: v["status"].get("desiredGeneration") == generation,
                    what="VM synced")
    # pkg/controller/conditions.go UpdateCondition: same status and (empty) reason, so nothing is replaced
    assert condition(vm, "RestartRequired") == first


def test_restart_required_stays_while_the_vm_has_no_vmi_until_it_starts(admin, namespace, wait):
    running_vm(admin, wait, namespace, "manual", cpu={"sockets": 1, "cores": 1})
    admin.merge_patch(vm_path(namespace, "manual"), {"spec": {"runStrategy": "Manual"}})
    patch_template(admin, namespace, "manual", lambda s: s["domain"]["cpu"].update(cores=2))
    wait.until(vm_path(namespace, "manual"), lambda v: condition(v, "RestartRequired"), what="RestartRequired")
    admin.delete(vmi_path(namespace, "manual"))  # not through stop: vm.go stopVMI does not run
    vm = wait.printable(namespace, "manual", "Stopped")
    assert condition(vm, "RestartRequired")["message"] == NON_LIVE
    assert put(admin, namespace, "virtualmachines", "manual", "start", {}).status_code == 202
    vm = wait.until(vm_path(namespace, "manual"), lambda v: v["status"].get("printableStatus") == "Running"
                    and condition(v, "RestartRequired") is None, what="started without RestartRequired")
    assert admin.get(vmi_path(namespace, "manual"))["spec"]["domain"]["cpu"]["cores"] == 2


def test_a_memory_hotplug_raising_the_request_to_the_guest_leaves_the_limit(admin, namespace, wait):
    manifest = vm_manifest("overcommit", namespace, memory="2Gi")
    manifest["spec"]["template"]["spec"]["domain"]["resources"] = {"requests": {"memory": "1Gi"}, "limits": {"memory": "2Gi"}}
    admin.create(vm_path(namespace), manifest)
    wait.until(vmi_path(namespace, "overcommit"), lambda v: v and v.get("status", {}).get("phase") == "Running"
               and (condition(v, "LiveMigratable") or {}).get("status") == "True", what="VMI running")
    patch_template(admin, namespace, "overcommit", lambda s: s["domain"]["memory"].update(guest="3Gi"))
    vmi = wait.until(vmi_path(namespace, "overcommit"), lambda v: v["spec"]["domain"]["memory"]["guest"] == "3Gi",
                     what="memory hotplugged")
    # vm.go handleMemoryHotplugRequest: the request (1Gi + 1Gi) is below the guest, so it becomes the guest
    # (3Gi) and the delta added to the limit is guest - request = 0
    assert vmi["spec"]["domain"]["resources"]["requests"]["memory"] == "3Gi"
    assert vmi["spec"]["domain"]["resources"]["limits"]["memory"] == "2Gi"


# -- virt-api's VMI webhooks: the mutator's defaults at create, the update validator ----------------


def standalone_vmi(name, namespace):
    manifest = vm_manifest(name, namespace)["spec"]["template"]
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstance",
            "metadata": {"name": name, "namespace": namespace}, "spec": manifest["spec"]}


def test_a_new_vmi_gets_its_hotplug_defaults_from_the_mutating_webhook(admin, namespace):
    body = standalone_vmi("fresh", namespace)
    body["spec"]["domain"]["memory"]["guest"] = "1Gi"
    body["spec"]["domain"]["cpu"] = {"sockets": 2}
    created = admin.create(vmi_path(namespace), body)
    # vmi-mutator.go ApplyNewVMIMutations (defaults.go), in the create response itself
    assert created["spec"]["domain"]["cpu"]["maxSockets"] == 8
    assert created["spec"]["domain"]["memory"]["maxGuest"] == "4Gi"
    assert created["status"]["currentCPUTopology"] == {"sockets": 2}
    assert created["status"]["memory"]["guestAtBoot"] == "1Gi"


def test_only_kubevirt_may_change_a_vmi_spec_or_its_reserved_labels(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "locked")
    err = refused(admin.merge_patch, vmi_path(namespace, "locked"), {"spec": {"nodeSelector": {"disk": "ssd"}}})
    assert err.status == 422
    assert err.body["message"] == ('admission webhook "virtualmachineinstances-update-validator.kubevirt.io" '
                                   'denied the request: update of VMI object is restricted')
    assert err.body["details"]["causes"][0]["reason"] == "FieldValueNotSupported"
    err = refused(admin.merge_patch, vmi_path(namespace, "locked"),
                  {"metadata": {"labels": {"kubevirt.io/nodeName": "elsewhere"}}})
    assert err.status == 422
    assert "modification of the following reserved kubevirt.io/ labels on a VMI object is prohibited" \
        in err.body["message"]
    patched = admin.merge_patch(vmi_path(namespace, "locked"), {"metadata": {"labels": {"team": "a"}}})
    assert patched["metadata"]["labels"]["team"] == "a"
    assert "nodeSelector" not in patched["spec"]
    assert patched["spec"]["domain"]["cpu"] == vmi["spec"]["domain"]["cpu"]


def test_a_declarative_hotplug_the_vmi_validator_refuses_is_the_vms_failure(admin, namespace, wait):
    running_vm(admin, wait, namespace, "satadecl")
    make_pvc(admin, wait, namespace, "sd1")
    gates = [g for g in bootstrap.VMO_FEATURE_GATES if g != "HotplugVolumes"]
    _set_gates(admin, gates)
    try:
        def edit(spec):
            spec["volumes"] = (spec.get("volumes") or []) + [
                {"name": "sd1", "persistentVolumeClaim": {"claimName": "sd1", "hotpluggable": True}}]
            spec["domain"]["devices"]["disks"] = (spec["domain"]["devices"].get("disks") or []) + [
                {"name": "sd1", "disk": {"bus": "sata"}}]
        patch_template(admin, namespace, "satadecl", edit)
        vm = wait.until(vm_path(namespace, "satadecl"), lambda v: condition(v, "Failure"), what="Failure condition")
        failure = condition(vm, "Failure")
        assert failure["reason"] == "HotPlugVolumeError"
        assert failure["message"].startswith("Error encountered while handling declarative hotplug volumes: ")
        assert failure["message"].endswith(
            "Hotplug configuration for disk [sd1] requires bus to be 'scsi' or 'virtio'. [sata] is not permitted.")
        assert all(v["name"] != "sd1" for v in admin.get(vmi_path(namespace, "satadecl"))["spec"].get("volumes") or [])
    finally:
        _set_gates(admin, list(bootstrap.VMO_FEATURE_GATES))


def test_a_secondary_interface_at_start_has_its_multus_status_and_the_agent_adds_to_it(admin, namespace, wait):
    manifest = vm_manifest("twonics", namespace)
    spec = manifest["spec"]["template"]["spec"]
    spec["domain"]["devices"]["interfaces"].append({"name": "blue", "bridge": {}})
    spec["networks"].append({"name": "blue", "multus": {"networkName": "blue-net"}})
    admin.create(vm_path(namespace), manifest)
    seen = []

    def record(vmi):
        status = iface_status(vmi, "blue")
        if status and (not seen or seen[-1] != status):
            seen.append(status)
        return (condition(vmi, "AgentConnected") or {}).get("status") == "True"
    vmi = wait.until(vmi_path(namespace, "twonics"), record, what="guest agent connected")
    # netstat.go UpdateStatus without the agent: the domain's view (no guest interface name, no IP on a
    # bridge the pod has no address for), multus-status and the hashed pod interface name from virt-controller
    first = seen[0]
    assert first["infoSource"] == "domain, multus-status"
    assert first["podInterfaceName"].startswith("pod") and len(first["podInterfaceName"]) == 14
    assert "interfaceName" not in first and "ipAddress" not in first
    primary = iface_status(vmi, "default")
    assert primary["podInterfaceName"] == "eth0" and primary["ipAddress"]
    # with the agent: its data added, multus-status kept
    blue = iface_status(vmi, "blue")
    assert blue["infoSource"] == "domain, guest-agent, multus-status"
    assert blue["interfaceName"] == "eth1" and blue["ipAddress"] and blue["mac"] == first["mac"]
    assert blue["podInterfaceName"] == first["podInterfaceName"]
    assert primary["infoSource"] == "domain, guest-agent" and primary["interfaceName"] == "eth0"


def _migration_required_while(admin, namespace, name, change, done):
    """The MigrationRequired conditions the VMI goes through (every update, from a watch) until done(vmi)."""
    since = admin.get(vmi_path(namespace))["metadata"]["resourceVersion"]
    patch_template(admin, namespace, name, change)
    seen = []
    for event in admin.watch(vmi_path(namespace), resource_version=since, timeout_seconds=60):
        vmi = event["object"]
        if event["type"] not in ("ADDED", "MODIFIED") or vmi["metadata"]["name"] != name:
            continue
        cond = condition(vmi, "MigrationRequired")
        state = (cond["status"], cond["reason"]) if cond else None
        if not seen or seen[-1] != state:
            seen.append(state)
        if done(vmi):
            return seen, vmi
    raise AssertionError(f"watch ended; MigrationRequired seen {seen}")


def test_a_nic_hotplug_or_unplug_is_pending_an_auto_migration_until_the_pod_has_it(admin, namespace, wait):
    running_vm(admin, wait, namespace, "mignic")

    def plug(spec):
        spec["domain"]["devices"]["interfaces"].append({"name": "blue", "bridge": {}})
        spec["networks"].append({"name": "blue", "multus": {"networkName": "blue-net"}})
    seen, vmi = _migration_required_while(admin, namespace, "mignic", plug, lambda v: iface_status(v, "blue"))
    # evaluator.go shouldMigrateOnIfaceHotplug: an interface without status is pending; its status removes it
    assert seen[-2:] == [("False", "AutoMigrationPending"), None]
    assert condition(vmi, "MigrationRequired") is None

    def unplug(spec):
        next(i for i in spec["domain"]["devices"]["interfaces"] if i["name"] == "blue")["state"] = "absent"
    seen, vmi = _migration_required_while(admin, namespace, "mignic", unplug, lambda v: iface_status(v, "blue") is None)
    # shouldMigrateOnIfaceUnplug: only multus-status left is pending; gone, nothing is required
    assert ("False", "AutoMigrationPending") in seen and seen[-1] is None


def test_the_vmi_memory_quantities_are_serialised_as_go_does(admin, namespace, wait):
    vmi = running_vm(admin, wait, namespace, "canon", memory="1024Mi")
    # resource.Quantity String(): the canonical form, in the spec and in the status it starts with
    assert vmi["spec"]["domain"]["memory"] == {"guest": "1Gi", "maxGuest": "4Gi"}
    assert vmi["status"]["memory"] == {"guestAtBoot": "1Gi", "guestCurrent": "1Gi", "guestRequested": "1Gi"}


def test_a_standalone_vmi_gets_its_hotplugged_volume_status(admin, namespace, wait):
    admin.create(vmi_path(namespace), standalone_vmi("alone", namespace))
    wait.until(vmi_path(namespace, "alone"), lambda v: v and v.get("status", {}).get("phase") == "Running",
               what="standalone VMI running")
    make_pvc(admin, wait, namespace, "alone-data")
    assert put(admin, namespace, "virtualmachineinstances", "alone", "addvolume",
               add_options("alone-data", "alone-data")).status_code == 202
    # vmi/lifecycle.go updateStatus runs for every VMI, not only a VM's
    ready = wait_volume(wait, namespace, "alone", "alone-data", lambda s: s and s.get("phase") == "Ready", "volume Ready")
    assert ready["hotplugVolume"]["attachPodName"].startswith("hp-volume-")
    # vmi/storage.go getFilesystemOverhead: the CDIConfig's overhead for the claim's class
    config = admin.get(object_path("cdi.kubevirt.io/v1beta1", "cdiconfigs", "config"))
    overheads = config["status"]["filesystemOverhead"]
    assert ready["persistentVolumeClaimInfo"]["filesystemOverhead"] == \
        overheads.get("storageClass", {}).get("lab-rwo", overheads["global"])


def test_a_hotplugged_volume_stays_hotplugged_after_a_restart(admin, namespace, wait):
    first = running_vm(admin, wait, namespace, "keep")
    make_pvc(admin, wait, namespace, "kept", storage_class="lab-rwx", modes=("ReadWriteMany",))
    assert put(admin, namespace, "virtualmachines", "keep", "addvolume", add_options("kept", "kept")).status_code == 202
    wait_volume(wait, namespace, "keep", "kept", lambda s: s and s.get("phase") == "Ready", "volume Ready")
    assert put(admin, namespace, "virtualmachines", "keep", "restart", {}).status_code == 202
    wait.until(vmi_path(namespace, "keep"), lambda v: v and v["metadata"]["uid"] != first["metadata"]["uid"]
               and v.get("status", {}).get("phase") == "Running", what="restarted VMI")
    seen = []
    ready = wait_volume(wait, namespace, "keep", "kept", lambda s: s and s.get("phase") == "Ready", "volume Ready", seen)
    # services/rendervolumes.go: a hotpluggable volume is not in the launcher pod, an attachment pod brings it
    assert ready["hotplugVolume"]["attachPodName"].startswith("hp-volume-")
    assert seen[-1] == "Ready" and len(seen) > 1


def test_a_missing_claim_holds_the_whole_hotplug_round(admin, namespace, wait):
    running_vm(admin, wait, namespace, "held")
    make_pvc(admin, wait, namespace, "here")
    assert put(admin, namespace, "virtualmachines", "held", "addvolume", add_options("gone", "gone")).status_code == 202
    wait_volume(wait, namespace, "held", "gone", lambda s: s is not None, "volume in the VMI")
    assert put(admin, namespace, "virtualmachines", "held", "addvolume", add_options("here", "here")).status_code == 202
    # volume-hotplug.go handleHotplugVolumes: PvcNotFoundError ends the round, no attachment pod for "here"
    vmi = wait.until(vmi_path(namespace, "held"), lambda v: volume_status(v, "here")
                     and condition(v, "Synchronized"), what="Synchronized False")
    sync = condition(vmi, "Synchronized")
    assert (sync["status"], sync["reason"]) == ("False", "PVCNotReady")
    assert sync["message"] == "Error determining volume status didn't find PVC gone"
    assert not (volume_status(vmi, "here").get("hotplugVolume") or {}).get("attachPodName")
    vm = wait.until(vm_path(namespace, "held"), lambda v: condition(v, "Synchronized"), what="Synchronized on the VM")
    assert condition(vm, "Synchronized")["reason"] == "PVCNotReady"
    make_pvc(admin, wait, namespace, "gone", bound=False)
    wait_volume(wait, namespace, "held", "here", lambda s: s and s.get("phase") == "Ready", "here Ready")
    vmi = wait.until(vmi_path(namespace, "held"), lambda v: condition(v, "Synchronized") is None,
                     what="Synchronized removed")
