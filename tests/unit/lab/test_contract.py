"""The contract gate: it finds the collection's calls, and it fails on a call or a route the products lack."""

import ast
import re
import textwrap

from tests.gates import contract


def calls_in(source: str):
    """The (path template, ops) of the calls the gate finds in one module's source, in source order."""
    tree = ast.parse(textwrap.dedent(source))
    resolver = contract.Resolver(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("get", "post"):
            template = resolver.template(node.args[0], node)
            op = next((k.value for k in node.keywords if k.arg == "op"), None)
            found.append((node.lineno, template, resolver.op_values(op, node) if op is not None else ()))
    return [entry[1:] for entry in sorted(found)]


def test_templates_from_literals_formats_and_helpers():
    found = calls_in('''
        def rbacs_path(uid):
            return "/v1/spectroclusters/%s/config/rbacs" % uid

        def run(client, sid):
            path = rbacs_path(sid)
            client.get(path)
            client.get("/machines/%s/" % sid)
            client.get(f"/nodes/{sid}/results/")
    ''')
    assert [t for t, _ops in found] == ["/v1/spectroclusters/{}/config/rbacs", "/machines/{}/", "/nodes/{}/results/"]


def test_ops_narrowed_by_the_if_around_the_call_or_else_the_returned_steps():
    found = calls_in('''
        def next_step(machine):
            if machine:
                return "commission"
            return "deploy"

        def execute(client, action):
            if action in ("power_on", "power_off"):
                client.post("/machines/x/", op=action)
            else:
                client.post("/machines/x/", op=action)
            client.get("/tags/", op="describe")
    ''')
    assert found == [("/machines/x/", ("power_off", "power_on")), ("/machines/x/", ("commission", "deploy")),
                     ("/tags/", ("describe",))]


class _Handler:
    def __init__(self, *operations):
        self.spec_operations, self.product_source, self.__name__ = operations, "maas.py:f", "handler"


def _route(method, pattern, *operations, service="maas"):
    return contract.Route(service, method, re.compile("^" + pattern + "$"), _Handler(*operations))


ROUTES = [
    _route("GET", "/MAAS/api/2.0/machines/", "MachinesHandler_read", "MachinesHandler_power_parameters"),
    _route("POST", r"/MAAS/api/2.0/machines/(?P<sid>\w+)/", "MachineHandler_commission"),
]


def test_a_call_no_route_serves_is_a_problem():
    call = contract.Call("maas", "GET", "/general/", ("describe_power_types",), "x.py:1")
    assert contract.check_calls([call], ROUTES) == ["x.py:1: MAAS GET /general/ op=describe_power_types: "
                                                    "no simulator route serves it"]


def test_an_op_the_route_does_not_serve_is_a_problem():
    served = contract.Call("maas", "POST", "/machines/{}/", ("commission",), "x.py:1")
    unserved = contract.Call("maas", "POST", "/machines/{}/", ("deploy",), "x.py:2")
    plain = contract.Call("maas", "POST", "/machines/{}/", (), "x.py:3")
    problems = contract.check_calls([served, unserved, plain], ROUTES)
    assert [p.split(":")[1] for p in problems] == ["2", "3"]


def test_a_route_without_a_published_operation_is_a_problem():
    bare = contract.Route("maas", "GET", re.compile("^/MAAS/api/2.0/general/$"), lambda: None)
    assert "names no published operation" in contract.check_route_marks([bare])[0]


def test_operations_are_checked_against_the_spec_by_method_and_path():
    spec = {"maas": {"MachinesHandler_read": ("GET", "/MAAS/api/2.0/machines/"),
                     "MachinesHandler_power_parameters": ("GET", "/MAAS/api/2.0/machines/op-power_parameters"),
                     "MachineHandler_commission": ("POST", "/MAAS/api/2.0/machines/{}/op-commission")}}
    assert contract.check_against_spec(ROUTES, spec) == []
    wrong = _route("GET", "/MAAS/api/2.0/general/", "RackControllersHandler_describe_power_types")
    spec["maas"]["RackControllersHandler_describe_power_types"] = ("GET", "/MAAS/api/2.0/rackcontrollers/op-describe_power_types")
    problems = contract.check_against_spec([wrong], spec)
    assert any("none of RackControllersHandler_describe_power_types is this method and path" in p for p in problems)


def test_the_collection_and_the_simulators_keep_the_contract():
    """The whole gate on this checkout: every call served, every route named (and, with the specs, in them)."""
    routes = contract.simulator_routes()
    calls = list(contract.collection_calls())
    assert calls and routes
    problems = contract.check_calls(calls, routes) + contract.check_route_marks(routes)
    folder = contract.spec_dir()
    if folder is not None:
        problems += contract.check_against_spec(routes, contract.spec_operations(folder))
    assert problems == []
