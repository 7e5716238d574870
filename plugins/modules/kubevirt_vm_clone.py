#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_clone
short_description: Clone KubeVirt VMs or VM snapshots into new VMs, many per task
version_added: 0.1.0
description:
  - Creates one C(VirtualMachineClone) per new VM and waits, with one watch for all of them, until each is
    C(Succeeded) or C(Failed). KubeVirt clones through a snapshot and a restore - from a VM it snapshots the VM
    first (online or not), from a C(VirtualMachineSnapshot) it restores that snapshot - and deletes its temporary
    objects afterwards. The new VM is created stopped; O(start) starts it and waits until KubeVirt reports it
    ready.
  - B(What is copied.) The VM's spec, labels and annotations, and new disks from the volume snapshots. Labels and
    annotations of the VM and of its template are kept or dropped by O(label_filters), O(annotation_filters),
    O(template_label_filters) and O(template_annotation_filters) (KubeVirt's filters - regular expressions
    matched anywhere in the key, a leading C(!) excludes and wins, C(*) alone matches every key; no filter keeps
    everything). Every interface gets the MAC address O(new_mac_addresses) gives it, else none (KubeMacPool or
    KubeVirt picks one); a firmware section's serial becomes O(new_smbios_serial) (or empty) and its UUID a new one.
  - B(Preflight.) Before anything is written every clone is checked - the source VM or snapshot exists, a snapshot
    is ready to use, the source's volumes can be snapshotted (KubeVirt's C(volumeSnapshotStatuses)), the target VM
    does not exist, each MAC address is well formed and names an interface of the source - and each
    C(VirtualMachineClone) goes through a server-side dry run (KubeVirt's clone admitter). One problem fails the
    task with nothing written; the message names every clone refused, the option and why.
  - B(Idempotence.) The clone object is named after the target VM. A task run again finds it C(Succeeded) with its
    VM and reports C(changed=false) (unless O(start) finds the VM stopped). KubeVirt deletes a clone object when
    its VM is deleted.
  - MAC addresses are sent in their hyphen form (V(02-00-00-00-00-01)), the same address for KubeVirt; KubeVirt
    v1.9.0's restore admitter refuses the clone's restore when a MAC address in it contains colons.
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
    details: Reads, the preflight and server-side dry runs of the clone objects (and of the start) only;
      C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: Per new VM, the clone that would make it.
options:
  target:
    description: Name of the new VM (one clone per task; see O(clones) for many).
    type: str
  source_vm:
    description: Clone this VM. Mutually exclusive with O(source_snapshot).
    type: str
  source_snapshot:
    description: Clone the VM this C(VirtualMachineSnapshot) recorded.
    type: str
  namespace:
    description: Namespace of the source and the new VM; with O(clones), the default of every item.
    type: str
  clones:
    description:
      - Many clones in one task. Each item has C(target) and one of C(source_vm) or C(source_snapshot), and
        optionally C(namespace), C(label_filters), C(annotation_filters), C(template_label_filters),
        C(template_annotation_filters), C(new_mac_addresses), C(new_smbios_serial) and C(start).
    type: list
    elements: dict
  label_filters:
    description: Which of the VM's labels the clone keeps (KubeVirt's C(labelFilters)); without it, all.
    type: list
    elements: str
  annotation_filters:
    description: Which of the VM's annotations the clone keeps (C(annotationFilters)); without it, all.
    type: list
    elements: str
  template_label_filters:
    description: Which labels of the VM's template the clone keeps (C(template.labelFilters)); without it, all.
    type: list
    elements: str
  template_annotation_filters:
    description: Which annotations of the VM's template the clone keeps; without it, all.
    type: list
    elements: str
  new_mac_addresses:
    description: Interface name to MAC address for the new VM (C(newMacAddresses)); other interfaces get none.
    type: dict
  new_smbios_serial:
    description:
      - The new VM's firmware serial (C(newSMBiosSerial)). KubeVirt sets it only when the source VM has a firmware
        section (C(spec.template.spec.domain.firmware)); for a source without one it is refused before any write.
    type: str
  start:
    description: Start the new VMs once cloned and wait until they are ready.
    type: bool
    default: false
  wait:
    description: Wait until every clone is C(Succeeded) or C(Failed) (and started VMs are ready).
    type: bool
    default: true
  wait_timeout:
    description: How long to wait in all, in seconds. On timeout the error names every pending clone and its phase.
    type: int
    default: 600
  concurrency:
    description: Requests in flight at once (reads, dry runs, creates, starts).
    type: int
    default: 16
  api_version:
    description: The C(kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
notes:
  - "RBAC: in each namespace, C(list) on C(virtualmachines) (and C(patch) with O(start)), on
    C(virtualmachinesnapshots) and C(virtualmachinesnapshotcontents); C(list), C(watch) and C(create) (also for the
    server-side dry run) on C(virtualmachineclones.clone.kubevirt.io); C(list) on C(events) (optional, it adds
    KubeVirt's warnings to a failure). KubeVirt's C(kubevirt.io:admin) and C(kubevirt.io:edit) roles grant these."
  - Cloning needs KubeVirt's C(Snapshot) feature gate (on by default since it is Beta; the VMO pack enables it) and
    storage that can snapshot the source's volumes.
seealso:
  - module: palette.vmo.kubevirt_vm_snapshot
  - module: palette.vmo.kubevirt_vm_restore
"""

EXAMPLES = r"""
- name: Clone a VM with only its app label, a new MAC address, and start it
  palette.vmo.kubevirt_vm_clone:
    namespace: prod
    source_vm: web-1
    target: web-2
    label_filters: ["app"]
    annotation_filters: ["!kubectl.kubernetes.io/*"]
    new_mac_addresses:
      default: "02:16:3e:00:00:02"
    start: true

- name: Make three test VMs from last night's snapshot
  palette.vmo.kubevirt_vm_clone:
    namespace: prod
    clones:
      - {source_snapshot: db-1-nightly, target: db-test-1}
      - {source_snapshot: db-1-nightly, target: db-test-2}
      - {source_snapshot: db-1-nightly, target: db-test-3, start: true}
"""

RETURN = r"""
changed:
  description: Whether a clone was created or a VM started (in check mode, would be).
  returned: always
  type: bool
api_version:
  description: The C(clone.kubevirt.io) version used.
  returned: always
  type: str
  sample: clone.kubevirt.io/v1beta1
clones:
  description: One entry per new VM, in order.
  returned: always
  type: list
  elements: dict
  contains:
    target:
      description: The new VM.
      type: str
    namespace:
      description: Namespace.
      type: str
    clone:
      description: Name of the C(VirtualMachineClone).
      type: str
    source_kind:
      description: V(VirtualMachine) or V(VirtualMachineSnapshot).
      type: str
    source:
      description: Name of the source.
      type: str
    action:
      description: V(created) (in check mode, would be), V(adopted) a clone in progress was followed, V(unchanged)
        it had Succeeded already.
      type: str
      choices: [created, adopted, unchanged]
    phase:
      description: The clone's last phase seen.
      type: str
      sample: Succeeded
    started:
      description: Whether this task started the new VM.
      type: bool
    mac_addresses:
      description: Interface name to MAC address of the new VM (empty when KubeVirt picks one).
      type: dict
    conditions:
      description: The clone's conditions (C(type), C(status), C(reason)).
      type: list
      elements: dict
    failure:
      description: KubeVirt's reason when the clone failed.
      type: str
    events:
      description: Warnings KubeVirt recorded on a failed or pending clone.
      type: list
      elements: str
errors:
  description: Every problem found, one per clone, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.clone_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        target=dict(type="str"),
        source_vm=dict(type="str"),
        source_snapshot=dict(type="str"),
        namespace=dict(type="str"),
        clones=dict(type="list", elements="dict"),
        label_filters=dict(type="list", elements="str"),
        annotation_filters=dict(type="list", elements="str"),
        template_label_filters=dict(type="list", elements="str"),
        template_annotation_filters=dict(type="list", elements="str"),
        new_mac_addresses=dict(type="dict"),
        new_smbios_serial=dict(type="str"),
        start=dict(type="bool", default=False),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=16),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("source_vm", "source_snapshot"), ("clones", "target"),
                                                ("clones", "source_vm"), ("clones", "source_snapshot"),
                                                ("clones", "new_mac_addresses"), ("clones", "new_smbios_serial")])
    run_module(module, run)


if __name__ == "__main__":
    main()
