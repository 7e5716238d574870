#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_migration
short_description: Live-migrate KubeVirt VMs, one or many per task, or cancel their migrations
version_added: 0.1.0
description:
  - Creates one C(VirtualMachineInstanceMigration) per running VM and waits, with one watch for all of them,
    until each is C(Succeeded) or C(Failed). The result gives, per VM, the source and target node, the start and
    end of the migration and its duration; a failed migration quotes KubeVirt's reason (the migration state's
    C(failureReason), the migration's conditions and the warning events C(virt-controller) recorded on it).
  - The VMs are named (O(name), or O(vms)) or selected by labels in a namespace (O(label_selector)).
  - B(Preflight.) Before anything is written every VM is checked, as KubeVirt would check it - its instance is
    C(Running), no migration is already in flight for it, its C(LiveMigratable) condition is not C(False)
    (the refusal quotes KubeVirt's reason and message, which names for example the C(ReadWriteOnce) PVC or the
    bridge interface on the pod network that pins it), and at least one other node could take it (labelled
    C(kubevirt.io/schedulable=true), not cordoned, not NotReady, matching the VM's own C(nodeSelector) and
    O(node_selector)). One VM failing the preflight fails the task with nothing written; the message names
    every VM refused and why. Then every migration object goes through a server-side dry run. Taints, affinity
    and resources are left to the scheduler - a migration whose target pod cannot be placed stays in phase
    C(Scheduling) until KubeVirt fails it (see O(unschedulable_timeout)).
  - B(Idempotence.) The migration object's name is derived from the VM's running instance (its uid) and
    O(migration_id). Running the same task again finds its C(Succeeded) migration and reports
    C(changed=false); a new O(migration_id), or an instance started anew since, migrates again. A migration of
    this task that is still running is followed, not created again (a re-run after an interrupted run). With
    O(node_selector), a VM already on a node that matches it needs nothing. A migration that failed is tried
    again by the next run, under the next name (C(-2), C(-3), ...). KubeVirt keeps only the last few finished
    migrations of each instance, so a task run again after many later migrations may migrate once more.
  - B(Cancel.) O(state=cancelled) deletes every migration of the VMs that is not finished (whoever created it);
    KubeVirt aborts a migration whose object is deleted. The task waits until each is gone or final and the VM's
    instance no longer reports the abort under way; it fails if a migration completed before the cancel took
    effect. A VM with no migration in flight needs nothing.
  - A task with failed migrations fails, listing each failure, and still reports C(changed=true) and every
    result. The wait is bounded; on timeout the message names every migration still pending and its phase.
  - KubeVirt runs at most C(parallelMigrationsPerCluster) (default 5) migrations at once and
    C(parallelOutboundMigrationsPerNode) (default 2) from one node (the KubeVirt CR's
    C(spec.configuration.migrations)); the others wait in phase C(Pending) until their turn, within O(wait_timeout).
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
    details: Reads, the preflight and server-side dry runs of the migration objects only; C(changed) is predicted
      exactly.
  diff_mode:
    support: full
    details: Per VM, the node it runs on and where it would go (or the migrations that would be cancelled).
options:
  name:
    description: Name of one VM.
    type: str
  namespace:
    description: Namespace of the VM; with O(vms), the default of every item; with O(label_selector), where to select.
    type: str
  vms:
    description:
      - Many VMs in one task. Each item is a VM name, or a dict with C(name) and optionally C(namespace) and
        C(node_selector), which override the task-level values.
    type: list
    elements: raw
  label_selector:
    description:
      - Every VM of O(namespace) with these labels (for example V(tier=web)). VMs that are not running are skipped
        and reported with RV(migrations[].action=skipped); a running VM that KubeVirt cannot migrate fails the
        preflight.
    type: str
  state:
    description:
      - V(migrated) moves each VM's running instance to another node once (per O(migration_id)), or onto a node
        matching O(node_selector).
      - V(cancelled) cancels the migrations of the VMs that are still in flight.
    type: str
    choices: [migrated, cancelled]
    default: migrated
  node_selector:
    description:
      - Node labels the target node must have (C(spec.addedNodeSelector) of the migration). They can only narrow the
        VM's own C(nodeSelector); on a shared key the VM's value wins, as in KubeVirt.
      - A VM already running on a node that has these labels is not migrated.
    type: dict
  migration_id:
    description:
      - Distinguishes one requested migration from another of the same running instance. Without it a task
        migrates each instance once; change it (for example to a maintenance ticket or a date) to migrate again.
    type: str
  unschedulable_timeout:
    description:
      - Seconds KubeVirt lets the migration's target pod stay unschedulable before it fails the migration
        (KubeVirt's annotation C(kubevirt.io/migrationUnschedulablePodTimeoutSeconds); KubeVirt's default is 300).
    type: int
  wait:
    description:
      - Wait until every migration is C(Succeeded) or C(Failed) (with O(state=cancelled), until each cancelled one is
        gone and the abort is reported). Without it the task returns once the migration objects are created.
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds. On timeout the error names every pending migration and its last phase.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once (reads, dry runs, creates and deletes).
    type: int
    default: 16
  api_version:
    description: The C(kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
notes:
  - "RBAC: in each namespace of the VMs, C(get) and C(list) on C(virtualmachines.kubevirt.io); C(list) and
    C(watch) on C(virtualmachineinstances.kubevirt.io) (O(state=cancelled) watches the instance for the abort);
    on C(virtualmachineinstancemigrations.kubevirt.io), C(list) and C(watch), C(create) (also for the server-side
    dry run) with O(state=migrated), C(delete) with O(state=cancelled); C(list) on C(events) (optional, it only
    adds KubeVirt's reason to a failed migration). Optionally a cluster-wide C(list) on C(nodes): without it the
    check that another node can take the VM is left to the scheduler, and with O(node_selector) a VM counts as
    placed when this task's own migration put it on the node it runs on."
  - "KubeVirt's aggregated roles C(kubevirt.io:admin) and C(kubevirt.io:edit) only read migrations
    (C(get), C(list), C(watch)); creating and deleting them takes KubeVirt's own C(kubevirt.io:migrate)
    ClusterRole, which is not aggregated: bind users to it (in the VMs' namespaces), or to a role that grants
    it, such as VMO's C(spectro-vm-admin) and C(spectro-vm-power-user)."
seealso:
  - module: palette.vmo.kubevirt_migration_policy
  - module: palette.vmo.kubevirt_vm
  - module: palette.vmo.kubevirt_vm_info
"""

EXAMPLES = r"""
- name: Live-migrate three VMs off their nodes, in one task
  palette.vmo.kubevirt_vm_migration:
    namespace: vms
    vms: [web-1, web-2, db-1]
  register: moved

- name: Show where each went and how long it took
  ansible.builtin.debug:
    msg: "{{ moved.migrations | map(attribute='target_node') | list }} {{ moved.migrations | map(attribute='duration_seconds') | list }}"

- name: Move every web VM onto the nodes of rack B (VMs already there stay)
  palette.vmo.kubevirt_vm_migration:
    namespace: vms
    label_selector: tier=web
    node_selector:
      topology.kubernetes.io/zone: rack-b
    wait_timeout: 1800

- name: Migrate again for the next maintenance window (a new id is a new migration)
  palette.vmo.kubevirt_vm_migration:
    name: db-1
    namespace: vms
    migration_id: change-4711

- name: Cancel what is still migrating
  palette.vmo.kubevirt_vm_migration:
    namespace: vms
    vms: [web-1, web-2, db-1]
    state: cancelled
"""

RETURN = r"""
api_version:
  description: The C(kubevirt.io) version used.
  returned: always
  type: str
  sample: kubevirt.io/v1
migrations:
  description: One entry per VM, in the order named (by name for O(label_selector)); on failure, too.
  returned: always
  type: list
  elements: dict
  contains:
    vm:
      description: VM name.
      type: str
    namespace:
      description: VM namespace.
      type: str
    action:
      description:
        - V(created) a migration was created (in check mode, would be); V(adopted) a migration of this task (or a
          cancel already under way) was followed; V(unchanged) this task's migration of this instance had
          Succeeded already; V(none) nothing was needed; V(skipped) not running (O(label_selector) only);
          V(cancelled) its migrations in flight were deleted.
      type: str
      choices: [created, adopted, unchanged, none, skipped, cancelled]
    migration:
      description: Name of the C(VirtualMachineInstanceMigration) (the first cancelled one with O(state=cancelled)).
      type: str
    migrations:
      description: With O(state=cancelled), every migration cancelled.
      type: list
      elements: str
    phase:
      description: The migration's last phase seen (V(deleted) for a cancelled one that is gone).
      type: str
      sample: Succeeded
    source_node:
      description: Node the VM ran on before.
      type: str
    target_node:
      description: Node the migration went to (or tried).
      type: str
    node:
      description: Node the VM runs on now.
      type: str
    start_timestamp:
      description: When the migration started (KubeVirt's migration state, else its first phase transition).
      type: str
    end_timestamp:
      description: When it ended.
      type: str
    duration_seconds:
      description: End minus start, for a finished migration.
      type: float
    abort_status:
      description: KubeVirt's C(abortStatus) of the migration, when an abort was requested.
      type: str
    reason:
      description: Why nothing was needed, or why the VM was skipped.
      type: str
    failure_reason:
      description: KubeVirt's reason for a failed migration.
      type: str
errors:
  description: Every problem found, one per VM, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        vms=dict(type="list", elements="raw"),
        label_selector=dict(type="str"),
        state=dict(type="str", choices=["migrated", "cancelled"], default="migrated"),
        node_selector=dict(type="dict"),
        migration_id=dict(type="str"),
        unschedulable_timeout=dict(type="int"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=16),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("name", "vms", "label_selector")])
    run_module(module, run)


if __name__ == "__main__":
    main()
