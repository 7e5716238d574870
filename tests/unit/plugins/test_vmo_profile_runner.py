"""vmo_profile's plan and writes against a fake Palette: create, in place, new version, clone, adopt."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_plan import vmo_pack
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_runner import (
    check_input, plan_profile, write_profile)

PACK = "virtual-machine-orchestrator"


class FakePalette:
    """Profiles by uid ({uid: (version, values text, metadata)}); records every write, refuses as told."""

    project_uid = "project-1"

    def __init__(self, profiles=None, refuse=None):
        self.profiles = dict(profiles or {})
        self.refuse = dict(refuse or {})  # "METHOD path" -> (status, what Palette makes anyway or None)
        self.writes = []

    def list_all(self, path, method="GET", body=None, query=None, scope=None, items_key="items"):
        assert path == "/v1/dashboard/clusterprofiles" and method == "POST"
        return [{"metadata": {"name": "vmo", "uid": uid, "annotations": {"scope": "project"}},
                 "specSummary": {"version": version}} for uid, (version, _values, _meta) in self.profiles.items()]

    def get(self, path, query=None, scope=None):
        version, values, metadata = self.profiles[path.rsplit("/", 1)[1]]
        packs = [{"name": PACK, "tag": "4.9.9", "type": "spectro", "values": values}]
        return {"metadata": dict(metadata, name="vmo"), "status": {"isPublished": True},
                "spec": {"version": version, "published": {"packs": packs}}}

    def _write(self, method, path, body=None):
        call = "%s %s" % (method, path)
        if call in self.refuse:
            status, made = self.refuse.pop(call)
            if made:
                self.profiles[made[0]] = made[1]
            raise PaletteError(status, {"message": "refused"}, method, path)
        self.writes.append(call)
        return body

    def post(self, path, body=None, query=None, scope=None):
        self._write("POST", path, body)
        uid = "new-%d" % len(self.profiles)
        self.profiles[uid] = ((body.get("spec") or {}).get("version") or body["metadata"].get("version"), "", {})
        return {"uid": uid}

    def put(self, path, body, query=None, scope=None):
        return self._write("PUT", path, body)

    def patch(self, path, body=None, query=None, scope=None):
        return self._write("PATCH", path, body)


def params(**overrides):
    return dict({"name": "vmo", "version": None, "update_mode": "in_place", "tags": None, "labels": None,
                 "description": None}, **overrides)


def desired(values):
    return [vmo_pack("4.9.9", "pack-1", "registry-1", values)]


def test_a_new_profile_is_created_at_1_0_0():
    plan = plan_profile(FakePalette(), params(), None, desired({"a": 1}))
    assert (plan.actions, plan.version, plan.uid, plan.clone_from) == (["create"], "1.0.0", None, None)
    assert plan.changed_packs == [PACK]


def test_the_same_packs_plan_nothing_and_other_values_update_the_latest_version_in_place():
    palette = FakePalette({"u1": ("1.0.0", "a: 1\n", {}), "u2": ("1.0.1", "a: 1\n", {})})
    same = plan_profile(palette, params(), None, desired({"a": 1}))
    assert (same.actions, same.version, same.uid) == ([], "1.0.1", "u2")
    changed = plan_profile(palette, params(), None, desired({"a": 2}))
    assert (changed.actions, changed.version, changed.uid) == (["update"], "1.0.1", "u2")
    assert changed.changed_packs == [PACK]


def test_new_version_clones_the_latest_to_the_next_patch_version():
    palette = FakePalette({"u1": ("1.0.0", "a: 1\n", {})})
    plan = plan_profile(palette, params(update_mode="new_version"), None, desired({"a": 2}))
    assert (plan.actions, plan.version, plan.uid, plan.clone_from) == (["clone"], "1.0.1", None, "u1")
    unchanged = plan_profile(palette, params(update_mode="new_version"), None, desired({"a": 1}))
    assert unchanged.actions == [] and unchanged.uid == "u1"


def test_new_version_never_changes_a_published_version_named_by_the_task():
    palette = FakePalette({"u1": ("1.0.0", "a: 1\n", {})})
    with pytest.raises(ModuleFailure, match="update_mode=new_version never changes a published version"):
        plan_profile(palette, params(update_mode="new_version", version="1.0.0"), None, desired({"a": 2}))


def test_a_version_the_task_names_that_does_not_exist_is_cloned_from_the_latest():
    palette = FakePalette({"u1": ("1.0.0", "a: 1\n", {}), "u3": ("1.2.0", "a: 1\n", {})})
    plan = plan_profile(palette, params(version="2.0.0"), None, desired({"a": 1}))
    assert (plan.actions, plan.version, plan.uid, plan.clone_from) == (["clone"], "2.0.0", None, "u3")


def test_new_labels_alone_patch_the_metadata():
    palette = FakePalette({"u1": ("1.0.0", "a: 1\n", {"labels": {"keep": "me"}})})
    plan = plan_profile(palette, params(tags=["env:lab"]), None, desired({"a": 1}))
    assert plan.actions == ["update_metadata"]
    assert plan.metadata["labels"] == {"keep": "me", "env": "lab"}


def test_writes_of_a_create_an_in_place_update_and_a_clone():
    created = FakePalette()
    plan = plan_profile(created, params(), None, desired({"a": 1}))
    write_profile(created, params(), None, plan, desired({"a": 1}))
    assert created.writes == ["POST /v1/clusterprofiles"] and plan.uid == "new-0"

    updated = FakePalette({"u1": ("1.0.0", "a: 1\n", {})})
    plan = plan_profile(updated, params(), None, desired({"a": 2}))
    write_profile(updated, params(), None, plan, desired({"a": 2}))
    assert updated.writes == ["PUT /v1/clusterprofiles/u1", "PATCH /v1/clusterprofiles/u1/publish"]

    cloned = FakePalette({"u1": ("1.0.0", "a: 1\n", {})})
    plan = plan_profile(cloned, params(update_mode="new_version"), None, desired({"a": 2}))
    write_profile(cloned, params(update_mode="new_version"), None, plan, desired({"a": 2}))
    assert cloned.writes == ["POST /v1/clusterprofiles/u1/clone", "PUT /v1/clusterprofiles/new-1",
                             "PATCH /v1/clusterprofiles/new-1/publish"]
    assert plan.version == "1.0.1"


def test_a_create_whose_answer_was_lost_adopts_the_version_it_made_and_writes_the_packs_into_it():
    # Palette made the version, then the answer was lost: the create fails, the lookup finds it.
    palette = FakePalette(refuse={"POST /v1/clusterprofiles": (500, ("made", ("1.0.0", "", {})))})
    plan = plan_profile(palette, params(), None, desired({"a": 1}))
    write_profile(palette, params(), None, plan, desired({"a": 1}))
    assert plan.uid == "made" and plan.actions == ["create", "update"]
    assert palette.writes == ["PUT /v1/clusterprofiles/made", "PATCH /v1/clusterprofiles/made/publish"]


def test_a_refused_create_that_made_nothing_fails_with_palettes_error():
    palette = FakePalette(refuse={"POST /v1/clusterprofiles": (500, None)})
    plan = plan_profile(palette, params(), None, desired({"a": 1}))
    with pytest.raises(PaletteError, match="HTTP 500: refused"):
        write_profile(palette, params(), None, plan, desired({"a": 1}))
    assert palette.writes == []


def test_out_of_range_waits_are_refused_first_and_alone():
    with pytest.raises(ModuleFailure) as err:
        check_input({"name": "Bad Name", "state": "present", "wait_timeout": -1, "poll_interval": 0.0})
    assert str(err.value).startswith("invalid input, nothing was changed: ")
    assert err.value.errors == ["poll_interval: 0.0 is out of range, give more than 0 seconds",
                                "wait_timeout: -1 is out of range, give 0 or more seconds"]


def test_a_failure_after_a_write_reports_changed_and_the_plan_a_failure_before_does_not_claim_a_change():
    from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_runner import add_progress

    result = {"changed": True, "name": "vmo", "uid": "u1", "actions": ["update"]}
    before = ModuleFailure("refused")
    add_progress(before, result, FakePalette())
    assert before.result == {"name": "vmo", "uid": "u1", "actions": ["update"]}
    written = FakePalette()
    written.writes.append("PUT /v1/clusterprofiles/u1")
    after = ModuleFailure("timed out", uid="kept")
    add_progress(after, result, written)
    assert after.result == {"changed": True, "name": "vmo", "uid": "kept", "actions": ["update"]}
