#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: kubevirt_disk_upload
short_description: Upload local disk images into new CDI DataVolumes through CDI's upload proxy
version_added: 0.1.0
description:
  - Creates one C(DataVolume) with an upload source per disk, waits with one watch for all of them until each is
    C(UploadReady), then for each asks CDI for an upload token (an C(UploadTokenRequest)) and POSTs the image to
    CDI's upload proxy, a few at once (O(concurrency)), and waits until each DataVolume is C(Succeeded). The result
    gives per disk the image's sha256, its size, and the duration, rate and progress of the upload.
  - The upload proxy is the one the cluster publishes (C(CDIConfig) C(status.uploadProxyURL), as C(virtctl
    image-upload) finds it) unless O(upload_proxy_url) is given. Its certificate is verified, against
    O(upload_proxy_ca) when given.
  - B(Checks before any write.) Every image must be a readable file whose virtual size (a qcow2 image's header
    size, which CDI writes as raw; else its size) is no larger than its O(size); a DataVolume of
    the same name must not exist with other content. Then every DataVolume goes through a server-side dry run
    (CDI's webhook). One problem fails the task with nothing written, naming every disk refused and why.
  - B(Idempotence.) The DataVolume records the image's sha256 (annotation C(palette.vmo/upload-sha256)). A re-run
    finds it C(Succeeded) with the same sha256 and reports C(changed=false) without any request that writes; a
    DataVolume of this task still waiting for its upload (an interrupted run) gets it.
  - The upload token is sent in the C(Authorization) header only; it is never part of the result or of a log.
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
    details: Reads, the checks, the sha256 of each image and server-side dry runs of the DataVolumes only;
      C(changed) is predicted exactly.
  diff_mode:
    support: full
    details: The DataVolumes that would be created.
options:
  name:
    description: Name of one DataVolume to create (with O(src)).
    type: str
  src:
    description: The local disk image of O(name) (raw or qcow2; CDI converts a qcow2 image to raw).
    type: path
  disks:
    description:
      - Many disks in one task. Each item has C(name) and C(src), and optionally C(namespace), C(size),
        C(storage_class), C(access_modes) and C(volume_mode), which override the task-level values.
    type: list
    elements: dict
    suboptions:
      name:
        description: Name of the DataVolume to create.
        type: str
        required: true
      src:
        description: The local disk image.
        type: path
        required: true
      namespace:
        description: Namespace of the DataVolume; O(namespace) when unset.
        type: str
      size:
        description: Size of the DataVolume; O(size) when unset.
        type: str
      storage_class:
        description: StorageClass of the DataVolume; O(storage_class) when unset.
        type: str
      access_modes:
        description: Access modes of its claim; O(access_modes) when unset.
        type: list
        elements: str
      volume_mode:
        description: V(Filesystem) or V(Block); O(volume_mode) when unset.
        type: str
        choices: [Filesystem, Block]
  namespace:
    description: Namespace of the DataVolumes; the default of every item.
    type: str
  size:
    description:
      - Size of each DataVolume (a Kubernetes quantity, for example V(10Gi)); at least the image's virtual size
        (CDI converts a qcow2 image to raw and refuses an image whose virtual size exceeds the claim's space).
        Without it, the image's virtual size rounded up to a MiB.
    type: str
  storage_class:
    description: StorageClass of the DataVolumes; the cluster's default (CDI's choice) when unset.
    type: str
  access_modes:
    description: Access modes of the DataVolumes' claims; from the StorageProfile when unset.
    type: list
    elements: str
  volume_mode:
    description: V(Filesystem) or V(Block); from the StorageProfile when unset.
    type: str
    choices: [Filesystem, Block]
  upload_proxy_url:
    description: The upload proxy (V(https://host:port) or V(host:port)); the cluster's published one when unset.
    type: str
  upload_proxy_ca:
    description: A CA bundle (PEM file) to verify the upload proxy with; the system's trust store when unset.
    type: path
  upload_proxy_validate_certs:
    description:
      - Verify the upload proxy's TLS certificate. The Kubernetes API's own TLS options (O(validate_certs),
        O(ca_cert)) do not apply to the upload proxy.
    type: bool
    default: true
  force_bind:
    description:
      - Annotate each DataVolume with C(cdi.kubevirt.io/storage.bind.immediate.requested), as C(virtctl image-upload
        --force-bind) does, so CDI starts the upload pod (and the claim is bound) even when the storage class binds
        volumes on the first consumer (C(WaitForFirstConsumer)); the volume is then bound where the upload pod runs.
      - With V(false), a DataVolume of such a class stays C(WaitForFirstConsumer) or C(PendingPopulation) with no
        upload pod, and the task fails as soon as one does, naming it.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for the DataVolumes to be C(UploadReady), and again to be C(Succeeded); on timeout the error
        names every pending DataVolume and its phase. Also the timeout of each upload request (at least 60).
    type: int
    default: 600
  concurrency:
    description: Requests and uploads in flight at once.
    type: int
    default: 4
  api_version:
    description: The C(cdi.kubevirt.io) version to use; discovered from the cluster when unset.
    type: str
notes:
  - "RBAC: in each namespace, C(get), C(list), C(watch) and C(create) on C(datavolumes.cdi.kubevirt.io) and
    C(create) on C(uploadtokenrequests.upload.cdi.kubevirt.io); C(get) on the cluster's C(cdiconfigs) when
    O(upload_proxy_url) is not given."
"""

EXAMPLES = r"""
- name: Upload a golden image and boot a VM from it
  palette.vmo.kubevirt_disk_upload:
    namespace: prod
    name: golden-fedora
    src: /srv/images/fedora.img
    size: 10Gi

- name: Upload exported disks back, three at once
  palette.vmo.kubevirt_disk_upload:
    namespace: restore
    upload_proxy_ca: /etc/pki/cdi-uploadproxy-ca.pem
    concurrency: 3
    disks:
      - {name: db-1-root, src: /srv/exports/prod/db-1-root.img, size: 20Gi}
      - {name: db-2-root, src: /srv/exports/prod/db-2-root.img, size: 20Gi}
"""

RETURN = r"""
api_version:
  description: The C(cdi.kubevirt.io) version used.
  returned: always
  type: str
disks:
  description: One entry per disk.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The DataVolume.
      type: str
    namespace:
      description: Its namespace.
      type: str
    src:
      description: The image uploaded.
      type: str
    size:
      description: The DataVolume's requested size.
      type: str
    image_bytes:
      description: The image's size in bytes.
      type: int
    image_format:
      description: V(qcow2) (written as raw by CDI) or V(raw).
      type: str
    virtual_size:
      description: The image's virtual size in bytes (the disk's size once written; the file's size for raw).
      type: int
    sha256:
      description: The image's sha256 (also in the DataVolume's annotation C(palette.vmo/upload-sha256)).
      type: str
    action:
      description: V(uploaded), V(unchanged) or, in check mode, V(would upload).
      type: str
    phase:
      description: The DataVolume's phase at the end (V(Succeeded)).
      type: str
    bytes:
      description: Bytes sent.
      type: int
    duration_seconds:
      description: How long the upload took.
      type: float
    bytes_per_second:
      description: The upload's mean rate.
      type: int
    progress:
      description: Each 10 percent of the upload, with the bytes so far and the seconds elapsed.
      type: list
      elements: dict
errors:
  description: Every problem found, when the task fails.
  returned: failure
  type: list
  elements: str
"""

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import run_module
from ansible_collections.palette.vmo.plugins.module_utils.vmo.cluster_module import cluster_argument_spec, cluster_module
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.upload_runner import ITEM_OPTIONS, run


def argument_spec():
    return cluster_argument_spec(dict(
        name=dict(type="str"),
        src=dict(type="path"),
        disks=dict(type="list", elements="dict", options=dict(ITEM_OPTIONS)),
        namespace=dict(type="str"),
        size=dict(type="str"),
        storage_class=dict(type="str"),
        access_modes=dict(type="list", elements="str"),
        volume_mode=dict(type="str", choices=["Filesystem", "Block"]),
        upload_proxy_url=dict(type="str"),
        upload_proxy_ca=dict(type="path"),
        upload_proxy_validate_certs=dict(type="bool", default=True),
        force_bind=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=600),
        concurrency=dict(type="int", default=4),
        api_version=dict(type="str"),
    ))


def main():
    module = cluster_module(argument_spec(), supports_check_mode=True,
                            mutually_exclusive=[("name", "disks")], required_together=[("name", "src")])
    run_module(module, run)


if __name__ == "__main__":
    main()
