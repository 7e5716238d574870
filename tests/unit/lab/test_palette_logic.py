"""The Palette simulator's pure logic: rate buckets, paging, values of both layouts, filters, rendered CRs."""

from pathlib import Path

import pytest
import yaml

from tests.lab.palette import agent, api, model, values

PACKS = Path(model.__file__).parent / "packs"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_rate_buckets_hold_rate_times_burst_refill_and_count_per_parent_resource():
    clock = Clock()
    limiter = api.RateLimiter(clock)
    assert [limiter.admit("/v1/packs/abc") for _index in range(50)] == [None] * 50
    assert limiter.admit("/v1/packs") == 1  # the same parent resource: the bucket is empty
    assert limiter.admit("/v1/dashboard/projects/metadata") is None  # another bucket
    clock.now += 0.35  # 10 a second: three tokens back
    assert [limiter.admit("/v1/packs") for _index in range(4)] == [None, None, None, 1]
    assert all(limiter.admit("/v1/clusterprofiles/x") is None for _index in range(250))
    assert limiter.admit("/v1/clusterprofiles/macros") == 1
    assert api.parent_resource("/v1/spectroclusters/u/assets/kubeconfig") == ("/v1/spectroclusters/u/assets", 10, 5)


def test_pages_of_50_follow_continue_tokens_to_the_end():
    items = list(range(120))
    first, meta = model.page(items, None, None)
    assert first == items[:50] and meta["count"] == 120 and meta["continue"]
    second, meta = model.page(items, None, meta["continue"])
    third, meta = model.page(items, 500, meta["continue"])
    assert second == items[50:100] and third == items[100:] and meta["continue"] == "" and meta["limit"] == 50
    with pytest.raises(model.ApiError) as refused:
        model.page(items, None, "not-a-token")
    assert refused.value.status == 400


@pytest.mark.parametrize("tag,manager", [("4.6.3", False), ("4.9.9", False), ("4.10.7", True)])
def test_default_values_of_each_tag_give_the_vmo_settings(tag, manager):
    document = values.parse((PACKS / f"virtual-machine-orchestrator-{tag}.yaml").read_text())
    assert values.is_manager_layout(document) is manager
    settings = values.vmo_settings(document)
    assert settings.feature_gates == ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks",
                                      "HotplugNICs", "VMLiveUpdateFeatures"]
    assert settings.golden_images_namespace == "vmo-golden-images" and settings.use_emulation is False
    assert settings.vm_namespaces == ["default", "virtual-machines"] and settings.cdi_feature_gates == []


def test_the_layout_is_read_from_the_document_not_the_tag():
    legacy = {"charts": {"virtual-machine-orchestrator": {"goldenImagesNamespace": "old", "vmo-manager": None}}}
    manager = {"charts": {"virtual-machine-orchestrator": {"goldenImagesNamespace": "old",
                                                           "vmo-manager": {"goldenImagesNamespace": "new"}}}}
    assert values.vmo_settings(legacy).golden_images_namespace == "old"
    assert values.vmo_settings(manager).golden_images_namespace == "new"


@pytest.mark.parametrize("text,words", [
    ("charts: [", "not valid YAML"),
    ("- a\n- b\n", "mapping"),
    ("just words", "mapping"),
])
def test_values_that_are_not_a_yaml_mapping_are_refused(text, words):
    with pytest.raises(values.ValuesError, match=words):
        values.parse(text)


@pytest.mark.parametrize("key,bad,words", [
    ("kubevirt.kubevirtResource.useEmulation", "true", "expected a boolean"),
    ("kubevirt.kubevirtResource.additionalFeatureGates", "Sidecar", "expected a list of strings"),
    ("cdi.cdiResource.additionalFeatureGates", [1], "expected a list of strings"),
    ("vmEnabledNamespaces", None, "expected a list of strings"),
])
def test_a_setting_of_the_wrong_type_names_its_key(key, bad, words):
    document = {"charts": {"virtual-machine-orchestrator": {}}}
    node = document["charts"]["virtual-machine-orchestrator"]
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = bad
    with pytest.raises(values.ValuesError, match=f"charts.virtual-machine-orchestrator.{key}: {words}"):
        values.vmo_settings(document)


def test_the_kubevirt_cr_carries_exactly_the_values_gates_and_the_cdi_cr_its_config():
    document = values.parse((PACKS / "virtual-machine-orchestrator-4.10.7.yaml").read_text())
    resource = document["charts"]["virtual-machine-orchestrator"]["kubevirt"]["kubevirtResource"]
    resource["additionalFeatureGates"] = ["Snapshot", "Sidecar"]
    resource["config"]["additionalDevConfig"] = {"featureGates": ["Ignored"], "memoryOvercommit": 150}
    settings = values.vmo_settings(document)
    kubevirt = agent.kubevirt_cr(settings)
    developer = kubevirt["spec"]["configuration"]["developerConfiguration"]
    assert developer == {"featureGates": ["Snapshot", "Sidecar"], "useEmulation": False, "memoryOvercommit": 150}
    assert kubevirt["spec"]["configuration"]["evictionStrategy"] == "LiveMigrate"
    cdi = agent.cdi_cr(settings)
    assert cdi["spec"]["config"] == {"featureGates": [], "filesystemOverhead": {"global": "0.08"},
                                     "uploadProxyURLOverride": ""}


def test_manifests_need_apiversion_kind_and_name():
    good = yaml.safe_dump_all([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}}, None])
    assert [d["kind"] for d in values.parse_manifest(good)] == ["ConfigMap"]
    with pytest.raises(values.ValuesError, match="document 1"):
        values.parse_manifest("kind: ConfigMap\n")


def test_pack_filters_in_the_terraform_syntax():
    summary = {"spec": {"name": "virtual-machine-orchestrator", "version": "4.10.7", "cloudTypes": ["all"]}}
    assert api.pack_filter_matches("spec.name=virtual-machine-orchestrator AND spec.version=4.10.7", summary)
    assert api.pack_filter_matches("spec.cloudTypes_in_maas,all", summary)
    assert not api.pack_filter_matches("spec.version=4.6.3", summary)
    with pytest.raises(model.ApiError):
        api.pack_filter_matches("spec.version", summary)


def test_cluster_search_by_name_as_the_sdk_sends_it():
    cluster = model.Cluster("u" * 24, "lab-cluster", "p" * 24)

    def by_name(name):
        condition = {"string": {"operator": "eq", "match": {"conjunction": "or", "values": [name]}}}
        nested = {"string": {"operator": "eq", "negation": True, "match": {"values": ["nested"]}}}
        return {"conjunction": "and", "filterGroups": [{"conjunction": "and", "filters": [
            {"property": "clusterName", "type": "string", "condition": condition},
            {"property": "environment", "type": "string", "condition": nested},
            {"property": "isDeleted", "type": "bool", "condition": {"bool": {"value": False}}}]}]}
    assert api.cluster_filter_matches(by_name("lab-cluster"), cluster)
    assert not api.cluster_filter_matches(by_name("other"), cluster)
    assert api.cluster_filter_matches({}, cluster)


def test_palette_bindings_become_kubernetes_bindings():
    binding = {"type": "RoleBinding", "namespace": "vms", "role": {"kind": "ClusterRole", "name": "spectro-vm-user"},
               "subjects": [{"type": "Group", "name": "ops"}, {"type": "ServiceAccount", "name": "sa", "namespace": "vms"}]}
    obj = agent.binding_object(binding, "spectro-on-demand-3", "c" * 24)
    assert obj["metadata"] == {"name": "spectro-on-demand-3", "namespace": "vms", "labels": {
        "spectrocloud.com/clusterRbac": "true", "spectrocloud.com/clusterId": "c" * 24}}
    assert obj["subjects"] == [{"kind": "Group", "name": "ops", "apiGroup": "rbac.authorization.k8s.io"},
                               {"kind": "ServiceAccount", "name": "sa", "namespace": "vms"}]
    with pytest.raises(model.ApiError, match="namespace is required"):
        model.check_binding(dict(binding, namespace=""), "rbacs[0].spec.bindings[0]")


# -- what the cluster reports around an attach --------------------------------------------------------------

def _published_manifest_profile(sim_model, name):
    body = {"metadata": {"name": name}, "spec": {"version": "1.0.0", "template": {"type": "add-on", "packs": [
        {"name": "layer", "type": "manifest", "manifests": [{"name": "m", "content": ""}]}]}}}
    return sim_model.create_profile(body, sim_model.project_uid(model.LAB_PROJECT), publish=True)


def _pack_statuses(sim_model, profile_uid):
    status = sim_model.cluster_view(sim_model.cluster)["status"]
    return {(p["name"], p["profileUid"]): (p["condition"]["type"], p["condition"]["status"])
            for p in status["packs"] if p["profileUid"] != sim_model.infra_profile_uid}


def test_a_reapply_keeps_the_earlier_ready_until_the_agent_picks_it_up_then_shows_not_ready():
    sim_model = model.PaletteModel()
    profile = _published_manifest_profile(sim_model, "reapplied")
    lab = sim_model.project_uid(model.LAB_PROJECT)
    first = sim_model.attach(sim_model.cluster, [{"uid": profile.uid}], lab, replace_all=False)[0]
    assert _pack_statuses(sim_model, profile.uid) == {}  # not picked up yet: nothing listed for a first attach
    sim_model.pick_up(first)
    sim_model.finish(first, {"layer": model.condition("Ready", "True", "Deployed", "")})
    assert _pack_statuses(sim_model, profile.uid) == {("layer", profile.uid): ("Ready", "True")}

    again = sim_model.attach(sim_model.cluster, [{"uid": profile.uid}], lab, replace_all=False)[0]
    assert _pack_statuses(sim_model, profile.uid) == {("layer", profile.uid): ("Ready", "True")}  # the earlier one
    sim_model.pick_up(again)
    assert _pack_statuses(sim_model, profile.uid) == {("layer", profile.uid): ("Ready", "False")}
    sim_model.finish(first, {"layer": model.condition("Error", "True", "Late", "")})  # a stale agent run is ignored
    assert _pack_statuses(sim_model, profile.uid) == {("layer", profile.uid): ("Ready", "False")}


def test_a_replace_shows_the_replaced_versions_packs_until_picked_up():
    sim_model = model.PaletteModel()
    lab = sim_model.project_uid(model.LAB_PROJECT)
    old = _published_manifest_profile(sim_model, "old")
    first = sim_model.attach(sim_model.cluster, [{"uid": old.uid}], lab, replace_all=False)[0]
    sim_model.pick_up(first)
    sim_model.finish(first, {"layer": model.condition("Ready", "True", "Deployed", "")})
    new = _published_manifest_profile(sim_model, "new")
    second = sim_model.attach(sim_model.cluster, [{"uid": new.uid, "replaceWithProfile": old.uid}], lab, False)[0]
    assert _pack_statuses(sim_model, new.uid) == {("layer", old.uid): ("Ready", "True")}
    sim_model.pick_up(second)
    assert _pack_statuses(sim_model, new.uid) == {("layer", new.uid): ("Ready", "False")}


def test_cluster_conditions_are_true_unless_nodes_are_held_not_ready():
    sim_model = model.PaletteModel()
    conditions = sim_model.cluster_view(sim_model.cluster)["status"]["conditions"]
    assert {c["type"]: c["status"] for c in conditions} == {"ControlPlaneReady": "True", "NodesReady": "True"}
    sim_model.cluster.nodes_not_ready_until = float("inf")
    conditions = sim_model.cluster_view(sim_model.cluster)["status"]["conditions"]
    assert {c["type"]: c["status"] for c in conditions} == {"ControlPlaneReady": "True", "NodesReady": "False"}


@pytest.mark.parametrize("status, code", [(409, "ClusterProfileAlreadyExists"), (400, "ClusterProfileAlreadyExists"),
                                          (500, "InternalError")])
def test_a_duplicate_create_or_clone_answers_the_configured_status_in_palettes_error_shape(status, code):
    sim_model = model.PaletteModel()
    sim_model.duplicate_status = status
    profile = _published_manifest_profile(sim_model, "twice")
    with pytest.raises(model.ApiError) as created:
        _published_manifest_profile(sim_model, "twice")
    with pytest.raises(model.ApiError) as cloned:
        sim_model.clone_profile(profile, {"metadata": {"name": "twice", "version": "1.0.0"}},
                                sim_model.project_uid(model.LAB_PROJECT))
    for err in (created.value, cloned.value):
        assert (err.status, err.code) == (status, code)
        assert sorted(err.body()) == ["code", "details", "message", "ref"]


def test_every_route_names_its_spec_operation_and_product_source():
    routes = api.PaletteApi(model.PaletteModel(), "key", None, None, "").routes
    assert routes and all(len(route) == 3 for route in routes)
    for method, pattern, handler in routes:
        operations = getattr(handler, "spec_operations", ())
        assert operations and all(op.lower().startswith("v1") for op in operations), (method, pattern.pattern)
        assert handler.product_source, (method, pattern.pattern)
