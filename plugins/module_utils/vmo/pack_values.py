# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The VMO pack's values: the pack defaults deep-merged with the user's overrides, plus conveniences.

The pack has two values layouts. Up to 4.9 the UI settings live directly under
`charts.virtual-machine-orchestrator`; from 4.10 the VMO Manager sub-chart holds them under
`charts.virtual-machine-orchestrator.vmo-manager`. The layout is read from the pack's own default
values (a `vmo-manager` map exists only in the newer one), never guessed from the tag, so a pack
version this code has not seen still lands its settings in the right place.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import re

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.merge import deep_merge
from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import (
    YamlInputError, load_yaml, load_yaml_documents)

try:
    import yaml
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    yaml = None

VMO_PACK_NAME = "virtual-machine-orchestrator"
CHART = ("charts", VMO_PACK_NAME)
MANAGER = "vmo-manager"
LAYOUT_MANAGER = "vmo-manager"      # pack >= 4.10
LAYOUT_DASHBOARD = "vm-dashboard"   # pack <= 4.9
FEATURE_GATES = CHART + ("kubevirt", "kubevirtResource", "additionalFeatureGates")
USE_EMULATION = CHART + ("kubevirt", "kubevirtResource", "useEmulation")
CDI_FEATURE_GATES = CHART + ("cdi", "cdiResource", "additionalFeatureGates")
VM_NAMESPACES = CHART + ("vmEnabledNamespaces",)
FEATURE_GATE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ValuesError(ModuleFailure):
    """The values, or a convenience option, cannot be used; the message names the field."""


def parse_yaml(text, what):
    """A YAML mapping from `text`; `what` names the document in the error."""
    if isinstance(text, dict):
        return copy.deepcopy(text)
    if text is None or not str(text).strip():
        return {}
    try:
        data = load_yaml(text)
    except YamlInputError as err:
        raise ValuesError("%s: %s" % (what, err))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValuesError("%s: must be a YAML mapping, not %s" % (what, type(data).__name__))
    return data


def parse_yaml_documents(text, what):
    """Every document of a (multi-document) YAML text, empty documents dropped."""
    try:
        return [doc for doc in load_yaml_documents(text) if doc is not None]
    except YamlInputError as err:
        raise ValuesError("%s: %s" % (what, err))


def dump_yaml(data):
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)


def detect_layout(defaults):
    chart = _lookup(defaults, CHART)
    return LAYOUT_MANAGER if isinstance(chart, dict) and isinstance(chart.get(MANAGER), dict) else LAYOUT_DASHBOARD


def golden_images_path(layout):
    if layout == LAYOUT_MANAGER:
        return CHART + (MANAGER, "goldenImagesNamespace")
    return CHART + ("goldenImagesNamespace",)


def append_unique(existing, extra):
    """`existing` followed by the items of `extra` it lacks, order kept, duplicates dropped."""
    result = []
    for item in list(existing or []) + list(extra or []):
        if item not in result:
            result.append(item)
    return result


def validate_conveniences(options):
    """Errors in the convenience options, each naming the option and the reason."""
    errors = []
    for option in ("feature_gates_extra", "cdi_feature_gates_extra"):
        for gate in options.get(option) or []:
            if not isinstance(gate, str) or not FEATURE_GATE_NAME.match(gate):
                errors.append("%s: %r is not a feature gate name (letters and digits, such as GPU)" % (option, gate))
    for namespace in options.get("vm_namespaces") or []:
        if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
            errors.append("vm_namespaces: %r is not a valid namespace name" % (namespace,))
    golden = options.get("golden_images_namespace")
    if golden is not None and not DNS_LABEL.match(golden):
        errors.append("golden_images_namespace: %r is not a valid namespace name" % (golden,))
    return errors


def desired_values(defaults, overrides, options):
    """The VMO pack values: defaults, deep-merged with overrides, then the convenience options on top.

    `options` holds feature_gates_extra, cdi_feature_gates_extra (appended to the lists in the values),
    vm_namespaces (replaces vmEnabledNamespaces), golden_images_namespace and use_emulation.
    """
    layout = detect_layout(defaults)
    values = deep_merge(defaults, overrides)
    if options.get("feature_gates_extra"):
        _set(values, FEATURE_GATES, append_unique(_list_at(values, FEATURE_GATES), options["feature_gates_extra"]))
    if options.get("cdi_feature_gates_extra"):
        _set(values, CDI_FEATURE_GATES,
             append_unique(_list_at(values, CDI_FEATURE_GATES), options["cdi_feature_gates_extra"]))
    if options.get("vm_namespaces") is not None:
        _set(values, VM_NAMESPACES, append_unique([], options["vm_namespaces"]))
    if options.get("golden_images_namespace") is not None:
        _set(values, golden_images_path(layout), options["golden_images_namespace"])
    if options.get("use_emulation") is not None:
        _set(values, USE_EMULATION, bool(options["use_emulation"]))
    return values, layout


def feature_gates(values):
    return _list_at(values, FEATURE_GATES)


def _lookup(data, path):
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _list_at(values, path):
    found = _lookup(values, path)
    if found is None:
        return []
    if not isinstance(found, list):
        raise ValuesError("values: %s must be a list, not %s" % (".".join(path), type(found).__name__))
    return found


def _set(values, path, value):
    node = values
    for depth, key in enumerate(path[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            raise ValuesError("values: %s must be a mapping to set %s, not %s"
                              % (".".join(path[:depth + 1]), ".".join(path), type(child).__name__))
        node = child
    node[path[-1]] = value
