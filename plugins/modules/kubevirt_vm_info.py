#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_info
short_description: Read KubeVirt virtual machines with the facts of their running instances
version_added: 0.1.0
description:
  - Lists C(VirtualMachine) objects by name, namespace, label and field selectors and joins each with its
    C(VirtualMachineInstance) - phase, node, IP addresses, interfaces and guest OS when the guest agent reports it.
  - Gives the day-2 state of each VM too - its current or last migration, whether KubeVirt finds it
    live-migratable, whether a change waits for a restart (C(RestartRequired)), the status of its volumes
    (hotplugged ones included) and whether its guest agent is connected.
  - Optionally waits, with one watch, until every selected VM is ready, stopped or paused, or until the guest
    agent of each is connected.
  - The served C(kubevirt.io) version is discovered, not assumed.
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.attributes
  - palette.vmo.kube_auth
  - palette.vmo.palette_cluster
  - palette.vmo.palette_auth
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
options:
  name:
    description: Name of one VM.
    type: str
  namespace:
    description: Namespace to look in; all namespaces the user may list when unset.
    type: str
  label_selectors:
    description: Label selectors, all of which must match (for example V(tier=web)).
    type: list
    elements: str
    default: []
  field_selectors:
    description: Field selectors, all of which must match (for example V(metadata.name=web-1)).
    type: list
    elements: str
    default: []
  wait:
    description: Wait until every selected VM is in the state O(wait_for); with O(name), also until it exists.
    type: bool
    default: false
  wait_for:
    description:
      - The state to wait for.
      - V(agent_connected) waits until the instance of each VM reports its guest agent connected (the
        C(AgentConnected) condition virt-handler sets); a VM without an instance keeps the wait pending.
    type: str
    choices: [ready, stopped, paused, agent_connected]
    default: ready
  wait_timeout:
    description: How long to wait, in seconds; the error names every VM still pending.
    type: int
    default: 120
  api_version:
    description: The C(kubevirt.io) version to use; discovered when unset.
    type: str
seealso:
  - module: palette.vmo.kubevirt_vm
"""

EXAMPLES = r"""
- name: Every web VM with its address
  palette.vmo.kubevirt_vm_info:
    namespace: vms
    label_selectors: [tier=web]
  register: web

- name: Show them
  ansible.builtin.debug:
    msg: "{{ web.vms | map(attribute='ip_address') | list }}"

- name: Wait until one VM is ready
  palette.vmo.kubevirt_vm_info:
    name: db-1
    namespace: vms
    wait: true

- name: Wait until the guest agent of every web VM is connected, then read its guest OS
  palette.vmo.kubevirt_vm_info:
    namespace: vms
    label_selectors: [tier=web]
    wait: true
    wait_for: agent_connected
  register: agents

- name: VMs that are not live-migratable, and why
  ansible.builtin.debug:
    msg: "{{ item.namespace }}/{{ item.name }}: {{ item.live_migratable.message }}"
  loop: "{{ web.vms | selectattr('live_migratable') | selectattr('live_migratable.status', '==', 'False') }}"
  loop_control:
    label: "{{ item.name }}"

- name: The VMs of a Palette cluster given by name, through its admin kubeconfig
  palette.vmo.kubevirt_vm_info:
    palette_cluster: vmo-site-1
    palette_project: Default
    palette_kubeconfig_kind: admin
    namespace: vms
"""

RETURN = r"""
api_version:
  description: The C(kubevirt.io) version used.
  returned: success
  type: str
  sample: kubevirt.io/v1
vms:
  description: The VMs found, sorted by namespace and name.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: VM name.
      type: str
    namespace:
      description: VM namespace.
      type: str
    labels:
      description: VM labels.
      type: dict
    annotations:
      description: VM annotations.
      type: dict
    run_strategy:
      description: The VM's runStrategy (derived from the deprecated C(running) when that is what it has).
      type: str
    printable_status:
      description: C(status.printableStatus).
      type: str
      sample: Running
    ready:
      description: Whether the VM is ready.
      type: bool
    phase:
      description: The instance's phase, or null when it has none.
      type: str
    node:
      description: Node the instance runs on.
      type: str
    ip_address:
      description: First IP address of the instance.
      type: str
    ip_addresses:
      description: All IP addresses of the instance.
      type: list
      elements: str
    interfaces:
      description: C(status.interfaces) of the instance.
      type: list
      elements: dict
    guest_os:
      description: Guest OS facts from the guest agent (id, name, prettyName, version, kernelRelease), when present.
      type: dict
    conditions:
      description: The VM's conditions.
      type: list
      elements: dict
    migration:
      description:
        - The instance's current or last live migration (C(status.migrationState)), or null when it has none.
      type: dict
      contains:
        source_node:
          description: Node the instance migrates (or migrated) from.
          type: str
        target_node:
          description: Node the instance migrates (or migrated) to.
          type: str
        start:
          description: When the migration started (RFC 3339), or null while it has not.
          type: str
        end:
          description: When the migration ended, or null while it runs.
          type: str
        completed:
          description: Whether the migration completed.
          type: bool
        failed:
          description: Whether the migration failed.
          type: bool
        failure_reason:
          description: KubeVirt's reason for a failed migration.
          type: str
        abort_requested:
          description: Whether the migration was asked to abort (its migration object deleted while it ran).
          type: bool
        abort_status:
          description: C(Succeeded), C(Failed) or C(Aborting) once an abort was requested.
          type: str
        mode:
          description: The migration mode (C(PreCopy), C(PostCopy)).
          type: str
        migration_uid:
          description: UID of the VirtualMachineInstanceMigration.
          type: str
    live_migratable:
      description:
        - The instance's C(LiveMigratable) condition as virt-handler computes it (status C(True) or C(False),
          reason such as C(DisksNotLiveMigratable), and KubeVirt's message), or null without an instance.
      type: dict
      sample:
        status: "False"
        reason: DisksNotLiveMigratable
        message: "cannot migrate VMI: PVC data is not shared, live migration requires that all PVCs must be shared
          (using ReadWriteMany access mode)"
    storage_live_migratable:
      description: The instance's C(StorageLiveMigratable) condition, when KubeVirt sets it; else null.
      type: dict
    restart_required:
      description: Whether the VM has a change KubeVirt can only apply on a restart (its C(RestartRequired) condition).
      type: dict
      contains:
        required:
          description: Whether the condition is there and true.
          type: bool
        message:
          description: KubeVirt's message naming what waits for the restart.
          type: str
    volume_status:
      description: The instance's C(status.volumeStatus), one entry per volume, hotplugged ones included.
      type: list
      elements: dict
      contains:
        name:
          description: Volume name.
          type: str
        target:
          description: The disk's target device in the guest (for example C(sda)).
          type: str
        phase:
          description: Volume phase (for a hotplugged volume C(Bound), C(AttachedToNode), C(Ready), ...).
          type: str
        reason:
          description: Reason of the phase.
          type: str
        message:
          description: Message of the phase.
          type: str
        size:
          description: Size in bytes, when known.
          type: int
        hotplug:
          description: Whether the volume is hotplugged.
          type: bool
        attach_pod:
          description: The pod that attaches a hotplugged volume.
          type: str
        claim_name:
          description: The PVC behind the volume, when it has one.
          type: str
        access_modes:
          description: Access modes of that PVC.
          type: list
          elements: str
    guest_agent:
      description: The guest agent, as virt-handler reports it.
      type: dict
      contains:
        connected:
          description: Whether the instance's C(AgentConnected) condition is true.
          type: bool
        since:
          description: When the agent connected.
          type: str
        unsupported:
          description: The C(AgentVersionNotSupported) condition (status, reason, message) when it is true.
          type: dict
        guest_os_info:
          description: The instance's C(status.guestOSInfo) as reported by the agent (empty without one).
          type: dict
    eviction_strategy:
      description:
        - The running instance's C(evictionStrategy). KubeVirt fills it when it creates the instance, from the VM's
          own, else from the cluster's (C(spec.configuration.evictionStrategy) of the KubeVirt CR, itself C(None) when
          unset), so a running VM always reports the strategy in force.
        - Without an instance, the VM template's own C(evictionStrategy), or null when it sets none (the instance will
          then take the cluster's).
      type: str
    vm:
      description: The VirtualMachine object.
      type: dict
    vmi:
      description: The VirtualMachineInstance object, or null.
      type: dict
"""

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import power as kubevirt_power
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure, run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeClient
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.facts import agent_connected, day2_facts, vm_facts
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.query import find_vms
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors


def describe_agent(vmi):
    if vmi is None:
        return "no instance"
    status = vmi.get("status") or {}
    cond = next((c for c in status.get("conditions") or [] if c.get("type") == "AgentConnected"), None)
    return "phase=%s AgentConnected=%s" % (status.get("phase") or "<none>", (cond or {}).get("status", "<none>"))


def wait_targets(params, found):
    """(plural to watch, targets): VMs for a power state, their instances for the guest agent."""
    keys = {(vm["metadata"]["namespace"], vm["metadata"]["name"]) for vm, _vmi in found}
    if params["name"] and params["namespace"]:
        keys.add((params["namespace"], params["name"]))
    expectation = params["wait_for"]
    if expectation == "agent_connected":
        return "virtualmachineinstances", [WaitTarget(ns, name, agent_connected, "guest agent connected",
                                                      describe_agent) for ns, name in sorted(keys)]
    return "virtualmachines", [WaitTarget(ns, name, lambda vm, e=expectation: kubevirt_power.vm_matches(vm, e),
                                          expectation, kubevirt_power.describe_vm) for ns, name in sorted(keys)]


def info(vm, vmi):
    facts = vm_facts(vm, vmi)
    facts.update(day2_facts(vm, vmi))
    return facts


def run(module):
    params = module.params
    bounds = bound_errors(params)
    if bounds:
        raise ModuleFailure("invalid input: " + "; ".join(bounds), bounds)
    client = KubeClient(module.connection())
    api_version = preferred_version(client, "kubevirt.io", params["api_version"])
    query = dict(namespace=params["namespace"], name=params["name"],
                 label_selectors=params["label_selectors"], field_selectors=params["field_selectors"])
    found = find_vms(client, api_version, **query)
    if params["wait"]:
        plural, targets = wait_targets(params, found)
        wait_for(client, api_version, plural, targets, params["wait_timeout"])
        found = find_vms(client, api_version, **query)
    module.exit_json(changed=False, api_version=api_version, vms=[info(vm, vmi) for vm, vmi in found])


def main():
    spec = cluster_argument_spec(dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        label_selectors=dict(type="list", elements="str", default=[]),
        field_selectors=dict(type="list", elements="str", default=[]),
        wait=dict(type="bool", default=False),
        wait_for=dict(type="str", choices=["ready", "stopped", "paused", "agent_connected"], default="ready"),
        wait_timeout=dict(type="int", default=120),
        api_version=dict(type="str"),
    ))
    run_module(cluster_module(spec, supports_check_mode=True), run)


if __name__ == "__main__":
    main()
