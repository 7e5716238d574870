#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: palette_maas_cluster
short_description: Palette cluster on MAAS bare metal, from cluster profiles, with its machine pools
version_added: 0.1.0
description:
  - Ensures a Palette cluster on MAAS machines (C(POST /v1/spectroclusters/maas)) built from cluster profiles (one
    infra or cluster profile with the OS, Kubernetes, network and storage layers, plus add-on profiles such as the
    Virtual Machine Orchestrator one), a MAAS cloud account and domain, a control-plane pool and worker pools.
  - Palette picks each pool's machines among the MAAS machines that are Ready, in the pool's resource pool, in one
    of its zones, carrying its tags and at least its CPU and memory; it deploys them and makes them Kubernetes nodes.
  - An existing cluster is converged in place. Pools are scaled up and down (C(PUT .../machinePools/{name})), added
    and removed; profiles are attached, or replace the attached version of the same profile (the infra profile
    replaces the attached infra profile). Only what the task declares is compared, so a second run writes nothing.
  - The domain, SSH keys and NTP servers of an existing cluster are changed in place, by one
    C(PUT /v1/cloudconfigs/maas/{uid}/clusterConfig) of the whole cluster config (what the task leaves out is sent as
    the cluster has it), written before any pool change of the same task.
  - The whole task is checked by reading only, before the first write - the cloud account, the profiles (by name
    and version, their types), the resource pools, zones, tags and domain of the account's MAAS, and, for a new
    cluster, the errors of Palette's own validation (C(POST /v1/spectroclusters/maas/validate)). Every error names
    the cluster, the pool or profile, the option and the reason.
  - Palette does not check that MAAS has the machines a pool asks for - its MAAS provider allocates them one by one
    and keeps retrying, so the cluster would stay C(Provisioning). With a MAAS connection (O(maas_url),
    O(maas_api_key)), the module reads MAAS's Ready machines itself before any write, and refuses a new or grown
    pool that needs more machines (its new size less the machines it holds now) than MAAS has Ready in its resource
    pool and zones, with its last node tag and its minimum CPU and memory (pools take machines in order, the control
    plane first). Without a MAAS connection it warns that capacity was not checked.
  - One bounded wait (O(wait_timeout)) through C(Pending) and C(Provisioning) to C(Running) with the overview's
    health C(Healthy) (the Terraform provider's criterion), and until the overview has each pool at exactly its size
    with that many healthy machines. The result reports every machine from the pool's machines list; on timeout the
    message names the pools and machines still pending and Palette's last state and conditions.
  - The cluster's kubeconfig can be written to a file (mode 0600) or returned (only from a task with C(no_log)).
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.attributes
  - palette.vmo.palette_auth
attributes:
  check_mode:
    support: full
    details: Only reads (GET, and the read-only POSTs of the cluster search and of the validation; MAAS's machines
      list); C(changed) and the actions are predicted exactly, except a force delete of O(force_delete), which
      depends on how long Palette takes.
  diff_mode:
    support: full
    details: Before and after of the cluster's declared fields - domain, SSH keys, NTP servers, profiles and pools.
options:
  name:
    description: Name of the cluster, unique in O(palette_project).
    type: str
    required: true
  state:
    description:
      - V(present) ensures the cluster and waits for it (O(wait)).
      - V(absent) deletes it and waits until the cluster is gone (Palette reads it as deleted, or not at all). At that
        point MAAS may still be releasing its machines (releasing, erasing disks) - they become Ready later. A
        cluster that does not exist is no change. Only O(name), O(force_delete), O(force_delete_after), O(wait),
        O(wait_timeout) and the connection options apply.
    type: str
    choices: [present, absent]
    default: present
  cloud_account:
    description: The MAAS cloud account (the private cloud gateway's account), by name or uid. Required with
      O(state=present).
    type: str
  domain:
    description:
      - The MAAS DNS domain the machines are deployed in, such as V(maas), checked against the account's MAAS.
        Required with O(state=present).
      - An existing cluster in another domain is changed in place.
    type: str
  profiles:
    description:
      - The cluster profiles, exactly one of them of type C(infra) or C(cluster) (checked against Palette), the
        others of type C(add-on). Required with O(state=present).
      - A profile whose version is not attached replaces the attached version of the same name (the infra or
        cluster profile replaces the attached one of that type, whatever its name). Profiles attached to the
        cluster and not listed here are left as they are.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the profile.
        type: str
        required: true
      version:
        description: Version of the profile; the latest published version when omitted.
        type: str
      pack_values:
        description:
          - Values of packs of the profile for this cluster. Each replaces the pack's values on the cluster (as
            Palette's C(packValues) do), and is compared with them as parsed YAML.
        type: list
        elements: dict
        suboptions:
          name:
            description: Name of the pack in the profile.
            type: str
            required: true
          values:
            description: The pack's values, as YAML text or a mapping.
            type: raw
            required: true
      variables:
        description:
          - Values of the profile's variables, sent when the profile is attached (at creation, or when it is added
            or replaces another version); values already on the cluster are not read back.
        type: dict
  control_plane:
    description:
      - The control-plane pool (named C(control-plane-pool) on a new cluster; an existing cluster's control-plane
        pool is found whatever its name). Required to create the cluster.
    type: dict
    suboptions:
      size:
        description: Number of control-plane machines.
        type: int
        default: 1
      resource_pool:
        description: The MAAS resource pool the machines are taken from.
        type: str
        required: true
      azs:
        description: MAAS zones the machines may be in (any zone when omitted).
        type: list
        elements: str
      node_tags:
        description:
          - MAAS tags of the machines. Palette's MAAS provider sends only the B(last) tag to MAAS when it allocates
            a machine, so only that one is sure to be on the machines (and only that one counts in the capacity
            check); the module warns when more than one is given.
        type: list
        elements: str
      min_cpu:
        description: Minimum CPU cores of a machine.
        type: int
      min_memory_mb:
        description: Minimum memory of a machine, in MiB.
        type: int
      as_worker:
        description: Also run workloads on the control-plane machines (C(useControlPlaneAsWorker)).
        type: bool
        default: false
      additional_labels:
        description: Labels Palette puts on the pool's nodes.
        type: dict
  worker_pools:
    description:
      - The worker pools. When given, it is the whole set - a worker pool of the cluster that is not listed is
        removed; when omitted, the worker pools are left as they are.
      - An option left out of an item keeps the pool's value in Palette (on a new pool, MAAS's default - no zone,
        tag or minimum).
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the pool (lower case letters, digits and C(-)).
        type: str
        required: true
      size:
        description: Number of machines (0 or more). Changing it scales the pool in place.
        type: int
        required: true
      resource_pool:
        description: The MAAS resource pool the machines are taken from.
        type: str
        required: true
      azs:
        description: MAAS zones the machines may be in.
        type: list
        elements: str
      node_tags:
        description:
          - MAAS tags of the machines. Only the B(last) one is sent to MAAS by Palette's MAAS provider (and counts in
            the capacity check); the module warns when more than one is given.
        type: list
        elements: str
      min_cpu:
        description: Minimum CPU cores of a machine.
        type: int
      min_memory_mb:
        description: Minimum memory of a machine, in MiB.
        type: int
      additional_labels:
        description: Labels Palette puts on the pool's nodes (for example one that VMs select with a node selector).
        type: dict
      taints:
        description: Taints of the pool's nodes.
        type: list
        elements: dict
        suboptions:
          key:
            description: Taint key.
            type: str
            required: true
          value:
            description: Taint value.
            type: str
            default: ""
          effect:
            description: Taint effect.
            type: str
            required: true
            choices: [NoSchedule, PreferNoSchedule, NoExecute]
  ssh_keys:
    description:
      - SSH public keys authorized for the C(spectro) user on every machine, sent without the whitespace around them
        (as the Terraform provider does). Compared as a set of trimmed keys (their order, a trailing newline and a
        key listed twice are no change); other keys on an existing cluster are replaced in place.
      - An empty list removes the cluster's keys; left out, the cluster keeps its keys.
    type: list
    elements: str
  ntp_servers:
    description:
      - NTP servers of the machines, instead of the image's default ones. Compared in order, as Palette keeps the list
        and the machines' time client tries the servers in that order; others on an existing cluster (or the same in
        another order) are replaced in place.
      - An empty list goes back to the image's default servers; left out, the cluster keeps its servers.
    type: list
    elements: str
  wait:
    description:
      - Wait until the cluster is C(Running) and C(Healthy) and every pool has exactly its size of healthy machines
        (with O(state=present)), or until the cluster is gone (with O(state=absent)).
      - Without the wait, the kubeconfig (O(kubeconfig_dest), O(return_kubeconfig)) of a cluster still being
        created may not exist yet.
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait (0 or more). On timeout the task fails naming the pools and machines still pending
      and Palette's last state and conditions; what was written stays written.
    type: int
    default: 3600
  force_delete:
    description:
      - With O(state=absent), force the deletion of a cluster stuck in C(Deleting), as the Terraform provider does -
        a plain C(DELETE) first, then, when the cluster is still C(Deleting) O(force_delete_after) seconds later, a
        C(DELETE) with C(forceDelete=true), which does not wait for Palette to clean up the cluster's resources
        (Palette only accepts it once the cluster has been C(Deleting) for a while).
      - Needs O(wait); without it only the plain C(DELETE) is sent.
    type: bool
    default: false
  force_delete_after:
    description:
      - Seconds a cluster may stay C(Deleting) before O(force_delete) forces it (the Terraform provider's
        C(force_delete_delay) default, 20 minutes). The whole deletion stays within O(wait_timeout); when this is
        not less than O(wait_timeout) the deletion is never forced.
    type: int
    default: 1200
  maas_url:
    description:
      - URL of the MAAS region the cloud account's MAAS is (up to and including C(/MAAS)). With O(maas_api_key) it
        lets the module check, before any write, that MAAS has enough Ready machines for the pools it creates or
        grows. E(MAAS_URL) when unset.
    type: str
  maas_api_key:
    description: MAAS API key (C(consumer_key:token_key:token_secret)) for the capacity check; read only.
      E(MAAS_API_KEY) when unset.
    type: str
  maas_ca_cert:
    description: CA certificate that signed the MAAS certificate. E(MAAS_CA_CERT) when unset.
    type: path
  maas_validate_certs:
    description: Verify the MAAS TLS certificate. Only turn this off for a throwaway lab.
    type: bool
    default: true
  kubeconfig_kind:
    description: Which kubeconfig O(kubeconfig_dest) and O(return_kubeconfig) get - the V(client) one
      (C(/assets/kubeconfigclient)) or the V(admin) one (C(/assets/adminKubeconfig)).
    type: str
    choices: [client, admin]
    default: client
  kubeconfig_dest:
    description:
      - Write the cluster's kubeconfig to this file, with mode 0600, atomically. The file is written (and the task
        changed) only when its content differs, or its mode is fixed when only that differs.
      - The directory must exist.
    type: path
  return_kubeconfig:
    description:
      - Return the kubeconfig in the result (RV(kubeconfig)). It holds the cluster's credentials, so the task must
        set C(no_log) (V(true)); the module refuses otherwise, before anything is written.
    type: bool
    default: false
  palette_validate_certs:
    description:
      - Verify the Palette TLS certificate. Only turn this off for a throwaway lab. E(PALETTE_VALIDATE_CERTS) when unset.
    type: bool
    default: true
    aliases: [validate_certs]
notes:
  - A pool's resource pool, zones, tags and minimums pick its machines when they are allocated; changing them on an
    existing pool is sent to Palette with the pool (C(PUT)), which applies them to the machines it allocates.
  - Palette may roll a pool (repave its machines) after such a change or a new infrastructure profile version, one
    extra matching machine at a time, and may hold a repave until it is approved in Palette (the cluster's
    C(status.repave)). The module neither approves nor waits for a repave, and the capacity check counts no extra
    machine for it.
  - A changed domain, SSH keys or NTP servers are Palette's cluster config from then on, for the machines it deploys
    (written first, so a scale-up of the same task gets them); the module does not redeploy the machines already
    deployed.
  - The credentials of the fetched kubeconfig (keys, tokens, passwords) never appear in the task's output.
seealso:
  - name: Palette MAAS clusters
    description: Creating and managing MAAS clusters in Palette.
    link: https://docs.spectrocloud.com/clusters/data-center/maas/create-manage-maas-clusters/
  - module: palette.vmo.maas_machine
  - module: palette.vmo.vmo_profile
"""

EXAMPLES = r"""
- name: A MAAS cluster with the VMO add-on profile, one control plane and three workers
  palette.vmo.palette_maas_cluster:
    palette_host: https://api.spectrocloud.com
    palette_api_key: "{{ palette_api_key }}"
    palette_project: Default
    # MAAS's Ready machines are checked against the pools before anything is written.
    maas_url: https://maas.example.com:5443/MAAS
    maas_api_key: "{{ maas_api_key }}"
    name: vmo-cluster
    cloud_account: maas-pcg
    domain: maas
    profiles:
      - name: maas-infra
        version: 1.0.0
      - name: vmo
    control_plane:
      size: 1
      resource_pool: control-plane
      min_cpu: 4
      min_memory_mb: 8192
    worker_pools:
      - name: workers
        size: 3
        resource_pool: vmo-workers
        azs: [rack-a, rack-b]
        node_tags: [vmo]
        min_cpu: 8
        min_memory_mb: 32768
        additional_labels:
          vmo.example.com/pool: workers
    ssh_keys:
      - "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519.pub') }}"
    ntp_servers: [ntp.example.com]
    kubeconfig_dest: "{{ playbook_dir }}/vmo-cluster.kubeconfig"
    wait_timeout: 5400

- name: Scale the worker pool to four machines
  palette.vmo.palette_maas_cluster:
    name: vmo-cluster
    cloud_account: maas-pcg
    domain: maas
    profiles: [{name: maas-infra, version: 1.0.0}, {name: vmo}]
    worker_pools:
      - name: workers
        size: 4
        resource_pool: vmo-workers

- name: Replace the cluster's SSH keys and NTP servers in place
  palette.vmo.palette_maas_cluster:
    name: vmo-cluster
    cloud_account: maas-pcg
    domain: maas
    profiles: [{name: maas-infra, version: 1.0.0}, {name: vmo}]
    ssh_keys:
      - "{{ lookup('ansible.builtin.file', '~/.ssh/id_ed25519_2026.pub') }}"
    ntp_servers: [ntp1.example.com, ntp2.example.com]

- name: The cluster's kubeconfig, kept out of the output
  palette.vmo.palette_maas_cluster:
    name: vmo-cluster
    cloud_account: maas-pcg
    domain: maas
    profiles: [{name: maas-infra, version: 1.0.0}, {name: vmo}]
    return_kubeconfig: true
  no_log: true
  register: cluster

- name: Delete the cluster, forcing it when it is still Deleting after 20 minutes
  palette.vmo.palette_maas_cluster:
    name: vmo-cluster
    state: absent
    force_delete: true
    wait_timeout: 3600
"""

RETURN = r"""
actions:
  description: What was written (or, in check mode, would be), in order - such as C(create cluster ...),
    C(update cluster config ...) (naming the declared O(domain), O(ssh_keys) or O(ntp_servers) that differ),
    C(scale pool workers from 3 to 4), C(add pool ...), C(remove pool ...), C(attach profile vmo 1.0.0),
    C(replace profile vmo 1.0.0 with vmo 1.1.0), C(update pack values of profile ...), C(delete cluster ...),
    C(force delete cluster ... (still Deleting after 1200s)), C(write kubeconfig ...). On a failure after a write,
    what was written.
  returned: always
  type: list
  elements: str
uid:
  description: Uid of the cluster (none in check mode before it is created, or when it does not exist).
  returned: when the cluster exists
  type: str
cluster:
  description: The cluster after the task (in check mode, as it is now); none when it does not exist.
  returned: always
  type: dict
  contains:
    uid:
      description: Cluster uid.
      type: str
    name:
      description: Cluster name.
      type: str
    state:
      description: Palette's C(status.state) - C(Pending), C(Provisioning), C(Running), C(Deleting), or C(Deleted)
        after O(state=absent).
      type: str
    health:
      description: The overview's health state (C(Healthy) once every node is Ready), when Palette reports one.
      type: str
    cloud_config_uid:
      description: Uid of the cluster's MAAS cloud config (its pools).
      type: str
    profiles:
      description: The task's profiles as resolved in Palette.
      type: list
      elements: dict
      contains:
        name:
          description: Profile name.
          type: str
        version:
          description: Profile version.
          type: str
        uid:
          description: Uid of that version.
          type: str
    pools:
      description: Each machine pool with its machines.
      type: list
      elements: dict
      contains:
        name:
          description: Pool name.
          type: str
        size:
          description: Number of machines the pool is to have.
          type: int
        control_plane:
          description: Whether it is the control-plane pool.
          type: bool
        machines:
          description: The pool's machines as Palette lists them.
          type: list
          elements: dict
          contains:
            name:
              description: Machine name in Palette.
              type: str
            hostname:
              description: The MAAS machine's hostname (also its node's name).
              type: str
            state:
              description: C(Pending), C(Provisioning), C(Provisioned), C(Running) or C(Deleting).
              type: str
            ready:
              description: Whether the machine's node is ready, as Palette reports it; null when Palette does not
                report it (the wait does not use it).
              type: bool
diff:
  description: Before and after of the declared fields (domain, SSH keys sorted, NTP servers in order, profiles,
    pools).
  returned: when something is (or would be) written, in diff mode
  type: dict
kubeconfig:
  description: The kubeconfig (O(kubeconfig_kind)), as YAML text.
  returned: with O(return_kubeconfig), when the cluster exists
  type: str
kubeconfig_dest:
  description: The file the kubeconfig was written to (or was already in).
  returned: with O(kubeconfig_dest)
  type: str
errors:
  description: Every problem found, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.maas.capacity import PoolNeed, ready_machines, shortfalls
from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import palette_module_arg_spec
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_plan import CONTROL_PLANE_OPTIONS
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_runner import run


def argument_spec():
    # validate_certs means Palette's; MAAS's switch is maas_validate_certs only.
    spec = palette_module_arg_spec()
    spec.update(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        cloud_account=dict(type="str"),
        domain=dict(type="str"),
        # The items of profiles and worker_pools are validated by the runner, so that its errors name the item.
        profiles=dict(type="list", elements="dict"),
        control_plane=dict(type="dict", options=CONTROL_PLANE_OPTIONS),
        worker_pools=dict(type="list", elements="dict"),
        ssh_keys=dict(type="list", elements="str", no_log=False),
        ntp_servers=dict(type="list", elements="str"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=3600),
        force_delete=dict(type="bool", default=False),
        force_delete_after=dict(type="int", default=1200),
        maas_url=dict(type="str", fallback=(env_fallback, ["MAAS_URL"])),
        maas_api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["MAAS_API_KEY"])),
        maas_ca_cert=dict(type="path", fallback=(env_fallback, ["MAAS_CA_CERT"])),
        maas_validate_certs=dict(type="bool", default=True),
        kubeconfig_kind=dict(type="str", choices=["client", "admin"], default="client"),
        kubeconfig_dest=dict(type="path"),
        return_kubeconfig=dict(type="bool", default=False),
    )
    return spec


def maas_capacity_check(params):
    """The capacity check of the task's MAAS connection - capacity needs (dicts of PoolNeed's arguments) to the
    pools MAAS cannot fill - or None when the task has no MAAS connection."""
    if not (params.get("maas_url") or params.get("maas_api_key")):
        return None
    client = MaasClient({"maas_url": params.get("maas_url"), "maas_api_key": params.get("maas_api_key"),
                         "maas_ca_cert": params.get("maas_ca_cert"),
                         "validate_certs": params["maas_validate_certs"]})

    def check(needs):
        return shortfalls([PoolNeed(**need) for need in needs], ready_machines(client))
    return check


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "present", ["cloud_account", "domain", "profiles"])])
    run_module(module, lambda m: run(m, maas_capacity_check))


if __name__ == "__main__":
    main()
