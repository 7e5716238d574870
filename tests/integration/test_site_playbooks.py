"""The site playbooks end to end on the lab: site.yml, edge_bootstrap.yml and teardown.yml, with the lab inventory.

site.yml runs on the session's lab (MAAS simulator, Palette simulator and its cluster, the real apiserver);
edge_bootstrap.yml runs on a bare lab of its own, so it really starts from nothing.
"""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, BareLab
from tests.lab.kube import object_path

from .conftest import PlaybookRun
from .helpers import ansible_env

VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]
# What inventories/lab/group_vars/all.yml declares.
SITE_GATES = VMO_GATES + ["CPUManager"]
SITE_NAMESPACE = "virtual-machines"
SITE_VMS = ("web-1", "db-1")
SITE_MACHINES = ("vmo-lab-1", "vmo-lab-2", "vmo-lab-3")
SITE_CLUSTER = "vmo-lab-maas"
SITE_USERS = {"alice": "spectro-vm-admin", "bob": "spectro-vm-power-user", "carol": "spectro-vm-user",
              "dave": "spectro-vm-viewer"}


def run_playbook(playbook: str, lab_env: dict, *args: str) -> PlaybookRun:
    """ansible-playbook with the lab inventory and the environment `python -m tests.lab env` prints, as `make demo`."""
    env = ansible_env(lab_env)
    binary = Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run([str(binary), "-i", "inventories/lab/hosts.yml", playbook, *args], cwd=REPO_ROOT,
                          env=env, check=False, capture_output=True, text=True, timeout=900)
    return PlaybookRun(proc)


def kubevirt_cr(kube) -> dict:
    return kube.get(object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt"))


def managed_bindings(kube, namespace: str) -> list:
    bindings = kube.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", namespace=namespace)
                        + "?labelSelector=app.kubernetes.io/managed-by%3Dpalette.vmo")
    return bindings["items"]


def vm_names(kube, namespace: str) -> list:
    return sorted(vm["metadata"]["name"]
                  for vm in kube.get(object_path("kubevirt.io/v1", "virtualmachines", namespace=namespace))["items"])


def maas_hostnames(run_module, connection: dict) -> list:
    found = run_module("palette.vmo.maas_machine_info", dict(connection, hostnames=list(SITE_MACHINES)))
    return sorted((m["hostname"], m["status_name"]) for m in found["machines"])


@pytest.fixture
def lab_env(lab):
    from tests.lab.cli import environment

    return environment(lab)


def site_nodes(kube) -> dict:
    """The lab apiserver's Nodes that are the site's MAAS machines, with their labels."""
    return {n["metadata"]["name"]: n for n in kube.get(object_path("v1", "nodes"))["items"]
            if n["metadata"]["name"] in SITE_MACHINES}


def site_cluster_uids(palette) -> list:
    found = palette.api("POST", "/v1/dashboard/spectroclusters/search", json={}).json()["items"]
    return [c["metadata"]["uid"] for c in found if c["metadata"]["name"] == SITE_CLUSTER]


def test_site_from_nothing_then_unchanged_then_torn_down(lab, lab_env, admin, palette, maas, run_module):
    palette.reset()  # no MAAS cluster left holding machines, before MAAS itself starts from nothing
    maas.reset()
    maas.durations(commissioning=0.5, deploying=0.5, releasing=0.5, erasing=0.5)
    maas_connection = maas.connection()
    try:
        first = run_playbook("playbooks/site.yml", lab_env)
        assert first.rc == 0, first
        # The summary names every layer of the site: machines enrolled Ready, then the cluster Palette deployed
        # on them, its pack, the bindings and the VMs.
        for vm in SITE_VMS:
            assert f'"{vm} Running 10.' in first.stdout, first
        for machine in SITE_MACHINES:
            assert f'"{machine}: Ready"' in first.stdout, first
        assert f'"cluster": "{SITE_CLUSTER} Running Healthy"' in first.stdout, first
        assert first.stdout.count(" Running\"") >= len(SITE_MACHINES), first
        assert f"profile vmo-lab 1.0.0 (pack 4.10.7, vmo-manager layout); {SITE_CLUSTER} " \
               "virtual-machine-orchestrator Ready True" in first.stdout, first
        for user, role in SITE_USERS.items():
            assert f'"{role} {SITE_NAMESPACE} {user}"' in first.stdout, first

        # What the run left in the real apiserver and the simulators: the machines deployed and each a Ready Node,
        # the VMO pack's KubeVirt configuration, the bindings, and the VMs running on the cluster's workers.
        assert maas_hostnames(run_module, maas_connection) == [(m, "Deployed") for m in SITE_MACHINES]
        nodes = site_nodes(admin)
        assert sorted(nodes) == sorted(SITE_MACHINES)
        assert all(any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
                   for n in nodes.values())
        workers = {name for name, n in nodes.items() if n["metadata"]["labels"].get("vmo-pool") == "workers"}
        assert len(workers) == 2
        config = kubevirt_cr(admin)["spec"]["configuration"]["developerConfiguration"]
        assert config["featureGates"] == SITE_GATES and config["useEmulation"] is True
        assert vm_names(admin, SITE_NAMESPACE) == sorted(SITE_VMS)
        for vm in SITE_VMS:
            vmi = admin.get(object_path("kubevirt.io/v1", "virtualmachineinstances", vm, SITE_NAMESPACE))
            assert vmi["status"]["nodeName"] in workers, vmi["status"]
        assert sorted((b["roleRef"]["name"], b["subjects"][0]["name"])
                      for b in managed_bindings(admin, SITE_NAMESPACE)) == sorted(
            (role, user) for user, role in SITE_USERS.items())

        mark = palette.mark()
        second = run_playbook("playbooks/site.yml", lab_env)
        assert second.rc == 0, second
        assert second.recap["localhost"]["changed"] == 0, second
        assert palette.writes_since(mark) == []

        site_profile = [p["metadata"]["uid"] for p in palette.api("GET", "/v1/dashboard/clusterprofiles/metadata"
                                                                  ).json()["items"] if p["metadata"]["name"] == "vmo-lab"]
        assert len(site_profile) == 1
        teardown = run_playbook("playbooks/teardown.yml", lab_env)
        assert teardown.rc == 0, teardown
        assert vm_names(admin, SITE_NAMESPACE) == []
        assert managed_bindings(admin, SITE_NAMESPACE) == []
        profiles = palette.api("GET", "/v1/dashboard/clusterprofiles/metadata").json()["items"]
        assert [p for p in profiles if p["metadata"]["name"] == "vmo-lab"] == []
        assert site_cluster_uids(palette) == [] and site_nodes(admin) == {}
        assert maas_hostnames(run_module, maas_connection) == []

        again = run_playbook("playbooks/teardown.yml", lab_env)
        assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again

        # A check run on the torn-down site plans everything, writes nothing and ends well, summary included.
        planned = run_playbook("playbooks/site.yml", lab_env, "--check", "--diff")
        assert planned.rc == 0 and planned.recap["localhost"]["failed"] == 0, planned
        assert "TASK [Print the summary" in planned.stdout or "Show the site summary" in planned.stdout, planned
        assert vm_names(admin, SITE_NAMESPACE) == [] and managed_bindings(admin, SITE_NAMESPACE) == []
        profiles = palette.api("GET", "/v1/dashboard/clusterprofiles/metadata").json()["items"]
        assert [p for p in profiles if p["metadata"]["name"] == "vmo-lab"] == []
        assert maas_hostnames(run_module, maas_connection) == []
    finally:
        palette.reset()


def kubevirt_crds_left(kube, settle_seconds=60):
    """The KubeVirt and CDI CRDs still there once the operators had time to finish removing them.

    The operators delete their CRDs after their CR is gone, and a CRD goes only once its objects are
    cleaned up, so the last ones may need a moment after the teardown returns.
    """
    deadline = time.monotonic() + settle_seconds
    while True:
        crds = kube.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions"))["items"]
        left = [c["metadata"]["name"] for c in crds if c["spec"]["group"] in ("kubevirt.io", "cdi.kubevirt.io")]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


@pytest.fixture(scope="module")
def edge_site(lab):
    """A bare lab of this module's own (Nodes, MAAS, no KubeVirt): the edge site before its bootstrap."""
    yield from BareLab.running("-edge-site")


def test_edge_bootstrap_from_nothing_then_unchanged_then_torn_down(edge_site, run_module):
    kube = edge_site.admin()
    env = dict(edge_site.env)
    maas_connection = {"maas_url": env["MAAS_URL"], "maas_api_key": env["MAAS_API_KEY"],
                       "maas_ca_cert": env["MAAS_CA_CERT"]}

    first = run_playbook("playbooks/edge_bootstrap.yml", env)
    assert first.rc == 0, first
    kv = kubevirt_cr(kube)
    assert kv["status"]["phase"] == "Deployed"
    config = kv["spec"]["configuration"]["developerConfiguration"]
    assert config["featureGates"] == SITE_GATES and config["useEmulation"] is True
    assert kube.get(object_path("cdi.kubevirt.io/v1beta1", "cdis", "cdi"))["status"]["phase"] == "Deployed"
    for role in SITE_USERS.values():
        kube.get(object_path("rbac.authorization.k8s.io/v1", "clusterroles", role))
    assert len(managed_bindings(kube, SITE_NAMESPACE)) == len(SITE_USERS)
    for vm in SITE_VMS:
        status = kube.get(object_path("kubevirt.io/v1", "virtualmachines", vm, SITE_NAMESPACE))["status"]
        assert status["printableStatus"] == "Running"
        assert f'"{vm} Running 10.' in first.stdout, first
    # Edge servers are deployed, not only commissioned.
    assert maas_hostnames(run_module, maas_connection) == [(m, "Deployed") for m in SITE_MACHINES]

    second = run_playbook("playbooks/edge_bootstrap.yml", env)
    assert second.rc == 0, second
    assert second.recap["localhost"]["changed"] == 0, second

    teardown = run_playbook("playbooks/teardown.yml", env, "-e", "vmo_pack_mode=edge")
    assert teardown.rc == 0, teardown
    assert kubevirt_crds_left(kube) == []
    roles = kube.get(object_path("rbac.authorization.k8s.io/v1", "clusterroles"))["items"]
    assert [r["metadata"]["name"] for r in roles if r["metadata"]["name"].startswith("spectro-vm-")] == []
    assert maas_hostnames(run_module, maas_connection) == []

    again = run_playbook("playbooks/teardown.yml", env, "-e", "vmo_pack_mode=edge")
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again


def test_summary_of_a_check_run_on_a_torn_down_site(tmp_path):
    """What `site.yml --check` registers on a torn-down site (a planned profile, clusters with no packs yet, no
    VMs) still makes a summary, so the check run exits 0."""
    playbook = tmp_path / "summary.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "vars": {
        "vmo_pack_palette_result": {"changed": True, "name": "vmo-lab", "version": "1.0.0", "pack_tag": "4.10.7",
                                    "layout": "vmo-manager", "clusters": [{"name": "lab-cluster"}]},
        "vmo_rbac_result": {"bindings": []}, "vmo_vms_result": {"vms": []}},
        "tasks": [{"ansible.builtin.import_tasks": str(REPO_ROOT / "playbooks" / "tasks" / "summary.yml")}]}]))
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), str(playbook), "--check"],
                          cwd=REPO_ROOT, env=ansible_env(), check=False, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "profile vmo-lab 1.0.0 (pack 4.10.7, vmo-manager layout); lab-cluster  " in proc.stdout, proc.stdout
