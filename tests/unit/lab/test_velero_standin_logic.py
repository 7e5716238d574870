"""The Velero stand-in's pure logic: include/exclude validation, Go durations, the backup item walk (additional
items through the filters, a failing one failing its parent) and the kubevirt-velero-plugin's VM graph."""

import pytest

from tests.lab.kube import object_path
from tests.lab.velero import server
from tests.lab.velero.server import (ActionError, BackupRun, Resource, go_duration, modify_resource_include_exclude,
                                     validate_includes_excludes, validate_namespace_includes_excludes)

VM = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine", True)
PVC = Resource("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True)
PV = Resource("", "v1", "persistentvolumes", "PersistentVolume", False)
REVISION = Resource("apps", "v1", "controllerrevisions", "ControllerRevision", True)
RESOURCES = {r.group_resource: r for r in (VM, PVC, PV, REVISION)}


class FakeKube:
    def __init__(self, objs):
        self.objs = objs

    def get_or_none(self, path):
        return self.objs.get(path)


class FakeServer:
    def __init__(self, objs, actions):
        self.kube, self.actions, self.objs = FakeKube(objs), actions, objs

    def get(self, path, **params):
        return {"items": [o for p, o in self.objs.items() if p.startswith(path + "/")]}

    def backup_actions(self, resource):
        return self.actions.get(resource.kind, [])


def obj(resource, name, namespace="", **extra):
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"apiVersion": resource.api_version, "kind": resource.kind, "metadata": meta, **extra}


def run_of(spec, objs, actions):
    run = BackupRun(FakeServer({object_path(r["apiVersion"], RESOURCES[k].plural, r["metadata"]["name"],
                                            r["metadata"].get("namespace", "")): r for k, r in objs}, actions),
                    {"metadata": {"name": "b"}, "spec": spec}, RESOURCES)
    run.namespaces_cache = {"vms"}
    return run


def test_validation_is_velero_s():
    assert validate_includes_excludes(["*", "a"], ["*", "b"]) == [
        "includes list must either contain '*' only, or a non-empty list of items", "excludes list cannot contain '*'",
        "excludes list cannot contain an item in the includes list: *"]
    assert validate_includes_excludes(["a", "b"], ["b", "a"]) == [
        "excludes list cannot contain an item in the includes list: a",
        "excludes list cannot contain an item in the includes list: b"]
    errors = validate_namespace_includes_excludes(["vm-*", "vm?"], [])
    assert len(errors) == 1 and errors[0].startswith('invalid namespace "vm?": a lowercase RFC 1123 label')
    assert modify_resource_include_exclude(["pods", "volumesnapshots.snapshot.storage.k8s.io"], None,
                                           server.AUTO_EXCLUDED_RESOURCES) == (
        ["pods"], list(server.AUTO_EXCLUDED_RESOURCES))
    assert modify_resource_include_exclude(None, ["secrets"], ("x",)) == (None, ["secrets", "x"])


@pytest.mark.parametrize("text,go", [("720h", "720h0m0s"), ("90m", "1h30m0s"), ("30s", "30s"), ("1m30s", "1m30s"),
                                     ("0.5s", "500ms"), ("0s", "0s")])
def test_durations_are_written_back_in_go_s_form(text, go):
    assert go_duration(server.parse_duration(text)) == go


def test_a_failing_additional_item_fails_its_parent_and_both_stay_listed():
    def vm_action(_run, vm):
        return vm, [("persistentvolumeclaims", "vms", "data")]

    def pvc_action(_run, pvc):
        raise ActionError("boom")

    run = run_of({}, [("virtualmachines.kubevirt.io", obj(VM, "app", "vms")),
                      ("persistentvolumeclaims", obj(PVC, "data", "vms"))],
                 {"VirtualMachine": [vm_action], "PersistentVolumeClaim": [pvc_action]})
    with pytest.raises(server.BackupItemError) as err:
        run.back_up(server.Item(VM, obj(VM, "app", "vms")))
    assert str(err.value) == "error executing custom action (groupResource=persistentvolumeclaims, namespace=vms, " \
        "name=data): boom"
    assert run.order == []  # neither is written
    assert run.resource_list() == {"kubevirt.io/v1/VirtualMachine": ["vms/app"],
                                   "v1/PersistentVolumeClaim": ["vms/data"]}


@pytest.mark.parametrize("spec,kept", [({}, True), ({"includeClusterResources": False}, False),
                                       ({"includeClusterResources": True, "excludedResources": ["persistentvolumes"]},
                                        False), ({"includedResources": ["persistentvolumeclaims"]}, False)])
def test_an_additional_cluster_item_passes_the_global_filter(spec, kept):
    def pvc_action(_run, pvc):
        return pvc, [("persistentvolumes", "", "pv-1")]

    run = run_of(spec, [("persistentvolumeclaims", obj(PVC, "data", "vms")), ("persistentvolumes", obj(PV, "pv-1"))],
                 {"PersistentVolumeClaim": [pvc_action]})
    run.back_up(server.Item(PVC, obj(PVC, "data", "vms")))
    assert (("persistentvolumes", "", "pv-1") in run.backed_up) is kept


def test_the_vm_graph_holds_only_the_controller_revisions_of_instancetype_and_preference():
    vm = obj(VM, "app", "vms", spec={"instancetype": {"name": "u1.small", "kind": "VirtualMachineClusterInstancetype"},
                                     "preference": {"name": "fedora", "revisionName": "app-fedora-1"},
                                     "template": {"spec": {"domain": {"devices": {"tpm": {"persistent": True}}}}}},
             status={"instancetypeRef": {"controllerRevisionRef": {"name": "app-u1.small-2"}}})
    run = run_of({}, [], {})
    out, extra = server.vm_backup_action(run, vm)
    assert extra == [("controllerrevisions.apps", "vms", "app-u1.small-2"),
                     ("controllerrevisions.apps", "vms", "app-fedora-1"),  # no status ref: the spec's revisionName
                     ("persistentvolumeclaims", "vms", "persistent-state-for-app")]  # the persistent TPM's claim
    assert out["spec"]["instancetype"]["revisionName"] == "app-u1.small-2"


def test_velero_s_pvc_actions_drop_what_would_tie_a_restored_claim_to_the_old_one():
    pvc = obj(PVC, "data", "vms", spec={"volumeName": "pv-1", "storageClassName": "lab",
                                        "dataSource": {"kind": "VolumeSnapshot", "name": "s"},
                                        "dataSourceRef": {"kind": "VolumeSnapshot", "name": "s"},
                                        "selector": {"matchLabels": {"a": "b"}}}, status={"phase": "Bound"})
    out, extra = server.pv_backup_action(None, pvc)  # backup_pv_action.go
    assert out["spec"] == {"volumeName": "pv-1", "storageClassName": "lab"} and extra == [("persistentvolumes", "", "pv-1")]
    static = obj(PVC, "data", "vms", spec={"volumeName": "pv-1", "storageClassName": "",
                                           "selector": {"matchLabels": {"a": "b", "velero.io/x": "y"}}},
                 status={"phase": "Bound"})
    assert server.pv_backup_action(None, static)[0]["spec"]["selector"] == {"matchLabels": {"a": "b"}}
    restored = obj(PVC, "data", "vms")
    restored["metadata"]["annotations"] = {"volume.kubernetes.io/selected-node": "node-1", "keep": "1",
                                           "volume.kubernetes.io/storage-provisioner": "csi.lab.palette.vmo"}
    out, extra, skip = server.velero_pvc_restore_action(None, restored)  # restore/actions/pvc_action.go
    assert out["metadata"]["annotations"] == {"keep": "1"} and not extra and not skip


def test_the_vm_restore_action_restores_its_revisions_and_a_new_firmware_uuid_on_request():
    class Run:
        restore = {"metadata": {"labels": {"velero.kubevirt.io/generate-new-firmware-uuid": "true"}}}
        server = FakeServer({}, {})

    vm = obj(VM, "app", "vms", spec={"preference": {"name": "fedora", "revisionName": "app-fedora-1"}, "template": {
        "spec": {"domain": {"firmware": {"uuid": "old"}}, "volumes": [{"name": "root", "dataVolume": {"name": "r"}}]}}})
    out, extra, skip = server.vm_restore_action(Run(), vm)
    assert out["spec"]["template"]["spec"]["domain"]["firmware"]["uuid"] not in ("old", "")
    assert extra == [("controllerrevisions.apps", "vms", "app-fedora-1"), ("datavolumes.cdi.kubevirt.io", "vms", "r"),
                     ("persistentvolumeclaims", "vms", "r")] and not skip
