"""Bad input to vmo_rbac: a clear error naming the binding item, the field and the reason, and not one write."""

import pytest

from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.vmo_rbac"


def binding(ns, **overrides):
    item = {"role": "spectro-vm-user", "subjects": {"users": ["bob"]}, "namespaces": [ns]}
    item.update(overrides)
    return {key: value for key, value in item.items() if value is not None}


# (id, task options given the test namespace, substrings the error must contain)
CASES = [
    ("unknown-role", lambda ns: {"bindings": [binding(ns, role="no-such-role")]},
     ["bindings[0] (vmo-no-such-role): role: ClusterRole no-such-role does not exist"]),
    ("empty-subjects", lambda ns: {"bindings": [binding(ns, subjects={})]},
     ["bindings[0] (vmo-spectro-vm-user): subjects: give at least one of users, groups or service_accounts"]),
    ("empty-subject-lists", lambda ns: {"bindings": [binding(ns, subjects={"users": [], "groups": []})]},
     ["subjects: give at least one of users, groups or service_accounts"]),
    ("bad-subject-kind", lambda ns: {"bindings": [binding(ns, subjects={"robots": ["r2d2"]})]},
     ["bindings", "subjects", "robots"]),
    ("blank-user", lambda ns: {"bindings": [binding(ns, subjects={"users": [" "]})]},
     ["bindings[0] (vmo-spectro-vm-user): subjects.users[0]: must be a non-empty name"]),
    ("namespace-does-not-exist", lambda ns: {"bindings": [binding(ns, namespaces=[ns, "no-such-ns-rbac"])]},
     ["bindings[0] (vmo-spectro-vm-user): namespaces[1]: namespace no-such-ns-rbac does not exist"]),
    ("namespaces-and-cluster-wide", lambda ns: {"bindings": [binding(ns, cluster_wide=True)]},
     ["bindings[0] (vmo-spectro-vm-user): give namespaces or cluster_wide: true, not both"]),
    ("no-scope", lambda ns: {"bindings": [binding(ns, namespaces=None)]},
     ["bindings[0] (vmo-spectro-vm-user): namespaces: give the namespaces to bind in, or cluster_wide: true"]),
    ("service-account-without-namespace", lambda ns: {"bindings": [binding(
        ns, subjects={"service_accounts": ["deployer"]})]},
     ["subjects.service_accounts[0]: 'deployer' is not <namespace>/<name> of a service account"]),
    ("service-account-bad-namespace", lambda ns: {"bindings": [binding(
        ns, subjects={"service_accounts": ["Bad_NS/deployer"]})]},
     ["subjects.service_accounts[0]: 'Bad_NS/deployer' is not <namespace>/<name>"]),
    ("duplicate-names", lambda ns: {"bindings": [binding(ns), binding(ns, subjects={"groups": ["ops"]})]},
     ["bindings[1] (vmo-spectro-vm-user): name: RoleBinding vmo-spectro-vm-user in namespace %s is also declared "
      "by bindings[0]"]),
    ("bad-namespace-name", lambda ns: {"bindings": [binding(ns, namespaces=["Not A Namespace"])]},
     ["namespaces[0]: 'Not A Namespace' is not a namespace name"]),
    ("bad-binding-name", lambda ns: {"bindings": [binding(ns, name="a/b")]},
     ["bindings[0] (a/b): name: 'a/b' is not a valid RBAC object name"]),
    ("role-removed-in-same-task", lambda ns: {"roles": "absent", "bindings": [binding(ns)]},
     ["bindings[0] (vmo-spectro-vm-user): role: spectro-vm-user is removed by roles: absent in the same task"]),
    ("unknown-option", lambda ns: {"bindings": [binding(ns)], "exclusve": True},
     ["Unsupported parameters", "exclusve"]),
    ("bad-state", lambda ns: {"bindings": [binding(ns, state="gone")]},
     ["bindings", "state", "gone"]),
    ("missing-role", lambda ns: {"bindings": [{"subjects": {"users": ["bob"]}, "namespaces": [ns]}]},
     ["missing required arguments: role", "bindings"]),
    ("binding-not-a-dict", lambda ns: {"bindings": ["x"]},
     ["Elements value for option 'bindings' is of type str and we were unable to convert to dict"]),
    ("subjects-not-a-dict", lambda ns: {"bindings": [binding(ns, subjects=["bob"])]},
     ["bindings[0] (?): argument 'subjects' is of type list and we were unable to convert to dict"]),
    ("duplicate-user-in-a-binding", lambda ns: {"bindings": [binding(ns, subjects={"users": ["bob", "bob"]})]},
     ["bindings[0] (vmo-spectro-vm-user): subjects.users[1]: 'bob' is given more than once"]),
    ("zero-concurrency", lambda ns: {"bindings": [binding(ns)], "concurrency": 0},
     ["concurrency: 0 is out of range, give at least 1"]),
]


RBAC_RESOURCES = ("rolebindings", "clusterrolebindings", "clusterroles")


def _writes(audit, mark, namespace=None):
    """RBAC writes since the mark: cluster-scoped ones, and namespaced ones in the test's namespace (other tests
    write to the shared lab meanwhile)."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") in RBAC_RESOURCES
            and (e.get("objectRef") or {}).get("namespace") in (None, "", namespace)]


@pytest.mark.parametrize("case_id,make_args,expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_without_writing(run_module, audit, vmo_cluster_roles, ns, case_id, make_args,
                                                 expected):
    mark = audit.mark()
    # A good binding in the same task proves the whole batch is refused, not just the bad item.
    args = make_args(ns)
    args["bindings"] = args.get("bindings", []) + [binding(ns, role="spectro-vm-viewer", name="good-one")]
    result = run_module(MODULE, args)
    assert result.get("failed"), result
    message = result["msg"]
    for part in expected:
        assert (part % ns if "%s" in part else part) in message, (part, message)
    if not message.startswith(("Unsupported", "Elements value")) and "missing required" not in message \
            and "value of state" not in message:
        assert message.startswith("invalid input, nothing was changed: "), message
    assert _writes(audit, mark, ns) == []


def test_binding_name_taken_by_an_unmanaged_binding(run_module, audit, admin, vmo_cluster_roles, ns):
    from tests.lab.kube import object_path

    admin.create(object_path("rbac.authorization.k8s.io/v1", "rolebindings", namespace=ns), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "vmo-spectro-vm-user"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]})
    mark = audit.mark()
    result = run_module(MODULE, {"bindings": [binding(ns)]})
    assert result.get("failed")
    assert (f"bindings[0] (vmo-spectro-vm-user): name: RoleBinding {ns}/vmo-spectro-vm-user exists and is not "
            "managed by palette.vmo") in result["msg"]
    assert _writes(audit, mark, ns) == []
    live = admin.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", "vmo-spectro-vm-user", ns))
    assert live["subjects"][0]["name"] == "carol"


def test_vmo_role_missing_without_roles_present(run_module, audit, admin, ns):
    """On a cluster without the VMO roles the error says how to get them."""
    from tests.lab.kube import object_path

    missing = "spectro-vm-viewer"
    saved = admin.get_or_none(object_path("rbac.authorization.k8s.io/v1", "clusterroles", missing))
    if saved:
        admin.delete(object_path("rbac.authorization.k8s.io/v1", "clusterroles", missing))
    try:
        mark = audit.mark()
        result = run_module(MODULE, {"bindings": [binding(ns, role=missing)]})
        assert result.get("failed")
        assert (f"role: ClusterRole {missing} does not exist (install the VMO pack, or set roles: present)"
                in result["msg"])
        assert _writes(audit, mark, ns) == []
    finally:
        if saved:
            saved["metadata"] = {k: v for k, v in saved["metadata"].items()
                                 if k in ("name", "labels", "annotations")}
            admin.create(object_path("rbac.authorization.k8s.io/v1", "clusterroles"), saved)
