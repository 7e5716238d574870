"""palette.vmo.kubevirt_vm_clone against the lab: clones of a VM and of a snapshot in one task, label and
annotation filters, new MAC addresses, the optional start, idempotence, check mode and bad inputs refused
before any write."""

from tests.lab.kube import object_path
from tests.lab.tests.helpers import Waiter, vm_path

from .test_kubevirt_vm_restore import make_vms, snapshot, wait_snapshots, writes_in

CLONE = "palette.vmo.kubevirt_vm_clone"
CLONE_API = "clone.kubevirt.io/v1beta1"


def wait_snapshot_statuses(admin, namespace, name):
    """KubeVirt's snapshot controller reports which volumes can be snapshotted; the clone controller needs it."""
    Waiter(admin).until(vm_path(namespace, name),
                        lambda vm: bool((vm.get("status") or {}).get("volumeSnapshotStatuses")), 60,
                        "volumeSnapshotStatuses of %s" % name)


def test_clone_a_vm_and_a_snapshot_with_filters_new_macs_and_start(run_module, admin, audit, ns):
    labels = {"app": "web", "team": "blue", "backup/nightly": "yes"}
    annotations = {"owner.example.com/name": "ops", "scratch": "1"}
    make_vms(admin, ns, ["web"], labels=labels, annotations=annotations)
    wait_snapshot_statuses(admin, ns, "web")
    snapshot(admin, ns, "web", "web-snap")
    wait_snapshots(admin, ns, ["web-snap"])
    args = {"namespace": ns, "wait_timeout": 240, "clones": [
        {"source_vm": "web", "target": "web-2", "label_filters": ["app", "team"],
         "annotation_filters": ["owner.example.com/*"], "new_mac_addresses": {"default": "02:16:3e:00:00:02"},
         "start": True},
        {"source_snapshot": "web-snap", "target": "web-3", "label_filters": ["*", "!team"],
         "template_label_filters": ["*", "!kubevirt.io/domain"]},
    ]}

    mark = audit.mark()
    check = run_module(CLONE, args, check=True, diff=True)
    assert check.get("failed") is not True, check.get("msg")
    assert check["changed"] is True
    assert [c["action"] for c in check["clones"]] == ["created", "created"]
    assert len(check["diff"]) == 2
    assert writes_in(audit, mark, ns) == []

    result = run_module(CLONE, args)
    assert result.get("failed") is not True, result.get("msg")
    assert result["changed"] is True
    first, second = result["clones"]
    assert first["phase"] == "Succeeded" and first["started"] is True and first["source_kind"] == "VirtualMachine"
    assert second["phase"] == "Succeeded" and second["started"] is False
    assert second["source_kind"] == "VirtualMachineSnapshot" and second["source"] == "web-snap"
    vm2 = admin.get(vm_path(ns, "web-2"))
    assert vm2["metadata"]["labels"] == {"app": "web", "team": "blue"}
    assert {k: v for k, v in vm2["metadata"]["annotations"].items() if not k.startswith("restore.kubevirt.io/")} \
        == {"owner.example.com/name": "ops"}
    assert vm2["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0]["macAddress"] == "02-16-3e-00-00-02"
    assert first["mac_addresses"] == {"default": "02-16-3e-00-00-02"}
    assert vm2["spec"]["runStrategy"] == "Always" and vm2["status"]["printableStatus"] == "Running"
    vm3 = admin.get(vm_path(ns, "web-3"))
    assert vm3["metadata"]["labels"] == {"app": "web", "backup/nightly": "yes"}
    assert vm3["spec"]["runStrategy"] == "Halted"
    assert vm2["spec"]["template"]["metadata"]["labels"] == {"kubevirt.io/domain": "web"}
    assert not (vm3["spec"]["template"].get("metadata") or {}).get("labels")
    assert vm3["spec"]["template"]["spec"]["domain"]["devices"]["interfaces"][0].get("macAddress", "") == ""
    # each clone has disks of its own, made from the snapshot's volume snapshots
    claims = {vm["metadata"]["name"]: vm["spec"]["template"]["spec"]["volumes"][0]["dataVolume"]["name"]
              for vm in (vm2, vm3)}
    assert len(set(claims.values()) | {"web-root"}) == 3
    # KubeVirt removed its temporary snapshot and restore of the VM source
    assert admin.get_or_none(object_path("snapshot.kubevirt.io/v1beta1", "virtualmachinesnapshots", "web-snap", ns))
    Waiter(admin).until(object_path(CLONE_API, "virtualmachineclones", "web-2", ns),
                        lambda c: not (c.get("status") or {}).get("snapshotName"), 60, "clone web-2 cleaned up")

    mark = audit.mark()
    again = run_module(CLONE, args)
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False
    assert [c["action"] for c in again["clones"]] == ["unchanged", "unchanged"]
    assert writes_in(audit, mark, ns) == []

    started = run_module(CLONE, {"namespace": ns, "source_snapshot": "web-snap", "target": "web-3", "start": True})
    assert started.get("failed") is not True, started.get("msg")
    assert started["changed"] is True and started["clones"][0]["started"] is True
    assert admin.get(vm_path(ns, "web-3"))["status"]["printableStatus"] == "Running"


def test_bad_clones_are_refused_before_any_write_naming_the_clone_and_option(run_module, admin, audit, ns):
    make_vms(admin, ns, ["src", "taken"])
    cases = [
        ({"source_vm": "missing", "target": "new"},
         "VM %s/new: source_vm: VirtualMachine missing does not exist in namespace %s" % (ns, ns)),
        ({"source_snapshot": "missing", "target": "new"},
         "VM %s/new: source_snapshot: VirtualMachineSnapshot missing does not exist" % ns),
        ({"source_vm": "src", "target": "taken"},
         "VM %s/taken: target: VirtualMachine taken already exists" % ns),
        ({"source_vm": "src", "target": "src"}, "VM src: target: must differ from source_vm"),
        ({"source_vm": "src", "target": "new", "new_mac_addresses": {"default": "02:00:zz:00:00:01"}},
         "VM new: new_mac_addresses.default: '02:00:zz:00:00:01' is not a MAC address"),
        ({"source_vm": "src", "target": "new", "new_mac_addresses": {"eth9": "02:00:00:00:00:09"}},
         "VM %s/new: new_mac_addresses.eth9: the source has no interface eth9 (it has default)" % ns),
        ({"clones": [{"target": "new"}]}, "clones[0] (new): source_vm: give exactly one of source_vm and source_snapshot"),
        ({"clones": [{"source_vm": "src", "target": "a"}, {"source_vm": "src", "target": "a"}]},
         "VM %s/a: target: cloned into twice in this task" % ns),
        ({"source_vm": "src", "target": "new", "new_smbios_serial": "s-1"},
         "VM %s/new: new_smbios_serial: the source has no firmware section" % ns),
        ({"source_vm": "src", "target": "new", "label_filters": ["a*b"]},
         "spec.labels: spec.labels filter a*b is invalid: cannot contain a wildcard character"),
    ]
    for args, expected in cases:
        mark = audit.mark()
        result = run_module(CLONE, dict({"namespace": ns}, **args))
        assert result.get("failed") is True, (args, result)
        assert expected in result["msg"], (args, result["msg"])
        assert result.get("changed") is not True
        assert writes_in(audit, mark, ns) == [], args


def test_a_clone_wait_that_times_out_names_the_pending_clone_and_a_rerun_adopts_it(run_module, admin, ns):
    make_vms(admin, ns, ["base"])
    wait_snapshot_statuses(admin, ns, "base")
    args = {"namespace": ns, "source_vm": "base", "target": "base-2", "wait_timeout": 0}
    result = run_module(CLONE, args)
    assert result.get("failed") is True
    assert result["changed"] is True
    assert "timed out after 0s waiting for 1 of 1: %s/base-2 (waiting for Succeeded (or Failed)" % ns in result["msg"]
    again = run_module(CLONE, dict(args, wait_timeout=240))
    assert again.get("failed") is not True, again.get("msg")
    assert again["clones"][0]["action"] in ("adopted", "unchanged") and again["clones"][0]["phase"] == "Succeeded"
    assert admin.get(vm_path(ns, "base-2"))["spec"]["runStrategy"] == "Halted"
