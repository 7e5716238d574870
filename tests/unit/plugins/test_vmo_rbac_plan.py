"""vmo_rbac's pure logic: declared bindings, their objects and names, the Palette merge, verification scopes."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.vmo import rbac_palette as palette
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_bindings import (
    RbacInputError, binding_object, parse_bindings, role_label_value)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_verify import checks_of, scopes_of


def item(**overrides):
    base = {"role": "spectro-vm-user", "subjects": {"users": ["bob"]}, "namespaces": ["vms"]}
    base.update(overrides)
    return base


def test_one_rolebinding_per_namespace_with_deterministic_names_and_labels():
    [binding] = parse_bindings([item(namespaces=["a", "b"], subjects={"users": ["bob"], "groups": ["ops"]})])
    objects = [binding_object(binding, key) for key in binding.keys()]
    assert [(o["kind"], o["metadata"]["namespace"], o["metadata"]["name"]) for o in objects] == [
        ("RoleBinding", "a", "vmo-spectro-vm-user"), ("RoleBinding", "b", "vmo-spectro-vm-user")]
    assert objects[0]["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "palette.vmo",
                                                "palette.vmo/role": "spectro-vm-user"}
    assert [s["name"] for s in objects[0]["subjects"]] == ["bob", "ops"]


def test_a_subject_given_twice_in_one_binding_is_refused():
    with pytest.raises(RbacInputError) as err:
        parse_bindings([item(subjects={"users": ["bob", "alice", "bob"]})])
    assert err.value.errors == ["bindings[0] (vmo-spectro-vm-user): subjects.users[2]: 'bob' is given more than once"]


def test_items_get_ansible_type_conversion_and_messages_naming_the_item():
    [binding] = parse_bindings([item(cluster_wide="yes", namespaces=None, subjects={"users": "bob"})])
    assert binding.cluster_wide is True and binding.raw_subjects["users"] == ["bob"]
    with pytest.raises(RbacInputError) as err:
        parse_bindings(["x", item(state="gone"), item(colour="blue")])
    assert err.value.errors[0] == "bindings[0] (?): must be a dict of the item's options, not str"
    assert err.value.errors[1].startswith("bindings[1] (?): value of state must be one of: present, absent, got: gone")
    assert err.value.errors[2].startswith("bindings[2] (?): unsupported parameters: colour.")


def test_every_problem_of_every_item_is_reported_at_once():
    with pytest.raises(RbacInputError) as err:
        parse_bindings([item(subjects={}), item(cluster_wide=True), item(role="")])
    assert len(err.value.errors) == 3


def test_role_label_value_is_a_valid_label():
    assert role_label_value("system:aggregate-to-view") == "system-aggregate-to-view"
    assert len(role_label_value("x" * 100)) == 63


def test_palette_merge_keeps_others_replaces_declared_and_exclusive_drops_only_vmo_role_bindings():
    live = {"items": [
        {"spec": {"isSystem": True, "bindings": [{"type": "ClusterRoleBinding",
                                                  "role": {"kind": "ClusterRole", "name": "cluster-admin"},
                                                  "subjects": [{"type": "User", "name": "root"}]}]}},
        {"spec": {"bindings": [
            {"type": "RoleBinding", "namespace": "vms", "role": {"kind": "ClusterRole", "name": "spectro-vm-user"},
             "subjects": [{"type": "User", "name": "carol"}]},
            {"type": "RoleBinding", "namespace": "other", "role": {"kind": "ClusterRole", "name": "spectro-vm-viewer"},
             "subjects": [{"type": "User", "name": "erin"}]},
            {"type": "RoleBinding", "namespace": "vms", "role": {"kind": "ClusterRole", "name": "view"},
             "subjects": [{"type": "Group", "name": "g"}]}]}}]}
    system, before = palette.live_bindings(live["items"])
    declared = parse_bindings([item(subjects={"users": ["dave"], "service_accounts": ["ci/bot"]})])
    after = palette.desired_bindings(before, declared)
    assert after[("RoleBinding", "vms", "ClusterRole", "spectro-vm-user")] == {
        ("User", "dave", ""), ("ServiceAccount", "bot", "ci")}
    assert ("RoleBinding", "vms", "ClusterRole", "view") in after
    # Exclusive prunes undeclared bindings to VMO roles only; a binding to another role made elsewhere stays.
    exclusive = palette.desired_bindings(before, declared, palette.prunable(declared, "cluster"))
    assert sorted(exclusive) == [("RoleBinding", "vms", "ClusterRole", "spectro-vm-user"),
                                 ("RoleBinding", "vms", "ClusterRole", "view")]
    # With the namespaces scope, VMO-role bindings in namespaces the task does not name stay too.
    in_namespaces = palette.desired_bindings(before, declared, palette.prunable(declared, "namespaces"))
    assert ("RoleBinding", "other", "ClusterRole", "spectro-vm-viewer") in in_namespaces
    body = palette.update_body(system, exclusive)
    assert body["rbacs"][0]["spec"]["isSystem"] is True, "system entries are sent back as they were"
    assert body["rbacs"][1]["spec"]["bindings"][0]["subjects"] == [
        {"type": "ServiceAccount", "name": "bot", "namespace": "ci"}, {"type": "User", "name": "dave"}]
    assert palette.desired_bindings(after, declared) == after, "the merge is idempotent"


def test_verify_scopes_combine_namespace_and_cluster_wide_roles():
    bindings = parse_bindings([
        item(subjects={"users": ["bob"]}, role="spectro-vm-viewer", cluster_wide=True, namespaces=None),
        item(subjects={"users": ["bob"]}, role="spectro-vm-user"),
        item(subjects={"users": ["bob"]}, role="edit", namespaces=["other"])])
    scopes = {scope.namespace: scope for scope in scopes_of(bindings)}
    assert set(scopes) == {"", "vms", "other"}
    vms = dict((op.name, expected) for op, expected in checks_of(scopes["vms"]))
    assert vms["start a VM"] is True and vms["create a VM"] is False
    assert "list namespaces" not in vms, "a cluster-scoped operation is asked in the cluster scope only"
    cluster = dict((op.name, expected) for op, expected in checks_of(scopes[""]))
    assert cluster["list namespaces"] is True and cluster["start a VM"] is False
    other = dict((op.name, expected) for op, expected in checks_of(scopes["other"]))
    assert other and all(other.values()), "with a role outside the table only must-allow operations are asked"
