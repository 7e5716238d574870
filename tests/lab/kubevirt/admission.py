"""KubeVirt's validating admission for VirtualMachines and VirtualMachineInstances, as pure functions.

Each check mirrors one function of KubeVirt v1.9.0 (named in the comment above it), with KubeVirt's
messages and `field` paths, so that a dry run on the lab refuses what virt-api refuses. The files are
pkg/virt-api/webhooks/validating-webhook/admitters/{vms-admitter.go,vmi-create-admitter.go},
pkg/network/admitter/*.go, pkg/storage/admitters/{disks.go,data-volume-template.go},
pkg/defaults/defaults.go and k8s.io/apimachinery's resource.Quantity.

`admit_vm` and `admit_vmi_create` take the AdmissionReview request and the KubeVirt CR's
`spec.configuration` and return the AdmissionReview response. Only checks that matter to VMs with
disks, volumes (containerDisk, dataVolume, persistentVolumeClaim, cloudInitNoCloud), interfaces
(masquerade, bridge) and networks (pod, multus) are mirrored; instancetypes, preferences, feature-gate
checks and hardware details (NUMA, hugepages, SEV, host devices, ...) are not.
"""

import base64
import copy
import math
import re
from fractions import Fraction
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import cdi_webhook

JSON = Dict[str, Any]
Cause = Dict[str, str]

# metav1 CauseType values KubeVirt uses.
INVALID = "FieldValueInvalid"
REQUIRED = "FieldValueRequired"
DUPLICATE = "FieldValueDuplicate"
NOT_SUPPORTED = "FieldValueNotSupported"

# vmi-create-admitter.go constants.
NAME_NOT_FOUND = "%s '%s' not found."
MUST_BE_POSITIVE = "%s '%s': must be greater than or equal to 0."
CLOUD_INIT_USER_MAX_LEN = 2048
CLOUD_INIT_NETWORK_MAX_LEN = 2048

# vms-admitter.go validRunStrategies (WaitAsReceiver is handled apart: it needs a feature gate).
VALID_RUN_STRATEGIES = ("Halted", "Manual", "Always", "RerunOnFailure", "Once")
DECENTRALIZED_LIVE_MIGRATION_GATE = "DecentralizedLiveMigration"

MAX_INT64 = (1 << 63) - 1


def cause(kind: str, message: str, field: Optional[str] = None) -> Cause:
    # metav1.StatusCause: its Type is serialised as "reason"
    out = {"reason": kind, "message": message}
    if field is not None:
        out["field"] = field
    return out


# -- resource.Quantity (k8s.io/apimachinery/pkg/api/resource) -------------------------------------

class QuantityError(ValueError):
    pass


_QUANTITY = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?(.*)$")
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {v: k for k, v in _DECIMAL.items()}
_BINARY_SUFFIX = {v: k for k, v in _BINARY.items()}


class Quantity:
    """A parsed quantity: its exact value, its format, and Go's Value() and String() of it."""

    def __init__(self, text: str):
        match = _QUANTITY.match(text.strip())
        if not match or not (match[2] or match[3]):
            raise QuantityError("quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
        sign, num, denom, suffix = match[1], match[2] or "", match[3] or "", match[4]
        value = Fraction(int((num or "0") + denom), 10 ** len(denom))
        if sign == "-":
            value = -value
        if suffix in _BINARY:
            self.format, value = "BinarySI", value * (1 << _BINARY[suffix])
        elif suffix in _DECIMAL:
            self.format, value = "DecimalSI", value * Fraction(10) ** _DECIMAL[suffix]
        elif re.fullmatch(r"[eE][+-]?\d+", suffix):
            self.format, value = "DecimalExponent", value * Fraction(10) ** int(suffix[1:])
        else:
            raise QuantityError("unable to parse quantity's suffix")
        # ParseQuantity rounds up to nano units and caps binary quantities at the largest int64.
        value = Fraction(math.ceil(value * 10 ** 9), 10 ** 9) if value > 0 else \
            -Fraction(math.ceil(-value * 10 ** 9), 10 ** 9)
        if self.format == "BinarySI" and value > MAX_INT64:
            value = Fraction(MAX_INT64)
        self.exact = value
        # Whether ParseQuantity kept it in its int64 fast path (an out-of-range Value() is then 0).
        self._fast = len(num) + len(denom) <= 18

    def value(self) -> int:
        """Go's Quantity.Value(): rounded up to an integer; out of int64 range as Go computes it."""
        whole = math.ceil(self.exact)
        if -MAX_INT64 - 1 <= whole <= MAX_INT64:
            return whole
        if self._fast:
            return 0
        wrapped = whole & ((1 << 64) - 1)
        return wrapped - (1 << 64) if wrapped > MAX_INT64 else wrapped

    def milli_value(self) -> int:
        return math.ceil(self.exact * 1000)

    def is_zero(self) -> bool:
        return self.exact == 0

    def __str__(self) -> str:
        """Go's canonical form (Quantity.String()), for the values messages print."""
        value = self.exact
        if value == 0:
            return "0"
        sign = "-" if value < 0 else ""
        magnitude = abs(value)
        if self.format == "BinarySI" and magnitude.denominator == 1 and magnitude >= 1024:
            whole = magnitude.numerator
            for exp in (60, 50, 40, 30, 20, 10):
                if whole % (1 << exp) == 0:
                    return f"{sign}{whole >> exp}{_BINARY_SUFFIX[exp]}"
        if self.format == "DecimalExponent" and magnitude.denominator == 1:
            whole, exp = magnitude.numerator, 0
            while whole % 1000 == 0:
                whole, exp = whole // 1000, exp + 3
            return f"{sign}{whole}" + (f"e{exp}" if exp else "")
        for exp in range(18, -10, -3):
            scaled = magnitude / Fraction(10) ** exp
            if scaled.denominator == 1:
                if self.format == "DecimalExponent":
                    return f"{sign}{scaled.numerator}" + (f"e{exp}" if exp else "")
                return f"{sign}{scaled.numerator}{_DECIMAL_SUFFIX[exp]}"
        return f"{sign}{float(magnitude)}"


ZERO = Quantity("0")


def quantity(value: Any) -> Quantity:
    if value is None:
        return ZERO
    return Quantity(str(value))


def _resource(spec: JSON, kind: str, name: str) -> Quantity:
    """ResourceList.Memory()/Cpu(): the quantity, or zero when it is not set."""
    return quantity(((spec.get("domain") or {}).get("resources") or {}).get(kind, {}).get(name))


# -- defaults applied before validation (pkg/defaults/defaults.go SetDefaultVirtualMachineInstanceSpec)

def bridge_on_pod_network_permitted(config: JSON) -> bool:
    # virt-config.go IsBridgeInterfaceOnPodNetworkEnabled: permitted unless the KubeVirt CR says no.
    permitted = (config.get("network") or {}).get("permitBridgeInterfaceOnPodNetwork")
    return True if permitted is None else bool(permitted)


def set_defaults(spec: JSON, config: JSON) -> Optional[str]:
    """The defaults virt-api sets on a copy before validating; an error string if it cannot."""
    domain = spec.setdefault("domain", {})
    devices = domain.setdefault("devices", {})
    resources = domain.get("resources") or {}
    # defaults.go setGuestMemory
    memory = domain.get("memory") or {}
    if memory.get("guest") is None:
        for source in (resources.get("requests") or {}, resources.get("limits") or {}):
            if source.get("memory") is not None and not quantity(source["memory"]).is_zero():
                domain["memory"] = {**memory, "guest": source["memory"]}
                break
    # defaults.go SetDefaultGuestCPUTopology
    cpu = domain.get("cpu") or {}
    if not (cpu.get("cores") or cpu.get("sockets") or cpu.get("threads")):
        sockets = 1
        cpu_source = (resources.get("limits") or {}).get("cpu", (resources.get("requests") or {}).get("cpu"))
        if cpu_source is not None:
            sockets = quantity(cpu_source).value() & 0xFFFFFFFF
        domain["cpu"] = {**cpu, "sockets": sockets, "cores": 1, "threads": 1}
    # network/vmispec/defaults.go SetDefaultNetworkInterface
    if devices.get("autoattachPodInterface") is not False and not spec.get("networks") \
            and not devices.get("interfaces"):
        binding = (config.get("network") or {}).get("defaultNetworkInterface") or "bridge"
        if binding == "bridge":
            if not bridge_on_pod_network_permitted(config):
                return "bridge interface is not enabled in kubevirt-config"
            devices["interfaces"] = [{"name": "default", "bridge": {}}]
        elif binding == "masquerade":
            devices["interfaces"] = [{"name": "default", "masquerade": {}}]
        elif binding == "slirp":
            return "slirp interface is deprecated as of v1.3"
        spec["networks"] = [{"name": "default", "pod": {}}]
    # util.go SetDefaultVolumeDisk
    named = {d.get("name") for d in devices.get("disks") or []} | \
        {f.get("name") for f in devices.get("filesystems") or []}
    for volume in spec.get("volumes") or []:
        if volume.get("name") not in named:
            devices.setdefault("disks", []).append({"name": volume.get("name")})
    return None


# -- memory and CPU resources (vmi-create-admitter.go) --------------------------------------------

# vmi-create-admitter.go validateMemoryRequestsNegativeOrNull
def validate_memory_requests_negative_or_null(field: str, spec: JSON) -> List[Cause]:
    requests = _resource(spec, "requests", "memory")
    path = f"{field}.domain.resources.requests.memory"
    if requests.value() < 0:
        return [cause(INVALID, MUST_BE_POSITIVE % (path, requests), path)]
    if requests.value() > 0 and requests.exact < Quantity("1M").exact:
        return [cause(INVALID, f"{path} '{requests}': must be greater than or equal to 1M.", path)]
    return []


# vmi-create-admitter.go validateMemoryLimitsNegativeOrNull
def validate_memory_limits_negative_or_null(field: str, spec: JSON) -> List[Cause]:
    causes = []
    limits = _resource(spec, "limits", "memory")
    requests = _resource(spec, "requests", "memory")
    path = f"{field}.domain.resources.limits.memory"
    if limits.value() < 0:
        causes.append(cause(INVALID, MUST_BE_POSITIVE % (path, limits), path))
    if limits.value() > 0 and requests.value() > limits.value():
        req_path = f"{field}.domain.resources.requests.memory"
        causes.append(cause(INVALID, f"{req_path} '{requests}' is greater than {path} '{limits}'", req_path))
    return causes


def live_update_rollout(config: JSON) -> bool:
    # virt-config.go IsVMRolloutStrategyLiveUpdate: LiveUpdate unless the KubeVirt CR says Stage.
    return config.get("vmRolloutStrategy") in (None, "LiveUpdate")


# vmi-create-admitter.go validateGuestMemoryLimit
def validate_guest_memory_limit(field: str, spec: JSON, config: JSON) -> List[Cause]:
    if live_update_rollout(config):
        return []
    guest_raw = ((spec.get("domain") or {}).get("memory") or {}).get("guest")
    if guest_raw is None:
        return []
    limits, guest = _resource(spec, "limits", "memory"), quantity(guest_raw)
    if limits.value() < guest.value() and limits.value() != 0:
        path = f"{field}.domain.memory.guest"
        return [cause(INVALID, f"{path} '{guest}' must be equal to or less than the memory limit "
                               f"{field}.domain.resources.limits.memory '{limits}'", path)]
    return []


# vmi-create-admitter.go validateCPURequestNotNegative
def validate_cpu_request_not_negative(field: str, spec: JSON) -> List[Cause]:
    requests = _resource(spec, "requests", "cpu")
    path = f"{field}.domain.resources.requests.cpu"
    return [cause(INVALID, MUST_BE_POSITIVE % (path, requests), path)] if requests.milli_value() < 0 else []


# vmi-create-admitter.go validateCPULimitNotNegative
def validate_cpu_limit_not_negative(field: str, spec: JSON) -> List[Cause]:
    limits = _resource(spec, "limits", "cpu")
    path = f"{field}.domain.resources.limits.cpu"
    return [cause(INVALID, MUST_BE_POSITIVE % (path, limits), path)] if limits.milli_value() < 0 else []


# vmi-create-admitter.go validateCpuRequestDoesNotExceedLimit
def validate_cpu_request_does_not_exceed_limit(field: str, spec: JSON) -> List[Cause]:
    requests, limits = _resource(spec, "requests", "cpu"), _resource(spec, "limits", "cpu")
    if limits.milli_value() > 0 and requests.milli_value() > limits.milli_value():
        path = f"{field}.domain.resources.requests.cpu"
        return [cause(INVALID, f"{path} '{requests}' is greater than {field}.domain.resources.limits.cpu "
                               f"'{limits}'", path)]
    return []


SOCKETS_ABOVE_MAX = "Number of sockets in CPU topology is greater than the maximum sockets allowed"


# vmi-create-admitter.go validateCPUHotplug
def validate_cpu_hotplug(field: str, spec: JSON) -> List[Cause]:
    cpu = (spec.get("domain") or {}).get("cpu") or {}
    if cpu.get("maxSockets") and (cpu.get("sockets") or 0) > cpu["maxSockets"]:
        return [cause(INVALID, SOCKETS_ABOVE_MAX, f"{field}.domain.cpu.sockets")]
    return []


# vms-admitter.go validateLiveUpdateCPU (run by validateLiveUpdateFeatures under LiveUpdate rollout)
def validate_live_update_cpu(field: str, vm_spec: JSON, config: JSON) -> List[Cause]:
    if not live_update_rollout(config):
        return []
    cpu = ((vm_spec.get("template") or {}).get("spec") or {}).get("domain", {}).get("cpu")
    if cpu and cpu.get("sockets") and cpu.get("maxSockets") and cpu["sockets"] > cpu["maxSockets"]:
        return [cause(INVALID, SOCKETS_ABOVE_MAX, f"{field}.template.spec.domain.cpu.sockets")]
    return []


# vms-admitter.go validateLiveUpdateFeatures (memory part): with maxGuest set, the guest memory must
# suit memory hotplug (pkg/liveupdate/memory/memory.go ValidateLiveUpdateMemory).
def validate_live_update_memory(field: str, vm_spec: JSON, config: JSON) -> List[Cause]:
    if not live_update_rollout(config):
        return []
    template_spec = (vm_spec.get("template") or {}).get("spec") or {}
    memory = (template_spec.get("domain") or {}).get("memory") or {}
    if memory.get("maxGuest") is None:
        return []
    from .live_update import validate_live_update_memory as check  # pylint: disable=import-outside-toplevel
    problem = check(template_spec, memory["maxGuest"])
    return [cause(INVALID, problem, f"{field}.template.spec.domain.memory.guest")] if problem else []


# The CPU topology fields are uint32 in KubeVirt's types: virt-api's json.Unmarshal of the object
# (vms-admitter.go Admit; webhooks.go GetVMIFromAdmissionReview) fails on a negative one, and
# ToAdmissionResponseError answers 400 with encoding/json's message (the first such field).
def unmarshal_error(kind: str, obj: JSON) -> Optional[str]:
    prefix = "spec.template.spec.domain.cpu" if kind == "VirtualMachine" else "spec.domain.cpu"
    spec = obj.get("spec") or {}
    if kind == "VirtualMachine":
        spec = (spec.get("template") or {}).get("spec") or {}
    cpu = (spec.get("domain") or {}).get("cpu") or {}
    for key, value in cpu.items():
        if key in ("sockets", "cores", "threads", "maxSockets") and isinstance(value, int) \
                and not isinstance(value, bool) and not 0 <= value <= 0xFFFFFFFF:
            return f"json: cannot unmarshal number {value} into Go struct field CPU.{prefix}.{key} of type uint32"
    return None


# -- networks and interfaces (pkg/network/admitter) ------------------------------------------------

def _interfaces(spec: JSON) -> List[JSON]:
    return ((spec.get("domain") or {}).get("devices") or {}).get("interfaces") or []


# network/admitter/netsource.go validateSinglePodNetwork
def validate_single_pod_network(field: str, spec: JSON) -> List[Cause]:
    causes = []
    networks = spec.get("networks") or []
    pods = [n for n in networks if n.get("pod") is not None]
    multus_defaults = [n for n in networks if (n.get("multus") or {}).get("default")]
    if len(pods) > 1:
        causes.append(cause(DUPLICATE, f"more than one interface is connected to a pod network in "
                                       f"{field}.interfaces", f"{field}.interfaces"))
    if len(multus_defaults) > 1:
        causes.append(cause(INVALID, "Multus CNI should only have one default network", f"{field}.networks"))
    if pods and multus_defaults:
        causes.append(cause(INVALID, "Pod network cannot be defined when Multus default network is defined",
                            f"{field}.networks"))
    return causes


# network/admitter/netsource.go validateSingleNetworkSource
def validate_single_network_source(field: str, spec: JSON) -> List[Cause]:
    causes = []
    for idx, net in enumerate(spec.get("networks") or []):
        count = sum(net.get(k) is not None for k in ("pod", "multus", "resourceClaim"))
        if count == 0:
            causes.append(cause(REQUIRED, "should have a network type", f"{field}.networks[{idx}]"))
        elif count > 1:
            causes.append(cause(REQUIRED, "should have only one network type", f"{field}.networks[{idx}]"))
    return causes


# network/admitter/netsource.go validateMultusNetworkSource
def validate_multus_network_source(field: str, spec: JSON) -> List[Cause]:
    for idx, net in enumerate(spec.get("networks") or []):
        if net.get("multus") is not None and not net["multus"].get("networkName"):
            return [cause(REQUIRED, "CNI delegating plugin must have a networkName", f"{field}.networks[{idx}]")]
    return []


# network/admitter/admit.go validateInterfaceStateValue (NIC hot-unplug is `state: absent`)
def validate_interface_state_value(field: str, spec: JSON) -> List[Cause]:
    causes = []
    default = next((n for n in spec.get("networks") or []
                    if n.get("pod") is not None or (n.get("multus") or {}).get("default")), None)
    for idx, iface in enumerate(_interfaces(spec)):
        path = f"{field}.domain.devices.interfaces[{idx}].state"
        state, name = iface.get("state", ""), iface.get("name", "")
        if state not in ("", "absent", "down", "up"):
            causes.append(cause(INVALID, f"logical {name} interface state value is unsupported: {state}", path))
        if iface.get("sriov") is not None and state in ("down", "up"):
            causes.append(cause(INVALID, f'"{name}" interface\'s state "{state}" is not supported for SR-IOV NICs', path))
        if state == "absent" and iface.get("bridge") is None:
            causes.append(cause(INVALID, f'"{name}" interface\'s state "{state}" is supported only for bridge binding',
                                path))
        if state == "absent" and default is not None and default.get("name") == name:
            causes.append(cause(INVALID, f'"{name}" interface\'s state "{state}" is not supported on default networks',
                                path))
    return causes


BINDINGS = ("bridge", "masquerade", "sriov", "passt", "binding")


# network/admitter/binding.go validateInterfaceBinding (validateInterfaceBindingExists,
# validateMasqueradeBinding, validateBridgeBinding)
def validate_interface_binding(field: str, spec: JSON, config: JSON) -> List[Cause]:
    causes = []
    networks = {n.get("name"): n for n in spec.get("networks") or []}
    for idx, iface in enumerate(_interfaces(spec)):
        path = f"{field}.domain.devices.interfaces[{idx}]"
        net = networks.get(iface.get("name")) or {}
        if sum(iface.get(k) is not None for k in BINDINGS) != 1:
            causes.append(cause(INVALID, f"logical {iface.get('name', '')} interface must have exactly one binding "
                                         f"method or binding plugin", path))
        if iface.get("masquerade") is not None and net.get("pod") is None:
            causes.append(cause(INVALID, "Masquerade interface only implemented with pod network", f"{path}.name"))
        if iface.get("masquerade") is not None and _reserved_mac(iface.get("macAddress", "")):
            causes.append(cause(INVALID, "The requested MAC address is reserved for the in-pod bridge. "
                                         "Please choose another one.", f"{path}.macAddress"))
        if iface.get("bridge") is not None and net.get("pod") is not None \
                and not bridge_on_pod_network_permitted(config):
            causes.append(cause(INVALID, "Bridge on pod network configuration is not enabled under kubevirt-config",
                                f"{path}.name"))
    return causes


def _reserved_mac(mac: str) -> bool:
    # network/link/mac.go IsReserved: the in-pod bridge's fixed MAC.
    return mac.lower() == "02:00:00:00:00:00"


# network/admitter/netiface.go validateNetworkNameUnique
def validate_network_name_unique(field: str, spec: JSON) -> List[Cause]:
    causes, seen = [], set()
    for idx, net in enumerate(spec.get("networks") or []):
        name = net.get("name", "")
        if name in seen:
            causes.append(cause(DUPLICATE, f'Network with name "{name}" already exists, every network must have '
                                           f'a unique name', f"{field}.networks[{idx}].name"))
        seen.add(name)
    return causes


# network/admitter/netiface.go validateNetworksAssignedToInterfaces
def validate_networks_assigned_to_interfaces(field: str, spec: JSON) -> List[Cause]:
    names = {i.get("name", "") for i in _interfaces(spec)}
    return [cause(REQUIRED, NAME_NOT_FOUND % (f"{field}.networks[{idx}].name", net.get("name", "")),
                  f"{field}.networks[{idx}].name")
            for idx, net in enumerate(spec.get("networks") or []) if net.get("name", "") not in names]


# network/admitter/netiface.go validateInterfaceNameUnique
def validate_interface_name_unique(field: str, spec: JSON) -> List[Cause]:
    causes, seen = [], set()
    for idx, iface in enumerate(_interfaces(spec)):
        name = iface.get("name", "")
        if name in seen:
            causes.append(cause(DUPLICATE, "Only one interface can be connected to one specific network",
                                f"{field}.domain.devices.interfaces[{idx}].name"))
        seen.add(name)
    return causes


# network/admitter/netiface.go validateInterfacesAssignedToNetworks
def validate_interfaces_assigned_to_networks(field: str, spec: JSON) -> List[Cause]:
    names = {n.get("name", "") for n in spec.get("networks") or []}
    out = []
    for idx, iface in enumerate(_interfaces(spec)):
        if iface.get("name", "") not in names:
            path = f"{field}.domain.devices.interfaces[{idx}].name"
            out.append(cause(INVALID, NAME_NOT_FOUND % (path, iface.get("name", "")), path))
    return out


VALID_INTERFACE_MODELS = ("e1000", "e1000e", "igb", "ne2k_pci", "pcnet", "rtl8139", "virtio")
_MAC = re.compile(r"^(?:[0-9A-Fa-f]{2}([:-]))(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}$")


# network/admitter/netiface.go validateInterfacesFields (validateInterfaceNameFormat,
# validateInterfaceModel, validateMacAddress)
def validate_interfaces_fields(field: str, spec: JSON) -> List[Cause]:
    causes = []
    for idx, iface in enumerate(_interfaces(spec)):
        path = f"{field}.domain.devices.interfaces[{idx}]"
        if not re.fullmatch(r"[A-Za-z0-9-_]+", iface.get("name", "")):
            causes.append(cause(INVALID, "Network interface name can only contain alphabetical characters, "
                                         "numbers, dashes (-) or underscores (_)", f"{path}.name"))
        model = iface.get("model", "")
        if model and model not in VALID_INTERFACE_MODELS:
            causes.append(cause(NOT_SUPPORTED, f"interface {path}.name uses model {model} that is not supported.",
                                f"{path}.model"))
        mac = iface.get("macAddress", "")
        # network/link/mac.go ValidateMacAddress: net.ParseMAC, and at most 6 bytes (EUI-48 here).
        if mac and not _MAC.match(mac):
            causes.append(cause(INVALID, f"interface {path}.name has malformed MAC address ({mac}).",
                                f"{path}.macAddress"))
    return causes


# network/admitter/validator.go Validate
def validate_network(field: str, spec: JSON, config: JSON) -> List[Cause]:
    return (validate_single_pod_network(field, spec) + validate_single_network_source(field, spec)
            + validate_multus_network_source(field, spec) + validate_interface_state_value(field, spec)
            + validate_interface_binding(field, spec, config)
            + validate_network_name_unique(field, spec) + validate_networks_assigned_to_interfaces(field, spec)
            + validate_interface_name_unique(field, spec) + validate_interfaces_assigned_to_networks(field, spec)
            + validate_interfaces_fields(field, spec))


# -- disks and volumes ------------------------------------------------------------------------------

def _disks(spec: JSON) -> List[JSON]:
    return ((spec.get("domain") or {}).get("devices") or {}).get("disks") or []


def declarative_hotplug_enabled(config: JSON) -> bool:
    """virt-config DeclarativeHotplugVolumesEnabled: Beta in v1.9, so on unless listed in disabledFeatureGates
    (featuregate/feature-gates.go IsEnabled)."""
    dev = config.get("developerConfiguration") or {}
    if "DeclarativeHotplugVolumes" in (dev.get("featureGates") or []):
        return True
    return "DeclarativeHotplugVolumes" not in (dev.get("disabledFeatureGates") or [])


# vmi-create-admitter.go validateBootOrder (disks match volumes; boot orders unique)
def validate_boot_order(field: str, spec: JSON, config: JSON) -> List[Cause]:
    causes, orders = [], set()
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for idx, disk in enumerate(_disks(spec)):
        path = f"{field}.domain.devices.disks[{idx}]"
        volume = volumes.get(disk.get("name"))
        if volume is None:
            if disk.get("cdrom") is None:
                causes.append(cause(INVALID, NAME_NOT_FOUND % (f"{path}.Name", disk.get("name", "")), f"{path}.name"))
            elif not declarative_hotplug_enabled(config):
                causes.append(cause(INVALID, "DeclarativeHotplugVolumes feature gate not enabled, cannot define "
                                             "an empty CD-ROM disk", f"{path}.name"))
        if disk.get("lun") is not None and volume is not None and volume.get("persistentVolumeClaim") is None \
                and volume.get("dataVolume") is None:
            causes.append(cause(INVALID, f"{path}.lun can only be mapped to a DataVolume or "
                                         f"PersistentVolumeClaim volume.", f"{path}.lun"))
        order = disk.get("bootOrder")
        if order is not None:
            if order in orders:
                causes.append(cause(INVALID, f"Boot order for {path}.bootOrder already set for a different device.",
                                    f"{path}.bootOrder"))
            orders.add(order)
    # vmi-create-admitter.go validateInterfaceBootOrder
    for idx, iface in enumerate(_interfaces(spec)):
        order = iface.get("bootOrder")
        if order is not None:
            path = f"{field}.domain.devices.interfaces[{idx}].bootOrder"
            if order in orders:
                causes.append(cause(INVALID, f"Boot order for {path} already set for a different device.", path))
            orders.add(order)
    return causes


_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_ERROR = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                       "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                       "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
SUPPORTED_BUSES = "[virtio scsi sata usb]"


def _disk_target(disk: JSON) -> Tuple[str, str]:
    for kind in ("disk", "lun", "cdrom"):
        if disk.get(kind) is not None:
            return kind, (disk[kind] or {}).get("bus", "")
    return "", ""


# storage/admitters/disks.go ValidateDisks (validateDiskName, validateDeviceTarget,
# validateBootOrderValue, validateBusSupport, validateDiskNameAsContainerName)
def validate_disks(field: str, disks: List[JSON]) -> List[Cause]:
    causes = []
    for idx, disk in enumerate(disks):
        name = disk.get("name", "")
        for other in range(idx):
            if disks[other].get("name", "") == name:
                causes.append(cause(INVALID, f"{field}[{idx}] and {field}[{other}] must not have the same Name.",
                                    f"{field}[{idx}].name"))
        if sum(disk.get(k) is not None for k in ("disk", "lun", "cdrom")) > 1:
            causes.append(cause(INVALID, f"{field}[{idx}] can only have a single target type defined",
                                f"{field}[{idx}]"))
        if disk.get("bootOrder") is not None and disk["bootOrder"] < 1:
            causes.append(cause(INVALID, f"{field}[{idx}] must have a boot order > 0, if supplied",
                                f"{field}[{idx}].bootOrder"))
        kind, bus = _disk_target(disk)
        if bus == "ide":
            causes.append(cause(INVALID, "IDE bus is not supported", f"{field}[{idx}].{kind}.bus"))
        elif bus == "virtio" and kind == "cdrom":
            causes.append(cause(INVALID, "Bus type virtio is invalid for CD-ROM device", f"{field}[{idx}].cdrom.bus"))
        elif bus == "sata" and kind == "disk" and disk["disk"].get("readOnly"):
            causes.append(cause(INVALID, "sata hard-disks do not support read-only.", f"{field}[{idx}].disk.bus"))
        elif bus and bus not in ("virtio", "sata", "scsi", "usb"):
            causes.append(cause(INVALID, f"{field}[{idx}] is set with an unrecognized bus {bus}, must be one of: "
                                         f"{SUPPORTED_BUSES}", f"{field}[{idx}].{kind}.bus"))
        # KubeVirt builds this field from the disks path again (…disks.domain.devices.disks[i].name).
        name_path = f"{field}.domain.devices.disks[{idx}].name"
        if len(name) > 63:
            causes.append(cause(INVALID, "must be no more than 63 characters", name_path))
        if not _DNS1123_LABEL.match(name):
            causes.append(cause(INVALID, DNS1123_LABEL_ERROR, name_path))
    return causes


VOLUME_SOURCES = ("persistentVolumeClaim", "sysprep", "cloudInitNoCloud", "cloudInitConfigDrive", "containerDisk",
                  "ephemeral", "emptyDisk", "hostDisk", "dataVolume", "configMap", "secret", "downwardAPI",
                  "serviceAccount", "downwardMetrics", "memoryDump", "containerPath")


def _cloud_init_causes(path: str, source_type: str, source: JSON) -> List[Cause]:
    """The cloud-init part of validateVolumes: one source each for user and network data, within limits."""
    causes, counts = [], {}
    here = f"{path}.{source_type}"
    for data, limit in (("userData", CLOUD_INIT_USER_MAX_LEN), ("networkData", CLOUD_INIT_NETWORK_MAX_LEN)):
        count, length = 0, 0
        if (source.get(f"{data}SecretRef") or {}).get("name"):
            count += 1
        if source.get(f"{data}Base64"):
            count += 1
            try:
                length = len(base64.b64decode(source[f"{data}Base64"], validate=True))
            except ValueError:
                causes.append(cause(INVALID, f"{here}.{data}Base64.{source_type}.{data}Base64 is not a valid "
                                             f"base64 value.", f"{here}.{data}Base64"))
        if source.get(data):
            count += 1
            length = len(source[data].encode())
        if count > 1:
            causes.append(cause(INVALID, f"{here} must have only one userdatasource set." if data == "userData"
                                else f"{here} must have only one networkdata source set.", here))
        if length > limit:
            label, ref = ("userdata", "UserDataSecretRef") if data == "userData" else \
                ("networkdata", "NetworkDataSecretRef")
            causes.append(cause(INVALID, f"{here} {label} exceeds {limit} byte limit. Should use {ref} for "
                                         f"larger data.", here))
        counts[data] = count
    if not counts["userData"] and not counts["networkData"]:
        causes.append(cause(INVALID, f"{here} must have at least one userdatasource or one networkdatasource set.",
                            here))
    return causes


# vmi-create-admitter.go validateVolumes (unique names, one source, cloud-init data, DataVolume name)
def validate_volumes(field: str, volumes: List[JSON]) -> List[Cause]:
    causes: List[Cause] = []
    first: Dict[str, int] = {}
    for idx, volume in enumerate(volumes):
        name = volume.get("name", "")
        if name in first:
            causes.append(cause(INVALID, f"{field}[{idx}] and {field}[{first[name]}] must not have the same Name.",
                                f"{field}[{idx}].name"))
        else:
            first[name] = idx
        if volume.get("dataVolume") is not None and not volume["dataVolume"].get("name"):
            causes.append(cause(REQUIRED, "DataVolume 'name' must be set", f"{field}[{idx}].name"))
        if sum(volume.get(k) is not None for k in VOLUME_SOURCES) != 1:
            causes.append(cause(INVALID, f"{field}[{idx}] must have exactly one source type set", f"{field}[{idx}]"))
        for source_type in ("cloudInitNoCloud", "cloudInitConfigDrive"):
            if volume.get(source_type) is not None:
                causes += _cloud_init_causes(f"{field}[{idx}]", source_type, volume[source_type] or {})
                break
    return causes


# vmi-create-admitter.go validateVirtualMachineInstanceSpecVolumeDisks (VMI creation only)
def validate_volume_disks(field: str, spec: JSON) -> List[Cause]:
    devices = (spec.get("domain") or {}).get("devices") or {}
    names = {d.get("name") for d in devices.get("disks") or []} | {f.get("name") for f in devices.get("filesystems") or []}
    out = []
    for idx, volume in enumerate(spec.get("volumes") or []):
        if volume.get("memoryDump") is None and volume.get("name") not in names:
            path = f"{field}.domain.volumes[{idx}].name"
            out.append(cause(INVALID, NAME_NOT_FOUND % (path, volume.get("name", "")), path))
    return out


# vmi-create-admitter.go ValidateVirtualMachineInstanceMandatoryFields (VMI creation only)
def validate_mandatory_fields(field: str, spec: JSON) -> List[Cause]:
    if _resource(spec, "requests", "memory").value() != 0:
        return []
    memory = (spec.get("domain") or {}).get("memory")
    if memory is None or (memory.get("guest") is None and memory.get("hugepages") is None):
        return [cause(REQUIRED, f"no memory requested, at least one of '{field}.domain.memory.guest', "
                                f"'{field}.domain.memory.hugepages.pageSize' or "
                                f"'{field}.domain.resources.requests.memory' must be set")]
    return []


# storage/admitters/data-volume-template.go ValidateDataVolumeTemplate (and validateDataVolume)
def validate_data_volume_templates(field: str, vm_spec: JSON) -> List[Cause]:
    causes = []
    volumes = ((vm_spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    for idx, template in enumerate(vm_spec.get("dataVolumeTemplates") or []):
        path = f"{field}.dataVolumeTemplate[{idx}]"
        name = (template.get("metadata") or {}).get("name", "")
        dv_spec = template.get("spec") or {}
        problem = None
        if not name:
            problem = cause(REQUIRED, f"'name' field must not be empty for DataVolumeTemplate entry {path}.name.",
                            f"{path}.name")
        elif dv_spec.get("pvc") is None and dv_spec.get("storage") is None:
            problem = cause(INVALID, "Missing Data volume PVC or Storage", f"{path}.PVC.Storage")
        elif dv_spec.get("pvc") is not None and dv_spec.get("storage") is not None:
            problem = cause(INVALID, "Duplicate storage definition, both target storage and target pvc defined",
                            f"{path}.PVC.Storage")
        else:
            target = dv_spec.get("pvc") or dv_spec.get("storage") or {}
            external = target.get("dataSourceRef") is not None or target.get("dataSource") is not None
            sourced = dv_spec.get("source") is not None or dv_spec.get("sourceRef") is not None
            if external and sourced:
                problem = cause(INVALID, "External population is incompatible with Source and SourceRef",
                                f"{path}.source")
            elif not external and not sourced:
                problem = cause(INVALID, "Data volume should have either Source, SourceRef, or be externally "
                                         "populated", f"{path}.source.sourceRef")
        if problem:
            causes.append(problem)
            continue
        if not any((v.get("persistentVolumeClaim") or {}).get("claimName") == name
                   or (v.get("dataVolume") or {}).get("name") == name for v in volumes):
            causes.append(cause(REQUIRED, f"DataVolumeTemplate entry {path} must be referenced in the VMI "
                                          f"template's 'volumes' list", path))
    return causes


# -- the spec, the VM and the review ----------------------------------------------------------------

# vmi-create-admitter.go ValidateVirtualMachineInstanceSpec (the checks mirrored here, in its order)
def validate_vmi_spec(field: str, spec: JSON, config: JSON) -> List[Cause]:
    return (validate_memory_requests_negative_or_null(field, spec)
            + validate_memory_limits_negative_or_null(field, spec)
            + validate_guest_memory_limit(field, spec, config)
            + validate_cpu_request_not_negative(field, spec)
            + validate_cpu_limit_not_negative(field, spec)
            + validate_cpu_request_does_not_exceed_limit(field, spec)
            + validate_cpu_hotplug(field, spec)
            + validate_network(field, spec, config)
            + validate_boot_order(field, spec, config)
            + validate_disks(f"{field}.domain.devices.disks", _disks(spec))
            + validate_volumes(f"{field}.volumes", spec.get("volumes") or []))


# vms-admitter.go validateRunStrategy
def validate_run_strategy(field: str, vm_spec: JSON, config: JSON) -> List[Cause]:
    causes = []
    running, strategy = vm_spec.get("running"), vm_spec.get("runStrategy")
    if running is not None and strategy is not None:
        causes.append(cause(INVALID, "Running and RunStrategy are mutually exclusive. Note that Running is "
                                     "deprecated, please use RunStrategy instead", f"{field}.running"))
    if running is None and strategy is None:
        causes.append(cause(INVALID, "RunStrategy must be specified", f"{field}.running"))
    if strategy is not None:
        if strategy == "WaitAsReceiver":
            gates = (config.get("developerConfiguration") or {}).get("featureGates") or []
            if DECENTRALIZED_LIVE_MIGRATION_GATE not in gates:
                causes.append(cause(INVALID, f"Invalid RunStrategy ({strategy}), {DECENTRALIZED_LIVE_MIGRATION_GATE} "
                                             f"feature gate is not enabled in kubevirt resource", f"{field}.runStrategy"))
        elif strategy not in VALID_RUN_STRATEGIES:
            causes.append(cause(INVALID, f"Invalid RunStrategy ({strategy})", f"{field}.runStrategy"))
    return causes


# vms-admitter.go ValidateVirtualMachineSpec
def validate_vm_spec(field: str, vm_spec: JSON, config: JSON) -> List[Cause]:
    template = vm_spec.get("template")
    if template is None:
        return [cause(REQUIRED, "missing virtual machine template.", f"{field}.template")]
    return (validate_vmi_spec(f"{field}.template.spec", template.get("spec") or {}, config)
            + validate_data_volume_templates(field, vm_spec)
            + validate_run_strategy(field, vm_spec, config)
            + validate_live_update_cpu(field, vm_spec, config)
            + validate_live_update_memory(field, vm_spec, config))


# util/webhooks/webhooks.go ToAdmissionResponse: the first ten causes, their messages joined.
def denied(causes: List[Cause]) -> JSON:
    shown = causes[:10]
    message = ", ".join(c["message"] for c in shown)
    if len(causes) > 10:
        message += f", and {len(causes) - 10} more validation errors"
    return {"allowed": False, "status": {"message": message, "reason": "Invalid", "code": 422,
                                         "details": {"causes": shown}}}


# util/webhooks/webhooks.go ToAdmissionResponseError
def error_response(message: str) -> JSON:
    return {"allowed": False, "status": {"message": message, "code": 400}}


def _object(request: JSON) -> JSON:
    return request.get("object") or {}


# vms-admitter.go VMsAdmitter.Admit
def admit_vm(request: JSON, config: JSON) -> JSON:
    vm = _object(request)
    resource = request.get("resource") or {}
    if resource.get("group") != "kubevirt.io" or resource.get("resource") != "virtualmachines":
        return error_response("expect resource to be 'virtualmachines'")
    if "spec" not in vm:
        return error_response('spec in body is required')
    problem = unmarshal_error("VirtualMachine", vm)
    if problem:
        return error_response(problem)
    if (vm.get("metadata") or {}).get("deletionTimestamp"):
        return {"allowed": True}
    vm_spec = copy.deepcopy(vm.get("spec") or {})
    if vm_spec.get("template") is not None:
        problem = set_defaults(vm_spec["template"].setdefault("spec", {}), config)
        if problem:
            return error_response(problem)
    causes = validate_vm_spec("spec", vm_spec, config)
    if causes:
        return denied(causes)
    causes = validate_snapshot_status(request, vm)
    if causes:
        return denied(causes)
    response: JSON = {"allowed": True}
    if vm_spec.get("running") is not None:
        response["warnings"] = ["spec.running is deprecated, please use spec.runStrategy instead."]
    return response


def validate_snapshot_status(request: JSON, vm: JSON) -> List[Cause]:
    """pkg/storage/admitters/vm-storage-status.go validateSnapshotStatus (via storageadmitters.Admit in
    vms-admitter.go): while status.snapshotInProgress is set, an update may change neither the template's volumes
    (compareVolumes) nor the run strategy (compareRunningSpec: both `running` or both `runStrategy` and equal)."""
    in_progress = (vm.get("status") or {}).get("snapshotInProgress")
    if request.get("operation") != "UPDATE" or not in_progress:
        return []
    old = (request.get("oldObject") or {}).get("spec") or {}
    new = vm.get("spec") or {}

    def volumes(spec: JSON) -> list:
        return ((spec.get("template") or {}).get("spec") or {}).get("volumes") or []
    if volumes(old) != volumes(new):
        return [{"reason": "FieldValueNotSupported", "field": "spec",
                 "message": f'Cannot update vm disks or volumes until snapshot "{in_progress}" completes'}]
    if old.get("running") is not None and new.get("running") is not None:
        same = old["running"] == new["running"]
    elif old.get("runStrategy") is not None and new.get("runStrategy") is not None:
        same = old["runStrategy"] == new["runStrategy"]
    else:
        same = False
    if not same:
        return [{"reason": "FieldValueNotSupported", "field": "spec",
                 "message": f'Cannot update vm running state until snapshot "{in_progress}" completes'}]
    return []


# vmi-create-admitter.go VMICreateAdmitter.Admit. On a cluster virt-api's mutating webhook has set
# the defaults (defaults.go SetDefaultVirtualMachineInstance) before this runs; the lab has no
# mutating webhook, so they are set here on a copy, the way the VM admitter does.
def admit_vmi_create(request: JSON, config: JSON) -> JSON:
    vmi = _object(request)
    if "spec" not in vmi:
        return error_response('spec in body is required')
    problem = unmarshal_error("VirtualMachineInstance", vmi)
    if problem:
        return error_response(problem)
    spec = copy.deepcopy(vmi.get("spec") or {})
    problem = set_defaults(spec, config)
    if problem:
        return error_response(problem)
    causes = (validate_vmi_spec("spec", spec, config) + validate_volume_disks("spec", spec)
              + validate_mandatory_fields("spec", spec))
    return denied(causes) if causes else {"allowed": True}


def review(body: JSON, admit: Callable[[JSON, JSON], JSON], config: JSON) -> JSON:
    """The AdmissionReview answer to an AdmissionReview request."""
    request = body.get("request") or {}
    try:
        response = admit(request, config)
    except QuantityError as err:  # json.Unmarshal of the object fails in virt-api: a 400
        response = error_response(str(err))
    response["uid"] = request.get("uid", "")
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


# The paths virt-api serves them on (virt-operator components/webhooks.go VMValidatePath,
# VMICreateValidatePath) and the admit function behind each.
ADMITTERS: Dict[str, Callable[[JSON, JSON], JSON]] = {
    "/virtualmachines-validate": admit_vm,
    "/virtualmachineinstances-validate-create": admit_vmi_create,
    # cdi-apiserver's DataVolume webhook, served by the same stand-in server (cdi_webhook.py)
    cdi_webhook.PATH: cdi_webhook.admit_datavolume,
}
