"""`make contract`: the collection's MAAS and Palette calls against the lab's simulators, and both against the specs.

The simulators are written by us, so they can quietly agree with our own mistakes. This gate keeps three
promises:

1. every MAAS and Palette request the collection makes (found in plugins/ by reading the code, not by
   running it) is a route its simulator serves: same method, same path, same MAAS `op=`;
2. every simulator route names the published operation it mirrors and the product source it follows
   (`simulator_http.mirrors`), so no route exists only because our client wanted it;
3. where the published specifications are at hand (PALETTE_VMO_SPEC_DIR, or the `specs` folder of a
   `shared` checkout beside this one), each named operation exists in them with the route's method and
   path; without them this part is reported as not checked. Where that checkout also has `tools/spec_check.py`
   (which checks parameters and body fields too), it runs with `--with-sim-routes` and must find nothing.

`python -m tests.gates.contract` prints one line per problem and exits 1 if there is any.
"""

import ast
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Set, Tuple

REPO_ROOT = Path(__file__).resolve().parents[2]
PLUGINS = REPO_ROOT / "plugins"
CLIENT_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE"}
MAAS_PREFIX = "/MAAS/api/2.0"
# MAAS operationIds are `<Handler>_<method>`; these four are the plain verbs, every other suffix is an `op=`.
MAAS_PLAIN = {"read": "GET", "create": "POST", "update": "PUT", "delete": "DELETE"}
PARAM = "{}"


@dataclass(frozen=True)
class Call:
    service: str  # "maas" or "palette"
    method: str
    path: str  # a template: path parameters as {}
    ops: Tuple[str, ...]  # MAAS op= values the call can send; () for none
    where: str


# -- the collection's calls -----------------------------------------------------------------------------

class Resolver:
    """Turns path expressions of one module into templates: literals, `%`, `+`, f-strings, one-assignment
    locals, and calls to module functions that return one."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.functions = {node.name: node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        self.parents = {}
        for node in ast.walk(tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node

    def enclosing_function(self, node: ast.AST) -> Optional[ast.FunctionDef]:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return None

    def template(self, expr: ast.AST, at: ast.AST, depth: int = 0) -> Optional[str]:
        if depth > 5:
            return None
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return expr.value
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Mod):
            left = self.template(expr.left, at, depth + 1)
            return re.sub(r"%[sd]", PARAM, left) if left is not None else None
        if isinstance(expr, ast.BinOp) and isinstance(expr.op, ast.Add):
            left, right = self.template(expr.left, at, depth + 1), self.template(expr.right, at, depth + 1)
            if left is not None and left.startswith("/"):
                return left + (right if right is not None else PARAM)
            return None
        if isinstance(expr, ast.JoinedStr):
            return "".join(v.value if isinstance(v, ast.Constant) else PARAM for v in expr.values)
        if isinstance(expr, ast.Name):
            value = self.assigned_once(expr.id, at)
            return self.template(value, value, depth + 1) if value is not None else None
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Name) and expr.func.id in self.functions:
            returns = [n.value for n in ast.walk(self.functions[expr.func.id]) if isinstance(n, ast.Return) and n.value]
            templates = {self.template(r, r, depth + 1) for r in returns}
            return templates.pop() if len(templates) == 1 else None
        return None

    def assigned_once(self, name: str, at: ast.AST) -> Optional[ast.AST]:
        scope = self.enclosing_function(at) or self.tree
        values = [node.value for node in ast.walk(scope) if isinstance(node, ast.Assign)
                  and any(isinstance(t, ast.Name) and t.id == name for t in node.targets)]
        return values[0] if len(values) == 1 else None

    def op_values(self, expr: ast.AST, call: ast.Call) -> Tuple[str, ...]:
        """The op= values a call can send: a literal, a name narrowed by the `if`s around the call, or else
        the string literals the module's functions return (the state machine's next step)."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return (expr.value,)
        if not isinstance(expr, ast.Name):
            return ()
        narrowed = self.narrowed(expr.id, call)
        if narrowed:
            return tuple(sorted(narrowed))
        value = self.assigned_once(expr.id, call)
        if value is not None and not isinstance(value, ast.Name):
            return self.op_values(value, call)
        returned = {node.value.value for node in ast.walk(self.tree) if isinstance(node, ast.Return)
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
                    and re.match(r"^[a-z_]+$", node.value.value)}
        return tuple(sorted(returned))

    def narrowed(self, name: str, node: ast.AST) -> Set[str]:
        """Literals `name` is compared with (== or in) by an `if` whose body holds the node."""
        child = node
        while child in self.parents:
            parent = self.parents[child]
            if isinstance(parent, ast.If) and child in parent.body and isinstance(parent.test, ast.Compare) \
                    and isinstance(parent.test.left, ast.Name) and parent.test.left.id == name \
                    and isinstance(parent.test.ops[0], (ast.Eq, ast.In)):
                values = set()
                for comparator in parent.test.comparators:
                    items = comparator.elts if isinstance(comparator, (ast.Tuple, ast.List, ast.Set)) else [comparator]
                    values.update(i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str))
                return values
            child = parent
        return set()


def _uses_maas_client(source: str) -> bool:
    return "maas_client" in source or "MaasClient" in source


def _path_argument(call: ast.Call, attr: str) -> Optional[ast.AST]:
    if attr == "call":
        return call.args[1] if len(call.args) > 1 else None
    return call.args[0] if call.args else None


def _method(call: ast.Call, attr: str) -> Optional[str]:
    if attr == "call":
        first = call.args[0] if call.args else None
        return first.value if isinstance(first, ast.Constant) else None
    if attr == "list_all":
        for keyword in call.keywords:
            if keyword.arg == "method" and isinstance(keyword.value, ast.Constant):
                return keyword.value.value
        return "GET"
    return CLIENT_METHODS[attr]


def collection_calls(root: Path = PLUGINS) -> Iterator[Call]:
    for path in sorted(root.rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        resolver, maas = Resolver(tree), _uses_maas_client(source)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in set(CLIENT_METHODS) | {"list_all", "call"}):
                continue
            argument = _path_argument(node, node.func.attr)
            template = resolver.template(argument, node) if argument is not None else None
            if not template or not template.startswith("/") or template.startswith(("/api/", "/apis/")):
                continue
            service = "palette" if template.startswith("/v1/") else "maas" if maas else None
            if service is None:
                continue
            op = next((k.value for k in node.keywords if k.arg == "op"), None)
            ops = resolver.op_values(op, node) if op is not None else ()
            yield Call(service, _method(node, node.func.attr), template.split("?")[0], ops,
                       "%s:%d" % (path.relative_to(REPO_ROOT), node.lineno))


# -- the simulators' routes ---------------------------------------------------------------------------

@dataclass
class Route:
    service: str
    method: str
    pattern: "re.Pattern"
    handler: object

    @property
    def operations(self) -> Tuple[str, ...]:
        return getattr(self.handler, "spec_operations", ())

    @property
    def source(self) -> str:
        return getattr(self.handler, "product_source", "")

    @property
    def template(self) -> str:
        text = re.sub(r"\(\?P<[^>]+>[^)]*\)", PARAM, self.pattern.pattern)
        return text.replace("\\", "").lstrip("^").rstrip("$")

    def served_ops(self) -> Set[str]:
        return {op.split("_", 1)[1] for op in self.operations if "_" in op and op.split("_", 1)[1] not in MAAS_PLAIN}

    def serves_plain(self) -> bool:
        if self.service == "palette":
            return True
        return any(op.split("_", 1)[1] == "read" and self.method == "GET" or
                   MAAS_PLAIN.get(op.split("_", 1)[1]) == self.method for op in self.operations if "_" in op)


def simulator_routes() -> List[Route]:
    sys.path.insert(0, str(REPO_ROOT))
    from tests.lab.maas.api import MaasApi
    from tests.lab.maas.model import MaasModel
    from tests.lab.palette.api import PaletteApi
    from tests.lab.palette.model import PaletteModel

    maas = MaasApi(MaasModel(), [], None)
    palette = PaletteApi(PaletteModel(), "", None, None, "")
    return [Route("maas", m, p, h) for m, p, h in maas.routes] + [Route("palette", m, p, h) for m, p, h in palette.routes]


def _sample(template: str) -> str:
    return template.replace(PARAM, "x1")


def route_for(call: Call, routes: List[Route]) -> Optional[Route]:
    prefix = MAAS_PREFIX if call.service == "maas" else ""
    url = prefix + _sample(call.path)
    for route in routes:
        if route.service == call.service and route.method == call.method and route.pattern.match(url):
            return route
    return None


def check_calls(calls: List[Call], routes: List[Route]) -> List[str]:
    problems = []
    for call in calls:
        route = route_for(call, routes)
        label = "%s %s %s%s" % (call.service.upper(), call.method, call.path, " op=%s" % "|".join(call.ops) if call.ops else "")
        if route is None:
            problems.append("%s: %s: no simulator route serves it" % (call.where, label))
            continue
        if call.service != "maas":
            continue
        unserved = sorted(set(call.ops) - route.served_ops())
        if unserved:
            problems.append("%s: %s: the simulator's %s serves no op %s" % (call.where, label, route.template,
                                                                            ", ".join(unserved)))
        if not call.ops and not route.serves_plain():
            problems.append("%s: %s: the simulator serves %s only with op=" % (call.where, label, route.template))
    return problems


def check_route_marks(routes: List[Route]) -> List[str]:
    problems = []
    for route in routes:
        name = getattr(route.handler, "__name__", repr(route.handler))
        if not route.operations:
            problems.append("%s route %s %s (%s): names no published operation (simulator_http.mirrors)"
                            % (route.service, route.method, route.template, name))
        elif not route.source:
            problems.append("%s route %s %s (%s): names no product source it follows"
                            % (route.service, route.method, route.template, name))
    return problems


# -- the published specifications ------------------------------------------------------------------

def spec_dir() -> Optional[Path]:
    candidates = [os.environ.get("PALETTE_VMO_SPEC_DIR"), REPO_ROOT.parent / "shared" / "specs"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "maas").is_dir() and (Path(candidate) / "palette").is_dir():
            return Path(candidate)
    return None


def spec_operations(folder: Path) -> Dict[str, Dict[str, Tuple[str, str]]]:
    """{service: {operationId: (METHOD, path template)}} from the MAAS OpenAPI and the Palette Swagger."""
    import yaml

    maas_doc = yaml.safe_load((folder / "maas" / "maas-openapi.yaml").read_text())
    palette_file = sorted((folder / "palette").glob("*.json"))[-1]
    palette_doc = json.loads(palette_file.read_text())
    found = {}
    for service, doc, prefix in (("maas", maas_doc, MAAS_PREFIX), ("palette", palette_doc, "")):
        table = found.setdefault(service, {})
        for path, item in doc.get("paths", {}).items():
            for method, operation in item.items():
                if isinstance(operation, dict) and operation.get("operationId"):
                    template = re.sub(r"\{[^}]+\}", PARAM, prefix + path)
                    table[operation["operationId"]] = (method.upper(), template)
    return found


def _spec_form(route: Route, operation: str) -> Tuple[str, str]:
    """The (METHOD, path) the spec gives an operation of this route: MAAS writes `?op=x` as `<path>op-x`."""
    suffix = operation.split("_", 1)[1] if route.service == "maas" and "_" in operation else None
    op = suffix if suffix and suffix not in MAAS_PLAIN else None
    return route.method, route.template + ("op-" + op if op else "")


def check_against_spec(routes: List[Route], operations: Dict[str, Dict[str, Tuple[str, str]]]) -> List[str]:
    """Each route is one of the operations its handler names, and each named operation is one of its routes."""
    problems, matched = [], set()
    for route in routes:
        where = "%s route %s %s" % (route.service, route.method, route.template)
        for operation in route.operations:
            known = operations[route.service].get(operation)
            if known is None:
                problems.append("%s: operation %s is not in the published spec" % (where, operation))
            elif known == _spec_form(route, operation):
                matched.add((id(route.handler), operation))
                matched.add(id(route))
        if route.operations and id(route) not in matched:
            problems.append("%s: none of %s is this method and path in the spec" % (where, ", ".join(route.operations)))
    for route in routes:
        for operation in route.operations:
            known = operations[route.service].get(operation)
            if known is not None and (id(route.handler), operation) not in matched:
                problems.append("%s route %s %s: operation %s is %s %s in the spec, which no route of this handler is"
                                % (route.service, route.method, route.template, operation, known[0], known[1]))
    return problems


def shared_spec_check(folder: Path) -> List[str]:
    """The mismatch lines of the shared spec_check tool, when it sits beside the specs."""
    import subprocess

    tool = folder.parent / "tools" / "spec_check.py"
    if not tool.is_file():
        return []
    answer = subprocess.run([sys.executable, str(tool), str(REPO_ROOT), str(folder), "--with-sim-routes"],
                            capture_output=True, text=True, check=False)
    lines = answer.stdout.splitlines()
    if answer.returncode not in (0, 1) or not lines or not lines[-1].startswith("spec_check:"):
        return ["spec_check could not run: %s" % (answer.stderr.strip() or answer.stdout.strip())]
    return ["spec_check: " + line for line in lines[:-1]]


def main() -> int:
    routes = simulator_routes()
    calls = list(collection_calls())
    problems = check_calls(calls, routes) + check_route_marks(routes)
    folder = spec_dir()
    if folder is not None:
        problems += check_against_spec(routes, spec_operations(folder)) + shared_spec_check(folder)
    for problem in problems:
        print(problem)
    spec_note = "checked against %s" % folder if folder else "not checked against the specs (none found)"
    print("contract: %d collection calls, %d simulator routes, %d problems; routes %s"
          % (len(calls), len(routes), len(problems), spec_note))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
