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
    assert {"op": "replace", "path": "/spec/template/spec/domain/firmware/uuid", "value": ""} in ops
    assert ops[-1] == {"op": "add", "path": "/spec/x", "value": 1}
    # no filters keep everything; a key with '/' is escaped
    assert vm_clone.remove_patches({"x/y": "1"}, ["z"], "/metadata/labels") == [
        {"op": "remove", "path": "/metadata/labels/x~1y"}]
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
