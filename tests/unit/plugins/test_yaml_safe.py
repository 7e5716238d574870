"""The bounded YAML loader: aliases expanded past a bound, oversized text and recursion are input errors."""

import time

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common import yaml_safe
from ansible_collections.palette.vmo.plugins.module_utils.kube.manifest import ManifestError, parse_manifest
from ansible_collections.palette.vmo.plugins.module_utils.vmo.pack_values import (
    ValuesError, parse_yaml, parse_yaml_documents)
from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import (
    YamlInputError, load_yaml, load_yaml_documents)


def alias_bomb(levels=9, width=9):
    """A "billion laughs": each anchor a list of `width` aliases of the one before (width**levels leaves)."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append("l%d: &l%d [%s]" % (level, level, ", ".join(["*l%d" % (level - 1)] * width)))
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_quickly():
    started = time.monotonic()
    with pytest.raises(YamlInputError, match="more than 1000000 nodes once its aliases are expanded"):
        load_yaml(alias_bomb())
    assert time.monotonic() - started < 2


def test_aliases_within_the_bound_load_as_usual():
    expected = {"base": {"cpu": 2}, "vm1": {"cpu": 2}, "vm2": {"cpu": 2}}
    assert load_yaml("base: &b {cpu: 2}\nvm1: *b\nvm2: *b\n") == expected
    assert load_yaml(alias_bomb(levels=3, width=3), max_nodes=1000)["l3"][0][0][0] == ["lol"] * 9


def test_the_bound_counts_expanded_nodes_not_text():
    # 4 levels of 3 aliases: 81 copies of a 10-node list, about 1000 nodes from a few lines
    with pytest.raises(YamlInputError, match="more than 500 nodes"):
        load_yaml(alias_bomb(levels=4, width=3), max_nodes=500)


def test_every_document_of_a_stream_is_bounded():
    with pytest.raises(YamlInputError, match="once its aliases are expanded"):
        load_yaml_documents("a: 1\n---\n" + alias_bomb())


def test_oversized_text_is_refused_before_parsing(monkeypatch):
    monkeypatch.setattr(yaml_safe, "MAX_TEXT_BYTES", 100)
    with pytest.raises(YamlInputError, match="too large: 101 bytes, more than the 100 allowed"):
        load_yaml("a: " + "x" * 98)


def test_recursive_alias_is_refused():
    with pytest.raises(YamlInputError, match="recursive alias"):
        load_yaml("a: &a [1, *a]\n")


def test_syntax_errors_and_unsafe_tags_stay_input_errors():
    with pytest.raises(YamlInputError, match="^not YAML: ") as err:
        load_yaml("a: [")
    assert err.value.syntax
    with pytest.raises(YamlInputError, match="not YAML: could not determine a constructor"):
        load_yaml("!!python/object/apply:os.system ['true']")


def test_pack_values_name_the_option_for_a_bomb():
    with pytest.raises(ValuesError, match="^values: too large: more than 1000000 nodes"):
        parse_yaml(alias_bomb(), "values")
    with pytest.raises(ValuesError, match="^manifests\\[0\\]: too large"):
        parse_yaml_documents(alias_bomb(), "manifests[0]")


def test_manifests_name_the_source_for_a_bomb():
    bomb = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata:\n" + "".join(
        "  " + line + "\n" for line in alias_bomb().splitlines())
    with pytest.raises(ManifestError, match="^op.yaml: too large: more than 1000000 nodes"):
        parse_manifest(bomb, "op.yaml")
