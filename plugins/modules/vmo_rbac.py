#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vmo_rbac
short_description: Bind users, groups and service accounts to the VMO roles, and prove what they can do
version_added: 0.1.0
description:
  - Declares RoleBindings (per namespace) and ClusterRoleBindings (O(bindings[].cluster_wide)) to the four VMO
    ClusterRoles C(spectro-vm-admin), C(spectro-vm-power-user), C(spectro-vm-user) and C(spectro-vm-viewer), or to
    any ClusterRole that exists. Objects are written with server-side apply and labelled
    C(app.kubernetes.io/managed-by=palette.vmo) and C(palette.vmo/role=<role>); their names are deterministic
    (V(vmo-<role>) unless O(bindings[].name) is given), so a second run reports C(changed=false).
  - The whole task is validated before anything is written, first by the module (roles and namespaces exist,
    subjects are well formed, names are unique and not taken by bindings the collection does not manage) and then
    by a server-side dry run of every object. An error names the binding item, the field and the reason.
  - O(exclusive) removes the bindings the collection manages that the task does not declare; bindings it does not
    manage are never touched.
  - O(roles=present) creates the four VMO ClusterRoles on a cluster without the VMO pack (an edge cluster), with the
    rules of the table below; an existing role that the collection does not manage (for example one installed by
    Palette's VMO pack) is left alone unless O(force_roles) is set.
  - With O(palette_cluster), the bindings are made through Palette's cluster RBAC settings
    (C(GET/PUT /v1/spectroclusters/{uid}/config/rbacs)) instead; Palette then creates them on the cluster. The
    settings are compared as a set of bindings, so a second run writes nothing; check mode only reads.
  - With O(palette_cluster) and O(rbac_api=kubernetes), the module works on the cluster's Kubernetes API as without
    Palette, through the cluster's kubeconfig that Palette gives (kept in memory only, see O(palette_cluster)).
  - O(verify) asks the apiserver, with SubjectAccessReviews, whether each declared subject may perform each
    operation of the table below where it is bound, and reports every difference from the table.
  - "The VMO role table: what each role may do in a namespace it is bound in (for listing namespaces and for the
    cluster-scoped VmTemplates, when it is bound cluster-wide).
    admin is C(spectro-vm-admin), power-user C(spectro-vm-power-user), user C(spectro-vm-user), viewer
    C(spectro-vm-viewer):"
  - "list VMs: admin yes, power-user yes, user yes, viewer yes"
  - "get a VM: admin yes, power-user yes, user yes, viewer yes"
  - "create a VM: admin yes, power-user yes, user no, viewer no"
  - "update a VM: admin yes, power-user yes, user yes, viewer no"
  - "delete a VM: admin yes, power-user yes, user no, viewer no"
  - "start a VM: admin yes, power-user yes, user yes, viewer no"
  - "stop a VM: admin yes, power-user yes, user yes, viewer no"
  - "restart a VM: admin yes, power-user yes, user yes, viewer no"
  - "pause a VM: admin yes, power-user yes, user yes, viewer no"
  - "open the VNC console: admin yes, power-user yes, user yes, viewer no"
  - "migrate a VM: admin yes, power-user yes, user no, viewer no"
  - "create a migration: admin yes, power-user yes, user no, viewer no"
  - "create a snapshot: admin yes, power-user yes, user yes, viewer no"
  - "restore a snapshot: admin yes, power-user yes, user no, viewer no"
  - "clone a VM: admin yes, power-user yes, user no, viewer no"
  - "export a VM: admin yes, power-user yes, user no, viewer no"
  - "read a DataVolume: admin yes, power-user yes, user yes, viewer yes"
  - "create a DataVolume: admin yes, power-user yes, user no, viewer no"
  - "clone a disk: admin yes, power-user yes, user no, viewer no"
  - "read a VmTemplate: admin yes, power-user yes, user yes, viewer yes"
  - "update a VmTemplate: admin yes, power-user no, user no, viewer no"
  - "create a VmTemplate: admin yes, power-user no, user no, viewer no"
  - "manage image imports: admin yes, power-user no, user no, viewer no"
  - "manage Secrets: admin yes, power-user no, user no, viewer no"
  - "list Secrets: admin yes, power-user no, user no, viewer no"
  - "list namespaces: admin yes, power-user yes, user yes, viewer yes"
  - "Beyond the table: admin also manages instance types, preferences, pools, migration policies, image
    imports (C(dataimportcrons), C(datasources)), backups, Secrets, ConfigMaps, Services, PVCs and
    NetworkAttachmentDefinitions. power-user manages VMs, instances, pools, migrations, snapshots, restores, clones,
    exports, DataVolumes, PVCs, Services and ConfigMaps, reads templates, instance types and image imports, and
    gets a Secret by name (a VM export's token), never lists them. user changes existing VMs (power, console,
    volume hot-plug, snapshots) and reads the rest. viewer reads VMs, instances, disks, snapshots and templates,
    and no console. All four read pods, events, namespaces, nodes, storage classes and networks."
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
    details: Kubernetes objects are planned with a server-side dry run and nothing is persisted; in Palette mode
      only GET requests are sent. C(changed) is predicted exactly. O(verify) is skipped in check mode.
  diff_mode:
    support: full
    details: Before and after of every binding and role that would change.
options:
  bindings:
    description: The bindings to declare, many in one task.
    type: list
    elements: dict
    default: []
    suboptions:
      role:
        description: One of the four VMO ClusterRoles, or the name of any ClusterRole that exists.
        type: str
        required: true
      subjects:
        description: Who is bound. At least one subject is required.
        type: dict
        required: true
        suboptions:
          users:
            description: User names.
            type: list
            elements: str
          groups:
            description: Group names.
            type: list
            elements: str
          service_accounts:
            description: Service accounts, each V(<namespace>/<name>).
            type: list
            elements: str
      namespaces:
        description: Namespaces to make a RoleBinding in, each of which must exist. Required unless O(bindings[].cluster_wide).
        type: list
        elements: str
      cluster_wide:
        description: Make one ClusterRoleBinding instead of RoleBindings. Excludes O(bindings[].namespaces).
        type: bool
        default: false
      name:
        description: Name of the binding objects; V(vmo-<role>) by default. Ignored in Palette mode.
        type: str
      state:
        description: V(absent) removes the binding (only if the collection manages it).
        type: str
        choices: [present, absent]
        default: present
  exclusive:
    description:
      - Remove the bindings the collection manages (by its labels) that the task does not declare.
      - In Palette mode, where bindings carry no labels, the bindings to the four VMO roles and to the roles the
        task binds become exactly the declared ones (within O(exclusive_scope)); bindings to other roles, such as a
        C(cluster-admin) binding made in the Palette UI, are never touched.
    type: bool
    default: false
  exclusive_scope:
    description:
      - Where O(exclusive) looks. V(cluster) (the default) removes undeclared managed RoleBindings and
        ClusterRoleBindings anywhere; V(namespaces) only RoleBindings in the namespaces the task names.
    type: str
    choices: [cluster, namespaces]
    default: cluster
  roles:
    description:
      - V(present) ensures the four VMO ClusterRoles with the collection's rules, V(absent) removes them,
        V(unmanaged) (the default) leaves ClusterRoles alone.
      - Roles the collection does not manage are left alone (reported as C(left_alone)) unless O(force_roles).
    type: str
    choices: [present, absent, unmanaged]
    default: unmanaged
  force_roles:
    description: With O(roles), take over or remove VMO ClusterRoles that the collection does not manage.
    type: bool
    default: false
  verify:
    description:
      - After writing, check every declared subject's access with SubjectAccessReviews against the VMO role
        table, where the subject is bound; the result is in RV(verify).
      - For a subject that the task also binds to a role outside the table, only the operations that must be
        allowed are checked. With O(palette_cluster), the reviews go through the cluster's kubeconfig from Palette.
      - An answer that differs from the table is asked again for up to 10 seconds, since the apiserver's authorizer
        sees a binding just written only once its cache has caught up.
    type: bool
    default: false
  verify_fail:
    description: Fail the task when O(verify) finds access that differs from the table.
    type: bool
    default: false
  palette_cluster:
    description:
      - Name or uid of a Palette cluster, in place of the Kubernetes connection options.
      - With O(rbac_api=palette) (the default) the bindings are made through Palette's cluster RBAC settings, not the
        Kubernetes API; the cluster's kubeconfig is fetched only for O(verify).
      - With O(rbac_api=kubernetes) they are made on the cluster's Kubernetes API, through its kubeconfig from Palette.
      - The kubeconfig is kept in memory only, never written to a file or shown. None of the Kubernetes connection
        options may be given with it (an input error before any request), and their E(K8S_AUTH_*) variables and
        E(KUBECONFIG) are not read. TLS to the cluster is always verified, against the kubeconfig's
        C(certificate-authority-data).
    type: str
  rbac_api:
    description:
      - With O(palette_cluster), where the bindings are made. V(palette) through Palette's cluster RBAC settings,
        V(kubernetes) as RoleBindings and ClusterRoleBindings on the cluster's Kubernetes API (through the kubeconfig
        Palette gives for it), with every option of the Kubernetes mode (O(roles), names, labels, dry runs).
      - Ignored without O(palette_cluster).
    type: str
    choices: [palette, kubernetes]
    default: palette
  field_manager:
    description: Server-side apply field manager.
    type: str
    default: palette.vmo
  concurrency:
    description: How many requests run at once.
    type: int
    default: 8
notes:
  - The VMO roles authorise the Kubernetes API (KubeVirt, CDI and VmTemplate objects); Palette's own project roles
    and VMO IAM are separate layers.
seealso:
  - module: palette.vmo.kubevirt_vm
"""

EXAMPLES = r"""
- name: Bind people to the VMO roles in two namespaces, and prove it
  palette.vmo.vmo_rbac:
    bindings:
      - role: spectro-vm-admin
        subjects:
          groups: [vmo-admins]
        cluster_wide: true
      - role: spectro-vm-power-user
        subjects:
          users: [alice@example.com]
          service_accounts: [ci/vm-deployer]
        namespaces: [vms-dev, vms-prod]
      - role: spectro-vm-viewer
        subjects:
          groups: [auditors]
        namespaces: [vms-prod]
    verify: true
    verify_fail: true

- name: An edge cluster without the VMO pack gets the roles from the collection
  palette.vmo.vmo_rbac:
    roles: present
    bindings:
      - role: spectro-vm-user
        subjects:
          users: [operator]
        namespaces: [edge-vms]

- name: Exactly these bindings in the VM namespaces; other managed ones there go
  palette.vmo.vmo_rbac:
    exclusive: true
    exclusive_scope: namespaces
    bindings:
      - role: spectro-vm-user
        subjects:
          users: [bob]
        namespaces: [vms-dev]

- name: The same bindings through Palette's cluster RBAC settings
  palette.vmo.vmo_rbac:
    palette_cluster: vmo-cluster
    palette_project: Default
    bindings:
      - role: spectro-vm-power-user
        subjects:
          groups: [vm-operators]
        namespaces: [vms-prod]

- name: On a Palette cluster's Kubernetes API, reached by the cluster's name (no kubeconfig file)
  palette.vmo.vmo_rbac:
    palette_cluster: vmo-cluster
    palette_project: Default
    rbac_api: kubernetes
    roles: present
    bindings:
      - role: spectro-vm-user
        subjects:
          users: [operator]
        namespaces: [vms-prod]
"""

RETURN = r"""
bindings:
  description: One entry per declared binding object (and per managed binding removed by O(exclusive)).
  returned: success
  type: list
  elements: dict
  contains:
    kind:
      description: RoleBinding or ClusterRoleBinding.
      type: str
    name:
      description: Object name (Kubernetes mode).
      type: str
    namespace:
      description: Namespace of a RoleBinding, null for a ClusterRoleBinding.
      type: str
    role:
      description: The bound ClusterRole.
      type: str
    subjects:
      description: The subjects, as RBAC (Kubernetes) or Palette writes them.
      type: list
      elements: dict
    action:
      description: What was done.
      type: str
      choices: [created, updated, replaced, unchanged, deleted, absent]
  sample:
    - {kind: RoleBinding, name: vmo-spectro-vm-user, namespace: vms, role: spectro-vm-user, action: created,
       subjects: [{kind: User, apiGroup: rbac.authorization.k8s.io, name: bob}]}
roles:
  description: The four VMO ClusterRoles when O(roles) is not V(unmanaged).
  returned: success
  type: list
  elements: dict
  contains:
    name:
      description: ClusterRole name.
      type: str
    action:
      description: What was done; C(left_alone) for a role the collection does not manage.
      type: str
      choices: [created, updated, unchanged, deleted, absent, left_alone]
    reason:
      description: Why a role was left alone.
      type: str
palette_cluster_uid:
  description: The Palette cluster's uid (Palette mode).
  returned: when O(palette_cluster) is given
  type: str
verify:
  description: One entry per subject and place it is bound, from SubjectAccessReviews.
  returned: when O(verify) is true
  type: list
  elements: dict
  contains:
    subject:
      description: The subject, such as C(User alice).
      type: str
    namespace:
      description: Where it was checked; null for cluster-wide.
      type: str
    roles:
      description: The roles the task binds it to there.
      type: list
      elements: str
    allowed:
      description: Operations of the table the apiserver allows.
      type: list
      elements: str
    denied:
      description: Operations of the table the apiserver denies.
      type: list
      elements: str
    mismatches:
      description: Operations whose answer differs from the table, each with C(operation), C(expected), C(allowed).
      type: list
      elements: dict
verify_mismatches:
  description: How many answers differ from the table.
  returned: when O(verify) is true and not in check mode
  type: int
verify_skipped:
  description: Why O(verify) did not run (check mode).
  returned: when O(verify) is true in check mode
  type: str
errors:
  description: Every problem found, one per binding item and field, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        # Each item is validated against BINDING_OPTIONS by the runner, so that its errors name the item.
        bindings=dict(type="list", elements="dict", default=[]),
        exclusive=dict(type="bool", default=False),
        exclusive_scope=dict(type="str", choices=["cluster", "namespaces"], default="cluster"),
        roles=dict(type="str", choices=["present", "absent", "unmanaged"], default="unmanaged"),
        force_roles=dict(type="bool", default=False),
        verify=dict(type="bool", default=False),
        verify_fail=dict(type="bool", default=False),
        rbac_api=dict(type="str", choices=["palette", "kubernetes"], default="palette"),
        field_manager=dict(type="str", default="palette.vmo"),
        concurrency=dict(type="int", default=8),
    ))


def main():
    run_module(cluster_module(argument_spec(), supports_check_mode=True), run)


if __name__ == "__main__":
    main()
