"""The Kubernetes modules and the KubeVirt inventory reach a cluster by its Palette name: the kubeconfig comes from
Palette (`/assets/kubeconfigclient`), is used from memory only, and never shows.

Every run here has no K8S_AUTH_* variable, no KUBECONFIG and a HOME without ~/.kube, and its own TMPDIR,
ANSIBLE_LOCAL_TEMP and ANSIBLE_REMOTE_TEMP, which are searched for the kubeconfig's client key while the module
runs and after it ended (with /tmp and /dev/shm). The apiserver's audit log says who made each request: the
certificate of Palette's client kubeconfig is the user `palette-lab-cluster-client`.
"""

import base64
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO_ROOT
from tests.lab import releases
from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

from .helpers import ansible_env, unwrap

CLIENT_USER = "palette-lab-cluster-client"
BIN = Path(sys.executable).parent
SHARED_TEMP = (Path("/tmp"), Path("/dev/shm"))


def vm_path(namespace, name=""):
    return object_path("kubevirt.io/v1", "virtualmachines", name, namespace)


@pytest.fixture(scope="module")
def client_kubeconfig(palette):
    """The kubeconfig Palette hands out for lab-cluster, read here only to know what must never leak."""
    answer = palette.api("GET", "/v1/spectroclusters/%s/assets/kubeconfigclient" % palette.info()["cluster_uid"])
    assert answer.status_code == 200, answer.text
    config = yaml.safe_load(answer.text)
    user = config["users"][0]["user"]
    key_pem = base64.b64decode(user["client-key-data"]).decode()
    cert_pem = base64.b64decode(user["client-certificate-data"]).decode()
    return {"config": config, "key_b64": user["client-key-data"], "cert_b64": user["client-certificate-data"],
            "key_lines": [line for line in key_pem.splitlines() if line and not line.startswith("-----")],
            "cert_lines": [line for line in cert_pem.splitlines() if line and not line.startswith("-----")]}


class Runs:
    """Ansible runs with no Kubernetes configuration at all, each in temp directories of their own."""

    def __init__(self, tmp_path, palette):
        self.palette = palette
        self.dirs = {name: tmp_path / name for name in ("tmp", "local-tmp", "remote-tmp", "home")}
        for folder in self.dirs.values():
            folder.mkdir(exist_ok=True)
        self.started = time.time()

    def env(self, **extra):
        env = ansible_env(TMPDIR=str(self.dirs["tmp"]), ANSIBLE_LOCAL_TEMP=str(self.dirs["local-tmp"]),
                          ANSIBLE_REMOTE_TEMP=str(self.dirs["remote-tmp"]), HOME=str(self.dirs["home"]))
        for name in list(env):
            if name.startswith(("K8S_AUTH_", "PALETTE_")) or name == "KUBECONFIG":
                del env[name]
        env.update(extra)
        return env

    def connection(self, **extra):
        return dict(dict(self.palette.connection(), palette_cluster=self.palette.cluster), **extra)

    def module_argv(self, module, args, check=False):
        argv = [str(BIN / "ansible"), "localhost", "-m", module, "-a", json.dumps(args)]
        return argv + (["--check"] if check else [])

    def json_env(self, **extra):
        return self.env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **extra)

    def module(self, module, args, check=False, **extra_env):
        proc = subprocess.run(self.module_argv(module, args, check), cwd=REPO_ROOT, env=self.json_env(**extra_env),
                              check=False, capture_output=True, text=True)
        return self.result(proc.stdout, proc.stderr)

    @staticmethod
    def result(stdout, stderr):
        try:
            report = json.loads(stdout)
        except ValueError:
            raise AssertionError("no JSON from ansible:\n%s\n%s" % (stdout, stderr))
        result = report["plays"][0]["tasks"][0]["hosts"]["localhost"]
        result["_stdout"] = stdout
        return result

    def temp_roots(self):
        return list(self.dirs.values()) + [p for p in SHARED_TEMP if p.is_dir()]

    def files_holding(self, needles, roots=None):
        """Regular files under the temp directories that contain any needle (bytes); in the shared ones (/tmp,
        /dev/shm) only files changed since these runs began."""
        hits = []
        for root in roots or self.temp_roots():
            shared = root in SHARED_TEMP
            for folder, _dirs, names in os.walk(root):
                for name in names:
                    path = os.path.join(folder, name)
                    try:
                        info = os.lstat(path)
                        if not stat.S_ISREG(info.st_mode) or info.st_size > 8 * 1024 * 1024:
                            continue
                        if shared and info.st_mtime < self.started - 1:
                            continue
                        with open(path, "rb") as handle:
                            data = handle.read()
                    except OSError:
                        continue  # gone between listing and reading, or not ours to read
                    if any(needle in data for needle in needles):
                        hits.append(path)
        return hits


@pytest.fixture
def runs(tmp_path, palette):
    return Runs(tmp_path, palette)


def key_needles(client_kubeconfig, own_dirs=True):
    needles = [line.encode() for line in client_kubeconfig["key_lines"]] + [client_kubeconfig["key_b64"].encode()]
    return needles + ([b"client-key-data"] if own_dirs else [])


def leaks(runs, client_kubeconfig):
    """Files holding the client key: anything of it anywhere, or the word client-key-data in the runs' own dirs."""
    return sorted(set(runs.files_holding(key_needles(client_kubeconfig, own_dirs=False)))
                  | set(runs.files_holding([b"client-key-data"], roots=list(runs.dirs.values()))))


def client_requests(audit, mark):
    return [e for e in audit.events(mark) if (e.get("user") or {}).get("username") == CLIENT_USER]


def people(events, namespace):
    """Requests in the namespace by the lab's people and clients, not by the apiserver's controllers
    (system:*) or the KubeVirt stand-in (lab:*)."""
    return [e for e in events if (e.get("objectRef") or {}).get("namespace") == namespace
            and not e["user"]["username"].startswith(("system:", "lab:"))]


def watch_while_waiting(runs, audit, admin, client_kubeconfig, namespace, name, args):
    """Runs kubevirt_vm_info waiting for the Halted VM `name` to be ready, and searches the temp directories over
    and over while it runs. Once the module has been talking to the apiserver for three searches, the VM is started,
    which ends the wait. Returns (result, files found during the run, searches made while connected)."""
    mark = audit.mark()
    proc = subprocess.Popen(runs.module_argv("palette.vmo.kubevirt_vm_info", dict(
        args, name=name, namespace=namespace, wait=True, wait_for="ready", wait_timeout=600)),
        cwd=REPO_ROOT, env=runs.json_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found, connected_searches, started = set(), 0, False
    try:
        while proc.poll() is None:
            connected = any((e.get("objectRef") or {}).get("resource") == "virtualmachines"
                            for e in client_requests(audit, mark))
            found.update(leaks(runs, client_kubeconfig))
            if connected and proc.poll() is None:
                connected_searches += 1
            if connected_searches >= 3 and not started:
                admin.merge_patch(vm_path(namespace, name), {"spec": {"runStrategy": "Always"}})
                started = True
        stdout, stderr = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return runs.result(stdout, stderr), sorted(found), connected_searches


# -- kubevirt_vm and kubevirt_vm_info ----------------------------------------------------------------------------

def test_kubevirt_vm_creates_and_reads_a_vm_by_cluster_name_as_palettes_client_identity(
        runs, audit, admin, ns, client_kubeconfig):
    vm = {"name": "by-name", "namespace": ns, "memory": "128Mi", "run_strategy": "Halted"}
    mark = audit.mark()
    created = runs.module("palette.vmo.kubevirt_vm", runs.connection(**vm))
    assert created.get("failed") is not True, created.get("msg")
    assert created["changed"] is True and created["vms"][0]["action"] == "created"
    assert admin.get(vm_path(ns, "by-name"))["spec"]["runStrategy"] == "Halted"
    writes = people(audit.mutations(mark), ns)
    assert writes and {e["user"]["username"] for e in writes} == {CLIENT_USER}, writes
    assert any(e["verb"] in ("create", "patch") and e["objectRef"]["resource"] == "virtualmachines" for e in writes)

    mark = audit.mark()
    again = runs.module("palette.vmo.kubevirt_vm", runs.connection(**vm))
    assert again.get("failed") is not True and again["changed"] is False, again.get("msg")
    assert people(audit.mutations(mark), ns) == []

    # The read waits for the VM while the temp directories are searched; starting the VM ends the wait.
    mark = audit.mark()
    read, found, searches = watch_while_waiting(runs, audit, admin, client_kubeconfig, ns, "by-name",
                                                runs.connection())
    assert read.get("failed") is not True, read.get("msg")
    assert [v["name"] for v in read["vms"]] == ["by-name"] and read["vms"][0]["ready"] is True
    assert {e["user"]["username"] for e in people(audit.events(mark), ns)} == {CLIENT_USER, ADMIN_USER}
    assert searches >= 3 and found == [], found
    assert leaks(runs, client_kubeconfig) == []
    for result in (created, again, read):
        shown = result["_stdout"]
        assert client_kubeconfig["key_b64"] not in shown and client_kubeconfig["cert_b64"] not in shown
        assert not any(line in shown for line in client_kubeconfig["key_lines"] + client_kubeconfig["cert_lines"])


def test_the_search_finds_the_key_when_a_kubeconfig_goes_through_the_kubernetes_library(
        runs, audit, admin, ns, client_kubeconfig):
    """The control: the same kubeconfig given as a dict is loaded by the kubernetes library, which writes its
    client key to a file in TMPDIR while the module runs. The search above would have seen that."""
    created = runs.module("palette.vmo.kubevirt_vm", runs.connection(name="control", namespace=ns, memory="128Mi",
                                                                     run_strategy="Halted"))
    assert created.get("failed") is not True, created.get("msg")
    read, found, searches = watch_while_waiting(runs, audit, admin, client_kubeconfig, ns, "control",
                                                {"kubeconfig": client_kubeconfig["config"]})
    assert read.get("failed") is not True, read.get("msg")
    assert searches >= 3
    assert any(path.startswith(str(runs.dirs["tmp"])) for path in found), found


def test_palette_cluster_with_a_kubeconfig_is_refused_before_any_request(runs, palette, audit, lab):
    mark, palette_mark = audit.mark(), palette.mark()
    for module, extra in (("palette.vmo.kubevirt_vm_info", {"namespace": "default"}),
                          ("palette.vmo.kubevirt_vm", {"name": "never", "namespace": "default"}),
                          ("palette.vmo.vmo_rbac", {"bindings": [], "rbac_api": "kubernetes"})):
        refused = runs.module(module, runs.connection(kubeconfig=str(lab.kubeconfig), **extra))
        assert refused.get("failed") is True, refused
        assert refused["msg"].startswith("palette_cluster and kubeconfig are mutually exclusive"), refused["msg"]
    refused = runs.module("palette.vmo.kubevirt_vm_info",
                          runs.connection(host=lab.apiserver_url, api_key=lab.token(ADMIN_USER), namespace="default"))
    assert refused["msg"].startswith("palette_cluster and api_key, host are mutually exclusive"), refused["msg"]
    assert palette.requests_since(palette_mark) == [] and client_requests(audit, mark) == []


def test_an_unknown_cluster_is_a_clear_error_and_nothing_reaches_the_apiserver(runs, palette, audit):
    mark = audit.mark()
    missing = runs.module("palette.vmo.kubevirt_vm", dict(runs.connection(palette_cluster="no-such-cluster"),
                                                          name="x", namespace="default", memory="128Mi"))
    assert missing.get("failed") is True
    assert missing["msg"] == "palette_cluster: Palette cluster 'no-such-cluster' not found in project 'lab'"
    assert client_requests(audit, mark) == []
    bad_key = runs.module("palette.vmo.kubevirt_vm_info", dict(runs.connection(palette_api_key="not-a-key"),
                                                               namespace="default"))
    assert bad_key.get("failed") is True and "bad API key" in bad_key["msg"], bad_key


def test_the_admin_kubeconfig_is_used_when_asked(runs, audit, admin, ns):
    """palette_kubeconfig_kind=admin reads /assets/adminKubeconfig, which for lab-cluster is the lab's admin."""
    admin.create(vm_path(ns), {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                               "metadata": {"name": "seen-by-admin", "namespace": ns},
                               "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {
                                   "devices": {}, "resources": {"requests": {"memory": "128Mi"}}}}}}})
    mark = audit.mark()
    read = runs.module("palette.vmo.kubevirt_vm_info", runs.connection(palette_kubeconfig_kind="admin", namespace=ns))
    assert read.get("failed") is not True, read.get("msg")
    assert [v["name"] for v in read["vms"]] == ["seen-by-admin"]
    assert {e["user"]["username"] for e in people(audit.events(mark), ns)} == {ADMIN_USER}


# -- vmo_rbac and kubevirt_install -------------------------------------------------------------------------------

def test_vmo_rbac_through_the_kubernetes_api_of_a_palette_cluster(runs, audit, admin, ns, vmo_cluster_roles):
    args = runs.connection(rbac_api="kubernetes", bindings=[
        {"role": "spectro-vm-viewer", "subjects": {"users": ["erin"]}, "namespaces": [ns]}], verify=True)
    mark = audit.mark()
    planned = runs.module("palette.vmo.vmo_rbac", args, check=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["changed"] is True and [b["action"] for b in planned["bindings"]] == ["created"]
    assert "palette_cluster_uid" not in planned  # not Palette's RBAC settings
    assert audit.mutations(mark, user=CLIENT_USER) == []
    assert client_requests(audit, mark), "the dry run went through Palette's client kubeconfig"

    mark = audit.mark()
    applied = runs.module("palette.vmo.vmo_rbac", args)
    assert applied.get("failed") is not True and applied["changed"] is True, applied.get("msg")
    assert applied["verify_mismatches"] == 0
    made = [e for e in people(audit.mutations(mark), ns) if e["objectRef"]["resource"] == "rolebindings"]
    assert [(e["objectRef"]["name"], e["user"]["username"]) for e in made] == [("vmo-spectro-vm-viewer", CLIENT_USER)]
    binding = admin.get(object_path("rbac.authorization.k8s.io/v1", "rolebindings", "vmo-spectro-vm-viewer", ns))
    assert binding["subjects"][0]["name"] == "erin"
    assert runs.module("palette.vmo.vmo_rbac", args)["changed"] is False


def test_kubevirt_install_plans_in_check_mode_through_palettes_client_kubeconfig(runs, audit, lab):
    args = runs.connection(kubevirt_operator_manifest=str(lab.release_dir / releases.KUBEVIRT_OPERATOR),
                           cdi_operator_manifest=str(lab.release_dir / releases.CDI_OPERATOR), use_emulation=True)
    mark = audit.mark()
    planned = runs.module("palette.vmo.kubevirt_install", args, check=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["objects"] and planned["kubevirt"]["name"] == "kubevirt"
    requests = client_requests(audit, mark)
    assert any("dryRun=All" in e.get("requestURI", "") for e in requests), "dry runs as the client identity"
    assert audit.mutations(mark, user=CLIENT_USER) == []


# -- -vvv output -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("form", ["option", "environment"])
def test_vvv_output_shows_neither_the_api_key_nor_the_kubeconfig(runs, palette, ns, client_kubeconfig, form):
    connection = runs.connection()
    key = connection["palette_api_key"]
    extra = {}
    if form == "environment":
        extra["PALETTE_API_KEY"] = connection.pop("palette_api_key")
    playbook = runs.dirs["tmp"].parent / "by-name.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "read", "palette.vmo.kubevirt_vm_info": dict(connection, namespace=ns)},
        {"name": "declare", "palette.vmo.kubevirt_vm": dict(connection, name="vvv", namespace=ns, memory="128Mi",
                                                            run_strategy="Halted")},
        {"name": "bindings", "palette.vmo.vmo_rbac": dict(connection, rbac_api="kubernetes", bindings=[]),
         "check_mode": True},
        {"name": "refused", "palette.vmo.kubevirt_vm": dict(connection, name="x", namespace=ns, colour="blue"),
         "ignore_errors": True},
        {"name": "both sources", "palette.vmo.kubevirt_vm_info": dict(connection, kubeconfig="/nowhere"),
         "ignore_errors": True},
    ]}]))
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(playbook), "-vvv"], cwd=REPO_ROOT,
                          env=runs.env(**extra), check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "ok=5" in proc.stdout and "failed=0" in proc.stdout and "ignored=2" in proc.stdout, proc.stdout[-3000:]
    assert "Unsupported parameters" in proc.stdout and "mutually exclusive" in proc.stdout
    shown = proc.stdout + proc.stderr
    assert shown.count(key) == 0
    for secret in [client_kubeconfig["key_b64"], client_kubeconfig["cert_b64"]] \
            + client_kubeconfig["key_lines"] + client_kubeconfig["cert_lines"]:
        assert secret not in shown
    assert "client-key-data" not in shown
    assert leaks(runs, client_kubeconfig) == []


# -- the inventory plugin ----------------------------------------------------------------------------------------

def inventory(runs, source, config, **env):
    """ansible-inventory --list -vvv; the listing goes to a file, the -vvv output stays in stdout and stderr."""
    source.write_text(json.dumps(config))
    listing = source.with_suffix(".json")
    listing.unlink(missing_ok=True)
    proc = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(source), "--list", "--output", str(listing),
                           "-vvv"], cwd=REPO_ROOT, env=runs.env(ANSIBLE_INVENTORY_ENABLED="auto", **env), check=False,
                          capture_output=True, text=True)
    proc.listing = json.loads(listing.read_text()) if listing.exists() else None
    return proc


def test_inventory_lists_the_vms_of_a_palette_cluster_by_name(runs, palette, audit, admin, ns, lab, client_kubeconfig):
    created = runs.module("palette.vmo.kubevirt_vm", runs.connection(name="listed", namespace=ns, memory="128Mi",
                                                                     wait=True))
    assert created.get("failed") is not True, created.get("msg")
    cache = runs.dirs["tmp"].parent / "inventory-cache"
    source = runs.dirs["tmp"].parent / "site.kubevirt_vms.yml"
    config = dict(palette.connection(), plugin="palette.vmo.kubevirt_vms", palette_cluster="lab-cluster",
                  namespaces=[ns], cache=True, cache_plugin="ansible.builtin.jsonfile", cache_connection=str(cache))
    config.pop("palette_api_key")  # from PALETTE_API_KEY, as a plugin's environment
    mark = audit.mark()
    proc = inventory(runs, source, config, PALETTE_API_KEY=palette.api_key)
    assert proc.returncode == 0, proc.stderr
    hostvars = unwrap(proc.listing)["_meta"]["hostvars"]
    assert sorted(hostvars) == [f"{ns}-listed"] and hostvars[f"{ns}-listed"]["vm_ready"] is True
    assert {e["user"]["username"] for e in people(audit.events(mark), ns)} == {CLIENT_USER}
    cached = [p for p in cache.rglob("*") if p.is_file()]
    assert cached and f"{ns}-listed" in "".join(p.read_text() for p in cached)
    assert leaks(runs, client_kubeconfig) == []
    assert runs.files_holding(key_needles(client_kubeconfig) + [client_kubeconfig["cert_b64"].encode()],
                              roots=[cache]) == []
    for run in (proc, inventory(runs, source, config, PALETTE_API_KEY=palette.api_key)):  # the second from the cache
        shown = run.stdout + run.stderr
        assert "Using " in shown and "as config file" in shown  # the verbose output is there
        assert palette.api_key not in shown and "client-key-data" not in shown
        assert not any(line in shown for line in client_kubeconfig["key_lines"] + client_kubeconfig["cert_lines"])

    both = inventory(runs, source, dict(config, cache=False, kubeconfig=str(lab.kubeconfig)),
                     PALETTE_API_KEY=palette.api_key)
    # ansible-inventory reports a source it cannot parse as a warning (wrapped to the terminal's width).
    assert "palette_cluster and kubeconfig are mutually exclusive" in " ".join(both.stderr.split()), both.stderr
    unknown = inventory(runs, source, dict(config, cache=False, palette_cluster="no-such-cluster"),
                        PALETTE_API_KEY=palette.api_key)
    assert "Palette cluster 'no-such-cluster' not found in project 'lab'" in " ".join(unknown.stderr.split()), \
        unknown.stderr
