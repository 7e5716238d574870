"""kubevirt_vm_migration's decisions without a cluster: requests, preflight, names, results."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_plan as plan

PARAMS = dict(state="migrated", api_version="kubevirt.io/v1", migration_id=None, unschedulable_timeout=None,
              node_selector=None, namespace="vms", name=None, vms=None, label_selector=None)


def params(**overrides):
    return dict(PARAMS, **overrides)


def node(name, schedulable=True, cordoned=False, ready=True, **labels):
    labels = dict(labels, **({"kubevirt.io/schedulable": "true"} if schedulable else {}))
    return {"metadata": {"name": name, "labels": labels}, "spec": {"unschedulable": True} if cordoned else {},
            "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


NODES = [node("n1", zone="a"), node("n2", zone="b"), node("n3", zone="b")]


def vmi(node_name="n1", phase="Running", uid="uid-1", migratable=None, selector=None, state=None):
    conditions = []
    if migratable is not None:
        conditions.append({"type": "LiveMigratable", "status": "True" if migratable is True else "False",
                           "reason": "DisksNotLiveMigratable", "message": migratable if migratable is not True else ""})
    obj = {"metadata": {"name": "vm", "uid": uid}, "spec": {"nodeSelector": selector} if selector else {},
           "status": {"phase": phase, "nodeName": node_name, "conditions": conditions}}
    if state:
        obj["status"]["migrationState"] = state
    return obj


def request(instance=None, selector=None, origin="name"):
    req = plan.MigrationRequest("vm", "vms", selector, origin)
    req.vm = {"metadata": {"name": "vm"}, "status": {"printableStatus": "Running" if instance else "Stopped"}}
    req.vmi = instance
    return req


def vmim(name, phase="", key=None, uid="m-1", deleting=False, **status):
    labels = {plan.KEY_LABEL: key} if key else {}
    meta = {"name": name, "labels": labels, "uid": uid}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta, "spec": {"vmiName": "vm"}, "status": dict(status, phase=phase)}


# -- requests --------------------------------------------------------------------------------------

def test_vms_items_are_names_or_dicts_and_override_the_task():
    reqs = plan.parse_requests(params(vms=["a", {"name": "b", "namespace": "other", "node_selector": {"zone": "b"}}],
                                      node_selector={"zone": "a"}))
    assert [(r.name, r.namespace, r.node_selector) for r in reqs] == [
        ("a", "vms", {"zone": "a"}), ("b", "other", {"zone": "b"})]


@pytest.mark.parametrize("overrides, expected", [
    (dict(), "one of name, vms or label_selector is required"),
    (dict(vms=["a", "a"]), "VM vms/a: name: is named more than once"),
    (dict(vms=["Bad_Name"]), "VM vms/Bad_Name: name: 'Bad_Name' is not a valid name"),
    (dict(name="a", namespace=None), "VM ?/a: namespace: is required"),
    (dict(vms=[{"name": "a", "colour": "red"}]), "vms[0] (a): unsupported parameters: colour"),
    (dict(vms=[{"namespace": "x"}]), "vms[0] (?): missing required arguments: name"),
    (dict(name="a", node_selector={"zone": 3}), "VM vms/a: node_selector.zone: 3 must be a string"),
    (dict(name="a", node_selector={"bad key!": "x"}), "node_selector.bad key!: 'bad key!' is not a valid label key"),
    (dict(name="a", node_selector={"zone": "a b"}), "node_selector.zone: 'a b' is not a valid label value"),
    (dict(name="a", migration_id="not valid!"), "migration_id: 'not valid!' is not a valid label value"),
    (dict(name="a", unschedulable_timeout=0), "unschedulable_timeout: 0 is out of range"),
    (dict(name="a", state="cancelled", node_selector={"zone": "a"}), "node_selector: only applies to state=migrated"),
    (dict(label_selector="tier=web", namespace=None), "namespace: required with label_selector"),
])
def test_bad_requests_name_the_vm_and_the_field(overrides, expected):
    with pytest.raises(ModuleFailure) as err:
        plan.parse_requests(params(**overrides))
    assert str(err.value).startswith(plan.INVALID_INPUT)
    assert expected in str(err.value)


# -- preflight and plan ----------------------------------------------------------------------------

def test_a_running_vm_gets_a_migration_named_after_its_instance():
    req = request(vmi())
    assert plan.plan_request(req, [], NODES, params()) == []
    assert req.action == "created"
    key = plan.migration_key("uid-1", None)
    assert req.migration["metadata"]["name"] == "vm-migration-" + key[:10]
    assert req.migration["metadata"]["labels"][plan.KEY_LABEL] == key
    assert req.migration["spec"] == {"vmiName": "vm"}


def test_the_migration_id_and_the_instance_change_the_name():
    names = set()
    for uid, migration_id in (("uid-1", None), ("uid-1", "ticket-1"), ("uid-2", None)):
        req = request(vmi(uid=uid))
        plan.plan_request(req, [], NODES, params(migration_id=migration_id))
        names.add(req.migration["metadata"]["name"])
    assert len(names) == 3


def test_its_own_succeeded_migration_means_nothing_to_do():
    key = plan.migration_key("uid-1", None)
    req = request(vmi(node_name="n2"))
    assert plan.plan_request(req, [vmim("done", "Succeeded", key)], NODES, params()) == []
    assert (req.action, req.existing["metadata"]["name"]) == ("unchanged", "done")


def test_its_own_running_migration_is_followed_not_created_again():
    key = plan.migration_key("uid-1", None)
    req = request(vmi())
    assert plan.plan_request(req, [vmim("mine", "Running", key)], NODES, params()) == []
    assert req.action == "adopted"


def test_a_failed_attempt_is_tried_again_under_the_next_name():
    key = plan.migration_key("uid-1", None)
    first = plan.migration_name("vm", key, 1)
    req = request(vmi())
    assert plan.plan_request(req, [vmim(first, "Failed", key)], NODES, params()) == []
    assert req.migration["metadata"]["name"] == first + "-2"


def test_a_vm_already_on_a_matching_node_needs_nothing():
    req = request(vmi(node_name="n2"), selector={"zone": "b"})
    assert plan.plan_request(req, [], NODES, params()) == []
    assert req.action == "none" and "n2" in req.reason


def test_unreadable_nodes_and_our_succeeded_migration_onto_the_current_node_need_nothing():
    # Without permission to list nodes the current node's labels are unknown: our own Succeeded migration
    # (the same node_selector, the same instance) that put the VM on the node it runs on is the answer.
    key = plan.migration_key("uid-1", None)
    first = plan.migration_name("vm", key, 1)
    req = request(vmi(node_name="n2"), selector={"zone": "b"})
    done = vmim(first, "Succeeded", key, migrationState={"sourceNode": "n1", "targetNode": "n2"})
    assert plan.plan_request(req, [done], None, params()) == []
    assert (req.action, req.existing["metadata"]["name"], req.migration) == ("unchanged", first, None)
    assert "n2" in req.reason and first in req.reason
    assert not plan.changed(req)
    # The node in the decentralized shape only (targetState.node) counts the same.
    req = request(vmi(node_name="n2"), selector={"zone": "b"})
    assert plan.plan_request(req, [vmim(first, "Succeeded", key, migrationState={"targetState": {"node": "n2"}})],
                             None, params()) == []
    assert req.action == "unchanged"


def test_unreadable_nodes_and_a_vm_moved_since_its_migration_migrate_again():
    key = plan.migration_key("uid-1", None)
    first = plan.migration_name("vm", key, 1)
    req = request(vmi(node_name="n1"), selector={"zone": "b"})
    done = vmim(first, "Succeeded", key, migrationState={"sourceNode": "n1", "targetNode": "n2"})
    assert plan.plan_request(req, [done], None, params()) == []
    assert (req.action, req.migration["metadata"]["name"]) == ("created", first + "-2")


def test_the_node_selector_goes_into_the_migration_and_unschedulable_timeout_into_its_annotation():
    req = request(vmi(), selector={"zone": "b"})
    plan.plan_request(req, [], NODES, params(unschedulable_timeout=30, migration_id="t-1"))
    assert req.migration["spec"]["addedNodeSelector"] == {"zone": "b"}
    assert req.migration["metadata"]["annotations"] == {plan.UNSCHEDULABLE_TIMEOUT_ANNOTATION: "30",
                                                        plan.ID_ANNOTATION: "t-1"}


def test_not_running_is_refused_but_skipped_when_selected_by_labels():
    assert "is not running (printableStatus Stopped" in plan.plan_request(request(None), [], NODES, params())[0]
    req = request(None, origin="label_selector")
    assert plan.plan_request(req, [], NODES, params()) == [] and req.action == "skipped"


def test_not_live_migratable_quotes_kubevirt():
    message = "cannot migrate VMI: PVC db-root is not shared, live migration requires that all PVCs must be shared"
    problems = plan.plan_request(request(vmi(migratable=message)), [], NODES, params())
    assert problems == ["VM vms/vm: name: is not live-migratable: LiveMigratable is False, reason "
                        "DisksNotLiveMigratable: " + message]


def test_a_migration_in_flight_by_someone_else_is_refused():
    problems = plan.plan_request(request(vmi()), [vmim("theirs", "Scheduling")], NODES, params())
    assert "is already migrating (VirtualMachineInstanceMigration theirs is Scheduling)" in problems[0]


def test_no_other_node_names_the_selector_and_why_each_node_is_out():
    nodes = [node("n1", zone="a"), node("n2", cordoned=True, zone="b"), node("n3", schedulable=False, zone="b"),
             node("n4", ready=False, zone="b")]
    problems = plan.plan_request(request(vmi(), selector={"zone": "b"}), [], nodes, params())
    assert problems == ["VM vms/vm: node_selector: no schedulable, uncordoned node other than its current node n1 "
                        "among the nodes with zone=b (n2 is cordoned; n3 is not schedulable for VMs "
                        "(kubevirt.io/schedulable is not true); n4 is not Ready)"]


def test_the_vms_own_node_selector_counts_and_wins_on_a_shared_key():
    problems = plan.plan_request(request(vmi(selector={"zone": "a"}), selector={"zone": "b"}), [], NODES, params())
    assert "among the nodes with zone=a" in problems[0]


def test_unreadable_nodes_leave_the_choice_to_the_scheduler():
    assert plan.plan_request(request(vmi()), [], None, params()) == []


def test_every_problem_of_a_vm_is_reported():
    problems = plan.plan_request(request(vmi(migratable="no")), [vmim("x", "Running")], [node("n1")], params())
    assert len(problems) == 3


# -- cancel ----------------------------------------------------------------------------------------

def test_cancel_deletes_what_is_in_flight_and_follows_what_is_being_deleted():
    req = request(vmi())
    plan.plan_cancel(req, [vmim("a", "Succeeded"), vmim("b", "Pending"), vmim("c", "Running", deleting=True)])
    assert [m["metadata"]["name"] for m in req.cancelling] == ["b"]
    assert [m["metadata"]["name"] for m in req.awaiting] == ["c"]
    assert req.action == "cancelled" and plan.changed(req)


def test_cancel_with_nothing_in_flight_changes_nothing():
    req = request(vmi())
    plan.plan_cancel(req, [vmim("a", "Failed")])
    assert req.action == "none" and not plan.changed(req)


# -- results ---------------------------------------------------------------------------------------

def test_result_has_nodes_timestamps_and_duration():
    req = request(vmi())
    req.action, req.source_node = "created", "n1"
    state = {"sourceNode": "n1", "targetNode": "n2", "startTimestamp": "2026-01-01T00:00:01Z",
             "endTimestamp": "2026-01-01T00:00:04Z", "completed": True}
    req.final = vmim("m", "Succeeded", migrationState=state)
    req.final_vmi = vmi(node_name="n2")
    result = plan.migration_result(req)
    assert (result["source_node"], result["target_node"], result["node"]) == ("n1", "n2", "n2")
    assert result["duration_seconds"] == 3.0 and result["failure_reason"] is None


def test_result_reads_nodes_from_source_and_target_state_without_the_flat_fields():
    req = request(vmi())
    req.action = "created"
    req.final = vmim("m", "Succeeded", migrationState={"sourceState": {"node": "n1"}, "targetState": {"node": "n3"}})
    req.final_vmi = vmi(node_name="n3")
    result = plan.migration_result(req)
    assert (result["source_node"], result["target_node"]) == ("n1", "n3")


def test_failure_reason_quotes_state_conditions_and_events():
    failed = vmim("m", "Failed", migrationState={"failureReason": "Target pod is down"},
                  conditions=[{"type": "migrationAbortRequested", "status": "True"}])
    events = [{"reason": "FailedMigration", "message": "Migration failed because target pod shutdown"}]
    assert plan.failure_reason(failed, None, events) == (
        "Target pod is down; condition migrationAbortRequested; FailedMigration: Migration failed because "
        "target pod shutdown")


def test_failure_reason_reads_the_vmis_state_of_this_migration_only():
    failed = vmim("m", "Failed", uid="u-1")
    assert plan.failure_reason(failed, vmi(state={"migrationUid": "u-1", "failureReason": "boom"})) == "boom"
    assert plan.failure_reason(failed, vmi(state={"migrationUid": "u-2", "failureReason": "boom"})) == \
        "KubeVirt recorded no reason"


def test_diff_shows_the_node_before_and_the_target_after():
    req = request(vmi(), selector={"zone": "b"})
    plan.plan_request(req, [], NODES, params())
    diff = plan.plan_diff(req)
    assert diff["before"] == {"node": "n1"}
    assert diff["after"]["node"] == "another node with zone=b"
