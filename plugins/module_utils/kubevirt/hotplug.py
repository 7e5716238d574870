# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hotplug and hot-unplug of volumes and NICs of a running VM, planned declaratively (pure, no network).

NICs (pkg/network/controllers/vm.go): KubeVirt hotplugs a bridge or SR-IOV interface added to the VM
template of a running VM, and unplugs one whose template interface is marked `state: absent`; once the
instance has let it go, KubeVirt drops the absent interface from the VM itself. A NIC left out of the
declaration while the VM runs is therefore sent as `state: absent` first, and an absent NIC the VM no
longer has is simply not declared.

Volumes: with the DeclarativeHotplugVolumes gate on and HotplugVolumes off, KubeVirt's VM controller
hotplugs a `hotpluggable` volume that appears in the VM template (vm.go handleDeclarativeVolumeHotplug).
With HotplugVolumes enabled (as the VMO pack does) that path is off and volumes are hotplugged only through
the VM's addvolume/removevolume subresources (pkg/virt-api/rest/volumes.go), which record a volume request
that the controller applies to the VM and its instance; the VM object is then written without those
volumes and the requests carry them.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import VmInputError

DECLARATIVE, SUBRESOURCE = "declarative", "subresource"
HOTPLUGGABLE_BINDINGS = ("bridge", "sriov")


def _tspec(vm):
    return (((vm or {}).get("spec") or {}).get("template") or {}).get("spec") or {}


def _interfaces(tspec):
    return ((tspec.get("domain") or {}).get("devices") or {}).get("interfaces") or []


def _disks(tspec):
    return ((tspec.get("domain") or {}).get("devices") or {}).get("disks") or []


def _binding(iface):
    return next((key for key in ("bridge", "masquerade", "sriov", "passt", "binding") if key in iface), None)


class NicChanges(object):
    def __init__(self):
        self.hotplug, self.unplug = [], []


def plan_nics(label, desired, live, vmi_running, running_ifaces, running_nets, declared_nics=None):
    """Adjusts `desired` (the VM to apply) for NIC hotplug and unplug; returns NicChanges.

    `running_ifaces`/`running_nets` are the instance's interfaces and networks by name; `declared_nics` the
    names the task gives as typed NICs: one of those that KubeVirt cannot hotplug is refused (any other
    interface change is left to KubeVirt, which marks the VM RestartRequired).
    """
    changes = NicChanges()
    tspec = _tspec(desired)
    live_tspec = _tspec(live)
    live_ifaces = dict((i.get("name"), i) for i in _interfaces(live_tspec))
    live_nets = dict((n.get("name"), n) for n in live_tspec.get("networks") or [])
    ifaces = tspec.get("domain", {}).get("devices", {}).get("interfaces")
    if ifaces is None:
        return changes
    nets = tspec.setdefault("networks", [])
    declared = set(i.get("name") for i in ifaces)
    kept_ifaces, dropped = [], set()
    for iface in ifaces:
        name = iface.get("name")
        if iface.get("state") == "absent":
            if name not in live_ifaces:
                dropped.add(name)  # already gone (KubeVirt dropped it after the unplug): nothing to declare
                continue
            if vmi_running and name in running_ifaces and running_ifaces[name].get("state") != "absent":
                changes.unplug.append(name)
        elif vmi_running and name not in live_ifaces and name not in running_ifaces:
            network = next((n for n in nets if n.get("name") == name), {})
            if (network.get("pod") is not None or _binding(iface) not in HOTPLUGGABLE_BINDINGS) \
                    and name in (declared_nics or ()):
                raise VmInputError(label, "nics[%s]" % name, "cannot be hotplugged into the running VM: KubeVirt "
                                   "hotplugs only bridge or SR-IOV interfaces on Multus networks (this one is %s on "
                                   "the %s network); stop the VM to add it"
                                   % (_binding(iface), "pod" if network.get("pod") is not None else "Multus"))
            if network.get("pod") is None and _binding(iface) in HOTPLUGGABLE_BINDINGS:
                changes.hotplug.append(name)
        kept_ifaces.append(iface)
    if vmi_running:
        # Left out of the declaration while the VM runs: unplugged as KubeVirt requires (state absent).
        for name, iface in live_ifaces.items():
            net = live_nets.get(name) or {}
            if name in declared or name not in running_ifaces:
                continue
            if _binding(iface) == "bridge" and net.get("multus") is not None:
                kept_ifaces.append(dict(copy.deepcopy(iface), state="absent"))
                nets.append(copy.deepcopy(net))
                if running_ifaces[name].get("state") != "absent":
                    changes.unplug.append(name)
    tspec["domain"]["devices"]["interfaces"] = kept_ifaces
    tspec["networks"] = [n for n in nets if n.get("name") not in dropped]
    return changes


def _hotplug_source(volume):
    for key in ("persistentVolumeClaim", "dataVolume"):
        source = (volume or {}).get(key)
        if source and source.get("hotpluggable"):
            return key, source
    return None, None


def _volume_source_name(volume):
    key, source = _hotplug_source(volume)
    if key == "persistentVolumeClaim":
        return source.get("claimName")
    if key == "dataVolume":
        return source.get("name")
    return None


def _claim_names(volume):
    return set(name for name in ((volume.get("persistentVolumeClaim") or {}).get("claimName"),
                                 (volume.get("dataVolume") or {}).get("name")) if name)


def hotplugged_volumes(vm):
    """Names of the VM's hotpluggable volumes."""
    return [v.get("name") for v in _tspec(vm).get("volumes") or [] if _hotplug_source(v)[0] is not None]


def check_hotplug_claims(label, vm):
    """A hotplugged disk's claim used by another volume of the same VM (volumes.go verifyVolumeOption)."""
    volumes = _tspec(vm).get("volumes") or []
    for volume in volumes:
        claim = _volume_source_name(volume)
        if claim is None:
            continue
        others = [v.get("name") for v in volumes if v is not volume and claim in _claim_names(v)]
        if others:
            raise VmInputError(label, "disks[%s]" % volume.get("name"), "its claim %r is also the volume of disk %r "
                               "(a claim can be attached once)" % (claim, others[0]))


class VolumeChanges(object):
    def __init__(self):
        self.add, self.remove = [], []  # (volume, disk) to add; volume names to remove
        # Volumes with a request already in the VM's status.volumeRequests (an earlier run was interrupted
        # before KubeVirt carried it out): not sent again, left as they stand, waited for.
        self.in_flight = []

    @property
    def names_added(self):
        return [volume["name"] for volume, _disk in self.add]


def plan_volumes(label, desired, live, vmi_running, path):
    """Volume hotplug of a running VM; adjusts `desired` for the subresource path. Returns VolumeChanges."""
    changes = VolumeChanges()
    if live is None or not vmi_running:
        return changes
    tspec, live_tspec = _tspec(desired), _tspec(live)
    live_volumes = dict((v.get("name"), v) for v in live_tspec.get("volumes") or [])
    live_disks = dict((d.get("name"), d) for d in _disks(live_tspec))
    volumes = tspec.get("volumes") or []
    disks = dict((d.get("name"), d) for d in _disks(tspec))
    wanted = dict((v.get("name"), v) for v in volumes)
    requested = requested_volumes(live)
    for volume in volumes:
        name = volume.get("name")
        if _hotplug_source(volume)[0] is None or name in live_volumes:
            continue
        if path == SUBRESOURCE and name in requested:
            changes.in_flight.append(name)
            continue
        claim = _volume_source_name(volume)
        taken = [v for v in live_volumes.values() if claim in _claim_names(v)]
        if taken:
            # volumes.go verifyVolumeOption: a claim already attached cannot be attached again.
            raise VmInputError(label, "disks[%s]" % name, "its claim %r is already attached to the VM as volume %r"
                               % (claim, taken[0].get("name")))
        changes.add.append((volume, disks.get(name)))
    for name, volume in live_volumes.items():
        if name not in wanted and _hotplug_source(volume)[0] is not None:
            if path == SUBRESOURCE and name in requested:
                changes.in_flight.append(name)
            else:
                changes.remove.append(name)
    if path == SUBRESOURCE and (changes.add or changes.remove or changes.in_flight):
        _leave_to_requests(tspec, changes, live_volumes, live_disks)
    return changes


def requested_volumes(vm):
    """Names of the volumes the VM's status.volumeRequests still has requests for."""
    names = set()
    for request in ((vm or {}).get("status") or {}).get("volumeRequests") or []:
        options = request.get("addVolumeOptions") or request.get("removeVolumeOptions") or {}
        if options.get("name"):
            names.add(options["name"])
    return names


def _leave_to_requests(tspec, changes, live_volumes, live_disks):
    """The VM written as it stands for the volumes that addvolume/removevolume will change."""
    adding = set(changes.names_added) | set(changes.in_flight)
    devices = tspec.setdefault("domain", {}).setdefault("devices", {})
    volumes = [v for v in tspec.get("volumes") or [] if v.get("name") not in adding]
    disks = [d for d in devices.get("disks") or [] if d.get("name") not in adding]
    for name in changes.remove + [n for n in changes.in_flight if n in live_volumes]:
        volumes.append(copy.deepcopy(live_volumes[name]))
        if name in live_disks:
            disks.append(copy.deepcopy(live_disks[name]))
    tspec["volumes"] = volumes
    devices["disks"] = disks


def add_volume_options(volume, disk):
    """The body of a VM's addvolume subresource (v1.AddVolumeOptions)."""
    key, source = _hotplug_source(volume)
    return {"name": volume["name"], "disk": copy.deepcopy(disk or {"name": volume["name"], "disk": {"bus": "scsi"}}),
            "volumeSource": {key: copy.deepcopy(source)}}


def hotplug_path(kubevirt_cr):
    """Which path the cluster's KubeVirt takes for VM volume hotplug (pkg/virt-config featuregate IsEnabled).

    HotplugVolumes (deprecated in v1.9, but the VMO pack enables it) turns the declarative path off;
    DeclarativeHotplugVolumes is Beta, on unless disabled. None when neither is on (hotplug unavailable);
    SUBRESOURCE when the KubeVirt CR could not be read, since the subresource works on both paths.
    """
    if kubevirt_cr is None:
        return SUBRESOURCE
    developer = ((((kubevirt_cr.get("spec") or {}).get("configuration")) or {}).get("developerConfiguration")) or {}
    gates, disabled = developer.get("featureGates") or [], developer.get("disabledFeatureGates") or []
    if "HotplugVolumes" in gates:
        return SUBRESOURCE
    if "DeclarativeHotplugVolumes" in gates or "DeclarativeHotplugVolumes" not in disabled:
        return DECLARATIVE
    return None
