"""The one failure path of every module."""

import ast
from pathlib import Path

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure, run_module

MODULES = Path(__file__).resolve().parents[3] / "plugins" / "modules"


class FakeModule:
    def __init__(self):
        self.failed = None

    def fail_json(self, **result):
        self.failed = result


def test_a_failure_becomes_one_fail_json_with_every_problem_and_what_was_written():
    module = FakeModule()

    def runner(_module):
        raise ModuleFailure("2 machines failed", ["a: x", "b: y"], changed=True, machines=[{"hostname": "a"}])

    run_module(module, runner)
    assert module.failed == {"msg": "2 machines failed", "errors": ["a: x", "b: y"], "changed": True,
                             "machines": [{"hostname": "a"}]}


def test_anything_else_is_a_bug_and_keeps_its_traceback():
    def runner(_module):
        raise KeyError("status_name")

    with pytest.raises(KeyError):
        run_module(FakeModule(), runner)


@pytest.mark.parametrize("path", sorted(MODULES.glob("*.py")), ids=lambda p: p.stem)
def test_every_module_fails_through_run_module(path):
    tree = ast.parse(path.read_text())
    main = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "main")
    calls = [n.func.id for n in ast.walk(main) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert "run_module" in calls, "%s main() does not run through run_module" % path.name
    fails = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "fail_json"]
    assert fails == [], "%s calls fail_json itself; raise ModuleFailure instead" % path.name
