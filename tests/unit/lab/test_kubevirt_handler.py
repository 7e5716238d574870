"""virt-handler's live-migration conditions and guest-agent rule in the lab stand-in (pure logic)."""

from tests.lab.kubevirt import handler

SHARED = "cannot migrate VMI: PVC {} is not shared, live migration requires that all PVCs must be shared " \
         "(using ReadWriteMany access mode)"
UNKNOWN = "cannot migrate VMI: Unable to determine if PVC {} is shared, live migration requires that all PVCs " \
          "must be shared (using ReadWriteMany access mode)"


def vmi(volumes=(), disks=(), interfaces=None, networks=None, annotations=None, status=None, **devices):
    spec = {"domain": {"devices": {"disks": list(disks), **devices}}, "volumes": list(volumes)}
    spec["domain"]["devices"]["interfaces"] = interfaces if interfaces is not None else [{"name": "default", "masquerade": {}}]
    spec["networks"] = networks if networks is not None else [{"name": "default", "pod": {}}]
    return {"metadata": {"name": "v", "namespace": "ns", "annotations": annotations or {}}, "spec": spec,
            "status": status or {}}


def claims(**modes):
    def lookup(_namespace, name):
        if name not in modes:
            return None
        return {"spec": {"accessModes": [modes[name]]}}
    return lookup


def live(obj, lookup=claims(), config=None):
    conditions, method = handler.live_migration_conditions(obj, lookup, config or {})
    by_type = {c["type"]: c for c in conditions}
    return by_type["LiveMigratable"], by_type["StorageLiveMigratable"], method


def test_masquerade_and_no_volumes_is_live_migratable():
    cond, storage, method = live(vmi())
    assert cond == {"type": "LiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": None}
    assert storage["status"] == "True" and method == "LiveMigration"


def test_pvc_and_datavolume_access_modes():
    pvc = [{"name": "d", "persistentVolumeClaim": {"claimName": "c1"}}]
    dv = [{"name": "d", "dataVolume": {"name": "dv1"}}]
    assert live(vmi(pvc), claims(c1="ReadWriteMany"))[0]["status"] == "True"
    cond = live(vmi(pvc), claims(c1="ReadWriteOnce"))[0]
    assert (cond["reason"], cond["message"]) == ("DisksNotLiveMigratable", SHARED.format("c1"))
    assert live(vmi(dv), claims())[0]["message"] == UNKNOWN.format("dv1")
    # virt-controller's volumeStatus wins over the claim lookup, as KubeVirt reads only the VMI.
    status = {"volumeStatus": [{"name": "d", "persistentVolumeClaimInfo": {"accessModes": ["ReadWriteMany"]}}]}
    assert live(vmi(dv, status=status), claims())[0]["status"] == "True"


def test_host_disks_and_block_migration():
    host = [{"name": "h", "hostDisk": {"path": "/x", "type": "Disk"}}]
    assert live(vmi(host))[0]["message"] == "cannot migrate VMI with non-shared HostDisk"
    host[0]["hostDisk"]["shared"] = True
    assert live(vmi(host))[0]["status"] == "True"
    container = [{"name": "root", "containerDisk": {"image": "x"}}]
    assert live(vmi(container))[2] == "BlockMigration"
    cdrom = [{"name": "root", "cdrom": {}}]
    assert live(vmi(container, disks=cdrom))[2] == "LiveMigration"


def test_pod_network_bindings():
    message = "cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod network"
    bridge = [{"name": "default", "bridge": {}}]
    cond, storage = live(vmi(interfaces=bridge))[:2]
    assert (cond["reason"], cond["message"]) == ("InterfaceNotLiveMigratable", message)
    assert (storage["reason"], storage["message"]) == ("NotMigratable", f"InterfaceNotLiveMigratable: {message}")
    allowed = vmi(interfaces=bridge, annotations={"kubevirt.io/allow-pod-bridge-network-live-migration": ""})
    assert live(allowed)[0]["status"] == "True"
    multus_only = vmi(interfaces=bridge, networks=[{"name": "default", "multus": {"networkName": "n"}}])
    assert live(multus_only)[0]["status"] == "True"
    plugin = [{"name": "default", "binding": {"name": "p"}}]
    assert live(vmi(interfaces=plugin))[0]["reason"] == "InterfaceNotLiveMigratable"
    config = {"network": {"binding": {"p": {"migration": {}}}}}
    assert live(vmi(interfaces=plugin), config=config)[0]["status"] == "True"
    missing = vmi(interfaces=[{"name": "other", "masquerade": {}}])
    assert live(missing)[0]["message"] == "no primary interface found for network default"


def test_interfaces_come_before_disks_and_devices():
    both = vmi([{"name": "d", "persistentVolumeClaim": {"claimName": "c"}}], interfaces=[{"name": "default", "bridge": {}}])
    assert live(both, claims(c="ReadWriteOnce"))[0]["reason"] == "InterfaceNotLiveMigratable"
    gpu = vmi(gpus=[{"name": "g", "deviceName": "nvidia.com/x"}])
    cond = live(gpu)[0]
    assert (cond["reason"], cond["message"]) == (
        "HostDeviceNotLiveMigratable", "VMI specifies a GPU but feature gate VGPULiveMigration is not enabled")
    assert live(vmi(hostDevices=[{"name": "h", "deviceName": "x"}]))[0]["message"] == \
        "VMI specifies non-migratable generic PCI host device"


def test_guest_agent_rule():
    fedora = vmi([{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/fedora:41"}}])
    cirros = vmi([{"name": "root", "containerDisk": {"image": "quay.io/kubevirt/cirros-container-disk-demo"}}])
    assert handler.has_guest_agent(fedora) and not handler.has_guest_agent(cirros)
    assert handler.guest_os_info(fedora)["id"] == "fedora"
    assert not handler.has_guest_agent(vmi(annotations={handler.LAB_NO_AGENT_ANNOTATION: ""}))


def test_merge_conditions_keeps_unchanged_ones():
    old = {"type": "LiveMigratable", "status": "True", "lastProbeTime": None, "lastTransitionTime": "t"}
    assert handler.merge_conditions([old], [{**old, "lastTransitionTime": None}]) == [old]
    new = {"type": "LiveMigratable", "status": "False", "reason": "r", "message": "m"}
    assert handler.merge_conditions([{"type": "Ready"}, old], [new]) == [{"type": "Ready"}, new]
