"""A small MAAS REST client for the Palette simulator: what Palette's MAAS provider asks of MAAS, over HTTP.

OAuth 1.0a PLAINTEXT as every MAAS client signs (consumer key and token from the API key, signature
`&<token secret>`, a fresh nonce each request), form-encoded `op=` POSTs as maas-client-go sends them
(spectrocloud/maas-client-go maasclient/client.go, machine.go). Answers are MAAS's JSON; a status of 400
or more raises MaasError with MAAS's text. The lab's tests use it to enroll machines too.
"""

import secrets
import time
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import requests

Form = Union[Dict[str, object], Sequence[Tuple[str, object]]]
# MAAS's `status_name` of a machine Palette's provider waits on (maasclient machine.State()).
DEPLOYED, READY = "Deployed", "Ready"
TAKEN = ("Allocated", "Deploying", DEPLOYED)  # the states an allocation moves a Ready machine to


class MaasError(Exception):
    def __init__(self, status: int, text: str, method: str, path: str):
        super().__init__(f"MAAS {method} {path}: HTTP {status}: {text}")
        self.status, self.text = status, text


def oauth_header(api_key: str) -> str:
    consumer, token, secret = api_key.split(":")
    params = (("oauth_consumer_key", consumer), ("oauth_token", token), ("oauth_signature_method", "PLAINTEXT"),
              ("oauth_signature", "&" + secret), ("oauth_timestamp", str(int(time.time()))),
              ("oauth_nonce", uuid.uuid4().hex), ("oauth_version", "1.0"))
    return 'OAuth realm=""' + "".join(f', {k}="{quote(v, safe="")}"' for k, v in params)


class MaasClient:
    def __init__(self, url: str, api_key: str, ca_file: str, timeout: float = 30.0):
        """`url` is MAAS's root as a user gives it (`https://host:port/MAAS`)."""
        self.url, self.api_key = url.rstrip("/"), api_key
        self.base = self.url + "/api/2.0"
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_file
        self.timeout = timeout

    def request(self, method: str, path: str, params: Optional[dict] = None, data: Optional[Form] = None):
        headers = {"Authorization": oauth_header(self.api_key), "Accept": "application/json"}
        answer = self.session.request(method, self.base + path, params=params, data=data, headers=headers,
                                      timeout=self.timeout)
        if answer.status_code >= 400:
            raise MaasError(answer.status_code, answer.text, method, path)
        if answer.headers.get("Content-Type", "").startswith("application/json"):
            return answer.json()
        return answer.text

    def get(self, path: str, **params):
        return self.request("GET", path, params=params or None)

    def post(self, path: str, op: str = "", data: Optional[Form] = None):
        return self.request("POST", path, params={"op": op} if op else None, data=data)

    # -- what Palette's account properties list -----------------------------------------------------

    def machines(self, **filters) -> List[dict]:
        return self.get("/machines/", **filters)

    def machine(self, system_id: str) -> dict:
        return self.get(f"/machines/{system_id}/")

    def pools(self) -> List[dict]:
        return self.get("/resourcepools/")

    def zones(self) -> List[dict]:
        return self.get("/zones/")

    def tags(self) -> List[dict]:
        return self.get("/tags/")

    def domains(self) -> List[dict]:
        """GET /domains/ (DomainsHandler.read; maas-client-go maasclient/domain.go List).

        The lab's MAAS simulator serves no /domains/ yet: there, the domains are MAAS's default domain
        `maas` and those its machines name (a lab stand-in until the route exists).
        """
        try:
            return self.get("/domains/")
        except MaasError as err:
            if err.status != 404:
                raise
        names = {"maas"} | {(m.get("domain") or {}).get("name") for m in self.machines()}
        return [{"id": index, "name": name, "authoritative": True, "is_default": name == "maas"}
                for index, name in enumerate(sorted(n for n in names if n))]

    # -- what Palette's provider does to a machine ----------------------------------------------------

    def allocate(self, constraints: Form) -> dict:
        """POST /machines/?op=allocate (MachinesHandler.allocate) with the pool's constraints."""
        return self.post("/machines/", "allocate", constraints)

    def deploy(self, system_id: str, form: Form) -> dict:
        return self.post(f"/machines/{system_id}/", "deploy", form)

    def release(self, system_id: str, comment: str = "") -> dict:
        return self.post(f"/machines/{system_id}/", "release", {"comment": comment} if comment else None)

    # -- enrolling, for tests ------------------------------------------------------------------------

    def create_machine(self, hostname: str, mac: str, pool: str = "", zone: str = "") -> dict:
        """A manual-power machine, commissioned at once by MAAS (an administrator's create)."""
        form = {"hostname": hostname, "architecture": "amd64/generic", "mac_addresses": mac, "power_type": "manual"}
        form.update({k: v for k, v in (("pool", pool), ("zone", zone)) if v})
        return self.post("/machines/", data=form)

    def enroll(self, hostnames: Sequence[str], pool: str = "", zone: str = "", tags: Sequence[str] = ()) -> List[dict]:
        """Machines created (manual power, a random MAC each), commissioned and tagged; returned once MAAS says
        Ready. Waits as long as commissioning takes (the MAAS simulator's `commissioning` duration). A machine
        already taken once Ready (Allocated, Deploying, Deployed: a cluster waiting for one allocated it) counts as
        Ready reached."""
        made = [self.create_machine(name, "52:54:%s" % ":".join("%02x" % b for b in secrets.token_bytes(4)),
                                    pool=pool, zone=zone) for name in hostnames]
        ids = [m["system_id"] for m in made]
        for tag in tags:
            self.tag_machines(tag, ids)
        while True:
            found = [self.machine(s) for s in ids]
            states = {m["hostname"]: m["status_name"] for m in found}
            if all(state in (READY,) + TAKEN for state in states.values()):
                return found
            if any(state not in (READY, "Commissioning", "New", "Testing") for state in states.values()):
                raise MaasError(0, f"commissioning did not end Ready: {states}", "POST", "/machines/")
            time.sleep(0.1)

    def delete_machine(self, system_id: str) -> None:
        self.request("DELETE", f"/machines/{system_id}/")

    def create_pool(self, name: str) -> dict:
        return self.post("/resourcepools/", data={"name": name})

    def delete_pool(self, name: str) -> None:
        pool = next((p for p in self.pools() if p["name"] == name), None)
        if pool:
            self.request("DELETE", f"/resourcepool/{pool['id']}/")

    def create_zone(self, name: str) -> dict:
        return self.post("/zones/", data={"name": name})

    def delete_zone(self, name: str) -> None:
        self.request("DELETE", f"/zones/{name}/")

    def create_tag(self, name: str) -> dict:
        return self.post("/tags/", data={"name": name})

    def tag_machines(self, name: str, system_ids: Sequence[str]) -> dict:
        return self.post(f"/tags/{name}/", "update_nodes", [("add", s) for s in system_ids])

    def delete_tag(self, name: str) -> None:
        self.request("DELETE", f"/tags/{name}/")
