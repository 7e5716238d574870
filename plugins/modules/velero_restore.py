#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: velero_restore
short_description: Restore KubeVirt VMs from a Velero backup, into their namespaces or mapped ones
version_added: 0.1.0
description:
  - Creates a Velero C(Restore) of a backup and waits, with one watch, until Velero reports it C(Completed) (or
    C(PartiallyFailed), C(Failed)). The result lists what was restored and how (created, updated, skipped, failed),
    read from object storage as C(velero restore describe --details) reads it, with Velero's warnings.
  - With the kubevirt-velero-plugin (VMO's Velero has it) a VM comes back with its DataVolumes and PVCs, the
    DataVolumes marked pre-populated so CDI does not import them again; an instance owned by a VM and launcher pods
    are not restored (the VM makes them).
  - B(Idempotent by name.) A Restore of that name with the same spec is this task's own (V(changed=false)); one with
    another spec is refused.
  - B(Preflight.) Before anything is written the backup must exist and be C(Completed) (or C(PartiallyFailed)).
    Every O(namespace_mapping) source must be a namespace the backup holds and every target a valid name, and no
    two sources may map to one target. Lists Velero would fail to validate are refused (a non-restorable resource
    such as V(nodes) included, V(*) with other entries or excluded, a resource both included and excluded). Then the
    Restore is dry-run on the apiserver.
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
    details: Reads, the preflight and a server-side dry run of the Restore only.
  diff_mode:
    support: full
    details: The Restore that would be created.
options:
  name:
    description: Name of the Velero C(Restore).
    type: str
    required: true
  backup:
    description: Name of the Velero C(Backup) to restore.
    type: str
    required: true
  velero_namespace:
    description: Namespace Velero is installed in.
    type: str
    default: velero
  namespace_mapping:
    description: Restore namespace C(key) of the backup into namespace C(value) (Velero's C(namespaceMapping)).
    type: dict
  included_namespaces:
    description: Only these namespaces of the backup (globs as Velero takes them); all when unset.
    type: list
    elements: str
  included_resources:
    description: Only these resources (Velero's C(includedResources)).
    type: list
    elements: str
  excluded_resources:
    description: Not these resources (Velero's C(excludedResources)).
    type: list
    elements: str
  existing_resource_policy:
    description:
      - What Velero does with an object that already exists and differs. V(none) leaves it and warns (also
        Velero's behaviour when unset). V(update) patches it to the backed-up version.
    type: str
    choices: [none, update]
  restore_pvs:
    description: Velero's C(restorePVs); unset lets Velero decide.
    type: bool
  vm_run_strategy:
    description:
      - Run strategy of the restored VMs (the kubevirt-velero-plugin's Restore label
        C(velero.kubevirt.io/restore-run-strategy)); as backed up when unset.
    type: str
    choices: [Always, Halted, Manual, RerunOnFailure, Once]
  clear_mac_addresses:
    description: Restore the VMs without their MAC addresses (the plugin's label C(velero.kubevirt.io/clear-mac-address)).
    type: bool
    default: false
  list_items:
    description: Read what was restored (and Velero's warnings) from object storage once the restore has finished.
    type: bool
    default: true
  wait:
    description: Wait until the restore has finished. Without it the task returns once the Restore is created.
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds. On timeout the error names the restore, its phase and progress.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once.
    type: int
    default: 16
notes:
  - "RBAC: in O(velero_namespace), C(get), C(list), C(watch) and C(create) on C(restores.velero.io), C(get) on
    C(backups.velero.io) and C(backupstoragelocations.velero.io), C(create), C(get), C(list), C(watch) and
    C(delete) on C(downloadrequests.velero.io)."
  - The object store's signed download URL must be reachable from where the task runs for RV(items); it is
    verified against the location's C(caCert) when it has one. Velero signs it for the location's C(s3Url), often a
    service inside the cluster; give the location a C(publicUrl) (spec.config.publicUrl) reachable from here, or set
    O(list_items=false). The task's error says so when the URL cannot be reached.
seealso:
  - module: palette.vmo.velero_backup
"""

EXAMPLES = r"""
- name: Restore a namespace of VMs that was deleted
  palette.vmo.velero_restore:
    name: vms-nightly-20250101-restore
    backup: vms-nightly-20250101

- name: Restore a copy of the VMs next to the originals, stopped, with new MAC addresses
  palette.vmo.velero_restore:
    name: vms-copy
    backup: vms-nightly-20250101
    namespace_mapping:
      vms: vms-copy
    vm_run_strategy: Halted
    clear_mac_addresses: true
"""

RETURN = r"""
restore:
  description: The Restore as Velero reports it.
  returned: always
  type: dict
  contains:
    name:
      description: Restore name.
      type: str
    namespace:
      description: Velero's namespace.
      type: str
    backup:
      description: The backup restored.
      type: str
    phase:
      description: Velero's phase (V(New) before Velero has seen it).
      type: str
      sample: Completed
    namespace_mapping:
      description: The namespace mapping.
      type: dict
    existing_resource_policy:
      description: The policy for objects that exist.
      type: str
    start_timestamp:
      description: When Velero started the restore.
      type: str
    completion_timestamp:
      description: When Velero finished it.
      type: str
    progress:
      description: Velero's C(totalItems) and C(itemsRestored).
      type: dict
    warnings:
      description: Number of warnings Velero logged.
      type: int
    errors:
      description: Number of errors Velero logged.
      type: int
    validation_errors:
      description: Why Velero refused the restore (phase C(FailedValidation)).
      type: list
      elements: str
    failure_reason:
      description: Why Velero failed the restore.
      type: str
items:
  description: What the restore did, item by item (its restored resource list).
  returned: always
  type: list
  elements: dict
  contains:
    api_version:
      description: API version of the item.
      type: str
    kind:
      description: Kind of the item.
      type: str
    namespace:
      description: Namespace it was restored into (null for a cluster-scoped item).
      type: str
    name:
      description: Name of the item.
      type: str
    action:
      description: What Velero did.
      type: str
      sample: created
warnings:
  description: Velero's warnings for the restore, each with its scope.
  returned: success
  type: list
  elements: str
errors:
  description: Every problem found, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.velero.restore_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        name=dict(type="str", required=True),
        backup=dict(type="str", required=True),
        velero_namespace=dict(type="str", default="velero"),
        namespace_mapping=dict(type="dict"),
        included_namespaces=dict(type="list", elements="str"),
        included_resources=dict(type="list", elements="str"),
        excluded_resources=dict(type="list", elements="str"),
        existing_resource_policy=dict(type="str", choices=["none", "update"]),
        restore_pvs=dict(type="bool"),
        vm_run_strategy=dict(type="str", choices=["Always", "Halted", "Manual", "RerunOnFailure", "Once"]),
        clear_mac_addresses=dict(type="bool", default=False),
        list_items=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=16),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
