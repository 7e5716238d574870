"""The Palette simulator speaks Palette's API (ApiKey, ProjectUid, profiles, packs, clusters, 429s, paging)
and acts as Palette's agent on the lab's real apiserver."""

import base64
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.lab.kube import object_path

VMO = "virtual-machine-orchestrator"
VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]
KUBEVIRT = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt")


@pytest.fixture
def sim(palette):
    """The simulator, reset after the test (profiles gone, the lab's KubeVirt and CDI CRs as bootstrap made them)."""
    yield palette
    palette.reset()


def _pack_values(sim, tag: str) -> dict:
    uid = sim.info()["packs"][tag]
    entity = sim.api("GET", f"/v1/packs/{uid}").json()
    return yaml.safe_load(entity["packValues"][0]["values"])


def _profile_body(name: str, packs: list, version: str = "1.0.0") -> dict:
    return {"metadata": {"name": name}, "spec": {"version": version, "template": {
        "type": "add-on", "cloudType": "all", "packs": packs}}}


def _vmo_pack(sim, tag: str, values: dict) -> dict:
    return {"name": VMO, "tag": tag, "type": "spectro", "registryUid": sim.info()["registry_uid"],
            "values": yaml.safe_dump(values)}


def _create(sim, body: dict, publish: bool = True, project: str = "lab") -> str:
    created = sim.api("POST", "/v1/clusterprofiles", project=project, params={"publish": str(publish).lower()},
                      json=body)
    assert created.status_code == 201, created.text
    return created.json()["uid"]


def _wait_packs(sim, profile_uid: str, timeout: float = 30.0) -> dict:
    """{pack: condition} once every pack of the profile left the not-ready state; records what it saw."""
    cluster = sim.info()["cluster_uid"]
    deadline, seen = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        status = sim.api("GET", f"/v1/spectroclusters/{cluster}").json()["status"]
        conditions = {p["name"]: p["condition"] for p in status["packs"] if p["profileUid"] == profile_uid}
        seen.append({name: (c["type"], c["status"]) for name, c in conditions.items()})
        if conditions and all(c["type"] == "Error" or c["status"] == "True" for c in conditions.values()):
            return {"final": conditions, "seen": seen}
        time.sleep(0.05)
    raise AssertionError(f"packs of {profile_uid} still deploying after {timeout}s: {seen[-1:]}")


def _attach(sim, profile_uid: str, **entry) -> None:
    cluster = sim.info()["cluster_uid"]
    answer = sim.api("PATCH", f"/v1/spectroclusters/{cluster}/profiles", json={"profiles": [dict(entry, uid=profile_uid)]})
    assert answer.status_code == 204, answer.text


def test_api_key_is_required_and_checked(palette):
    assert palette.api("GET", "/v1/dashboard/projects/metadata", api_key="").status_code == 401
    wrong = palette.api("GET", "/v1/dashboard/projects/metadata", api_key="not-the-key")
    assert wrong.status_code == 401 and wrong.json()["code"] == "Unauthorized"
    projects = palette.api("GET", "/v1/dashboard/projects/metadata", project="").json()["items"]
    assert sorted(p["metadata"]["name"] for p in projects) == ["empty", "lab"]
    assert all(len(p["metadata"]["uid"]) == 24 for p in projects)
    only = palette.api("GET", "/v1/dashboard/projects/metadata", project="", params={"name": "lab"}).json()
    assert [p["metadata"]["name"] for p in only["items"]] == ["lab"]


def test_project_uid_scopes_profiles_and_the_cluster(sim):
    in_lab = _create(sim, _profile_body("scoped", []), project="lab")
    in_tenant = _create(sim, _profile_body("tenant-wide", []), project="")
    assert sim.api("GET", f"/v1/clusterprofiles/{in_lab}", project="lab").status_code == 200
    assert sim.api("GET", f"/v1/clusterprofiles/{in_lab}", project="empty").status_code == 404
    assert sim.api("GET", f"/v1/clusterprofiles/{in_lab}", project="").status_code == 404
    # A project inherits the tenant's profiles (read only); the tenant does not see a project's.
    inherited = sim.api("GET", f"/v1/clusterprofiles/{in_tenant}", project="lab")
    assert inherited.status_code == 200 and inherited.json()["metadata"]["annotations"]["scope"] == "tenant"
    assert sim.api("DELETE", f"/v1/clusterprofiles/{in_tenant}", project="lab").status_code == 403

    def names(project):
        listed = sim.api("GET", "/v1/dashboard/clusterprofiles/metadata", project=project).json()["items"]
        return {i["metadata"]["name"] for i in listed}

    assert {"scoped", "tenant-wide"} <= names("lab") and "scoped" not in names("") and "scoped" not in names("empty")
    cluster = sim.info()["cluster_uid"]
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}", project="lab").json()["metadata"]["name"] == "lab-cluster"
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}", project="empty").status_code == 404
    assert sim.api("GET", "/v1/dashboard/projects/metadata", project="0" * 24).status_code == 403


def test_registry_and_pack_tags_with_both_values_layouts(palette):
    registries = palette.api("GET", "/v1/registries/metadata").json()["items"]
    registry = next(r for r in registries if r["name"] == "Public Repo")
    entity = palette.api("GET", f"/v1/packs/{VMO}/registries/{registry['uid']}").json()
    assert {t["tag"] for t in entity["tags"]} == {"4.6.3", "4.9.9", "4.10.7"}
    assert {v["packUid"] for v in entity["packValues"]} == {t["packUid"] for t in entity["tags"]}
    for tag, manager in (("4.6.3", False), ("4.9.9", False), ("4.10.7", True)):
        chart = _pack_values(palette, tag)["charts"][VMO]
        assert chart["kubevirt"]["kubevirtResource"]["additionalFeatureGates"] == VMO_GATES
        assert chart["cdi"]["cdiResource"]["additionalFeatureGates"] == []
        assert isinstance(chart["vmEnabledNamespaces"], list)
        assert ("vmo-manager" in chart) is manager
        golden = chart["vmo-manager"]["goldenImagesNamespace"] if manager else chart["goldenImagesNamespace"]
        assert golden == "vmo-golden-images"
    found = palette.api("GET", "/v1/packs", params={
        "filters": f"spec.name={VMO}AND spec.version=4.10.7AND spec.registryUid={registry['uid']}"}).json()
    assert [i["spec"]["version"] for i in found["items"]] == ["4.10.7"]


def test_profile_draft_publish_put_patch_clone_delete(sim):
    values = _pack_values(sim, "4.9.9")
    uid = _create(sim, _profile_body("vmo-flow", [_vmo_pack(sim, "4.9.9", values)]), publish=False)
    profile = sim.api("GET", f"/v1/clusterprofiles/{uid}").json()
    assert profile["spec"]["published"] is None and profile["status"]["isPublished"] is False
    assert [p["name"] for p in profile["spec"]["draft"]["packs"]] == [VMO]
    assert sim.api("PATCH", f"/v1/clusterprofiles/{uid}/publish").status_code == 204
    profile = sim.api("GET", f"/v1/clusterprofiles/{uid}").json()
    assert profile["spec"]["draft"] is None and profile["status"]["isPublished"] is True
    assert yaml.safe_load(profile["spec"]["published"]["packs"][0]["values"]) == values

    values["charts"][VMO]["vmEnabledNamespaces"] = ["vms"]
    put = sim.api("PUT", f"/v1/clusterprofiles/{uid}", json={"metadata": {"name": "vmo-flow", "uid": uid}, "spec": {
        "version": "1.0.0", "template": {"type": "add-on", "packs": [_vmo_pack(sim, "4.9.9", values)]}}})
    assert put.status_code == 204, put.text
    profile = sim.api("GET", f"/v1/clusterprofiles/{uid}").json()
    assert yaml.safe_load(profile["spec"]["draft"]["packs"][0]["values"])["charts"][VMO]["vmEnabledNamespaces"] == ["vms"]
    assert sim.api("PATCH", f"/v1/clusterprofiles/{uid}/publish").status_code == 204
    assert sim.api("GET", f"/v1/clusterprofiles/{uid}").json()["spec"]["published"]["version"] == 2

    patched = sim.api("PATCH", f"/v1/clusterprofiles/{uid}/metadata",
                      json={"metadata": {"labels": {"team": "vmo"}, "annotations": {"description": "flow"}}})
    assert patched.status_code == 204
    meta = sim.api("GET", f"/v1/clusterprofiles/{uid}").json()["metadata"]
    assert meta["labels"] == {"team": "vmo"} and meta["annotations"]["description"] == "flow"

    clone = sim.api("POST", f"/v1/clusterprofiles/{uid}/clone", json={"metadata": {
        "name": "vmo-flow", "version": "1.1.0", "target": {"scope": "project", "projectUid": sim.project_uid()}}})
    assert clone.status_code == 201, clone.text
    cloned = sim.api("GET", f"/v1/clusterprofiles/{clone.json()['uid']}").json()
    assert cloned["spec"]["version"] == "1.1.0" and cloned["status"]["isPublished"] is True
    assert [v["version"] for v in cloned["spec"]["versions"]] == ["1.0.0", "1.1.0"]
    again = sim.api("POST", f"/v1/clusterprofiles/{uid}/clone", json={"metadata": {"name": "vmo-flow", "version": "1.1.0"}})
    assert again.status_code == 409

    assert sim.api("DELETE", f"/v1/clusterprofiles/{uid}").status_code == 204
    assert sim.api("GET", f"/v1/clusterprofiles/{uid}").status_code == 404


def test_bad_profiles_are_400_with_the_field_named(sim):
    good = _vmo_pack(sim, "4.10.7", _pack_values(sim, "4.10.7"))
    cases = [
        (_profile_body("Bad_Name", []), "name"),
        (_profile_body("ok", [], version="one"), "version"),
        (_profile_body("ok", [dict(good, tag="9.9.9")]), "9.9.9"),
        (_profile_body("ok", [dict(good, values="charts: [unclosed")]), "not valid YAML"),
        (_profile_body("ok", [good, good]), "twice"),
        (_profile_body("ok", [{"name": "extras", "type": "manifest", "manifests": [{"name": "m", "content": "- a"}]}]),
         "manifest"),
    ]
    mark = sim.mark()
    for body, words in cases:
        answer = sim.api("POST", "/v1/clusterprofiles", json=body)
        assert answer.status_code == 400 and words in answer.json()["message"], (body, answer.text)
    assert sim.api("GET", "/v1/clusterprofiles/validate/name", params={"name": "Bad_Name"}).status_code == 400
    assert all(r["status"] == 400 for r in sim.writes_since(mark))
    fresh = sim.api("GET", "/v1/clusterprofiles/validate/name", params={"name": "fresh", "version": "1.0.0"})
    assert fresh.status_code == 204
    _create(sim, _profile_body("taken", []))
    taken = sim.api("GET", "/v1/clusterprofiles/validate/name", params={"name": "taken", "version": "1.0.0"})
    assert taken.status_code == 409
    assert sim.api("POST", "/v1/clusterprofiles", json=_profile_body("taken", [])).status_code == 409


def test_lists_page_at_50_with_continue(sim):
    seeded = set(sim.seed(120, prefix="page"))
    listed, pages, token = [], 0, ""
    while True:
        answer = sim.api("POST", "/v1/dashboard/clusterprofiles", params={"continue": token} if token else {},
                         json={"filter": {"profileName": {"beginsWith": "page-"}}})
        body = answer.json()
        assert len(body["items"]) <= 50 and body["listmeta"]["count"] == 120
        listed += [i["metadata"]["uid"] for i in body["items"]]
        pages += 1
        token = body["listmeta"]["continue"]
        if not token:
            break
    assert pages == 3 and len(listed) == len(set(listed)) and set(listed) == seeded
    assert sim.api("POST", "/v1/dashboard/clusterprofiles", params={"continue": "garbage"}, json={}).status_code == 400


def test_beyond_the_rate_limit_is_429_with_retry_after(sim):
    def call(_index):
        return sim.api("GET", "/v1/registries/metadata", project="")
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(120)))
    limited = [a for a in answers if a.status_code == 429]
    assert limited and all(int(a.headers["Retry-After"]) >= 1 for a in limited)
    assert sum(a.status_code == 200 for a in answers) >= 50  # the burst: 10 a second x 5
    sim.faults(http_429=3, retry_after=2)
    storm = [call(i) for i in range(4)]
    assert [a.status_code for a in storm] == [429, 429, 429, 200] and storm[0].headers["Retry-After"] == "2"


def test_request_log_marks_writes_only(sim):
    mark = sim.mark()
    sim.api("GET", "/v1/dashboard/clusterprofiles/metadata")
    sim.api("POST", "/v1/dashboard/clusterprofiles", json={})
    uid = _create(sim, _profile_body("logged", []))
    sim.api("DELETE", f"/v1/clusterprofiles/{uid}")
    logged = [(r["method"], r["path"], r["status"], r["mutating"]) for r in sim.requests_since(mark)]
    assert logged == [("GET", "/v1/dashboard/clusterprofiles/metadata", 200, False),
                      ("POST", "/v1/dashboard/clusterprofiles", 200, False),
                      ("POST", "/v1/clusterprofiles", 201, True),
                      ("DELETE", f"/v1/clusterprofiles/{uid}", 204, True)]


def test_attach_applies_kubevirt_cdi_roles_namespaces_and_manifests(sim, admin, namespace):
    values = _pack_values(sim, "4.10.7")
    resource = values["charts"][VMO]["kubevirt"]["kubevirtResource"]
    resource["additionalFeatureGates"] = VMO_GATES + ["Sidecar"]
    resource["useEmulation"] = True
    values["charts"][VMO]["cdi"]["cdiResource"]["additionalFeatureGates"] = ["HonorWaitForFirstConsumer"]
    vm_namespace = f"{namespace}-vms"
    values["charts"][VMO]["vmEnabledNamespaces"] = [vm_namespace]
    values["charts"][VMO]["vmo-manager"]["goldenImagesNamespace"] = f"{namespace}-golden"
    template = {"apiVersion": "spectrocloud.com/v1", "kind": "VmTemplate", "metadata": {"name": f"{namespace}-ubuntu"},
                "spec": {"running": False, "template": {"spec": {"domain": {"devices": {}}}}}}
    settings = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "vmo-settings"}, "data": {"a": "b"}}
    extras = {"name": "vmo-extras", "type": "manifest", "values": f"pack:\n  namespace: {namespace}\n",
              "manifests": [{"name": "templates", "content": yaml.safe_dump_all([template, settings])}]}
    uid = _create(sim, _profile_body("vmo-attach", [_vmo_pack(sim, "4.10.7", values), extras]))
    _attach(sim, uid)
    waited = _wait_packs(sim, uid)
    assert {name: (c["type"], c["status"]) for name, c in waited["final"].items()} == {
        VMO: ("Ready", "True"), "vmo-extras": ("Ready", "True")}
    assert waited["seen"][0][VMO] == ("Ready", "False")  # deploying first, then Ready

    developer = admin.get(KUBEVIRT)["spec"]["configuration"]["developerConfiguration"]
    assert developer["featureGates"] == VMO_GATES + ["Sidecar"] and developer["useEmulation"] is True
    cdi = admin.get(object_path("cdi.kubevirt.io/v1beta1", "cdis", "cdi"))
    assert cdi["spec"]["config"]["featureGates"] == ["HonorWaitForFirstConsumer"]
    for name in (vm_namespace, f"{namespace}-golden"):
        assert admin.get_or_none(object_path("v1", "namespaces", name)) is not None
    for role in ("spectro-vm-admin", "spectro-vm-power-user", "spectro-vm-user", "spectro-vm-viewer"):
        assert admin.get_or_none(object_path("rbac.authorization.k8s.io/v1", "clusterroles", role)) is not None
    # VmTemplates are cluster-scoped.
    assert admin.get_or_none(object_path("spectrocloud.com/v1", "vmtemplates", f"{namespace}-ubuntu")) is not None
    # A namespaced object without a namespace lands in the manifest pack's pack.namespace.
    assert admin.get_or_none(object_path("v1", "configmaps", "vmo-settings", namespace)) is not None

    cluster = sim.info()["cluster_uid"]
    attached = sim.api("GET", f"/v1/spectroclusters/{cluster}/profiles").json()["profiles"]
    assert uid in [p["metadata"]["uid"] for p in attached]
    assert sim.api("DELETE", f"/v1/clusterprofiles/{uid}").status_code == 409  # in use
    detached = sim.api("DELETE", f"/v1/spectroclusters/{cluster}/profiles", json={"profileUids": [uid]})
    assert detached.status_code == 204
    packs = sim.api("GET", f"/v1/spectroclusters/{cluster}").json()["status"]["packs"]
    assert uid not in {p["profileUid"] for p in packs}
    assert admin.get(KUBEVIRT)["spec"]["configuration"]["developerConfiguration"]["featureGates"] == VMO_GATES + ["Sidecar"]

    sim.reset()  # the shared lab's KubeVirt CR comes back as bootstrap made it
    developer = admin.get(KUBEVIRT)["spec"]["configuration"]["developerConfiguration"]
    assert developer == {"featureGates": VMO_GATES, "useEmulation": True}
    # ...and what the agent created is gone (a namespace may still be terminating).
    assert admin.get_or_none(object_path("spectrocloud.com/v1", "vmtemplates", f"{namespace}-ubuntu")) is None
    left = admin.get_or_none(object_path("v1", "namespaces", vm_namespace))
    assert left is None or left["status"]["phase"] == "Terminating"


@pytest.mark.parametrize("tag,key,bad", [
    ("4.6.3", ("kubevirt", "kubevirtResource", "useEmulation"), "yes"),
    ("4.10.7", ("vmEnabledNamespaces",), "default"),
])
def test_values_of_the_wrong_type_move_the_pack_to_error(sim, tag, key, bad):
    values = _pack_values(sim, tag)
    node = values["charts"][VMO]
    for part in key[:-1]:
        node = node[part]
    node[key[-1]] = bad
    uid = _create(sim, _profile_body("vmo-bad", [_vmo_pack(sim, tag, values)]))
    _attach(sim, uid)
    condition = _wait_packs(sim, uid)["final"][VMO]
    assert condition["type"] == "Error" and ".".join(key) in condition["message"], condition


def test_an_object_the_apiserver_rejects_moves_the_pack_to_error(sim):
    values = _pack_values(sim, "4.9.9")
    values["charts"][VMO]["kubevirt"]["kubevirtResource"]["config"]["additionalConfig"] = {"notAKubeVirtField": 1}
    uid = _create(sim, _profile_body("vmo-rejected", [_vmo_pack(sim, "4.9.9", values)]))
    _attach(sim, uid)
    condition = _wait_packs(sim, uid)["final"][VMO]
    assert condition["type"] == "Error" and "notAKubeVirtField" in condition["message"], condition


def test_put_profiles_must_keep_the_infra_profile(sim):
    info = sim.info()
    uid = _create(sim, _profile_body("vmo-put", [_vmo_pack(sim, "4.9.9", _pack_values(sim, "4.9.9"))]))
    path = f"/v1/spectroclusters/{info['cluster_uid']}/profiles"
    refused = sim.api("PUT", path, json={"profiles": [{"uid": uid}]})
    assert refused.status_code == 400 and "infra profile" in refused.json()["message"]
    assert sim.api("PUT", path, json={"profiles": [{"uid": info["infra_profile_uid"]}, {"uid": uid}]}).status_code == 204
    assert _wait_packs(sim, uid)["final"][VMO]["type"] == "Ready"
    draft = _create(sim, _profile_body("vmo-draft", []), publish=False)
    assert sim.api("PATCH", path, json={"profiles": [{"uid": draft}]}).status_code == 400


def test_config_rbacs_put_makes_bindings_in_the_apiserver(sim, admin, namespace):
    cluster = sim.info()["cluster_uid"]
    path = f"/v1/spectroclusters/{cluster}/config/rbacs"
    bindings = [
        {"type": "ClusterRoleBinding", "role": {"kind": "ClusterRole", "name": "spectro-vm-viewer"},
         "subjects": [{"type": "User", "name": "alice"}, {"type": "Group", "name": "vm-viewers"}]},
        {"type": "RoleBinding", "namespace": namespace, "role": {"kind": "ClusterRole", "name": "spectro-vm-user"},
         "subjects": [{"type": "ServiceAccount", "name": "default", "namespace": namespace}]},
    ]
    assert sim.api("PUT", path, json={"rbacs": [{"spec": {"bindings": bindings}}]}).status_code == 204
    crb = admin.get(object_path("rbac.authorization.k8s.io/v1", "clusterrolebindings", "spectro-on-demand-1"))
    assert crb["roleRef"]["name"] == "spectro-vm-viewer"
    assert crb["metadata"]["labels"]["spectrocloud.com/clusterRbac"] == "true"
    assert [(s["kind"], s["name"]) for s in crb["subjects"]] == [("User", "alice"), ("Group", "vm-viewers")]
    rb = admin.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", "spectro-on-demand-2", namespace))
    assert rb["roleRef"]["name"] == "spectro-vm-user" and rb["subjects"][0]["namespace"] == namespace
    items = sim.api("GET", path).json()["items"]
    assert items[0]["spec"]["bindings"] == bindings

    # A PUT replaces the set: the RoleBinding goes, the ClusterRoleBinding changes role.
    changed = [dict(bindings[0], role={"kind": "ClusterRole", "name": "spectro-vm-admin"})]
    assert sim.api("PUT", path, json={"rbacs": [{"spec": {"bindings": changed}}]}).status_code == 204
    crb = admin.get(object_path("rbac.authorization.k8s.io/v1", "clusterrolebindings", "spectro-on-demand-1"))
    assert crb["roleRef"]["name"] == "spectro-vm-admin"
    assert admin.get_or_none(object_path("rbac.authorization.k8s.io/v1", "rolebindings", "spectro-on-demand-2",
                                         namespace)) is None
    bad = sim.api("PUT", path, json={"rbacs": [{"spec": {"bindings": [dict(bindings[1], namespace="")]}}]})
    assert bad.status_code == 400 and "namespace" in bad.json()["message"]


def test_cluster_search_kubeconfig_and_lab_faults(sim, lab):
    found = sim.api("POST", "/v1/dashboard/spectroclusters/search", json={"filter": {"conjunction": "and", "filterGroups": [
        {"conjunction": "and", "filters": [{"property": "clusterName", "type": "string", "condition": {"string": {
            "operator": "eq", "match": {"conjunction": "or", "values": ["lab-cluster"]}}}}]}]}}).json()
    assert [i["metadata"]["name"] for i in found["items"]] == ["lab-cluster"]
    none = sim.api("POST", "/v1/dashboard/spectroclusters/search", project="empty", json={}).json()
    assert none["items"] == []
    cluster = found["items"][0]["metadata"]["uid"]
    for asset in ("kubeconfig", "adminKubeconfig"):
        kubeconfig = sim.api("GET", f"/v1/spectroclusters/{cluster}/assets/{asset}")
        assert kubeconfig.status_code == 200
        entry = yaml.safe_load(kubeconfig.text)["clusters"][0]["cluster"]
        # Self-contained, as Palette's are: the CA inline, no path on the lab's disk.
        assert entry["server"] == lab.apiserver_url and "certificate-authority" not in entry
        assert base64.b64decode(entry["certificate-authority-data"]) == Path(lab.ca_file).read_bytes()
    sim.faults(http_5xx=1, status_5xx=502)
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}").status_code == 502
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}").status_code == 200


def test_lab_env_names_the_simulator(palette):
    printed = subprocess.run([sys.executable, "-m", "tests.lab", "env"], cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout
    env = dict(shlex.split(line[len("export "):])[0].split("=", 1) for line in printed.splitlines())
    assert env["PALETTE_HOST"] == palette.host and env["PALETTE_API_KEY"] == palette.api_key
    assert env["PALETTE_PROJECT"] == "lab" and env["LAB_PALETTE_CLUSTER"] == "lab-cluster"
    assert env["PALETTE_CA_CERT"] == palette.ca_file and env["LAB_PALETTE_REQUEST_LOG"] == str(palette.log_path)
    assert palette.api("GET", "/v1/dashboard/projects/metadata", project=env["PALETTE_PROJECT"]).status_code == 200


def test_dropped_connections_and_slow_answers(sim):
    import requests

    sim.faults(drop_connections=1)
    with pytest.raises(requests.ConnectionError):
        sim.api("GET", "/v1/registries/metadata")
    assert sim.api("GET", "/v1/registries/metadata").status_code == 200
    sim.faults(slow_seconds=0.3)
    started = time.monotonic()
    assert sim.api("GET", "/v1/registries/metadata").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_client_kubeconfig_is_a_certificate_bound_to_cluster_admin(sim, lab, admin, tmp_path):
    """kubeconfigclient: CN palette-lab-cluster-client signed by the lab CA, no system:masters, bound to
    cluster-admin by a ClusterRoleBinding; it reaches the real apiserver with the CA embedded."""
    import base64

    import requests
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cluster = sim.info()["cluster_uid"]
    answer = sim.api("GET", f"/v1/spectroclusters/{cluster}/assets/kubeconfigclient")
    assert answer.status_code == 200, answer.text
    config = yaml.safe_load(answer.text)
    server = config["clusters"][0]["cluster"]
    assert server["server"] == lab.apiserver_url and "certificate-authority" not in server
    assert base64.b64decode(server["certificate-authority-data"]) == lab.ca_file.read_bytes()
    user = config["users"][0]["user"]
    cert = x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "palette-lab-cluster-client"
    assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    binding = admin.get(object_path("rbac.authorization.k8s.io/v1", "clusterrolebindings", "palette-lab-cluster-client"))
    assert binding["roleRef"]["name"] == "cluster-admin"
    assert binding["subjects"] == [{"kind": "User", "name": "palette-lab-cluster-client",
                                    "apiGroup": "rbac.authorization.k8s.io"}]
    # The same text every time (written once per lab), and the identity it carries is what the apiserver sees.
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}/assets/kubeconfigclient").text == answer.text
    (tmp_path / "crt").write_bytes(base64.b64decode(user["client-certificate-data"]))
    (tmp_path / "key").write_bytes(base64.b64decode(user["client-key-data"]))
    (tmp_path / "ca").write_bytes(base64.b64decode(server["certificate-authority-data"]))
    session = requests.Session()
    session.trust_env = False
    review = session.post(server["server"] + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                          cert=(str(tmp_path / "crt"), str(tmp_path / "key")), verify=str(tmp_path / "ca"), timeout=30)
    assert review.status_code == 201, review.text
    info = review.json()["status"]["userInfo"]
    assert info["username"] == "palette-lab-cluster-client" and "system:masters" not in info.get("groups", [])
    nodes = session.get(server["server"] + "/api/v1/nodes", cert=(str(tmp_path / "crt"), str(tmp_path / "key")),
                        verify=str(tmp_path / "ca"), timeout=30)
    assert nodes.status_code == 200 and nodes.json()["items"]
    assert sim.info()["cluster_client_user"] == "palette-lab-cluster-client"
    assert sim.api("GET", f"/v1/spectroclusters/{cluster}/assets/kubeconfigclient", project="empty").status_code == 404
