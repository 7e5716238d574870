"""A VMI interface's status, computed in one place for the stand-in's virt-controller and virt-handler
(KubeVirt v1.9.0):

- virt-controller, pkg/network/controllers/vmi.go calculatePrimaryIfaceStatus (podInterfaceName eth0,
  namescheme.PrimaryPodInterfaceName) and calculateSecondaryIfaceStatuses (Multus networks that are not
  the default: infoSource multus-status and the hashed pod interface name, namescheme
  GenerateHashedInterfaceName);
- virt-handler, pkg/network/setup/netstat.go UpdateStatus: the domain's interfaces (mac, linkState,
  queueCount, infoSource "domain"), the pod interface cache (the primary network's IP), the guest agent
  (interfaceName and the guest's IPs; infoSource InfoSourceDomainAndGA "domain, guest-agent"), then
  ifacesStatusFromMultus (AddInfoSource multus-status for the interfaces virt-controller marked) and
  restorePodIfaceNames.

The addresses are the lab's own: the primary's from the VMI's active virt-launcher pod (the VMI uid, or the
last successful migration's uid once the VMI runs in that migration's target pod), a secondary's from its MAC.
"""

import hashlib
from typing import List, Optional

from ..kube import JSON

DOMAIN = "domain"
GUEST_AGENT = "guest-agent"
MULTUS_STATUS = "multus-status"
SEPARATOR = ", "
PRIMARY_POD_IFACE = "eth0"


def add_info_source(sources: str, name: str) -> str:
    """pkg/network/vmispec/infosource.go AddInfoSource."""
    names = sources.split(SEPARATOR) if sources else []
    return sources if name in names else SEPARATOR.join(names + [name])


def has_info_source(sources: Optional[str], name: str) -> bool:
    """infosource.go ContainsInfoSource."""
    return name in (sources or "").split(SEPARATOR)


def hashed_pod_iface(network_name: str) -> str:
    """pkg/network/namescheme GenerateHashedInterfaceName."""
    return "pod" + hashlib.sha256(network_name.encode()).hexdigest()[:11]


def is_secondary(network: Optional[JSON]) -> bool:
    """vmispec.FilterMultusNonDefaultNetworks."""
    multus = (network or {}).get("multus")
    return multus is not None and not (multus or {}).get("default")


def multus_only(name: str) -> JSON:
    """calculateSecondaryIfaceStatuses for a pod interface the domain has not got yet."""
    return {"name": name, "infoSource": MULTUS_STATUS, "podInterfaceName": hashed_pod_iface(name)}


def mac_of(vmi: JSON, iface: JSON, index: int) -> str:
    """The MAC libvirt gives an interface without spec.macAddress (the lab's: from the VMI uid)."""
    if iface.get("macAddress"):
        return iface["macAddress"]
    digest = hashlib.sha256(f"{vmi['metadata']['uid']}:{index}".encode()).digest()
    return "02:%02x:%02x:%02x:%02x:%02x" % tuple(digest[:5])


def _secondary_ip(mac: str) -> str:
    seed = hashlib.sha256(mac.encode()).digest()
    return f"192.168.{100 + seed[0] % 100}.{2 + seed[1] % 250}"


def active_pod_seed(vmi: JSON) -> str:
    """Which virt-launcher pod runs the domain: the first one (the VMI uid) until a migration succeeds,
    then that migration's target pod. The pod IP follows the pod (netstat.go updateIfacesStatusFromPodCache
    reads the current pod's interface cache), so it changes with every successful migration."""
    state = (vmi.get("status") or {}).get("migrationState") or {}
    if state.get("completed") and not state.get("failed") and state.get("migrationUid"):
        return state["migrationUid"]
    return vmi["metadata"]["uid"]


def pod_ip(vmi: JSON) -> str:
    """The active pod's IP on the pod network."""
    digest = hashlib.sha256(active_pod_seed(vmi).encode()).digest()
    return f"10.244.{digest[1] % 250}.{2 + digest[2] % 250}"


def with_pod_ip(vmi: JSON, statuses: List[JSON]) -> List[JSON]:
    """updateIfacesStatusFromPodCache after the pod changed: the primary interface reports the new pod's IP."""
    ip = pod_ip(vmi)
    return [{**s, "ipAddress": ip, "ipAddresses": [ip]} if s.get("podInterfaceName") == PRIMARY_POD_IFACE else s
            for s in statuses]


def interface_status(vmi: JSON, iface: JSON, index: int, agent: bool, mac: Optional[str] = None) -> JSON:
    """The status of an interface attached to the domain (netstat.go UpdateStatus)."""
    name = iface.get("name")
    networks = {n.get("name"): n for n in (vmi.get("spec") or {}).get("networks") or []}
    secondary = is_secondary(networks.get(name))
    mac = mac or mac_of(vmi, iface, index)
    status: JSON = {"name": name, "mac": mac, "linkState": "up", "queueCount": 1,
                    "infoSource": DOMAIN + SEPARATOR + GUEST_AGENT if agent else DOMAIN}
    ip = None
    if not secondary:  # updateIfacesStatusFromPodCache: the primary network's pod IP
        ip = pod_ip(vmi)
        status["podInterfaceName"] = PRIMARY_POD_IFACE
    if agent:  # ifacesStatusFromGuestAgent
        status["interfaceName"] = f"eth{index}"
        ip = ip or _secondary_ip(mac)
    if ip:
        status.update(ipAddress=ip, ipAddresses=[ip])
    if secondary:  # ifacesStatusFromMultus, restorePodIfaceNames
        status["infoSource"] = add_info_source(status["infoSource"], MULTUS_STATUS)
        status["podInterfaceName"] = hashed_pod_iface(name)
    return status


def with_agent(statuses: List[JSON]) -> List[JSON]:
    """The statuses once the guest agent reports (ifacesStatusFromGuestAgent, then ifacesStatusFromMultus):
    each interface the domain has gets the agent's interface name and IP and infoSource "domain, guest-agent",
    plus multus-status where virt-controller marked it; interfaces only Multus knows stay as they are."""
    result = []
    for position, status in enumerate(statuses):
        sources = status.get("infoSource")
        if not has_info_source(sources, DOMAIN):
            result.append(status)
            continue
        updated = {**status, "infoSource": DOMAIN + SEPARATOR + GUEST_AGENT, "interfaceName": f"eth{position}"}
        if not updated.get("ipAddress"):
            ip = _secondary_ip(status.get("mac", ""))
            updated.update(ipAddress=ip, ipAddresses=[ip])
        if has_info_source(sources, MULTUS_STATUS):
            updated["infoSource"] = add_info_source(updated["infoSource"], MULTUS_STATUS)
        result.append(updated)
    return result
