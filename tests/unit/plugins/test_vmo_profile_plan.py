"""The VMO profile plan: semantic comparison of packs, manifest layers, versions and labels."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.vmo.pack_values import ValuesError, dump_yaml
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_plan import (
    MANIFEST_PACK_UID, changed_packs, diff_text, manifest_layers, next_version, pack_entities, parse_version,
    profile_labels, published_pack, vmo_pack)
from ansible_collections.palette.vmo.plugins.module_utils.vmo.profile_runner import create_or_adopt, delete_profile

TEMPLATE = """apiVersion: spectrocloud.com/v1
kind: VmTemplate
metadata:
  name: ubuntu
spec:
  running: false
"""


def published(values_text, manifests=None, tag="4.9.9"):
    ref = {"name": "virtual-machine-orchestrator", "tag": tag, "type": "spectro", "values": values_text}
    return published_pack(ref, manifests or {})


def test_values_are_compared_as_yaml_not_text():
    desired = [vmo_pack("4.9.9", "p1", "r1", {"a": {"b": [1, 2]}, "c": "x"})]
    same = published("# a comment\nc: 'x'\na:\n  b: [1, 2]\n")
    assert changed_packs(desired, [same]) == []
    assert changed_packs(desired, [published("a: {b: [1, 2]}\nc: y\n")]) == ["virtual-machine-orchestrator"]
    assert changed_packs(desired, [published("a: {b: [1, 2]}\nc: x\n", tag="4.10.7")]) == \
        ["virtual-machine-orchestrator"]


def test_missing_and_extra_packs_count_as_changes():
    layers, errors = manifest_layers([{"name": "vmo-templates", "content": TEMPLATE}])
    assert errors == []
    desired = [vmo_pack("4.9.9", "p1", "r1", {"c": "x"})] + layers
    current = [published("c: x\n"), published_pack({"name": "old-layer", "type": "manifest"}, {})]
    assert changed_packs(desired, current) == ["vmo-templates", "old-layer"]


def test_manifests_compared_by_name_and_parsed_content():
    layers = manifest_layers([{"name": "vmo-templates", "content": TEMPLATE}])[0]
    ref = {"name": "vmo-templates", "tag": "1.0.0", "type": "manifest",
           "values": dump_yaml(layers[0]["values"]), "manifests": [{"name": "vmo-templates", "uid": "m1"}]}
    reformatted = "apiVersion: spectrocloud.com/v1\nkind: VmTemplate\nmetadata: {name: ubuntu}\nspec: {running: false}\n"
    assert changed_packs(layers, [published_pack(ref, {"vmo-templates": reformatted})]) == []
    edited = reformatted.replace("false", "true")
    assert changed_packs(layers, [published_pack(ref, {"vmo-templates": edited})]) == ["vmo-templates"]
    renamed = dict(ref, manifests=[{"name": "other", "uid": "m2"}])
    assert changed_packs(layers, [published_pack(renamed, {"other": reformatted})]) == ["vmo-templates"]


def test_update_bodies_keep_manifest_uids_matched_by_name():
    layers = manifest_layers([{"name": "vmo-templates", "content": TEMPLATE}])[0]
    ref = {"name": "vmo-templates", "type": "manifest", "manifests": [{"name": "vmo-templates", "uid": "m1"}]}
    entities = pack_entities(layers, [published_pack(ref, {"vmo-templates": TEMPLATE})])
    assert entities[0]["uid"] == MANIFEST_PACK_UID
    assert entities[0]["manifests"] == [{"name": "vmo-templates", "content": TEMPLATE, "uid": "m1"}]
    fresh = pack_entities(layers, [])
    assert fresh[0]["manifests"] == [{"name": "vmo-templates", "content": TEMPLATE}]


def test_vmo_pack_entity_carries_uid_registry_and_values_text():
    entity = pack_entities([vmo_pack("4.9.9", "p1", "r1", {"c": "x"})], [])[0]
    assert entity == {"name": "virtual-machine-orchestrator", "tag": "4.9.9", "type": "spectro", "layer": "addon",
                      "uid": "p1", "registryUid": "r1", "values": "c: x\n"}


@pytest.mark.parametrize("item, message", [
    ({"name": "Bad Name", "content": TEMPLATE}, "is not a valid layer name"),
    ({"name": "virtual-machine-orchestrator", "content": TEMPLATE}, "is used by another layer"),
    ({"name": "x", "content": "kind: [unclosed"}, "manifests[0] (x): content: not YAML"),
    ({"name": "x", "content": "kind: VmTemplate\n"}, "document 1 needs apiVersion, kind and metadata.name"),
    ({"name": "x", "content": ""}, "holds no object"),
    ({"name": "x", "content": 5}, "must be YAML text"),
])
def test_bad_manifest_layers(item, message):
    layers, errors = manifest_layers([item])
    assert layers == [] and len(errors) == 1 and message in errors[0]


def test_manifest_as_objects_is_dumped_to_yaml():
    layers, errors = manifest_layers([{"name": "rbac", "content": [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "b"}}]}])
    assert errors == [] and layers[0]["manifests"]["rbac"]["content"].count("kind: Namespace") == 2


def test_versions():
    assert parse_version("1.10.0") == (1, 10, 0)
    with pytest.raises(ValuesError, match="'1.0' is not a profile version"):
        parse_version("1.0")
    with pytest.raises(ValuesError):
        parse_version("v1.0.0")
    assert next_version([]) == "1.0.0"
    assert next_version(["1.0.0", "1.10.0", "1.9.3"]) == "1.10.1"


def test_labels_from_tags_and_labels():
    assert profile_labels(["env:lab", "vmo"], {"team": "infra"}) == {"env": "lab", "vmo": "spectro__tag",
                                                                     "team": "infra"}


def test_diff_text_shows_values_as_yaml():
    text = diff_text("vmo", "1.0.0", [vmo_pack("4.9.9", "p1", "r1", {"c": "x"})])
    assert "profile: vmo 1.0.0" in text and "c: x" in text
    assert diff_text("vmo", "1.0.0", []) == ""


# -- recovering a write whose answer was lost ----------------------------------------------------------------

class ProfileSearch:
    """Answers Palette's profile search with the given {version: uid}, or fails as told."""

    def __init__(self, found=None, failure=None):
        self.found, self.failure = found or {}, failure

    def list_all(self, *_args, **_kwargs):
        if self.failure:
            raise self.failure
        return [{"metadata": {"name": "vmo", "uid": uid, "annotations": {"scope": "project"}},
                 "specSummary": {"version": version}} for version, uid in self.found.items()]


def refused(status):
    def post():
        raise PaletteError(status, {"code": "X", "message": "refused %d" % status}, "POST", "/v1/clusterprofiles")
    return post


@pytest.mark.parametrize("status", [400, 409, 500])
def test_any_failed_create_adopts_the_version_the_lookup_finds(status):
    assert create_or_adopt(ProfileSearch({"1.0.0": "u1"}), "vmo", "1.0.0", None, refused(status)) == ("u1", True)


def test_a_failed_create_whose_lookup_finds_nothing_or_fails_raises_palettes_error():
    with pytest.raises(PaletteError, match="refused 500"):
        create_or_adopt(ProfileSearch({"2.0.0": "u2"}), "vmo", "1.0.0", None, refused(500))
    broken = ProfileSearch(failure=PaletteError(503, "down", "POST", "/v1/dashboard/clusterprofiles"))
    with pytest.raises(PaletteError, match="refused 400"):
        create_or_adopt(broken, "vmo", "1.0.0", None, refused(400))


class Deleter:
    def __init__(self, status):
        self.status = status

    def delete(self, path, scope=None):
        raise PaletteError(self.status, "no", "DELETE", path)


def test_a_delete_that_finds_the_profile_gone_is_done_other_refusals_fail():
    delete_profile(Deleter(404), "u1", None)
    with pytest.raises(PaletteError):
        delete_profile(Deleter(409), "u1", None)
