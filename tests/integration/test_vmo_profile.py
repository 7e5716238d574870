"""vmo_profile against the Palette simulator: create, converge, change, new versions, check and diff modes,
both pack layouts, rate-limit storms and paged lists."""

import uuid

import pytest
import yaml

MODULE = "palette.vmo.vmo_profile"
PACK = "virtual-machine-orchestrator"
VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]


@pytest.fixture
def profile(palette, run_module):
    """A profile name of its own; every version of it is removed afterwards."""
    name = "vmo-%s" % uuid.uuid4().hex[:8]
    yield name
    run_module(MODULE, dict(palette.connection(), name=name, state="absent"))


def args(palette, name, **extra):
    return dict(palette.connection(), name=name, pack_tag=extra.pop("pack_tag", "4.9.9"), **extra)


def published(palette, uid):
    """{pack name: pack} of the published template, values parsed."""
    answer = palette.api("GET", "/v1/clusterprofiles/%s" % uid)
    assert answer.status_code == 200, answer.text
    packs = answer.json()["spec"]["published"]["packs"]
    return {p["name"]: dict(p, values=yaml.safe_load(p["values"] or "") or {}) for p in packs}


def versions(palette, name):
    items = []
    token = None
    while True:
        answer = palette.api("GET", "/v1/dashboard/clusterprofiles/metadata",
                             params={"continue": token} if token else None).json()
        items += [i for i in answer["items"] if i["metadata"]["name"] == name]
        token = (answer.get("listmeta") or {}).get("continue")
        if not token:
            return {i["spec"]["version"]: i["metadata"]["uid"] for i in items}


def chart(pack):
    return pack["values"]["charts"][PACK]


def gates(pack):
    return chart(pack)["kubevirt"]["kubevirtResource"]["additionalFeatureGates"]


def flatten(data, prefix=""):
    """{dotted.path: leaf} of a values document, to count exactly what changed."""
    if isinstance(data, dict) and data:
        out = {}
        for key, value in data.items():
            out.update(flatten(value, "%s%s." % (prefix, key)))
        return out
    return {prefix.rstrip("."): data}


def test_create_converge_and_change_one_gate(run_module, palette, profile):
    created = run_module(MODULE, args(palette, profile, description="VMO for the lab", tags=["env:lab", "vmo"]))
    assert created["changed"] is True and created["actions"] == ["create"], created
    assert created["version"] == "1.0.0" and created["layout"] == "vm-dashboard"
    assert created["changed_packs"] == [PACK]
    before = published(palette, created["uid"])[PACK]
    assert before["tag"] == "4.9.9" and gates(before) == VMO_GATES
    meta = palette.api("GET", "/v1/clusterprofiles/%s" % created["uid"]).json()["metadata"]
    assert meta["labels"] == {"env": "lab", "vmo": "spectro__tag"}
    assert meta["annotations"]["description"] == "VMO for the lab"

    mark = palette.mark()
    again = run_module(MODULE, args(palette, profile, description="VMO for the lab", tags=["env:lab", "vmo"]))
    assert again["changed"] is False and again["actions"] == [] and again["uid"] == created["uid"], again
    assert palette.writes_since(mark) == []

    changed = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]), diff=True)
    assert changed["changed"] is True and changed["actions"] == ["update"], changed
    assert changed["changed_packs"] == [PACK] and changed["uid"] == created["uid"]
    assert changed["feature_gates"] == VMO_GATES + ["GPU"]
    after = published(palette, created["uid"])[PACK]
    flat_before, flat_after = flatten(before["values"]), flatten(after["values"])
    differing = sorted(k for k in set(flat_before) | set(flat_after) if flat_before.get(k) != flat_after.get(k))
    assert differing == ["charts.%s.kubevirt.kubevirtResource.additionalFeatureGates" % PACK]
    assert gates(after) == VMO_GATES + ["GPU"]
    diff = changed["diff"]
    assert "GPU" in diff["after"] and "GPU" not in diff["before"]
    assert "+              - GPU" in changed["_stdout"] or "- GPU" in diff["after"]

    mark = palette.mark()
    settled = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
    assert settled["changed"] is False and palette.writes_since(mark) == []


def test_check_mode_predicts_and_writes_nothing(run_module, palette, profile):
    mark = palette.mark()
    planned = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]), check=True, diff=True)
    assert planned["changed"] is True and planned["actions"] == ["create"], planned
    assert "GPU" in planned["diff"]["after"] and planned["diff"]["before"] == ""
    assert palette.writes_since(mark) == [] and versions(palette, profile) == {}
    assert all(r["method"] == "GET" or not r["mutating"] for r in palette.requests_since(mark))

    run_module(MODULE, args(palette, profile))
    mark = palette.mark()
    predicted = run_module(MODULE, args(palette, profile, use_emulation=True), check=True)
    assert predicted["changed"] is True and predicted["actions"] == ["update"], predicted
    unchanged = run_module(MODULE, args(palette, profile), check=True)
    assert unchanged["changed"] is False
    assert palette.writes_since(mark) == []
    assert chart(published(palette, versions(palette, profile)["1.0.0"])[PACK])[
        "kubevirt"]["kubevirtResource"]["useEmulation"] is False


def test_new_version_mode_keeps_published_versions(run_module, palette, profile):
    first = run_module(MODULE, args(palette, profile, update_mode="new_version"))
    assert first["changed"] is True and first["version"] == "1.0.0"
    second = run_module(MODULE, args(palette, profile, update_mode="new_version", feature_gates_extra=["GPU"]))
    assert second["changed"] is True and second["actions"] == ["clone"], second
    assert second["version"] == "1.0.1" and second["uid"] != first["uid"]
    assert gates(published(palette, second["uid"])[PACK]) == VMO_GATES + ["GPU"]
    assert gates(published(palette, first["uid"])[PACK]) == VMO_GATES
    again = run_module(MODULE, args(palette, profile, update_mode="new_version", feature_gates_extra=["GPU"]))
    assert again["changed"] is False and again["version"] == "1.0.1"

    explicit = run_module(MODULE, args(palette, profile, update_mode="new_version", version="2.0.0",
                                       feature_gates_extra=["GPU", "Sidecar"]))
    assert explicit["changed"] is True and explicit["version"] == "2.0.0"
    assert sorted(versions(palette, profile)) == ["1.0.0", "1.0.1", "2.0.0"]

    mark = palette.mark()
    refused = run_module(MODULE, args(palette, profile, update_mode="new_version", version="1.0.0",
                                      feature_gates_extra=["Sidecar"]))
    assert refused.get("failed") is True and "never changes a published version" in refused["msg"]
    assert palette.writes_since(mark) == []

    removed = run_module(MODULE, dict(palette.connection(), name=profile, state="absent"))
    assert removed["changed"] is True and removed["versions"] == ["1.0.0", "1.0.1", "2.0.0"]
    assert versions(palette, profile) == {}
    gone = run_module(MODULE, dict(palette.connection(), name=profile, state="absent"))
    assert gone["changed"] is False


@pytest.mark.parametrize("tag, layout, where", [
    ("4.9.9", "vm-dashboard", ("goldenImagesNamespace",)),
    ("4.10.7", "vmo-manager", ("vmo-manager", "goldenImagesNamespace")),
])
def test_both_pack_layouts(run_module, palette, profile, tag, layout, where):
    result = run_module(MODULE, args(palette, profile, pack_tag=tag, golden_images_namespace="lab-images",
                                     vm_namespaces=["vms-a", "vms-b"], feature_gates_extra=["GPU"],
                                     cdi_feature_gates_extra=["HonorWaitForFirstConsumer"],
                                     values={"charts": {PACK: {"kubevirt": {"replicas": 2}}}}))
    assert result["changed"] is True and result["layout"] == layout, result
    pack = published(palette, result["uid"])[PACK]
    node = chart(pack)
    for key in where:
        node = node[key]
    assert node == "lab-images"
    if layout == "vmo-manager":
        assert "goldenImagesNamespace" not in chart(pack)
    assert chart(pack)["vmEnabledNamespaces"] == ["vms-a", "vms-b"]
    assert chart(pack)["kubevirt"]["replicas"] == 2 and chart(pack)["kubevirt"]["enabled"] is True
    assert chart(pack)["cdi"]["cdiResource"]["additionalFeatureGates"] == ["HonorWaitForFirstConsumer"]
    assert gates(pack) == VMO_GATES + ["GPU"]
    again = run_module(MODULE, args(palette, profile, pack_tag=tag, golden_images_namespace="lab-images",
                                    vm_namespaces=["vms-a", "vms-b"], feature_gates_extra=["GPU"],
                                    cdi_feature_gates_extra=["HonorWaitForFirstConsumer"],
                                    values="charts:\n  %s:\n    kubevirt:\n      replicas: 2\n" % PACK))
    assert again["changed"] is False, again


def test_pack_upgrade_in_place_changes_the_tag(run_module, palette, profile):
    run_module(MODULE, args(palette, profile, pack_tag="4.9.9"))
    upgraded = run_module(MODULE, args(palette, profile, pack_tag="4.10.7"))
    assert upgraded["changed"] is True and upgraded["changed_packs"] == [PACK]
    assert published(palette, upgraded["uid"])[PACK]["tag"] == "4.10.7"


def test_manifest_layers_are_compared_by_content(run_module, palette, profile):
    template = {"apiVersion": "spectrocloud.com/v1", "kind": "VmTemplate",
                "metadata": {"name": "ubuntu-lab"}, "spec": {"running": False, "template": {"spec": {}}}}
    layer = [{"name": "vmo-templates", "content": yaml.safe_dump(template)}]
    created = run_module(MODULE, args(palette, profile, manifests=layer))
    assert created["changed"] is True and created["changed_packs"] == [PACK, "vmo-templates"]
    assert published(palette, created["uid"])["vmo-templates"]["type"] == "manifest"
    # The same objects written differently (an object instead of text) are no change.
    same = run_module(MODULE, args(palette, profile, manifests=[{"name": "vmo-templates", "content": template}]))
    assert same["changed"] is False, same
    template["spec"]["running"] = True
    edited = run_module(MODULE, args(palette, profile, manifests=[{"name": "vmo-templates", "content": template}]))
    assert edited["changed"] is True and edited["changed_packs"] == ["vmo-templates"]
    dropped = run_module(MODULE, args(palette, profile))
    assert dropped["changed"] is True and dropped["changed_packs"] == ["vmo-templates"]
    assert list(published(palette, created["uid"])) == [PACK]


def test_tenant_scope(run_module, palette, profile):
    result = run_module(MODULE, args(palette, profile, scope="tenant"))
    assert result["changed"] is True
    tenant = palette.api("GET", "/v1/clusterprofiles/%s" % result["uid"], project="").json()
    assert tenant["metadata"]["annotations"]["scope"] == "tenant"
    again = run_module(MODULE, args(palette, profile, scope="tenant"))
    assert again["changed"] is False
    run_module(MODULE, dict(palette.connection(), name=profile, state="absent", scope="tenant"))
    assert palette.api("GET", "/v1/clusterprofiles/%s" % result["uid"], project="").status_code == 404


def test_rate_limit_storm_is_ridden_out(run_module, palette, profile):
    palette.faults(http_429=6, retry_after=1)
    mark = palette.mark()
    try:
        result = run_module(MODULE, args(palette, profile))
    finally:
        palette.faults(http_429=0)
    assert result["changed"] is True and result["actions"] == ["create"], result
    statuses = [r["status"] for r in palette.requests_since(mark)]
    assert statuses.count(429) >= 6
    assert len(versions(palette, profile)) == 1


def test_server_errors_and_dropped_connections_are_retried(run_module, palette, profile):
    palette.faults(http_5xx=2, status_5xx=503, drop_connections=1)
    try:
        result = run_module(MODULE, args(palette, profile))
    finally:
        palette.faults(http_5xx=0, drop_connections=0)
    assert result["changed"] is True, result
    assert list(versions(palette, profile)) == ["1.0.0"]


def test_more_than_fifty_profiles_are_paged(run_module, palette, profile):
    # Names that begin with the profile's own, so Palette's name search holds more than one page.
    seeded = palette.seed(60, prefix=profile)
    try:
        created = run_module(MODULE, args(palette, profile))
        assert created["changed"] is True
        mark = palette.mark()
        # Listed after the 60 seeded profiles, so found only on the second page.
        again = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
        assert again["changed"] is True and again["actions"] == ["update"] and again["uid"] == created["uid"]
        listed = [r for r in palette.requests_since(mark) if r["path"] == "/v1/dashboard/clusterprofiles"]
        assert len(listed) >= 2 and any("continue" in (r.get("query") or "") for r in listed), listed
    finally:
        for uid in seeded:
            palette.api("DELETE", "/v1/clusterprofiles/%s" % uid)


def test_a_lost_answer_to_the_create_neither_fails_nor_duplicates(run_module, palette, profile):
    # The create takes effect but its answer is lost; the retry meets Palette's 409 and adopts the version.
    palette.faults(lose_write_answers=1)
    try:
        result = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
    finally:
        palette.faults(lose_write_answers=0)
    assert result.get("failed") is not True and result["changed"] is True, result
    assert list(versions(palette, profile)) == ["1.0.0"]
    assert gates(published(palette, result["uid"])[PACK]) == VMO_GATES + ["GPU"]
    again = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
    assert again["changed"] is False, again


def test_a_lost_answer_to_the_clone_neither_fails_nor_duplicates(run_module, palette, profile):
    run_module(MODULE, args(palette, profile, update_mode="new_version"))
    palette.faults(lose_write_answers=1)
    try:
        result = run_module(MODULE, args(palette, profile, update_mode="new_version", feature_gates_extra=["GPU"]))
    finally:
        palette.faults(lose_write_answers=0)
    assert result.get("failed") is not True and result["version"] == "1.0.1", result
    assert sorted(versions(palette, profile)) == ["1.0.0", "1.0.1"]
    assert gates(published(palette, result["uid"])[PACK]) == VMO_GATES + ["GPU"]


def test_in_place_after_new_versions_changes_the_latest_version(run_module, palette, profile):
    run_module(MODULE, args(palette, profile, update_mode="new_version"))
    newer = run_module(MODULE, args(palette, profile, update_mode="new_version", feature_gates_extra=["GPU"]))
    assert newer["version"] == "1.0.1"
    in_place = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU", "Sidecar"]))
    assert in_place["changed"] is True and in_place["version"] == "1.0.1" and in_place["uid"] == newer["uid"]
    assert in_place["actions"] == ["update"], in_place
    assert sorted(versions(palette, profile)) == ["1.0.0", "1.0.1"]
    assert gates(published(palette, versions(palette, profile)["1.0.0"])[PACK]) == VMO_GATES


@pytest.mark.parametrize("duplicate_status", [409, 400, 500])
def test_a_lost_create_answer_is_adopted_whatever_palette_answers_the_retried_duplicate(run_module, palette, profile,
                                                                                        duplicate_status):
    # The published API documents only 201; the retried create meets a duplicate, answered 409, 400 or 500.
    mark = palette.mark()
    with palette.faulted(lose_write_answers=1, duplicate_profile_status=duplicate_status):
        result = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
    assert result.get("failed") is not True and result["changed"] is True, result
    creates = [r["status"] for r in palette.requests_since(mark) if r["path"] == "/v1/clusterprofiles"]
    assert creates == [0, duplicate_status], creates  # the lost answer (logged as 0), then the duplicate
    assert list(versions(palette, profile)) == ["1.0.0"]
    assert gates(published(palette, result["uid"])[PACK]) == VMO_GATES + ["GPU"]
    again = run_module(MODULE, args(palette, profile, feature_gates_extra=["GPU"]))
    assert again["changed"] is False, again


def test_a_lost_clone_answer_is_adopted_when_the_duplicate_is_a_500(run_module, palette, profile):
    run_module(MODULE, args(palette, profile, update_mode="new_version"))
    with palette.faulted(lose_write_answers=1, duplicate_profile_status=500):
        result = run_module(MODULE, args(palette, profile, update_mode="new_version", feature_gates_extra=["GPU"]))
    assert result.get("failed") is not True and result["version"] == "1.0.1", result
    assert sorted(versions(palette, profile)) == ["1.0.0", "1.0.1"]
    assert gates(published(palette, result["uid"])[PACK]) == VMO_GATES + ["GPU"]


def test_a_refused_create_that_made_nothing_fails_with_palettes_own_error(run_module, palette, profile):
    # A 500 is not retried (as Palette's SDK does not); the lookup after it finds no profile, so the error stands.
    mark = palette.mark()
    with palette.faulted(refuse_writes=1, refuse_status=500):
        result = run_module(MODULE, args(palette, profile))
    assert result.get("failed") is True, result
    assert "POST /v1/clusterprofiles: HTTP 500: injected refusal: the request was not carried out (InternalError)" \
        in result["msg"], result["msg"]
    assert [r["method"] for r in palette.writes_since(mark)] == ["POST"]
    assert versions(palette, profile) == {}


def test_a_rate_limit_storm_without_retry_after_is_ridden_out_on_backoff(run_module, palette, profile):
    # Palette's SDK never reads Retry-After; a 429 without it is retried on the client's own backoff.
    mark = palette.mark()
    with palette.faulted(http_429=6, retry_after_header=False):
        result = run_module(MODULE, args(palette, profile))
    assert result["changed"] is True and result["actions"] == ["create"], result
    assert [r["status"] for r in palette.requests_since(mark)].count(429) == 6
    assert len(versions(palette, profile)) == 1


def test_absent_whose_delete_answer_is_lost_is_done(run_module, palette, profile):
    created = run_module(MODULE, args(palette, profile))
    mark = palette.mark()
    with palette.faulted(lose_write_answers=1):
        removed = run_module(MODULE, dict(palette.connection(), name=profile, state="absent"))
    assert removed.get("failed") is not True and removed["changed"] is True, removed
    deletes = [r["status"] for r in palette.writes_since(mark)]
    assert deletes == [0, 404], deletes  # the lost answer, then the retry finds it gone
    assert palette.api("GET", "/v1/clusterprofiles/%s" % created["uid"]).status_code == 404
    gone = run_module(MODULE, dict(palette.connection(), name=profile, state="absent"))
    assert gone["changed"] is False
