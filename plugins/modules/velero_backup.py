#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: velero_backup
short_description: Back up namespaces of KubeVirt VMs, or chosen VMs, with Velero
version_added: 0.1.0
description:
  - Creates a Velero C(Backup) and waits, with one watch, until Velero reports it C(Completed) (or
    C(PartiallyFailed), C(Failed)). The result lists every item the backup holds, read from object storage the way
    C(velero backup describe --details) reads it (a C(DownloadRequest) for the backup's resource list, deleted once
    read), with Velero's warnings and errors.
  - Back up whole namespaces (O(included_namespaces)), or chosen VMs (O(vms)). With the kubevirt-velero-plugin
    installed (VMO's Velero does), a VM brings its DataVolumes, their PVCs (and through Velero's PVC action their
    PVs), its running instance and launcher pod into the backup.
  - Chosen VMs are selected as Velero selects anything, by label. Each VM gets the label
    C(velero.vmo.palette.io/backup) with the backup's name, and the Backup that label as its C(labelSelector).
  - B(Idempotent by name.) A Backup of that name with the same spec is this task's own (V(changed=false), waited for
    when still running). A Backup of that name with another spec is refused, since a Velero backup never changes.
  - Velero writes back the spec it prepared (the CSI C(VolumeSnapshot) resources added to C(excludedResources),
    namespaces labelled C(velero.io/exclude-from-backup=true) to C(excludedNamespaces), the ttl in Go's form such as
    C(720h0m0s)); a re-run compares the spec with these additions taken into account.
  - B(Preflight.) Before anything is written the task checks the names, the ttl, the label selector, that the
    storage location exists, is writable and C(Available), and that the namespaces and VMs exist. It refuses what
    Velero would fail to validate or fail partially (V(*) with other entries, V(*) excluded, a resource both included
    and excluded, V(?) or a pattern in a namespace, a namespace labelled C(velero.io/exclude-from-backup=true)). Then
    it dry-runs every write on the apiserver. A problem is reported with the object and the field, and nothing is
    written.
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
    details: Reads, the preflight and server-side dry runs only; no C(DownloadRequest), so RV(items) stays empty.
  diff_mode:
    support: full
    details: The Backup that would be created.
options:
  name:
    description: Name of the Velero C(Backup).
    type: str
    required: true
  velero_namespace:
    description: Namespace Velero is installed in (where its Backups and BackupStorageLocations are).
    type: str
    default: velero
  state:
    description:
      - V(present) makes the backup (once, by name).
      - V(absent) deletes it as C(velero backup delete) does (a C(DeleteBackupRequest)). Velero then removes its files
        from object storage, the restores made from it and the Backup, and the task waits until it has. A backup
        still in progress, or on a read-only or unavailable location, is refused before any write.
    type: str
    choices: [present, absent]
    default: present
  included_namespaces:
    description:
      - Namespaces to back up, whole, by name; V(["*"]) alone for all. Required unless O(vms) is given.
      - Velero 1.17 takes every entry but V(*) as a namespace name (a pattern such as V(vm-*) leaves the backup
        PartiallyFailed), so patterns are refused.
    type: list
    elements: str
  vms:
    description:
      - Chosen VMs to back up with their DataVolumes and PVCs. Each item is a VM name, C(namespace/name), or a dict
        with C(name) and C(namespace).
    type: list
    elements: raw
  namespace:
    description: Namespace of the items of O(vms) that name none.
    type: str
  label_selector:
    description:
      - Only items with these labels (for example V(app=web,tier in (db,cache))), as C(velero backup create
        --selector) takes it. The additional items of a selected VM (its DataVolumes, PVCs) come along unlabelled.
    type: str
  included_resources:
    description: Resources to back up (Velero's C(includedResources)); all when unset.
    type: list
    elements: str
  excluded_resources:
    description: Resources not to back up (Velero's C(excludedResources)).
    type: list
    elements: str
  include_cluster_resources:
    description: Velero's C(includeClusterResources); unset lets Velero decide (cluster resources only for all namespaces).
    type: bool
  storage_location:
    description:
      - The C(BackupStorageLocation) to write to. When unset, the location marked C(default), else the one named
        V(default), as Velero chooses.
    type: str
  ttl:
    description:
      - How long Velero keeps the backup, as a Go duration (V(720h), V(90m)). Velero's default (720h) when unset or
        zero (V(0s)); Velero stores it in Go's form (V(720h0m0s)).
    type: str
  snapshot_volumes:
    description: Velero's C(snapshotVolumes); unset lets Velero decide.
    type: bool
  list_items:
    description: Read the backup's item list (and its warnings and errors) from object storage once it has finished.
    type: bool
    default: true
  wait:
    description: Wait until the backup has finished. Without it the task returns once the Backup is created.
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds. On timeout the error names the backup, its phase and progress.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once (VM reads, label patches and their dry runs).
    type: int
    default: 16
notes:
  - "RBAC: in O(velero_namespace), C(get), C(list), C(watch) and C(create) on C(backups.velero.io), C(get) and
    C(list) on C(backupstoragelocations.velero.io), C(create), C(get), C(list), C(watch) and C(delete) on
    C(downloadrequests.velero.io); with O(state=absent), C(create) on C(deletebackuprequests.velero.io) and C(list)
    and C(watch) on them; C(get) on the namespaces named; with O(vms), C(get) and C(patch) on
    C(virtualmachines.kubevirt.io) in their namespaces."
  - The object store's signed download URL must be reachable from where the task runs for RV(items); it is
    verified against the location's C(caCert) when it has one. Velero signs it for the location's C(s3Url), often a
    service inside the cluster; give the location a C(publicUrl) (spec.config.publicUrl) reachable from here, or set
    O(list_items=false). The task's error says so when the URL cannot be reached.
seealso:
  - module: palette.vmo.velero_restore
  - module: palette.vmo.kubevirt_vm
"""

EXAMPLES = r"""
- name: Back up a namespace of VMs
  palette.vmo.velero_backup:
    name: vms-nightly-20250101
    included_namespaces: [vms]
    ttl: 168h

- name: Delete a backup, its files and the restores made from it
  palette.vmo.velero_backup:
    name: vms-nightly-20241201
    state: absent

- name: Back up two VMs with their DataVolumes and PVCs
  palette.vmo.velero_backup:
    name: db-before-upgrade
    namespace: vms
    vms: [db-1, db-2]
    storage_location: default
"""

RETURN = r"""
backup:
  description: The Backup as Velero reports it.
  returned: always
  type: dict
  contains:
    name:
      description: Backup name.
      type: str
    namespace:
      description: Velero's namespace.
      type: str
    phase:
      description: Velero's phase (V(New) before Velero has seen it); V(absent) once deleted (O(state=absent)).
      type: str
      sample: Completed
    storage_location:
      description: The BackupStorageLocation used.
      type: str
    ttl:
      description: How long Velero keeps the backup.
      type: str
    included_namespaces:
      description: The namespaces backed up.
      type: list
      elements: str
    label_selector:
      description: The Backup's label selector.
      type: dict
    vms:
      description: The chosen VMs, as C(namespace/name).
      type: list
      elements: str
    start_timestamp:
      description: When Velero started the backup.
      type: str
    completion_timestamp:
      description: When Velero finished it.
      type: str
    expiration:
      description: When Velero will delete it.
      type: str
    progress:
      description: Velero's C(totalItems) and C(itemsBackedUp).
      type: dict
    warnings:
      description: Number of warnings Velero logged.
      type: int
    errors:
      description: Number of errors Velero logged.
      type: int
    validation_errors:
      description: Why Velero refused the backup (phase C(FailedValidation)).
      type: list
      elements: str
    failure_reason:
      description: Why Velero failed the backup.
      type: str
deletion_request:
  description: With O(state=absent), the C(DeleteBackupRequest) made.
  returned: when a backup was deleted
  type: str
items:
  description: Every item in the backup (from its resource list), when it finished and O(list_items) is set.
  returned: always
  type: list
  elements: dict
  contains:
    api_version:
      description: API version of the item.
      type: str
      sample: kubevirt.io/v1
    kind:
      description: Kind of the item.
      type: str
      sample: VirtualMachine
    namespace:
      description: Namespace of the item (null for a cluster-scoped item).
      type: str
    name:
      description: Name of the item.
      type: str
warnings:
  description: Velero's warnings for the backup, each with its scope.
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
from ansible_collections.palette.vmo.plugins.module_utils.velero.backup_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        name=dict(type="str", required=True),
        velero_namespace=dict(type="str", default="velero"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        included_namespaces=dict(type="list", elements="str"),
        vms=dict(type="list", elements="raw"),
        namespace=dict(type="str"),
        label_selector=dict(type="str"),
        included_resources=dict(type="list", elements="str"),
        excluded_resources=dict(type="list", elements="str"),
        include_cluster_resources=dict(type="bool"),
        storage_location=dict(type="str"),
        ttl=dict(type="str"),
        snapshot_volumes=dict(type="bool"),
        list_items=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=16),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("included_namespaces", "vms"), ("vms", "label_selector")])
    run_module(module, run)


if __name__ == "__main__":
    main()
