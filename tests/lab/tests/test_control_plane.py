"""The lab's control plane is a real Kubernetes: version, RBAC, schemas, apply, GC, audit."""

import time
import uuid

import pytest
import requests

from tests.lab import versions
from tests.lab.kube import KubeError, object_path
from tests.lab.state import ADMIN_USER

from .helpers import vm_manifest, vm_path, vmi_path


def test_version_is_the_pinned_kubernetes(lab, admin):
    version = admin.get("/version")
    assert version["gitVersion"] == versions.KUBERNETES
    assert version["minor"] == versions.KUBERNETES.split(".")[1]


def test_tls_is_verified_against_the_lab_ca(lab):
    with pytest.raises(requests.exceptions.SSLError):
        session = requests.Session()
        session.trust_env = False
        session.get(f"{lab.apiserver_url}/version", verify=True, timeout=5)


def test_anonymous_and_unknown_tokens_are_rejected(lab):
    resp = requests.get(f"{lab.apiserver_url}/api/v1/namespaces", verify=str(lab.ca_file),
                        headers={"Authorization": "Bearer not-a-token"}, timeout=5)
    assert resp.status_code == 401


def test_unprivileged_user_cannot_create_a_vm(user_client, namespace, admin):
    with pytest.raises(KubeError) as err:
        user_client("alice").create(vm_path(namespace), vm_manifest("denied", namespace))
    assert err.value.status == 403
    assert 'User "alice" cannot create resource "virtualmachines"' in err.value.body["message"]
    assert admin.get_or_none(vm_path(namespace, "denied")) is None


def test_malformed_vm_is_rejected_by_the_crd_schema(admin, namespace):
    bad = vm_manifest("bad-memory", namespace, memory="lots")
    with pytest.raises(KubeError) as err:
        admin.create(vm_path(namespace), bad)
    assert err.value.status == 422
    assert err.value.reason == "Invalid"
    causes = err.value.body["details"]["causes"]
    assert any(cause["field"] == "spec.template.spec.domain.memory.guest" for cause in causes), causes


def test_server_side_apply_reports_a_conflict_for_a_second_manager(admin, namespace):
    path = vm_path(namespace, "shared")
    admin.apply(path, vm_manifest("shared", namespace, run_strategy="Halted"), field_manager="team-a")
    with pytest.raises(KubeError) as err:
        admin.apply(path, vm_manifest("shared", namespace, run_strategy="Always"), field_manager="team-b")
    assert err.value.status == 409
    assert 'conflict with "team-a"' in err.value.body["message"]
    assert ".spec.runStrategy" in err.value.body["message"]
    # Forcing takes the field over; the first manager no longer owns it.
    applied = admin.apply(path, vm_manifest("shared", namespace, run_strategy="Always"),
                          field_manager="team-b", force=True)
    assert applied["spec"]["runStrategy"] == "Always"


def test_deleting_a_vm_garbage_collects_its_vmi(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("doomed", namespace))
    vmi = wait.until(vmi_path(namespace, "doomed"), lambda o: o is not None, what="VMI to exist")
    owner = vmi["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "VirtualMachine" and owner["controller"] is True
    # Orphan-free background deletion: only the controller-manager's garbage collector removes the VMI.
    admin.delete(vm_path(namespace, "doomed"), propagationPolicy="Background")
    wait.gone(vm_path(namespace, "doomed"))
    wait.gone(vmi_path(namespace, "doomed"))


def test_orphan_propagation_keeps_the_vmi(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("orphaner", namespace))
    wait.until(vmi_path(namespace, "orphaner"), lambda o: o is not None, what="VMI to exist")
    admin.delete(vm_path(namespace, "orphaner"), propagationPolicy="Orphan")
    wait.gone(vm_path(namespace, "orphaner"))
    time.sleep(1)
    vmi = admin.get(vmi_path(namespace, "orphaner"))
    assert not vmi["metadata"].get("ownerReferences")


def _configmap(name: str, namespace: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
            "data": {"k": "v"}}


def _wait_for_event(audit, mark, predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in audit.events(mark) if predicate(e)]
        if found:
            return found
        time.sleep(0.1)
    return []


def test_audit_log_records_a_create_and_no_mutation_for_a_dry_run(admin, audit, namespace):
    mark = audit.mark()
    dry = f"dry-{uuid.uuid4().hex[:6]}"
    real = f"real-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "configmaps", namespace=namespace), _configmap(dry, namespace), dryRun="All")
    admin.create(object_path("v1", "configmaps", namespace=namespace), _configmap(real, namespace))

    assert _wait_for_event(audit, mark, lambda e: e["verb"] == "create" and "dryRun=All" not in e["requestURI"]
                           and e.get("objectRef", {}).get("namespace") == namespace)
    mutations = [e for e in audit.mutations(mark, user=ADMIN_USER)
                 if e.get("objectRef", {}).get("namespace") == namespace
                 and e["objectRef"].get("resource") == "configmaps"]
    assert len(mutations) == 1, mutations
    assert mutations[0]["verb"] == "create" and mutations[0]["responseStatus"]["code"] == 201
    # The dry run reached the apiserver (so the log shows it) but persisted nothing.
    dry_runs = [e for e in audit.events(mark) if "dryRun=All" in e.get("requestURI", "")
                and e.get("objectRef", {}).get("namespace") == namespace]
    assert [e["verb"] for e in dry_runs] == ["create"]
    assert admin.get_or_none(object_path("v1", "configmaps", dry, namespace)) is None
    assert admin.get_or_none(object_path("v1", "configmaps", real, namespace)) is not None


def test_deleting_a_namespace_completes(admin, wait):
    name = f"short-lived-{uuid.uuid4().hex[:5]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    admin.create(object_path("v1", "configmaps", namespace=name), _configmap("inside", name))
    admin.delete(object_path("v1", "namespaces", name))
    wait.gone(object_path("v1", "namespaces", name), timeout=60)


def test_lab_nodes_are_schedulable_for_kubevirt(admin):
    nodes = admin.get(object_path("v1", "nodes"))["items"]
    schedulable = [n for n in nodes if n["metadata"]["labels"].get("kubevirt.io/schedulable") == "true"]
    assert len(schedulable) >= 3


def test_embedded_json_the_lab_client_writes_survives_a_later_patch(admin, namespace):
    """The apiserver stores a ControllerRevision's data byte for byte; the client sends compact JSON as Go
    clients do, so the garbage collector's ownerReferences patch (orphaning) is not refused as a data change."""
    path = object_path("apps/v1", "controllerrevisions", namespace=namespace)
    admin.create(path, {"apiVersion": "apps/v1", "kind": "ControllerRevision", "metadata": {"name": "rev"},
                        "revision": 1, "data": {"spec": {"a": 1, "b": {"c": 2}}}})
    patched = admin.merge_patch(f"{path}/rev", {"metadata": {"labels": {"patched": "yes"}}})
    assert patched["metadata"]["labels"] == {"patched": "yes"}
