"""KubeVirt's API on the lab: operator, VM -> VMI per run strategy, and the aggregated subresources."""

import uuid

import pytest

from tests.lab import bootstrap
from tests.lab.kube import KubeError, object_path

from .helpers import subresource_path, vm_manifest, vm_path, vmi_path

KUBEVIRT = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", bootstrap.KUBEVIRT_NAMESPACE)


def _put(client, namespace, plural, name, verb, body=None):
    return client.request("PUT", subresource_path(namespace, plural, name, verb), body or {}, expect_json=False)


def _ready_condition(vm):
    return next(c for c in vm["status"]["conditions"] if c["type"] == "Ready")


def test_kubevirt_is_deployed_with_the_vmo_feature_gates(admin):
    kv = admin.get(KUBEVIRT)
    assert kv["status"]["phase"] == "Deployed"
    assert kv["status"]["observedKubeVirtVersion"]
    gates = kv["spec"]["configuration"]["developerConfiguration"]["featureGates"]
    assert set(bootstrap.VMO_FEATURE_GATES) <= set(gates)
    service = admin.get(object_path("apiregistration.k8s.io/v1", "apiservices", "v1.subresources.kubevirt.io"))
    assert any(c["type"] == "Available" and c["status"] == "True" for c in service["status"]["conditions"])


@pytest.mark.parametrize("crd", ["virtualmachines.kubevirt.io", "virtualmachineinstances.kubevirt.io",
                                 "virtualmachinesnapshots.snapshot.kubevirt.io",
                                 "virtualmachineinstancetypes.instancetype.kubevirt.io",
                                 "datavolumes.cdi.kubevirt.io"])
def test_the_operators_registered_the_generated_crds(admin, crd):
    live = admin.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", crd))
    assert any(c["type"] == "Established" and c["status"] == "True" for c in live["status"]["conditions"])
    assert all(v["schema"]["openAPIV3Schema"].get("properties") for v in live["spec"]["versions"])


def test_halted_vm_is_stopped_without_a_vmi(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("idle", namespace, run_strategy="Halted"))
    vm = wait.printable(namespace, "idle", "Stopped")
    ready = _ready_condition(vm)
    assert ready["status"] == "False" and ready["reason"] == "VMINotExists"
    assert not vm["status"].get("ready")
    assert admin.get_or_none(vmi_path(namespace, "idle")) is None


def test_always_vm_runs_on_a_schedulable_node_with_an_address(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("web", namespace))
    vm = wait.printable(namespace, "web", "Running")
    assert vm["status"]["ready"] is True
    assert _ready_condition(vm)["status"] == "True"
    vmi = admin.get(vmi_path(namespace, "web"))
    assert vmi["status"]["phase"] == "Running"
    assert vmi["status"]["nodeName"] in bootstrap.NODES
    assert vmi["status"]["interfaces"][0]["ipAddress"].startswith("10.244.")


def test_manual_vm_starts_through_the_aggregated_api_and_rbac_applies(admin, user_client, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("manual", namespace, run_strategy="Manual"))
    wait.printable(namespace, "manual", "Stopped")

    with pytest.raises(KubeError) as denied:
        _put(user_client("alice"), namespace, "virtualmachines", "manual", "start")
    assert denied.value.status == 403
    assert '"virtualmachines/start" in API group "subresources.kubevirt.io"' in denied.value.body["message"]
    assert admin.get_or_none(vmi_path(namespace, "manual")) is None

    # carol gets exactly the right to start VMs in this namespace, as a VMO role would give.
    admin.create(object_path("rbac.authorization.k8s.io/v1", "roles", namespace=namespace), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "vm-starter"},
        "rules": [{"apiGroups": ["subresources.kubevirt.io"], "resources": ["virtualmachines/start"],
                   "verbs": ["update"]}]})
    admin.create(object_path("rbac.authorization.k8s.io/v1", "rolebindings", namespace=namespace), {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "carol-starts"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "vm-starter"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "carol"}]})
    resp = _put(user_client("carol"), namespace, "virtualmachines", "manual", "start")
    assert resp.status_code == 202
    wait.printable(namespace, "manual", "Running")

    with pytest.raises(KubeError) as again:
        _put(admin, namespace, "virtualmachines", "manual", "start")
    assert again.value.status == 409
    assert again.value.body["message"] == \
        'Operation cannot be fulfilled on virtualmachine.kubevirt.io "manual": VM is already running'


def test_dry_run_start_changes_nothing(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("dry", namespace, run_strategy="Halted"))
    wait.printable(namespace, "dry", "Stopped")
    assert _put(admin, namespace, "virtualmachines", "dry", "start", {"dryRun": ["All"]}).status_code == 202
    assert admin.get(vm_path(namespace, "dry"))["spec"]["runStrategy"] == "Halted"


def test_start_is_refused_for_always(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("always", namespace))
    wait.printable(namespace, "always", "Running")
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachines", "always", "start")
    assert err.value.status == 409
    assert err.value.body["message"].endswith("VM is already running")


def test_stop_halts_an_always_vm_through_stopping(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("stopper", namespace))
    wait.printable(namespace, "stopper", "Running")
    assert _put(admin, namespace, "virtualmachines", "stopper", "stop").status_code == 202
    assert admin.get(vm_path(namespace, "stopper"))["spec"]["runStrategy"] == "Halted"
    seen = set()
    wait.until(vm_path(namespace, "stopper"),
               lambda vm: seen.add(vm["status"].get("printableStatus")) or vm["status"].get("printableStatus") == "Stopped",
               what="VM to stop")
    assert "Stopping" in seen
    wait.gone(vmi_path(namespace, "stopper"))
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachines", "stopper", "stop")
    assert err.value.status == 409 and err.value.body["message"].endswith("VM is not running")


def test_restart_replaces_the_vmi(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("restarter", namespace))
    wait.printable(namespace, "restarter", "Running")
    first = admin.get(vmi_path(namespace, "restarter"))["metadata"]["uid"]
    assert _put(admin, namespace, "virtualmachines", "restarter", "restart").status_code == 202
    wait.until(vmi_path(namespace, "restarter"),
               lambda vmi: vmi is not None and vmi["metadata"]["uid"] != first
               and vmi.get("status", {}).get("phase") == "Running", what="a new running VMI")
    vm = wait.printable(namespace, "restarter", "Running")
    assert not vm["status"].get("stateChangeRequests")


def test_restart_of_a_halted_vm_is_a_conflict(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("cold", namespace, run_strategy="Halted"))
    wait.printable(namespace, "cold", "Stopped")
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachines", "cold", "restart")
    assert err.value.status == 409
    assert "RunStategy Halted does not support manual restart requests" in err.value.body["message"]


def test_pause_and_unpause(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("napper", namespace))
    wait.printable(namespace, "napper", "Running")
    assert _put(admin, namespace, "virtualmachineinstances", "napper", "pause").status_code == 200
    vm = wait.printable(namespace, "napper", "Paused")
    assert any(c["type"] == "Paused" and c["status"] == "True" for c in vm["status"]["conditions"])
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachineinstances", "napper", "pause")
    assert err.value.status == 409 and err.value.body["message"].endswith("VMI is already paused")
    assert _put(admin, namespace, "virtualmachineinstances", "napper", "unpause").status_code == 200
    wait.printable(namespace, "napper", "Running")
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachineinstances", "napper", "unpause")
    assert err.value.status == 409 and err.value.body["message"].endswith("VMI is not paused")


def test_pause_of_a_missing_vmi_is_not_found(admin, namespace):
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachineinstances", "ghost", "pause")
    assert err.value.status == 404
    assert err.value.body["message"] == 'virtualmachineinstance.kubevirt.io "ghost" not found'


@pytest.mark.parametrize("strategy", ["Once", "RerunOnFailure"])
def test_once_and_rerun_on_failure_start_the_vm(admin, namespace, wait, strategy):
    name = strategy.lower()
    admin.create(vm_path(namespace), vm_manifest(name, namespace, run_strategy=strategy))
    vm = wait.printable(namespace, name, "Running")
    assert vm["status"]["runStrategy"] == strategy


def test_manual_stop_keeps_the_strategy(admin, namespace, wait):
    admin.create(vm_path(namespace), vm_manifest("manual-stop", namespace, run_strategy="Manual"))
    wait.printable(namespace, "manual-stop", "Stopped")
    _put(admin, namespace, "virtualmachines", "manual-stop", "start")
    wait.printable(namespace, "manual-stop", "Running")
    assert _put(admin, namespace, "virtualmachines", "manual-stop", "stop").status_code == 202
    wait.printable(namespace, "manual-stop", "Stopped")
    assert admin.get(vm_path(namespace, "manual-stop"))["spec"]["runStrategy"] == "Manual"
    with pytest.raises(KubeError) as err:
        _put(admin, namespace, "virtualmachines", "manual-stop", "stop")
    assert err.value.status == 409 and err.value.body["message"].endswith("VM is not running")


def test_without_use_emulation_vms_cannot_be_scheduled(admin, namespace, wait):
    """Lab nodes have no /dev/kvm, so KubeVirt's useEmulation decides whether a VM can run."""
    admin.merge_patch(KUBEVIRT, {"spec": {"configuration": {"developerConfiguration": {"useEmulation": False}}}})
    try:
        name = f"no-kvm-{uuid.uuid4().hex[:4]}"
        admin.create(vm_path(namespace), vm_manifest(name, namespace))
        wait.printable(namespace, name, "ErrorUnschedulable")
        vmi = admin.get(vmi_path(namespace, name))
        scheduled = next(c for c in vmi["status"]["conditions"] if c["type"] == "PodScheduled")
        assert "Insufficient devices.kubevirt.io/kvm" in scheduled["message"]
    finally:
        admin.merge_patch(KUBEVIRT, {"spec": {"configuration": {"developerConfiguration": {"useEmulation": True}}}})
    wait.printable(namespace, name, "Running", timeout=30)
