#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: vmo_profile
short_description: Palette add-on cluster profile with the Virtual Machine Orchestrator pack, attached to clusters
version_added: 0.1.0
description:
  - Ensures a published Palette add-on cluster profile that holds the C(virtual-machine-orchestrator) pack at a pinned
    O(pack_tag), with optional manifest layers (VmTemplates, RBAC, ...), and optionally attaches it to clusters and
    waits until every pack of the profile is Ready there.
  - The pack values are the pack's own defaults for that tag, deep-merged with O(values), then the convenience
    options (O(feature_gates_extra), O(vm_namespaces), O(golden_images_namespace), O(use_emulation),
    O(cdi_feature_gates_extra)). The conveniences work on both values layouts of the pack (up to 4.9, and 4.10 on
    with VMO Manager); the layout is read from the pack's default values.
  - Idempotent by a semantic comparison with the published profile (values as parsed YAML, manifests by name and
    parsed content). A change either updates the profile in place or publishes a new version (O(update_mode)).
  - The whole task is checked by reading only (options, values, manifests, pack tag, registry, project, clusters);
    nothing is written when anything is wrong.
author:
  - palette.vmo contributors (!UNKNOWN)
extends_documentation_fragment:
  - palette.vmo.attributes
  - palette.vmo.palette_auth
attributes:
  check_mode:
    support: full
    details: Only GET requests; C(changed), the actions and the changed packs are predicted.
  diff_mode:
    support: full
    details: Before and after of the profile's packs (tag, type, values and manifests) as YAML.
options:
  name:
    description: Name of the cluster profile.
    type: str
    required: true
  version:
    description:
      - Profile version, C(MAJOR.MINOR.PATCH).
      - With O(update_mode=in_place), the version to ensure; when omitted, the latest existing version (V(1.0.0) for a
        new profile), so a profile once moved on by O(update_mode=new_version) is never changed back in an older one.
      - With O(update_mode=new_version), the version to create when the latest one differs; when omitted, the next
        patch version after the latest (V(1.0.0) for a new profile). An existing version that differs is an error in
        this mode, since published versions are then never changed.
    type: str
  description:
    description: Description of the profile.
    type: str
  tags:
    description: Tags in Palette's form, C(key:value) or a bare tag; stored as the profile's labels.
    type: list
    elements: str
  labels:
    description: Labels of the profile. Labels the profile already has and that are not listed here are kept.
    type: dict
  scope:
    description:
      - V(project) keeps the profile in O(palette_project); V(tenant) makes a tenant-scope profile, usable by every
        project (the clusters of O(clusters) are still looked up in O(palette_project)).
      - Defaults to V(project) when O(palette_project) is set, otherwise V(tenant).
    type: str
    choices: [project, tenant]
  state:
    description: V(present) ensures the profile (and its attachments); V(absent) detaches it from O(clusters) and
      deletes it (only O(version), or every version of O(name) when O(version) is omitted).
    type: str
    choices: [present, absent]
    default: present
  pack_name:
    description: Name of the VMO pack in the registry.
    type: str
    default: virtual-machine-orchestrator
  pack_tag:
    description: The pack version to pin, such as V(4.6.3), V(4.9.9) or V(4.10.7). Required with O(state=present).
    type: str
  registry_name:
    description: Name of the pack registry that holds the pack.
    type: str
    default: Public Repo
  registry_uid:
    description: Uid of the pack registry; wins over O(registry_name).
    type: str
  values:
    description:
      - Overrides of the pack values, as a mapping or a YAML string, deep-merged into the pack's defaults (mappings
        merge key by key; lists and scalars replace).
    type: raw
  feature_gates_extra:
    description:
      - KubeVirt feature gates added to C(charts.virtual-machine-orchestrator.kubevirt.kubevirtResource.additionalFeatureGates)
        after the ones the values already hold (the pack's defaults are the gates VMO needs); each gate once, order
        kept.
    type: list
    elements: str
  cdi_feature_gates_extra:
    description: CDI feature gates added to C(charts.virtual-machine-orchestrator.cdi.cdiResource.additionalFeatureGates).
    type: list
    elements: str
  vm_namespaces:
    description: Namespaces set up for VMs (C(vmEnabledNamespaces)); replaces the pack's default list.
    type: list
    elements: str
  golden_images_namespace:
    description:
      - Namespace of the golden images; set where the pack's layout keeps it (C(goldenImagesNamespace) of the chart
        up to 4.9, of C(vmo-manager) from 4.10).
    type: str
  use_emulation:
    description: Run VMs with software emulation (KubeVirt C(useEmulation)), for nodes without C(/dev/kvm).
    type: bool
  manifests:
    description:
      - Extra manifest layers of the profile, installed after the VMO pack. Each item is one layer holding one
        manifest of the same name.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the layer and of its manifest (lower case letters, digits and dashes).
        type: str
        required: true
      content:
        description: The manifest, as YAML text (several documents allowed), an object or a list of objects.
        type: raw
        required: true
  update_mode:
    description:
      - V(in_place) updates the published profile and publishes it again; clusters it is attached to through
        O(clusters) get the change applied.
      - V(new_version) clones the latest version to a new one, updates and publishes that, and replaces the older
        version on O(clusters).
    type: str
    choices: [in_place, new_version]
    default: in_place
  clusters:
    description:
      - Clusters (names or uids, in O(palette_project)) to attach the profile to. A version of the same profile
        already attached is replaced.
    type: list
    elements: str
  wait:
    description:
      - Wait as Palette's Terraform provider does, on every cluster of O(clusters) - first until every condition of
        the cluster's C(status.conditions) is C(True), then until the profile is listed in C(status.packs), then until
        each of its packs is C(Ready).
      - When the profile is applied again in place, Palette lists its packs as they were (C(Ready), or C(Error)) until
        its agent picks the change up; such a pack counts only once it changed, or after 30 seconds without a
        change (the delay the provider waits before its first look).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait for the packs (0 or more); the error names each cluster condition and pack still
      waited for, with its last condition.
    type: int
    default: 900
  poll_interval:
    description: Seconds between two reads of each cluster while waiting.
    type: float
    default: 2.0
  palette_validate_certs:
    description:
      - Verify the Palette TLS certificate. Only turn this off for a throwaway lab. E(PALETTE_VALIDATE_CERTS) when unset.
    type: bool
    default: true
    aliases: [validate_certs]
notes:
  - A pack that goes to condition C(Error) on a cluster fails the task with the pack's message.
  - The profile is of type C(add-on) with cloud type C(all).
seealso:
  - name: Palette VMO pack
    description: The Virtual Machine Orchestrator pack and its values.
    link: https://docs.spectrocloud.com/vm-management/
"""

EXAMPLES = r"""
- name: VMO add-on profile with an extra feature gate, attached to a cluster
  palette.vmo.vmo_profile:
    palette_host: https://api.spectrocloud.com
    palette_api_key: "{{ palette_api_key }}"
    palette_project: Default
    name: vmo
    version: 1.0.0
    pack_tag: 4.9.9
    feature_gates_extra: [GPU]
    vm_namespaces: [default, virtual-machines]
    clusters: [edge-site-1]

- name: A new profile version for a pack upgrade, replacing the old version on the cluster
  palette.vmo.vmo_profile:
    name: vmo
    pack_tag: 4.10.7
    update_mode: new_version
    values:
      charts:
        virtual-machine-orchestrator:
          vmo-manager:
            deployment:
              replicaCount: 3
    manifests:
      - name: vmo-templates
        content: "{{ lookup('ansible.builtin.file', 'templates/ubuntu-vmtemplate.yaml') }}"
    clusters: [edge-site-1]
    wait_timeout: 1800

- name: Remove every version of the profile
  palette.vmo.vmo_profile:
    name: vmo
    state: absent
    clusters: [edge-site-1]
"""

RETURN = r"""
name:
  description: Name of the profile.
  returned: always
  type: str
uid:
  description: Uid of the profile version that holds the desired packs (none in check mode before it is created).
  returned: when state is present
  type: str
version:
  description: Version of that profile.
  returned: when state is present
  type: str
  sample: 1.0.1
versions:
  description: Versions deleted (or, in check mode, to delete).
  returned: when state is absent
  type: list
  elements: str
actions:
  description: What was done (or would be done) to the profile, among C(create), C(clone), C(update),
    C(update_metadata), C(delete).
  returned: always
  type: list
  elements: str
changed_packs:
  description: Packs whose tag, values or manifests changed.
  returned: when state is present
  type: list
  elements: str
pack_tag:
  description: Tag of the VMO pack the profile holds.
  returned: when state is present
  type: str
  sample: 4.10.7
layout:
  description: Values layout of the pack, C(vm-dashboard) (pack up to 4.9) or C(vmo-manager) (pack 4.10 and later).
  returned: when state is present
  type: str
values:
  description: The merged values of the VMO pack.
  returned: when state is present
  type: dict
feature_gates:
  description: The KubeVirt feature gates of the merged values.
  returned: when state is present
  type: list
  elements: str
clusters:
  description: One entry per cluster of O(clusters).
  returned: when clusters are given
  type: list
  elements: dict
  contains:
    name:
      description: The cluster as given.
      type: str
    uid:
      description: Cluster uid.
      type: str
    action:
      description: C(none), C(attach), C(replace) (an older version of the profile), C(reapply) (the profile
        changed in place) or C(detach).
      type: str
    packs:
      description: Condition of each pack of the profile on the cluster after the wait.
      type: dict
errors:
  description: Every problem found, when the task fails on bad input.
  returned: failure
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import palette_module_arg_spec
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_runner import run


def main():
    spec = palette_module_arg_spec()  # vmo_profile talks to Palette alone
    spec.update(
        name=dict(type="str", required=True), version=dict(type="str"), description=dict(type="str"),
        tags=dict(type="list", elements="str"), labels=dict(type="dict"),
        scope=dict(type="str", choices=["project", "tenant"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        pack_name=dict(type="str", default="virtual-machine-orchestrator"), pack_tag=dict(type="str"),
        registry_name=dict(type="str", default="Public Repo"), registry_uid=dict(type="str"),
        values=dict(type="raw"),
        feature_gates_extra=dict(type="list", elements="str"),
        cdi_feature_gates_extra=dict(type="list", elements="str"),
        vm_namespaces=dict(type="list", elements="str"), golden_images_namespace=dict(type="str"),
        use_emulation=dict(type="bool"),
        manifests=dict(type="list", elements="dict", options=dict(
            name=dict(type="str", required=True), content=dict(type="raw", required=True))),
        update_mode=dict(type="str", choices=["in_place", "new_version"], default="in_place"),
        clusters=dict(type="list", elements="str"),
        wait=dict(type="bool", default=True), wait_timeout=dict(type="int", default=900),
        poll_interval=dict(type="float", default=2.0),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           required_if=[("state", "present", ["pack_tag"])])
    run_module(module, run)


if __name__ == "__main__":
    main()
