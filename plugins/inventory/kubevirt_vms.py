# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: kubevirt_vms
short_description: KubeVirt virtual machines as inventory hosts
version_added: 0.1.0
description:
  - Lists KubeVirt C(VirtualMachine) objects (running ones, and stopped ones when asked) with their instances and
    makes each a host; C(ansible_host) is the address of the pod network or of a named network.
  - Groups by namespace and by label, plus C(compose), C(groups) and C(keyed_groups) from the constructed plugin.
  - Windows guests (from the guest agent's OS id, or the C(vm.kubevirt.io/os) / C(kubevirt.io/os) label or
    annotation) get a WinRM connection. Services of type NodePort or LoadBalancer that select a VM are listed
    with all their ports, and an SSH (22) or WinRM (5985/5986) port among them becomes C(ansible_port).
  - The cluster is given by the Kubernetes connection options, or by O(palette_cluster) (a Palette cluster's name)
    with the C(palette_*) options, whose kubeconfig is then fetched from Palette and kept in memory; the inventory
    cache holds only the hosts, never the kubeconfig.
  - The inventory file must end in C(kubevirt_vms.yml) or C(kubevirt_vms.yaml).
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.kube_auth
  - palette.vmo.palette_cluster
  - palette.vmo.palette_auth
  - constructed
  - inventory_cache
options:
  plugin:
    description: The name of this plugin; it marks the file as this plugin's source.
    type: str
    required: true
    choices: [palette.vmo.kubevirt_vms]
  namespaces:
    description: Namespaces to list; all the user may list when empty.
    type: list
    elements: str
    default: []
  label_selector:
    description: Only VMs with these labels (a Kubernetes label selector).
    type: str
  include_stopped:
    description: Also add VMs without a running instance (no C(ansible_host)).
    type: bool
    default: false
  network_name:
    description: Take C(ansible_host) from this interface (a Multus network's name); the first address otherwise.
    type: str
  host_format:
    description: Host name pattern; C({name}), C({namespace}) and C({uid}) are replaced.
    type: str
    default: "{namespace}-{name}"
  use_service:
    description: Look up NodePort and LoadBalancer services that select each VM for C(ansible_host) / C(ansible_port).
    type: bool
    default: true
  windows_connection:
    description: C(ansible_connection) for Windows guests.
    type: str
    default: winrm
  api_version:
    description: The C(kubevirt.io) version; discovered when unset.
    type: str
"""

EXAMPLES = r"""
# lab.kubevirt_vms.yml
plugin: palette.vmo.kubevirt_vms
namespaces: [vms]
include_stopped: true
keyed_groups:
  - key: vm_labels.tier | default('none')
    prefix: tier
compose:
  ansible_user: "'fedora'"
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: /tmp/kubevirt_vms_cache
---
# site1.kubevirt_vms.yml: the VMs of a Palette cluster, by its name (PALETTE_HOST and PALETTE_API_KEY set)
plugin: palette.vmo.kubevirt_vms
palette_cluster: vmo-site-1
palette_project: Default
namespaces: [vms]
"""


from ansible.errors import AnsibleError

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import (
    AUTH_ARG_SPEC, auth_params, resolve_connection)
from ansible_collections.palette.vmo.plugins.module_utils.kube.memory_kubeconfig import memory_connection
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, KubeClient, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.facts import interface_addresses, vm_facts
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.query import find_vms
from ansible_collections.palette.vmo.plugins.module_utils.palette.cluster_access import (
    palette_cluster_kubeconfig, palette_params)
from ansible_collections.palette.vmo.plugins.plugin_utils.cached_inventory import CachedInventory

SSH_PORT = 22
WINRM_PORTS = (5986, 5985)  # HTTPS first
OS_KEYS = ("vm.kubevirt.io/os", "kubevirt.io/os")


def is_windows(facts):
    if (facts["guest_os"].get("id") or "").lower().startswith("mswindows"):
        return True
    for source in (facts["labels"], facts["annotations"]):
        for key in OS_KEYS:
            if (source.get(key) or "").lower().startswith("win"):
                return True
    preference = ((facts["vm"].get("spec") or {}).get("preference") or {}).get("name") or ""
    return preference.lower().startswith("windows")


def selects(service, vmi):
    selector = (service.get("spec") or {}).get("selector") or {}
    labels = ((vmi or {}).get("metadata") or {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def service_ports(service):
    return [{"name": p.get("name"), "port": p.get("port"), "node_port": p.get("nodePort"),
             "target_port": p.get("targetPort"), "protocol": p.get("protocol", "TCP")}
            for p in (service.get("spec") or {}).get("ports") or []]


def service_endpoint(service, node_address, wanted_ports):
    """(host, port) for the first of wanted_ports (guest ports) this service exposes, or None."""
    spec = service.get("spec") or {}
    for guest_port in wanted_ports:
        for port in spec.get("ports") or []:
            if port.get("targetPort", port.get("port")) not in (guest_port, str(guest_port)):
                continue
            if spec.get("type") == "LoadBalancer":
                ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                if ingress:
                    return ingress[0].get("ip") or ingress[0].get("hostname"), port.get("port")
            if spec.get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort") and node_address:
                return node_address, port["nodePort"]
    return None


class InventoryModule(CachedInventory):
    NAME = "palette.vmo.kubevirt_vms"
    SOURCE_SUFFIXES = ("kubevirt_vms.yml", "kubevirt_vms.yaml")

    # -- reading the cluster --------------------------------------------------------------------------

    def _connection(self):
        """From palette_cluster (the kubeconfig fetched into memory), else from the Kubernetes options."""
        palette = palette_params(self.get_option)
        if not palette["palette_cluster"]:
            return resolve_connection(auth_params(self.get_option))
        conflicts = sorted(name for name in AUTH_ARG_SPEC if self.get_option(name) is not None)
        if conflicts:
            raise AnsibleError("palette.vmo.kubevirt_vms: palette_cluster and %s are mutually exclusive: give the "
                               "cluster either by palette_cluster or by the Kubernetes connection options; nothing "
                               "was sent" % ", ".join(conflicts))
        return memory_connection(*palette_cluster_kubeconfig(palette))

    def _fetch(self):
        try:
            client = KubeClient(self._connection())
            api_version = preferred_version(client, "kubevirt.io", self.get_option("api_version"))
            namespaces = self.get_option("namespaces") or [None]
            hosts = []
            for namespace in namespaces:
                pairs = find_vms(client, api_version, namespace=namespace,
                                 label_selectors=[self.get_option("label_selector")]
                                 if self.get_option("label_selector") else None)
                services = self._services(client, namespace) if self.get_option("use_service") else []
                nodes = self._node_addresses(client) if services else {}
                hosts.extend(self._host(vm, vmi, services, nodes) for vm, vmi in pairs)
            return [h for h in hosts if h]
        except ModuleFailure as err:
            # The one place a failure of the shared Kubernetes code becomes the inventory's own error.
            raise AnsibleError("palette.vmo.kubevirt_vms: %s" % err)

    @staticmethod
    def _services(client, namespace):
        items = client.list_all(object_path("v1", "services", namespace=namespace))[0]
        return [s for s in items if (s.get("spec") or {}).get("type") in ("NodePort", "LoadBalancer")]

    @staticmethod
    def _node_addresses(client):
        try:
            items = client.list_all(object_path("v1", "nodes"))[0]
        except KubeApiError:
            return {}  # a user who may not list nodes still gets LoadBalancer addresses
        addresses = {}
        for node in items:
            for address in (node.get("status") or {}).get("addresses") or []:
                if address.get("type") in ("ExternalIP", "InternalIP"):
                    addresses.setdefault(node["metadata"]["name"], address["address"])
        return addresses

    def _host(self, vm, vmi, services, nodes):
        facts = vm_facts(vm, vmi)
        running = facts["phase"] == "Running"
        if not running and not self.get_option("include_stopped"):
            return None
        windows = is_windows(facts)
        host_vars = {"vm_" + k: v for k, v in facts.items() if k not in ("vm", "vmi")}
        host_vars["vm_windows"] = windows
        addresses = interface_addresses(vmi, self.get_option("network_name"))
        if addresses:
            host_vars["ansible_host"] = addresses[0][1]
        own = [s for s in services if selects(s, vmi)]
        if own:
            host_vars["vm_services"] = [{"name": s["metadata"]["name"], "type": s["spec"].get("type"),
                                         "ports": service_ports(s)} for s in own]
            wanted = WINRM_PORTS if windows else (SSH_PORT,)
            for service in own:
                endpoint = service_endpoint(service, nodes.get(facts["node"]), wanted)
                if endpoint:
                    host_vars["ansible_host"], host_vars["ansible_port"] = endpoint
                    break
        if windows:
            host_vars["ansible_connection"] = self.get_option("windows_connection")
        name = self.get_option("host_format").format(name=facts["name"], namespace=facts["namespace"],
                                                     uid=vm["metadata"].get("uid", ""))
        return {"name": name, "vars": host_vars}

    # -- building the inventory -----------------------------------------------------------------------

    def _populate(self, hosts):
        for host in hosts:
            host_vars = host["vars"]
            groups = ["namespace_%s" % host_vars["vm_namespace"],
                      "running" if host_vars.get("vm_phase") == "Running" else "stopped"]
            groups += ["label_%s_%s" % (k, v) for k, v in (host_vars.get("vm_labels") or {}).items()]
            self._add_host(host["name"], host_vars, groups)
