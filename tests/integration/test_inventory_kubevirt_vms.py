"""The palette.vmo.kubevirt_vms inventory plugin, run by ansible-inventory against the lab."""

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.lab.kube import object_path

from .helpers import ansible_env, unwrap


def nodeport(name, domain, ports):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "NodePort", "selector": {"kubevirt.io/domain": domain},
                     "ports": [{"name": n, "port": p, "targetPort": p} for n, p in ports]}}


def inventory(lab, tmp_path, config):
    source = tmp_path / "lab.kubevirt_vms.yml"
    source.write_text(json.dumps(config))
    env = ansible_env(KUBECONFIG=str(lab.kubeconfig), ANSIBLE_INVENTORY_ENABLED="auto")
    proc = subprocess.run([str(Path(sys.executable).parent / "ansible-inventory"), "-i", str(source), "--list"],
                          cwd=REPO_ROOT, env=env, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return unwrap(json.loads(proc.stdout))


def test_inventory_lists_vms_with_addresses_groups_services_and_windows(run_module, admin, lab, ns, tmp_path):
    created = run_module("palette.vmo.kubevirt_vm", {
        "namespace": ns, "memory": "256Mi", "wait": True,
        "vms": [{"name": "linux", "labels": {"tier": "web"}},
                {"name": "win", "labels": {"vm.kubevirt.io/os": "windows2k22", "tier": "apps"}},
                {"name": "off", "run_strategy": "Halted", "labels": {"tier": "web"}}]})
    assert created.get("failed") is not True, created.get("msg")
    services = object_path("v1", "services", namespace=ns)
    admin.create(services, nodeport("linux-ssh", "linux", [("ssh", 22), ("http", 80)]))
    admin.create(services, nodeport("win-remote", "win", [("winrm", 5985), ("winrm-https", 5986), ("rdp", 3389)]))

    config = {"plugin": "palette.vmo.kubevirt_vms", "namespaces": [ns],
              "keyed_groups": [{"key": "vm_labels.tier", "prefix": "tier"}],
              "compose": {"vm_summary": "vm_name ~ '@' ~ vm_node"}}
    listed = inventory(lab, tmp_path, config)
    hostvars = listed["_meta"]["hostvars"]
    assert sorted(hostvars) == [f"{ns}-linux", f"{ns}-win"]  # the stopped VM only with include_stopped

    linux = hostvars[f"{ns}-linux"]
    assert linux["vm_ready"] is True and linux["vm_phase"] == "Running"
    assert linux["ansible_host"].startswith("127.0.10.")  # the NodePort's node address
    assert linux["ansible_port"] == next(p["node_port"] for p in linux["vm_services"][0]["ports"] if p["port"] == 22)
    assert {p["port"] for p in linux["vm_services"][0]["ports"]} == {22, 80}
    assert linux["vm_ip_address"].startswith("10.244.")
    assert linux["vm_summary"] == f"linux@{linux['vm_node']}"

    win = hostvars[f"{ns}-win"]
    assert win["vm_windows"] is True and win["ansible_connection"] == "winrm"
    assert win["ansible_port"] == next(p["node_port"] for p in win["vm_services"][0]["ports"] if p["port"] == 5986)
    assert len(win["vm_services"][0]["ports"]) == 3

    groups = {name: set(body.get("hosts", [])) for name, body in listed.items() if name != "_meta"}
    assert groups[f"namespace_{ns.replace('-', '_')}"] == {f"{ns}-linux", f"{ns}-win"}
    assert groups["tier_web"] == {f"{ns}-linux"} and groups["tier_apps"] == {f"{ns}-win"}
    assert f"{ns}-linux" in groups["label_tier_web"]

    with_stopped = inventory(lab, tmp_path, dict(config, include_stopped=True))
    off = with_stopped["_meta"]["hostvars"][f"{ns}-off"]
    assert off["vm_printable_status"] == "Stopped" and "ansible_host" not in off
    assert f"{ns}-off" in with_stopped["stopped"]["hosts"]


def test_inventory_cache_serves_the_second_run(run_module, lab, ns, tmp_path, admin):
    run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "name": "cached", "memory": "128Mi", "wait": True})
    config = {"plugin": "palette.vmo.kubevirt_vms", "namespaces": [ns], "cache": True,
              "cache_plugin": "ansible.builtin.jsonfile", "cache_connection": str(tmp_path / "cache")}
    first = inventory(lab, tmp_path, config)
    assert f"{ns}-cached" in first["_meta"]["hostvars"]
    admin.delete(object_path("kubevirt.io/v1", "virtualmachines", "cached", ns))
    second = inventory(lab, tmp_path, config)
    assert f"{ns}-cached" in second["_meta"]["hostvars"]  # from the cache, not the cluster
    fresh = inventory(lab, tmp_path, dict(config, cache=False))
    assert f"{ns}-cached" not in fresh["_meta"]["hostvars"]
