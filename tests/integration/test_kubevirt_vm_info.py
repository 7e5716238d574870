"""palette.vmo.kubevirt_vm_info against the lab: selectors, instance facts, waits."""


def test_info_by_name_label_and_namespace_with_vmi_facts(run_module, ns):
    created = run_module("palette.vmo.kubevirt_vm", {
        "namespace": ns, "memory": "128Mi", "wait": True,
        "vms": [{"name": "web-1", "labels": {"tier": "web"}}, {"name": "web-2", "labels": {"tier": "web"}},
                {"name": "db-1", "labels": {"tier": "db"}, "run_strategy": "Halted"}]})
    assert created.get("failed") is not True, created.get("msg")

    web = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "label_selectors": ["tier=web"]})
    assert [vm["name"] for vm in web["vms"]] == ["web-1", "web-2"]
    for vm in web["vms"]:
        assert vm["printable_status"] == "Running" and vm["phase"] == "Running" and vm["ready"] is True
        assert vm["node"].startswith("lab-node-") and vm["ip_address"].startswith("10.244.")
        assert vm["vmi"]["metadata"]["name"] == vm["name"]

    db = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "db-1"})
    assert len(db["vms"]) == 1
    assert db["vms"][0]["printable_status"] == "Stopped" and db["vms"][0]["vmi"] is None
    assert db["vms"][0]["run_strategy"] == "Halted" and db["vms"][0]["ip_address"] is None

    everywhere = run_module("palette.vmo.kubevirt_vm_info", {"field_selectors": [f"metadata.namespace={ns}"]})
    assert [vm["name"] for vm in everywhere["vms"]] == ["db-1", "web-1", "web-2"]
    assert everywhere["changed"] is False


def test_info_waits_and_times_out_with_the_pending_vm(run_module, ns):
    run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "name": "cold", "memory": "128Mi",
                                           "run_strategy": "Halted"})
    stopped = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "cold", "wait": True,
                                                          "wait_for": "stopped", "wait_timeout": 30})
    assert stopped["vms"][0]["printable_status"] == "Stopped"
    late = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "cold", "wait": True,
                                                       "wait_timeout": 2})
    assert late.get("failed") is True
    assert f"{ns}/cold (waiting for ready; last seen: printableStatus=Stopped" in late["msg"]


def test_info_for_a_missing_vm_is_empty(run_module, ns):
    result = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "nobody"})
    assert result.get("failed") is not True and result["vms"] == []


CIRROS = "quay.io/kubevirt/cirros-container-disk-demo:v1.4.0"  # CirrOS ships no qemu-guest-agent
NOT_MASQUERADE = ("cannot migrate VMI which does not use masquerade or a migratable plugin to connect to the pod "
                  "network")


def test_info_gives_day2_facts_and_waits_for_the_guest_agent(run_module, ns):
    created = run_module("palette.vmo.kubevirt_vm", {
        "namespace": ns, "memory": "128Mi", "wait": True,
        "vms": [{"name": "agent"}, {"name": "bridged", "nics": [{"name": "default", "binding": "bridge"}]},
                {"name": "cirros", "disks": [{"name": "root", "container_disk": CIRROS}]},
                {"name": "off", "run_strategy": "Halted", "eviction_strategy": "None"}]})
    assert created.get("failed") is not True, created.get("msg")

    agent = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "agent", "wait": True,
                                                        "wait_for": "agent_connected", "wait_timeout": 120})
    assert agent.get("failed") is not True, agent.get("msg")
    vm = agent["vms"][0]
    assert vm["guest_agent"]["connected"] is True and vm["guest_agent"]["guest_os_info"]["kernelRelease"]
    assert vm["guest_agent"]["since"] and vm["guest_agent"]["unsupported"] is None
    assert vm["live_migratable"]["status"] == "True"
    assert vm["restart_required"] == {"required": False, "message": None}
    assert vm["migration"] is None and vm["eviction_strategy"] is None
    # The keys the module gave before are all still there.
    for key in ("name", "namespace", "labels", "annotations", "run_strategy", "printable_status", "ready", "phase",
                "node", "ip_address", "ip_addresses", "interfaces", "guest_os", "conditions", "vm", "vmi"):
        assert key in vm

    facts = {vm["name"]: vm for vm in run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns})["vms"]}
    assert facts["bridged"]["live_migratable"] == {"status": "False", "reason": "InterfaceNotLiveMigratable",
                                                   "message": NOT_MASQUERADE}
    assert facts["cirros"]["volume_status"][0]["name"] == "root"
    assert facts["cirros"]["volume_status"][0]["target"] == "vda" and facts["cirros"]["volume_status"][0]["hotplug"] \
        is False
    assert facts["off"]["guest_agent"] == {"connected": False, "since": None, "unsupported": None, "guest_os_info": {}}
    assert facts["off"]["live_migratable"] is None and facts["off"]["volume_status"] == []
    assert facts["off"]["eviction_strategy"] == "None"

    # A guest without an agent never connects: the bounded wait names it with what it last saw.
    late = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "cirros", "wait": True,
                                                       "wait_for": "agent_connected", "wait_timeout": 3})
    assert late.get("failed") is True
    assert f"{ns}/cirros (waiting for guest agent connected; last seen: phase=Running AgentConnected=<none>)" \
        in late["msg"]


def test_info_reports_a_change_that_waits_for_a_restart(run_module, admin, ns):
    from tests.lab import processes
    from tests.lab.kube import object_path

    created = run_module("palette.vmo.kubevirt_vm", {"namespace": ns, "name": "web", "memory": "128Mi", "wait": True})
    assert created.get("failed") is not True, created.get("msg")
    path = object_path("kubevirt.io/v1", "virtualmachines", "web", ns)
    # Cores cannot change on a running VM (only sockets can, under LiveUpdate): KubeVirt asks for a restart.
    admin.merge_patch(path, {"spec": {"template": {"spec": {"domain": {"cpu": {"cores": 2}}}}}})

    def restart_required():
        return any(c["type"] == "RestartRequired" and c["status"] == "True"
                   for c in admin.get(path).get("status", {}).get("conditions") or [])

    processes.wait_until(restart_required, 60, "the VM's RestartRequired condition")
    vm = run_module("palette.vmo.kubevirt_vm_info", {"namespace": ns, "name": "web"})["vms"][0]
    assert vm["restart_required"]["required"] is True and vm["restart_required"]["message"]
