"""palette.vmo.kubevirt_node_maintenance against the lab: a node emptied by live migration, unmovable VMs refused,
reported or stopped, idempotence, check mode with no write, uncordon, bad input with no write."""

import pytest

from tests.lab.bootstrap import NODES
from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_node_maintenance"
NOT_MASQUERADE = ("cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod "
                  "network")


def set_cordoned(admin, node, cordoned):
    admin.merge_patch(object_path("v1", "nodes", node), {"spec": {"unschedulable": True if cordoned else None}})


def is_cordoned(admin, node):
    return bool(admin.get(object_path("v1", "nodes", node)).get("spec", {}).get("unschedulable"))


@pytest.fixture(autouse=True)
def nodes_uncordoned(admin):
    """Every lab node schedulable before and after each test, whatever the test did."""
    for node in NODES:
        set_cordoned(admin, node, False)
    yield
    for node in NODES:
        set_cordoned(admin, node, False)


def vms_on(run_module, admin, ns, node, vms):
    """Declares `vms` (kubevirt_vm items) and has them run on `node`: the other nodes are cordoned meanwhile."""
    others = [n for n in NODES if n != node]
    for other in others:
        set_cordoned(admin, other, True)
    try:
        created = run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "memory": "128Mi", "wait": True,
                                                         "wait_timeout": 300, "vms": vms})
        assert created.get("failed") is not True, created.get("msg")
        assert {vm["node"] for vm in created["vms"]} == {node}, created["vms"]
    finally:
        for other in others:
            set_cordoned(admin, other, False)


def node_writes(audit, mark, *nodes):
    paths = [object_path("v1", "nodes", node) for node in nodes]
    return [e for e in audit.mutations(mark, user=ADMIN_USER) if e["objectRef"].get("resource") == "nodes"
            and any(e["requestURI"].split("?")[0] == path for path in paths)]


def namespace_writes(audit, mark, ns):
    return [e for e in audit.mutations(mark, user=ADMIN_USER) if e["objectRef"].get("namespace") == ns]


def vmi_nodes(admin, ns):
    items = admin.get(object_path("kubevirt.io/v1", "virtualmachineinstances", namespace=ns))["items"]
    return {vmi["metadata"]["name"]: vmi["status"].get("nodeName") for vmi in items}


def test_evacuate_a_node_with_ten_vms(run_module, admin, audit, ns):
    names = ["vm-%02d" % i for i in range(10)]
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": name} for name in names])

    mark = audit.mark()
    planned = run_module(MODULE, {"nodes": ["lab-node-1"]}, check=True, diff=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["changed"] is True
    node = planned["nodes"][0]
    assert node["node"] == "lab-node-1" and node["was_cordoned"] is False and node["cordoned"] is True
    assert sorted(m["vm"] for m in node["migrated"]) == names
    assert all(m["source_node"] == "lab-node-1" and m["phase"] is None for m in node["migrated"])
    assert node["unmovable"] == [] and node["remaining"] == []
    diff = planned["diff"][0] if isinstance(planned["diff"], list) else planned["diff"]
    assert diff["before"]["unschedulable"] is False and diff["after"]["unschedulable"] is True
    assert set(diff["before"]["vms"]) == {f"{ns}/{name}" for name in names}
    assert set(diff["after"]["vms"].values()) == {"another node (live migration)"}
    assert audit.mutations(mark, user=ADMIN_USER) == []
    assert not is_cordoned(admin, "lab-node-1")

    done = run_module(MODULE, {"nodes": "lab-node-1", "concurrency": 4})
    assert done.get("failed") is not True, done.get("msg")
    assert done["changed"] is True
    node = done["nodes"][0]
    assert node["cordoned"] is True and node["empty"] is True and node["remaining"] == []
    assert sorted(m["vm"] for m in node["migrated"]) == names
    for migration in node["migrated"]:
        assert migration["phase"] == "Succeeded" and migration["source_node"] == "lab-node-1"
        assert migration["target_node"] in ("lab-node-2", "lab-node-3")
        assert migration["duration_seconds"] is not None and migration["duration_seconds"] >= 0
    assert is_cordoned(admin, "lab-node-1")
    placed = vmi_nodes(admin, ns)
    assert sorted(placed) == names and "lab-node-1" not in placed.values()
    migrations = admin.get(object_path("kubevirt.io/v1", "virtualmachineinstancemigrations", namespace=ns))["items"]
    assert len(migrations) == 10
    assert {m["metadata"]["labels"]["palette.vmo/evacuated-node"] for m in migrations} == {"lab-node-1"}
    assert {m["metadata"]["annotations"]["palette.vmo/evacuated-node"] for m in migrations} == {"lab-node-1"}

    # The VMs' own facts tell the same story.
    info = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns})
    for vm in info["vms"]:
        assert vm["migration"]["source_node"] == "lab-node-1" and vm["migration"]["completed"] is True
        assert vm["migration"]["target_node"] == vm["node"] != "lab-node-1"

    mark = audit.mark()
    again = run_module(MODULE, {"nodes": ["lab-node-1"]})
    assert again["changed"] is False and again["nodes"][0]["migrated"] == [] and again["nodes"][0]["empty"] is True
    assert again["nodes"][0]["was_cordoned"] is True
    assert audit.mutations(mark, user=ADMIN_USER) == []

    mark = audit.mark()
    uncordoned = run_module(MODULE, {"nodes": ["lab-node-1"], "state": "uncordoned"}, diff=True)
    assert uncordoned["changed"] is True and uncordoned["nodes"] == [
        {"node": "lab-node-1", "was_cordoned": True, "cordoned": False}]
    assert not is_cordoned(admin, "lab-node-1")
    assert len(node_writes(audit, mark, "lab-node-1")) == 1
    mark = audit.mark()
    assert run_module(MODULE, {"nodes": ["lab-node-1"], "state": "uncordoned"})["changed"] is False
    assert run_module(MODULE, {"nodes": ["lab-node-1"], "state": "uncordoned"}, check=True)["changed"] is False
    assert audit.mutations(mark, user=ADMIN_USER) == []


def unmovable_set(run_module, admin, ns):
    vms_on(run_module, admin, ns, "lab-node-2", [
        {"name": "mobile-1"}, {"name": "mobile-2"},
        {"name": "pinned", "eviction_strategy": "None"},
        {"name": "bridged", "nics": [{"name": "default", "binding": "bridge"}]},
    ])


def test_unmovable_vms_are_refused_before_any_write_by_default(run_module, admin, audit, ns):
    unmovable_set(run_module, admin, ns)
    mark = audit.mark()
    refused = run_module(MODULE, {"nodes": ["lab-node-2"]})
    assert refused.get("failed") is True and refused["changed"] is False
    assert refused["msg"].startswith("refused before any change, nothing was changed: ")
    assert f"VM {ns}/bridged on lab-node-2: not live-migratable (LiveMigratable False, reason " \
           f"InterfaceNotLiveMigratable): {NOT_MASQUERADE}" in refused["msg"]
    assert f"VM {ns}/pinned on lab-node-2: evictionStrategy None" in refused["msg"]
    assert "mobile" not in refused["msg"]
    assert {u["vm"] for u in refused["unmovable"]} == {"bridged", "pinned"}
    assert audit.mutations(mark, user=ADMIN_USER) == []
    assert not is_cordoned(admin, "lab-node-2")
    assert set(vmi_nodes(admin, ns).values()) == {"lab-node-2"}


def test_unmovable_vms_are_reported_and_left_untouched(run_module, admin, audit, ns):
    unmovable_set(run_module, admin, ns)
    mark = audit.mark()
    planned = run_module(MODULE, {"nodes": ["lab-node-2"], "unmovable": "report"}, check=True)
    assert planned["changed"] is True and {m["vm"] for m in planned["nodes"][0]["migrated"]} == {"mobile-1", "mobile-2"}
    assert {r["vm"] for r in planned["nodes"][0]["remaining"]} == {"bridged", "pinned"}
    assert audit.mutations(mark, user=ADMIN_USER) == []

    before = {name: admin.get(object_path("kubevirt.io/v1", kind, name, ns))["metadata"]["resourceVersion"]
              for name in ("bridged", "pinned") for kind in ("virtualmachines",)}
    mark = audit.mark()
    done = run_module(MODULE, {"nodes": ["lab-node-2"], "unmovable": "report"})
    assert done.get("failed") is not True, done.get("msg")
    assert done["changed"] is True
    node = done["nodes"][0]
    assert {m["vm"] for m in node["migrated"]} == {"mobile-1", "mobile-2"}
    reasons = {u["vm"]: u for u in node["unmovable"]}
    assert set(reasons) == {"bridged", "pinned"}
    assert reasons["bridged"]["live_migratable"] is False
    assert reasons["bridged"]["live_migratable_reason"] == "InterfaceNotLiveMigratable"
    assert reasons["bridged"]["live_migratable_message"] == NOT_MASQUERADE
    assert reasons["pinned"]["eviction_strategy"] == "None"
    assert node["empty"] is False and {r["vm"] for r in node["remaining"]} == {"bridged", "pinned"}
    assert any("left on the nodes as asked" in w for w in done.get("warnings", []))
    placed = vmi_nodes(admin, ns)
    assert placed["bridged"] == placed["pinned"] == "lab-node-2"
    assert "lab-node-2" not in (placed["mobile-1"], placed["mobile-2"])
    # Untouched: nothing written to the unmovable VMs or their instances.
    touched = {e["objectRef"].get("name") for e in namespace_writes(audit, mark, ns)}
    assert not touched & {"bridged", "pinned"}, touched
    assert before == {name: admin.get(object_path("kubevirt.io/v1", "virtualmachines", name, ns))["metadata"][
        "resourceVersion"] for name in ("bridged", "pinned")}

    mark = audit.mark()
    again = run_module(MODULE, {"nodes": ["lab-node-2"], "unmovable": "report"})
    assert again["changed"] is False and {u["vm"] for u in again["nodes"][0]["unmovable"]} == {"bridged", "pinned"}
    assert audit.mutations(mark, user=ADMIN_USER) == []


def test_unmovable_vms_are_stopped_on_request_and_the_node_ends_empty(run_module, admin, audit, ns):
    vms_on(run_module, admin, ns, "lab-node-3", [{"name": "mobile"}, {"name": "pinned", "eviction_strategy": "None"}])
    done = run_module(MODULE, {"nodes": ["lab-node-3"], "unmovable": "stop"})
    assert done.get("failed") is not True, done.get("msg")
    node = done["nodes"][0]
    assert node["empty"] is True and [m["vm"] for m in node["migrated"]] == ["mobile"]
    assert [(s["vm"], s["how"]) for s in node["stopped"]] == [("pinned", "stopped through the VM's stop subresource")]
    assert "evictionStrategy None" in node["stopped"][0]["reason"]
    assert "pinned" not in vmi_nodes(admin, ns)
    vm = admin.get(object_path("kubevirt.io/v1", "virtualmachines", "pinned", ns))
    assert vm["status"]["printableStatus"] == "Stopped"
    mark = audit.mark()
    assert run_module(MODULE, {"nodes": ["lab-node-3"], "unmovable": "stop"})["changed"] is False
    assert audit.mutations(mark, user=ADMIN_USER) == []


def test_a_timeout_names_the_pending_vms_and_reports_what_was_written(run_module, admin, ns):
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "slow-1"}, {"name": "slow-2"}])
    late = run_module(MODULE, {"nodes": ["lab-node-1"], "wait_timeout": 0})
    assert late.get("failed") is True and late["changed"] is True
    assert late["msg"].startswith("timed out after 0s waiting for the nodes to be emptied; still migrating: ")
    assert f"VM {ns}/slow-1 on lab-node-1 (migration slow-1-migration-" in late["msg"] and "phase" in late["msg"]
    assert late["nodes"][0]["cordoned"] is True


BAD = [
    ("unknown-node", {"nodes": ["lab-node-9"]}, ["nodes: node 'lab-node-9' not found", "lab-node-1, lab-node-2"]),
    ("empty-list", {"nodes": []}, ["nodes: give at least one node name"]),
    ("bad-unmovable", {"nodes": ["lab-node-1"], "unmovable": "ignore"},
     ["value of unmovable must be one of: fail, report, stop, got: ignore"]),
    ("zero-concurrency", {"nodes": ["lab-node-1"], "concurrency": 0}, ["concurrency: 0 is out of range"]),
    ("negative-timeout", {"nodes": ["lab-node-1"], "wait_timeout": -5}, ["wait_timeout: -5 is out of range"]),
    ("duplicate-node", {"nodes": ["lab-node-1", "lab-node-1"]}, ["nodes[1]: 'lab-node-1' is named more than once"]),
    ("invalid-node-name", {"nodes": ["Lab_Node"]}, ["nodes[0]: 'Lab_Node' is not a valid node name"]),
    ("unmovable-with-uncordon", {"nodes": ["lab-node-1"], "state": "uncordoned", "unmovable": "stop"},
     ["unmovable: only applies to state=evacuated"]),
    ("bad-state", {"nodes": ["lab-node-1"], "state": "drained"}, ["value of state must be one of: evacuated, uncordoned"]),
]


@pytest.mark.parametrize("case, args, expected", BAD, ids=[case for case, _args, _expected in BAD])
def test_bad_input_fails_before_any_write(run_module, audit, case, args, expected):
    mark = audit.mark()
    result = run_module(MODULE, args)
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], result["msg"]
    assert result.get("changed") is not True
    assert audit.mutations(mark, user=ADMIN_USER) == []


def test_every_node_under_maintenance_leaves_nowhere_to_go(run_module, admin, audit, ns):
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "stuck"}])
    mark = audit.mark()
    refused = run_module(MODULE, {"nodes": list(NODES)})
    assert refused.get("failed") is True and refused["changed"] is False
    assert f"VM {ns}/stuck on lab-node-1: no schedulable node outside the nodes under maintenance" in refused["msg"]
    assert audit.mutations(mark, user=ADMIN_USER) == []


def test_a_migration_already_running_is_followed_and_its_failure_quoted(run_module, admin, audit, ns):
    """A VM whose migration is in flight is not migrated twice: the run follows that migration, and when KubeVirt
    fails it (here its target can never be scheduled) the error quotes KubeVirt's reason, with changed true."""
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "moving"}])
    # Nowhere to go, and KubeVirt gives up on the unschedulable target after 30 s.
    admin.create(object_path("kubevirt.io/v1", "virtualmachineinstancemigrations", namespace=ns), {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachineInstanceMigration",
        "metadata": {"name": "by-hand", "namespace": ns,
                     "annotations": {"kubevirt.io/migrationUnschedulablePodTimeoutSeconds": "30"}},
        "spec": {"vmiName": "moving", "addedNodeSelector": {"lab.palette.vmo/nowhere": "true"}}})
    mark = audit.mark()
    failed = run_module(MODULE, {"nodes": ["lab-node-1"]})
    assert failed.get("failed") is True and failed["changed"] is True
    assert f"VM {ns}/moving: migration by-hand failed: " in failed["msg"]
    assert "unschedulable" in failed["msg"]
    created = [e for e in namespace_writes(audit, mark, ns)
               if e["objectRef"].get("resource") == "virtualmachineinstancemigrations" and e["verb"] == "create"]
    assert created == []
    assert failed["nodes"][0]["cordoned"] is True and [r["vm"] for r in failed["nodes"][0]["remaining"]] == ["moving"]
