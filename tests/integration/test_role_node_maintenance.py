"""The node_maintenance role through playbooks/node_maintenance.yml against the lab: nodes walked one at a time
(the order read from the apiserver's audit log and the hook's own record), and a walk that stops at the first node
that cannot be emptied, before touching it or the next one."""

import json

import pytest

from tests.lab.bootstrap import NODES
from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

from .test_kubevirt_node_maintenance import set_cordoned, vmi_nodes, vms_on

PLAYBOOK = "playbooks/node_maintenance.yml"

HOOK = """---
- name: Read the VMs while the node is in maintenance
  palette.vmo.kubevirt_vm_info:
    namespace: "{{ hook_namespace }}"
  register: hook_vms

- name: The node holds none of them
  ansible.builtin.assert:
    that:
      - hook_vms.vms | selectattr('node', 'equalto', node_maintenance_node) | list | length == 0
      - node_maintenance_evacuation.nodes[0].empty

- name: Record the node
  ansible.builtin.lineinfile:
    path: "{{ hook_record }}"
    line: "{{ node_maintenance_node }} {{ node_maintenance_evacuation.nodes[0].migrated | length }}"
    create: true
    mode: "0600"
"""


@pytest.fixture(autouse=True)
def nodes_uncordoned(admin):
    for node in NODES:
        set_cordoned(admin, node, False)
    yield
    for node in NODES:
        set_cordoned(admin, node, False)


def run_role(ansible_playbook, tmp_path, ns, nodes, **extra):
    hook = tmp_path / "hook.yml"
    hook.write_text(HOOK)
    variables = dict({"node_maintenance_nodes": nodes, "node_maintenance_hook": str(hook),
                      "hook_namespace": ns, "hook_record": str(tmp_path / "record.txt"), "vmo_site_cluster": ""},
                     **extra)
    return ansible_playbook(PLAYBOOK, "-i", "inventories/lab", "-e", json.dumps(variables))


def walk(audit, mark, ns):
    """The run's writes in order: ('node', name) for a cordon or an uncordon, ('migrate', migration name) for a
    migration created in the test's namespace."""
    steps = []
    for event in audit.mutations(mark, user=ADMIN_USER):
        ref = event["objectRef"]
        if ref.get("resource") == "nodes" and event["verb"] == "patch":
            steps.append(("node", ref["name"]))
        elif ref.get("resource") == "virtualmachineinstancemigrations" and ref.get("namespace") == ns \
                and event["verb"] == "create":
            steps.append(("migrate", ref.get("name")))
    return steps


def test_the_role_walks_two_nodes_one_at_a_time(ansible_playbook, run_module, admin, audit, ns, tmp_path):
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "one-a"}, {"name": "one-b"}])
    vms_on(run_module, admin, ns, "lab-node-2", [{"name": "two-a"}, {"name": "two-b"}])
    mark = audit.mark()
    run = run_role(ansible_playbook, tmp_path, ns, ["lab-node-1", "lab-node-2"])
    assert run.rc == 0, run
    assert run.recap["localhost"]["failed"] == 0

    steps = walk(audit, mark, ns)
    nodes = [index for index, (kind, _name) in enumerate(steps) if kind == "node"]
    assert [steps[i][1] for i in nodes] == ["lab-node-1", "lab-node-1", "lab-node-2", "lab-node-2"], steps
    # Node 1 cordoned, its VMs migrated, node 1 uncordoned; only then node 2 cordoned, its VMs (node 1's too, if
    # they went there) migrated, node 2 uncordoned.
    first = sorted(name.split("-migration-")[0] for _kind, name in steps[nodes[0] + 1:nodes[1]])
    second = sorted(name.split("-migration-")[0] for _kind, name in steps[nodes[2] + 1:nodes[3]])
    assert nodes[1] + 1 == nodes[2] and nodes[3] == len(steps) - 1, steps
    assert first == ["one-a", "one-b"]
    assert {"two-a", "two-b"} <= set(second) <= {"one-a", "one-b", "two-a", "two-b"}

    # The hook ran on each node while it was empty, in the order of the list.
    record = (tmp_path / "record.txt").read_text().splitlines()
    assert [line.split()[0] for line in record] == ["lab-node-1", "lab-node-2"]
    assert int(record[0].split()[1]) == 2 and int(record[1].split()[1]) == len(second)
    assert not any(admin.get(object_path("v1", "nodes", n)).get("spec", {}).get("unschedulable")
                   for n in ("lab-node-1", "lab-node-2"))
    assert "lab-node-2" not in vmi_nodes(admin, ns).values()


def test_the_walk_stops_at_the_first_node_that_cannot_be_emptied(ansible_playbook, run_module, admin, audit, ns,
                                                                 tmp_path):
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "mobile"}, {"name": "pinned", "eviction_strategy": "None"}])
    vms_on(run_module, admin, ns, "lab-node-2", [{"name": "other"}])
    mark = audit.mark()
    run = run_role(ansible_playbook, tmp_path, ns, ["lab-node-1", "lab-node-2"])
    assert run.rc != 0 and run.recap["localhost"]["failed"] == 1, run
    assert f"VM {ns}/pinned on lab-node-1: evictionStrategy None" in run.stdout
    # Refused before any write: neither node cordoned, no VM moved, no hook.
    assert walk(audit, mark, ns) == []
    assert vmi_nodes(admin, ns) == {"mobile": "lab-node-1", "pinned": "lab-node-1", "other": "lab-node-2"}
    assert not (tmp_path / "record.txt").exists()


def test_a_node_left_holding_vms_stops_the_walk_after_it(ansible_playbook, run_module, admin, audit, ns, tmp_path):
    vms_on(run_module, admin, ns, "lab-node-1", [{"name": "mobile"}, {"name": "pinned", "eviction_strategy": "None"}])
    mark = audit.mark()
    run = run_role(ansible_playbook, tmp_path, ns, ["lab-node-1", "lab-node-2"], node_maintenance_unmovable="report")
    assert run.rc != 0 and run.recap["localhost"]["failed"] == 1, run
    assert f"node lab-node-1 still holds {ns}/pinned" in run.stdout
    steps = walk(audit, mark, ns)
    # Node 1 cordoned and its movable VM migrated; it stays cordoned, node 2 is not touched, the hook never ran.
    assert [kind for kind, _name in steps] == ["node", "migrate"] and steps[0] == ("node", "lab-node-1")
    assert admin.get(object_path("v1", "nodes", "lab-node-1"))["spec"].get("unschedulable") is True
    assert vmi_nodes(admin, ns)["pinned"] == "lab-node-1"
    assert not (tmp_path / "record.txt").exists()
