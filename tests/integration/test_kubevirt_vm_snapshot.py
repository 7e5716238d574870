"""palette.vmo.kubevirt_vm_snapshot against the lab: many VMs in one task, idempotence, check and diff mode,
retention that never touches snapshots made by someone else, state absent and failures with KubeVirt's reasons."""

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_vm_snapshot"
API = "snapshot.kubevirt.io/v1beta1"


def snap_path(namespace, name=""):
    return object_path(API, "virtualmachinesnapshots", name, namespace)


def writes_in(audit, mark, namespace):
    """What the module's user wrote in the namespace since the mark."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") == namespace]


def make_vms(run_module, namespace, names, state="stopped"):
    """VMs with a 1Gi blank DataVolume root disk on lab-rwo (snapshot-able)."""
    result = run_module("palette.vmo.kubevirt_vm", {
        "namespace": namespace, "memory": "128Mi", "state": state, "wait": True, "wait_timeout": 240,
        "vms": [{"name": name, "disks": [{"name": "root", "data_volume": {
            "size": "1Gi", "storage_class": "lab-rwo", "blank": True}}]} for name in names]})
    assert result.get("failed") is not True, result.get("msg")


def by_vm(result):
    return {s["vm"]: s for s in result["snapshots"]}


def names_of(admin, namespace, vm=None):
    items = admin.get(snap_path(namespace))["items"]
    return sorted(s["metadata"]["name"] for s in items if vm is None or s["spec"]["source"]["name"] == vm)


def test_twenty_vms_are_snapshotted_in_one_task_and_a_rerun_changes_nothing(run_module, admin, audit, ns):
    names = ["vm-%02d" % i for i in range(20)]
    make_vms(run_module, ns, names)
    args = {"namespace": ns, "vms": names, "snapshot_id": "nightly-1", "wait_timeout": 300}

    mark = audit.mark()
    check = run_module(MODULE, args, check=True, diff=True)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True
    assert {s["action"] for s in check["snapshots"]} == {"created"}
    assert writes_in(audit, mark, ns) == []
    diffs = {d["before_header"]: d for d in check["diff"]}
    assert diffs["VirtualMachine %s/vm-00 snapshots" % ns] == {
        "before_header": "VirtualMachine %s/vm-00 snapshots" % ns,
        "after_header": "VirtualMachine %s/vm-00 snapshots" % ns,
        "before": {"snapshots": []}, "after": {"snapshots": ["vm-00-nightly-1"]}}

    first = run_module(MODULE, args)
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True and first["api_version"] == API
    snapshots = by_vm(first)
    assert sorted(snapshots) == names
    for name, snap in snapshots.items():
        assert snap["action"] == "created" and snap["snapshot"] == name + "-nightly-1", snap
        assert snap["phase"] == "Succeeded" and snap["ready_to_use"] is True, snap
        assert snap["included_volumes"] == ["root"] and snap["creation_time"]
        assert snap["indications"] == []  # a stopped VM: an offline snapshot
        assert snap["failure_deadline"] == "5m0s" and snap["content"].startswith("vmsnapshot-content-")
        live = admin.get(snap_path(ns, snap["snapshot"]))
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo"
        assert live["metadata"]["labels"]["palette.vmo/snapshot-vm"] == name
        assert live["metadata"]["annotations"]["palette.vmo/snapshot-id"] == "nightly-1"
    created = [e for e in writes_in(audit, mark, ns)
               if e["objectRef"]["resource"] == "virtualmachinesnapshots" and e["verb"] == "create"]
    assert len(created) == 20

    mark = audit.mark()
    second = run_module(MODULE, args)
    assert second.get("failed") is not True, second.get("msg")
    assert second["changed"] is False
    assert {s["action"] for s in second["snapshots"]} == {"unchanged"}
    assert all(s["ready_to_use"] for s in second["snapshots"])
    assert writes_in(audit, mark, ns) == []


def test_retention_keeps_three_after_five_runs_and_never_deletes_a_foreign_snapshot(run_module, admin, audit, ns):
    make_vms(run_module, ns, ["web", "db"])
    foreign = {"apiVersion": API, "kind": "VirtualMachineSnapshot", "metadata": {"name": "web-by-hand"},
               "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "web"}}}
    admin.create(snap_path(ns), foreign)
    args = {"namespace": ns, "vms": ["web", "db"], "retention": {"keep": 3}}
    for run in range(1, 6):
        result = run_module(MODULE, dict(args, snapshot_id="run-%d" % run))
        assert result.get("failed") is not True, result.get("msg")
        for vm in ("web", "db"):
            snap = by_vm(result)[vm]
            assert snap["action"] == "created"
            assert snap["deleted"] == (["%s-run-%d" % (vm, run - 3)] if run > 3 else [])
    assert names_of(admin, ns, "web") == ["web-by-hand", "web-run-3", "web-run-4", "web-run-5"]
    assert names_of(admin, ns, "db") == ["db-run-3", "db-run-4", "db-run-5"]

    # the same task again: nothing to create, nothing beyond the three to delete
    mark = audit.mark()
    again = run_module(MODULE, dict(args, snapshot_id="run-5"))
    assert again["changed"] is False and {s["action"] for s in again["snapshots"]} == {"unchanged"}
    assert writes_in(audit, mark, ns) == []

    # check mode of a sixth run predicts the deletion and writes nothing
    mark = audit.mark()
    check = run_module(MODULE, dict(args, snapshot_id="run-6"), check=True, diff=True)
    assert check["changed"] is True
    assert by_vm(check)["web"]["deleted"] == ["web-run-3"]
    diff = {d["before_header"]: d for d in check["diff"]}["VirtualMachine %s/web snapshots" % ns]
    assert diff["after"]["snapshots"] == ["web-run-4", "web-run-5", "web-run-6"]
    assert writes_in(audit, mark, ns) == []
    # the dry-run delete deleted nothing (the audit log cannot tell a DELETE's dry run from its query alone)
    assert names_of(admin, ns, "web") == ["web-by-hand", "web-run-3", "web-run-4", "web-run-5"]

    # keep 1, retention alone: only the newest of ours is left, the foreign one stays
    only = run_module(MODULE, {"namespace": ns, "vms": ["web"], "retention": {"keep": 1}})
    assert only.get("failed") is not True, only.get("msg")
    assert by_vm(only)["web"]["action"] == "none" and by_vm(only)["web"]["deleted"] == ["web-run-3", "web-run-4"]
    assert names_of(admin, ns, "web") == ["web-by-hand", "web-run-5"]


def test_label_selector_across_namespaces_and_state_absent(run_module, admin, audit, ns):
    other = ns[:50] + "-other"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": other}})
    try:
        make_vms(run_module, ns, ["a", "b"])
        make_vms(run_module, other, ["c"])
        selector = "backup-%s=nightly" % ns[-5:]
        for namespace, name in ((ns, "a"), (other, "c")):
            admin.merge_patch(object_path("kubevirt.io/v1", "virtualmachines", name, namespace),
                              {"metadata": {"labels": {"backup-%s" % ns[-5:]: "nightly"}}})
        made = run_module(MODULE, {"label_selector": selector, "snapshot_id": "sel"})
        assert made.get("failed") is not True, made.get("msg")
        assert sorted((s["namespace"], s["vm"], s["action"]) for s in made["snapshots"]) == [
            (ns, "a", "created"), (other, "c", "created")]
        assert names_of(admin, other) == ["c-sel"]
    finally:
        admin.delete(object_path("v1", "namespaces", other))
    # a snapshot of the same name made by hand is refused for state=absent, before anything is deleted
    admin.create(snap_path(ns), {"apiVersion": API, "kind": "VirtualMachineSnapshot", "metadata": {"name": "b-sel"},
                                 "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine",
                                                     "name": "b"}}})
    mark = audit.mark()
    refused = run_module(MODULE, {"namespace": ns, "vms": ["a", "b"], "snapshot_id": "sel", "state": "absent"})
    assert refused.get("failed") is True
    assert "VM %s/b: snapshot_id: VirtualMachineSnapshot %s/b-sel exists and was not made by palette.vmo" % (
        ns, ns) in refused["msg"]
    assert writes_in(audit, mark, ns) == []
    gone = run_module(MODULE, {"namespace": ns, "name": "a", "snapshot_id": "sel", "state": "absent"})
    assert gone["changed"] is True and by_vm(gone)["a"]["action"] == "deleted"
    assert names_of(admin, ns) == ["b-sel"]
    again = run_module(MODULE, {"namespace": ns, "name": "a", "snapshot_id": "sel", "state": "absent"})
    assert again["changed"] is False and by_vm(again)["a"]["action"] == "none"


def test_an_online_snapshot_reports_kubevirts_indications(run_module, ns):
    make_vms(run_module, ns, ["up"], state="started")
    result = run_module(MODULE, {"namespace": ns, "name": "up", "snapshot_id": "live", "labels": {"tier": "web"}})
    assert result.get("failed") is not True, result.get("msg")
    snap = by_vm(result)["up"]
    assert "Online" in snap["indications"]
    assert ("GuestAgent" in snap["indications"]) != ("NoGuestAgent" in snap["indications"])
    assert {i["indication"] for i in snap["source_indications"]} == set(snap["indications"])
    assert all(i["message"] for i in snap["source_indications"])


def test_a_snapshot_kubevirt_fails_fails_the_task_with_its_reason(run_module, admin, ns):
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=ns), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "never-bound"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    vm = run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "name": "stuck", "memory": "128Mi",
                                                "state": "stopped", "disks": [{"name": "root", "pvc": "never-bound"}]})
    assert vm.get("failed") is not True, vm.get("msg")
    result = run_module(MODULE, {"namespace": ns, "name": "stuck", "snapshot_id": "s1", "failure_deadline": "2s",
                                 "wait_timeout": 60})
    assert result.get("failed") is True and result["changed"] is True
    assert "VM %s/stuck: snapshot stuck-s1 failed: snapshot deadline exceeded" % ns in result["msg"]
    snap = by_vm(result)["stuck"]
    assert snap["phase"] == "Failed" and snap["failure_deadline"] == "2s"


def test_the_wait_is_bounded_and_names_what_is_pending(run_module, admin, ns):
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=ns), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "never-bound"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    vm = run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "name": "stuck", "memory": "128Mi",
                                                "state": "stopped", "disks": [{"name": "root", "pvc": "never-bound"}]})
    assert vm.get("failed") is not True, vm.get("msg")
    result = run_module(MODULE, {"namespace": ns, "name": "stuck", "snapshot_id": "s1", "wait_timeout": 3})
    assert result.get("failed") is True and result["changed"] is True
    assert "timed out after 3s waiting for 1 of 1: %s/stuck-s1 (waiting for readyToUse or phase Failed" % ns \
        in result["msg"]
    assert "phase InProgress" in result["msg"] and "volume not bound: never-bound" in result["msg"]
