#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_migration_policy
short_description: Declare KubeVirt migration policies, one or many per task
version_added: 0.1.0
description:
  - Creates, updates and deletes KubeVirt C(MigrationPolicy) objects (C(migrations.kubevirt.io), cluster-scoped)
    with server-side apply under the field manager O(field_manager). A policy applies its settings to the
    migrations of the VMs its selectors match (the VMI's labels and its namespace's labels).
  - One policy (O(name) and its options) or many (O(policies), a list of the same options; options given at the
    task level are defaults for every item). The batch is checked first by the module (as KubeVirt's migration
    policy admitter checks it, and label syntax), then by a server-side dry run of every policy; if anything is
    invalid nothing is written and the error names the policy and the option.
  - Only the policies whose dry run differs from the live object are written, so a second run reports
    C(changed=false). A setting removed from the task is removed from the policy.
  - The served C(migrations.kubevirt.io) version is discovered, not assumed.
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
    details: Server-side dry run of every write; C(changed) is predicted exactly and nothing is persisted.
  diff_mode:
    support: full
    details: Before and after of every policy that would change.
options:
  name:
    description: Name of the policy. Required unless O(policies) is given.
    type: str
  policies:
    description:
      - Many policies in one task. Each item takes the per-policy options of this module (O(name), O(state),
        O(allow_auto_converge), O(allow_post_copy), O(allow_workload_disruption), O(bandwidth_per_migration),
        O(completion_timeout_per_gib), O(namespace_selector), O(vmi_selector), O(labels)); an option missing from
        an item takes the task-level value.
    type: list
    elements: dict
  state:
    description: V(present) (the default) declares the policy; V(absent) deletes it.
    type: str
    choices: [present, absent]
  allow_auto_converge:
    description: C(spec.allowAutoConverge) - let QEMU throttle the guest's CPU so that the migration converges.
    type: bool
  allow_post_copy:
    description: C(spec.allowPostCopy) - switch to post-copy when pre-copy does not converge.
    type: bool
  allow_workload_disruption:
    description: C(spec.allowWorkloadDisruption) - let KubeVirt pause the guest to finish a migration that does not converge.
    type: bool
  bandwidth_per_migration:
    description: C(spec.bandwidthPerMigration), bytes per second as a Kubernetes quantity (for example V(64Mi)); not negative.
    type: str
  completion_timeout_per_gib:
    description: C(spec.completionTimeoutPerGiB), seconds per GiB of guest memory before a migration is cancelled; not negative.
    type: int
  namespace_selector:
    description: C(spec.selectors.namespaceSelector), labels the VM's namespace must have.
    type: dict
  vmi_selector:
    description: C(spec.selectors.virtualMachineInstanceSelector), labels the VM's instance must have.
    type: dict
  labels:
    description: Labels of the policy. The module adds C(app.kubernetes.io/managed-by=palette.vmo).
    type: dict
  api_version:
    description: The C(migrations.kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: palette.vmo
  force_conflicts:
    description: Take ownership of fields another manager set, so the declared value wins.
    type: bool
    default: true
  concurrency:
    description: Requests in flight at once for the batch.
    type: int
    default: 16
seealso:
  - module: palette.vmo.kubevirt_vm_migration
"""

EXAMPLES = r"""
- name: Let the migrations of production databases converge, with bounded bandwidth
  palette.vmo.kubevirt_migration_policy:
    name: prod-databases
    allow_auto_converge: true
    allow_post_copy: false
    bandwidth_per_migration: 256Mi
    completion_timeout_per_gib: 300
    namespace_selector:
      env: prod
    vmi_selector:
      workload: database

- name: Several policies in one task
  palette.vmo.kubevirt_migration_policy:
    allow_auto_converge: true
    policies:
      - name: web
        vmi_selector: {tier: web}
      - name: batch
        vmi_selector: {tier: batch}
        allow_workload_disruption: true
      - name: legacy
        state: absent
"""

RETURN = r"""
api_version:
  description: The C(migrations.kubevirt.io) version used.
  returned: success
  type: str
  sample: migrations.kubevirt.io/v1alpha1
policies:
  description: One entry per declared policy.
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: Policy name.
      type: str
    action:
      description: What was done (in check mode, would be done).
      type: str
      choices: [created, updated, unchanged, deleted, absent]
    spec:
      description: The policy's spec after the task (null when absent).
      type: dict
errors:
  description: Every problem found, one per policy and option, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_policy import POLICY_OPTIONS, run


def argument_spec():
    return cluster_argument_spec(POLICY_OPTIONS, dict(
        policies=dict(type="list", elements="dict"),
        api_version=dict(type="str"),
        field_manager=dict(type="str", default="palette.vmo"),
        force_conflicts=dict(type="bool", default=True),
        concurrency=dict(type="int", default=16),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("name", "policies")])
    run_module(module, run)


if __name__ == "__main__":
    main()
