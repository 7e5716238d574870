#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_restore
short_description: Restore KubeVirt VMs from their snapshots, in place or into new VMs, many per task
version_added: 0.1.0
description:
  - Creates one C(VirtualMachineRestore) per requested restore and waits, with one watch for all of them, until
    each is complete (KubeVirt's C(status.complete)) or has failed (a C(Failure) condition).
  - B(In place.) Without O(target) (or with O(target) equal to O(vm)) the VM gets back the spec its snapshot
    recorded and new disks made from the snapshot's volume snapshots; KubeVirt keeps the VM's run strategy.
    KubeVirt restores only a stopped VM - a running one is refused before anything is written, unless
    O(stop_vm) asks KubeVirt to stop it first (its C(targetReadinessPolicy) C(StopTarget)). The VM stays stopped
    afterwards.
  - B(New VM.) With O(target) naming a VM that does not exist, KubeVirt creates it from the snapshot (stopped),
    with new disks; the source VM is untouched.
  - B(Preflight.) Before anything is written every restore is checked as KubeVirt's restore controller would
    check it later - the snapshot exists, has not failed and is ready to use, an existing target is the
    snapshot's own VM (KubeVirt refuses any other), no other restore of the target is in progress - and each
    C(VirtualMachineRestore) goes through a server-side dry run (KubeVirt's restore admitter). One problem fails
    the task with nothing written; the message names every restore refused, the option and why.
  - B(Failed restores.) KubeVirt never completes a failed restore, and its restore admitter refuses every new
    restore of a VM while one of its restores is not complete - a failed one included. The preflight therefore
    refuses a VM with a failed restore and names that C(VirtualMachineRestore); delete it, then run the task
    again (a failed restore of the same name is then made anew).
  - B(Idempotence.) The restore object is named C(<target>-<snapshot>), with C(-<restore_id>) when O(restore_id)
    is given. A task run again finds it complete and reports C(changed=false); a restore of that name still in
    progress is followed, not created again. To restore the same VM from the same snapshot once more, give a new
    O(restore_id).
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
    details: Reads, the preflight and server-side dry runs of the restore objects only; C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: Per restore, the target VM's spec now and the spec its snapshot brings back.
options:
  vm:
    description: The VM whose snapshot is restored (one restore per task; see O(restores) for many).
    type: str
  snapshot:
    description: Name of the C(VirtualMachineSnapshot) to restore, in the VM's namespace.
    type: str
  target:
    description: Restore into a new VM of this name instead of O(vm) itself.
    type: str
  namespace:
    description: Namespace of the VMs and snapshots; with O(restores), the default of every item.
    type: str
  restores:
    description:
      - Many restores in one task. Each item has C(vm) and C(snapshot) and optionally C(namespace), C(target),
        C(restore_id), C(stop_vm) and C(volume_restore_policy), which override the task-level values.
    type: list
    elements: dict
  stop_vm:
    description:
      - Let KubeVirt stop a running target VM before restoring it (C(targetReadinessPolicy) C(StopTarget)).
        Without it a running target fails the preflight.
    type: bool
    default: false
  restore_id:
    description:
      - Distinguishes one restore of a VM from a snapshot from another. Without it a task restores each VM from
        each snapshot once; change it to restore again.
    type: str
  volume_restore_policy:
    description:
      - KubeVirt's C(volumeRestorePolicy) - V(RandomizeNames) (KubeVirt's default) names the new claims
        C(restore-<uid>-<volume>), V(PrefixTargetName) C(<target>-<volume>), V(InPlace) reuses the claims' own
        names (replacing the current disks).
    type: str
    choices: [RandomizeNames, InPlace, PrefixTargetName]
  wait:
    description: Wait until every restore is complete or failed. Without it the task returns once they are created.
    type: bool
    default: true
  wait_timeout:
    description: How long to wait, in seconds. On timeout the error names every pending restore and its conditions.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once (reads, dry runs and creates).
    type: int
    default: 16
  api_version:
    description: The C(kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
notes:
  - "RBAC: in each namespace, C(list) on C(virtualmachines) and C(virtualmachineinstances) (C(kubevirt.io)),
    on C(virtualmachinesnapshots) and C(virtualmachinesnapshotcontents) (C(snapshot.kubevirt.io)); C(list),
    C(watch) and C(create) (also for the server-side dry run) on C(virtualmachinerestores). KubeVirt's
    C(kubevirt.io:edit) and C(kubevirt.io:admin) roles grant these."
  - Restoring needs KubeVirt's C(Snapshot) feature gate (on by default since it is Beta; the VMO pack enables it).
seealso:
  - module: palette.vmo.kubevirt_vm_snapshot
  - module: palette.vmo.kubevirt_vm_clone
"""

EXAMPLES = r"""
- name: Put a VM back as its nightly snapshot recorded it, stopping it first
  palette.vmo.kubevirt_vm_restore:
    namespace: prod
    vm: web-1
    snapshot: web-1-nightly
    stop_vm: true

- name: Restore several VMs, one into a new VM for inspection
  palette.vmo.kubevirt_vm_restore:
    namespace: prod
    restores:
      - vm: db-1
        snapshot: db-1-before-upgrade
      - vm: db-2
        snapshot: db-2-before-upgrade
        target: db-2-inspect
"""

RETURN = r"""
changed:
  description: Whether a restore was created (in check mode, would be).
  returned: always
  type: bool
api_version:
  description: The C(snapshot.kubevirt.io) version used.
  returned: always
  type: str
  sample: snapshot.kubevirt.io/v1beta1
restores:
  description: One entry per requested restore, in order.
  returned: always
  type: list
  elements: dict
  contains:
    vm:
      description: The VM whose snapshot was restored.
      type: str
    target:
      description: The VM restored into.
      type: str
    namespace:
      description: Namespace.
      type: str
    snapshot:
      description: The C(VirtualMachineSnapshot).
      type: str
    restore:
      description: Name of the C(VirtualMachineRestore).
      type: str
    action:
      description: V(created) (in check mode, would be), V(adopted) a restore of this name in progress was followed,
        V(unchanged) it was complete already.
      type: str
      choices: [created, adopted, unchanged]
    new_vm:
      description: Whether the target is a new VM.
      type: bool
    complete:
      description: KubeVirt's C(status.complete).
      type: bool
    restore_time:
      description: When KubeVirt completed the restore.
      type: str
    volumes:
      description: Each restored volume - C(volume), the new C(claim), its C(data_volume) (for a templated
        DataVolume) and the C(volume_snapshot) it came from.
      type: list
      elements: dict
    deleted_data_volumes:
      description: DataVolumes of the VM that the restored spec no longer has, which KubeVirt deleted.
      type: list
      elements: str
    conditions:
      description: The restore's conditions (C(type), C(status), C(reason)).
      type: list
      elements: dict
    failure:
      description: KubeVirt's reason when the restore failed.
      type: str
errors:
  description: Every problem found, one per restore, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.restore_plan import VOLUME_RESTORE_POLICIES
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.restore_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        vm=dict(type="str"),
        snapshot=dict(type="str"),
        target=dict(type="str"),
        namespace=dict(type="str"),
        restores=dict(type="list", elements="dict"),
        stop_vm=dict(type="bool", default=False),
        restore_id=dict(type="str"),
        volume_restore_policy=dict(type="str", choices=list(VOLUME_RESTORE_POLICIES)),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=16),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("restores", "vm"), ("restores", "snapshot"), ("restores", "target")])
    run_module(module, run)


if __name__ == "__main__":
    main()
