"""palette_maas_cluster's reads and writes where the lab cannot show them: a create whose answer was lost, Palette's
validate (for a create only), the capacity check's wiring, and lookups that name what is missing."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_plan import Plan
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_runner import (
    capacity_errors, create_or_adopt, placement_errors, resolve_cloud_account, resolve_profiles, validate_create)


class FakePalette:
    """Answers by "METHOD path"; an Exception answer is raised; `calls` records every request."""

    def __init__(self, answers, found=None):
        self.answers, self.found, self.calls = dict(answers), found, []

    def _answer(self, method, path):
        self.calls.append("%s %s" % (method, path))
        answer = self.answers.get("%s %s" % (method, path))
        if isinstance(answer, Exception):
            raise answer
        return answer

    def get(self, path):
        return self._answer("GET", path)

    def post(self, path, body):
        return self._answer("POST", path)

    def call(self, method, path, body=None, writes=None):
        return self._answer(method, path)

    def list_all(self, path):
        return self._answer("GET", path)

    def find_cluster(self, name):
        self.calls.append("search %s" % name)
        return self.found

    @staticmethod
    def scope_label():
        return "project lab"


def refused(status, message="refused"):
    return PaletteError(status, {"message": message, "code": "Refused"}, "POST", "/v1/spectroclusters/maas")


def test_a_create_whose_answer_was_lost_adopts_the_cluster_it_made():
    client = FakePalette({"POST /v1/spectroclusters/maas": refused(409, "name taken")},
                         found={"metadata": {"uid": "c1", "name": "vmo-lab"}})
    assert create_or_adopt(client, "vmo-lab", {}) == "c1"
    assert client.calls == ["POST /v1/spectroclusters/maas", "search vmo-lab"]


def test_a_refused_create_with_no_cluster_behind_it_keeps_palettes_error():
    client = FakePalette({"POST /v1/spectroclusters/maas": refused(400, "bad pool")})
    with pytest.raises(PaletteError, match="bad pool"):
        create_or_adopt(client, "vmo-lab", {})


class Desired:
    name, account_uid, domain, ssh_keys, ntp_servers = "vmo-lab", "a1", "maas", None, None
    profiles = [{"uid": "p1", "name": "infra", "version": "1.0.0", "packs": {}, "pack_values": [], "variables": {}}]


def planned(grown):
    plan = Plan()
    plan.grown = grown
    plan.pools_after = [{"name": "workers", "control_plane": False, "size": 3, "resource_pool": "default"}]
    return plan


def test_validate_is_for_a_create_and_reports_the_errors_it_answers():
    client = FakePalette({"POST /v1/spectroclusters/maas/validate": refused(400, "bad body")})
    assert validate_create(client, Desired, planned(["workers"])) == [
        "Palette's validation refused the cluster: bad body (Refused)"]
    client.answers["POST /v1/spectroclusters/maas/validate"] = {"machinePools": {"results": [
        {"name": "workers", "errors": [{"message": "zone z9 is unknown", "code": "InvalidZone"}]},
        {"name": "workers", "errors": []}]}}
    assert validate_create(client, Desired, planned(["workers"])) == ["pool workers: zone z9 is unknown (InvalidZone)"]


class Module:
    def __init__(self):
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


class Existing:
    cloud_config_uid = "cfg1"
    pools = [{"name": "workers", "control_plane": False, "size": 2}]


def test_capacity_is_checked_for_what_the_pools_still_need_and_only_with_a_maas_connection():
    machines = "GET /v1/cloudconfigs/maas/cfg1/machinePools/workers/machines"
    client = FakePalette({machines: [
        {"metadata": {"name": "m1"}, "spec": {"hostname": "h1"}, "status": {"instanceState": "Running"}},
        {"metadata": {"name": "m2"}, "spec": {"hostname": ""}, "status": {"instanceState": "Pending"}}]})
    asked = []

    def capacity(needs):
        asked.extend(needs)
        return ["pool workers needs 2 more machines ...; MAAS has 1 (h7)"]

    module = Module()
    # 3 workers, one machine allocated (the other is still Pending): MAAS must have 2 Ready.
    assert capacity_errors(module, client, "vmo-lab", capacity, planned(["workers"]), Existing) == [
        "pool workers needs 2 more machines ...; MAAS has 1 (h7)"]
    assert [(n["name"], n["needed"], n["resource_pool"]) for n in asked] == [("workers", 2, "default")]
    assert client.calls == [machines] and module.warnings == []

    # Nothing grows: nothing to read, nothing to say.
    client.calls, asked[:] = [], []
    assert capacity_errors(module, client, "vmo-lab", capacity, planned([]), Existing) == []
    assert client.calls == [] and asked == [] and module.warnings == []

    # No MAAS connection: one warning, and nothing is read.
    assert capacity_errors(module, client, "vmo-lab", None, planned(["workers"]), None) == []
    assert client.calls == [] and len(module.warnings) == 1
    assert module.warnings[0].startswith("cluster vmo-lab: whether MAAS has enough Ready machines for pool workers "
                                         "was not checked")


def test_lookups_name_what_palette_has():
    client = FakePalette({"GET /v1/cloudaccounts/maas": [{"metadata": {"name": "lab-maas", "uid": "a1"}}]})
    assert resolve_cloud_account(client, "lab-maas") == ("a1", "lab-maas", None)
    # One name in the tenant and in the project: the project's own account.
    both = FakePalette({"GET /v1/cloudaccounts/maas": [
        {"metadata": {"name": "pcg", "uid": "t1", "annotations": {"scope": "tenant"}}},
        {"metadata": {"name": "pcg", "uid": "p1", "annotations": {"scope": "project"}}}]})
    assert resolve_cloud_account(both, "pcg") == ("p1", "pcg", None)
    assert resolve_cloud_account(both, "t1") == ("t1", "pcg", None)
    assert resolve_cloud_account(client, "a1") == ("a1", "lab-maas", None)
    assert resolve_cloud_account(client, "other")[2] == ("cloud_account: MAAS cloud account 'other' does not exist in "
                                                         "project lab (MAAS accounts: lab-maas)")

    client = FakePalette({
        "GET /v1/dashboard/clusterprofiles/metadata": [
            {"metadata": {"name": "infra", "uid": "i1"}, "spec": {"version": "1.0.0"}},
            {"metadata": {"name": "infra", "uid": "i2"}, "spec": {"version": "1.1.0"}},
            {"metadata": {"name": "draft", "uid": "d1"}, "spec": {"version": "1.0.0"}}],
        "GET /v1/clusterprofiles/i1": {"spec": {"version": "1.0.0", "published": {"type": "infra", "cloudType": "maas",
                                                                                  "packs": [{"name": "k8s"}]}}},
        "GET /v1/clusterprofiles/i2": {"spec": {"version": "1.1.0", "published": None}, "status": {"isPublished": False}},
        "GET /v1/clusterprofiles/d1": {"spec": {"version": "1.0.0"}, "status": {"isPublished": False}}})
    declared = [{"name": "infra", "version": None, "pack_values": [], "variables": {}},
                {"name": "draft", "version": None, "pack_values": [], "variables": {}},
                {"name": "infra", "version": "2.0.0", "pack_values": [], "variables": {}},
                {"name": "nothing", "version": None, "pack_values": [], "variables": {}}]
    resolved, errors = resolve_profiles(client, declared)
    # The newest published version when none is given: 1.1.0 is a draft, so 1.0.0.
    assert [(p["uid"], p["version"], p["type"]) for p in resolved] == [("i1", "1.0.0", "infra")]
    assert errors == ["profiles[1] (draft): profile draft has no published version",
                      "profiles[2] (infra): version: profile infra has no version 2.0.0 in project lab "
                      "(versions: 1.0.0, 1.1.0)",
                      "profiles[3] (nothing): name: no cluster profile named 'nothing' in project lab"]


def test_placement_reads_only_the_properties_the_pools_name():
    client = FakePalette({"GET /v1/cloudaccounts/maas/a1/properties/resourcePools": {"items": [{"name": "default"}]},
                          "GET /v1/cloudaccounts/maas/a1/properties/domains": {"items": [{"name": "maas"}]}})
    pools = [{"option": "control_plane", "resource_pool": "default", "azs": None, "node_tags": None},
             {"option": "worker_pools[0] (w)", "resource_pool": "gpu", "azs": None, "node_tags": None}]
    assert placement_errors(client, "a1", "lab-maas", pools, "lab") == [
        "worker_pools[0] (w): resource_pool: 'gpu' is not a resource pool of MAAS account lab-maas "
        "(resource pools: default)",
        "domain: 'lab' is not a domain of MAAS account lab-maas (domains: maas)"]
    assert client.calls == ["GET /v1/cloudaccounts/maas/a1/properties/resourcePools",
                            "GET /v1/cloudaccounts/maas/a1/properties/domains"]
