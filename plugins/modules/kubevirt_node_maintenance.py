#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_node_maintenance
short_description: Empty nodes of their KubeVirt VMs for maintenance by live migration, and put them back
version_added: 0.1.0
description:
  - V(evacuated) cordons each node (C(spec.unschedulable), as C(kubectl cordon) does), live-migrates every VM
    instance it holds to another node, and waits with one watch until the nodes hold no VM instance.
  - Which VMs can move is decided before anything is written, as KubeVirt decides it when a node is drained
    (virt-api's eviction admitter) - the VM's own C(evictionStrategy), else the cluster's (the KubeVirt CR's
    C(spec.configuration.evictionStrategy), C(None) when unset). C(None) and C(External) never move;
    C(LiveMigrate) and C(LiveMigrateIfPossible) move when the instance's C(LiveMigratable) condition is true; a
    VM also needs a schedulable node outside the nodes under maintenance that matches its node selector.
    O(unmovable) says what happens to those that cannot move.
  - Migrations are VirtualMachineInstanceMigration objects, built and preflighted as
    M(palette.vmo.kubevirt_vm_migration) builds them, labelled C(palette.vmo/evacuated-node) with the node they
    empty (a node name longer than a label value's 63 characters becomes its first characters and a hash) and
    annotated C(palette.vmo/evacuated-node) with the full node name; they are
    checked by a server-side dry run before the first write, and at most O(concurrency) run at once (KubeVirt's
    own C(parallelOutboundMigrationsPerNode) and C(parallelMigrationsPerCluster) still apply). Migrations already
    running for a VM are followed, not duplicated, so a run interrupted and started again converges.
  - VMs that arrive on a node while it is being cordoned (their migration started before) are moved too.
  - A VM instance already being deleted, or in a namespace being deleted, is neither migrated nor refused; the
    task waits for it to go, as C(kubectl drain) waits for a pod being deleted, and lists it under RV(nodes[].leaving).
  - A migration that fails, or cannot be created, does not stop the others - every wave runs - and the task then
    fails, listing every failed migration and every VM instance the nodes still hold, with C(changed=true) when
    anything was written.
  - The task also fails when VMs still need moving after three rounds (VMs that keep arriving on the cordoned
    nodes), naming each and why.
  - V(uncordoned) makes the nodes schedulable again. Both states report C(changed=false) when the nodes are
    already as asked.
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
    details: >-
      Reads, plans and dry-runs the migrations; nothing is persisted. The result lists the cordons, migrations and
      stops the task would make, and C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: Per node, C(unschedulable) before and after and where each VM it holds would go.
options:
  nodes:
    description:
      - The nodes, by name. A single name may be given as a string.
      - With V(evacuated) they are cordoned first, then emptied together, so no VM moves onto another node of
        the list; walk nodes one at a time (role P(palette.vmo.node_maintenance#role)) to keep the others serving.
    type: list
    elements: str
    required: true
    aliases: [name, node]
  state:
    description:
      - V(evacuated) cordons the nodes and empties them; V(uncordoned) makes them schedulable again.
    type: str
    choices: [evacuated, uncordoned]
    default: evacuated
  unmovable:
    description:
      - What to do with VMs that cannot be live-migrated off the nodes (found before anything is written).
      - V(fail) (the default) refuses the task before any write, naming each VM and why (KubeVirt's
        C(LiveMigratable) message when that is the reason).
      - V(report) migrates the others and leaves those where they are, untouched; they are listed in the result
        (C(unmovable) and C(remaining)) and in a warning, and the nodes still hold them.
      - V(stop) stops them through the VM's C(stop) subresource (a VM instance without a VM is deleted), so the
        nodes end empty; start them again after the maintenance.
      - Only for O(state=evacuated).
    type: str
    choices: [fail, report, stop]
  concurrency:
    description: Most migrations in flight at once, and most concurrent API requests.
    type: int
    default: 5
  wait_timeout:
    description:
      - How long to wait for the nodes to be emptied, in seconds; on timeout the error names every VM still on
        a node with its migration's phase.
    type: int
    default: 900
  api_version:
    description: The C(kubevirt.io) version to use; discovered when unset.
    type: str
notes:
  - "RBAC: the task needs, on C(nodes) (cluster-wide), C(get), C(list) and C(patch); on C(kubevirts.kubevirt.io),
    a cluster-wide C(list) (the KubeVirt CR gives the cluster's C(evictionStrategy); without it the task fails);
    on C(virtualmachineinstances.kubevirt.io), a cluster-wide C(list) and C(watch), and C(get); C(get) on
    C(namespaces); on C(virtualmachineinstancemigrations.kubevirt.io), C(create), C(get), C(list) and C(watch);
    C(list) on C(events) (optional, it only adds KubeVirt's reason to a failed migration); with O(unmovable=stop),
    C(update) on C(virtualmachines/stop) (group C(subresources.kubevirt.io)) and C(delete) on
    C(virtualmachineinstances) (a VM instance without a VM)."
  - "KubeVirt's aggregated roles C(kubevirt.io:admin) and C(kubevirt.io:edit) only read migrations
    (C(get), C(list), C(watch)); creating them takes KubeVirt's own C(kubevirt.io:migrate) ClusterRole, which
    is not aggregated: bind users to it (as well as to a role with the node and cluster-wide rights above), or use
    a cluster-wide role such as C(cluster-admin)."
  - The module moves KubeVirt VMs only; other pods on the nodes are not evicted (use C(kubectl drain) for them once
    the VMs are gone).
  - A node selector is honoured when looking for a node that can take a VM; node affinity, taints and free
    capacity are left to the scheduler - a migration whose target cannot be scheduled fails as KubeVirt fails it,
    and the error quotes KubeVirt's reason.
seealso:
  - module: palette.vmo.kubevirt_vm_migration
  - module: palette.vmo.kubevirt_vm_info
  - name: KubeVirt node maintenance
    description: KubeVirt's user guide on node drain and eviction strategies.
    link: https://kubevirt.io/user-guide/cluster_admin/node_maintenance/
"""

EXAMPLES = r"""
- name: Empty a node for a firmware upgrade; refuse if any VM cannot move
  palette.vmo.kubevirt_node_maintenance:
    nodes: worker-3
    state: evacuated
  register: evacuation

- name: Where each VM went
  ansible.builtin.debug:
    msg: "{{ item.namespace }}/{{ item.vm }}: {{ item.source_node }} -> {{ item.target_node }} in {{ item.duration_seconds }}s"
  loop: "{{ evacuation.nodes[0].migrated }}"
  loop_control:
    label: "{{ item.vm }}"

- name: Move what can move, leave the others running on the node and list them
  palette.vmo.kubevirt_node_maintenance:
    nodes: [worker-3]
    unmovable: report

- name: Stop the VMs that cannot move, so the node ends empty
  palette.vmo.kubevirt_node_maintenance:
    nodes: [worker-3]
    unmovable: stop
    concurrency: 2
    wait_timeout: 1800

- name: Back in service
  palette.vmo.kubevirt_node_maintenance:
    nodes: [worker-3]
    state: uncordoned
"""

RETURN = r"""
state:
  description: The state the task asked for.
  returned: success
  type: str
  sample: evacuated
api_version:
  description: The C(kubevirt.io) version used.
  returned: when O(state=evacuated)
  type: str
  sample: kubevirt.io/v1
nodes:
  description: One entry per node, in the order given; on a failure after a write, what was done so far.
  returned: always
  type: list
  elements: dict
  contains:
    node:
      description: Node name.
      type: str
    was_cordoned:
      description:
        - With V(evacuated), whether the node was already cordoned before the task; with V(uncordoned), whether it
          was cordoned (and so is uncordoned by the task).
      type: bool
    cordoned:
      description: Whether the node is cordoned once the task is done (in check mode, would be).
      type: bool
    migrated:
      description:
        - The VMs live-migrated off the node (in check mode, the migrations the task would create), as
          M(palette.vmo.kubevirt_vm_migration) reports each migration.
      type: list
      elements: dict
      returned: when O(state=evacuated)
      contains:
        vm:
          description: VM name.
          type: str
        namespace:
          description: VM namespace.
          type: str
        migration:
          description: The VirtualMachineInstanceMigration.
          type: str
        action:
          description: C(created), or C(adopted) for a migration that was already running.
          type: str
        phase:
          description: The migration's final phase (C(Succeeded)), null in check mode.
          type: str
        source_node:
          description: Node the VM left.
          type: str
        target_node:
          description: Node the VM went to.
          type: str
        duration_seconds:
          description: From the migration's start to its end, as KubeVirt timestamps them.
          type: float
        failure_reason:
          description: KubeVirt's reason, for a migration that failed.
          type: str
    unmovable:
      description: The VMs that could not be moved and were left untouched (O(unmovable=report)).
      type: list
      elements: dict
      returned: when O(state=evacuated)
      contains:
        vm:
          description: VM name.
          type: str
        namespace:
          description: VM namespace.
          type: str
        reason:
          description: Why it cannot move.
          type: str
          sample: "evictionStrategy None: KubeVirt never migrates it off a drained node (it would be shut down)"
        eviction_strategy:
          description: Its effective eviction strategy (its own, else the cluster's).
          type: str
        live_migratable:
          description: Whether its C(LiveMigratable) condition is true.
          type: bool
        live_migratable_reason:
          description: The condition's reason (for example C(DisksNotLiveMigratable)).
          type: str
        live_migratable_message:
          description: The condition's message, KubeVirt's own words.
          type: str
    stopped:
      description: The VMs stopped because they could not move (O(unmovable=stop)).
      type: list
      elements: dict
      returned: when O(state=evacuated)
      contains:
        vm:
          description: VM name.
          type: str
        namespace:
          description: VM namespace.
          type: str
        reason:
          description: Why it could not move.
          type: str
        how:
          description: How it was stopped (C(planned) in check mode).
          type: str
    leaving:
      description: The VM instances that were being deleted (or whose namespace was) and were waited for, not moved.
      type: list
      elements: dict
      returned: when O(state=evacuated)
      contains:
        vm:
          description: VM name.
          type: str
        namespace:
          description: VM namespace.
          type: str
        reason:
          description: C(being deleted) or C(its namespace is being deleted).
          type: str
    remaining:
      description: The VM instances the node still holds once the task is done, each with its phase (and why it stayed).
      type: list
      elements: dict
      returned: when O(state=evacuated)
    empty:
      description: Whether the node holds no VM instance.
      type: bool
      returned: when O(state=evacuated)
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance import UNMOVABLE_CHOICES
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        nodes=dict(type="list", elements="str", required=True, aliases=["name", "node"]),
        state=dict(type="str", choices=["evacuated", "uncordoned"], default="evacuated"),
        unmovable=dict(type="str", choices=list(UNMOVABLE_CHOICES)),
        concurrency=dict(type="int", default=5),
        wait_timeout=dict(type="int", default=900),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
