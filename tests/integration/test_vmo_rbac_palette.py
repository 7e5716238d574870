"""vmo_rbac through the Palette simulator: config/rbacs round-trips, idempotent, check mode only reads, and the
bindings Palette's agent makes on the real apiserver are the declared ones."""

import pytest

from tests.lab.kube import object_path

MODULE = "palette.vmo.vmo_rbac"


@pytest.fixture
def palette_rbac(palette):
    """The lab cluster's RBAC settings emptied before and after the test."""
    uid = palette.info()["cluster_uid"]
    path = f"/v1/spectroclusters/{uid}/config/rbacs"
    assert palette.api("PUT", path, json={"rbacs": []}).status_code == 204
    yield path
    palette.api("PUT", path, json={"rbacs": []})


def args(palette, bindings, **extra):
    return dict(palette.connection(), palette_cluster=palette.cluster, bindings=bindings, **extra)


def test_palette_mode_round_trip(run_module, palette, palette_rbac, admin, vmo_cluster_roles, ns):
    bindings = [
        {"role": "spectro-vm-power-user", "subjects": {"users": ["bob"], "groups": ["vm-ops"]}, "namespaces": [ns]},
        {"role": "spectro-vm-viewer", "subjects": {"groups": ["auditors"]}, "cluster_wide": True}]
    mark = palette.mark()
    planned = run_module(MODULE, args(palette, bindings), check=True, diff=True)
    assert planned["changed"] is True and not planned.get("failed"), planned.get("msg")
    assert [b["action"] for b in planned["bindings"]] == ["created", "created"]
    assert palette.writes_since(mark) == []
    assert {r["method"] for r in palette.requests_since(mark)} <= {"GET", "POST"}
    assert planned["diff"][0]["before"] == {"bindings": []}
    assert palette.api("GET", palette_rbac).json()["items"] == []

    applied = run_module(MODULE, args(palette, bindings, verify=True, verify_fail=True))
    assert applied["changed"] is True and not applied.get("failed"), applied.get("msg")
    assert applied["palette_cluster_uid"] == palette.info()["cluster_uid"]
    assert applied["verify_mismatches"] == 0
    puts = [r for r in palette.writes_since(mark) if r["method"] == "PUT"]
    assert len(puts) == 1 and puts[0]["path"] == palette_rbac
    live = [b for entry in palette.api("GET", palette_rbac).json()["items"] for b in entry["spec"]["bindings"]]
    assert sorted((b["type"], b.get("namespace", ""), b["role"]["name"]) for b in live) == [
        ("ClusterRoleBinding", "", "spectro-vm-viewer"), ("RoleBinding", ns, "spectro-vm-power-user")]
    made = admin.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", namespace=ns),
                     labelSelector="spectrocloud.com/clusterRbac=true")["items"]
    assert [(b["roleRef"]["name"], sorted(s["name"] for s in b["subjects"])) for b in made] == [
        ("spectro-vm-power-user", ["bob", "vm-ops"])]

    mark = palette.mark()
    again = run_module(MODULE, args(palette, bindings))
    assert again["changed"] is False and {b["action"] for b in again["bindings"]} == {"unchanged"}
    assert palette.writes_since(mark) == []


def test_palette_mode_merges_and_exclusive_replaces(run_module, palette, palette_rbac, ns):
    # A binding someone else made in Palette's UI.
    theirs = {"type": "RoleBinding", "namespace": ns, "role": {"kind": "ClusterRole", "name": "spectro-vm-user"},
              "subjects": [{"type": "User", "name": "carol"}]}
    # Someone's binding to another role, made in the Palette UI: exclusive never touches it.
    admins = {"type": "ClusterRoleBinding", "role": {"kind": "ClusterRole", "name": "cluster-admin"},
              "subjects": [{"type": "Group", "name": "platform-admins"}]}
    assert palette.api("PUT", palette_rbac, json={"rbacs": [{"spec": {"bindings": [theirs, admins]}}]}
                       ).status_code == 204
    ours = [{"role": "spectro-vm-viewer", "subjects": {"users": ["dave"]}, "namespaces": [ns]}]
    merged = run_module(MODULE, args(palette, ours))
    assert merged["changed"] is True
    live = [b for e in palette.api("GET", palette_rbac).json()["items"] for b in e["spec"]["bindings"]]
    assert sorted(b["role"]["name"] for b in live) == ["cluster-admin", "spectro-vm-user", "spectro-vm-viewer"]

    changed_subjects = [dict(ours[0], subjects={"users": ["dave", "erin"]})]
    updated = run_module(MODULE, args(palette, changed_subjects))
    assert updated["bindings"][0]["action"] == "updated"

    mark = palette.mark()
    planned = run_module(MODULE, args(palette, changed_subjects, exclusive=True), check=True)
    assert ("spectro-vm-user", "deleted") in [(b["role"], b["action"]) for b in planned["bindings"]]
    assert palette.writes_since(mark) == []
    run_module(MODULE, args(palette, changed_subjects, exclusive=True))
    live = [b for e in palette.api("GET", palette_rbac).json()["items"] for b in e["spec"]["bindings"]]
    assert sorted((b["role"]["name"], sorted(s["name"] for s in b["subjects"])) for b in live) == [
        ("cluster-admin", ["platform-admins"]), ("spectro-vm-viewer", ["dave", "erin"])]


def test_palette_mode_unknown_cluster_and_roles_option(run_module, palette, palette_rbac, ns):
    ours = [{"role": "spectro-vm-viewer", "subjects": {"users": ["dave"]}, "namespaces": [ns]}]
    mark = palette.mark()
    missing = run_module(MODULE, dict(args(palette, ours), palette_cluster="no-such-cluster"))
    assert missing.get("failed") and "cluster 'no-such-cluster' does not exist in project lab" in missing["msg"]
    roles = run_module(MODULE, args(palette, ours, roles="present"))
    assert roles.get("failed") and "roles: Palette installs the VMO roles with the pack" in roles["msg"]
    assert palette.writes_since(mark) == []


def test_kubernetes_tls_switch_leaves_palette_verified(run_module, palette, ns, tmp_path):
    """K8S_AUTH_VERIFY_SSL=false is the Kubernetes switch, not read with palette_cluster: Palette stays verified.
    validate_certs in the task is a Kubernetes connection option, which palette_cluster replaces: refused."""
    from tests.lab import pki

    other = tmp_path / "other-ca"
    pki.make_ca(other, "not-the-lab-ca")
    ours = [{"role": "spectro-vm-user", "subjects": {"users": ["tls-check"]}, "namespaces": [ns]}]
    wrong_ca = dict(args(palette, ours), palette_ca_cert=str(other.with_suffix(".crt")))
    result = run_module(MODULE, wrong_ca, check=True, env_extra={"K8S_AUTH_VERIFY_SSL": "false"})
    assert result.get("failed") is True and "TLS verification of" in result["msg"], result
    mark = palette.mark()
    result = run_module(MODULE, dict(wrong_ca, validate_certs=False), check=True)
    assert result.get("failed") is True, result
    assert result["msg"].startswith("palette_cluster and validate_certs are mutually exclusive"), result["msg"]
    assert palette.requests_since(mark) == []
    # Palette's own switch is the one that turns its verification off.
    insecure = run_module(MODULE, dict(wrong_ca, palette_validate_certs=False), check=True)
    assert insecure.get("failed") is not True, insecure
