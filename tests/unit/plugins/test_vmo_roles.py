"""VMO ClusterRoles: the rules grant exactly what the documented operation table says, for every role."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import (
    VMO_OPERATIONS, VMO_ROLE_NAMES, vmo_cluster_roles, vmo_role_rules)
from tests.vmo_role_table import expected_operations, matrix_lines, rules_allow


@pytest.mark.parametrize("role", VMO_ROLE_NAMES)
def test_rules_agree_with_the_operation_table(role):
    rules = vmo_role_rules(role)
    wrong = [(op.name, allowed) for op, allowed in expected_operations(role)
             if rules_allow(rules, op.verb, op.group, op.resource, op.subresource) != allowed]
    assert wrong == []


def test_each_role_grants_no_more_than_the_role_above_it():
    ordered = [vmo_role_rules(role) for role in VMO_ROLE_NAMES]
    for upper, lower in zip(ordered, ordered[1:]):
        for rule in lower:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        assert rules_allow(upper, verb, group, resource), (group, resource, verb)


def test_cluster_roles_are_four_valid_objects_with_optional_labels():
    roles = vmo_cluster_roles(labels={"a": "b"})
    assert [r["metadata"]["name"] for r in roles] == list(VMO_ROLE_NAMES)
    assert all(r["apiVersion"] == "rbac.authorization.k8s.io/v1" and r["kind"] == "ClusterRole" for r in roles)
    assert all(r["metadata"]["labels"] == {"a": "b"} for r in roles)
    assert "labels" not in vmo_cluster_roles()[0]["metadata"]
    roles[0]["rules"].clear()
    assert vmo_cluster_roles()[0]["rules"], "each call returns fresh rules"


def test_viewer_cannot_write_anything():
    for rule in vmo_role_rules("spectro-vm-viewer"):
        assert set(rule["verbs"]) <= {"get", "list", "watch"}, rule


def test_every_operation_is_allowed_to_admin_and_the_table_is_not_trivial():
    assert all("spectro-vm-admin" in roles for _op, roles in VMO_OPERATIONS)
    for role in VMO_ROLE_NAMES[1:]:
        assert any(not allowed for _op, allowed in expected_operations(role))


def test_the_module_documentation_prints_the_whole_table():
    import yaml

    from ansible_collections.palette.vmo.plugins.modules import vmo_rbac

    description = yaml.safe_load(vmo_rbac.DOCUMENTATION)["description"]
    assert [line for line in matrix_lines() if line not in description] == []
    assert len(matrix_lines()) == len(VMO_OPERATIONS)
