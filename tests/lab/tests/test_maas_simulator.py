"""The MAAS simulator speaks MAAS's protocol: OAuth PLAINTEXT, op= verbs, status codes, a request log."""

import requests

from ansible_collections.palette.vmo.plugins.module_utils.maas.client import oauth_header


def _session(maas):
    session = requests.Session()
    session.trust_env = False
    session.verify = maas.ca_file
    return session


def test_version_is_anonymous_everything_else_needs_a_signed_key(maas):
    session = _session(maas)
    assert session.get(maas.url + "/api/2.0/version/").json()["version"].startswith("3.")
    assert session.get(maas.url + "/api/2.0/machines/").status_code == 401
    consumer, token = maas.api_key.split(":")[:2]
    forged = oauth_header(f"{consumer}:{token}:not-the-secret")
    denied = session.get(maas.url + "/api/2.0/machines/", headers={"Authorization": forged})
    assert denied.status_code == 401 and denied.text == "Authorization Error: Invalid API key."
    me = session.get(maas.url + "/api/2.0/users/", params={"op": "whoami"},
                     headers={"Authorization": oauth_header(maas.api_key)})
    assert me.status_code == 200 and me.json()["is_superuser"] is True


def test_illegal_transition_is_409_and_every_request_is_logged(maas):
    session = _session(maas)

    def signed():
        return {"Authorization": oauth_header(maas.api_key)}  # a fresh nonce each time
    mark = maas.mark()
    created = session.post(maas.url + "/api/2.0/machines/", headers=signed(),
                           data={"architecture": "amd64/generic", "mac_addresses": "52:54:00:aa:bb:01",
                                 "commission": "false", "power_type": "manual"})
    assert created.status_code == 200, created.text
    system_id = created.json()["system_id"]
    try:
        assert created.json()["status_name"] == "New"
        refused = session.post(maas.url + f"/api/2.0/machines/{system_id}/", params={"op": "deploy"}, headers=signed())
        assert refused.status_code == 409
        assert refused.text == "Can't deploy a machine that is in the 'New' state"
        duplicate = session.post(maas.url + "/api/2.0/machines/", headers=signed(),
                                 data={"architecture": "amd64", "mac_addresses": "52:54:00:aa:bb:01"})
        # forms/__init__.py MachineWithMACAddressesForm: "MAC address X already in use on HOST."
        assert duplicate.status_code == 400 and "already in use on" in duplicate.text
        logged = maas.requests_since(mark)
        assert [(r["method"], r["status"]) for r in logged] == [("POST", 200), ("POST", 409), ("POST", 400)]
        assert all(r["mutating"] for r in logged)
    finally:
        session.delete(maas.url + f"/api/2.0/machines/{system_id}/", headers=signed())


def test_allocate_names_an_unknown_tag_zone_or_pool_with_a_400(maas):
    """AcquireNodeForm.clean_tags / clean_zone / clean_pool: MAAS's 400 names what it does not have; a known but
    unmatched constraint is the 409 "No available machine matches constraints"."""
    session = _session(maas)

    def allocate(**data):
        return session.post(maas.url + "/api/2.0/machines/", params={"op": "allocate"}, data=data,
                            headers={"Authorization": oauth_header(maas.api_key)})

    unknown = allocate(tags="no-such-tag-x", zone="no-such-zone-x", pool="no-such-pool-x", dry_run="true")
    assert unknown.status_code == 400, unknown.text
    assert unknown.json() == {"tags": ["No such tag(s): 'no-such-tag-x'."], "zone": ["No such zone: 'no-such-zone-x'."],
                              "pool": ["No such pool: 'no-such-pool-x'."]}
    unmatched = allocate(zone="default", cpu_count="100000", dry_run="true")
    assert unmatched.status_code == 409 and unmatched.text.startswith("No available machine matches constraints")
