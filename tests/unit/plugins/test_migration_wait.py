"""The migration wait against a fake apiserver: a migration gone before it was seen final ends the wait, with
the outcome its VMI's migrationState records."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.client import object_path
from ansible_collections.palette.vmo.plugins.module_utils.kube.wait import WaitTimeout
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import migration_plan as plan
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.migration_runner import wait_migrations

from .kube_fakes import FakeCluster

API = "kubevirt.io/v1"


def created(uid="uid-1"):
    request = plan.MigrationRequest("vm", "ns")
    request.action = "created"
    request.final = {"apiVersion": API, "kind": "VirtualMachineInstanceMigration",
                     "metadata": {"name": "vm-mig", "namespace": "ns", "uid": uid},
                     "spec": {"vmiName": "vm"}, "status": {"phase": "Running"}}
    return request


def cluster_with_vmi(migration_state, vmim=None):
    objects = {object_path(API, "virtualmachineinstances", "vm", "ns"): {
        "metadata": {"name": "vm", "namespace": "ns"},
        "status": {"nodeName": "node-b", "migrationState": migration_state}}}
    if vmim:
        objects[object_path(API, "virtualmachineinstancemigrations", "vm-mig", "ns")] = vmim
    return FakeCluster(objects=objects)


def test_a_migration_gone_after_completing_is_succeeded_from_the_vmi_state():
    request = created()
    state = {"migrationUid": "uid-1", "completed": True, "sourceNode": "node-a", "targetNode": "node-b"}
    wait_migrations(cluster_with_vmi(state), [request], API, timeout=5)
    assert plan.phase_of(request.final) == "Succeeded"
    result = plan.migration_result(request)
    assert (result["phase"], result["target_node"], result["node"]) == ("Succeeded", "node-b", "node-b")
    assert "deleted before it was seen final" in result["reason"]


def test_a_migration_gone_after_failing_or_never_reaching_the_vmi_is_failed():
    failing = created()
    state = {"migrationUid": "uid-1", "completed": True, "failed": True, "failureReason": "target pod died"}
    wait_migrations(cluster_with_vmi(state), [failing], API, timeout=5)
    assert plan.phase_of(failing.final) == "Failed"
    assert plan.migration_result(failing)["failure_reason"] == "target pod died"

    unseen = created()
    wait_migrations(cluster_with_vmi({"migrationUid": "an-earlier-one", "completed": True}), [unseen], API, timeout=5)
    assert plan.phase_of(unseen.final) == "Failed"
    assert "the VMI records no migration state for it" in plan.migration_result(unseen)["reason"]


def test_a_gone_migration_whose_vmi_state_is_not_final_yet_is_waited_for_within_the_timeout():
    request = created()
    with pytest.raises(WaitTimeout) as err:
        wait_migrations(cluster_with_vmi({"migrationUid": "uid-1", "completed": False}), [request], API, timeout=0.3)
    assert "ns/vm (waiting for the end of migration vm-mig in its migrationState" in str(err.value)


def test_a_migration_still_there_is_read_as_it_is():
    request = created()
    final = dict(request.final, status={"phase": "Succeeded"})
    wait_migrations(cluster_with_vmi({}, vmim=final), [request], API, timeout=5)
    assert request.final == final and request.reason is None
