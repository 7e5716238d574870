"""Which VMs a node under maintenance can move, decided as KubeVirt's eviction admitter decides it, and the input
checks of kubevirt_node_maintenance (no network)."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import node_maintenance as nm
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import input_errors

NOT_SHARED = ("cannot migrate VMI: PVC data is not shared, live migration requires that all PVCs must be shared "
              "(using ReadWriteMany access mode)")


def node(name, cordoned=False, schedulable="true", **labels):
    obj = {"metadata": {"name": name, "labels": dict(labels, **{nm.SCHEDULABLE_LABEL: schedulable})}, "spec": {}}
    if cordoned:
        obj["spec"]["unschedulable"] = True
    return obj


NODES = [node("n1"), node("n2"), node("n3", zone="b")]


def vmi(name, node_name="n1", phase="Running", migratable=True, strategy=None, selector=None, message=None,
        owned=True):
    spec = {}
    if strategy:
        spec["evictionStrategy"] = strategy
    if selector:
        spec["nodeSelector"] = selector
    cond = {"type": "LiveMigratable", "status": "True" if migratable else "False"}
    if not migratable:
        cond.update(reason="DisksNotLiveMigratable", message=message or NOT_SHARED)
    refs = [{"kind": "VirtualMachine", "name": name}] if owned else []
    return {"metadata": {"name": name, "namespace": "vms", "uid": "uid-" + name, "ownerReferences": refs},
            "spec": spec, "status": {"phase": phase, "nodeName": node_name, "conditions": [cond]}}


def plan(vmis, cluster="LiveMigrate", migrations=(), nodes=None, evacuated=("n1",)):
    nodes = NODES if nodes is None else nodes
    return {p.name: p for p in nm.plan_node("n1", vmis, list(migrations), nodes, set(evacuated), cluster)}


def test_the_cluster_strategy_applies_unless_the_vm_sets_its_own():
    plans = plan([vmi("a"), vmi("b", strategy="None")])
    assert plans["a"].action == "migrate" and plans["a"].strategy == "LiveMigrate"
    assert plans["b"].action == "unmovable" and plans["b"].strategy == "None"
    assert "evictionStrategy None" in plans["b"].reason


def test_kubevirts_default_is_none_when_the_cluster_sets_nothing():
    assert nm.cluster_eviction_strategy({"spec": {"configuration": {}}}) == "None"
    assert nm.cluster_eviction_strategy(None) == "None"
    assert nm.cluster_eviction_strategy({"spec": {"configuration": {"evictionStrategy": "LiveMigrate"}}}) \
        == "LiveMigrate"
    assert plan([vmi("a")], cluster="None")["a"].action == "unmovable"


def test_not_live_migratable_quotes_kubevirts_message():
    found = plan([vmi("a", migratable=False)])["a"]
    assert found.action == "unmovable"
    assert found.reason == "not live-migratable (LiveMigratable False, reason DisksNotLiveMigratable): " + NOT_SHARED
    summary = nm.unmovable_summary(found)
    assert summary["live_migratable"] is False and summary["live_migratable_message"] == NOT_SHARED
    assert summary["eviction_strategy"] == "LiveMigrate"


def test_live_migrate_if_possible_moves_only_a_migratable_vm_and_external_never():
    plans = plan([vmi("a", strategy="LiveMigrateIfPossible"),
                  vmi("b", strategy="LiveMigrateIfPossible", migratable=False),
                  vmi("c", strategy="External")])
    assert plans["a"].action == "migrate"
    assert plans["b"].action == "unmovable" and plans["b"].reason.startswith("evictionStrategy LiveMigrateIfPossible")
    assert plans["c"].action == "unmovable" and "External" in plans["c"].reason


def test_a_vm_needs_a_node_outside_the_maintenance_that_matches_its_selector():
    plans = plan([vmi("a", selector={"zone": "b"}), vmi("b", selector={"zone": "c"})])
    assert plans["a"].action == "migrate"
    assert plans["b"].action == "unmovable" and "nodeSelector zone=c" in plans["b"].reason
    every = plan([vmi("a")], evacuated=("n1", "n2", "n3"))
    assert every["a"].action == "unmovable" and "no schedulable node outside the nodes under maintenance" \
        in every["a"].reason
    cordoned = plan([vmi("a")], nodes=[node("n1"), node("n2", cordoned=True), node("n3", schedulable="false")])
    assert cordoned["a"].action == "unmovable"


def test_only_the_nodes_running_vmis_count_and_a_starting_one_cannot_move():
    plans = plan([vmi("a", node_name="n2"), vmi("b", phase="Succeeded"), vmi("c", phase="Scheduled")])
    assert sorted(plans) == ["c"]
    assert plans["c"].action == "unmovable" and "Scheduled, not Running" in plans["c"].reason


def test_a_running_migration_is_adopted_not_duplicated():
    running = {"metadata": {"name": "m", "namespace": "vms"}, "spec": {"vmiName": "a"}, "status": {"phase": "Running"}}
    done = {"metadata": {"name": "m0", "namespace": "vms"}, "spec": {"vmiName": "b"}, "status": {"phase": "Succeeded"}}
    plans = plan([vmi("a"), vmi("b")], migrations=[running, done])
    assert plans["a"].action == "adopt" and plans["a"].migration is running
    assert plans["b"].action == "migrate"


def test_a_vmi_without_a_vm_is_known_as_such():
    assert plan([vmi("a", owned=False)])["a"].vm_owned is False
    assert plan([vmi("a")])["a"].vm_owned is True


BASE = {"nodes": ["n1"], "state": "evacuated", "unmovable": None, "concurrency": 5, "wait_timeout": 60}


@pytest.mark.parametrize("change, message", [
    ({"nodes": []}, "nodes: give at least one node name"),
    ({"nodes": ["n1", "n1"]}, "nodes[1]: 'n1' is named more than once"),
    ({"nodes": [""]}, "nodes[0]: '' is not a node name"),
    ({"nodes": ["Bad_Name"]}, "nodes[0]: 'Bad_Name' is not a valid node name"),
    ({"concurrency": 0}, "concurrency: 0 is out of range, give at least 1"),
    ({"wait_timeout": -1}, "wait_timeout: -1 is out of range, give 0 or more seconds"),
    ({"state": "uncordoned", "unmovable": "stop"}, "unmovable: only applies to state=evacuated"),
])
def test_bad_input_is_named(change, message):
    errors = input_errors(dict(BASE, **change))
    assert any(e.startswith(message) for e in errors), errors


def test_good_input_has_no_error():
    assert input_errors(dict(BASE)) == []
    assert input_errors(dict(BASE, state="uncordoned")) == []


def node_plan(vmis, was_cordoned=False, cluster="LiveMigrate"):
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import NodePlan

    plan = NodePlan(node("n1", cordoned=was_cordoned))
    plan.vmis = nm.plan_node("n1", vmis, [], NODES, {"n1"}, cluster)
    return plan


def test_the_diff_shows_unschedulable_and_where_each_vm_goes():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import evacuation_diff

    plan = node_plan([vmi("a"), vmi("b", strategy="None")])
    plan.by_action("unmovable")[0].action = "stop"
    diff = evacuation_diff(plan)
    assert diff["before"] == {"unschedulable": False, "vms": {"vms/a": "n1", "vms/b": "n1"}}
    assert diff["after"] == {"unschedulable": True, "vms": {"vms/a": "another node (live migration)", "vms/b": "stopped"}}


def test_changed_only_when_a_node_needs_a_cordon_or_a_vm_a_move():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import (
        evacuation_changed)

    assert evacuation_changed([node_plan([])]) is True
    assert evacuation_changed([node_plan([], was_cordoned=True)]) is False
    assert evacuation_changed([node_plan([vmi("a", strategy="None")], was_cordoned=True)]) is False
    assert evacuation_changed([node_plan([vmi("a")], was_cordoned=True)]) is True


def test_check_mode_result_predicts_what_stays():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import node_result

    plan = node_plan([vmi("a", strategy="None")])
    result = node_result(plan, None, [], True)
    assert result["cordoned"] is True and result["was_cordoned"] is False
    assert [r["vm"] for r in result["remaining"]] == ["a"] and result["empty"] is False
    assert result["unmovable"][0]["reason"].startswith("evictionStrategy None")


def test_a_vmi_being_deleted_or_in_a_terminating_namespace_is_waited_for_not_migrated_nor_refused():
    going = vmi("going")
    going["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    plans = {p.name: p for p in nm.plan_node("n1", [going, vmi("a"), vmi("b", strategy="None")], [], NODES,
                                             {"n1"}, "LiveMigrate", terminating_namespaces={"vms"})}
    assert plans["going"].action == "leaving" and plans["going"].reason == "being deleted"
    # Every VMI of the fixture lives in namespace vms: a terminating namespace takes them all, unmovable or not.
    assert plans["a"].action == plans["b"].action == "leaving"
    assert plans["b"].reason == "its namespace is being deleted"
    assert plan([vmi("a")])["a"].action == "migrate"


LABEL_VALUE = __import__("re").compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def test_a_node_name_longer_than_a_label_value_is_labelled_by_a_short_hash_and_annotated_in_full():
    assert nm.evacuated_node_label("worker-1") == "worker-1"
    long_a = "node-" + "a" * 60 + ".example.com"
    long_b = "node-" + "a" * 60 + ".example.org"
    for name in (long_a, long_b, "a" * 62 + "-" + "b" * 10, "x" * 253):
        value = nm.evacuated_node_label(name)
        assert len(value) <= 63 and LABEL_VALUE.match(value), value
        assert value == nm.evacuated_node_label(name)  # stable, so a later run finds its migrations
    assert nm.evacuated_node_label(long_a) != nm.evacuated_node_label(long_b)
    migration = nm.mark_evacuation({"metadata": {"name": "m", "labels": {"x": "y"}}}, long_a)
    assert migration["metadata"]["labels"] == {"x": "y", nm.EVACUATED_NODE_KEY: nm.evacuated_node_label(long_a)}
    assert migration["metadata"]["annotations"] == {nm.EVACUATED_NODE_KEY: long_a}


def test_the_migrations_of_a_node_with_a_long_name_carry_a_valid_label_and_the_full_name():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import (
        NodePlan, migration_requests)

    long_name = "n1-" + "x" * 70
    nodes = [node(long_name), node("n2")]
    plan = NodePlan(nodes[0])
    plan.vmis = nm.plan_node(long_name, [vmi("a", node_name=long_name)], [], nodes, {long_name}, "LiveMigrate")
    requests = migration_requests([plan], [], nodes, "kubevirt.io/v1", "evacuate-1")
    metadata = requests[0].migration["metadata"]
    assert LABEL_VALUE.match(metadata["labels"][nm.EVACUATED_NODE_KEY])
    assert len(metadata["labels"][nm.EVACUATED_NODE_KEY]) <= 63
    assert metadata["annotations"][nm.EVACUATED_NODE_KEY] == long_name


def request_for(name):
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_plan import MigrationRequest

    request = MigrationRequest(name, "vms", origin="vms")
    request.vmi, request.action, request.source_node = vmi(name), "created", "n1"
    return request


def test_a_failed_wave_does_not_stop_the_next_ones_and_every_failure_is_kept(monkeypatch):
    """Waves of one (concurrency 1): a's creation is refused, b's migration fails, c's succeeds; all three ran."""
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_runner
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import Evacuation

    created = []

    def create(client, wave, api_version, window):
        created.extend(r.name for r in wave)
        if wave[0].name == "a":
            return ["VM vms/a: creating VirtualMachineInstanceMigration m-a: refused"]
        wave[0].written = True
        wave[0].final = {"metadata": {"name": "m-" + wave[0].name, "uid": "u-" + wave[0].name}}
        return []

    def wait(client, wave, api_version, timeout):
        for request in wave:
            request.final = dict(request.final, status={"phase": "Failed" if request.name == "b" else "Succeeded"})

    monkeypatch.setattr(migration_runner, "create_migrations", create)
    monkeypatch.setattr(migration_runner, "wait_migrations", wait)
    monkeypatch.setattr(migration_runner, "refresh_vmis", lambda *args: None)
    monkeypatch.setattr(migration_runner, "read_events", lambda *args: {})
    evacuation = Evacuation(None, "kubevirt.io/v1", {"concurrency": 1, "wait_timeout": 60}, [])
    evacuation.migrate([request_for("a"), request_for("b"), request_for("c")], float("inf"))
    assert created == ["a", "b", "c"]
    assert evacuation.failed == {("vms", "a"), ("vms", "b")}
    assert evacuation.failures[0].startswith("VM vms/a: creating")
    assert evacuation.failures[1].startswith("VM vms/b: migration m-b failed")
    assert len(evacuation.failures) == 2
    assert evacuation.results[("vms", "c")]["phase"] == "Succeeded" and evacuation.written


def test_the_failure_lists_every_failed_migration_and_every_vm_still_on_the_nodes():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import (
        failed_migrations)

    remaining = [vmi("b"), vmi("a"), vmi("elsewhere", node_name="n2")]
    message, errors = failed_migrations(["VM vms/a: x", "VM vms/b: y"], remaining, ["n1"])
    assert message.startswith("2 migrations failed (every other one ran): VM vms/a: x; VM vms/b: y; ")
    assert "still on the nodes: VM vms/a: phase Running on n1; VM vms/b: phase Running on n1" in message
    assert "elsewhere" not in message
    assert errors[2:] == ["still on the nodes: VM vms/a: phase Running on n1",
                          "still on the nodes: VM vms/b: phase Running on n1"]


def test_rounds_exhausted_names_each_vm_and_why_it_still_needs_moving():
    from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.node_maintenance_runner import (
        ROUNDS, rounds_exhausted)

    running = {"metadata": {"name": "theirs", "namespace": "vms"}, "spec": {"vmiName": "c"},
               "status": {"phase": "Running"}}
    plans = plan([vmi("a"), vmi("b"), vmi("c")], migrations=[running])
    message, errors = rounds_exhausted([plans["a"], plans["b"], plans["c"]], {("vms", "a")})
    assert message.startswith("after %d rounds the nodes still hold VMs to move" % ROUNDS)
    assert "unmovable: report" not in message
    assert errors[0] == "VM vms/a on n1: moved or stopped in an earlier round, it is on the node again"
    assert errors[1].startswith("VM vms/b on n1: arrived on the node after it was cordoned")
    assert errors[2] == "VM vms/c on n1: a migration started elsewhere is running for it (theirs)"
