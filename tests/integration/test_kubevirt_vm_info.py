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
