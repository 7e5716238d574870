# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one YAML loader for text users give (pack values, manifests): safe, and bounded.

`yaml.safe_load` refuses tags that run code, but not an alias bomb: nested anchors ("billion laughs")
parse into a small graph of shared objects that grows without bound as soon as anything copies or
serialises it. So the text size is capped, and every document's node graph is measured as it would be
once its aliases are expanded, before anything is built from it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure

try:
    import yaml

    HAS_YAML = True
    # The pure-Python loader: the C one composes documents where a subclass cannot measure them.
    _SAFE_LOADER = yaml.SafeLoader
except ImportError:  # pragma: no cover - PyYAML ships with ansible-core
    HAS_YAML = False
    _SAFE_LOADER = object

# A KubeVirt release's operator manifest is about 1 MiB and 100k nodes; these leave room for ten times that.
MAX_TEXT_BYTES = 16 * 1024 * 1024
MAX_EXPANDED_NODES = 1000000


class YamlInputError(ModuleFailure, ValueError):
    """The text is not YAML, or is larger (as text, or once its aliases are expanded) than allowed.

    `detail` is the reason alone; `syntax` tells a parse error from a refused size.
    """

    def __init__(self, detail, syntax=False):
        self.detail, self.syntax = detail, syntax
        super(YamlInputError, self).__init__(("not YAML: %s" if syntax else "%s") % detail)


def _expanded_size(node, sizes, limit):
    """Nodes under `node` with every alias expanded; stops counting past `limit`.

    `sizes` memoises by node identity, so shared (aliased) subtrees are measured once and the walk stays
    proportional to the text, whatever the expansion.
    """
    key = id(node)
    if key in sizes:
        if sizes[key] is None:
            raise YamlInputError("refused: a recursive alias (an anchor used inside itself)")
        return sizes[key]
    sizes[key] = None  # in progress
    total = 1
    if isinstance(node, yaml.SequenceNode):
        children = node.value
    elif isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    else:
        children = []
    for child in children:
        total += _expanded_size(child, sizes, limit)
        if total > limit:
            break
    sizes[key] = total
    return total


class BoundedSafeLoader(_SAFE_LOADER):
    """PyYAML's SafeLoader, refusing documents larger than `max_nodes` once their aliases are expanded."""

    max_nodes = MAX_EXPANDED_NODES

    def compose_document(self):
        node = super(BoundedSafeLoader, self).compose_document()
        if node is not None and _expanded_size(node, {}, self.max_nodes) > self.max_nodes:
            raise YamlInputError("too large: more than %d nodes once its aliases are expanded (an alias bomb?)"
                                 % self.max_nodes)
        return node


def _check_text(text):
    if not HAS_YAML:
        raise YamlInputError("PyYAML is required")
    size = len(text.encode("utf-8")) if isinstance(text, str) else len(text)
    if size > MAX_TEXT_BYTES:
        raise YamlInputError("too large: %d bytes, more than the %d allowed" % (size, MAX_TEXT_BYTES))


def _loader(max_nodes):
    if max_nodes is None or max_nodes == BoundedSafeLoader.max_nodes:
        return BoundedSafeLoader
    return type("BoundedSafeLoader%d" % max_nodes, (BoundedSafeLoader,), {"max_nodes": max_nodes})


def load_yaml(text, max_nodes=None):
    """The one document of `text`; YamlInputError when it is not YAML or is too large."""
    _check_text(text)
    try:
        return yaml.load(text, Loader=_loader(max_nodes))  # nosec B506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise YamlInputError(" ".join(str(err).split()), syntax=True)
    except RecursionError:
        raise YamlInputError("refused: nested too deeply")


def load_yaml_documents(text, max_nodes=None):
    """Every document of a multi-document `text` (empty ones included, as None)."""
    _check_text(text)
    try:
        return list(yaml.load_all(text, Loader=_loader(max_nodes)))  # nosec B506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise YamlInputError(" ".join(str(err).split()), syntax=True)
    except RecursionError:
        raise YamlInputError("refused: nested too deeply")
