"""The MAAS simulator's HTTP API: `/MAAS/api/2.0/` with OAuth 1.0a PLAINTEXT, `op=` verbs, MAAS's codes.

Every request is logged as one JSON line (method, path, op, status, whether it could write and, for a
write, the machines, tags, zones and pools it touched), so tests can prove that check mode wrote nothing,
also while other tests write to the same simulator. `/__lab__/` (loopback only, no OAuth) lets tests inject faults
and change durations; a real MAAS has no such path and the collection never calls it.
"""

import copy
import functools
import json
import re
import time
from email.parser import BytesParser
from email.policy import HTTP
from typing import Callable, Dict, List, Optional, Tuple
from urllib.parse import parse_qs, unquote, urlsplit

from ..simulator_http import RequestLog, VerbHandler, mirrors, spend_fault
from . import model
from .drivers import POWER_DRIVERS
from .model import ADMIN_ONLY, BadRequest, Forbidden, MaasModel, Machine, NotFound, StateViolation

API = "/MAAS/api/2.0"
RETRY_AFTER_SERVICE_UNAVAILABLE = 10  # middleware.py:42
VERSION = {"capabilities": ["networks-management", "static-ipaddresses", "ipv6-deployment-ubuntu",
                            "devices-management", "storage-deployment-ubuntu", "network-deployment-ubuntu",
                            "bridging-interface-ubuntu", "bridging-automatic-ubuntu", "authenticate-api"],
           "version": "3.6.2", "subversion": "lab-simulator"}
BOOT_RESOURCES = [dict(resource, resource_uri="%s/boot-resources/%d/" % (API, resource["id"]))
                  for resource in model.BOOT_RESOURCES]


class ApiKey:
    def __init__(self, key: str, username: str = "admin", is_admin: bool = True):
        self.consumer, self.token, self.secret = key.split(":")
        self.username, self.is_admin = username, is_admin


def require_admin(key: ApiKey) -> None:
    """@admin_method (api/support.py) and the admin NodePermission checks: 403 with MAAS's sentence."""
    if not key.is_admin:
        raise Forbidden(ADMIN_ONLY)


def visible_to(machine: Machine, key: ApiKey) -> bool:
    """NodePermission.view for a non-admin: machines nobody owns, and the user's own."""
    return key.is_admin or machine.owner in (None, key.username)


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


def interface_json(m: Machine, index: int, mac: str) -> dict:
    """An interface as MAAS's InterfaceHandler renders it inside machine JSON (api/interfaces.py DISPLAYED_*)."""
    links = [{"id": index + 1, "mode": "auto", "ip_address": ip,
              "subnet": {"id": 1, "name": "10.20.0.0/16", "cidr": "10.20.0.0/16", "vlan": VLAN}}
             for ip in (m.ip_addresses if index == 0 else [])]
    return {"id": index + 1, "name": "eth%d" % index, "type": "physical", "mac_address": mac, "enabled": True,
            "system_id": m.system_id, "tags": [], "params": "", "parents": [], "children": [], "vlan": VLAN,
            "links": links, "discovered": [], "effective_mtu": 1500, "link_connected": True, "link_speed": 1000,
            "interface_speed": 1000, "numa_node": 0, "vendor": "Red Hat, Inc.", "product": "Virtio network device",
            "firmware_version": None, "sriov_max_vf": 0,
            "resource_uri": "%s/nodes/%s/interfaces/%d/" % (API, m.system_id, index + 1)}


def blockdevice_json(m: Machine) -> list:
    """The disk commissioning finds, as BlockDeviceHandler renders it (api/blockdevices.py)."""
    if not m.commissioned:
        return []
    return [{"id": 1, "name": "sda", "type": "physical", "path": "/dev/disk/by-dname/sda", "size": 500000000000,
             "block_size": 512, "model": "QEMU HARDDISK", "serial": "lab-%s" % m.system_id, "id_path": "",
             "tags": ["ssd"], "uuid": None, "storage_pool": None, "used_for": "Unused", "filesystem": None,
             "partitions": [], "partition_table_type": None, "numa_node": 0, "system_id": m.system_id,
             "available_size": 500000000000, "used_size": 0,
             "resource_uri": "%s/nodes/%s/blockdevices/1/" % (API, m.system_id)}]


VLAN = {"id": 5001, "vid": 0, "name": "untagged", "fabric": "fabric-0", "fabric_id": 0, "mtu": 1500,
        "dhcp_on": True, "external_dhcp": None, "primary_rack": "lab-rack", "secondary_rack": None,
        "relay_vlan": None, "space": "undefined", "resource_uri": API + "/vlans/5001/"}


def machine_json(m: Machine, model_: MaasModel) -> dict:
    """MachineHandler's fields (api/machines.py DISPLAYED_MACHINE_FIELDS): `status` is the NODE_STATUS code
    and `status_name` its label; there is no `simple_status` field (it is only a list filter)."""
    interfaces = [interface_json(m, index, mac) for index, mac in enumerate(m.macs)]
    zone = model_.zones.get(m.zone, {"id": 0, "name": m.zone, "description": ""})
    pool = model_.pools.get(m.pool, {"id": 0, "name": m.pool, "description": ""})
    commissioning = {model.READY: 2, model.DEPLOYED: 2, model.FAILED_COMMISSIONING: 3, model.COMMISSIONING: 1}
    status = commissioning.get(m.status, 2 if m.commissioned else -1)
    disks = blockdevice_json(m)
    return {
        "system_id": m.system_id, "hostname": m.hostname, "description": m.description,
        "domain": {"id": 0, "name": m.domain}, "fqdn": "%s.%s" % (m.hostname, m.domain),
        "owner": m.owner, "architecture": m.architecture, "cpu_count": m.cpu_count, "memory": m.memory,
        "storage": 500000.0 if m.commissioned else 0.0,
        "status": m.status, "status_name": model.STATUS_NAMES[m.status], "status_message": m.status_message,
        "status_action": "", "power_type": m.power_type, "power_state": m.power_state,
        "tag_names": sorted(m.tags), "ip_addresses": list(m.ip_addresses), "interface_set": interfaces,
        "boot_interface": interfaces[0] if interfaces else None, "blockdevice_set": disks,
        "physicalblockdevice_set": disks, "virtualblockdevice_set": [], "boot_disk": disks[0] if disks else None,
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
    """Routes and handlers; independent of the HTTP server so it can be tested directly.

    Each handler names the MAAS OpenAPI operations it serves and the MAAS source it follows (`mirrors`).
    """

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
            ("GET", r"/rackcontrollers/", self.rackcontrollers_get),
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
                except Forbidden as err:
                    return 403, str(err)
                except StateViolation as err:
                    return 409, str(err)
                except BadRequest as err:
                    return 400, err.errors
        if any(pattern.match(url.path) for _method, pattern, _handler in self.routes):
            return 405, "Method not allowed"
        return 404, "Unknown API endpoint: %s." % url.path

    def objects_of(self, method: str, target: str, headers, body: bytes, answer) -> Optional[List[str]]:
        """What a write touched, for the request log, so that tests sharing the lab can tell their own writes
        from another test's: host names, MACs, BMC addresses and system ids of machines, `tag:`, `zone:` and
        `pool:` names. None for a write no route knows (a test must count it as its own)."""
        path = urlsplit(target).path[len(API):]
        form = parse_form(headers.get("Content-Type", ""), body) if method in ("POST", "PUT") else {}
        objects = set(form.get("hostname") or []) | {m.lower() for m in form.get("mac_addresses") or []}
        objects |= set(form.get("power_parameters_power_address") or [])
        address = model.power_parameters_of(form, {}).get("power_address")
        objects |= {address} if address else set()
        objects |= set(form.get("add") or []) | set(form.get("remove") or []) | set(form.get("machines") or [])
        if isinstance(answer, dict) and answer.get("system_id"):
            objects.add(answer["system_id"])
        match = re.match(r"^/(machines|nodes)/(?P<sid>\w+)/", path)
        if match:
            objects.add(match.group("sid"))
        for kind, prefix in (("tags", "tag"), ("zones", "zone"), ("resourcepool", "pool"),
                             ("resourcepools", "pool")):
            named = re.match(r"^/%s/(?P<name>[\w-]+)/" % kind, path)
            if named:
                objects.add("%s:%s" % (prefix, named.group("name")))
            elif path == "/%s/" % kind:
                objects |= {"%s:%s" % (prefix, name) for name in form.get("name") or []}
        if not objects and not any(pattern.match(urlsplit(target).path) for _m, pattern, _h in self.routes):
            return None
        return sorted(objects)

    def _machine(self, sid: str, key: ApiKey, edit: bool = False) -> Machine:
        """NodeManager.get_node_or_404 (models/node.py:640-671): hidden machines are 404, and any edit of a
        locked machine is refused with an empty 403 (:666)."""
        machine = self.model.machine(sid)
        if not visible_to(machine, key):
            raise NotFound("No Machine matches the given query.")
        if edit and machine.locked:
            raise Forbidden("")
        return machine

    # -- handlers ---------------------------------------------------------------------------------

    @mirrors("VersionHandler_read", source="api/version.py:VersionHandler.read")
    def version(self, **_):
        return 200, VERSION

    @mirrors("UsersHandler_whoami", source="api/users.py:UsersHandler.whoami")
    def users(self, key, op, **_):
        if op != "whoami":
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, {"username": key.username, "email": "%s@lab.invalid" % key.username,
                     "is_superuser": key.is_admin, "is_local": True,
                     "resource_uri": "%s/users/%s/" % (API, key.username)}

    def _filter(self, params, key) -> List[Machine]:
        def values(name):
            return [v for v in params.get(name) or [] if v != ""]
        machines = sorted((m for m in self.model.machines.values() if visible_to(m, key)), key=lambda m: m.hostname)
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
            # ReadNodesForm.clean_simple_status: the lowercase SimplifiedNodeStatus names, nothing else.
            unknown = [s for s in values("simple_status") if s not in model.SIMPLE_STATUS_CHOICES]
            if unknown:
                raise BadRequest({"simple_status": ["Invalid parameter: %s" % ", ".join(unknown)]})
            machines = [m for m in machines if model.SIMPLE_STATUS.get(m.status, "other") in values("simple_status")]
        for name in ("pool", "zone", "domain"):
            if values(name):
                machines = [m for m in machines if getattr(m, name) in values(name)]
        if values("tags"):
            machines = [m for m in machines if all(t in m.tags for t in values("tags"))]
        return machines

    @mirrors("MachinesHandler_read", "MachinesHandler_power_parameters", "MachinesHandler_is_registered",
             source="api/machines.py:MachinesHandler.read, power_parameters (admin_method), is_registered")
    def machines_get(self, key, op, params, **_):
        if op == "power_parameters":
            require_admin(key)
            # Each machine's parameters as stored: the power type is not among them.
            ids = params.get("id") or list(self.model.machines)
            return 200, {sid: dict(self.model.machines[sid].power_parameters)
                         for sid in ids if sid in self.model.machines}
        if op == "is_registered":
            mac = (params.get("mac_address") or [""])[0].lower()
            return 200, any(mac in m.macs for m in self.model.machines.values())
        if op:
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, [machine_json(m, self.model) for m in self._filter(params, key)]

    @mirrors("MachinesHandler_create", "MachinesHandler_allocate", "MachinesHandler_release",
             source="api/machines.py:MachinesHandler.create, allocate, release; forms/__init__.py:"
                    "get_machine_create_form, WithMACAddressesMixin")
    def machines_post(self, key, op, params, **_):
        if op == "allocate":
            return 200, machine_json(self.model.allocate(params, key.username), self.model)
        if op == "release":
            for sid in params.get("machines") or []:
                self.model.release(self._machine(sid, key, edit=True), params)
            return 200, [machine_json(self.model.machine(s), self.model) for s in params.get("machines") or []]
        if op:
            return 400, "Unrecognised signature: method=POST op=%s" % op
        return 200, machine_json(self.model.create_machine(params, is_admin=key.is_admin), self.model)

    @mirrors("MachineHandler_read", "MachineHandler_query_power_state", "MachineHandler_power_parameters",
             source="api/machines.py:MachineHandler.read, query_power_state; api/nodes.py:power_parameters "
                    "(admin_method)")
    def machine_get(self, sid, op, key, **_):
        machine = self._machine(sid, key)
        if op == "query_power_state":
            return 200, {"state": machine.power_state}
        if op == "power_parameters":
            require_admin(key)
            return 200, dict(machine.power_parameters)
        if op:
            return 400, "Unrecognised signature: method=GET op=%s" % op
        return 200, machine_json(machine, self.model)

    @mirrors("MachineHandler_update", source="api/machines.py:MachineHandler.update (perm edit: a locked "
                                             "machine is 403)")
    def machine_put(self, sid, params, key, **_):
        return 200, machine_json(self.model.update_machine(self._machine(sid, key, edit=True), params), self.model)

    @mirrors("MachineHandler_delete", source="api/nodes.py:NodeHandler.delete")
    def machine_delete(self, sid, key, **_):
        require_admin(key)
        self.model.delete_machine(self._machine(sid, key))
        return 204, None

    # The machine ops only admins may call (api/machines.py commission, mark_fixed: NodePermission.admin).
    ADMIN_OPS = ("commission", "mark_fixed")
    # The ops that look the machine up with NodePermission.edit, so a locked machine refuses them.
    EDIT_OPS = ("deploy", "release", "abort", "mark_broken", "power_on", "power_off")

    @mirrors("MachineHandler_commission", "MachineHandler_deploy", "MachineHandler_release",
             "MachineHandler_abort", "MachineHandler_mark_broken", "MachineHandler_mark_fixed",
             "MachineHandler_lock", "MachineHandler_unlock", "MachineHandler_power_on", "MachineHandler_power_off",
             source="api/machines.py:MachineHandler.commission, deploy, release, abort, mark_broken, mark_fixed, "
                    "lock, unlock; api/nodes.py:power_on, power_off; models/node.py:Node.start, stop, mark_fixed")
    def machine_op(self, sid, op, params, key, **_):
        value = functools.partial(model.form_value, params)
        actions = {
            "commission": self.model.commission,
            "deploy": lambda machine: self.model.deploy(machine, params, key.username),
            "release": lambda machine: self.model.release(machine, params),
            "abort": self.model.abort,
            "mark_broken": lambda machine: self.model.mark_broken(machine, value("comment") or ""),
            "mark_fixed": self.model.mark_fixed,
            "lock": lambda machine: self.model.set_lock(machine, True),
            "unlock": lambda machine: self.model.set_lock(machine, False),
            "power_on": lambda machine: self.model.power(machine, "on"),
            "power_off": lambda machine: self.model.power(machine, "off"),
        }
        if op not in actions:
            return 400, "Unrecognised signature: method=POST op=%s" % op
        if op in self.ADMIN_OPS:
            require_admin(key)
        machine = self._machine(sid, key, edit=op in self.EDIT_OPS)
        answer = machine_json(machine, self.model) if op in ("power_on", "power_off") else None
        actions[op](machine)
        # A power change is queued after the request commits: the answer is the machine as it was.
        return 200, answer or machine_json(machine, self.model)

    @mirrors("NodeScriptResultsHandler_read", source="api/scriptresults.py:NodeScriptResultsHandler.read")
    def results(self, sid, key, **_):
        machine = self._machine(sid, key)
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

    @mirrors("TagsHandler_read", source="api/tags.py:TagsHandler.read")
    def tags_get(self, **_):
        return 200, [self._tag_json(t) for t in sorted(self.model.tags.values(), key=lambda t: t["name"])]

    @mirrors("TagsHandler_create", source="api/tags.py:TagsHandler.create (admin_method); models/tag.py:36-43")
    def tags_post(self, params, key, **_):
        require_admin(key)
        value = functools.partial(model.form_value, params, default="")
        return 200, self._tag_json(self.model.create_tag(value("name"), value("comment"), value("definition")))

    @mirrors("TagHandler_read", "TagHandler_machines", source="api/tags.py:TagHandler.read, machines")
    def tag_get(self, name, op, key, **_):
        if name not in self.model.tags:
            raise NotFound("No Tag matches the given query.")
        if op == "machines":
            return 200, [machine_json(self.model.machines[s], self.model)
                         for s in sorted(self.model.tags[name]["machines"]) if visible_to(self.model.machines[s], key)]
        return 200, self._tag_json(self.model.tags[name])

    @mirrors("TagHandler_update_nodes", source="api/tags.py:TagHandler.update_nodes (admin without rack_controller)")
    def tag_op(self, name, op, params, key, **_):
        if op != "update_nodes":
            return 400, "Unrecognised signature: method=POST op=%s" % op
        require_admin(key)
        return 200, self.model.update_tag_nodes(name, params.get("add") or [], params.get("remove") or [])

    @mirrors("TagHandler_delete", source="api/tags.py:TagHandler.delete (admin_method)")
    def tag_delete(self, name, key, **_):
        require_admin(key)
        if self.model.tags.pop(name, None) is None:
            raise NotFound("No Tag matches the given query.")
        for machine in self.model.machines.values():
            if name in machine.tags:
                machine.tags.remove(name)
        return 204, None

    @mirrors("ZonesHandler_read", source="api/zones.py:ZonesHandler.read")
    def zones_get(self, **_):
        return 200, list(self.model.zones.values())

    @mirrors("ZonesHandler_create", source="api/zones.py:ZonesHandler.create (admin_method)")
    def zones_post(self, params, key, **_):
        require_admin(key)
        return 200, self.model.create_named(self.model.zones, (params.get("name") or [""])[0],
                                            (params.get("description") or [""])[0], "Zone")

    @mirrors("ZoneHandler_read", source="api/zones.py:ZoneHandler.read")
    def zone_get(self, name, **_):
        if name not in self.model.zones:
            raise NotFound("No Zone matches the given query.")
        return 200, self.model.zones[name]

    @mirrors("ZoneHandler_delete", source="api/zones.py:ZoneHandler.delete (admin_method)")
    def zone_delete(self, name, key, **_):
        require_admin(key)
        if name == "default":
            return 400, "This zone is the default zone, it cannot be deleted."
        if self.model.zones.pop(name, None) is None:
            raise NotFound("No Zone matches the given query.")
        return 204, None

    @mirrors("ResourcePoolsHandler_read", source="api/resourcepools.py:ResourcePoolsHandler.read")
    def pools_get(self, **_):
        return 200, list(self.model.pools.values())

    @mirrors("ResourcePoolsHandler_create", source="api/resourcepools.py:ResourcePoolsHandler.create (admin_method)")
    def pools_post(self, params, key, **_):
        require_admin(key)
        return 200, self.model.create_named(self.model.pools, (params.get("name") or [""])[0],
                                            (params.get("description") or [""])[0], "Resource pool")

    def _pool(self, pool_id):
        for name, pool in self.model.pools.items():
            if str(pool["id"]) == pool_id:
                return name, pool
        raise NotFound("No ResourcePool matches the given query.")

    @mirrors("ResourcePoolHandler_read", source="api/resourcepools.py:ResourcePoolHandler.read")
    def pool_get(self, id, **_):  # noqa: A002 - MAAS names it id
        return 200, self._pool(id)[1]

    @mirrors("ResourcePoolHandler_delete", source="api/resourcepools.py:ResourcePoolHandler.delete (admin_method)")
    def pool_delete(self, id, key, **_):  # noqa: A002
        require_admin(key)
        name, _ = self._pool(id)
        if name == "default":
            return 400, "This is the default pool, it cannot be deleted."
        del self.model.pools[name]
        return 204, None

    @mirrors("RackControllersHandler_describe_power_types",
             source="api/rackcontrollers.py:RackControllersHandler.describe_power_types (admin up to 3.7); "
                    "clusterrpc/driver_parameters.py:get_all_power_types")
    def rackcontrollers_get(self, op, key, **_):
        # Only the op is served: the lab has no rack controller objects to list.
        if op != "describe_power_types":
            return 400, "Unrecognised signature: method=GET op=%s" % op
        require_admin(key)
        return 200, copy.deepcopy(POWER_DRIVERS)

    @mirrors("BootResourcesHandler_read", source="api/boot_resources.py:BootResourcesHandler.read")
    def boot_resources(self, **_):
        return 200, BOOT_RESOURCES


# The faults that answer a request instead of MAAS, in the order they are taken.
ANSWERING_FAULTS = ("drop_connections", "http_503", "http_504", "http_429")


def take_count(model_: MaasModel, name: str) -> bool:
    """Spends one of the fault counter `name`, if any is left."""
    return spend_fault(model_.lock, model_.faults, name)


def take_fault(model_: MaasModel) -> Optional[str]:
    return next((name for name in ANSWERING_FAULTS if take_count(model_, name)), None)


def make_handler(api: MaasApi) -> type:
    class Handler(VerbHandler):
        def _send(self, status: int, payload, headers: Dict[str, str] = None) -> None:
            if payload is None:
                data, ctype = b"", "text/plain"
            elif isinstance(payload, (dict, list, bool)):
                data, ctype = json.dumps(payload).encode(), "application/json"
            else:
                data, ctype = str(payload).encode(), "text/plain; charset=utf-8"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
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
            entry = {"time": time.time(), "method": method, "path": urlsplit(self.path).path,
                     "query": urlsplit(self.path).query, "mutating": method != "GET"}
            if entry["mutating"]:  # also for a write a fault stops: it was still sent
                entry["objects"] = api.objects_of(method, self.path, self.headers, body, None)
            fault = take_fault(api.model)
            if fault:
                return self._inject(entry, fault)
            with api.model.lock:
                status, payload = api.handle(method, self.path, self.headers, body)
            if entry["mutating"]:
                entry["objects"] = api.objects_of(method, self.path, self.headers, body, payload)
                if status < 400 and take_count(api.model, "lose_write_answers"):
                    # The change is committed; only its answer is lost on the way back.
                    api.log.write(dict(entry, status=0, answered=status, fault="lose_write_answers"))
                    return self._drop()
            api.log.write(dict(entry, status=status))
            self._send(status, payload)

        def _drop(self) -> None:
            self.close_connection = True
            self.connection.close()

        def _inject(self, entry: dict, fault: str) -> None:
            """A fault that answers instead of MAAS: nothing is carried out."""
            faults = api.model.faults
            if fault == "drop_connections":
                api.log.write(dict(entry, status=0, fault="dropped"))
                return self._drop()
            if fault == "http_503":
                # middleware.py:40-42,352-379: a 503 asks the client to come back in 10 seconds.
                api.log.write(dict(entry, status=503, fault="503"))
                return self._send(503, "Unable to connect to any rack controller (injected fault)",
                                  {"Retry-After": str(RETRY_AFTER_SERVICE_UNAVAILABLE)})
            if fault == "http_504":
                # middleware.py:353: an RPC to the rack that timed out is a 504 Gateway Timeout.
                api.log.write(dict(entry, status=504, fault="504"))
                return self._send(504, "Timed out waiting for the rack controller (injected fault)")
            # A rate-limiting proxy in front of MAAS (MAAS never answers 429 itself; see Faults.http_429).
            api.log.write(dict(entry, status=429, fault="429"))
            headers = {"Retry-After": str(faults.retry_after)} if faults.retry_after_header else None
            return self._send(429, "Too Many Requests (injected by a proxy in front of MAAS)", headers)

    return Handler
