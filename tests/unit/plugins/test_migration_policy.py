"""kubevirt_migration_policy without a cluster: the items, the checks and the object built."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_policy as policy

TASK = {key: None for key in policy.POLICY_OPTIONS}


def requests(**params):
    return policy.policy_requests(dict(dict(TASK, policies=None), **params))


def test_items_take_the_task_level_options_as_defaults():
    found = requests(allow_auto_converge=True, policies=[{"name": "a"}, {"name": "b", "allow_auto_converge": False}])
    assert [(r["name"], r["allow_auto_converge"], r["state"]) for r in found] == [
        ("a", True, "present"), ("b", False, "present")]


def test_items_go_through_ansibles_argument_spec():
    with pytest.raises(ModuleFailure) as err:
        requests(policies=[{"name": "a", "bandwidth": "1Mi"}])
    assert "policies[0] (a): unsupported parameters: bandwidth" in str(err.value)


@pytest.mark.parametrize("request_, expected", [
    ({"name": None}, "MigrationPolicy ?: name: is required"),
    ({"name": "A_b"}, "MigrationPolicy A_b: name: 'A_b' is not a valid name"),
    ({"name": "p", "bandwidth_per_migration": "-1"}, "bandwidth_per_migration: '-1' must not be negative"),
    ({"name": "p", "bandwidth_per_migration": "1 Gi"}, "bandwidth_per_migration: '1 Gi' is not a Kubernetes quantity"),
    ({"name": "p", "completion_timeout_per_gib": -1}, "completion_timeout_per_gib: -1 must not be negative"),
    ({"name": "p", "namespace_selector": {"env": 1}}, "namespace_selector.env: 1 must be a string"),
    ({"name": "p", "vmi_selector": {"/x": "y"}}, "vmi_selector./x: '/x' has an invalid prefix"),
])
def test_each_problem_names_the_policy_and_the_option(request_, expected):
    errors = policy.policy_errors(dict(TASK, state="present", **request_), set())
    assert any(expected in error for error in errors), errors


def test_an_absent_policy_needs_only_its_name():
    assert policy.policy_errors(dict(TASK, name="p", state="absent", completion_timeout_per_gib=-1), set()) == []


def test_the_object_has_only_the_declared_fields():
    built = policy.build_policy(dict(TASK, name="p", allow_post_copy=False, bandwidth_per_migration="64Mi",
                                     vmi_selector={"tier": "web"}), "migrations.kubevirt.io/v1alpha1")
    assert built == {"apiVersion": "migrations.kubevirt.io/v1alpha1", "kind": "MigrationPolicy",
                     "metadata": {"name": "p", "labels": {"app.kubernetes.io/managed-by": "palette.vmo"}},
                     "spec": {"selectors": {"virtualMachineInstanceSelector": {"tier": "web"}},
                              "allowPostCopy": False, "bandwidthPerMigration": "64Mi"}}
