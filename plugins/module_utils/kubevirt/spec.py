# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Builds a KubeVirt VirtualMachine object from the typed options of one VM (pure, no network).

Every problem found is a `VmInputError` naming the VM and the option, raised before anything is sent.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re
from decimal import Decimal, InvalidOperation

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.power import RUN_STRATEGIES

MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "palette.vmo"
DEFAULT_API_VERSION = "kubevirt.io/v1"
EVICTION_STRATEGIES = ("LiveMigrate", "LiveMigrateIfPossible", "External", "None")
DISK_BUSES = ("virtio", "sata", "scsi", "usb")
NIC_MODELS = ("virtio", "e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUANTITY = re.compile(r"^[+]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[kMGTPE]|([eE][+-]?\d+))?$")
DISK_SOURCES = ("container_disk", "pvc", "data_volume", "empty_disk")
HOTPLUG_SOURCES = ("pvc", "data_volume")
HOTPLUG_BUSES = ("scsi", "virtio")
NIC_STATES = ("present", "absent")
SUFFIX_FACTORS = dict([(s, 1024 ** (i + 1)) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"))]
                      + [(s, 1000 ** (i + 1)) for i, s in enumerate(("k", "M", "G", "T", "P", "E"))])
CPU_FIELDS = {"cores": "cores", "sockets": "sockets", "threads": "threads", "max_sockets": "maxSockets"}
# pkg/liveupdate/memory/memory.go HotplugBlockAlignmentBytes
HOTPLUG_BLOCK_BYTES = 0x200000
# A quantity's value in bytes must fit the int64 that Kubernetes and KubeVirt convert it to.
MAX_BYTES = 2 ** 63 - 1


class VmInputError(ModuleFailure):
    """A bad option of one VM; the message names the VM and the option."""

    def __init__(self, vm, option, reason):
        self.vm, self.option, self.reason = vm, option, reason
        super(VmInputError, self).__init__("VM %s: %s: %s" % (vm, option, reason))


def vm_label(params):
    return "%s/%s" % (params.get("namespace") or "?", params.get("name") or "?")


def check_name(vm, option, value, max_length=63):
    if not value or len(value) > max_length or not DNS_LABEL.match(value):
        raise VmInputError(vm, option, "%r is not a valid name (lowercase letters, digits and '-', "
                                       "starting and ending with a letter or digit, at most %d characters)"
                           % (value, max_length))


def quantity_bytes(text):
    """The value of a quantity that matches QUANTITY, as a Decimal."""
    match = re.match(r"^[+]?([\d.]+)(.*)$", text)
    number, suffix = match.group(1), match.group(2)
    try:
        if suffix in SUFFIX_FACTORS:
            return Decimal(number) * SUFFIX_FACTORS[suffix]
        return Decimal(number + suffix)  # no suffix, or a decimal exponent (1e9)
    except InvalidOperation:
        return None


def check_quantity(vm, option, value):
    if value is None:
        return
    if not QUANTITY.match(str(value)):
        raise VmInputError(vm, option, "%r is not a Kubernetes quantity (for example 2Gi or 512Mi)" % (value,))
    size = quantity_bytes(str(value))
    if size is None or size > MAX_BYTES:
        raise VmInputError(vm, option, "%r is too large: a quantity of bytes must stay below 8Ei (2^63)"
                           % (value,))


def check_unique_names(vm, option, items):
    """Disk and NIC names are the keys KubeVirt matches devices, volumes and networks by."""
    seen = set()
    for name in [item.get("name") for item in items]:
        if name in seen:
            raise VmInputError(vm, option, "%r is given more than once (names must be unique in one VM)" % (name,))
        seen.add(name)


def _matcher(vm, option, value, default_kind):
    """instancetype/preference: a name, or a dict with name and kind."""
    if value is None:
        return None
    if isinstance(value, str):
        value = {"name": value}
    if not isinstance(value, dict) or not value.get("name"):
        raise VmInputError(vm, option, "must be a name or a dict with name and kind")
    unknown = set(value) - {"name", "kind"}
    if unknown:
        raise VmInputError(vm, option, "unknown keys %s (name, kind)" % ", ".join(sorted(unknown)))
    return {"name": value["name"], "kind": value.get("kind") or default_kind}


def _check_keys(vm, option, value, allowed):
    if not isinstance(value, dict):
        raise VmInputError(vm, option, "must be a dict")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise VmInputError(vm, option, "unknown key(s) %s (allowed: %s)" % (", ".join(unknown), ", ".join(allowed)))


def _data_volume(vm, disk, source):
    option = "disks[%s].data_volume" % disk["name"]
    _check_keys(vm, option, source, ("name", "size", "storage_class", "access_modes", "registry", "http",
                                     "clone", "blank"))
    size = source.get("size")
    check_quantity(vm, option + ".size", size)
    kinds = [k for k in ("registry", "http", "clone", "blank") if source.get(k)]
    if len(kinds) != 1:
        raise VmInputError(vm, option, "needs exactly one of registry, http, clone or blank (got %s)"
                           % (", ".join(kinds) or "none"))
    if not size:
        raise VmInputError(vm, option + ".size", "is required")
    kind = kinds[0]
    if kind == "registry":
        dv_source = {"registry": {"url": source["registry"]}}
    elif kind == "http":
        dv_source = {"http": {"url": source["http"]}}
    elif kind == "clone":
        clone = source["clone"]
        if not isinstance(clone, dict) or not clone.get("name"):
            raise VmInputError(vm, option + ".clone", "needs the name (and namespace) of the golden-image PVC")
        dv_source = {"pvc": {"name": clone["name"], "namespace": clone.get("namespace") or "default"}}
    else:
        dv_source = {"blank": {}}
    storage = {"resources": {"requests": {"storage": str(size)}}}
    if source.get("storage_class"):
        storage["storageClassName"] = source["storage_class"]
    if source.get("access_modes"):
        storage["accessModes"] = list(source["access_modes"])
    name = source.get("name") or "%s-%s" % (vm.split("/")[-1], disk["name"])
    check_name(vm, option + ".name", name, max_length=253)
    return {"metadata": {"name": name}, "spec": {"source": dv_source, "storage": storage}}


def _disk(vm, disk):
    """A typed disk: (disk device, volume, optional dataVolumeTemplate)."""
    name = disk.get("name")
    check_name(vm, "disks[].name", name)
    _check_keys(vm, "disks[%s]" % name, disk, ("name", "bus", "boot_order", "hotplug", "size") + DISK_SOURCES)
    sources = [s for s in DISK_SOURCES if disk.get(s)]
    if len(sources) != 1:
        raise VmInputError(vm, "disks[%s]" % name, "needs exactly one of %s (got %s)"
                           % (", ".join(DISK_SOURCES), ", ".join(sources) or "none"))
    if disk.get("size") is not None:
        if sources[0] != "pvc":
            raise VmInputError(vm, "disks[%s].size" % name,
                               "is the size of a pvc disk's claim; a data_volume disk takes data_volume.size")
        check_quantity(vm, "disks[%s].size" % name, disk["size"])
    hotplug = bool(disk.get("hotplug"))
    bus = disk.get("bus") or ("scsi" if hotplug else "virtio")
    if bus not in DISK_BUSES:
        raise VmInputError(vm, "disks[%s].bus" % name, "%r is not one of %s" % (bus, ", ".join(DISK_BUSES)))
    if hotplug:
        # pkg/storage/admitters/storagehotplug.go ValidateHotplugDiskConfiguration; volumes.go: PVC or DataVolume.
        if sources[0] not in HOTPLUG_SOURCES:
            raise VmInputError(vm, "disks[%s].hotplug" % name,
                               "a hotplugged disk needs a pvc or data_volume source (got %s)" % sources[0])
        if bus not in HOTPLUG_BUSES:
            raise VmInputError(vm, "disks[%s].bus" % name,
                               "%r cannot be hotplugged: KubeVirt hotplugs disks on the scsi or virtio bus only" % bus)
    device = {"name": name, "disk": {"bus": bus}}
    if disk.get("boot_order") is not None:
        device["bootOrder"] = int(disk["boot_order"])
    source, template = sources[0], None
    if source == "container_disk":
        volume = {"name": name, "containerDisk": {"image": disk["container_disk"]}}
    elif source == "pvc":
        volume = {"name": name, "persistentVolumeClaim": {"claimName": disk["pvc"]}}
    elif source == "empty_disk":
        check_quantity(vm, "disks[%s].empty_disk" % name, disk["empty_disk"])
        volume = {"name": name, "emptyDisk": {"capacity": str(disk["empty_disk"])}}
    else:
        template = _data_volume(vm, disk, disk["data_volume"])
        volume = {"name": name, "dataVolume": {"name": template["metadata"]["name"]}}
    if hotplug:
        # A hotplugged volume is marked so; its DataVolume is made on its own, not from the VM's templates.
        volume[next(k for k in ("persistentVolumeClaim", "dataVolume") if k in volume)]["hotpluggable"] = True
        template = None
    return device, volume, template


def hotplug_data_volume(vm, disk):
    """The DataVolume a hotplugged data_volume disk is made from (named as the disk's volume)."""
    return _data_volume(vm, disk, disk["data_volume"])


def _nic(vm, nic):
    name = nic.get("name")
    check_name(vm, "nics[].name", name)
    _check_keys(vm, "nics[%s]" % name, nic, ("name", "network", "binding", "model", "mac_address", "state"))
    network = nic.get("network") or "pod"
    state = nic.get("state") or "present"
    if state not in NIC_STATES:
        raise VmInputError(vm, "nics[%s].state" % name, "%r is not one of present, absent" % (state,))
    if state == "absent" and (network == "pod" or (nic.get("binding") or "bridge") != "bridge"):
        # pkg/network/admitter/admit.go validateInterfaceStateValue: absent is for bridge binding only, and
        # never for the default (pod) network.
        raise VmInputError(vm, "nics[%s].state" % name,
                           "absent (hot-unplug) is supported only for a bridge interface on a Multus network")
    iface = {"name": name}
    if network == "pod":
        iface[nic.get("binding") or "masquerade"] = {}
        net = {"name": name, "pod": {}}
    else:
        iface[nic.get("binding") or "bridge"] = {}
        net = {"name": name, "multus": {"networkName": network}}
    if nic.get("binding") not in (None, "masquerade", "bridge", "sriov"):
        raise VmInputError(vm, "nics[%s].binding" % name, "%r is not one of masquerade, bridge, sriov" % nic["binding"])
    if nic.get("model"):
        if nic["model"] not in NIC_MODELS:
            raise VmInputError(vm, "nics[%s].model" % name, "%r is not one of %s" % (nic["model"], ", ".join(NIC_MODELS)))
        iface["model"] = nic["model"]
    if nic.get("mac_address"):
        if not re.match(r"^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$", nic["mac_address"]):
            raise VmInputError(vm, "nics[%s].mac_address" % name, "%r is not a MAC address" % nic["mac_address"])
        iface["macAddress"] = nic["mac_address"]
    if state == "absent":
        iface["state"] = "absent"
    return iface, net


def _cloud_init(vm, options):
    user_data = options.get("user_data")
    keys = options.get("ssh_authorized_keys") or []
    if keys and user_data:
        raise VmInputError(vm, "cloud_init.ssh_authorized_keys",
                           "cannot be combined with user_data; put the keys in user_data")
    if keys:
        user_data = "#cloud-config\nssh_authorized_keys:\n" + "".join("  - %s\n" % key for key in keys)
    source = {}
    if user_data:
        source["userData"] = user_data
    if options.get("network_data"):
        source["networkData"] = options["network_data"]
    if not source:
        raise VmInputError(vm, "cloud_init", "needs user_data, network_data or ssh_authorized_keys")
    return {"name": "cloudinitdisk", "disk": {"bus": "virtio"}}, {"name": "cloudinitdisk", "cloudInitNoCloud": source}


def _merge_named(vm, option, base, extra):
    """Appends named items; a name that is both raw and typed is ambiguous, so it is an error."""
    names = {item.get("name") for item in base}
    for item in extra:
        if item["name"] in names:
            raise VmInputError(vm, option, "%r is given both in spec and as a typed option" % item["name"])
        base.append(item)
    return base


def instantiate_template(template, vm_name):
    """A VM spec from a VmTemplate: its template and dataVolumeTemplates, the DataVolumes renamed per VM.

    A template's DataVolume names are shared by every VM made from it; prefixing them with the VM's
    name lets several VMs of one template live in one namespace.
    """
    source = (template or {}).get("spec") or {}
    spec = {"template": copy.deepcopy(source.get("template") or {})}
    renames = {}
    templates = []
    for dv in copy.deepcopy(source.get("dataVolumeTemplates") or []):
        old = (dv.get("metadata") or {}).get("name")
        if old:
            renames[old] = "%s-%s" % (vm_name, old)
            dv["metadata"]["name"] = renames[old]
        templates.append(dv)
    if templates:
        spec["dataVolumeTemplates"] = templates
    for volume in (spec["template"].get("spec") or {}).get("volumes") or []:
        data_volume = volume.get("dataVolume")
        if data_volume and data_volume.get("name") in renames:
            data_volume["name"] = renames[data_volume["name"]]
    return spec


def build_vm(params, api_version=DEFAULT_API_VERSION, run_strategy=None, base_spec=None):
    """The VirtualMachine object one VM's options describe, complete: nothing is added to it afterwards but
    the apply's own digest annotation (see kube/apply.py).

    `api_version` is the version the cluster serves; `run_strategy` the one the runner resolved (from the
    declaration, the live VM or the state), else the declared one. `base_spec` is a VM spec (from a
    VmTemplate) that the options override; `params["spec"]` is a raw VMI template spec that typed options extend.
    """
    vm = vm_label(params)
    check_name(vm, "name", params.get("name"))
    check_name(vm, "namespace", params.get("namespace"))
    declared = params.get("run_strategy")
    if declared is not None and declared not in RUN_STRATEGIES:
        raise VmInputError(vm, "run_strategy", "%r is not one of %s" % (declared, ", ".join(RUN_STRATEGIES)))
    strategy = run_strategy or declared

    spec = copy.deepcopy(base_spec or {})
    spec.pop("running", None)
    template = spec.setdefault("template", {})
    tspec = template.setdefault("spec", {})
    if params.get("spec"):
        if not isinstance(params["spec"], dict):
            raise VmInputError(vm, "spec", "must be a VMI template spec (a dict)")
        tspec.update(copy.deepcopy(params["spec"]))
    domain = tspec.setdefault("domain", {})
    devices = domain.setdefault("devices", {})

    instancetype = _matcher(vm, "instancetype", params.get("instancetype"), "VirtualMachineClusterInstancetype")
    preference = _matcher(vm, "preference", params.get("preference"), "VirtualMachineClusterPreference")
    if instancetype:
        if params.get("cpu") or params.get("memory"):
            raise VmInputError(vm, "instancetype", "cannot be combined with cpu or memory: the instancetype sets them")
        spec["instancetype"] = instancetype
    if preference:
        spec["preference"] = preference

    cpu = params.get("cpu")
    if cpu:
        for key in cpu:
            if key not in CPU_FIELDS:
                raise VmInputError(vm, "cpu.%s" % key, "unknown key (%s)" % ", ".join(CPU_FIELDS))
            if not isinstance(cpu[key], int) or cpu[key] < 1:
                raise VmInputError(vm, "cpu.%s" % key, "must be a whole number of at least 1")
        if cpu.get("max_sockets") and cpu.get("sockets", 1) > cpu["max_sockets"]:
            # vms-admitter.go validateLiveUpdateCPU
            raise VmInputError(vm, "cpu.sockets", "%d is above cpu.max_sockets %d (the most sockets the VM "
                                                  "can have without a new maximum and a restart)"
                               % (cpu.get("sockets", 1), cpu["max_sockets"]))
        domain["cpu"] = dict((CPU_FIELDS[key], value) for key, value in cpu.items())
    if params.get("memory"):
        check_quantity(vm, "memory", params["memory"])
        domain["memory"] = {"guest": str(params["memory"])}
    if params.get("memory_max"):
        _memory_max(vm, params, domain)
    if not instancetype and not domain.get("memory") and not (domain.get("resources") or {}).get("requests"):
        raise VmInputError(vm, "memory", "is required unless an instancetype, template or spec sets it")

    disks, volumes, dv_templates = [], [], list(spec.get("dataVolumeTemplates") or [])
    for disk in params.get("disks") or []:
        device, volume, dv_template = _disk(vm, disk)
        disks.append(device)
        volumes.append(volume)
        if dv_template:
            dv_templates.append(dv_template)
    if params.get("cloud_init") is not None:
        device, volume = _cloud_init(vm, params["cloud_init"])
        disks.append(device)
        volumes.append(volume)
    check_unique_names(vm, "disks", disks)
    devices["disks"] = _merge_named(vm, "disks", list(devices.get("disks") or []), disks)
    tspec["volumes"] = _merge_named(vm, "disks", list(tspec.get("volumes") or []), volumes)

    nics = params.get("nics")
    if nics is not None or not devices.get("interfaces"):
        ifaces, nets = [], []
        for nic in nics if nics is not None else [{"name": "default", "network": "pod"}]:
            iface, net = _nic(vm, nic)
            ifaces.append(iface)
            nets.append(net)
        check_unique_names(vm, "nics", ifaces)
        devices["interfaces"] = _merge_named(vm, "nics", list(devices.get("interfaces") or []), ifaces)
        tspec["networks"] = _merge_named(vm, "nics", list(tspec.get("networks") or []), nets)

    if params.get("data_volume_templates"):
        dv_templates.extend(copy.deepcopy(params["data_volume_templates"]))
    if dv_templates:
        spec["dataVolumeTemplates"] = dv_templates
    if params.get("node_selector"):
        tspec["nodeSelector"] = dict(params["node_selector"])
    if params.get("eviction_strategy"):
        if params["eviction_strategy"] not in EVICTION_STRATEGIES:
            raise VmInputError(vm, "eviction_strategy", "%r is not one of %s"
                               % (params["eviction_strategy"], ", ".join(EVICTION_STRATEGIES)))
        tspec["evictionStrategy"] = params["eviction_strategy"]
    _check_volume_references(vm, devices, tspec)

    labels = dict(params.get("labels") or {})
    labels[MANAGED_BY_LABEL] = MANAGED_BY
    template_meta = template.setdefault("metadata", {})
    template_meta["labels"] = dict(template_meta.get("labels") or {}, **(params.get("labels") or {}))
    template_meta["labels"].setdefault("kubevirt.io/domain", params["name"])
    if params.get("annotations"):
        template_meta["annotations"] = dict(template_meta.get("annotations") or {}, **params["annotations"])
    if strategy is not None:
        spec["runStrategy"] = strategy

    metadata = {"name": params["name"], "namespace": params["namespace"], "labels": labels}
    if params.get("annotations"):
        metadata["annotations"] = dict(params["annotations"])
    return {"apiVersion": api_version, "kind": "VirtualMachine", "metadata": metadata, "spec": spec}


def _memory_max(vm, params, domain):
    """memory_max is KubeVirt's maxGuest; vms-admitter.go validateLiveUpdateFeatures checks it with
    pkg/liveupdate/memory ValidateLiveUpdateMemory, so the same rules are checked here, named by option."""
    check_quantity(vm, "memory_max", params["memory_max"])
    maximum = quantity_bytes(str(params["memory_max"]))
    guest_text = params.get("memory") or (domain.get("memory") or {}).get("guest")
    if guest_text is None:
        raise VmInputError(vm, "memory_max", "needs memory (the guest memory) as well")
    guest = quantity_bytes(str(guest_text))
    if guest > maximum:
        raise VmInputError(vm, "memory", "%s is above memory_max %s" % (guest_text, params["memory_max"]))
    for option, value in (("memory", guest), ("memory_max", maximum)):
        if value % HOTPLUG_BLOCK_BYTES:
            raise VmInputError(vm, option, "must be a multiple of 2Mi when memory_max is set (memory hotplug "
                                           "block size)")
    if guest < 1024 ** 3:
        raise VmInputError(vm, "memory", "%s is below 1Gi: KubeVirt hotplugs memory (memory_max) only for guests "
                                         "with at least 1Gi" % guest_text)
    domain.setdefault("memory", {})["maxGuest"] = str(params["memory_max"])


def _check_volume_references(vm, devices, tspec):
    volumes = {v.get("name") for v in tspec.get("volumes") or []}
    for disk in devices.get("disks") or []:
        if disk.get("name") not in volumes:
            raise VmInputError(vm, "disks[%s]" % disk.get("name"), "has no volume of the same name in spec.volumes")
    networks = {n.get("name") for n in tspec.get("networks") or []}
    for iface in devices.get("interfaces") or []:
        if iface.get("name") not in networks:
            raise VmInputError(vm, "nics[%s]" % iface.get("name"), "has no network of the same name in spec.networks")
