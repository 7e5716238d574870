"""YAML from users is parsed with bounded alias expansion: an alias bomb is an input error with no write.

Unbounded, the bomb below grows past a gigabyte and the module never ends; the messages asserted here come
from the bound itself, so a module that reports them did not expand the bomb.
"""

import uuid

from tests.lab.state import ADMIN_USER


def alias_bomb(levels=9):
    """A "billion laughs" of nested anchors: 9**10 strings once expanded, from ten lines of text."""
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels + 1):
        lines.append("l%d: &l%d [%s]" % (level, level, ", ".join(["*l%d" % (level - 1)] * 9)))
    return "\n".join(lines) + "\n"


def test_alias_bomb_in_profile_values_is_refused_before_anything_is_stored(run_module, palette):
    name = "vmo-yaml-bomb-%s" % uuid.uuid4().hex[:6]
    result = run_module("palette.vmo.vmo_profile", dict(palette.connection(), name=name, pack_tag="4.9.9",
                                                        values=alias_bomb()))
    assert result.get("failed") is True, result
    assert result["msg"].startswith("invalid input, nothing was changed: "), result["msg"]
    assert "values: too large: more than 1000000 nodes once its aliases are expanded" in result["msg"], result["msg"]
    # Other tests write to the shared simulator meanwhile, so the proof is per profile: none of this name exists
    # (an absent in check mode would delete one).
    absent = run_module("palette.vmo.vmo_profile", dict(palette.connection(), name=name, state="absent"), check=True)
    assert absent.get("failed") is not True and absent["changed"] is False, absent


def test_alias_bomb_in_an_operator_manifest_is_refused_before_any_write(run_module, audit, tmp_path):
    manifest = tmp_path / "kubevirt-operator.yaml"
    manifest.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb, namespace: default}\ndata:\n"
                        + "".join("  %s\n" % line for line in alias_bomb().splitlines()))
    mark = audit.mark()
    result = run_module("palette.vmo.kubevirt_install", {"kubevirt_operator_manifest": str(manifest),
                                                         "cdi_operator_manifest": str(manifest)})
    assert result.get("failed") is True, result
    assert "kubevirt_operator_manifest: %s: too large: more than 1000000 nodes" % manifest in result["msg"], result["msg"]
    # The module acts as the lab's admin (its kubeconfig); the lab's controllers write meanwhile.
    assert audit.mutations(mark, user=ADMIN_USER) == []
