#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm
short_description: Declare KubeVirt virtual machines, one or many per task, and their power state
version_added: 0.1.0
description:
  - Creates, updates and deletes KubeVirt C(VirtualMachine) objects with server-side apply under the field
    manager O(field_manager), and drives their power through KubeVirt's C(subresources.kubevirt.io) API.
  - One VM (O(name), O(namespace) and its options) or many (O(vms), a list of the same options; options given at
    the task level are defaults for every item). The batch is validated first, by the module and then by a
    server-side dry run of every VM; if anything is invalid, nothing is written and the error names the VM and
    the field.
  - Only the VMs whose dry run differs from the live object are written, so a second run reports C(changed=false).
    Power verbs are sent only when the VM is not already in the declared state.
  - Writes run concurrently (O(concurrency)); one shared watch waits for all VMs (O(wait)).
  - Never writes the deprecated C(spec.running); a VM that has it is migrated to C(spec.runStrategy).
  - Day-2 changes of a running VM follow the cluster's rollout strategy (the KubeVirt CR's
    C(vmRolloutStrategy); unset is LiveUpdate). Under LiveUpdate more CPU sockets (up to
    O(cpu.max_sockets)) and more guest memory (up to O(memory_max)) reach the running VM without a restart, as
    do hotplugged disks (O(disks[].hotplug)) and bridge NICs on Multus networks. KubeVirt marks any other
    template change C(RestartRequired); the module reports it per VM (RV(vms[].restart_required)) and restarts
    the VM only with O(restart_if_required). Under C(Stage) CPU, memory and placement changes also need a restart.
    A larger disk size grows the disk's PersistentVolumeClaim.
  - Volume hotplug takes the path the cluster's KubeVirt takes. With the C(HotplugVolumes) feature gate on (as
    the VMO pack sets it) KubeVirt's declarative hotplug is off, so volumes are added and removed through the
    VM's C(addvolume)/C(removevolume) subresources; with only C(DeclarativeHotplugVolumes) the VM spec carries
    them. When the KubeVirt CR cannot be read, the subresources are used (they work on both paths). Every
    C(addvolume)/C(removevolume) request is first sent as a dry run (also in check mode), so a request KubeVirt
    refuses fails the task before anything is written.
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
    details: Server-side dry run of every write; C(changed) is predicted exactly and nothing is persisted.
  diff_mode:
    support: full
    details: Before and after of every VM that would change.
options:
  name:
    description: Name of the VM (a DNS label). Required unless O(vms) is given.
    type: str
  namespace:
    description: Namespace of the VM; with O(vms), the default namespace of every item.
    type: str
  vms:
    description:
      - Many VMs in one task. Each item takes the per-VM options of this module (O(name), O(namespace), O(state),
        O(run_strategy), O(labels), O(annotations), O(cpu), O(memory), O(memory_max), O(restart_if_required),
        O(disks), O(nics), O(cloud_init), O(instancetype), O(preference), O(node_selector), O(eviction_strategy),
        O(spec), O(data_volume_templates), O(template)); an option missing from an item takes the task-level value.
    type: list
    elements: dict
  state:
    description:
      - V(present) (the default) declares the VM; V(absent) deletes it.
      - V(started), V(stopped), V(restarted), V(paused) and V(unpaused) declare it and bring it to that power state.
        A state that already holds reports no change; V(restarted) always restarts.
    type: str
    choices: [present, absent, started, stopped, restarted, paused, unpaused]
  run_strategy:
    description:
      - C(spec.runStrategy). Unset on an existing VM keeps its current strategy; a new VM gets V(Halted) for
        O(state=stopped) and V(Always) otherwise.
      - Must agree with O(state) (for example V(Halted) with O(state=started) is an error).
    type: str
    choices: [Always, Halted, Manual, RerunOnFailure, Once]
  labels:
    description: Labels of the VM and of its instances. The module adds C(app.kubernetes.io/managed-by=palette.vmo).
    type: dict
  annotations:
    description: Annotations of the VM and of its instances.
    type: dict
  cpu:
    description: Guest CPU topology.
    type: dict
    suboptions:
      cores:
        description: Cores per socket.
        type: int
      sockets:
        description: Sockets.
        type: int
      threads:
        description: Threads per core.
        type: int
      max_sockets:
        description:
          - C(maxSockets), the most sockets the VM can be given while it runs. Raising O(cpu.sockets) up to it on a
            running VM is applied live; KubeVirt sets four times the sockets when unset.
          - O(cpu.sockets) above it is refused before anything is written. Changing O(cpu.cores), O(cpu.threads) or
            this maximum needs a restart (see O(restart_if_required)).
        type: int
  memory:
    description:
      - Guest memory, a Kubernetes quantity such as V(2Gi). Required unless O(instancetype) or O(spec) sets it.
      - Raised on a running VM up to O(memory_max), it is hotplugged live; lowered below what the VM started with, it
        needs a restart.
    type: str
  memory_max:
    description:
      - C(maxGuest), the most guest memory the VM can be given while it runs (memory hotplug).
      - As KubeVirt requires, O(memory) must then be at least V(1Gi), both must be multiples of V(2Mi), and O(memory)
        may not exceed it; each is checked before anything is written.
    type: str
  restart_if_required:
    description:
      - Restart a running VM that KubeVirt marks C(RestartRequired) after this task's change (or before it), through
        the C(restart) subresource, and with O(wait) wait until it runs again with the new spec.
      - Unset or V(false) leaves the VM running and reports RV(vms[].restart_required).
    type: bool
  disks:
    description: Disks, each with exactly one source.
    type: list
    elements: dict
    suboptions:
      name:
        description: Disk (and volume) name.
        type: str
        required: true
      bus:
        description: Disk bus, V(virtio) by default (V(scsi) for a hotplugged disk; KubeVirt hotplugs on scsi or virtio only).
        type: str
      hotplug:
        description:
          - A hotpluggable disk of a O(disks[].pvc) or O(disks[].data_volume) source. Added to a running VM it is
            attached live, and left out of the list it is detached live, without a restart.
          - Its DataVolume (O(disks[].data_volume)) is made by the module first, on its own rather than as a
            C(dataVolumeTemplates) entry.
        type: bool
      size:
        description:
          - For a O(disks[].pvc) disk, the size its claim should have. A larger size than the claim's request grows
            the claim (its StorageClass must allow volume expansion); a smaller one is refused.
        type: str
      boot_order:
        description: Boot order of this disk.
        type: int
      container_disk:
        description: A container image holding the disk.
        type: str
      pvc:
        description: An existing PersistentVolumeClaim.
        type: str
      empty_disk:
        description: An ephemeral empty disk of this size.
        type: str
      data_volume:
        description: A DataVolume created with the VM (a C(dataVolumeTemplates) entry).
        type: dict
        suboptions:
          name:
            description: DataVolume name; V(<vm>-<disk>) by default.
            type: str
          size:
            description:
              - Requested size, a Kubernetes quantity.
              - On an existing VM a larger size grows the DataVolume's claim (CDI does not resize a populated
                DataVolume); the claim's StorageClass must allow volume expansion, and a smaller size is refused.
            type: str
          storage_class:
            description: Storage class.
            type: str
          access_modes:
            description: Access modes, such as V(ReadWriteMany) for live migration.
            type: list
            elements: str
          registry:
            description: Import from a container registry URL (V(docker://...)).
            type: str
          http:
            description: Import from an HTTP(S) URL.
            type: str
          clone:
            description: Clone a golden-image PVC.
            type: dict
            suboptions:
              name:
                description: PVC name.
                type: str
                required: true
              namespace:
                description: PVC namespace, V(default) when unset.
                type: str
          blank:
            description: A blank disk.
            type: bool
  nics:
    description:
      - Network interfaces. Unset means one interface on the pod network with masquerade binding.
    type: list
    elements: dict
    suboptions:
      name:
        description: Interface (and network) name.
        type: str
        required: true
      network:
        description: V(pod), or the Multus network attachment (V(namespace/name) or V(name)).
        type: str
        default: pod
      binding:
        description: V(masquerade) (pod network default), V(bridge) (Multus default) or V(sriov).
        type: str
      model:
        description: NIC model, V(virtio) by default.
        type: str
      mac_address:
        description: A fixed MAC address.
        type: str
      state:
        description:
          - V(absent) hot-unplugs the interface from the running VM (KubeVirt's C(state=absent)); once KubeVirt has
            removed it, nothing more is declared for it. Only for bridge interfaces on Multus networks.
          - Leaving a bridge NIC on a Multus network out of O(nics) while the VM runs unplugs it the same way.
          - A NIC added to a running VM is hotplugged when it is a bridge (or SR-IOV) interface on a Multus network;
            any other new NIC on a running VM is refused.
        type: str
        choices: [present, absent]
  cloud_init:
    description: Cloud-init NoCloud data, as a C(cloudinitdisk) disk.
    type: dict
    suboptions:
      user_data:
        description: User data.
        type: str
      network_data:
        description: Network data.
        type: str
      ssh_authorized_keys:
        description: SSH public keys; written as a C(#cloud-config) user data when O(cloud_init.user_data) is unset.
        type: list
        elements: str
  instancetype:
    description: An instancetype, by name or as C({name, kind}); the kind defaults to C(VirtualMachineClusterInstancetype).
    type: raw
  preference:
    description: A preference, by name or as C({name, kind}); the kind defaults to C(VirtualMachineClusterPreference).
    type: raw
  node_selector:
    description: Node labels the VM must run on.
    type: dict
  eviction_strategy:
    description: What happens on node drain.
    type: str
    choices: [LiveMigrate, LiveMigrateIfPossible, External, None]
  spec:
    description:
      - A raw VMI template spec (C(spec.template.spec)) that the typed options extend. A disk or NIC name given
        both here and as a typed option is an error.
    type: dict
  data_volume_templates:
    description: Raw C(spec.dataVolumeTemplates) entries, added to those the typed disks make.
    type: list
    elements: dict
  template:
    description:
      - Name of a VMO C(VmTemplate) (C(spectrocloud.com), cluster-scoped) whose VM template and
        C(dataVolumeTemplates) are the base that the other options override.
      - The template's DataVolumes are renamed V(<vm name>-<DataVolume name>), so several VMs of one template can
        share a namespace.
    type: str
  api_version:
    description: The C(kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
  wait:
    description:
      - Wait until every VM reaches its declared state, with one watch for all of them. Running states wait for
        C(printableStatus=Running) and C(ready); stopped for C(Stopped); paused for C(Paused); absent until gone.
      - Also until restarted VMs run without C(RestartRequired), volume requests are carried out, unplugged NICs are
        gone from the VM, the running instances show what changed live (CPU topology and guest memory, hotplugged
        volumes C(Ready) and unplugged ones gone, hotplugged interfaces), and every grown claim shows its new
        capacity, all within O(wait_timeout). A claim of a VM that does not run is done once only the node's
        filesystem expansion is left (C(FileSystemResizePending)); it finishes when the VM next starts.
    type: bool
    default: false
  wait_timeout:
    description: How long to wait, in seconds. On timeout the error lists every VM still pending and its last status.
    type: int
    default: 300
  wait_condition:
    description: Wait for this VM condition instead of the state's default.
    type: dict
    suboptions:
      type:
        description: Condition type, such as V(Ready) or V(LiveMigratable).
        type: str
        required: true
      status:
        description: Condition status.
        type: str
        default: "True"
      reason:
        description: Condition reason, if it matters.
        type: str
  wait_field:
    description:
      - Wait until this field of the VM has this value instead of the state's default (for example
        C(status.printableStatus) = C(Running), or C(status.volumeSnapshotStatuses[0].enabled) = C(true)).
    type: dict
    suboptions:
      path:
        description: Dotted path with optional list indexes; C({.status.ready}) as kubectl writes it also works.
        type: str
        required: true
      value:
        description: The value to wait for, compared as text (case-insensitive); unset waits for any value.
        type: str
  propagation_policy:
    description: How dependents (the VMI, DataVolumes) are deleted with O(state=absent).
    type: str
    choices: [Foreground, Background, Orphan]
    default: Background
  exclusive:
    description:
      - Delete the VMs this collection manages (label C(app.kubernetes.io/managed-by=palette.vmo)) in the task's
        namespaces that the task does not declare. Other VMs are never touched.
    type: bool
    default: false
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: palette.vmo
  force_conflicts:
    description:
      - Take ownership of fields another manager set (for example C(spec.runStrategy) after a C(virtctl stop)), so
        the declared value wins. Set to V(false) to fail on such conflicts instead.
    type: bool
    default: true
  concurrency:
    description: Requests in flight at once for the batch.
    type: int
    default: 16
seealso:
  - module: palette.vmo.kubevirt_vm_info
  - name: KubeVirt live update
    description: What KubeVirt changes on a running VM and what needs a restart.
    link: https://kubevirt.io/user-guide/user_workloads/vm_rollout_strategies/
"""

EXAMPLES = r"""
- name: One VM from a container disk, running
  palette.vmo.kubevirt_vm:
    name: web-1
    namespace: vms
    state: started
    cpu: {cores: 2}
    memory: 2Gi
    disks:
      - name: root
        container_disk: quay.io/containerdisks/fedora:41
    cloud_init:
      ssh_authorized_keys: ["{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"]
    wait: true

- name: Many VMs in one task, with defaults for all
  palette.vmo.kubevirt_vm:
    namespace: vms
    memory: 1Gi
    run_strategy: Always
    vms:
      - name: app-1
        disks: [{name: root, data_volume: {size: 20Gi, clone: {name: ubuntu-2404, namespace: vmo-golden-images}}}]
      - name: app-2
        disks: [{name: root, data_volume: {size: 20Gi, registry: "docker://quay.io/containerdisks/ubuntu:24.04"}}]
      - name: db-1
        memory: 8Gi
        nics:
          - {name: default}
          - {name: storage, network: vms/storage-vlan}
    wait: true
    wait_timeout: 600

- name: Stop a VM (no change if it is already stopped)
  palette.vmo.kubevirt_vm:
    name: app-2
    namespace: vms
    state: stopped

- name: Remove VMs this collection manages in the namespace that are not listed
  palette.vmo.kubevirt_vm:
    namespace: vms
    memory: 1Gi
    exclusive: true
    vms: "{{ vm_list }}"

- name: More sockets and memory for a running VM, live; a new hotplugged disk; a larger root disk
  palette.vmo.kubevirt_vm:
    name: db-1
    namespace: vms
    state: started
    cpu: {sockets: 4, max_sockets: 8}
    memory: 16Gi
    memory_max: 32Gi
    disks:
      - name: root
        data_volume: {size: 80Gi, storage_class: ceph-block, clone: {name: ubuntu-2404, namespace: vmo-golden-images}}
      - name: scratch
        hotplug: true
        data_volume: {size: 50Gi, storage_class: ceph-block, blank: true}
    wait: true
  register: db

- name: Changes KubeVirt cannot apply live (more cores), restarting the VMs that need it
  palette.vmo.kubevirt_vm:
    namespace: vms
    memory: 4Gi
    restart_if_required: true
    vms:
      - {name: app-1, cpu: {cores: 4}}
      - {name: app-2, cpu: {cores: 4}}
    wait: true

- name: Unplug a NIC from a running VM
  palette.vmo.kubevirt_vm:
    name: db-1
    namespace: vms
    memory: 16Gi
    nics:
      - {name: default}
      - {name: storage, network: vms/storage-vlan, state: absent}

- name: A VM on a Palette cluster given by name; its kubeconfig comes from Palette and stays in memory
  palette.vmo.kubevirt_vm:
    palette_cluster: vmo-site-1
    palette_project: Default
    # palette_host and palette_api_key from PALETTE_HOST and PALETTE_API_KEY
    name: web-2
    namespace: vms
    state: started
    memory: 2Gi
    disks:
      - name: root
        container_disk: quay.io/containerdisks/fedora:41
"""

RETURN = r"""
api_version:
  description: The C(kubevirt.io) version used.
  returned: success
  type: str
  sample: kubevirt.io/v1
vms:
  description: One entry per declared VM (and per VM removed by O(exclusive)).
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
    action:
      description: What was done to the object.
      type: str
      sample: created
      choices: [created, updated, unchanged, deleted, absent]
    power:
      description: The power verb sent (start, stop, restart, pause, unpause), or null.
      type: str
    run_strategy:
      description: The VM's runStrategy.
      type: str
    printable_status:
      description: The VM's C(status.printableStatus) when last seen.
      type: str
      sample: Running
    ready:
      description: Whether the VM is ready.
      type: bool
    node:
      description: Node the VM's instance runs on.
      type: str
    ip_address:
      description: First IP address of the instance.
      type: str
    ip_addresses:
      description: All IP addresses of the instance.
      type: list
      elements: str
    restart_required:
      description:
        - Whether the running VM needs a restart for a change KubeVirt cannot apply live. After a write it is the VM's
          C(RestartRequired) condition once KubeVirt has synced the change; in check mode it is predicted.
      type: bool
    restart_reason:
      description: KubeVirt's message for the restart (or the predicted one), or null.
      type: str
      sample: a non-live-updatable field was changed in the template spec
    restarted:
      description: Whether the VM was restarted (O(restart_if_required)), or would be in check mode.
      type: bool
    hotplugged_volumes:
      description: Volumes hotplugged into the running VM.
      type: list
      elements: str
    unplugged_volumes:
      description: Hotplugged volumes detached from the running VM.
      type: list
      elements: str
    hotplugged_nics:
      description: Interfaces hotplugged into the running VM.
      type: list
      elements: str
    unplugged_nics:
      description: Interfaces unplugged from the running VM.
      type: list
      elements: str
    expanded_disks:
      description: Each disk claim grown, with its sizes.
      type: list
      elements: dict
      contains:
        disk:
          description: Disk name.
          type: str
        pvc:
          description: The PersistentVolumeClaim.
          type: str
        storage_class:
          description: Its StorageClass.
          type: str
        previous:
          description: The claim's request before.
          type: str
        requested:
          description: The size requested.
          type: str
        capacity:
          description: The claim's C(status.capacity) when last seen (the new size once O(wait) saw it).
          type: str
        expanded:
          description: Whether the claim was (or in check mode would be) grown.
          type: bool
        pending_node_expansion:
          description:
            - Whether the wait saw the volume grown but its filesystem not yet (C(FileSystemResizePending)); the
              VM does not run, so no pod mounts the claim. It finishes when the VM next starts.
          type: bool
errors:
  description: Every problem found, one per VM and field, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_options import VM_OPTIONS
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_runner import run


def argument_spec():
    return cluster_argument_spec(VM_OPTIONS, dict(
        vms=dict(type="list", elements="dict"),
        api_version=dict(type="str"),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=300),
        wait_condition=dict(type="dict", options=dict(type=dict(type="str", required=True),
                                                      status=dict(type="str", default="True"),
                                                      reason=dict(type="str"))),
        wait_field=dict(type="dict", options=dict(path=dict(type="str", required=True), value=dict(type="str"))),
        propagation_policy=dict(type="str", choices=["Foreground", "Background", "Orphan"], default="Background"),
        exclusive=dict(type="bool", default=False),
        field_manager=dict(type="str", default="palette.vmo"),
        force_conflicts=dict(type="bool", default=True),
        concurrency=dict(type="int", default=16),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("name", "vms"), ("wait_condition", "wait_field")])
    run_module(module, run)


if __name__ == "__main__":
    main()
