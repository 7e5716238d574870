# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Growing the claims of a VM's disks: a larger declared size becomes a larger PVC request.

CDI does not resize a DataVolume after it is populated (its controller renders the claim once), so the
size of a DataVolume disk, like that of a plain `pvc` disk, is grown on the PersistentVolumeClaim itself
(`spec.resources.requests.storage`); the StorageClass's CSI resizer does the rest and KubeVirt
(ExpandDisks) passes the new size to the guest. A claim can only grow, and only when its StorageClass
allows volume expansion; both are checked before anything is written.

A filesystem volume is grown in two steps: the CSI controller grows the volume, then the kubelet grows
the filesystem once a pod mounts the claim. Until then Kubernetes leaves `status.capacity` as it was and
marks the claim FileSystemResizePending (allocatedResourceStatuses storage NodeResizePending;
kubernetes-csi/external-resizer resize_status.go markForPendingNodeExpansion). For a VM that does not run
no pod mounts it, so its expansion counts as done there and is reported pending node expansion: it
finishes when the VM next starts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.concurrency import run_concurrently
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTarget
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.spec import quantity_bytes


class Expansion(object):
    """One claim of one VM's disk, and the size it is to have."""

    def __init__(self, plan, disk, claim, requested, declared_before=None):
        self.plan, self.disk, self.claim = plan, disk, claim
        self.requested = requested  # the declared size (text)
        self.declared_before = declared_before  # the size last declared for it (the VM's DataVolume template)
        self.pvc = None
        self.storage_class = None
        self.previous = None  # the claim's request before
        self.capacity = None  # the claim's status.capacity, when last seen
        self.grow = False
        self.wait_node = True  # whether the wait covers the node's part too (the VM runs: its pod mounts the claim)
        self.node_pending = False  # the controller expansion is done, the node's is not (seen by the wait)

    @property
    def path(self):
        return object_path("v1", "persistentvolumeclaims", self.claim, self.plan.namespace)

    def result(self):
        return {"disk": self.disk, "pvc": self.claim, "storage_class": self.storage_class,
                "previous": self.previous, "requested": self.requested, "capacity": self.capacity,
                "expanded": self.grow, "pending_node_expansion": self.node_pending}


def _template_size(live, name):
    for template in ((live or {}).get("spec") or {}).get("dataVolumeTemplates") or []:
        if (template.get("metadata") or {}).get("name") == name:
            spec = template.get("spec") or {}
            resources = (spec.get("storage") or spec.get("pvc") or {}).get("resources") or {}
            return (resources.get("requests") or {}).get("storage")
    return None


def data_volume_size(data_volume):
    """The size a DataVolume asked for (CDI may have asked its claim for more: filesystem overhead)."""
    spec = (data_volume or {}).get("spec") or {}
    resources = (spec.get("storage") or spec.get("pvc") or {}).get("resources") or {}
    return (resources.get("requests") or {}).get("storage")


def declared_sizes(plan):
    """(disk, claim, size, size last declared) for every disk of the VM that declares a claim size.

    The size last declared for a DataVolume disk is its VM template's (or, hotplugged, its DataVolume's):
    CDI renders the claim larger than that for filesystem overhead, so the claim's request is no floor.
    """
    found = []
    for disk in plan.request.get("disks") or []:
        if disk.get("data_volume") and disk["data_volume"].get("size"):
            claim = disk["data_volume"].get("name") or "%s-%s" % (plan.name, disk["name"])
            before = _template_size(plan.live, claim) or data_volume_size(plan.live_data_volumes.get(claim))
            found.append((disk["name"], claim, str(disk["data_volume"]["size"]), before))
        elif disk.get("pvc") and disk.get("size"):
            found.append((disk["name"], disk["pvc"], str(disk["size"]), None))
    return found


def _bytes(text):
    return None if text is None else quantity_bytes(str(text))


def plan_expansions(client, plans, concurrency, dry_run_patch=True):
    """Expansion of every existing claim the batch sizes; returns (expansions that grow, errors)."""
    candidates = []
    for plan in plans:
        if plan.live is None or plan.state == "absent" or plan.desired is None:
            continue  # a new VM's claims are made at the declared size
        for disk, claim, size, before in declared_sizes(plan):
            candidates.append(Expansion(plan, disk, claim, size, before))
    pvcs = run_concurrently(lambda e: client.get_or_none(e.path), candidates, concurrency)
    errors, growing = [], []
    for expansion, pvc in zip(candidates, pvcs):
        if isinstance(pvc, Exception):
            raise pvc
        if pvc is None:
            continue  # not made yet (CDI is still on it): it will be made at the declared size
        error = _check_claim(expansion, pvc)
        if error:
            errors.append(error)
        elif expansion.grow:
            growing.append(expansion)
    classes = sorted(set(e.storage_class for e in growing if e.storage_class))
    found = run_concurrently(lambda name: client.get_or_none(object_path("storage.k8s.io/v1", "storageclasses", name)),
                             classes, concurrency)
    by_name = dict(zip(classes, found))
    for expansion in growing:
        error = _check_class(expansion, by_name.get(expansion.storage_class))
        if error:
            errors.append(error)
    if dry_run_patch and not errors:
        outcomes = run_concurrently(lambda e: client.merge_patch(e.path, patch_body(e), dry_run=True), growing,
                                    concurrency)
        for expansion, outcome in zip(growing, outcomes):
            if isinstance(outcome, KubeApiError):
                errors.append("%s: the apiserver refused the expansion: %s" % (_name(expansion), outcome.message))
            elif isinstance(outcome, Exception):
                raise outcome
    return growing, errors


def _name(expansion):
    return "VM %s: %s" % (expansion.plan.label, _option(expansion))


def _option(expansion):
    plain = any(d.get("name") == expansion.disk and d.get("pvc") for d in expansion.plan.request.get("disks") or [])
    return "disks[%s].%s" % (expansion.disk, "size" if plain else "data_volume.size")


def _check_claim(expansion, pvc):
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    expansion.pvc = pvc
    expansion.storage_class = spec.get("storageClassName")
    expansion.previous = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    expansion.capacity = (status.get("capacity") or {}).get("storage")
    requested, previous = _bytes(expansion.requested), _bytes(expansion.previous)
    floor = _bytes(expansion.declared_before) if expansion.declared_before is not None else previous
    if requested < floor:
        return ("%s: %s is smaller than %s, the size PVC %s/%s (StorageClass %s) already has; a claim can only grow"
                % (_name(expansion), expansion.requested, expansion.declared_before or expansion.previous,
                   expansion.plan.namespace, expansion.claim, expansion.storage_class or "<none>"))
    expansion.grow = previous is not None and requested > previous
    return None


def _check_class(expansion, storage_class):
    if storage_class is None:
        reason = "StorageClass %s does not exist" % expansion.storage_class
    elif storage_class.get("allowVolumeExpansion") is True:
        return None
    else:
        reason = "its StorageClass %s does not allow volume expansion (allowVolumeExpansion is %s)" % (
            expansion.storage_class, str(storage_class.get("allowVolumeExpansion")).lower()
            if "allowVolumeExpansion" in storage_class else "unset")
    return ("%s: cannot grow PVC %s/%s from %s to %s: %s"
            % (_name(expansion), expansion.plan.namespace, expansion.claim, expansion.previous, expansion.requested,
               reason))


def patch_body(expansion):
    return {"spec": {"resources": {"requests": {"storage": expansion.requested}}}}


def expand(client, expansion):
    expansion.pvc = client.merge_patch(expansion.path, patch_body(expansion))
    return expansion.pvc


def capacity_reached(expansion, pvc):
    capacity = ((pvc or {}).get("status") or {}).get("capacity") or {}
    return capacity.get("storage") is not None and _bytes(capacity["storage"]) >= _bytes(expansion.requested)


def node_expansion_pending(pvc):
    """The controller grew the volume and the node has yet to grow its filesystem (no pod mounts the claim)."""
    status = (pvc or {}).get("status") or {}
    if (status.get("allocatedResourceStatuses") or {}).get("storage") == "NodeResizePending":
        return True
    return any(c.get("type") == "FileSystemResizePending" and c.get("status") == "True"
               for c in status.get("conditions") or [])


def expansion_done(expansion, pvc):
    """Capacity reached, or (the VM not running) only the node's part left."""
    if capacity_reached(expansion, pvc):
        return True
    return not expansion.wait_node and node_expansion_pending(pvc)


def observe(expansion, pvc):
    """Records what the wait last saw of the claim."""
    expansion.capacity = (((pvc or {}).get("status") or {}).get("capacity") or {}).get("storage")
    expansion.node_pending = pvc is not None and not capacity_reached(expansion, pvc) and node_expansion_pending(pvc)


def wait_target(expansion):
    def describe(pvc):
        if pvc is None:
            return "absent"
        status = pvc.get("status") or {}
        conditions = ", ".join("%s=%s" % (c.get("type"), c.get("status")) for c in status.get("conditions") or [])
        return "capacity=%s%s" % ((status.get("capacity") or {}).get("storage"),
                                  "; conditions: " + conditions if conditions else "")
    wanted = "capacity %s" % expansion.requested
    if not expansion.wait_node:
        wanted += " or only the node's filesystem expansion pending (FileSystemResizePending)"
    return WaitTarget(expansion.plan.namespace, expansion.claim, lambda pvc: expansion_done(expansion, pvc),
                      wanted, describe)
