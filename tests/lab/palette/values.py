"""Reading a VMO pack's values document: YAML parsing, the two layouts, typed settings.

Pure logic (no network), shared by the API (values that are not YAML are a 400) and the agent (values
of the wrong type move the pack to Error).
"""

from dataclasses import dataclass
from typing import Any, List, Optional

import yaml

CHART = "charts.virtual-machine-orchestrator"
KUBEVIRT_RESOURCE = CHART + ".kubevirt.kubevirtResource"
CDI_RESOURCE = CHART + ".cdi.cdiResource"
# Packs from 4.10.0 move the dashboard settings into the vmo-manager sub-chart.
MANAGER = CHART + ".vmo-manager"


class ValuesError(ValueError):
    """A values document Palette refuses (not YAML) or the pack cannot install (wrong types)."""


def parse(text: Optional[str]) -> dict:
    """The values as a mapping; an empty document is an empty mapping."""
    try:
        document = yaml.safe_load(text or "")
    except yaml.YAMLError as err:
        raise ValuesError(f"values are not valid YAML: {err}".replace("\n", " ")) from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ValuesError(f"values must be a YAML mapping, not a {type(document).__name__}")
    return document


def lookup(values: dict, dotted: str, default: Any = None) -> Any:
    """The value at a dotted path (keys never contain dots in the VMO pack), or default."""
    node: Any = values
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return default
        node = node[key]
    return node


def is_manager_layout(values: dict) -> bool:
    """True for the >= 4.10 layout; decided by the document, not by the tag."""
    return isinstance(lookup(values, MANAGER), dict)


def _typed(values: dict, dotted: str, kind: type, default: Any) -> Any:
    value = lookup(values, dotted, default)
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise ValuesError(f"{dotted}: expected a list of strings, got {value!r}")
    elif kind is bool:
        if not isinstance(value, bool):
            raise ValuesError(f"{dotted}: expected a boolean, got {value!r}")
    elif kind is dict:
        if not isinstance(value, dict):
            raise ValuesError(f"{dotted}: expected a mapping, got {value!r}")
    elif not isinstance(value, str) or not value:
        raise ValuesError(f"{dotted}: expected a non-empty string, got {value!r}")
    return value


@dataclass
class VmoSettings:
    """What the agent needs from a VMO pack's values to configure the cluster."""

    pack_namespace: str
    kubevirt_namespace: str
    feature_gates: List[str]
    use_emulation: bool
    eviction_strategy: Optional[str]
    vm_rollout_strategy: Optional[str]
    kubevirt_additional_config: dict
    kubevirt_additional_dev_config: dict
    kubevirt_uninstall_strategy: Optional[str]
    workload_update_methods: Optional[List[str]]
    cdi_feature_gates: List[str]
    cdi_additional_config: dict
    cdi_additional_spec: dict
    vm_namespaces: List[str]
    golden_images_namespace: str


def _optional_str(values: dict, dotted: str) -> Optional[str]:
    if lookup(values, dotted) is None:
        return None
    return _typed(values, dotted, str, None)


def vmo_settings(values: dict) -> VmoSettings:
    """The settings of a VMO pack document; ValuesError names the first key of the wrong type."""
    golden = (MANAGER if is_manager_layout(values) else CHART) + ".goldenImagesNamespace"
    methods_key = KUBEVIRT_RESOURCE + ".workloadsUpdateStrategy.workloadUpdateMethods"
    return VmoSettings(
        pack_namespace=_typed(values, "pack.namespace", str, "vm-dashboard"),
        kubevirt_namespace=_typed(values, CHART + ".kubevirt.namespace", str, "kubevirt"),
        feature_gates=_typed(values, KUBEVIRT_RESOURCE + ".additionalFeatureGates", list, []),
        use_emulation=_typed(values, KUBEVIRT_RESOURCE + ".useEmulation", bool, False),
        eviction_strategy=_optional_str(values, KUBEVIRT_RESOURCE + ".config.evictionStrategy"),
        vm_rollout_strategy=_optional_str(values, KUBEVIRT_RESOURCE + ".config.vmRolloutStrategy"),
        kubevirt_additional_config=_typed(values, KUBEVIRT_RESOURCE + ".config.additionalConfig", dict, {}),
        kubevirt_additional_dev_config=_typed(values, KUBEVIRT_RESOURCE + ".config.additionalDevConfig", dict, {}),
        kubevirt_uninstall_strategy=_optional_str(values, KUBEVIRT_RESOURCE + ".uninstallStrategy"),
        workload_update_methods=(None if lookup(values, methods_key) is None
                                 else _typed(values, methods_key, list, [])),
        cdi_feature_gates=_typed(values, CDI_RESOURCE + ".additionalFeatureGates", list, []),
        cdi_additional_config=_typed(values, CDI_RESOURCE + ".additionalConfig", dict, {}),
        cdi_additional_spec=_typed(values, CDI_RESOURCE + ".additionalSpec", dict, {}),
        vm_namespaces=_typed(values, CHART + ".vmEnabledNamespaces", list, []),
        golden_images_namespace=_typed(values, golden, str, "vmo-golden-images"),
    )


def parse_manifest(text: str) -> List[dict]:
    """The objects of a manifest layer (multi-document YAML); each must have apiVersion, kind and a name."""
    try:
        documents = [d for d in yaml.safe_load_all(text or "") if d is not None]
    except yaml.YAMLError as err:
        raise ValuesError(f"manifest is not valid YAML: {err}".replace("\n", " ")) from None
    for index, document in enumerate(documents):
        if not isinstance(document, dict) or not document.get("apiVersion") or not document.get("kind") \
                or not (document.get("metadata") or {}).get("name"):
            raise ValuesError(f"manifest document {index + 1} needs apiVersion, kind and metadata.name")
    return documents
