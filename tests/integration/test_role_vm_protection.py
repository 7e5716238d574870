"""The vm_protection role through playbooks/vm_protection.yml against the lab: nights of snapshots with retention
(a snapshot made by someone else never deleted), a Velero backup of the same VMs, a second run of the same night
that writes nothing, a check-mode night that writes nothing, and a site that declares no VM refused."""

import json
import re

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

from .test_kubevirt_vm_snapshot import make_vms, names_of, snap_path

PLAYBOOK = "playbooks/vm_protection.yml"


def night(ansible_playbook, ns, run_id, *args, **extra):
    variables = dict({"vm_protection_namespace": ns, "vm_protection_label_selector": "backup=nightly",
                      "vm_protection_run_id": run_id, "vm_protection_keep": 2, "vm_protection_backup": True,
                      "vm_protection_backup_prefix": ns, "vm_protection_wait_timeout": 300, "vmo_site_cluster": ""},
                     **extra)
    return ansible_playbook(PLAYBOOK, "-i", "inventories/lab", "-e", json.dumps(variables), *args)


def label_for_nightly(admin, ns, names):
    for name in names:
        admin.merge_patch(object_path("kubevirt.io/v1", "virtualmachines", name, ns),
                          {"metadata": {"labels": {"backup": "nightly"}}})


def foreign_snapshot(admin, ns, vm):
    admin.create(snap_path(ns), {"apiVersion": "snapshot.kubevirt.io/v1beta1", "kind": "VirtualMachineSnapshot",
                                 "metadata": {"name": vm + "-by-hand"},
                                 "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": vm}}})


def backup_phase(admin, name):
    return admin.get(object_path("velero.io/v1", "backups", name, "velero"))["status"]["phase"]


def test_three_nights_keep_two_snapshots_per_vm_and_back_the_vms_up(ansible_playbook, run_module, admin, audit, ns):
    make_vms(run_module, ns, ["web-1", "db-1"])
    make_vms(run_module, ns, ["other"])
    label_for_nightly(admin, ns, ["web-1", "db-1"])
    foreign_snapshot(admin, ns, "db-1")

    for run_id in ("night-1", "night-2", "night-3"):
        run = night(ansible_playbook, ns, run_id)
        assert run.rc == 0 and run.recap["localhost"]["failed"] == 0, run
        assert backup_phase(admin, f"{ns}-{run_id}") == "Completed"

    assert names_of(admin, ns, "web-1") == ["web-1-night-2", "web-1-night-3"]
    assert names_of(admin, ns, "db-1") == ["db-1-by-hand", "db-1-night-2", "db-1-night-3"]
    assert names_of(admin, ns, "other") == []
    # The backup holds the chosen VMs (their DataVolumes come along), not the unlabelled VM.
    assert re.search(r'"backup_vms": \[\s*"db-1",\s*"web-1"\s*\]', run.stdout), run

    # The same night again: nothing written. The backup's item list is read again through a DownloadRequest,
    # Velero's read API (`velero backup describe` makes one the same way), created and deleted.
    mark = audit.mark()
    again = night(ansible_playbook, ns, "night-3")
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again
    assert [e["objectRef"]["resource"] for e in audit.mutations(mark, user=ADMIN_USER)] == ["downloadrequests"] * 2


def test_a_night_in_check_mode_writes_nothing(ansible_playbook, run_module, admin, audit, ns):
    make_vms(run_module, ns, ["web-1"])
    label_for_nightly(admin, ns, ["web-1"])
    assert night(ansible_playbook, ns, "night-1").rc == 0
    mark = audit.mark()
    run = night(ansible_playbook, ns, "night-2", "--check")
    assert run.rc == 0 and run.recap["localhost"]["changed"] == 2, run
    assert audit.mutations(mark, user=ADMIN_USER) == []
    assert names_of(admin, ns, "web-1") == ["web-1-night-1"]


def test_a_site_that_declares_no_vm_is_refused_before_any_write(ansible_playbook, audit, ns):
    mark = audit.mark()
    run = night(ansible_playbook, ns, "night-1", vm_protection_label_selector="")
    assert run.rc != 0 and run.recap["localhost"]["failed"] == 1, run
    assert "name the VMs to protect" in run.stdout
    assert audit.mutations(mark, user=ADMIN_USER) == []
