"""When a re-apply can be proven a no-op without the server, and when it cannot."""

import copy

from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import (
    APPLIED_HASH_ANNOTATION, comparable, merged_removal, stamp_applied_hash, untouched_since_our_apply)


def desired():
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "a", "namespace": "n"},
            "spec": {"runStrategy": "Always"}}


def live_from(applied, managers):
    live = copy.deepcopy(applied)
    live["metadata"].update(resourceVersion="7", uid="u", managedFields=managers)
    live["status"] = {"printableStatus": "Running"}
    return live


OURS = {"manager": "palette.vmo", "operation": "Apply", "time": "2026-01-01T00:00:10Z"}
STATUS = {"manager": "virt-controller", "operation": "Update", "subresource": "status", "time": "2026-01-01T00:00:20Z"}


def test_untouched_object_needs_no_dry_run():
    applied = desired()
    stamp_applied_hash(applied)
    assert untouched_since_our_apply(live_from(applied, [OURS, STATUS]), applied, "palette.vmo")


def test_a_later_writer_or_a_new_desired_state_means_asking_the_server():
    applied = desired()
    stamp_applied_hash(applied)
    later = {"manager": "kubectl", "operation": "Update", "time": "2026-01-01T00:00:10Z"}
    assert not untouched_since_our_apply(live_from(applied, [OURS, later]), applied, "palette.vmo")
    changed = desired()
    changed["spec"]["runStrategy"] = "Halted"
    stamp_applied_hash(changed)
    assert not untouched_since_our_apply(live_from(applied, [OURS]), changed, "palette.vmo")
    assert not untouched_since_our_apply(live_from(applied, [OURS]), applied, "someone-else")
    gone = live_from(applied, [OURS])
    gone["metadata"]["deletionTimestamp"] = "2026-01-01T00:01:00Z"
    assert not untouched_since_our_apply(gone, applied, "palette.vmo")


def test_digest_ignores_itself_and_comparison_ignores_server_bookkeeping():
    one, two = desired(), desired()
    assert stamp_applied_hash(one) == stamp_applied_hash(two)
    assert stamp_applied_hash(one) == one["metadata"]["annotations"][APPLIED_HASH_ANNOTATION]
    before = live_from(desired(), [OURS])
    after = live_from(one, [OURS, STATUS])
    after["metadata"]["resourceVersion"] = "8"
    assert comparable(before) == comparable(after)


class RacedClient(object):
    """The object appears between the plan and the apply: the first create meets 409 AlreadyExists."""

    def __init__(self, conflicts=1):
        self.conflicts, self.calls = conflicts, 0

    def apply(self, path, obj, field_manager, force=False, dry_run=False):
        from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError

        self.calls += 1
        if self.conflicts:
            self.conflicts -= 1
            raise KubeApiError(409, {"reason": "AlreadyExists", "message": "already exists"}, "PATCH", path)
        return dict(obj, status={})


def test_a_create_that_meets_409_is_applied_again_and_converges():
    from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject, apply_planned

    item = PlannedObject("n/a", "/apis/kubevirt.io/v1/namespaces/n/virtualmachines/a", desired(), None)
    client = RacedClient()
    assert apply_planned(client, [item], "palette.vmo", True, 4) == []
    assert client.calls == 2 and item.result["metadata"]["name"] == "a"


def test_a_conflict_that_persists_is_reported():
    from ansible_collections.palette.vmo.plugins.module_utils.kube.apply import PlannedObject, apply_planned

    item = PlannedObject("n/a", "/apis/kubevirt.io/v1/namespaces/n/virtualmachines/a", desired(), None)
    assert apply_planned(RacedClient(conflicts=2), [item], "palette.vmo", True, 4) == [item]
    assert item.error == "already exists"


def test_merged_removal_keeps_the_desired_object_and_nulls_what_must_go_first():
    wanted = {"apiVersion": "kubevirt.io/v1", "spec": {"runStrategy": "Always", "template": {"spec": {}}}}
    patch = merged_removal(wanted, {"spec": {"running": None}})
    assert patch == {"apiVersion": "kubevirt.io/v1",
                     "spec": {"runStrategy": "Always", "template": {"spec": {}}, "running": None}}
    assert "running" not in wanted["spec"]
