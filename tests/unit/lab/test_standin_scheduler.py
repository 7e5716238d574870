"""The lab scheduler's choice of nodes for virt-launcher and migration target pods (pure logic)."""

from types import SimpleNamespace

from tests.lab.kubevirt.controller import VirtController


def node(name, **labels):
    return {"metadata": {"name": name, "labels": {"kubevirt.io/schedulable": "true", **labels}}, "spec": {}}


def scheduler(*nodes):
    controller = VirtController.__new__(VirtController)  # no informers or apiserver: only the node filter
    controller.nodes = SimpleNamespace(list=lambda: list(nodes))
    controller.operators = SimpleNamespace(use_emulation=lambda: True)
    return controller


def names(result):
    return [n["metadata"]["name"] for n in result[0]]


def test_the_vmis_node_selector_wins_over_a_migrations_added_selector_on_a_shared_key():
    lab = scheduler(node("a", zone="east"), node("b", zone="west"), node("c", zone="west", disk="ssd"))
    vmi = {"spec": {"nodeSelector": {"zone": "west"}}}
    assert names(lab.schedulable_nodes(vmi, {"zone": "east"})) == ["b", "c"]
    assert names(lab.schedulable_nodes(vmi, {"disk": "ssd"})) == ["c"]


def test_cordoned_nodes_and_nodes_outside_the_selector_are_named_in_the_fit_error():
    cordoned = node("a")
    cordoned["spec"]["unschedulable"] = True
    nodes, message = scheduler(cordoned, node("b", zone="west")).schedulable_nodes({"spec": {"nodeSelector": {"zone": "east"}}})
    assert nodes == []
    assert message == "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable."
