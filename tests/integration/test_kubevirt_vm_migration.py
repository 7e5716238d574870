"""palette.vmo.kubevirt_vm_migration against the lab: many VMs in one task, idempotence, check and diff mode,
the preflight, cancellation and failures with KubeVirt's reasons."""

import re
import threading

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER
from tests.lab.tests.helpers import Waiter

MODULE = "palette.vmo.kubevirt_vm_migration"
VMIM = "virtualmachineinstancemigrations"


def vmi_path(namespace, name=""):
    return object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace)


def vmim_path(namespace, name=""):
    return object_path("kubevirt.io/v1", VMIM, name, namespace)


def writes_in(audit, mark, namespace):
    """What the module's user wrote in the namespace since the mark (VMs, VMIs, migrations, anything)."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") == namespace]


def start_vms(run_module, namespace, names, **extra):
    result = run_module("palette.vmo.kubevirt_vm", dict({
        "namespace": namespace, "memory": "128Mi", "state": "started", "wait": True, "wait_timeout": 120,
        "vms": [{"name": name} for name in names]}, **extra))
    assert result.get("failed") is not True, result.get("msg")
    return {vm["name"]: vm["node"] for vm in result["vms"]}


def by_vm(result):
    return {m["vm"]: m for m in result["migrations"]}


def test_twenty_vms_migrate_in_one_task_each_to_another_node(run_module, admin, audit, ns):
    names = ["vm-%02d" % i for i in range(20)]
    before = start_vms(run_module, ns, names)
    args = {"namespace": ns, "vms": names, "wait_timeout": 300}

    mark = audit.mark()
    check = run_module(MODULE, args, check=True, diff=True)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True
    assert {m["action"] for m in check["migrations"]} == {"created"}
    assert writes_in(audit, mark, ns) == []
    diffs = {d["before_header"]: d for d in check["diff"]}
    assert diffs["VirtualMachine %s/vm-00" % ns]["before"] == {"node": before["vm-00"]}
    assert diffs["VirtualMachine %s/vm-00" % ns]["after"]["node"] == "another node"

    first = run_module(MODULE, args)
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True
    migrations = by_vm(first)
    assert sorted(migrations) == names
    for name, migration in migrations.items():
        assert migration["action"] == "created" and migration["phase"] == "Succeeded", migration
        assert migration["source_node"] == before[name]
        assert migration["target_node"] and migration["target_node"] != before[name]
        assert migration["node"] == migration["target_node"]
        assert migration["duration_seconds"] is not None and migration["duration_seconds"] >= 0
        assert migration["start_timestamp"] and migration["end_timestamp"]
        live = admin.get(vmi_path(ns, name))
        assert live["status"]["nodeName"] == migration["target_node"]
    created = [e for e in writes_in(audit, mark, ns) if e["objectRef"]["resource"] == VMIM and e["verb"] == "create"
               and e["user"]["username"] == ADMIN_USER]
    assert len(created) == 20

    mark = audit.mark()
    second = run_module(MODULE, args)
    assert second.get("failed") is not True, second.get("msg")
    assert second["changed"] is False
    assert {m["action"] for m in second["migrations"]} == {"unchanged"}
    assert by_vm(second)["vm-03"]["target_node"] == migrations["vm-03"]["target_node"]
    assert writes_in(audit, mark, ns) == []

    # A new migration_id is a new request: the VMs move again.
    third = run_module(MODULE, dict(args, vms=names[:2], migration_id="window-2"))
    assert third["changed"] is True, third.get("msg")
    for name, migration in by_vm(third).items():
        assert migration["source_node"] == migrations[name]["target_node"]
        assert migration["target_node"] != migration["source_node"]


def test_node_selector_moves_only_vms_not_already_on_a_matching_node(run_module, admin, audit, ns):
    before = start_vms(run_module, ns, ["a", "b", "c"])
    stopped = run_module("palette.vmo.kubevirt_vm",
                         {"namespace": ns, "name": "off", "memory": "128Mi", "state": "stopped"})
    assert stopped.get("failed") is not True, stopped.get("msg")
    target = sorted(set(before.values()))[0]
    selector = {"kubernetes.io/hostname": target}
    args = {"namespace": ns, "label_selector": "app.kubernetes.io/managed-by=palette.vmo", "node_selector": selector}
    result = run_module(MODULE, args)
    assert result.get("failed") is not True, result.get("msg")
    migrations = by_vm(result)
    off = migrations.pop("off")
    assert off["action"] == "skipped" and off["reason"] == "not running" and off["migration"] is None
    for name, migration in migrations.items():
        if before[name] == target:
            assert migration["action"] == "none" and migration["migration"] is None
        else:
            assert migration["action"] == "created" and migration["target_node"] == target
            vmim = admin.get(vmim_path(ns, migration["migration"]))
            assert vmim["spec"]["addedNodeSelector"] == selector
    mark = audit.mark()
    again = run_module(MODULE, args)
    assert again["changed"] is False and {m["action"] for m in again["migrations"]} == {"none", "skipped"}
    assert writes_in(audit, mark, ns) == []


def _rwo_vm(run_module, admin, ns):
    """A running VM whose root disk is a ReadWriteOnce PVC of the lab-rwo class."""
    admin.create(object_path("v1", "persistentvolumeclaims", namespace=ns), {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "db-root"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "lab-rwo",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    start_vms(run_module, ns, ["db"], disks=[{"name": "root", "pvc": "db-root"}])


def test_rwo_pvc_and_pod_bridge_vms_are_refused_before_any_write(run_module, admin, audit, ns):
    start_vms(run_module, ns, ["fine"])
    _rwo_vm(run_module, admin, ns)
    start_vms(run_module, ns, ["bridged"], nics=[{"name": "default", "binding": "bridge"}])
    mark = audit.mark()
    result = run_module(MODULE, {"namespace": ns, "vms": ["fine", "db", "bridged"]})
    assert result.get("failed") is True
    assert result["msg"].startswith("preflight refused the batch, nothing was changed: ")
    errors = result["errors"]
    assert len(errors) == 2, errors
    assert errors[0].startswith("VM %s/db: name: is not live-migratable: LiveMigratable is False, reason "
                                "DisksNotLiveMigratable: " % ns)
    assert "db-root" in errors[0]
    assert errors[1].startswith("VM %s/bridged: name: is not live-migratable: LiveMigratable is False, reason "
                                "InterfaceNotLiveMigratable" % ns)
    assert writes_in(audit, mark, ns) == []
    assert admin.get(vmim_path(ns))["items"] == []


def _unschedulable_migration(admin, ns, vm, source):
    """A migration KubeVirt cannot place (its target may only be the source node): it stays in flight."""
    return admin.create(vmim_path(ns), {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "stuck-" + vm},
        "spec": {"vmiName": vm, "addedNodeSelector": {"kubernetes.io/hostname": source}}})


def test_cancel_leaves_the_vm_running_on_its_source_node(run_module, admin, audit, ns):
    before = start_vms(run_module, ns, ["a", "b"])
    stuck = _unschedulable_migration(admin, ns, "a", before["a"])
    args = {"namespace": ns, "vms": ["a", "b"], "state": "cancelled", "wait_timeout": 120}

    mark = audit.mark()
    check = run_module(MODULE, args, check=True, diff=True)
    assert check["changed"] is True, check.get("msg")
    assert by_vm(check)["a"]["action"] == "cancelled" and by_vm(check)["b"]["action"] == "none"
    assert check["diff"][0]["after"]["migrations"] == {"stuck-a": "cancelled"}
    assert writes_in(audit, mark, ns) == []

    result = run_module(MODULE, args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    cancelled = by_vm(result)["a"]
    assert cancelled["migration"] == "stuck-a" and cancelled["node"] == before["a"]
    assert cancelled["source_node"] == before["a"]
    assert admin.get_or_none(vmim_path(ns, "stuck-a")) is None
    vmi = admin.get(vmi_path(ns, "a"))
    assert vmi["status"]["phase"] == "Running" and vmi["status"]["nodeName"] == before["a"]
    assert ((vmi["status"].get("migrationState") or {}).get("migrationUid")) in (None, stuck["metadata"]["uid"])

    mark = audit.mark()
    again = run_module(MODULE, args)
    assert again["changed"] is False and {m["action"] for m in again["migrations"]} == {"none"}
    assert writes_in(audit, mark, ns) == []


def test_a_migration_already_in_flight_is_refused(run_module, admin, audit, ns):
    before = start_vms(run_module, ns, ["a"])
    _unschedulable_migration(admin, ns, "a", before["a"])
    mark = audit.mark()
    result = run_module(MODULE, {"namespace": ns, "name": "a"})
    assert result.get("failed") is True
    assert "VM %s/a: name: is already migrating (VirtualMachineInstanceMigration stuck-a is" % ns in result["msg"]
    assert writes_in(audit, mark, ns) == []


def _taint(admin, node, value):
    """A NoSchedule taint KubeVirt's target pods do not tolerate; returns the node's taints before."""
    path = object_path("v1", "nodes", node)
    taints = (admin.get(path).get("spec") or {}).get("taints")
    admin.merge_patch(path, {"spec": {"taints": (taints or []) + [
        {"key": "lab.palette.vmo/maintenance", "value": value, "effect": "NoSchedule"}]}})
    return taints


def _other_node(node):
    return sorted({"lab-node-1", "lab-node-2", "lab-node-3"} - {node})[0]


def test_failed_migration_quotes_kubevirts_reason_and_reports_the_write(run_module, admin, ns):
    before = start_vms(run_module, ns, ["a"])
    target = _other_node(before["a"])
    # The preflight leaves taints to the scheduler; KubeVirt's target pod does not tolerate this one.
    taints = _taint(admin, target, ns[-5:])
    try:
        result = run_module(MODULE, {"namespace": ns, "name": "a", "node_selector": {"kubernetes.io/hostname": target},
                                     "unschedulable_timeout": 1, "wait_timeout": 120})
    finally:
        admin.merge_patch(object_path("v1", "nodes", target), {"spec": {"taints": taints}})
    assert result.get("failed") is True
    assert result["changed"] is True
    assert result["msg"].startswith("1 of 1 migrations failed: VM %s/a: migration " % ns)
    assert "unschedulable" in result["msg"]
    migration = result["migrations"][0]
    assert migration["phase"] == "Failed" and migration["node"] == before["a"]
    assert "unschedulable" in migration["failure_reason"]
    assert admin.get(vmi_path(ns, "a"))["status"]["nodeName"] == before["a"]


def test_timeout_names_the_pending_migration_then_cancel_stops_it(run_module, admin, audit, ns):
    before = start_vms(run_module, ns, ["a"])
    target = _other_node(before["a"])
    taints = _taint(admin, target, ns[-5:])
    try:
        args = {"namespace": ns, "name": "a", "node_selector": {"kubernetes.io/hostname": target}}
        result = run_module(MODULE, dict(args, wait_timeout=3))
        assert result.get("failed") is True and result["changed"] is True
        name = result["migrations"][0]["migration"]
        # The phase depends on how far virt-controller got in 3 s (not set yet, Pending, Scheduling): the message
        # names the migration, what is awaited, and a phase.
        assert "timed out after 3s waiting for 1 of 1: %s/%s (waiting for Succeeded or Failed; last seen: phase " \
               % (ns, name) in result["msg"]
        assert re.search(r"last seen: phase (Pending|Scheduling|not set yet)", result["msg"]), result["msg"]
        # Run again, it follows the same migration (nothing new is created) and times out on it again.
        mark = audit.mark()
        again = run_module(MODULE, dict(args, wait_timeout=1))
        assert again["changed"] is False and again["migrations"][0]["action"] == "adopted"
        assert again["migrations"][0]["migration"] == name
        assert writes_in(audit, mark, ns) == []
        cancelled = run_module(MODULE, {"namespace": ns, "name": "a", "state": "cancelled"})
        assert cancelled.get("failed") is not True, cancelled.get("msg")
        assert cancelled["changed"] is True and cancelled["migrations"][0]["migration"] == name
        assert cancelled["migrations"][0]["node"] == before["a"]
    finally:
        admin.merge_patch(object_path("v1", "nodes", target), {"spec": {"taints": taints}})
    assert admin.get_or_none(vmim_path(ns, name)) is None
    assert admin.get(vmi_path(ns, "a"))["status"]["nodeName"] == before["a"]


STALE_HEARTBEAT = "2020-01-01T00:00:00Z"


def _heartbeat(admin, node, stamp=None):
    """virt-handler's kubevirt.io/heartbeat on a node: an old one means virt-handler there is gone (it does
    nothing, which holds a migration in the phase that waits for it). None removes it: the lab's nodes carry
    none, which stands for a live virt-handler (a current stamp would go stale in five minutes)."""
    admin.merge_patch(object_path("v1", "nodes", node), {"metadata": {"annotations": {"kubevirt.io/heartbeat": stamp}}})


def _phase_is(phase):
    return lambda m: ((m or {}).get("status") or {}).get("phase") == phase


def test_cancel_after_the_hand_off_aborts_and_the_vm_stays_on_its_source(run_module, admin, ns):
    before = start_vms(run_module, ns, ["a"])
    source, target = before["a"], _other_node(before["a"])
    wait = Waiter(admin)
    try:
        # Both virt-handlers gone: the migration waits in PreparingTarget; the target's comes back, the
        # source's (which would start the migration) does not: it is held in TargetReady, handed off already.
        _heartbeat(admin, source, STALE_HEARTBEAT)
        _heartbeat(admin, target, STALE_HEARTBEAT)
        started = run_module(MODULE, {"namespace": ns, "name": "a", "wait": False,
                                      "node_selector": {"kubernetes.io/hostname": target}})
        assert started.get("failed") is not True, started.get("msg")
        name = started["migrations"][0]["migration"]
        wait.until(vmim_path(ns, name), _phase_is("PreparingTarget"), 60, "PreparingTarget")
        _heartbeat(admin, target)
        wait.until(vmim_path(ns, name), _phase_is("TargetReady"), 60, "TargetReady")

        outcome = {}

        def cancel():
            outcome["result"] = run_module(MODULE, {"namespace": ns, "name": "a", "state": "cancelled",
                                                    "wait_timeout": 120})

        worker = threading.Thread(target=cancel)
        worker.start()
        try:
            # KubeVirt asks for the abort, which only the source's virt-handler can carry out.
            held = wait.until(vmim_path(ns, name), lambda m: m is None or any(
                c.get("type") == "migrationAbortRequested" for c in (m.get("status") or {}).get("conditions") or []),
                60, "the abort request")
            assert held is not None and held["status"]["phase"] == "TargetReady"
        finally:
            _heartbeat(admin, source)
            worker.join()
    finally:
        _heartbeat(admin, source)
        _heartbeat(admin, target)
    result = outcome["result"]
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    cancelled = result["migrations"][0]
    assert (cancelled["action"], cancelled["migration"]) == ("cancelled", name)
    assert cancelled["abort_status"] == "Succeeded"
    assert cancelled["source_node"] == source and cancelled["node"] == source
    assert admin.get_or_none(vmim_path(ns, name)) is None
    vmi = admin.get(vmi_path(ns, "a"))
    assert vmi["status"]["nodeName"] == source
    state = vmi["status"]["migrationState"]
    assert state["abortRequested"] is True and state["abortStatus"] == "Succeeded"


def test_vms_of_several_namespaces_in_one_task(run_module, admin, ns):
    other = ns[:50] + "-b"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                   "metadata": {"name": other}})
    try:
        here = start_vms(run_module, ns, ["a"])
        there = start_vms(run_module, other, ["a"])
        result = run_module(MODULE, {"namespace": ns, "vms": ["a", {"name": "a", "namespace": other}]})
        assert result.get("failed") is not True, result.get("msg")
        first, second = result["migrations"]
        assert (first["namespace"], second["namespace"]) == (ns, other)
        assert first["source_node"] == here["a"] and second["source_node"] == there["a"]
        assert first["phase"] == second["phase"] == "Succeeded"
        assert first["target_node"] != here["a"] and second["target_node"] != there["a"]
    finally:
        admin.delete(object_path("v1", "namespaces", other))


def test_a_user_who_may_not_create_migrations_is_refused_by_the_dry_run(
        run_module, admin, audit, lab, ns, vmo_cluster_roles):  # pylint: disable=unused-argument
    before = start_vms(run_module, ns, ["a"])
    admin.create(object_path("rbac.authorization.k8s.io/v1", "rolebindings", namespace=ns), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "bob-views"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "spectro-vm-viewer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"}]})
    # A host and a token of their own: the lab's admin kubeconfig is not read.
    as_bob = {"host": lab.apiserver_url, "api_key": lab.token("bob"), "ca_cert": str(lab.ca_file)}
    mark = audit.mark()
    result = run_module(MODULE, dict(as_bob, namespace=ns, name="a"))
    assert result.get("failed") is True and result.get("changed") is not True
    assert result["msg"].startswith("the apiserver refused the migrations in a dry run, nothing was changed: "
                                    "VM %s/a: VirtualMachineInstanceMigration a-migration-" % ns)
    assert "forbidden" in result["msg"]
    assert [e for e in audit.mutations(mark) if (e.get("objectRef") or {}).get("namespace") == ns
            and e["objectRef"]["resource"] == VMIM] == []
    assert admin.get(vmi_path(ns, "a"))["status"]["nodeName"] == before["a"]
