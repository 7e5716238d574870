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
  - Optionally waits, with one watch, until every selected VM is ready, stopped or paused.
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
    description: The state to wait for.
    type: str
    choices: [ready, stopped, paused]
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
    vm:
      description: The VirtualMachine object.
      type: dict
    vmi:
      description: The VirtualMachineInstance object, or null.
      type: dict
"""

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import power as kubevirt_power
from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure, run_module
from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import AUTH_ARG_SPEC, KubeModule
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeClient
from ansible_collections.palette.vmo.plugins.module_utils.kube.discovery import preferred_version
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget, wait_for
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.facts import vm_facts
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.query import find_vms
from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors
from ansible_collections.palette.vmo.plugins.module_utils.palette.cluster_access import (
    PALETTE_CLUSTER_ARG_SPEC, PaletteClusterSource)


def wait_targets(params, found):
    keys = {(vm["metadata"]["namespace"], vm["metadata"]["name"]) for vm, _vmi in found}
    if params["name"] and params["namespace"]:
        keys.add((params["namespace"], params["name"]))
    expectation = params["wait_for"]
    return [WaitTarget(ns, name, lambda vm, e=expectation: kubevirt_power.vm_matches(vm, e), expectation,
                       kubevirt_power.describe_vm) for ns, name in sorted(keys)]


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
        wait_for(client, api_version, "virtualmachines", wait_targets(params, found), params["wait_timeout"])
        found = find_vms(client, api_version, **query)
    module.exit_json(changed=False, api_version=api_version, vms=[vm_facts(vm, vmi) for vm, vmi in found])


def main():
    spec = dict(AUTH_ARG_SPEC)
    spec.update(PALETTE_CLUSTER_ARG_SPEC)
    spec.update(
        name=dict(type="str"),
        namespace=dict(type="str"),
        label_selectors=dict(type="list", elements="str", default=[]),
        field_selectors=dict(type="list", elements="str", default=[]),
        wait=dict(type="bool", default=False),
        wait_for=dict(type="str", choices=["ready", "stopped", "paused"], default="ready"),
        wait_timeout=dict(type="int", default=120),
        api_version=dict(type="str"),
    )
    run_module(KubeModule(argument_spec=spec, supports_check_mode=True, kubeconfig_source=PaletteClusterSource()), run)


if __name__ == "__main__":
    main()
