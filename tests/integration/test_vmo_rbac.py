"""vmo_rbac against the real apiserver: plans, idempotence, exact check mode, diffs, exclusive prune, the VMO
ClusterRoles, and SubjectAccessReview verification."""

import uuid

import pytest

from tests.lab.kube import KubeError, object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.vmo_rbac"
RBAC = "rbac.authorization.k8s.io/v1"


def rolebinding(admin, ns, name):
    return admin.get_or_none(object_path(RBAC, "rolebindings", name, ns))


def writes(audit, mark):
    return [e for e in audit.mutations(mark, user=ADMIN_USER) if "subjectaccessreviews" not in e["requestURI"]]


def unmanaged_binding(admin, ns, name, role="view", user="carol"):
    admin.create(object_path(RBAC, "rolebindings", namespace=ns), {
        "apiVersion": RBAC, "kind": "RoleBinding", "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]})


@pytest.fixture
def other_ns(admin):
    name = f"rbac-other-{uuid.uuid4().hex[:5]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


def test_check_mode_plans_exactly_then_apply_then_nothing_to_do(run_module, audit, admin, vmo_cluster_roles, ns):
    args = {"bindings": [
        {"role": "spectro-vm-power-user", "subjects": {"users": ["bob"], "groups": ["vm-ops"],
                                                       "service_accounts": [f"{ns}/deployer"]}, "namespaces": [ns]},
        {"role": "spectro-vm-viewer", "subjects": {"groups": ["auditors"]}, "namespaces": [ns]}]}
    mark = audit.mark()
    planned = run_module(MODULE, args, check=True, diff=True)
    assert planned["changed"] is True and not planned.get("failed")
    assert [b["action"] for b in planned["bindings"]] == ["created", "created"]
    assert writes(audit, mark) == []
    assert rolebinding(admin, ns, "vmo-spectro-vm-power-user") is None
    diff = planned["diff"][0]
    assert diff["before"] == {} and diff["after"]["roleRef"]["name"] == "spectro-vm-power-user"

    applied = run_module(MODULE, args, diff=True)
    assert applied["changed"] is True
    live = rolebinding(admin, ns, "vmo-spectro-vm-power-user")
    assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo"
    assert live["metadata"]["labels"]["palette.vmo/role"] == "spectro-vm-power-user"
    assert live["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "bob"},
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "vm-ops"},
        {"kind": "ServiceAccount", "name": "deployer", "namespace": ns}]

    mark = audit.mark()
    again = run_module(MODULE, args)
    assert again["changed"] is False and [b["action"] for b in again["bindings"]] == ["unchanged", "unchanged"]
    assert run_module(MODULE, args, check=True)["changed"] is False
    assert writes(audit, mark) == []


def test_changed_subjects_update_and_a_changed_role_replaces(run_module, audit, admin, vmo_cluster_roles, ns):
    base = {"role": "spectro-vm-user", "subjects": {"users": ["carol"]}, "namespaces": [ns], "name": "carol-access"}
    run_module(MODULE, {"bindings": [base]})
    more = dict(base, subjects={"users": ["carol", "dave"]})
    mark = audit.mark()
    planned = run_module(MODULE, {"bindings": [more]}, check=True, diff=True)
    assert planned["changed"] and planned["bindings"][0]["action"] == "updated" and writes(audit, mark) == []
    assert [s["name"] for s in planned["diff"][0]["after"]["subjects"]] == ["carol", "dave"]
    assert run_module(MODULE, {"bindings": [more]})["bindings"][0]["action"] == "updated"
    assert [s["name"] for s in rolebinding(admin, ns, "carol-access")["subjects"]] == ["carol", "dave"]

    promoted = dict(more, role="spectro-vm-power-user")
    mark = audit.mark()
    assert run_module(MODULE, {"bindings": [promoted]}, check=True)["bindings"][0]["action"] == "replaced"
    assert writes(audit, mark) == []
    result = run_module(MODULE, {"bindings": [promoted]})
    assert result["bindings"][0]["action"] == "replaced"
    assert rolebinding(admin, ns, "carol-access")["roleRef"]["name"] == "spectro-vm-power-user"
    assert run_module(MODULE, {"bindings": [promoted]})["changed"] is False


def test_many_bindings_in_one_task(run_module, admin, vmo_cluster_roles, ns, other_ns):
    bindings = [{"role": role, "subjects": {"groups": [f"team-{i}"]}, "namespaces": [ns, other_ns],
                 "name": f"team-{i}"}
                for i, role in enumerate(["spectro-vm-admin", "spectro-vm-power-user", "spectro-vm-user",
                                          "spectro-vm-viewer"] * 10)]
    result = run_module(MODULE, {"bindings": bindings, "concurrency": 16})
    assert not result.get("failed"), result.get("msg")
    assert len(result["bindings"]) == 80 and {b["action"] for b in result["bindings"]} == {"created"}
    items = admin.get(object_path(RBAC, "rolebindings", namespace=other_ns),
                      labelSelector="app.kubernetes.io/managed-by=palette.vmo")["items"]
    assert len(items) == 40
    assert run_module(MODULE, {"bindings": bindings})["changed"] is False


def test_exclusive_prunes_only_managed_undeclared_bindings(run_module, audit, admin, vmo_cluster_roles, ns):
    keep = {"role": "spectro-vm-user", "subjects": {"users": ["carol"]}, "namespaces": [ns]}
    extra = {"role": "spectro-vm-viewer", "subjects": {"users": ["dave"]}, "namespaces": [ns]}
    run_module(MODULE, {"bindings": [keep, extra]})
    unmanaged_binding(admin, ns, "hand-made")

    args = {"bindings": [keep], "exclusive": True, "exclusive_scope": "namespaces"}
    mark = audit.mark()
    planned = run_module(MODULE, args, check=True)
    assert [(b["name"], b["action"]) for b in planned["bindings"]] == [
        ("vmo-spectro-vm-user", "unchanged"), ("vmo-spectro-vm-viewer", "deleted")]
    assert writes(audit, mark) == [] and rolebinding(admin, ns, "vmo-spectro-vm-viewer") is not None

    result = run_module(MODULE, args)
    assert result["changed"] is True
    assert rolebinding(admin, ns, "vmo-spectro-vm-viewer") is None
    assert rolebinding(admin, ns, "vmo-spectro-vm-user") is not None
    assert rolebinding(admin, ns, "hand-made") is not None, "an unmanaged binding is never pruned"
    assert run_module(MODULE, args)["changed"] is False


def test_exclusive_cluster_scope_reaches_other_namespaces(run_module, audit, admin, vmo_cluster_roles, ns, other_ns):
    run_module(MODULE, {"bindings": [{"role": "spectro-vm-viewer", "subjects": {"users": ["dave"]},
                                      "namespaces": [other_ns]}]})
    args = {"bindings": [{"role": "spectro-vm-user", "subjects": {"users": ["carol"]}, "namespaces": [ns]}],
            "exclusive": True}
    mark = audit.mark()
    planned = run_module(MODULE, args, check=True)
    deleted = {(b["namespace"], b["name"]) for b in planned["bindings"] if b["action"] == "deleted"}
    assert (other_ns, "vmo-spectro-vm-viewer") in deleted
    assert writes(audit, mark) == []
    narrow = run_module(MODULE, dict(args, exclusive_scope="namespaces"), check=True)
    assert all(b["namespace"] == ns for b in narrow["bindings"])


def test_state_absent_removes_a_managed_binding(run_module, admin, vmo_cluster_roles, ns):
    item = {"role": "spectro-vm-viewer", "subjects": {"users": ["dave"]}, "namespaces": [ns]}
    run_module(MODULE, {"bindings": [item]})
    gone = run_module(MODULE, {"bindings": [dict(item, state="absent")]})
    assert gone["changed"] and gone["bindings"][0]["action"] == "deleted"
    assert rolebinding(admin, ns, "vmo-spectro-vm-viewer") is None
    assert run_module(MODULE, {"bindings": [dict(item, state="absent")]})["changed"] is False


def test_cluster_wide_binding(run_module, admin, vmo_cluster_roles):
    name = f"vmo-test-{uuid.uuid4().hex[:5]}"
    item = {"role": "spectro-vm-viewer", "subjects": {"groups": ["auditors"]}, "cluster_wide": True, "name": name}
    try:
        result = run_module(MODULE, {"bindings": [item]})
        assert result["bindings"][0]["kind"] == "ClusterRoleBinding" and result["bindings"][0]["namespace"] is None
        live = admin.get(object_path(RBAC, "clusterrolebindings", name))
        assert live["roleRef"]["name"] == "spectro-vm-viewer"
        assert run_module(MODULE, {"bindings": [item]})["changed"] is False
    finally:
        admin.delete(object_path(RBAC, "clusterrolebindings", name))


def test_roles_present_leaves_foreign_roles_alone_unless_forced(run_module, audit, admin, vmo_cluster_roles):
    path = object_path(RBAC, "clusterroles", "spectro-vm-viewer")
    assert run_module(MODULE, {"roles": "present"})["changed"] is False, "the fixture made them as the module does"
    # The VMO pack's roles, as Helm installs them: labelled by Helm, with rules of their own.
    admin.merge_patch(path, {"metadata": {"labels": {"app.kubernetes.io/managed-by": "Helm"}}})
    admin.merge_patch(path, {"rules": [{"apiGroups": ["kubevirt.io"], "resources": ["virtualmachines"],
                                        "verbs": ["get"]}]})
    try:
        mark = audit.mark()
        result = run_module(MODULE, {"roles": "present"})
        viewer = next(r for r in result["roles"] if r["name"] == "spectro-vm-viewer")
        assert viewer["action"] == "left_alone" and "managed-by Helm" in viewer["reason"]
        assert result["changed"] is False and writes(audit, mark) == []
        assert len(admin.get(path)["rules"]) == 1

        planned = run_module(MODULE, {"roles": "present", "force_roles": True}, check=True, diff=True)
        assert planned["changed"] and writes(audit, mark) == []
        forced = run_module(MODULE, {"roles": "present", "force_roles": True})
        assert next(r for r in forced["roles"] if r["name"] == "spectro-vm-viewer")["action"] == "updated"
        live = admin.get(path)
        assert live["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo" and len(live["rules"]) > 1
    finally:
        admin.delete(path)
        run_module(MODULE, {"roles": "present"})
    assert run_module(MODULE, {"roles": "present"})["changed"] is False


def test_roles_absent_then_present(run_module, admin, vmo_cluster_roles):
    try:
        removed = run_module(MODULE, {"roles": "absent"})
        assert {r["action"] for r in removed["roles"]} == {"deleted"}
        assert admin.get_or_none(object_path(RBAC, "clusterroles", "spectro-vm-admin")) is None
        assert run_module(MODULE, {"roles": "absent"})["changed"] is False
    finally:
        restored = run_module(MODULE, {"roles": "present"})
    assert {r["action"] for r in restored["roles"]} == {"created"}


def test_verify_reports_access_beyond_the_table(run_module, admin, vmo_cluster_roles, ns):
    item = {"role": "spectro-vm-viewer", "subjects": {"users": ["carol"], "service_accounts": [f"{ns}/reader"]},
            "namespaces": [ns]}
    clean = run_module(MODULE, {"bindings": [item], "verify": True, "verify_fail": True})
    assert clean["verify_mismatches"] == 0
    entries = {e["subject"]: e for e in clean["verify"]}
    assert set(entries) == {"User carol", f"ServiceAccount {ns}/reader"}
    assert "list VMs" in entries["User carol"]["allowed"] and "create a VM" in entries["User carol"]["denied"]

    unmanaged_binding(admin, ns, "carol-admin", role="spectro-vm-admin")  # access from outside the task
    lenient = run_module(MODULE, {"bindings": [item], "verify": True})
    assert not lenient.get("failed") and lenient["verify_mismatches"] > 0
    carol = next(e for e in lenient["verify"] if e["subject"] == "User carol")
    assert {"operation": "manage Secrets", "expected": False, "allowed": True} in carol["mismatches"]
    strict = run_module(MODULE, {"bindings": [item], "verify": True, "verify_fail": True})
    assert strict.get("failed")
    assert (f"User carol in namespace {ns} (spectro-vm-viewer): manage Secrets is allowed, the VMO role table says "
            "denied") in strict["msg"]
    skipped = run_module(MODULE, {"bindings": [item], "verify": True}, check=True)
    assert skipped["verify"] == [] and "check mode" in skipped["verify_skipped"]


def test_a_namespaced_binding_grants_nothing_elsewhere(run_module, user_client, vmo_cluster_roles, ns, other_ns):
    run_module(MODULE, {"bindings": [{"role": "spectro-vm-power-user", "subjects": {"users": ["bob"]},
                                      "namespaces": [ns]}]})
    bob = user_client("bob")
    body = {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "bobs"},
            "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}}
    bob.create(object_path("kubevirt.io/v1", "virtualmachines", namespace=ns), body)
    with pytest.raises(KubeError) as err:
        bob.create(object_path("kubevirt.io/v1", "virtualmachines", namespace=other_ns), body)
    assert err.value.status == 403
