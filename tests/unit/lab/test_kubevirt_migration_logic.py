"""Pure logic of the lab's live-migration stand-in: queue priorities, migration limits, the heartbeat rule."""

import time
import types

from tests.lab.kubevirt import migration


def mig(priority=None):
    return {"metadata": {"name": "m"}, "spec": {"vmiName": "v", **({"priority": priority} if priority else {})}}


def test_queue_priorities_and_requeue_delays_are_kubevirts():
    assert [migration.queue_priority(mig(p)) for p in (
        "system-critical", "user-triggered", "system-maintenance", None, "bogus")] == [100, 50, 20, 0, 0]
    assert [migration.requeue_delay(p) for p in (100, 50, 20, 0)] == [1.0, 3.0, 5.0, 5.0]


def test_an_explicit_zero_limit_is_kept():
    config = migration.migration_config({"migrations": {"parallelMigrationsPerCluster": 0}})
    assert config["parallelMigrationsPerCluster"] == 0
    assert config["parallelOutboundMigrationsPerNode"] == 2
    assert migration.migration_config({})["parallelMigrationsPerCluster"] == 5


def test_virt_handler_runs_unless_its_heartbeat_is_older_than_the_node_controllers_timeout():
    def node(stamp):
        return {"metadata": {"annotations": {} if stamp is None else {"kubevirt.io/heartbeat": stamp}}}
    fresh = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    assert migration.handler_running(node(None))
    assert migration.handler_running(node(fresh))
    assert migration.handler_running(node(f'"{fresh}"'))
    assert not migration.handler_running(node("2020-01-01T00:00:00Z"))


def test_the_update_admitter_refuses_spec_and_selector_label_changes():
    def request(old, new):
        return {"resource": {"group": "kubevirt.io", "resource": "virtualmachineinstancemigrations"},
                "object": new, "oldObject": old}
    old = {"metadata": {"labels": {"kubevirt.io/vmi-name": "v"}}, "spec": {"vmiName": "v"}, "status": {"phase": "Running"}}
    changed = {**old, "spec": {"vmiName": "w"}}
    refused = migration.admit_migration_update(request(old, changed), {})
    assert refused["status"]["code"] == 422 and refused["status"]["message"] == "update of Migration object's spec is restricted"
    nulls = {**old, "spec": {"vmiName": "v", "addedNodeSelector": None}}
    assert migration.admit_migration_update(request(old, nulls), {})["allowed"]
    unlabelled = {**old, "metadata": {}}
    assert migration.admit_migration_update(request(old, unlabelled), {})["status"]["message"] == \
        "selector label can't be removed from an in-flight migration"
    done = {**unlabelled, "status": {"phase": "Succeeded"}}
    assert migration.admit_migration_update(request(old, done), {})["allowed"]


def test_the_workload_updater_aborts_a_change_that_went_away_before_the_target_domain_was_ready():
    def controller(count):
        return types.SimpleNamespace(_workload_update_migrations=lambda _vmi: [{}] * count)

    def vmi(conditions=(), state=None, annotations=None):
        return {"metadata": {"annotations": annotations or {}},
                "status": {"conditions": list(conditions), **({"migrationState": state} if state else {})}}
    should_abort = migration.MigrationController._should_abort_migration
    hot = {"type": "HotVCPUChange", "status": "True"}
    assert should_abort(controller(1), vmi())
    assert not should_abort(controller(0), vmi())
    assert not should_abort(controller(1), vmi([hot]))
    assert not should_abort(controller(1), vmi(state={"targetNodeDomainReadyTimestamp": "2026-01-01T00:00:00Z"}))
    assert should_abort(controller(1), vmi([hot], annotations={"kubevirt.io/testWorkloadUpdateMigrationAbortion": ""}))
    requires = migration.MigrationController._requires_migration
    assert requires(vmi([hot])) and not requires(vmi())
    assert requires(vmi([{"type": "VolumesChange", "status": "True"}]))
