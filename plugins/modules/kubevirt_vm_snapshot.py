#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_snapshot
short_description: Snapshot KubeVirt VMs, one or many per task, with retention
version_added: 0.1.0
description:
  - Creates one C(VirtualMachineSnapshot) per VM and waits, with one watch for all of them, until each is ready
    to use (or KubeVirt failed it). KubeVirt snapshots every volume of the VM whose storage class has a
    C(VolumeSnapshotClass) and keeps a copy of the VM's spec in the snapshot's content, so the snapshot can be
    restored (C(VirtualMachineRestore)) or cloned (C(VirtualMachineClone)).
  - The VMs are named (O(name), or O(vms), across namespaces) or selected by labels (O(label_selector)), in
    O(namespace) or, without it, in every namespace.
  - B(Names and idempotence.) The snapshot of a VM is named C(<vm>-<snapshot_id>) (shortened with a hash when
    that is longer than a Kubernetes name). Running the same task again finds the snapshot and writes nothing; a
    new O(snapshot_id) (for example a date) makes a new snapshot. A snapshot of that name that palette.vmo did not
    make, or that belongs to another VM, refuses the task before anything is written.
  - Every snapshot made here has the label C(app.kubernetes.io/managed-by=palette.vmo), the label
    C(palette.vmo/snapshot-vm) with the VM's name and the annotation C(palette.vmo/snapshot-id).
  - B(Retention.) With O(retention), once a VM's new snapshot is ready to use, its older snapshots beyond the
    newest O(retention.keep) (the new one counted) or older than O(retention.max_age) are deleted. Only snapshots
    with the C(managed-by=palette.vmo) label whose source is that VM are considered; a snapshot someone else made
    is never deleted. A VM whose new snapshot is not ready keeps all its snapshots (see RV(snapshots[].retention_note)).
  - B(Check mode) lists the VMs, the snapshots and sends every create and delete as a server-side dry run, so
    KubeVirt's snapshot admitter and RBAC answer as they would; C(changed) is predicted exactly.
  - O(state=absent) deletes the snapshot C(<vm>-<snapshot_id>) of each VM (KubeVirt then deletes its content and
    volume snapshots, unless its deletion policy is V(retain)).
  - A task with failed snapshots fails, listing each with KubeVirt's reason, and still reports C(changed=true) and
    every result. The wait is bounded; on timeout the message names every snapshot still pending and its phase,
    conditions and error.
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
    details: Reads and server-side dry runs of every create and delete only; C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: Per VM, the names of its palette.vmo snapshots before and after (new one, retention).
options:
  name:
    description: Name of one VM.
    type: str
  namespace:
    description:
      - Namespace of the VM; with O(vms), the default of every item; with O(label_selector), where to select
        (every namespace when unset).
    type: str
  vms:
    description:
      - Many VMs in one task. Each item is a VM name, or a dict with C(name) and optionally C(namespace), which
        overrides O(namespace).
    type: list
    elements: raw
  label_selector:
    description: Every VM with these labels (for example V(backup=nightly)), in O(namespace) or in every namespace.
    type: str
  snapshot_id:
    description:
      - Names the snapshot of each VM, C(<vm>-<snapshot_id>). Lowercase letters, digits and C(-), at most 63
        characters (for example V(20260105) or V(before-upgrade)).
      - Required, except with O(state=present) and O(retention) alone (then only retention is applied).
    type: str
  state:
    description:
      - V(present) makes sure each VM has the snapshot, waits until it is ready, then applies O(retention).
      - V(absent) deletes each VM's snapshot of O(snapshot_id), if palette.vmo made it.
    type: str
    choices: [present, absent]
    default: present
  retention:
    description:
      - Which older palette.vmo snapshots of each VM to delete once its new snapshot is ready.
      - With O(wait=false) retention is applied at once, counting the new snapshot as kept.
    type: dict
    suboptions:
      keep:
        description: How many of the VM's palette.vmo snapshots to keep, the newest first (this run's included).
        type: int
      max_age:
        description: Delete the VM's palette.vmo snapshots older than this (for example V(36h), V(7d), V(1d12h)).
        type: str
  labels:
    description: Labels to put on each new snapshot, beside the ones palette.vmo sets.
    type: dict
  failure_deadline:
    description:
      - How long KubeVirt may take the snapshot before it fails it (C(spec.failureDeadline), a Go duration such as
        V(2m) or V(90s); V(0s) for no deadline). KubeVirt's default is 5m.
    type: str
  deletion_policy:
    description:
      - What KubeVirt does with the snapshot's content (and its volume snapshots) when the snapshot is deleted
        (C(spec.deletionPolicy)); KubeVirt's default is V(delete).
    type: str
    choices: [delete, retain]
  wait:
    description:
      - Wait until every snapshot is ready to use or failed, and until deleted snapshots are gone. Without it the
        task returns once the objects are created and deleted.
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds, in all. On timeout the error names every pending snapshot.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once (reads, dry runs, creates and deletes).
    type: int
    default: 16
  api_version:
    description: The C(snapshot.kubevirt.io) version to use (for example V(v1beta1)); discovered when unset.
    type: str
notes:
  - "RBAC: in each namespace of the VMs, C(list) on C(virtualmachines.kubevirt.io) (cluster-wide for
    O(label_selector) without O(namespace)); C(list), C(watch), C(create) and C(delete) on
    C(virtualmachinesnapshots.snapshot.kubevirt.io) (C(create) and C(delete) also for the server-side dry runs).
    KubeVirt's aggregated roles C(kubevirt.io:admin) and C(kubevirt.io:edit) grant them."
  - "KubeVirt snapshots only volumes whose storage class has a C(VolumeSnapshotClass) (the CSI driver's
    external-snapshotter); the others are listed in RV(snapshots[].excluded_volumes) and KubeVirt adds the
    indication C(PartialSnapshot)."
seealso:
  - module: palette.vmo.kubevirt_vm
  - module: palette.vmo.kubevirt_vm_info
"""

EXAMPLES = r"""
- name: Snapshot every VM labelled backup=nightly, keep the last 7 palette.vmo snapshots of each
  palette.vmo.kubevirt_vm_snapshot:
    label_selector: backup=nightly
    snapshot_id: "{{ now(utc=true, fmt='%Y%m%d') }}"
    retention:
      keep: 7
  register: nightly

- name: Show what KubeVirt says about the consistency of each snapshot
  ansible.builtin.debug:
    msg: "{{ nightly.snapshots | map(attribute='indications') | list }}"

- name: Snapshot three VMs before an upgrade, failing a snapshot that takes more than 2 minutes
  palette.vmo.kubevirt_vm_snapshot:
    namespace: vms
    vms: [web-1, web-2, db-1]
    snapshot_id: before-upgrade
    failure_deadline: 2m

- name: Drop snapshots older than two weeks, without taking a new one
  palette.vmo.kubevirt_vm_snapshot:
    namespace: vms
    label_selector: tier=web
    retention:
      max_age: 14d

- name: Delete the pre-upgrade snapshots
  palette.vmo.kubevirt_vm_snapshot:
    namespace: vms
    vms: [web-1, web-2, db-1]
    snapshot_id: before-upgrade
    state: absent
"""

RETURN = r"""
api_version:
  description: The C(snapshot.kubevirt.io) version used.
  returned: always
  type: str
  sample: snapshot.kubevirt.io/v1beta1
snapshots:
  description: One entry per VM, in the order named (by namespace and name for O(label_selector)); on failure, too.
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
    snapshot:
      description: Name of the VM's C(VirtualMachineSnapshot) of this O(snapshot_id).
      type: str
    action:
      description:
        - V(created) the snapshot was created (in check mode, would be); V(unchanged) it existed already;
          V(deleted) it was deleted (O(state=absent)); V(none) nothing to do for the snapshot itself.
      type: str
      choices: [created, unchanged, deleted, none]
    phase:
      description: KubeVirt's phase of the snapshot (C(InProgress), C(Succeeded), C(Failed)).
      type: str
    ready_to_use:
      description: Whether KubeVirt reports the snapshot ready to use (restore or clone from it).
      type: bool
    creation_time:
      description: When the snapshot was cut (KubeVirt's C(status.creationTime)).
      type: str
    indications:
      description:
        - KubeVirt's indications of the VM's state when the snapshot was taken, for example V(Online) and
          V(GuestAgent) (file systems were frozen) or V(NoGuestAgent) (crash-consistent).
      type: list
      elements: str
    source_indications:
      description: The same, each with KubeVirt's explanation (C(indication), C(message)).
      type: list
      elements: dict
    failure_deadline:
      description: The snapshot's failure deadline (KubeVirt's default 5m0s when the task sets none).
      type: str
    content:
      description: Name of the C(VirtualMachineSnapshotContent) KubeVirt made.
      type: str
    included_volumes:
      description: Volumes the snapshot contains.
      type: list
      elements: str
    excluded_volumes:
      description: Volumes it does not contain (no C(VolumeSnapshotClass), or not a claim).
      type: list
      elements: str
    error:
      description: KubeVirt's error on the snapshot, if any.
      type: str
    deleted:
      description: The VM's older palette.vmo snapshots deleted by retention (to be deleted, in check mode).
      type: list
      elements: str
    retention_note:
      description: Why retention was not applied to this VM.
      type: str
errors:
  description: Every problem found, one per VM, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.snapshot_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        name=dict(type="str"),
        namespace=dict(type="str"),
        vms=dict(type="list", elements="raw"),
        label_selector=dict(type="str"),
        snapshot_id=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        retention=dict(type="dict", options=dict(keep=dict(type="int"), max_age=dict(type="str"))),
        labels=dict(type="dict"),
        failure_deadline=dict(type="str"),
        deletion_policy=dict(type="str", choices=["delete", "retain"]),
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
