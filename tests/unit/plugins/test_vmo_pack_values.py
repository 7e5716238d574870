"""VMO pack values: deep merge, layout detection, and the conveniences on both layouts."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.merge import deep_merge
from ansible_collections.palette.vmo.plugins.module_utils.vmo.pack_values import (
    LAYOUT_DASHBOARD, LAYOUT_MANAGER, ValuesError, desired_values, detect_layout, feature_gates,
    parse_yaml, validate_conveniences)

VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]


def defaults(manager=False):
    chart = {"vmEnabledNamespaces": ["default", "virtual-machines"],
             "kubevirt": {"enabled": True, "kubevirtResource": {"useEmulation": False,
                                                                "additionalFeatureGates": list(VMO_GATES)}},
             "cdi": {"cdiResource": {"additionalFeatureGates": []}}}
    if manager:
        chart["vmo-manager"] = {"enabled": True, "goldenImagesNamespace": "vmo-golden-images"}
    else:
        chart["goldenImagesNamespace"] = "vmo-golden-images"
    return {"pack": {"namespace": "vm-dashboard"}, "charts": {"virtual-machine-orchestrator": chart}}


def chart(values):
    return values["charts"]["virtual-machine-orchestrator"]


def test_deep_merge_merges_maps_and_replaces_lists_and_scalars():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": "x"}
    merged = deep_merge(base, {"a": {"c": [3]}, "d": {"e": 1}})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": {"e": 1}}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": "x"}


def test_layout_comes_from_the_defaults_not_the_tag():
    assert detect_layout(defaults(manager=True)) == LAYOUT_MANAGER
    assert detect_layout(defaults()) == LAYOUT_DASHBOARD
    assert detect_layout({}) == LAYOUT_DASHBOARD


def test_extra_gates_are_appended_once_in_order():
    values = desired_values(defaults(), {}, {"feature_gates_extra": ["GPU", "Snapshot", "GPU", "Sidecar"]})[0]
    assert feature_gates(values) == VMO_GATES + ["GPU", "Sidecar"]


def test_overrides_then_conveniences():
    overrides = {"charts": {"virtual-machine-orchestrator": {"kubevirt": {"kubevirtResource": {
        "additionalFeatureGates": ["LiveMigration"]}}}}}
    values = desired_values(defaults(), overrides, {"feature_gates_extra": ["GPU"], "use_emulation": True,
                                                    "cdi_feature_gates_extra": ["HonorWaitForFirstConsumer"]})[0]
    resource = chart(values)["kubevirt"]["kubevirtResource"]
    assert resource == {"useEmulation": True, "additionalFeatureGates": ["LiveMigration", "GPU"]}
    assert chart(values)["cdi"]["cdiResource"]["additionalFeatureGates"] == ["HonorWaitForFirstConsumer"]
    assert chart(values)["kubevirt"]["enabled"] is True


@pytest.mark.parametrize("manager", [False, True])
def test_golden_images_namespace_lands_where_the_layout_keeps_it(manager):
    values, layout = desired_values(defaults(manager), {}, {"golden_images_namespace": "images",
                                                            "vm_namespaces": ["vms", "vms", "lab"]})
    assert chart(values)["vmEnabledNamespaces"] == ["vms", "lab"]
    if manager:
        assert layout == LAYOUT_MANAGER and chart(values)["vmo-manager"]["goldenImagesNamespace"] == "images"
        assert "goldenImagesNamespace" not in chart(values)
    else:
        assert layout == LAYOUT_DASHBOARD and chart(values)["goldenImagesNamespace"] == "images"


def test_no_options_leave_the_defaults_untouched():
    assert desired_values(defaults(), {}, {})[0] == defaults()


def test_convenience_on_a_non_mapping_names_the_path():
    overrides = {"charts": {"virtual-machine-orchestrator": {"kubevirt": "off"}}}
    with pytest.raises(ValuesError, match="charts.virtual-machine-orchestrator.kubevirt must be a mapping"):
        desired_values(defaults(), overrides, {"use_emulation": True})


def test_gates_that_are_not_a_list_are_an_error():
    overrides = {"charts": {"virtual-machine-orchestrator": {"kubevirt": {"kubevirtResource": {
        "additionalFeatureGates": "GPU"}}}}}
    with pytest.raises(ValuesError, match="additionalFeatureGates must be a list"):
        desired_values(defaults(), overrides, {"feature_gates_extra": ["Sidecar"]})


def test_parse_yaml_errors_name_the_document():
    with pytest.raises(ValuesError, match="values: not YAML"):
        parse_yaml("a: [1, 2", "values")
    with pytest.raises(ValuesError, match="values: must be a YAML mapping, not list"):
        parse_yaml("- a\n- b", "values")
    assert parse_yaml("", "values") == {} and parse_yaml({"a": 1}, "values") == {"a": 1}


def test_validate_conveniences_names_option_and_value():
    errors = validate_conveniences({"feature_gates_extra": ["GPU", "not a gate"], "vm_namespaces": ["Bad_NS"],
                                    "golden_images_namespace": "-x", "cdi_feature_gates_extra": [3]})
    assert len(errors) == 4
    assert "feature_gates_extra: 'not a gate'" in errors[0]
    assert "cdi_feature_gates_extra: 3" in errors[1]
    assert "vm_namespaces: 'Bad_NS'" in errors[2]
    assert "golden_images_namespace: '-x'" in errors[3]
