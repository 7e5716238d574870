"""The Palette simulator makes MAAS clusters as Palette does: through the lab MAAS's API (allocate, deploy, release),
machines become Nodes of the lab apiserver, a client kubeconfig reaches it as a non-admin identity.

Every test enrolls its own machines in a resource pool, zones and a tag of its own, so the clusters it makes take
only those machines (other tests leave Ready machines in MAAS's default pool)."""

import base64
import json
import shlex
import subprocess
import sys
import uuid

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.conftest import REPO_ROOT
from tests.lab.kube import object_path
from tests.lab.palette.maas_client import MaasClient
from tests.lab.state import LabState
from tests.lab.tests.helpers import vm_manifest, vm_path, vmi_path

# Short MAAS transitions: a machine commissions and deploys in well under a second, still seen under way.
FAST = {"commissioning": 0.3, "deploying": 0.6, "releasing": 0.3, "erasing": 0.3}
RBAC = "rbac.authorization.k8s.io/v1"


class Placement:
    """A resource pool, two zones and a tag of the test's own in MAAS, and the machines it enrolled there."""

    def __init__(self, client: MaasClient):
        self.client = client
        self.key = uuid.uuid4().hex[:6]
        self.pool, self.tag = f"pool-{self.key}", f"tag-{self.key}"
        self.zones = [f"zone-{self.key}-a", f"zone-{self.key}-b"]
        client.create_pool(self.pool)
        client.create_tag(self.tag)
        for zone in self.zones:
            client.create_zone(zone)
        self.machines = []

    def enroll(self, count: int, zone: int = 0, tagged: bool = True) -> list:
        start = len(self.machines)
        names = [f"m-{self.key}-{start + i}" for i in range(count)]
        made = self.client.enroll(names, pool=self.pool, zone=self.zones[zone], tags=[self.tag] if tagged else [])
        self.machines += made
        return made

    def status(self) -> dict:
        return {m["hostname"]: self.client.machine(m["system_id"])["status_name"] for m in self.machines}

    def remove(self) -> None:
        for machine in self.machines:
            self.client.delete_machine(machine["system_id"])
        self.client.delete_tag(self.tag)
        self.client.delete_pool(self.pool)
        for zone in self.zones:
            self.client.delete_zone(zone)


@pytest.fixture
def maas_client(lab, maas):
    maas.reset()
    maas.durations(**FAST)
    yield MaasClient(lab.maas_url, lab.maas_api_key, str(lab.ca_file))
    maas.reset()


@pytest.fixture
def placement(maas_client, palette):
    made = Placement(maas_client)
    yield made
    _delete_all(palette)
    made.remove()


def _delete_all(palette) -> None:
    """The test's clusters deleted and waited for (every MAAS cluster of the lab: tests do not share one)."""
    for cluster in palette.info()["maas_clusters"].values():
        palette.api("DELETE", f"/v1/spectroclusters/{cluster['uid']}", project=cluster["project"])
    _until(lambda: not palette.info()["maas_clusters"] or None, "the MAAS clusters to be gone")


def _until(probe, what: str):
    """Polls probe() until it returns something truthy (no time limit: a state that never comes is the failure)."""
    import time

    while True:
        value = probe()
        if value:
            return value
        time.sleep(0.05)


def _pool(name: str, size: int, placement: Placement, control_plane: bool = False, azs=None, tags=None,
          min_cpu: int = 0, min_mem: int = 0, labels=None, **pool_config) -> dict:
    return {"cloudConfig": {"resourcePool": placement.pool, "azs": azs or [], "tags": tags or [],
                            "instanceType": {"minCPU": min_cpu, "minMemInMB": min_mem}},
            "poolConfig": dict({"name": name, "size": size, "isControlPlane": control_plane,
                                "labels": ["control-plane" if control_plane else "worker"],
                                "additionalLabels": labels or {}}, **pool_config)}


def _body(palette, name: str, pools: list, profiles=None, domain: str = "maas", account: str = None) -> dict:
    info = palette.info()
    return {"metadata": {"name": name},
            "spec": {"cloudAccountUid": info["maas_account_uid"] if account is None else account,
                     "cloudConfig": {"domain": domain, "sshKeys": ["ssh-ed25519 AAAA lab"], "ntpServers": ["ntp.lab"]},
                     "profiles": profiles if profiles is not None else [{"uid": info["infra_profile_uid"]}],
                     "machinepoolconfig": pools}}


def _create(palette, body: dict) -> str:
    answer = palette.api("POST", "/v1/spectroclusters/maas", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["uid"]


def _cluster(palette, uid: str) -> dict:
    return palette.api("GET", f"/v1/spectroclusters/{uid}").json()


def _machines(palette, config_uid: str, pool: str) -> list:
    answer = palette.api("GET", f"/v1/cloudconfigs/maas/{config_uid}/machinePools/{pool}/machines")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def _wait_running(palette, uid: str, pools=(), states=None) -> dict:
    """Waits for Running, recording (after `states`, those seen already) each cluster state and each machine's
    instanceState seen on the way."""
    states, machine_states = list(states or []), {}
    config = _cluster(palette, uid)["spec"]["cloudConfigRef"]["uid"]

    def probe():
        cluster = _cluster(palette, uid)
        state = cluster["status"]["state"]
        if not states or states[-1] != state:
            states.append(state)
        for pool in pools:
            for machine in _machines(palette, config, pool):
                seen = machine_states.setdefault(machine["metadata"]["name"], [])
                if not seen or seen[-1] != machine["status"]["instanceState"]:
                    seen.append(machine["status"]["instanceState"])
        return cluster if state == "Running" else None
    cluster = _until(probe, f"cluster {uid} to be Running")
    return {"cluster": cluster, "states": states, "machines": machine_states, "config": config}


def _nodes(admin, cluster_uid: str) -> dict:
    listed = admin.get(object_path("v1", "nodes"), labelSelector=f"palette.lab/cluster-uid={cluster_uid}")
    return {n["metadata"]["name"]: n for n in listed["items"]}


def _mebibytes(quantity: str) -> int:
    """A binary-suffixed memory quantity as the apiserver canonicalises it (16384Mi comes back 16Gi), in MiB."""
    for power, suffix in enumerate(("Mi", "Gi", "Ti")):
        if quantity.endswith(suffix):
            return int(quantity[:-2]) * 1024 ** power
    raise AssertionError(f"unexpected memory quantity {quantity!r}")


def _ready(node: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions", []))


def _kubeconfig_session(text: str, tmp_path):
    """A requests session carrying the kubeconfig's client certificate and CA; and the server."""
    config = yaml.safe_load(text)
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    for name, data in (("crt", user["client-certificate-data"]), ("key", user["client-key-data"]),
                       ("ca", cluster["certificate-authority-data"])):
        (tmp_path / name).write_bytes(base64.b64decode(data))
    session = requests.Session()
    session.trust_env = False
    session.cert, session.verify = (str(tmp_path / "crt"), str(tmp_path / "key")), str(tmp_path / "ca")
    cert = x509.load_pem_x509_certificate((tmp_path / "crt").read_bytes())
    return session, cluster["server"], cert


def _maas_writes(maas, mark: int) -> list:
    return [r for r in maas.requests_since(mark) if r["mutating"]]


# -- the cloud account ------------------------------------------------------------------------------------


def test_maas_account_is_seeded_and_reads_maas_live(palette, maas_client, placement):
    listed = palette.api("GET", "/v1/cloudaccounts/maas").json()
    accounts = {a["metadata"]["name"]: a for a in listed["items"]}
    account = accounts["lab-maas"]
    assert account["spec"]["apiEndpoint"] == maas_client.url and "apiKey" not in account["spec"]
    assert account["metadata"]["annotations"]["scope"] == "tenant" and listed["listmeta"]["count"] == 1
    uid = account["metadata"]["uid"]
    assert palette.api("GET", f"/v1/cloudaccounts/maas/{uid}").json()["metadata"]["name"] == "lab-maas"
    assert palette.api("GET", f"/v1/cloudaccounts/maas/{uid}", project="").status_code == 200  # tenant-wide
    assert palette.api("GET", "/v1/cloudaccounts/maas/" + "0" * 24).status_code == 404

    def names(kind):
        answer = palette.api("GET", f"/v1/cloudaccounts/maas/{uid}/properties/{kind}")
        assert answer.status_code == 200, answer.text
        return {item["name"] for item in answer.json()["items"]}

    # Made in MAAS a moment ago: Palette reads the account's properties from MAAS at each request.
    assert placement.pool in names("resourcePools") and "default" in names("resourcePools")
    assert set(placement.zones) <= names("azs") and placement.tag in names("tags")
    assert "maas" in names("domains")
    maas_client.delete_tag(placement.tag)
    assert placement.tag not in names("tags")
    maas_client.create_tag(placement.tag)
    printed = subprocess.run([sys.executable, "-m", "tests.lab", "env"], cwd=REPO_ROOT, check=True,
                             capture_output=True, text=True).stdout
    env = dict(shlex.split(line[len("export "):])[0].split("=", 1) for line in printed.splitlines())
    assert env["LAB_PALETTE_MAAS_ACCOUNT"] == "lab-maas"


# -- a cluster from create to Running, scaled, through its kubeconfig -----------------------------------------


def test_cluster_is_made_through_maas_and_its_machines_become_ready_nodes(
        palette, placement, admin, maas, tmp_path, namespace):
    placement.enroll(1, zone=0)
    placement.enroll(1, zone=0)
    placement.enroll(1, zone=1)
    name = f"mc-{placement.key}"
    pools = [_pool("cp", 1, placement, control_plane=True, azs=[placement.zones[0]], tags=[placement.tag],
                   min_cpu=4, min_mem=8192),
             _pool("workers", 2, placement, azs=placement.zones, labels={"vmo.lab/pool": name},
                   taints=[{"key": "dedicated", "value": "vms", "effect": "PreferNoSchedule"}])]
    maas_mark, palette_mark = maas.mark(), palette.mark()
    # Palette-side steps long enough for a poller to see every state on the way.
    with palette.faulted(maas_cluster_step_seconds=0.6):
        uid = _create(palette, _body(palette, name, pools))
        first = _cluster(palette, uid)["status"]["state"]
        assert first == "Pending"
        run = _wait_running(palette, uid, ("cp", "workers"), [first])
    cluster = run["cluster"]
    assert run["states"][0] == "Pending" and "Provisioning" in run["states"] and run["states"][-1] == "Running"
    for name_, seen in run["machines"].items():
        assert seen[0] == "Pending" and "Provisioning" in seen and seen[-1] == "Running", (name_, seen)
    assert cluster["spec"]["cloudType"] == "maas" and cluster["spec"]["cloudConfigRef"]["kind"] == "MaasCloudConfig"
    templates = cluster["spec"]["clusterProfileTemplates"]
    assert [t["name"] for t in templates] == ["lab-maas-infra"]
    infra_packs = {p["name"]: p["condition"] for p in cluster["status"]["packs"]}
    assert set(infra_packs) == {"ubuntu-maas", "kubernetes", "cni-calico", "csi-rook-ceph"}
    assert all(c["type"] == "Ready" and c["status"] == "True" for c in infra_packs.values())
    assert {c["type"]: c["status"] for c in cluster["status"]["conditions"]} == \
        {"ControlPlaneReady": "True", "NodesReady": "True"}
    overview = palette.api("GET", f"/v1/dashboard/spectroclusters/{uid}/overview").json()
    assert overview["status"]["state"] == "Running" and overview["status"]["health"]["state"] == "Healthy"

    # MAAS was asked as Palette's provider asks: allocate with the pool's constraints, deploy, nothing else.
    writes = _maas_writes(maas, maas_mark)
    allocations = [w for w in writes if "op=allocate" in w["query"]]
    assert len(allocations) == 3 and all(w["status"] == 200 for w in allocations)
    deploys = [w for w in writes if "op=deploy" in w["query"]]
    swaps = [w for w in writes if w["method"] == "PUT"]  # swap off before the deploy, as the provider does
    assert len(deploys) == 3 and len(swaps) == 3 and len(writes) == 9
    deployed = {m["hostname"]: m for m in (placement.client.machine(m["system_id"]) for m in placement.machines)}
    assert all(m["status_name"] == "Deployed" and m["owner"] == "admin" for m in deployed.values())
    assert deployed[placement.machines[0]["hostname"]]["distro_series"] == "jammy"

    # Every machine is a Ready Node named after its MAAS hostname, labelled for its pool and zone.
    config = run["config"]
    cp_machine = _machines(palette, config, "cp")[0]
    workers = _machines(palette, config, "workers")
    nodes = _nodes(admin, uid)
    assert set(nodes) == {m["hostname"] for m in placement.machines} and all(_ready(n) for n in nodes.values())
    cp_node = nodes[cp_machine["spec"]["hostname"]]
    assert cp_machine["spec"]["hostname"] in (placement.machines[0]["hostname"], placement.machines[1]["hostname"])
    labels = cp_node["metadata"]["labels"]
    assert labels["node-role.kubernetes.io/control-plane"] == "" and labels["kubevirt.io/schedulable"] == "true"
    assert labels["topology.kubernetes.io/zone"] == placement.zones[0] and labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64" and labels["kubernetes.io/hostname"] == cp_node["metadata"]["name"]
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in cp_node["spec"]["taints"]
    cp_maas = deployed[cp_node["metadata"]["name"]]
    assert cp_node["status"]["capacity"]["cpu"] == str(cp_maas["cpu_count"])
    assert _mebibytes(cp_node["status"]["capacity"]["memory"]) == cp_maas["memory"]
    assert cp_node["spec"]["providerID"] == f"maas:///{placement.zones[0]}/{cp_maas['system_id']}"
    worker_nodes = [nodes[w["spec"]["hostname"]] for w in workers]
    assert sorted(w["spec"]["az"] for w in workers) == sorted(placement.zones)  # spread over the pool's zones
    for node in worker_nodes:
        assert node["metadata"]["labels"]["node-role.kubernetes.io/worker"] == ""
        assert node["metadata"]["labels"]["vmo.lab/pool"] == name
        assert node["spec"]["taints"] == [{"key": "dedicated", "value": "vms", "effect": "PreferNoSchedule"}]

    # The cloud config, the search and the request log agree.
    cloud = palette.api("GET", f"/v1/cloudconfigs/maas/{config}").json()["spec"]
    assert cloud["clusterConfig"]["domain"] == "maas" and cloud["cloudAccountRef"]["name"] == "lab-maas"
    by_pool = {p["name"]: p for p in cloud["machinePoolConfig"]}
    assert by_pool["cp"]["isControlPlane"] and by_pool["cp"]["tags"] == [placement.tag]
    assert by_pool["cp"]["instanceType"]["minCPU"] == 4 and by_pool["workers"]["size"] == 2
    assert by_pool["workers"]["azs"] == placement.zones and by_pool["workers"]["resourcePool"] == placement.pool
    by_name = {"property": "clusterName", "type": "string",
               "condition": {"string": {"operator": "eq", "match": {"conjunction": "or", "values": [name]}}}}
    search = {"filter": {"conjunction": "and", "filterGroups": [{"conjunction": "and", "filters": [by_name]}]}}
    found = palette.api("POST", "/v1/dashboard/spectroclusters/search", json=search).json()
    assert [(i["metadata"]["uid"], i["status"]["state"]) for i in found["items"]] == [(uid, "Running")]
    assert palette.api("GET", f"/v1/spectroclusters/{uid}", project="empty").status_code == 404
    writes = palette.writes_since(palette_mark)
    assert [(w["method"], w["path"], w["status"]) for w in writes] == [("POST", "/v1/spectroclusters/maas", 201)]

    # The client kubeconfig: a certificate with no system:masters, cluster-admin through a binding.
    text = palette.api("GET", f"/v1/spectroclusters/{uid}/assets/kubeconfigclient").text
    session, server, cert = _kubeconfig_session(text, tmp_path)
    assert server == admin.server
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"palette-{name}-client"
    assert not cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    review = session.post(server + "/apis/authentication.k8s.io/v1/selfsubjectreviews", timeout=30,
                          json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}).json()
    assert review["status"]["userInfo"]["username"] == f"palette-{name}-client"
    assert "system:masters" not in review["status"]["userInfo"].get("groups", [])
    seen = session.get(server + "/api/v1/nodes", params={"labelSelector": f"palette.lab/cluster-uid={uid}"},
                       timeout=30)
    assert seen.status_code == 200 and {n["metadata"]["name"] for n in seen.json()["items"]} == set(nodes)
    binding = admin.get(object_path(RBAC, "clusterrolebindings", f"palette-{name}-client"))
    assert binding["roleRef"]["name"] == "cluster-admin"
    admin_text = palette.api("GET", f"/v1/spectroclusters/{uid}/assets/adminKubeconfig").text
    (tmp_path / "admin").mkdir()
    _session, _server, admin_cert = _kubeconfig_session(admin_text, tmp_path / "admin")
    assert admin_cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "system:masters"
    assert palette.info()["maas_clusters"][name]["client_user"] == f"palette-{name}-client"

    # A VM that selects the worker pool's label runs on one of its Nodes (created through the client identity).
    vm = vm_manifest("on-maas", namespace)
    vm["spec"]["template"]["spec"]["nodeSelector"] = {"vmo.lab/pool": name}
    created = session.post(server + vm_path(namespace), json=vm, timeout=30)
    assert created.status_code == 201, created.text

    def running_vmi():
        found = admin.get_or_none(vmi_path(namespace, "on-maas"))
        return found if found and found.get("status", {}).get("phase") == "Running" else None
    vmi = _until(running_vmi, "the VM's instance Running")
    assert vmi["status"]["nodeName"] in {w["spec"]["hostname"] for w in workers}


def test_worker_pool_scales_up_and_down_with_maas_machines_and_nodes(palette, placement, admin, maas):
    placement.enroll(2)
    name = f"sc-{placement.key}"
    pools = [_pool("cp", 1, placement, control_plane=True, tags=[placement.tag]),
             _pool("workers", 1, placement, tags=[placement.tag], labels={"vmo.lab/pool": name})]
    uid = _create(palette, _body(palette, name, pools))
    config = _wait_running(palette, uid)["config"]
    before = {m["spec"]["hostname"] for m in _machines(palette, config, "workers")}

    # Up by one while MAAS has no Ready machine left: Palette accepts the PUT (it asks MAAS nothing before); the new
    # machine stays Pending with MAAS's answer, op=allocate sent again every step and nothing allocated, the cluster
    # Running and UnHealthy with the pool's healthy count below its size, until a machine is enrolled.
    bigger = _pool("workers", 2, placement, tags=[placement.tag], labels={"vmo.lab/pool": name})
    checked = palette.api("POST", "/v1/spectroclusters/maas/validate", json=_body(palette, name, [pools[0], bigger]))
    assert checked.status_code == 200, checked.text
    assert [r["errors"] for r in checked.json()["machinePools"]["results"]] == [[], []]
    mark = maas.mark()
    assert palette.api("PUT", f"/v1/cloudconfigs/maas/{config}/machinePools/workers", json=bigger).status_code == 204

    def short_pool():
        waiting = [m for m in _machines(palette, config, "workers") if m["status"]["instanceState"] == "Pending"
                   and "No available machine" in m["status"]["health"]["conditions"][0]["message"]]
        allocations = [w for w in maas.requests_since(mark) if "op=allocate" in w["query"]]
        return waiting if waiting and len(allocations) >= 2 else None
    waiting = _until(short_pool, "the new worker Pending with MAAS's answer, allocation retried")
    assert "Unable to allocate machine" in waiting[0]["status"]["health"]["conditions"][0]["message"]
    overview = palette.api("GET", f"/v1/dashboard/spectroclusters/{uid}/overview").json()
    assert overview["status"]["state"] == "Running" and overview["status"]["health"]["state"] == "UnHealthy"
    assert [(p["isControlPlane"], p["size"], p["healthy"]) for p in overview["spec"]["cloudConfig"]["machinePools"]] \
        == [(True, 1, 1), (False, 2, 1)]
    nodes_ready = {c["type"]: c for c in _cluster(palette, uid)["status"]["conditions"]}["NodesReady"]
    assert nodes_ready["status"] == "False" and "No available machine" in nodes_ready["message"]
    assert {w["status"] for w in _maas_writes(maas, mark)} == {409}  # only refused allocations, nothing else
    added = placement.enroll(1)[0]

    def two_workers():
        machines = _machines(palette, config, "workers")
        return machines if len(machines) == 2 and all(m["status"]["ready"] for m in machines) else None
    workers = _until(two_workers, "two Ready workers")
    assert {m["spec"]["hostname"] for m in workers} == before | {added["hostname"]}
    granted = [w for w in _maas_writes(maas, mark) if "op=allocate" in w["query"] and w["status"] == 200]
    assert len(granted) == 1  # nothing allocated twice
    assert placement.client.machine(added["system_id"])["status_name"] == "Deployed"
    assert _ready(_nodes(admin, uid)[added["hostname"]])
    overview = palette.api("GET", f"/v1/dashboard/spectroclusters/{uid}/overview").json()
    assert overview["status"]["health"]["state"] == "Healthy"
    assert [(p["size"], p["healthy"]) for p in overview["spec"]["cloudConfig"]["machinePools"]] == [(1, 1), (2, 2)]

    # Down by one: the newest machine is released in MAAS and its Node deleted.
    smaller = _pool("workers", 1, placement, tags=[placement.tag], labels={"vmo.lab/pool": name})
    assert palette.api("PUT", f"/v1/cloudconfigs/maas/{config}/machinePools/workers", json=smaller).status_code == 204
    _until(lambda: len(_machines(palette, config, "workers")) == 1 or None, "one worker")
    assert {m["spec"]["hostname"] for m in _machines(palette, config, "workers")} == before
    _until(lambda: placement.client.machine(added["system_id"])["status_name"] == "Ready" or None,
           "the released machine to be Ready in MAAS")
    assert added["hostname"] not in _nodes(admin, uid)
    cloud = palette.api("GET", f"/v1/cloudconfigs/maas/{config}").json()["spec"]
    assert {p["name"]: p["size"] for p in cloud["machinePoolConfig"]} == {"cp": 1, "workers": 1}

    # A label change of the pool reaches its Nodes; a pool added and deleted takes and gives back its machine.
    relabelled = _pool("workers", 1, placement, tags=[placement.tag], labels={"vmo.lab/pool": "renamed"})
    workers_path = f"/v1/cloudconfigs/maas/{config}/machinePools/workers"
    assert palette.api("PUT", workers_path, json=relabelled).status_code == 204

    def relabelled_nodes():
        labels = [n["metadata"]["labels"] for n in _nodes(admin, uid).values()]
        return all(l.get("vmo.lab/pool") == "renamed" for l in labels if "node-role.kubernetes.io/worker" in l) or None
    _until(relabelled_nodes, "the workers relabelled")
    extra = _pool("extra", 1, placement, tags=[placement.tag])
    created = palette.api("POST", f"/v1/cloudconfigs/maas/{config}/machinePools", json=extra)
    assert created.status_code == 201 and created.json()["uid"]
    assert palette.api("POST", f"/v1/cloudconfigs/maas/{config}/machinePools", json=extra).status_code == 409
    _until(lambda: [m for m in _machines(palette, config, "extra") if m["status"]["ready"]] or None, "the extra pool")
    assert palette.api("DELETE", f"/v1/cloudconfigs/maas/{config}/machinePools/extra").status_code == 204
    assert palette.api("DELETE", f"/v1/cloudconfigs/maas/{config}/machinePools/cp").status_code == 400
    _until(lambda: palette.api("GET", f"/v1/cloudconfigs/maas/{config}/machinePools/extra/machines").status_code
           == 404 or None, "the extra pool gone")  # once MAAS accepted the release, maybe still releasing it
    _until(lambda: all(state in ("Ready", "Deployed") for state in placement.status().values()) or None,
           "MAAS to finish releasing the extra pool's machine")
    assert sum(state == "Deployed" for state in placement.status().values()) == 2


def test_cluster_config_is_replaced_in_place_and_deployed_machines_are_left_alone(palette, placement, admin, maas):
    placement.enroll(1)
    name = f"cc-{placement.key}"
    uid = _create(palette, _body(palette, name, [_pool("cp", 1, placement, control_plane=True)]))
    config = _wait_running(palette, uid)["config"]
    path = f"/v1/cloudconfigs/maas/{config}/clusterConfig"
    deployed = [m["spec"]["hostname"] for m in _machines(palette, config, "cp")]

    def stored():
        return palette.api("GET", f"/v1/cloudconfigs/maas/{config}").json()["spec"]["clusterConfig"]
    assert stored() == {"domain": "maas", "sshKeys": ["ssh-ed25519 AAAA lab"], "ntpServers": ["ntp.lab"],
                        "enableLxdVm": False, "staticIp": False}

    # The whole v1MaasClusterConfig is replaced (204, no body), in the order given; GET shows it at once.
    palette_mark, maas_mark = palette.mark(), maas.mark()
    wanted = {"domain": "lab.example", "sshKeys": ["ssh-ed25519 CCCC two", "ssh-ed25519 BBBB one"],
              "ntpServers": ["ntp1.lab", "ntp0.lab"]}
    answer = palette.api("PUT", path, json={"clusterConfig": wanted})
    assert answer.status_code == 204 and answer.content == b"", answer.text
    assert stored() == dict(wanted, enableLxdVm=False, staticIp=False)
    # A field left out is emptied: the PUT is the whole config, as the provider sends it.
    assert palette.api("PUT", path, json={"clusterConfig": {"domain": "lab.example",
                                                            "ntpServers": ["ntp0.lab"]}}).status_code == 204
    assert stored() == {"domain": "lab.example", "sshKeys": [], "ntpServers": ["ntp0.lab"], "enableLxdVm": False,
                        "staticIp": False}

    # Not the documented shape, or no domain: a 400 v1Error naming the field, and the config as it was.
    cases = {
        "no clusterConfig": (wanted, "v1MaasCloudClusterConfigEntity"),
        "not an object": (["lab.example"], "v1MaasCloudClusterConfigEntity"),
        "config not an object": ({"clusterConfig": "lab.example"}, "clusterConfig must be an object"),
        "no domain": ({"clusterConfig": {"sshKeys": ["ssh-ed25519 AAAA"]}}, "clusterConfig.domain is required"),
        "empty domain": ({"clusterConfig": dict(wanted, domain="")}, "clusterConfig.domain is required"),
        "keys not a list": ({"clusterConfig": dict(wanted, sshKeys="ssh-ed25519 AAAA")},
                            "clusterConfig.sshKeys must be a list of strings"),
        "servers not strings": ({"clusterConfig": dict(wanted, ntpServers=[123])},
                                "clusterConfig.ntpServers must be a list of strings"),
        "flag not a boolean": ({"clusterConfig": dict(wanted, enableLxdVm="yes")},
                               "clusterConfig.enableLxdVm must be true or false"),
    }
    for case, (body, text) in cases.items():
        refused = palette.api("PUT", path, json=body)
        assert refused.status_code == 400, (case, refused.text)
        error = refused.json()
        assert set(error) == {"code", "message", "details", "ref"} and text in error["message"], (case, error)
    assert stored()["domain"] == "lab.example" and stored()["ntpServers"] == ["ntp0.lab"]
    assert palette.api("PUT", f"/v1/cloudconfigs/maas/{'0' * 24}/clusterConfig",
                       json={"clusterConfig": wanted}).status_code == 404

    # Every PUT is logged as a write; MAAS was not asked to do anything: the deployed machine keeps what it was
    # deployed with, the cluster stays Running and Healthy with the same machine and Node.
    logged = [(r["method"], r["path"], r["mutating"]) for r in palette.requests_since(palette_mark)
              if r["method"] == "PUT"]
    assert logged and all(method == "PUT" and mutating for method, _path, mutating in logged)
    assert _maas_writes(maas, maas_mark) == []
    assert [m["spec"]["hostname"] for m in _machines(palette, config, "cp")] == deployed
    assert _cluster(palette, uid)["status"]["state"] == "Running"
    assert palette.api("GET", f"/v1/dashboard/spectroclusters/{uid}/overview").json()["status"]["health"]["state"] \
        == "Healthy"
    assert all(_ready(node) for node in _nodes(admin, uid).values()) and set(_nodes(admin, uid)) == set(deployed)

    # While the cluster is being deleted, its config is not written (as its pools and profiles).
    maas.faults(http_503=1_000_000)  # MAAS does not accept the release: the cluster stays Deleting
    try:
        assert palette.api("DELETE", f"/v1/spectroclusters/{uid}").status_code == 204
        late = palette.api("PUT", path, json={"clusterConfig": wanted})
        assert late.status_code == 409 and late.json()["code"] == "SpectroClusterDeleting", late.text
    finally:
        maas.faults(http_503=0)
    _until(lambda: palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404 or None, "the cluster gone")


def test_each_machine_waits_in_its_own_zone_and_only_the_last_tag_reaches_maas(palette, placement, maas):
    """A machine's zone is fixed when it is made (the pool's zones by count) and op=allocate is retried there, never
    in another zone; of a pool's tags only the last is sent (maas-client-go WithTags sets the field in a loop)."""
    placement.enroll(3, zone=0)  # one more in zone a than the cluster places there
    other = f"other-{placement.key}"
    placement.client.create_tag(other)  # no machine carries it
    try:
        name = f"zt-{placement.key}"
        pools = [_pool("cp", 1, placement, control_plane=True, azs=[placement.zones[0]], tags=[other, placement.tag]),
                 _pool("workers", 2, placement, azs=placement.zones, tags=[placement.tag])]
        mark = maas.mark()
        uid = _create(palette, _body(palette, name, pools))
        config = _cluster(palette, uid)["spec"]["cloudConfigRef"]["uid"]

        def waiting_in_b():
            workers = _machines(palette, config, "workers")
            pending = [m for m in workers if m["status"]["instanceState"] == "Pending"]
            refused = [w for w in maas.requests_since(mark) if "op=allocate" in w["query"] and w["status"] == 409]
            return pending if len(workers) == 2 and pending and len(refused) >= 3 else None
        pending = _until(waiting_in_b, "the zone-b worker waiting, op=allocate refused again and again")
        message = pending[0]["status"]["health"]["conditions"][0]["message"]
        assert pending[0]["spec"]["az"] == placement.zones[1]
        assert f"zone={placement.zones[1]}" in message and message.count("zone=") == 1, message
        assert f"tags={placement.tag}" in message and message.count("tags=") == 1, message
        # The spare machine in zone a stays Ready: no other zone is tried.
        assert sorted(placement.status().values())[-1] == "Ready"
        assert sum(state == "Ready" for state in placement.status().values()) == 1
        # The control plane got a machine without `other`: only its last tag reached MAAS.
        cp = _machines(palette, config, "cp")[0]
        assert cp["status"]["instanceState"] != "Pending" and cp["spec"]["az"] == placement.zones[0]
        assert other not in placement.client.machine(
            next(m["system_id"] for m in placement.machines if m["hostname"] == cp["spec"]["hostname"]))["tag_names"]

        placement.enroll(1, zone=1)
        run = _wait_running(palette, uid)
        workers = _machines(palette, run["config"], "workers")
        assert sorted(m["spec"]["az"] for m in workers) == sorted(placement.zones)
        assert sorted(placement.status().values()) == ["Deployed", "Deployed", "Deployed", "Ready"]
    finally:
        _delete_all(palette)
        placement.client.delete_tag(other)


# -- validation writes nothing ------------------------------------------------------------------------------


def test_bad_clusters_are_refused_before_any_write(palette, placement, maas):
    placement.enroll(1)
    info = palette.info()
    addon = palette.api("POST", "/v1/clusterprofiles", params={"publish": "true"}, json={
        "metadata": {"name": f"addon-{placement.key}"}, "spec": {"version": "1.0.0", "template": {
            "type": "add-on", "cloudType": "all", "packs": [{"name": "m", "type": "manifest", "manifests": [
                {"name": "m", "content": ""}]}]}}}).json()["uid"]
    good_cp = _pool("cp", 1, placement, control_plane=True)
    name = f"bad-{placement.key}"
    cases = {
        "account": (_body(palette, name, [good_cp], account="0" * 24), None, "spec.cloudAccountUid"),
        "domain": (_body(palette, name, [good_cp], domain=""), None, "spec.cloudConfig.domain"),
        "profile": (_body(palette, name, [good_cp], profiles=[{"uid": "1" * 24}]), None, "not found"),
        "profile type": (_body(palette, name, [good_cp], profiles=[{"uid": addon}]), None, "exactly one infra"),
        "pool shape": (_body(palette, name, [good_cp, _pool("workers", -1, placement)]), "workers",
                       "poolConfig.size"),
        "two control planes": (_body(palette, name, [good_cp, _pool("cp2", 1, placement, control_plane=True)]),
                               None, "exactly one machine pool"),
    }
    palette_mark, maas_mark = palette.mark(), maas.mark()
    for case, (body, pool, text) in cases.items():
        refused = palette.api("POST", "/v1/spectroclusters/maas", json=body)
        assert refused.status_code == 400, (case, refused.text)
        error = refused.json()
        assert set(error) == {"code", "message", "details", "ref"} and text in error["message"], (case, error)
        if pool:
            assert f"machine pool {pool!r}" in error["message"], (case, error)
        checked = palette.api("POST", "/v1/spectroclusters/maas/validate", json=body)
        if pool:
            assert checked.status_code == 200, (case, checked.text)
            results = {r["name"]: r["errors"] for r in checked.json()["machinePools"]["results"]}
            assert any(text in e["message"] for e in results[pool]), (case, results)
        elif case.startswith("profile"):
            profiles = checked.json()["profiles"]
            assert any(text in e["message"] for p in profiles for r in p["packs"]["results"] for e in r["errors"])
        else:
            assert checked.status_code == 400 and text in checked.json()["message"], (case, checked.text)
    good = palette.api("POST", "/v1/spectroclusters/maas/validate", json=_body(palette, name, [good_cp])).json()
    assert [r["errors"] for r in good["machinePools"]["results"]] == [[]]
    logged = palette.requests_since(palette_mark)
    assert {(r["method"], r["path"], r["status"]) for r in logged if r["mutating"]} == \
        {("POST", "/v1/spectroclusters/maas", 400)}
    assert all(not r["mutating"] for r in logged if r["path"].endswith("/validate"))
    assert _maas_writes(maas, maas_mark) == []
    assert name not in palette.info()["maas_clusters"] and info["maas_account_uid"]
    assert placement.status() == {placement.machines[0]["hostname"]: "Ready"}
    uid = _create(palette, _body(palette, name, [good_cp]))
    assert palette.api("POST", "/v1/spectroclusters/maas", json=_body(palette, name, [good_cp])).status_code == 409
    # A validate naming the cluster is checked as any create body: the taken name is no error there.
    again = palette.api("POST", "/v1/spectroclusters/maas/validate", json=_body(palette, name, [good_cp]))
    assert again.status_code == 200 and [r["errors"] for r in again.json()["machinePools"]["results"]] == [[]]
    palette.api("DELETE", f"/v1/spectroclusters/{uid}")
    palette.api("DELETE", f"/v1/clusterprofiles/{addon}")


def test_a_cluster_maas_cannot_fill_is_accepted_and_waits_with_maas_answer(palette, placement, maas):
    """Palette asks MAAS nothing before a create: a cluster whose pools MAAS cannot fill (too few Ready machines,
    machines too small, a resource pool, zone or tag MAAS does not know) is made (201); each machine MAAS cannot
    give stays Pending with MAAS's answer, op=allocate retried every step, the cluster Provisioning. Once MAAS has
    the machines the cluster runs, each machine allocated once."""
    placement.enroll(1)
    name = f"sh-{placement.key}"
    cases = {
        "too few": [_pool("cp", 1, placement, control_plane=True), _pool("workers", 1, placement)],
        "too small": [_pool("cp", 1, placement, control_plane=True, min_cpu=4096)],
        "resource pool": [dict(_pool("cp", 1, placement, control_plane=True),
                               cloudConfig={"resourcePool": "no-such-pool", "azs": [], "tags": [],
                                            "instanceType": {"minCPU": 0, "minMemInMB": 0}})],
        "zone": [_pool("cp", 1, placement, control_plane=True, azs=["no-such-zone"])],
        "tag": [_pool("cp", 1, placement, control_plane=True, tags=["no-such-tag"])],
    }
    for case, pools in cases.items():
        body = _body(palette, f"{name}-{len(case)}", pools)
        checked = palette.api("POST", "/v1/spectroclusters/maas/validate", json=body)
        assert checked.status_code == 200, (case, checked.text)
        assert all(not r["errors"] for r in checked.json()["machinePools"]["results"]), (case, checked.text)
        mark = maas.mark()
        uid = _create(palette, body)
        config = _cluster(palette, uid)["spec"]["cloudConfigRef"]["uid"]
        short = pools[-1]["poolConfig"]["name"]

        def waiting():
            pending = [m for m in _machines(palette, config, short) if m["status"]["instanceState"] == "Pending"
                       and "Unable to allocate machine" in m["status"]["health"]["conditions"][0]["message"]]
            tries = [w for w in maas.requests_since(mark) if "op=allocate" in w["query"] and w["status"] >= 400]
            return pending if pending and len(tries) >= 2 else None
        pending = _until(waiting, f"{case}: a machine Pending with MAAS's answer")
        cluster = _cluster(palette, uid)
        assert cluster["status"]["state"] == "Provisioning", case
        nodes_ready = {c["type"]: c for c in cluster["status"]["conditions"]}["NodesReady"]
        assert nodes_ready["status"] == "False" and pending[0]["status"]["health"]["conditions"][0]["message"] \
            .split(": ", 1)[1] in nodes_ready["message"], (case, nodes_ready)
        overview = palette.api("GET", f"/v1/dashboard/spectroclusters/{uid}/overview").json()
        assert overview["status"]["health"]["state"] != "Healthy", case
        assert palette.api("DELETE", f"/v1/spectroclusters/{uid}").status_code == 204
        _until(lambda: palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404 or None, "gone")
    _until(lambda: placement.status() == {placement.machines[0]["hostname"]: "Ready"} or None, "the machine Ready")

    # Too few, then MAAS gets the machine: the cluster runs, and every machine was allocated once.
    mark = maas.mark()
    uid = _create(palette, _body(palette, name, cases["too few"]))
    config = _cluster(palette, uid)["spec"]["cloudConfigRef"]["uid"]
    _until(lambda: [m for m in _machines(palette, config, "workers") if "No available machine"
                    in m["status"]["health"]["conditions"][0]["message"]] or None, "the worker waiting for MAAS")
    placement.enroll(1)
    _wait_running(palette, uid)
    granted = [w for w in maas.requests_since(mark) if "op=allocate" in w["query"] and w["status"] == 200]
    assert len(granted) == 2 and set(placement.status().values()) == {"Deployed"}


# -- add-ons, deletion and reset ----------------------------------------------------------------------------


def test_addons_deploy_once_running_and_delete_releases_everything(palette, placement, admin, namespace, maas):
    placement.enroll(1)
    name = f"ad-{placement.key}"
    manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                "data": {"from": "palette"}}
    addon = palette.api("POST", "/v1/clusterprofiles", params={"publish": "true"}, json={
        "metadata": {"name": f"addon-{placement.key}"}, "spec": {"version": "1.0.0", "template": {
            "type": "add-on", "cloudType": "all", "packs": [{"name": "cm", "type": "manifest", "manifests": [
                {"name": "cm", "content": yaml.safe_dump(manifest)}]}]}}}).json()["uid"]
    info = palette.info()
    uid = _create(palette, _body(palette, name, [_pool("cp", 1, placement, control_plane=True)],
                                 profiles=[{"uid": info["infra_profile_uid"]}, {"uid": addon}]))
    pending = {p["name"]: p["condition"]["reason"] for p in _cluster(palette, uid)["status"]["packs"]
               if p["profileUid"] == addon}
    assert pending == {"cm": "Pending"}
    assert palette.api("GET", f"/v1/spectroclusters/{uid}/assets/kubeconfigclient").status_code == 404
    _wait_running(palette, uid)

    def deployed():
        packs = [p for p in _cluster(palette, uid)["status"]["packs"] if p["profileUid"] == addon]
        return packs if packs and packs[0]["condition"]["status"] == "True" else None
    _until(deployed, "the add-on Ready")
    assert admin.get(object_path("v1", "configmaps", name, namespace))["data"] == {"from": "palette"}
    rbac = palette.api("PUT", f"/v1/spectroclusters/{uid}/config/rbacs", json={"rbacs": [{"spec": {"bindings": [
        {"type": "ClusterRoleBinding", "role": {"kind": "ClusterRole", "name": "view"},
         "subjects": [{"type": "User", "name": "alice"}]}]}}]})
    assert rbac.status_code == 204
    made = admin.get(object_path(RBAC, "clusterrolebindings", f"spectro-on-demand-1-{name}"))
    assert made["roleRef"]["name"] == "view"
    hostname = placement.machines[0]["hostname"]
    assert hostname in _nodes(admin, uid)

    # MAAS releases slowly: the cluster is gone as soon as MAAS accepted the release (cluster-api-provider-maas
    # removes the machine's finalizer after op=release), while MAAS is still releasing the machine.
    maas.durations(releasing=3)
    mark = maas.mark()
    maas.faults(http_503=1_000_000)  # MAAS does not accept the release yet: the cluster stays Deleting
    try:
        assert palette.api("DELETE", f"/v1/spectroclusters/{uid}").status_code == 204
        assert _cluster(palette, uid)["status"]["state"] == "Deleting"
        late = palette.api("PATCH", f"/v1/spectroclusters/{uid}/profiles", json={"profiles": [{"uid": addon}]})
        assert late.status_code == 409 and late.json()["code"] == "SpectroClusterDeleting"
    finally:
        maas.faults(http_503=0)
    _until(lambda: palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404 or None, "the cluster gone")
    assert placement.status()[hostname] in ("Releasing", "Disk erasing")
    releases = [w for w in _maas_writes(maas, mark) if "op=release" in w["query"] and w["status"] == 200]
    assert len(releases) == 1  # accepted once, not polled into Ready
    _until(lambda: placement.status() == {hostname: "Ready"} or None, "MAAS to finish releasing")
    assert _nodes(admin, uid) == {}
    assert admin.get_or_none(object_path(RBAC, "clusterrolebindings", f"palette-{name}-client")) is None
    assert admin.get_or_none(object_path(RBAC, "clusterrolebindings", f"spectro-on-demand-1-{name}")) is None
    assert palette.api("DELETE", f"/v1/spectroclusters/{info['cluster_uid']}").status_code == 400
    assert palette.api("DELETE", f"/v1/clusterprofiles/{addon}").status_code == 204


def test_force_delete_is_accepted_only_after_the_cluster_was_deleting_long_enough(palette, placement, admin, maas):
    """forceDelete is for a cluster stuck in Deleting (eligible after 15 minutes there, the knob's default); a forced
    cluster is gone at once and leaves its MAAS machines for the user to clean up."""
    machine = placement.enroll(1)[0]
    uid = _create(palette, _body(palette, f"fo-{placement.key}", [_pool("cp", 1, placement, control_plane=True)]))
    config = _wait_running(palette, uid)["config"]
    path = f"/v1/spectroclusters/{uid}"
    assert palette.faults()["force_delete_after_seconds"] == 900
    assert palette.info()["force_delete_after_seconds"] == 900

    # Not Deleting: refused, nothing changes.
    refused = palette.api("DELETE", path, params={"forceDelete": "true"})
    assert refused.status_code == 400 and refused.json()["code"] == "ForceDeleteNotAllowed", refused.text
    assert set(refused.json()) == {"code", "message", "details", "ref"}
    assert _cluster(palette, uid)["status"]["state"] == "Running"

    # MAAS does not answer: the release is never accepted, the cluster stays Deleting, sending it again.
    maas.faults(http_503=1_000_000)
    try:
        assert palette.api("DELETE", path).status_code == 204

        def stuck():
            machines = _machines(palette, config, "cp")
            return machines if machines and machines[0]["status"]["instanceState"] == "Deleting" and \
                "HTTP 503" in machines[0]["status"]["health"]["conditions"][0]["message"] else None
        _until(stuck, "the release refused by MAAS")
        assert _cluster(palette, uid)["status"]["state"] == "Deleting"
        early = palette.api("DELETE", path, params={"forceDelete": "true"})
        assert early.status_code == 400 and "Deleting for" in early.json()["message"], early.text
        assert _cluster(palette, uid)["status"]["state"] == "Deleting"
        with palette.faulted(force_delete_after_seconds=0):
            assert palette.api("DELETE", path, params={"forceDelete": "true"}).status_code == 204
            _until(lambda: palette.api("GET", path).status_code == 404 or None, "the forced cluster gone")
    finally:
        maas.faults(http_503=0)
    assert palette.faults()["force_delete_after_seconds"] == 900
    # Its machine is left as MAAS has it (the user cleans it up); its Node in the lab's apiserver is gone.
    assert placement.status() == {machine["hostname"]: "Deployed"}
    assert _nodes(admin, uid) == {}
    placement.client.release(machine["system_id"])
    _until(lambda: placement.status() == {machine["hostname"]: "Ready"} or None, "the machine released by hand")


def test_a_machine_that_fails_to_deploy_is_released_and_replaced(palette, placement, maas, admin):
    first, second = placement.enroll(2)
    maas.faults(fail_deployment=[first["hostname"]])
    uid = _create(palette, _body(palette, f"fd-{placement.key}", [_pool("cp", 1, placement, control_plane=True)]))
    config = _wait_running(palette, uid, ("cp",))["config"]
    assert [m["spec"]["hostname"] for m in _machines(palette, config, "cp")] == [second["hostname"]]
    _until(lambda: placement.status() == {first["hostname"]: "Ready", second["hostname"]: "Deployed"} or None,
           "the failed machine released")
    assert set(_nodes(admin, uid)) == {second["hostname"]}


def test_reset_removes_maas_clusters(palette, placement, admin, maas):
    placement.enroll(1)
    name = f"rs-{placement.key}"
    uid = _create(palette, _body(palette, name, [_pool("cp", 1, placement, control_plane=True)]))
    _wait_running(palette, uid)
    assert palette.info()["maas_clusters"][name]["state"] == "Running"
    with palette.faulted(maas_cluster_step_seconds=0.05):
        assert palette.faults()["maas_cluster_step_seconds"] == 0.05
    palette.reset()  # returns once the clusters are gone
    assert palette.info()["maas_clusters"] == {}
    assert palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404
    assert _nodes(admin, uid) == {}
    _until(lambda: placement.status() == {placement.machines[0]["hostname"]: "Ready"} or None, "the machine Ready")
    assert admin.get_or_none(object_path(RBAC, "clusterrolebindings", f"palette-{name}-client")) is None
    assert admin.get(object_path(RBAC, "clusterrolebindings", "palette-lab-cluster-client"))  # lab-cluster's stays
    assert json.dumps(palette.info()["maas_cluster_step_seconds"]) == "0.2"


def test_a_restarted_simulator_gives_back_what_its_clusters_held(palette, placement, admin, lab):
    """The simulator keeps no clusters across a restart: the MAAS machines, Nodes and bindings they held go too."""
    machine = placement.enroll(1)[0]
    name = f"rr-{placement.key}"
    uid = _create(palette, _body(palette, name, [_pool("cp", 1, placement, control_plane=True)]))
    _wait_running(palette, uid)
    assert placement.status() == {machine["hostname"]: "Deployed"} and set(_nodes(admin, uid)) == {machine["hostname"]}
    subprocess.run([sys.executable, "-m", "tests.lab", "restart", "palette"], cwd=REPO_ROOT, check=True,
                   capture_output=True)
    # The session's record of the lab follows: the simulator runs on as a new process (same port and key).
    lab.processes.update(LabState.load().processes)
    assert palette.info()["maas_clusters"] == {}
    assert _nodes(admin, uid) == {}
    assert admin.get_or_none(object_path(RBAC, "clusterrolebindings", f"palette-{name}-client")) is None
    _until(lambda: placement.status() == {machine["hostname"]: "Ready"} or None, "the machine released in MAAS")
    assert admin.get(object_path(RBAC, "clusterrolebindings", "palette-lab-cluster-client"))
