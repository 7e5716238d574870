"""Pure logic of the lab's restore and clone stand-ins: json-patch v4 semantics, restore names, the restore
admitter's patch check, the clone's patches and filters, and the clone admitter."""

import json

import pytest

from tests.lab.kubevirt import vm_clone, vm_restore


def test_json_patch_follows_evanphx_v4():
    doc = {"spec": {"a": {"mac": "x"}, "list": [{"name": "n"}]}, "metadata": {"labels": {"k": "v"}}}
    # replace of a missing object key sets it (partialDoc.get never fails in v4)
    out = vm_restore.apply_json_patch(doc, [{"op": "replace", "path": "/spec/list/0/macAddress", "value": ""}])
    assert out["spec"]["list"][0] == {"name": "n", "macAddress": ""}
    with pytest.raises(vm_restore.PatchError, match="Unable to remove nonexistent key"):
        vm_restore.apply_json_patch(doc, [{"op": "remove", "path": "/metadata/labels/none"}])
    with pytest.raises(vm_restore.PatchError):
        vm_restore.apply_json_patch(doc, [{"op": "replace", "path": "/spec/list/3/x", "value": 1}])
    out = vm_restore.apply_json_patch(doc, [{"op": "remove", "path": "/metadata/labels/k"}])
    assert out["metadata"]["labels"] == {} and doc["metadata"]["labels"] == {"k": "v"}


def test_restore_volume_names_per_policy():
    restore = {"metadata": {"name": "r", "uid": "u-1"}, "spec": {"target": {"name": "vm"}}}
    assert vm_restore.restore_volume_name(restore, "root", "claim") == "restore-u-1-root"
    restore["spec"]["volumeRestorePolicy"] = "InPlace"
    assert vm_restore.restore_volume_name(restore, "root", "claim") == "claim"
    restore["spec"]["volumeRestorePolicy"] = "PrefixTargetName"
    assert vm_restore.restore_volume_name(restore, "root", "claim") == "vm-root"
    restore["spec"]["volumeRestoreOverrides"] = [{"volumeName": "root", "restoreName": "mine"}]
    assert vm_restore.restore_volume_name(restore, "root", "claim") == "mine"
    long = vm_restore.get_name("v" * 60, "root")
    assert len(long) == 63 and long.endswith("-root")


def test_get_name_is_library_gos():
    """vendor/github.com/openshift/library-go/pkg/build/naming/namer.go GetName: fnv32a; a suffix that leaves no
    room for the base (baseLength <= 0) gives <base>-<hash of base-suffix>, the suffix dropped."""
    assert vm_restore._fnv32a("") == "811c9dc5" and vm_restore._fnv32a("a") == "e40c292c"
    base, suffix = "t" * 10, "v" * 53  # baseLength = 63 - 10 - 53 = 0
    assert vm_restore.get_name(base, suffix) == base + "-" + vm_restore._fnv32a(base + "-" + suffix)
    assert vm_restore.get_name("b" * 60, "sfx") == "b" * 50 + "-" + vm_restore._fnv32a("b" * 60) + "-sfx"
    assert vm_restore.get_name("a", "b", 0) == ""


class _Kube:
    """Reads of a cluster that holds only `objects` (path -> object)."""

    def __init__(self, objects=None):
        self.objects = objects or {}

    def get_or_none(self, path):
        return self.objects.get(path)

    def get(self, path):
        if path in self.objects:
            return self.objects[path]
        if path.endswith("/" + vm_restore.PLURAL):
            return {"items": []}
        raise vm_restore.KubeError(404, "not found", "GET", path)


def _restore_request(**spec):
    return {"resource": {"group": "snapshot.kubevirt.io", "resource": vm_restore.PLURAL}, "operation": "CREATE",
            "namespace": "ns", "object": {"metadata": {"name": "r", "namespace": "ns"}, "spec": dict(
                {"target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"},
                 "virtualMachineSnapshotName": "snap"}, **spec)}}


def test_the_restore_admitter_volume_ownership_policy_and_a_missing_snapshot():
    admit = vm_restore.make_admitter(_Kube())
    # api snapshot/v1beta1 VolumeOwnershipPolicyVm = "Vm"
    assert admit(_restore_request(volumeOwnershipPolicy="Vm"), {}) == {"allowed": True}
    assert admit(_restore_request(volumeOwnershipPolicy="None"), {}) == {"allowed": True}
    denied = admit(_restore_request(volumeOwnershipPolicy="VM"), {})
    assert denied["status"]["message"] == 'volume ownership policy "VM" doesn\'t exist'
    # validateTargetVM returns nil causes when the snapshot is not found: the patch causes are dropped
    bad_patch = '{"op": "replace", "path": "/metadata/name", "value": "x"}'
    assert admit(_restore_request(patches=[bad_patch]), {}) == {"allowed": True}
    snapshot = {"metadata": {"name": "snap"}, "status": {"sourceUID": "u-vm"}}
    vm = {"metadata": {"name": "vm", "uid": "u-vm"}}
    kube = _Kube({vm_restore.object_path(vm_restore.SNAPSHOT_API, "virtualmachinesnapshots", "snap", "ns"): snapshot,
                  vm_restore.object_path(vm_restore.VM_API, "virtualmachines", "vm", "ns"): vm})
    denied = vm_restore.make_admitter(kube)(_restore_request(patches=[bad_patch]), {})
    assert "patching is valid only for elements under /spec/ only" in denied["status"]["message"]
    # webhookutils.ToAdmissionResponse: at most 10 causes
    denied = vm_restore.make_admitter(kube)(_restore_request(patches=[bad_patch] * 12), {})
    assert len(denied["status"]["details"]["causes"]) == 10
    assert denied["status"]["message"].endswith(", and 2 more validation errors")


def test_another_restores_name_in_the_vm_status_only_requeues():
    """restore.go:269-272: UpdateRestoreInProgress's error is returned without doUpdateError."""
    controller = object.__new__(vm_restore.VMRestoreController)
    restore = {"metadata": {"name": "mine", "uid": "u"}, "spec": {}}
    vm = {"metadata": {"name": "vm"}, "status": {"restoreInProgress": "other"}}
    with pytest.raises(vm_restore.Requeue, match="vm restore other in progress"):
        controller._restore_in_progress(restore, vm)


def test_a_restore_data_volume_is_generated_as_kubevirt_does():
    """dv.go GenerateDataVolumeFromTemplate: allowClaimAdoption, the VM's priorityClassName, sourceRef resolved."""
    template = {"metadata": {"name": "vm-root"},
                "spec": {"sourceRef": {"kind": "DataSource", "name": "fedora", "namespace": "images"},
                         "storage": {"resources": {"requests": {"storage": "1Gi"}}}}}
    data_source = {"spec": {"source": {"pvc": {"name": "fedora-42"}}}}
    kube = _Kube({vm_restore.object_path(vm_restore.DV_API, "datasources", "fedora", "images"): data_source})
    dv = vm_restore.generate_data_volume(kube, template, "ns", "high")
    assert dv["metadata"] == {"name": "vm-root", "namespace": "ns", "labels": {},
                              "annotations": {vm_restore.ALLOW_CLAIM_ADOPTION: "true"}}
    assert dv["spec"] == {"source": {"pvc": {"name": "fedora-42", "namespace": "images"}},
                          "storage": {"resources": {"requests": {"storage": "1Gi"}}}, "priorityClassName": "high"}
    assert "annotations" not in template["metadata"]
    # any other source stays as it is; the template's own priority class wins
    blank = {"metadata": {"name": "d"}, "spec": {"source": {"blank": {}}, "priorityClassName": "low"}}
    assert vm_restore.generate_data_volume(_Kube(), blank, "ns", "high")["spec"] == blank["spec"]
    with pytest.raises(vm_restore.KubeError):
        vm_restore.generate_data_volume(_Kube(), template, "ns", None)


def test_the_restore_admitter_splits_patches_at_colons_as_kubevirt_does():
    ok = json.dumps({"op": "replace", "path": "/spec/running", "value": False})
    assert vm_restore.validate_patches([ok], "spec.patches") == []
    mac = json.dumps({"op": "replace", "path": "/spec/template/spec/domain/devices/interfaces/0/macAddress",
                      "value": "02:00:00:00:00:01"}, separators=(",", ":"))
    (cause,) = vm_restore.validate_patches([mac], "spec.patches")
    assert cause["message"].startswith('patch format is not valid - one ":" expected')
    hyphen = mac.replace("02:00:00:00:00:01", "02-00-00-00-00-01")
    assert vm_restore.validate_patches([hyphen], "spec.patches") == []
    meta = json.dumps({"op": "replace", "path": "/metadata/name", "value": "x"})
    assert "only for elements under /spec/" in vm_restore.validate_patches([meta], "spec.patches")[0]["message"]


def test_clone_patches_mirror_generate_patches():
    source = {"metadata": {"labels": {"app": "web", "team": "a", "x/y": "1"},
                           "annotations": {"keep.me/a": "1", "drop": "2", vm_restore.LAST_RESTORE: "r-u"}},
              "spec": {"template": {"metadata": {"labels": {"kubevirt.io/domain": "vm"}},
                                    "spec": {"domain": {"firmware": {"uuid": "u"},
                                                        "devices": {"interfaces": [{"name": "default"},
                                                                                   {"name": "nic2"}]}}}}}}
    spec = {"newMacAddresses": {"default": "02-00-00-00-00-01"}, "labelFilters": ["*", "!team"],
            "annotationFilters": ["keep.me/*"], "patches": ['{"op":"add","path":"/spec/x","value":1}']}
    ops = [json.loads(p) for p in vm_clone.generate_patches(source, spec)]
    assert ops[:3] == [
        {"op": "replace", "path": "/spec/template/spec/domain/devices/interfaces/0/macAddress",
         "value": "02-00-00-00-00-01"},
        {"op": "replace", "path": "/spec/template/spec/domain/devices/interfaces/1/macAddress", "value": ""},
        {"op": "replace", "path": "/spec/template/spec/domain/firmware/serial", "value": ""}]
    removes = {o["path"] for o in ops if o["op"] == "remove"}
    assert removes == {"/metadata/labels/team", "/metadata/annotations/drop"}
    # PatchOperation marshalled by value: a remove carries "value":null as KubeVirt writes it
    assert '{"op":"remove","path":"/metadata/labels/team","value":null}' in vm_clone.generate_patches(source, spec)
    assert {"op": "replace", "path": "/spec/template/spec/domain/firmware/uuid", "value": ""} in ops
    assert ops[-1] == {"op": "add", "path": "/spec/x", "value": 1}
    # no filters keep everything; a key with '/' is escaped
    assert vm_clone.remove_patches({"x/y": "1"}, ["z"], "/metadata/labels") == [
        {"op": "remove", "path": "/metadata/labels/x~1y", "value": None}]
    assert vm_clone.remove_patches({"x/y": "1"}, None, "/metadata/labels") == []


def test_the_clone_admitter_and_mutator():
    request = {"resource": {"group": "clone.kubevirt.io", "resource": "virtualmachineclones"}, "operation": "CREATE",
               "object": {"spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "vm"}}}}
    assert vm_clone.admit_clone(request, {}) == {"allowed": True}
    mutated = vm_clone.mutate_clone(request, {})
    patch = json.loads(__import__("base64").b64decode(mutated["patch"]))
    assert patch[0]["value"]["target"]["name"].startswith("clone-vm-")
    request["object"]["spec"]["source"]["kind"] = "Pod"
    request["object"]["spec"]["newMacAddresses"] = {"eth0": "02:00:00:00:00"}
    denied = vm_clone.admit_clone(request, {})
    assert [c["field"] for c in denied["status"]["details"]["causes"]] == ["spec.Source.Kind", "spec.newMacAddresses.eth0"]
    gates = {"developerConfiguration": {"disabledFeatureGates": ["Snapshot"]}}
    assert vm_clone.admit_clone(request, gates)["status"]["message"] == "snapshot feature gate is not enabled"
