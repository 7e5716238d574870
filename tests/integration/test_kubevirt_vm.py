"""palette.vmo.kubevirt_vm against the lab: batches, idempotence, check and diff mode, power, waits."""

import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_vm"


def vm_path(namespace, name=""):
    return object_path("kubevirt.io/v1", "virtualmachines", name, namespace)


def writes_in(audit, mark, namespace):
    """Mutations the module's user made in the namespace since the mark."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("namespace") == namespace]


def mixed_batch(namespace, template):
    return {
        "namespace": namespace, "memory": "256Mi", "wait": True, "wait_timeout": 60,
        "vms": [
            {"name": "typed", "cpu": {"cores": 2}, "labels": {"tier": "web"},
             "disks": [{"name": "root", "container_disk": "quay.io/containerdisks/fedora:41"}],
             "cloud_init": {"ssh_authorized_keys": ["ssh-ed25519 AAAAC3Nza lab@example"]}},
            {"name": "raw", "spec": {
                "domain": {"memory": {"guest": "512Mi"}, "devices": {
                    "disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                    "interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}],
                "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/containerdisks/centos-stream:9"}}]}},
            {"name": "imported", "disks": [{"name": "root", "data_volume": {
                "size": "10Gi", "registry": "docker://quay.io/containerdisks/ubuntu:24.04"}}]},
            {"name": "cloned", "disks": [{"name": "root", "data_volume": {
                "size": "10Gi", "clone": {"name": "ubuntu-2404", "namespace": "vmo-golden-images"}}}]},
            {"name": "templated", "template": template},
        ],
    }


GOLDEN_IMAGES = "vmo-golden-images"


@pytest.fixture(scope="module")
def golden_images(admin):
    """The golden image claims the clones read (a VMO cluster keeps them in its golden images namespace): KubeVirt
    starts a VM only once its DataVolumes are populated, and CDI clones only from a claim that exists."""
    if admin.get_or_none(object_path("v1", "namespaces", GOLDEN_IMAGES)) is None:
        admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": GOLDEN_IMAGES}})
    for name, modes, storage_class in (("ubuntu-2404", ["ReadWriteOnce"], "lab-rwo"),
                                       ("template-ubuntu-2404", ["ReadWriteMany"], "lab-rwx")):
        path = object_path("v1", "persistentvolumeclaims", name, GOLDEN_IMAGES)
        if admin.get_or_none(path) is None:
            admin.create(object_path("v1", "persistentvolumeclaims", namespace=GOLDEN_IMAGES), {
                "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
                "spec": {"accessModes": modes, "storageClassName": storage_class,
                         "resources": {"requests": {"storage": "5Gi"}}}})
    return GOLDEN_IMAGES


def by_name(result):
    return {vm["name"]: vm for vm in result["vms"]}


def test_mixed_batch_creates_runs_and_reruns_unchanged(run_module, admin, audit, ns, vm_template):
    first = run_module(MODULE, mixed_batch(ns, vm_template))
    assert first.get("failed") is not True, first.get("msg")
    assert first["changed"] is True
    vms = by_name(first)
    assert {v["action"] for v in vms.values()} == {"created"}
    assert all(v["printable_status"] == "Running" and v["ready"] for v in vms.values()), vms
    assert all(v["ip_address"] for v in vms.values())
    typed = admin.get(vm_path(ns, "typed"))
    assert typed["spec"]["runStrategy"] == "Always" and "running" not in typed["spec"]
    assert typed["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "palette.vmo"
    assert typed["spec"]["template"]["spec"]["domain"]["cpu"] == {"cores": 2}
    cloned = admin.get(vm_path(ns, "cloned"))
    assert cloned["spec"]["dataVolumeTemplates"][0]["spec"]["source"] == {
        "pvc": {"name": "ubuntu-2404", "namespace": "vmo-golden-images"}}
    templated = admin.get(vm_path(ns, "templated"))
    assert templated["spec"]["dataVolumeTemplates"][0]["metadata"]["name"] == "templated-root"

    mark = audit.mark()
    second = run_module(MODULE, mixed_batch(ns, vm_template))
    assert second["changed"] is False, second
    assert {v["action"] for v in second["vms"]} == {"unchanged"}
    assert writes_in(audit, mark, ns) == []


def test_one_changed_field_changes_only_that_vm(run_module, admin, ns):
    batch = {"namespace": ns, "memory": "128Mi", "vms": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}
    assert run_module(MODULE, batch)["changed"] is True
    batch["vms"][1]["memory"] = "256Mi"
    result = run_module(MODULE, batch)
    assert result["changed"] is True
    assert {v["name"]: v["action"] for v in result["vms"]} == {"a": "unchanged", "b": "updated", "c": "unchanged"}
    assert admin.get(vm_path(ns, "b"))["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "256Mi"


def test_check_mode_predicts_exactly_and_writes_nothing(run_module, admin, audit, ns):
    args = {"namespace": ns, "name": "planned", "memory": "128Mi", "state": "started"}
    mark = audit.mark()
    predicted = run_module(MODULE, args, check=True, diff=True)
    assert predicted["changed"] is True
    assert predicted["diff"][0]["before"] == {}
    assert predicted["diff"][0]["after"]["spec"]["runStrategy"] == "Always"
    assert admin.get_or_none(vm_path(ns, "planned")) is None
    assert writes_in(audit, mark, ns) == []
    # Dry runs did reach the apiserver: the plan is the server's, not a guess.
    assert any("dryRun=All" in e["requestURI"] for e in audit.events(mark)
               if (e.get("objectRef") or {}).get("namespace") == ns)

    run_module(MODULE, dict(args, wait=True))
    mark = audit.mark()
    again = run_module(MODULE, args, check=True)
    assert again["changed"] is False
    changed = run_module(MODULE, dict(args, memory="192Mi"), check=True, diff=True)
    assert changed["changed"] is True
    diff = changed["diff"][0]
    assert diff["before"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "128Mi"
    assert diff["after"]["spec"]["template"]["spec"]["domain"]["memory"]["guest"] == "192Mi"
    assert writes_in(audit, mark, ns) == []


@pytest.mark.parametrize("sequence", [[
    ("stopped", "Stopped", True), ("stopped", "Stopped", False),
    ("started", "Running", True), ("started", "Running", False),
    ("paused", "Paused", True), ("paused", "Paused", False),
    ("unpaused", "Running", True), ("unpaused", "Running", False),
    ("restarted", "Running", True),
]])
def test_power_verbs_are_idempotent(run_module, admin, ns, sequence):
    base = {"namespace": ns, "name": "power", "memory": "128Mi", "wait": True, "wait_timeout": 60}
    assert run_module(MODULE, dict(base, state="started"))["changed"] is True
    for state, printable, expect_change in sequence:
        predicted = run_module(MODULE, dict(base, state=state), check=True)
        assert predicted["changed"] is expect_change, (state, predicted)
        result = run_module(MODULE, dict(base, state=state))
        assert result.get("failed") is not True, (state, result.get("msg"))
        assert result["changed"] is expect_change, (state, result)
        assert result["vms"][0]["printable_status"] == printable, (state, result["vms"][0])


@pytest.mark.parametrize("strategy, printable", [("Always", "Running"), ("Halted", "Stopped"),
                                                 ("Manual", "Stopped"), ("RerunOnFailure", "Running"),
                                                 ("Once", "Running")])
def test_each_run_strategy_converges_and_is_idempotent(run_module, ns, strategy, printable):
    args = {"namespace": ns, "name": strategy.lower(), "memory": "128Mi", "run_strategy": strategy, "wait": True,
            "wait_timeout": 60}
    if strategy == "Manual":
        args["wait"] = False
    first = run_module(MODULE, args)
    assert first["changed"] is True and first["vms"][0]["run_strategy"] == strategy
    if args["wait"]:
        assert first["vms"][0]["printable_status"] == printable
    assert run_module(MODULE, args)["changed"] is False


def test_switching_run_strategy_updates_the_vm(run_module, admin, ns):
    args = {"namespace": ns, "name": "switch", "memory": "128Mi", "run_strategy": "Always", "wait": True}
    run_module(MODULE, args)
    result = run_module(MODULE, dict(args, run_strategy="Halted"))
    assert result["changed"] is True and result["vms"][0]["printable_status"] == "Stopped"


def test_deprecated_running_is_migrated_to_run_strategy(run_module, admin, ns):
    admin.create(vm_path(ns), {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": "legacy", "namespace": ns},
        "spec": {"running": True, "template": {"spec": {"domain": {"memory": {"guest": "128Mi"}, "devices": {}}}}}})
    result = run_module(MODULE, {"namespace": ns, "name": "legacy", "memory": "128Mi", "wait": True})
    assert result["changed"] is True
    spec = admin.get(vm_path(ns, "legacy"))["spec"]
    assert spec["runStrategy"] == "Always" and "running" not in spec
    assert run_module(MODULE, {"namespace": ns, "name": "legacy", "memory": "128Mi"})["changed"] is False


def test_wait_timeout_names_the_pending_vms(run_module, ns):
    result = run_module(MODULE, {
        "namespace": ns, "memory": "128Mi", "wait": True, "wait_timeout": 4,
        "vms": [{"name": "fine"}, {"name": "stuck", "node_selector": {"lab.example/gpu": "true"}}]})
    assert result.get("failed") is True
    assert "timed out after 4s waiting for 1 of 2" in result["msg"]
    assert f"{ns}/stuck (waiting for ready; last seen: printableStatus=ErrorUnschedulable" in result["msg"]
    assert f"{ns}/fine" not in result["msg"]


def test_absent_deletes_and_exclusive_prunes_only_managed_vms(run_module, admin, ns):
    run_module(MODULE, {"namespace": ns, "memory": "128Mi", "vms": [{"name": "keep"}, {"name": "extra"},
                                                                    {"name": "gone"}]})
    admin.create(vm_path(ns), {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
                               "metadata": {"name": "foreign", "namespace": ns},
                               "spec": {"runStrategy": "Halted", "template": {"spec": {"domain": {"devices": {}}}}}})
    absent = run_module(MODULE, {"namespace": ns, "name": "gone", "state": "absent", "wait": True})
    assert absent["changed"] is True and absent["vms"][0]["action"] == "deleted"
    assert admin.get_or_none(vm_path(ns, "gone")) is None
    assert run_module(MODULE, {"namespace": ns, "name": "gone", "state": "absent"})["changed"] is False

    predicted = run_module(MODULE, {"namespace": ns, "memory": "128Mi", "exclusive": True, "vms": [{"name": "keep"}]},
                           check=True)
    assert predicted["changed"] is True and admin.get_or_none(vm_path(ns, "extra")) is not None
    pruned = run_module(MODULE, {"namespace": ns, "memory": "128Mi", "exclusive": True, "wait": True,
                                 "vms": [{"name": "keep"}]})
    assert {v["name"]: v["action"] for v in pruned["vms"]} == {"keep": "unchanged", "extra": "deleted"}
    remaining = {vm["metadata"]["name"] for vm in admin.get(vm_path(ns))["items"]}
    assert remaining == {"keep", "foreign"}


VMTEMPLATE = {
    "apiVersion": "spectrocloud.com/v1", "kind": "VmTemplate",
    "metadata": {"name": "", "labels": {"app.kubernetes.io/part-of": "vmtemplate"}},
    "spec": {
        "displayName": "Ubuntu 24.04", "running": False,
        "dataVolumeTemplates": [{"metadata": {"name": "root"}, "spec": {
            "source": {"pvc": {"name": "template-ubuntu-2404", "namespace": "vmo-golden-images"}},
            "storage": {"accessModes": ["ReadWriteMany"], "storageClassName": "lab-rwx",
                        "resources": {"requests": {"storage": "20Gi"}}}}}],
        "template": {"metadata": {"labels": {"os": "ubuntu"}}, "spec": {
            "domain": {"cpu": {"cores": 2}, "memory": {"guest": "2Gi"},
                       "devices": {"disks": [{"name": "root", "disk": {"bus": "virtio"}}],
                                   "interfaces": [{"name": "default", "masquerade": {}}]}},
            "networks": [{"name": "default", "pod": {}}],
            "volumes": [{"name": "root", "dataVolume": {"name": "root"}}]}},
    },
}


@pytest.fixture
def vm_template(admin, golden_images):  # pylint: disable=unused-argument
    name = f"ubuntu-{uuid.uuid4().hex[:6]}"
    body = dict(VMTEMPLATE, metadata=dict(VMTEMPLATE["metadata"], name=name))
    admin.create(object_path("spectrocloud.com/v1", "vmtemplates"), body)
    yield name
    admin.delete(object_path("spectrocloud.com/v1", "vmtemplates", name))


def test_vms_from_a_vmtemplate_with_overrides(run_module, admin, ns, vm_template):
    args = {"namespace": ns, "template": vm_template, "wait": True,
            "vms": [{"name": "from-template"}, {"name": "bigger", "memory": "4Gi", "labels": {"size": "l"}}]}
    result = run_module(MODULE, args)
    assert result.get("failed") is not True, result.get("msg")
    assert {v["name"]: v["action"] for v in result["vms"]} == {"from-template": "created", "bigger": "created"}
    plain = admin.get(vm_path(ns, "from-template"))["spec"]
    assert plain["template"]["spec"]["domain"]["memory"]["guest"] == "2Gi"
    assert plain["template"]["metadata"]["labels"]["os"] == "ubuntu"
    assert plain["dataVolumeTemplates"][0]["metadata"]["name"] == "from-template-root"
    assert plain["template"]["spec"]["volumes"][0]["dataVolume"]["name"] == "from-template-root"
    assert "running" not in plain and plain["runStrategy"] == "Always"
    bigger = admin.get(vm_path(ns, "bigger"))["spec"]
    assert bigger["template"]["spec"]["domain"]["memory"]["guest"] == "4Gi"
    assert bigger["template"]["spec"]["domain"]["cpu"] == {"cores": 2}
    assert run_module(MODULE, args)["changed"] is False


def test_unknown_template_is_an_input_error(run_module, audit, ns, vm_template):
    mark = audit.mark()
    result = run_module(MODULE, {"namespace": ns, "name": "x", "template": "no-such-template"})
    assert result.get("failed") is True
    assert f"VM {ns}/x: template: VmTemplate 'no-such-template' not found" in result["msg"]
    assert vm_template in result["msg"]  # the error lists the templates that do exist
    assert writes_in(audit, mark, ns) == []


def test_wait_on_a_named_field_and_on_a_condition(run_module, ns):
    by_field = run_module(MODULE, {"namespace": ns, "name": "fielded", "memory": "128Mi", "wait": True,
                                   "wait_field": {"path": "{.status.printableStatus}", "value": "Running"}})
    assert by_field.get("failed") is not True and by_field["vms"][0]["printable_status"] == "Running"
    never = run_module(MODULE, {"namespace": ns, "name": "fielded", "memory": "128Mi", "wait": True, "wait_timeout": 2,
                                "wait_field": {"path": "status.printableStatus", "value": "Migrating"}})
    assert never.get("failed") is True
    assert "waiting for status.printableStatus=Migrating; last seen: printableStatus=Running" in never["msg"]
    by_condition = run_module(MODULE, {"namespace": ns, "name": "fielded", "memory": "128Mi", "wait": True,
                                       "wait_condition": {"type": "Ready", "status": "True"}})
    assert by_condition.get("failed") is not True
