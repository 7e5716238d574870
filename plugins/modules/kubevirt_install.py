#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_install
short_description: Install KubeVirt and CDI on a cluster from their release operator manifests
version_added: 0.1.0
description:
  - Applies KubeVirt's C(kubevirt-operator.yaml) and CDI's C(cdi-operator.yaml) release manifests, from an http(s)
    URL or a local file (for air-gapped sites), then the C(KubeVirt) CR with exactly the feature gates of
    O(feature_gates) and O(use_emulation), the C(CDI) CR, and any extra namespaces; then waits until both report
    C(status.phase=Deployed).
  - The install is how a cluster without Palette (an edge site) gets what the VMO pack installs; the VMO
    ClusterRoles come from M(palette.vmo.vmo_rbac) with O(palette.vmo.vmo_rbac#module:roles=present).
  - Objects are written with server-side apply, in three stages (namespaces and CRDs; the rest of the operator
    manifests; the CRs), each planned first with a server-side dry run; only objects that would change are
    applied, so a second run reports C(changed=false) and writes nothing.
  - The KubeVirt CR is created in the namespace of the manifest's C(virt-operator) Deployment.
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
    details: Objects are planned with a server-side dry run and nothing is persisted. An object whose namespace or
      CRD the install would first create cannot exist yet and is predicted as a creation. C(changed) is exact.
  diff_mode:
    support: full
    details: Before and after of every object that would change; CRDs are shown by group, names, scope and
      versions, without their schemas.
options:
  kubevirt_operator_manifest:
    description:
      - KubeVirt's release C(kubevirt-operator.yaml), as an http(s) URL or a path on the host that runs the module.
      - It must hold the C(virt-operator) Deployment.
    type: str
    required: true
  cdi_operator_manifest:
    description:
      - CDI's release C(cdi-operator.yaml), as an http(s) URL or a path on the host that runs the module.
      - It must hold the C(cdi-operator) Deployment.
    type: str
    required: true
  manifest_validate_certs:
    description: Verify the TLS certificate of an https manifest URL.
    type: bool
    default: true
  manifest_ca_cert:
    description: A CA bundle file to verify an https manifest URL with, instead of the system's.
    type: path
  feature_gates:
    description:
      - The KubeVirt feature gates, exactly; the CR's C(spec.configuration.developerConfiguration.featureGates)
        becomes this list (duplicates dropped, order kept).
    type: list
    elements: str
    default: []
  use_emulation:
    description:
      - Software emulation instead of C(/dev/kvm) (C(developerConfiguration.useEmulation)), for nodes without
        hardware or nested virtualisation.
    type: bool
    default: false
  kubevirt_name:
    description: Name of the KubeVirt CR.
    type: str
    default: kubevirt
  kubevirt_spec:
    description:
      - More of the KubeVirt CR's C(spec), deep-merged under what the module sets; O(feature_gates) and
        O(use_emulation) win over it.
    type: dict
  cdi_name:
    description: Name of the CDI CR (it is cluster-scoped).
    type: str
    default: cdi
  cdi_feature_gates:
    description: CDI feature gates (C(spec.config.featureGates) of the CDI CR); none when empty.
    type: list
    elements: str
    default: []
  cdi_spec:
    description: More of the CDI CR's C(spec), deep-merged under what the module sets.
    type: dict
  namespaces:
    description: Namespaces to create as well, for example the VM namespaces and the golden-images namespace.
    type: list
    elements: str
    default: []
  wait:
    description: Wait until the KubeVirt and CDI CRs report C(status.phase=Deployed).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds for the whole task, CRDs becoming Established and both CRs Deployed included. On timeout the
        error names what it still waited for and the last state it saw.
    type: int
    default: 600
  force:
    description: Take over fields other field managers own (server-side apply C(force)).
    type: bool
    default: true
  field_manager:
    description: The server-side apply field manager.
    type: str
    default: palette.vmo
  concurrency:
    description: How many objects are planned or applied at once.
    type: int
    default: 8
notes:
  - The manifests are read on the host that runs the module (usually the controller with C(delegate_to) or a
    local connection); a URL must be reachable from there.
seealso:
  - module: palette.vmo.vmo_rbac
  - module: palette.vmo.kubevirt_vm
  - name: KubeVirt installation
    description: Installing KubeVirt from its release manifests.
    link: https://kubevirt.io/user-guide/cluster_admin/installation/
"""

EXAMPLES = r"""
- name: KubeVirt and CDI from their releases, with the VMO feature gates, on nodes without /dev/kvm
  palette.vmo.kubevirt_install:
    kubevirt_operator_manifest: https://github.com/kubevirt/kubevirt/releases/download/v1.9.0/kubevirt-operator.yaml
    cdi_operator_manifest: https://github.com/kubevirt/containerized-data-importer/releases/download/v1.65.0/cdi-operator.yaml
    feature_gates: [LiveMigration, Snapshot, HotplugVolumes, VMExport, ExpandDisks, HotplugNICs, VMLiveUpdateFeatures]
    use_emulation: true
    namespaces: [virtual-machines, vmo-golden-images]

- name: An air-gapped site installs from local copies
  palette.vmo.kubevirt_install:
    kubevirt_operator_manifest: /srv/mirror/kubevirt/v1.9.0/kubevirt-operator.yaml
    cdi_operator_manifest: /srv/mirror/cdi/v1.65.0/cdi-operator.yaml
    feature_gates: [LiveMigration, Snapshot]
    kubeconfig: /etc/edge/kubeconfig

- name: On a Palette cluster given by name (no kubeconfig file on the controller)
  palette.vmo.kubevirt_install:
    palette_cluster: edge-site-7
    palette_project: Edge
    kubevirt_operator_manifest: /srv/mirror/kubevirt/v1.9.0/kubevirt-operator.yaml
    cdi_operator_manifest: /srv/mirror/cdi/v1.65.0/cdi-operator.yaml
"""

RETURN = r"""
objects:
  description: Every object of the install, in the order it is applied, with what the task did to it.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: The object's kind.
      type: str
    name:
      description: The object's name.
      type: str
    namespace:
      description: The object's namespace, null for a cluster-scoped one.
      type: str
    action:
      description: V(create), V(update) or V(none).
      type: str
  sample:
    - {kind: Namespace, name: kubevirt, namespace: null, action: create}
kubevirt:
  description: The KubeVirt CR as declared, and its phase and version as last seen.
  returned: always
  type: dict
  sample:
    name: kubevirt
    namespace: kubevirt
    phase: Deployed
    version: v1.9.0
    feature_gates: [LiveMigration, Snapshot]
    use_emulation: true
cdi:
  description: The CDI CR's name, and its phase and version as last seen.
  returned: always
  type: dict
  sample: {name: cdi, phase: Deployed, version: v1.65.0}
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.install_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        kubevirt_operator_manifest=dict(type="str", required=True),
        cdi_operator_manifest=dict(type="str", required=True),
        manifest_validate_certs=dict(type="bool", default=True),
        manifest_ca_cert=dict(type="path"),
        feature_gates=dict(type="list", elements="str", default=[]),
        use_emulation=dict(type="bool", default=False),
        kubevirt_name=dict(type="str", default="kubevirt"),
        kubevirt_spec=dict(type="dict"),
        cdi_name=dict(type="str", default="cdi"),
        cdi_feature_gates=dict(type="list", elements="str", default=[]),
        cdi_spec=dict(type="dict"),
        namespaces=dict(type="list", elements="str", default=[]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        force=dict(type="bool", default=True),
        field_manager=dict(type="str", default="palette.vmo"),
        concurrency=dict(type="int", default=8),
    ))


def main():
    run_module(cluster_module(argument_spec(), supports_check_mode=True), run)


if __name__ == "__main__":
    main()
