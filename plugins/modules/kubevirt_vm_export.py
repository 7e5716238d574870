#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_vm_export
short_description: Export the disks of KubeVirt VMs, VM snapshots or PVCs and download them, with a sha256 per file
version_added: 0.1.0
description:
  - Creates one C(VirtualMachineExport) per VM, VM snapshot or PVC, waits with one watch for all of them until each is
    C(Ready), downloads every volume from the export's external link with the export's token, writes the file's
    sha256 beside it (C(<file>.sha256), in C(sha256sum) format) and deletes the export (its token secret and
    service go with it). The result gives, per volume, the file, its size, sha256, the duration and rate of the
    download and its progress in steps of 10 percent.
  - A VM's disks are its C(persistentVolumeClaim) and C(dataVolume) volumes, each written to
    C(<dest>/<namespace>/<claim>.img) (C(.img.gz) with O(format=gzip)). A C(VirtualMachineSnapshot)'s disks are the
    claims of its volume snapshots, which KubeVirt restores for the export, each written to
    C(<dest>/<namespace>/<snapshot>-<claim>.img).
  - B(Checks before any write.) Every VM and PVC is read first. A VM that does not exist, that runs (KubeVirt
    exports the disks of a stopped VM only), or that has no PVC-backed volume, a snapshot that does not exist or
    is not ready to use, a PVC that does not exist, is
    not populated yet, or is in use by a running VM, fails the task with nothing written; the message names
    every object refused and why. Then every export object goes through a server-side dry run.
  - B(Idempotence.) A disk whose file and C(.sha256) are already in O(dest) and agree is not exported again;
    a source whose every disk is there reports C(action=unchanged) and the task C(changed=false) without any
    request that writes. O(force=true) downloads again.
  - The export token is read from the export's token secret and sent in the C(x-kubevirt-export-token) header
    only; it is never part of the result or of a log.
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
    details: Reads, the checks and server-side dry runs of the export objects only; no file is written and
      C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: Per source to export, the files it would write.
options:
  vm:
    description: Name of one VM whose disks to export.
    type: str
  pvc:
    description: Name of one PersistentVolumeClaim to export.
    type: str
  snapshot:
    description: Name of one C(VirtualMachineSnapshot) whose volumes to export.
    type: str
  snapshots:
    description:
      - Many VM snapshots in one task. Each item is a snapshot name or a dict with C(name) and optionally
        C(namespace).
    type: list
    elements: raw
  vms:
    description: Many VMs in one task. Each item is a VM name or a dict with C(name) and optionally C(namespace).
    type: list
    elements: raw
  pvcs:
    description: Many PVCs in one task. Each item is a claim name or a dict with C(name) and optionally C(namespace).
    type: list
    elements: raw
  namespace:
    description: Namespace of the VMs, snapshots and PVCs; the default of every item.
    type: str
  dest:
    description:
      - Directory the disk images are written to, one subdirectory per namespace. Created when missing (its
        parent must exist).
    type: path
    required: true
  format:
    description:
      - V(raw) downloads the disk image as it is (C(disk.img)); V(gzip) downloads it gzip-compressed
        (C(disk.img.gz)). RV(exports[].volumes[].image_sha256) is the sha256 of the image either way.
    type: str
    choices: [raw, gzip]
    default: raw
  force:
    description: Download again even when the file and its C(.sha256) are already there and agree.
    type: bool
    default: false
  keep_export:
    description: Keep the C(VirtualMachineExport) objects after the download (they expire after O(ttl)).
    type: bool
    default: false
  ttl:
    description:
      - The export's C(spec.ttlDuration) (for example V(30m) or V(2h)); KubeVirt deletes the export then.
        KubeVirt's default is 2 hours.
    type: str
  export_validate_certs:
    description:
      - Verify the export server's TLS certificate (against the CA the export's link names, or O(export_ca_cert)).
      - The Kubernetes API's own TLS options (O(validate_certs), O(ca_cert)) do not apply to the export server.
    type: bool
    default: true
  export_ca_cert:
    description: A CA bundle (PEM file) to verify the export server with, instead of the one the export's link names.
    type: path
  export_proxy_url:
    description:
      - The address that reaches KubeVirt's C(virt-exportproxy) from where the task runs, as C(https://host[:port])
        with no path, for example the C(virt-exportproxy-lb) LoadBalancer Service of the VMO pack or a port-forward
        (as C(virtctl vmexport --port-forward) does). The downloads keep the path of the export's external link and
        replace its scheme, host and port with this; for an export without an external link the path is the
        proxy's path for the export (C(/api/export.kubevirt.io/v1/namespaces/<ns>/virtualmachineexports/<name>))
        followed by the internal link's path, verified against the internal link's CA unless O(export_ca_cert).
      - KubeVirt gives an export an external link only when an Ingress or Route in KubeVirt's namespace leads to
        C(virt-exportproxy) (the VMO pack's C(kubevirt.ingress)). Without this option and without such a link the
        task fails as soon as an export is C(Ready), naming the export; it deletes the exports it made.
    type: str
  wait_timeout:
    description:
      - Seconds to wait until the exports are C(Ready); on timeout the error names every pending export and its
        phase and C(Ready) reason. Also the read timeout of each download.
    type: int
    default: 300
  concurrency:
    description: Requests and downloads in flight at once.
    type: int
    default: 4
  api_version:
    description: The C(export.kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
notes:
  - "RBAC: in each namespace, C(get) on C(virtualmachines.kubevirt.io), C(list) on
    C(virtualmachineinstances.kubevirt.io), C(get) on C(persistentvolumeclaims) and C(datavolumes.cdi.kubevirt.io);
    C(get), C(list), C(watch), C(create) and C(delete) on C(virtualmachineexports.export.kubevirt.io); C(get) on
    the export's token C(secrets); to export snapshots, C(get) on C(virtualmachinesnapshots) and
    C(virtualmachinesnapshotcontents) (C(snapshot.kubevirt.io))."
  - The export server must be reachable from where the task runs - KubeVirt's C(virt-exportproxy) behind an
    Ingress or Route, which gives the export its external link, or at O(export_proxy_url).
  - Only disk images are downloaded. KubeVirt exports a claim as raw and gzip images when it is a C(Block) claim, has
    the C(cdi.kubevirt.io/storage.contentType) annotation V(kubevirt), or belongs to a DataVolume of that content
    type; any other claim (for example a Filesystem PVC made without CDI) is exported as an archive (C(dir),
    C(tar.gz)) only and is refused before any write.
"""

EXAMPLES = r"""
- name: Download the disks of two stopped VMs
  palette.vmo.kubevirt_vm_export:
    namespace: prod
    vms: [db-1, db-2]
    dest: /srv/exports

- name: Export one PVC, gzip-compressed, verifying the proxy with our own CA
  palette.vmo.kubevirt_vm_export:
    namespace: prod
    pvc: golden-image
    format: gzip
    export_ca_cert: /etc/pki/exportproxy-ca.pem
    dest: /srv/exports
  register: exported

- name: Reach the export proxy through the VMO pack's LoadBalancer Service (no Ingress for it)
  palette.vmo.kubevirt_vm_export:
    namespace: prod
    vm: db-1
    export_proxy_url: https://203.0.113.10
    export_ca_cert: /etc/pki/exportproxy-ca.pem
    dest: /srv/exports

- name: Show where each disk went and its checksum
  ansible.builtin.debug:
    msg: "{{ exported.exports | map(attribute='volumes') | flatten | map(attribute='sha256') }}"
"""

RETURN = r"""
api_version:
  description: The C(export.kubevirt.io) version used.
  returned: always
  type: str
exports:
  description: One entry per VM, VM snapshot or PVC.
  returned: always
  type: list
  elements: dict
  contains:
    kind:
      description: V(VirtualMachine), V(VirtualMachineSnapshot) or V(PersistentVolumeClaim).
      type: str
    name:
      description: The VM's, snapshot's or PVC's name.
      type: str
    namespace:
      description: Its namespace.
      type: str
    export:
      description: The name of the C(VirtualMachineExport) object used.
      type: str
    action:
      description: V(downloaded), or V(unchanged) when every file was already there.
      type: str
    volumes:
      description: One entry per volume.
      type: list
      elements: dict
      contains:
        name:
          description: The claim's name.
          type: str
        path:
          description: The file written.
          type: str
        action:
          description: V(downloaded), V(unchanged) or, in check mode, V(would download).
          type: str
        sha256:
          description: The sha256 of the file (also in C(<path>.sha256)).
          type: str
        image_sha256:
          description: The sha256 of the disk image (the file's own for V(raw), the decompressed one for V(gzip)).
          type: str
        bytes:
          description: Bytes downloaded.
          type: int
        duration_seconds:
          description: How long the download took.
          type: float
        bytes_per_second:
          description: The download's mean rate.
          type: int
        progress:
          description: Each 10 percent of the download, with the bytes so far and the seconds elapsed.
          type: list
          elements: dict
        url:
          description: The export link used (without the token, which travels in a header).
          type: str
errors:
  description: Every problem found, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.export_runner import run


def argument_spec():
    return cluster_argument_spec(dict(
        vm=dict(type="str"),
        pvc=dict(type="str"),
        snapshot=dict(type="str"),
        vms=dict(type="list", elements="raw"),
        snapshots=dict(type="list", elements="raw"),
        pvcs=dict(type="list", elements="raw"),
        namespace=dict(type="str"),
        dest=dict(type="path", required=True),
        format=dict(type="str", choices=["raw", "gzip"], default="raw"),
        force=dict(type="bool", default=False),
        keep_export=dict(type="bool", default=False),
        ttl=dict(type="str"),
        export_validate_certs=dict(type="bool", default=True),
        export_ca_cert=dict(type="path"),
        export_proxy_url=dict(type="str"),
        wait_timeout=dict(type="int", default=300),
        concurrency=dict(type="int", default=4),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True)
    run_module(module, run)


if __name__ == "__main__":
    main()
