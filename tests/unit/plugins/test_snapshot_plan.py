"""kubevirt_vm_snapshot's decisions without a cluster: requests, names, retention, results; and the kube client's
dry-run delete."""

from datetime import datetime

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeClient
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import snapshot_plan as plan

PARAMS = dict(state="present", snapshot_id="n1", retention=None, labels=None, failure_deadline=None,
              deletion_policy=None, namespace="vms", name=None, vms=None, label_selector=None,
              snapshot_api_version="snapshot.kubevirt.io/v1beta1")
NOW = datetime(2026, 1, 10, 12, 0, 0)


def params(**overrides):
    return dict(PARAMS, **overrides)


def snap(name, vm="web", created="2026-01-10T00:00:00Z", ours=True):
    labels = {"app.kubernetes.io/managed-by": "palette.vmo"} if ours else {}
    return {"metadata": {"name": name, "creationTimestamp": created, "labels": labels},
            "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}}


def errors_of(**overrides):
    with pytest.raises(ModuleFailure) as err:
        plan.parse_requests(params(**overrides))
    return err.value.errors


def test_names_are_vm_dash_id_and_long_ones_are_shortened_with_a_hash():
    assert plan.snapshot_name("web", "20260105") == "web-20260105"
    long_name = plan.snapshot_name("v" * 250, "nightly")
    assert len(long_name) == 253 and long_name != plan.snapshot_name("v" * 251, "nightly")
    assert plan.vm_label_value("a" * 70) != plan.vm_label_value("a" * 71) and len(plan.vm_label_value("a" * 70)) <= 63


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("1h30m", 5400), ("0s", 0), ("1.5m", 90)])
def test_go_durations(text, seconds):
    assert plan.duration_seconds(text) == seconds


def test_days_only_in_ages():
    assert plan.duration_seconds("7d") is None and plan.duration_seconds("7d", days=True) == 7 * 86400
    assert plan.duration_seconds("soon") is None and plan.duration_seconds("5 m") is None


@pytest.mark.parametrize("overrides, expected", [
    ({}, "name: one of name, vms or label_selector is required"),
    ({"name": "web", "snapshot_id": "Night 1"}, "snapshot_id: 'Night 1' is not a valid id"),
    ({"name": "web", "snapshot_id": None}, "snapshot_id: is required with state=present"),
    ({"name": "web", "state": "absent", "snapshot_id": None}, "snapshot_id: is required with state=absent"),
    ({"vms": ["web", "web"]}, "VM vms/web: name: is named more than once in this task"),
    ({"vms": ["Web_1"]}, "VM vms/Web_1: name: 'Web_1' is not a valid name"),
    ({"vms": [{"name": "web", "node": "x"}]}, "vms[0] (web): unsupported parameters: node"),
    ({"name": "web", "retention": {"keep": 0, "max_age": None}}, "retention.keep: 0 is out of range, give at least 1"),
    ({"name": "web", "retention": {"keep": None, "max_age": "7 days"}}, "retention.max_age: '7 days' is not an age"),
    ({"name": "web", "retention": {"keep": None, "max_age": None}}, "retention: give keep, max_age or both"),
    ({"name": "web", "failure_deadline": "soon"}, "failure_deadline: 'soon' is not a duration"),
    ({"name": "web", "labels": {"bad key": "x"}}, "labels.bad key: 'bad key' is not a valid label key"),
    ({"name": "web", "labels": {"palette.vmo/snapshot-vm": "x"}}, "labels.palette.vmo/snapshot-vm: is reserved"),
    ({"name": "web", "state": "absent", "retention": {"keep": 2, "max_age": None}},
     "retention: only applies to state=present, not to state=absent"),
])
def test_bad_input_names_the_option(overrides, expected):
    errors = errors_of(**overrides)
    assert any(expected in e for e in errors), errors


def test_retention_alone_needs_no_snapshot_id():
    requests = plan.parse_requests(params(name="web", snapshot_id=None, retention={"keep": 2, "max_age": None}))
    assert [r.name for r in requests] == ["web"]


def request_for(name="web"):
    request = plan.SnapshotRequest(name, "vms")
    return request


def test_retention_keeps_the_newest_counting_this_runs_and_never_a_foreign_or_another_vms():
    snapshots = [snap("web-1", created="2026-01-01T00:00:00Z"), snap("web-2", created="2026-01-02T00:00:00Z"),
                 snap("web-3", created="2026-01-03T00:00:00Z"),
                 snap("web-by-hand", created="2025-01-01T00:00:00Z", ours=False),
                 snap("db-1", vm="db", created="2025-01-01T00:00:00Z")]
    request = request_for()
    problems = plan.plan_request(request, snapshots, params(name="web", snapshot_id="4",
                                                            retention={"keep": 3, "max_age": None}), NOW)
    assert problems == [] and request.action == "created" and request.snapshot_name == "web-4"
    assert [s["metadata"]["name"] for s in request.expired] == ["web-1"]
    assert request.body["metadata"]["labels"] == {"app.kubernetes.io/managed-by": "palette.vmo",
                                                  "palette.vmo/snapshot-vm": "web"}
    assert request.body["metadata"]["annotations"] == {"palette.vmo/snapshot-id": "4"}
    assert plan.plan_diff(request, snapshots)["after"] == {"snapshots": ["web-2", "web-3", "web-4"]}


def test_max_age_deletes_older_ones_but_not_this_runs():
    snapshots = [snap("web-old", created="2026-01-01T00:00:00Z"), snap("web-new", created="2026-01-10T00:00:00Z"),
                 snap("web-4", created="2025-01-01T00:00:00Z")]
    request = request_for()
    retention = {"keep": None, "max_age": "7d"}
    plan.plan_request(request, snapshots, params(name="web", snapshot_id="4", retention=retention), NOW)
    assert request.action == "unchanged"
    assert [s["metadata"]["name"] for s in request.expired] == ["web-old"]


def test_a_foreign_snapshot_of_the_planned_name_is_refused():
    request = request_for()
    problems = plan.plan_request(request, [snap("web-4", ours=False)], params(name="web", snapshot_id="4"), NOW)
    assert problems and "exists and was not made by palette.vmo" in problems[0]
    request = request_for()
    problems = plan.plan_request(request, [snap("web-4", vm="db")], params(name="web", snapshot_id="4"), NOW)
    assert problems and "exists for another VM (db)" in problems[0]


def test_state_absent_deletes_only_an_existing_own_snapshot():
    request = request_for()
    plan.plan_request(request, [], params(name="web", snapshot_id="4", state="absent"), NOW)
    assert request.action == "none" and not plan.changed(request)
    request = request_for()
    plan.plan_request(request, [snap("web-4")], params(name="web", snapshot_id="4", state="absent"), NOW)
    assert request.action == "deleted" and plan.changed(request)


def test_results_and_failures_quote_kubevirt():
    request = request_for()
    request.snapshot_name, request.action = "web-4", "created"
    request.final = dict(snap("web-4"), status={
        "phase": "Failed", "readyToUse": False, "indications": ["Online", "NoGuestAgent"],
        "conditions": [{"type": "Failure", "status": "True", "reason": "snapshot deadline exceeded"}]})
    result = plan.snapshot_result(request)
    assert result["phase"] == "Failed" and result["indications"] == ["Online", "NoGuestAgent"]
    assert result["failure_deadline"] == "5m0s"
    assert plan.snapshot_failures([request]) == ["VM vms/web: snapshot web-4 failed: snapshot deadline exceeded"]
    assert "phase Failed" in plan.describe_snapshot(request.final)


class _RecordingClient(KubeClient):
    def __init__(self):  # pylint: disable=super-init-not-called
        self.sent = []

    def request(self, method, path, query=None, body=None, content_type="application/json", timeout=None):
        self.sent.append((method, path, query, body))
        return {}


def test_a_dry_run_delete_carries_dry_run_in_its_body():
    """The apiserver reads a DELETE's options from the body when there is one and then ignores the query."""
    client = _RecordingClient()
    client.delete("/apis/x/v1/namespaces/a/things/b", dry_run=True)
    client.delete("/apis/x/v1/namespaces/a/things/c")
    assert client.sent[0][3]["dryRun"] == ["All"] and client.sent[0][2] == {"dryRun": "All"}
    assert "dryRun" not in client.sent[1][3]
