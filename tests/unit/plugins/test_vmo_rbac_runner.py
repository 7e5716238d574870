"""vmo_rbac's plan and writes against fake clients: exclusive pruning, roleRef replacement, Palette mode."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_bindings import (
    RbacInputError, managed_labels, parse_bindings)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_palette import rbacs_path, run_palette
from ansible_collections.palette.vmo.plugins.module_utils.vmo.rbac_runner import (
    execute, plan_bindings, written_result)

RBAC = "rbac.authorization.k8s.io/v1"


def live_binding(kind, namespace, name, role, managed=True):
    metadata = {"name": name, "labels": managed_labels(role) if managed else {"team": "ops"}}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": RBAC, "kind": kind, "metadata": metadata,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "old"}]}


def live(*objects):
    return {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}


def options(**overrides):
    return dict({"exclusive": False, "exclusive_scope": "cluster", "field_manager": "palette.vmo",
                 "concurrency": 2}, **overrides)


DECLARED = [{"role": "spectro-vm-user", "subjects": {"users": ["bob"]}, "namespaces": ["vms"]}]
CLUSTER = live(
    live_binding("RoleBinding", "vms", "vmo-spectro-vm-user", "spectro-vm-user"),
    live_binding("RoleBinding", "vms", "vmo-spectro-vm-viewer", "spectro-vm-viewer"),
    live_binding("RoleBinding", "other", "vmo-spectro-vm-viewer", "spectro-vm-viewer"),
    live_binding("ClusterRoleBinding", "", "vmo-spectro-vm-admin", "spectro-vm-admin"),
    live_binding("RoleBinding", "vms", "hand-made", "spectro-vm-admin", managed=False),
)


def actions(plans):
    return {plan.label: plan.action for plan in plans}


def test_without_exclusive_only_the_declared_bindings_are_planned():
    plans = plan_bindings(parse_bindings(DECLARED), CLUSTER, options())
    assert list(actions(plans)) == ["RoleBinding vms/vmo-spectro-vm-user"]
    assert plans[0].apply is not None and not plans[0].replace and not plans[0].delete


def test_exclusive_prunes_every_managed_binding_not_declared_and_never_a_hand_made_one():
    plans = plan_bindings(parse_bindings(DECLARED), CLUSTER, options(exclusive=True))
    deleted = sorted(plan.label for plan in plans if plan.action == "deleted")
    assert deleted == ["ClusterRoleBinding vmo-spectro-vm-admin", "RoleBinding other/vmo-spectro-vm-viewer",
                       "RoleBinding vms/vmo-spectro-vm-viewer"]
    assert "RoleBinding vms/hand-made" not in actions(plans)


def test_exclusive_in_the_namespaces_scope_prunes_only_rolebindings_in_the_declared_namespaces():
    plans = plan_bindings(parse_bindings(DECLARED), CLUSTER, options(exclusive=True, exclusive_scope="namespaces"))
    deleted = sorted(plan.label for plan in plans if plan.action == "deleted")
    assert deleted == ["RoleBinding vms/vmo-spectro-vm-viewer"]


def test_a_declared_name_taken_by_a_hand_made_binding_is_refused():
    declared = [dict(DECLARED[0], name="hand-made")]
    with pytest.raises(RbacInputError) as err:
        plan_bindings(parse_bindings(declared), CLUSTER, options())
    assert err.value.errors == ["bindings[0] (hand-made): name: RoleBinding vms/hand-made exists and is not managed "
                                "by palette.vmo (give the binding another name)"]


def test_a_changed_role_replaces_the_binding():
    declared = [dict(DECLARED[0], role="spectro-vm-viewer", name="vmo-spectro-vm-user")]
    [plan] = plan_bindings(parse_bindings(declared), CLUSTER, options())
    assert plan.replace and plan.action == "replaced" and plan.changed
    assert plan.apply.before is None, "the new binding is created, since a roleRef cannot change"
    assert plan.desired["roleRef"]["name"] == "spectro-vm-viewer"


class FakeKube:
    """Deletes and server-side applies by path; the paths in `refuse` fail."""

    def __init__(self, refuse=()):
        self.refuse, self.calls = set(refuse), []

    def _answer(self, verb, path, body=None):
        if path in self.refuse:
            raise RuntimeError("refused %s" % path)
        self.calls.append((verb, path))
        return body or {}

    def delete(self, path):
        return self._answer("delete", path)

    def apply(self, path, body, field_manager, force=False):
        return self._answer("apply", path, body)


def planned_for_writing(declared, cluster, **params):
    plans = plan_bindings(parse_bindings(declared), cluster, options(**params))
    for plan in plans:
        if plan.apply:
            plan.apply.after, plan.apply._action = plan.desired, "create" if plan.apply.before is None else "update"
    return plans


def test_a_replacement_deletes_before_it_creates_and_everything_written_is_marked():
    declared = [dict(DECLARED[0], role="spectro-vm-viewer", name="vmo-spectro-vm-user")]
    plans = planned_for_writing(declared, CLUSTER)
    client = FakeKube()
    execute(client, plans, options())
    path = "/apis/%s/namespaces/vms/rolebindings/vmo-spectro-vm-user" % RBAC
    assert client.calls == [("delete", path), ("apply", path)]
    assert written_result([], plans)["bindings"][0]["action"] == "replaced"


def test_a_failed_write_reports_changed_and_what_was_written_before_it():
    plans = planned_for_writing(DECLARED, CLUSTER, exclusive=True, exclusive_scope="namespaces")
    refused = "/apis/%s/namespaces/vms/rolebindings/vmo-spectro-vm-user" % RBAC
    with pytest.raises(ModuleFailure) as err:
        execute(FakeKube(refuse={refused}), plans, options())
    assert "RoleBinding vms/vmo-spectro-vm-user" in str(err.value)
    reported = written_result([], plans)
    assert reported["changed"] is True
    assert [(b["name"], b["action"]) for b in reported["bindings"]] == [("vmo-spectro-vm-viewer", "deleted")]
    assert written_result([], planned_for_writing(DECLARED, CLUSTER)) == {}, "nothing written, nothing claimed"


# -- Palette mode ----------------------------------------------------------------------------------------

class FakeModule:
    def __init__(self, check_mode=False, diff=False, **params):
        self.params = dict({"palette_cluster": "lab-cluster", "exclusive": False, "exclusive_scope": "cluster"},
                           **params)
        self.check_mode, self._diff = check_mode, diff


class FakePaletteRbac:
    def __init__(self, bindings):
        self.items = [{"spec": {"isSystem": True, "bindings": [
            {"type": "ClusterRoleBinding", "role": {"kind": "ClusterRole", "name": "cluster-admin"},
             "subjects": [{"type": "User", "name": "root"}]}]}}, {"spec": {"bindings": bindings}}]
        self.puts = []

    def cluster_uid(self, name):
        return "c1"

    def get(self, path):
        assert path == rbacs_path("c1")
        return {"items": self.items}

    def put(self, path, body):
        self.puts.append((path, body))


def palette_binding(namespace, role, user):
    return {"type": "RoleBinding", "namespace": namespace, "role": {"kind": "ClusterRole", "name": role},
            "subjects": [{"type": "User", "name": user}]}


def test_palette_mode_plans_in_check_mode_without_a_write_then_writes_one_put():
    client = FakePaletteRbac([palette_binding("vms", "spectro-vm-viewer", "erin"),
                              palette_binding("vms", "view", "frank")])
    declared = parse_bindings(DECLARED)
    planned = run_palette(FakeModule(check_mode=True, diff=True, exclusive=True), client, declared)
    assert planned["changed"] is True and client.puts == []
    assert [(b["role"], b["action"]) for b in planned["bindings"]] == [
        ("spectro-vm-user", "created"), ("spectro-vm-viewer", "deleted")]
    assert planned["diff"][0]["before_header"] == "Palette cluster lab-cluster RBAC"

    applied = run_palette(FakeModule(exclusive=True), client, declared)
    assert applied["changed"] is True and len(client.puts) == 1
    rbacs = client.puts[0][1]["rbacs"]
    assert rbacs[0]["spec"]["isSystem"] is True
    assert [b["role"]["name"] for b in rbacs[1]["spec"]["bindings"]] == ["spectro-vm-user", "view"]


def test_palette_mode_writes_nothing_when_the_declared_bindings_are_there():
    client = FakePaletteRbac([palette_binding("vms", "spectro-vm-user", "bob")])
    result = run_palette(FakeModule(), client, parse_bindings(DECLARED))
    assert result["changed"] is False and client.puts == []
    assert result["bindings"][0]["action"] == "unchanged"
