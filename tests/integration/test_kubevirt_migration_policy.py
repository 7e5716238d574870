"""palette.vmo.kubevirt_migration_policy against the lab: create, idempotence, check and diff mode, update, absent."""

import uuid

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_migration_policy"


def policy_path(name=""):
    return object_path("migrations.kubevirt.io/v1alpha1", "migrationpolicies", name)


def policy_writes(audit, mark, names):
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") == "migrationpolicies"
            and (e.get("objectRef") or {}).get("name") in names]


def test_policies_are_declared_idempotently_with_check_and_diff(run_module, admin, audit):
    suffix = uuid.uuid4().hex[:6]
    names = ["db-%s" % suffix, "web-%s" % suffix]
    args = {"allow_auto_converge": True, "policies": [
        {"name": names[0], "bandwidth_per_migration": "256Mi", "completion_timeout_per_gib": 300,
         "allow_post_copy": False, "namespace_selector": {"env": "prod"}, "vmi_selector": {"workload": "db"}},
        {"name": names[1], "allow_workload_disruption": True, "vmi_selector": {"tier": "web"}}]}
    try:
        mark = audit.mark()
        check = run_module(MODULE, args, check=True, diff=True)
        assert check.get("failed") is not True, check.get("msg")
        assert check["changed"] is True and [p["action"] for p in check["policies"]] == ["created", "created"]
        assert check["diff"][0]["after"]["spec"]["bandwidthPerMigration"] == "256Mi"
        assert policy_writes(audit, mark, names) == []
        assert admin.get_or_none(policy_path(names[0])) is None

        first = run_module(MODULE, args)
        assert first["changed"] is True, first.get("msg")
        db = admin.get(policy_path(names[0]))
        assert db["spec"] == {"allowAutoConverge": True, "allowPostCopy": False, "bandwidthPerMigration": "256Mi",
                              "completionTimeoutPerGiB": 300, "selectors": {
                                  "namespaceSelector": {"env": "prod"},
                                  "virtualMachineInstanceSelector": {"workload": "db"}}}
        assert db["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo"

        mark = audit.mark()
        second = run_module(MODULE, args)
        assert second["changed"] is False and {p["action"] for p in second["policies"]} == {"unchanged"}
        assert policy_writes(audit, mark, names) == []

        # A setting dropped from the task leaves the policy; a changed one is updated, shown in the diff.
        changed = {"policies": [{"name": names[0], "bandwidth_per_migration": "128Mi",
                                 "vmi_selector": {"workload": "db"}}]}
        mark = audit.mark()
        check = run_module(MODULE, changed, check=True, diff=True)
        assert check["changed"] is True and check["policies"][0]["action"] == "updated"
        assert check["diff"][0]["before"]["spec"]["bandwidthPerMigration"] == "256Mi"
        assert check["diff"][0]["after"]["spec"]["bandwidthPerMigration"] == "128Mi"
        assert policy_writes(audit, mark, names) == []
        update = run_module(MODULE, changed)
        assert update["changed"] is True
        assert admin.get(policy_path(names[0]))["spec"] == {
            "bandwidthPerMigration": "128Mi", "selectors": {"virtualMachineInstanceSelector": {"workload": "db"}}}

        gone = run_module(MODULE, {"policies": [{"name": n, "state": "absent"} for n in names]})
        assert gone["changed"] is True and [p["action"] for p in gone["policies"]] == ["deleted", "deleted"]
        assert admin.get_or_none(policy_path(names[1])) is None
        mark = audit.mark()
        again = run_module(MODULE, {"policies": [{"name": n, "state": "absent"} for n in names]})
        assert again["changed"] is False and [p["action"] for p in again["policies"]] == ["absent", "absent"]
        assert policy_writes(audit, mark, names) == []
    finally:
        for name in names:
            admin.delete(policy_path(name))
