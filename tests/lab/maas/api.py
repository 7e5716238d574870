"""The MAAS simulator's HTTP API: `/MAAS/api/2.0/` with OAuth 1.0a PLAINTEXT, `op=` verbs, MAAS's codes.

Every request is logged as one JSON line (method, path, op, status, whether it could write), so tests
can prove that check mode wrote nothing. `/__lab__/` (loopback only, no OAuth) lets tests inject faults
and change durations; a real MAAS has no such path and the collection never calls it.
"""

import functools
import json
import re
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..simulator_http import RequestLog, VerbHandler
from . import model
from .model import BadRequest, MaasModel, Machine, NotFound, StateViolation

API = "/MAAS/api/2.0"
VERSION = {"capabilities": ["networks-management", "static-ipaddresses", "ipv6-deployment-ubuntu",
                            "devices-management", "storage-deployment-ubuntu", "network-deployment-ubuntu",
                            "bridging-interface-ubuntu", "bridging-automatic-ubuntu", "authenticate-api"],
           "version": "3.6.2", "subversion": "lab-simulator"}
BOOT_RESOURCES = [{"id": i + 1, "type": "Synced", "name": "ubuntu/%s" % d, "architecture": "amd64/ga-%s" % v,
                   "resource_uri": "%s/boot-resources/%d/" % (API, i + 1)}
                  for i, (d, v) in enumerate((("jammy", "22.04"), ("noble", "24.04"), ("focal", "20.04")))]


class ApiKey:
    def __init__(self, key: str, username: str = "admin"):
        self.consumer, self.token, self.secret = key.split(":")
        self.username = username


def parse_oauth(header: str) -> Dict[str, str]:
    if not header.startswith("OAuth "):
        return {}
    params = {}
    for part in re.findall(r'(\w+)="([^"]*)"', header):
        params[part[0]] = unquote(part[1])
    return params


REQUIRED_OAUTH = ("oauth_consumer_key", "oauth_token", "oauth_signature", "oauth_signature_method",
                  "oauth_timestamp", "oauth_nonce")


def authenticate(header: str, keys: List[ApiKey]) -> Optional[ApiKey]:
    """The key a PLAINTEXT-signed header proves, or None (MAAS answers 401)."""
    params = parse_oauth(header or "")
    if any(name not in params for name in REQUIRED_OAUTH) or params["oauth_signature_method"] != "PLAINTEXT":
        return None
    for key in keys:
        # PLAINTEXT: the signature is consumer secret (empty for MAAS) & token secret.
        if (params["oauth_consumer_key"], params["oauth_token"]) == (key.consumer, key.token) \
                and params["oauth_signature"] == "&" + key.secret:
            return key
    return None


def machine_json(m: Machine, model_: MaasModel) -> dict:
    interfaces = []
    for index, mac in enumerate(m.macs):
        links = [{"id": index + 1, "mode": "auto", "ip_address": ip, "subnet": {"cidr": "10.20.0.0/16"}}
                 for ip in (m.ip_addresses if index == 0 else [])]
        interfaces.append({"id": index + 1, "name": "eth%d" % index, "type": "physical", "mac_address": mac,
                           "enabled": True, "links": links})
    zone = model_.zones.get(m.zone, {"id": 0, "name": m.zone, "description": ""})
    pool = model_.pools.get(m.pool, {"id": 0, "name": m.pool, "description": ""})
    commissioning = {model.READY: 2, model.DEPLOYED: 2, model.FAILED_COMMISSIONING: 3, model.COMMISSIONING: 1}
    status = commissioning.get(m.status, 2 if m.commissioned else -1)
    return {
        "system_id": m.system_id, "hostname": m.hostname, "description": m.description,
        "domain": {"id": 0, "name": m.domain}, "fqdn": "%s.%s" % (m.hostname, m.domain),
        "owner": m.owner, "architecture": m.architecture, "cpu_count": m.cpu_count, "memory": m.memory,
        "storage": 500000.0 if m.commissioned else 0.0,
        "status": m.status, "status_name": model.STATUS_NAMES[m.status], "status_message": m.status_message,
        "status_action": "", "simple_status": model.SIMPLE_STATUS.get(m.status, "Other"),
        "power_type": m.power_type, "power_state": m.power_state, "tag_names": sorted(m.tags),
        "ip_addresses": list(m.ip_addresses), "interface_set": interfaces,
        "boot_interface": interfaces[0] if interfaces else None,
        "zone": zone, "pool": pool, "osystem": m.osystem, "distro_series": m.distro_series,
        "hwe_kernel": m.hwe_kernel, "min_hwe_kernel": "", "locked": m.locked, "netboot": m.status != model.DEPLOYED,
        "node_type": 0, "node_type_name": "Machine", "commissioning_status": status,
        "commissioning_status_name": {2: "Passed", 3: "Failed", 1: "Running"}.get(status, "None"),
        "current_commissioning_result_id": 1 if m.results else None,
        "resource_uri": "%s/machines/%s/" % (API, m.system_id),
    }


def parse_form(content_type: str, body: bytes) -> Dict[str, List[str]]:
    if not body:
        return {}
    if content_type.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + body)
        form: Dict[str, List[str]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            form.setdefault(name, []).append(payload.decode("utf-8", "replace"))
        return form
    return parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)


Route = Tuple[str, "re.Pattern", Callable]


class MaasApi:
    """Routes and handlers; independent of the HTTP server so it can be tested directly."""

    def __init__(self, model_: MaasModel, keys: List[ApiKey], log: RequestLog):
        self.model, self.keys, self.log = model_, keys, log
        self.routes: List[Route] = []
        for method, pattern, handler in (
            ("GET", r"/version/", self.version), ("GET", r"/users/", self.users),
            ("GET", r"/machines/", self.machines_get), ("POST", r"/machines/", self.machines_post),
            ("GET", r"/machines/(?P<sid>\w+)/", self.machine_get), ("PUT", r"/machines/(?P<sid>\w+)/", self.machine_put),
            ("DELETE", r"/machines/(?P<sid>\w+)/", self.machine_delete),
            ("POST", r"/machines/(?P<sid>\w+)/", self.machine_op),
            ("GET", r"/nodes/(?P<sid>\w+)/results/", self.results),
            ("GET", r"/tags/", self.tags_get), ("POST", r"/tags/", self.tags_post),
            ("GET", r"/tags/(?P<name>[\w-]+)/", self.tag_get), ("POST", r"/tags/(?P<name>[\w-]+)/", self.tag_op),
            ("DELETE", r"/tags/(?P<name>[\w-]+)/", self.tag_delete),
            ("GET", r"/zones/", self.zones_get), ("POST", r"/zones/", self.zones_post),
            ("GET", r"/zones/(?P<name>[\w-]+)/", self.zone_get),
            ("DELETE", r"/zones/(?P<name>[\w-]+)/", self.zone_delete),
            ("GET", r"/resourcepools/", self.pools_get), ("POST", r"/resourcepools/", self.pools_post),
            ("GET", r"/resourcepool/(?P<id>\d+)/", self.pool_get),
            ("DELETE", r"/resourcepool/(?P<id>\d+)/", self.pool_delete),
            ("GET", r"/boot-resources/", self.boot_resources),
            ("GET", r"/general/", self.general),
        ):
            self.routes.append((method, re.compile("^" + API + pattern + "$"), handler))

    # -- dispatch ---------------------------------------------------------------------------------

    def handle(self, method: str, target: str, headers, body: bytes) -> Tuple[int, object]:
        url = urlsplit(target)
        query = parse_qs(url.query, keep_blank_values=True)
        op = (query.get("op") or [None])[0]
        form = parse_form(headers.get("Content-Type", ""), body) if method in ("POST", "PUT") else {}
        op = op or (form.get("op") or [None])[0]
        key = authenticate(headers.get("Authorization", ""), self.keys)
        if key is None and url.path != API + "/version/":  # MAAS answers its version anonymously
            return 401, "Authorization Error: Invalid API key."
        self.model.advance()
        for route_method, pattern, handler in self.routes:
            match = pattern.match(url.path)
            if match and route_method == method:
                params = dict(query)
                params.update(form)
                try:
                    return handler(key=key, op=op, params=params, **match.groupdict())
                except NotFound as err:
                    return 404, str(err)
                except StateViolation as err:
                    return 409, str(err)
                except BadRequest as err:
                    return 400, err.errors
        if any(pattern.match(url.path) for _method, pattern, _handler in self.routes):
            return 405, "Method not allowed"
        return 404, "Unknown API endpoint: %s." % url.path

    # -- handlers ---------------------------------------------------------------------------------

    def version(self, **_):
        return 200, VERSION

    def users(self, key, op, **_):
        if op != "whoami":
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, {"username": key.username, "email": "%s@lab.invalid" % key.username, "is_superuser": True,
                     "is_local": True, "resource_uri": "%s/users/%s/" % (API, key.username)}

    def _filter(self, params) -> List[Machine]:
        def values(name):
            return [v for v in params.get(name) or [] if v != ""]
        machines = sorted(self.model.machines.values(), key=lambda m: m.hostname)
        if values("hostname"):
            machines = [m for m in machines if m.hostname in values("hostname")]
        if values("mac_address"):
            wanted = {v.lower() for v in values("mac_address")}
            machines = [m for m in machines if wanted & set(m.macs)]
        ids = values("id") + values("system_id")
        if ids:
            machines = [m for m in machines if m.system_id in ids]
        if values("status"):
            machines = [m for m in machines if model.STATUS_NAMES[m.status].lower().replace(" ", "_") in
                        [s.lower() for s in values("status")]]
        if values("simple_status"):
            machines = [m for m in machines if model.SIMPLE_STATUS.get(m.status, "Other").lower() in
                        [s.lower() for s in values("simple_status")]]
        for name in ("pool", "zone", "domain"):
            if values(name):
                machines = [m for m in machines if getattr(m, name) in values(name)]
        if values("tags"):
            machines = [m for m in machines if all(t in m.tags for t in values("tags"))]
        return machines

    def machines_get(self, op, params, **_):
        if op == "power_parameters":
            ids = params.get("id") or list(self.model.machines)
            return 200, {sid: dict(self.model.machines[sid].power_parameters, power_type=self.model.machines[sid].power_type)
                         for sid in ids if sid in self.model.machines}
        if op == "is_registered":
            mac = (params.get("mac_address") or [""])[0].lower()
            return 200, any(mac in m.macs for m in self.model.machines.values())
        if op:
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, [machine_json(m, self.model) for m in self._filter(params)]

    def machines_post(self, key, op, params, **_):
        if op == "allocate":
            return 200, machine_json(self.model.allocate(params, key.username), self.model)
        if op == "release":
            for sid in params.get("machines") or []:
                self.model.release(self.model.machine(sid), params)
            return 200, [machine_json(self.model.machine(s), self.model) for s in params.get("machines") or []]
        if op:
            return 400, "Unrecognised signature: method=POST op=%s" % op
        return 200, machine_json(self.model.create_machine(params), self.model)

    def machine_get(self, sid, op, **_):
        machine = self.model.machine(sid)
        if op == "query_power_state":
            return 200, {"state": machine.power_state}
        if op == "power_parameters":
            return 200, dict(machine.power_parameters)
        if op:
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, machine_json(machine, self.model)

    def machine_put(self, sid, params, **_):
        return 200, machine_json(self.model.update_machine(self.model.machine(sid), params), self.model)

    def machine_delete(self, sid, **_):
        self.model.delete_machine(self.model.machine(sid))
        return 204, None

    def machine_op(self, sid, op, params, key, **_):
        machine = self.model.machine(sid)
        value = functools.partial(model.form_value, params)
        actions = {
            "commission": lambda: self.model.commission(machine),
            "deploy": lambda: self.model.deploy(machine, params, key.username),
            "release": lambda: self.model.release(machine, params),
            "abort": lambda: self.model.abort(machine),
            "mark_broken": lambda: self.model.mark_broken(machine, value("comment") or ""),
            "mark_fixed": lambda: self.model.mark_fixed(machine),
            "lock": lambda: self.model.set_lock(machine, True),
            "unlock": lambda: self.model.set_lock(machine, False),
            "power_on": lambda: self.model.power(machine, "on"),
            "power_off": lambda: self.model.power(machine, "off"),
        }
        if op not in actions:
            return 400, "Unrecognised signature: method=POST op=%s" % op
        actions[op]()
        return 200, machine_json(machine, self.model)

    def results(self, sid, **_):
        machine = self.model.machine(sid)
        if not machine.results:
            return 200, []
        failed = any(r["status_name"] == "Failed" for r in machine.results)
        return 200, [{"id": 1, "type": 0, "type_name": "Commissioning", "status": 3 if failed else 2,
                      "status_name": "Failed" if failed else "Passed", "results": machine.results,
                      "resource_uri": "%s/nodes/%s/results/1/" % (API, sid)}]

    @staticmethod
    def _tag_json(tag):
        return {"name": tag["name"], "comment": tag["comment"], "definition": tag["definition"],
                "kernel_opts": tag["kernel_opts"], "resource_uri": "%s/tags/%s/" % (API, tag["name"])}

    def tags_get(self, **_):
        return 200, [self._tag_json(t) for t in sorted(self.model.tags.values(), key=lambda t: t["name"])]

    def tags_post(self, params, **_):
        value = functools.partial(model.form_value, params, default="")
        return 200, self._tag_json(self.model.create_tag(value("name"), value("comment"), value("definition")))

    def tag_get(self, name, op, **_):
        if name not in self.model.tags:
            raise NotFound("No Tag matches the given query.")
        if op == "machines":
            return 200, [machine_json(self.model.machines[s], self.model) for s in sorted(self.model.tags[name]["machines"])]
        return 200, self._tag_json(self.model.tags[name])

    def tag_op(self, name, op, params, **_):
        if op != "update_nodes":
            return 400, "Unrecognised signature: method=POST op=%s" % op
        return 200, self.model.update_tag_nodes(name, params.get("add") or [], params.get("remove") or [])

    def tag_delete(self, name, **_):
        if self.model.tags.pop(name, None) is None:
            raise NotFound("No Tag matches the given query.")
        for machine in self.model.machines.values():
            if name in machine.tags:
                machine.tags.remove(name)
        return 204, None

    def zones_get(self, **_):
        return 200, list(self.model.zones.values())

    def zones_post(self, params, **_):
        return 200, self.model.create_named(self.model.zones, (params.get("name") or [""])[0],
                                            (params.get("description") or [""])[0], "Zone")

    def zone_get(self, name, **_):
        if name not in self.model.zones:
            raise NotFound("No Zone matches the given query.")
        return 200, self.model.zones[name]

    def zone_delete(self, name, **_):
        if name == "default":
            return 400, "This zone is the default zone, it cannot be deleted."
        if self.model.zones.pop(name, None) is None:
            raise NotFound("No Zone matches the given query.")
        return 204, None

    def pools_get(self, **_):
        return 200, list(self.model.pools.values())

    def pools_post(self, params, **_):
        return 200, self.model.create_named(self.model.pools, (params.get("name") or [""])[0],
                                            (params.get("description") or [""])[0], "Resource pool")

    def _pool(self, pool_id):
        for name, pool in self.model.pools.items():
            if str(pool["id"]) == pool_id:
                return name, pool
        raise NotFound("No ResourcePool matches the given query.")

    def pool_get(self, id, **_):  # noqa: A002 - MAAS names it id
        return 200, self._pool(id)[1]

    def pool_delete(self, id, **_):  # noqa: A002
        name, _ = self._pool(id)
        if name == "default":
            return 400, "This is the default pool, it cannot be deleted."
        del self.model.pools[name]
        return 204, None

    def general(self, op, **_):
        if op != "describe_power_types":
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, [{"name": name, "description": name.upper(), "fields": [
            {"name": f, "label": f, "required": f in model.REQUIRED_POWER_PARAMETERS[name],
             "field_type": "password" if f == "power_pass" else "string"} for f in fields]}
            for name, fields in model.POWER_TYPES.items()]

    def boot_resources(self, **_):
        return 200, BOOT_RESOURCES


def make_handler(api: MaasApi) -> type:
    class Handler(VerbHandler):
        def _send(self, status: int, payload) -> None:
            if payload is None:
                data, ctype = b"", "text/plain"
            elif isinstance(payload, (dict, list, bool)):
                data, ctype = json.dumps(payload).encode(), "application/json"
            else:
                data, ctype = str(payload).encode(), "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _lab(self, method: str, body: bytes) -> None:
            model_ = api.model
            if self.path.startswith("/__lab__/faults") and method == "PUT":
                for key, value in json.loads(body or b"{}").items():
                    setattr(model_.faults, key, value)
                return self._send(200, vars(model_.faults))
            if self.path.startswith("/__lab__/durations") and method == "PUT":
                for key, value in json.loads(body or b"{}").items():
                    setattr(model_.durations, key, float(value))
                return self._send(200, vars(model_.durations))
            if self.path.startswith("/__lab__/reset") and method == "POST":
                model_.faults = model.Faults()
                model_.durations = model.Durations()
                return self._send(200, {})
            return self._send(404, "unknown lab path")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if self.path.startswith("/__lab__/"):
                return self._lab(method, body)
            faults = api.model.faults
            if faults.slow_seconds:
                time.sleep(faults.slow_seconds)
            with api.model.lock:
                drop = faults.drop_connections > 0
                unavailable = not drop and faults.http_503 > 0
                if drop:
                    faults.drop_connections -= 1
                elif unavailable:
                    faults.http_503 -= 1
            entry = {"time": time.time(), "method": method, "path": urlsplit(self.path).path,
                     "query": urlsplit(self.path).query, "mutating": method != "GET"}
            if drop:
                api.log.write(dict(entry, status=0, fault="dropped"))
                self.close_connection = True
                self.connection.close()
                return
            if unavailable:
                api.log.write(dict(entry, status=503, fault="503"))
                return self._send(503, "Service Unavailable: the region is busy (injected fault)")
            with api.model.lock:
                status, payload = api.handle(method, self.path, self.headers, body)
            api.log.write(dict(entry, status=status))
            self._send(status, payload)

    return Handler
