"""vmo_profile attaching to the lab cluster: the simulator acts as Palette's agent on the real apiserver, so the
KubeVirt CR, the namespaces and the manifest layers are checked where they land."""

import uuid

import pytest
import yaml

from tests.lab.kube import object_path

MODULE = "palette.vmo.vmo_profile"
PACK = "virtual-machine-orchestrator"
VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]
KUBEVIRT = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt")


@pytest.fixture
def attached(palette, run_module):
    """A profile name of its own; afterwards detached, deleted, and the lab's KubeVirt CR given back."""
    name = "vmo-%s" % uuid.uuid4().hex[:8]
    yield name
    run_module(MODULE, dict(palette.connection(), name=name, state="absent", clusters=[palette.cluster]))
    palette.restore_baseline()


def args(palette, name, **extra):
    options = dict(palette.connection(), name=name, pack_tag="4.9.9", clusters=[palette.cluster], wait_timeout=120,
                   poll_interval=0.5)
    options.update(extra)
    return options


def attached_uids(palette):
    uid = palette.info()["cluster_uid"]
    profiles = palette.api("GET", "/v1/spectroclusters/%s/profiles" % uid).json()["profiles"]
    return {p["metadata"]["uid"]: p["metadata"]["name"] for p in profiles}


def kubevirt_spec(admin):
    return admin.get(KUBEVIRT)["spec"]


def test_attach_waits_until_ready_and_the_cluster_gets_exactly_the_gates(run_module, palette, admin, attached):
    template = {"apiVersion": "spectrocloud.com/v1", "kind": "VmTemplate", "metadata": {"name": attached},
                "spec": {"description": "Ubuntu for the lab", "running": False,
                         "template": {"spec": {"domain": {"devices": {}}}}}}
    options = dict(feature_gates_extra=["GPU"], use_emulation=True, vm_namespaces=["%s-vms" % attached],
                   golden_images_namespace="%s-images" % attached,
                   manifests=[{"name": "vmo-templates", "content": yaml.safe_dump(template)}])
    result = run_module(MODULE, args(palette, attached, **options))
    assert result["changed"] is True and result.get("failed") is not True, result
    cluster = result["clusters"][0]
    assert cluster["name"] == palette.cluster and cluster["action"] == "attach"
    assert {n: (c["type"], c["status"]) for n, c in cluster["packs"].items()} == {
        PACK: ("Ready", "True"), "vmo-templates": ("Ready", "True")}
    assert attached_uids(palette)[result["uid"]] == attached

    spec = kubevirt_spec(admin)
    assert spec["configuration"]["developerConfiguration"]["featureGates"] == VMO_GATES + ["GPU"]
    assert spec["configuration"]["developerConfiguration"]["useEmulation"] is True
    for namespace in ("%s-vms" % attached, "%s-images" % attached):
        assert admin.get(object_path("v1", "namespaces", namespace))["metadata"]["name"] == namespace
    vmtemplate = admin.get(object_path("spectrocloud.com/v1", "vmtemplates", attached))
    assert vmtemplate["spec"]["description"] == "Ubuntu for the lab"

    mark = palette.mark()
    again = run_module(MODULE, args(palette, attached, **options))
    assert again["changed"] is False and again["clusters"][0]["action"] == "none", again
    assert palette.writes_since(mark) == []


def test_in_place_change_is_applied_again(run_module, palette, admin, attached):
    run_module(MODULE, args(palette, attached, use_emulation=True))
    changed = run_module(MODULE, args(palette, attached, use_emulation=True, feature_gates_extra=["Sidecar"]))
    assert changed["changed"] is True and changed["actions"] == ["update"]
    assert changed["clusters"][0]["action"] == "reapply"
    assert kubevirt_spec(admin)["configuration"]["developerConfiguration"]["featureGates"] == VMO_GATES + ["Sidecar"]


def test_new_version_replaces_the_attached_one(run_module, palette, admin, attached):
    first = run_module(MODULE, args(palette, attached, use_emulation=True, update_mode="new_version"))
    assert first["clusters"][0]["action"] == "attach"
    mark = palette.mark()
    # Until Palette's agent picks the replace up, the cluster lists the replaced version's packs as Ready.
    with palette.faulted(apply_delay_seconds=2):
        second = run_module(MODULE, args(palette, attached, use_emulation=True, update_mode="new_version",
                                         feature_gates_extra=["GPU", "Sidecar"]))
    assert second["version"] == "1.0.1" and second["clusters"][0]["action"] == "replace", second
    patches = [r for r in palette.writes_since(mark) if r["path"].endswith("/profiles")]
    assert len(patches) == 1 and patches[0]["method"] == "PATCH"
    uids = attached_uids(palette)
    assert second["uid"] in uids and first["uid"] not in uids
    assert kubevirt_spec(admin)["configuration"]["developerConfiguration"]["featureGates"] == \
        VMO_GATES + ["GPU", "Sidecar"]


def test_check_mode_attach_writes_nothing(run_module, palette, admin, attached):
    before = kubevirt_spec(admin)
    mark = palette.mark()
    planned = run_module(MODULE, args(palette, attached, feature_gates_extra=["GPU"]), check=True)
    assert planned["changed"] is True and planned["clusters"][0]["action"] == "attach", planned
    assert palette.writes_since(mark) == []
    assert kubevirt_spec(admin) == before


def test_values_the_pack_rejects_fail_with_the_pack_message(run_module, palette, attached):
    bad = {"charts": {PACK: {"kubevirt": {"kubevirtResource": {"useEmulation": "sometimes"}}}}}
    result = run_module(MODULE, args(palette, attached, values=bad))
    assert result.get("failed") is True, result
    assert "cluster %s: pack %s failed:" % (palette.cluster, PACK) in result["msg"]
    assert "useEmulation" in result["msg"] and "sometimes" in result["msg"]


def test_wait_timeout_names_cluster_pack_and_last_condition(run_module, palette, attached):
    palette.faults(deploy_seconds=30)
    try:
        result = run_module(MODULE, args(palette, attached, use_emulation=True, wait_timeout=2))
    finally:
        palette.faults(deploy_seconds=0.5)
    assert result.get("failed") is True, result
    assert "timed out after 2s" in result["msg"]
    assert "cluster %s: pack %s (last: Ready=False" % (palette.cluster, PACK) in result["msg"]
    assert result["uid"]


def test_absent_detaches_then_deletes(run_module, palette, attached):
    created = run_module(MODULE, args(palette, attached, use_emulation=True))
    mark = palette.mark()
    removed = run_module(MODULE, dict(palette.connection(), name=attached, state="absent",
                                      clusters=[palette.cluster]))
    assert removed["changed"] is True and removed["clusters"][0]["action"] == "detach", removed
    assert [r["method"] for r in palette.writes_since(mark)] == ["DELETE", "DELETE"]
    assert created["uid"] not in attached_uids(palette)
    assert palette.api("GET", "/v1/clusterprofiles/%s" % created["uid"]).status_code == 404


def test_absent_refuses_a_version_attached_elsewhere_and_deletes_nothing(run_module, palette, attached):
    assert run_module(MODULE, args(palette, attached))["changed"] is True
    mark = palette.mark()
    refused = run_module(MODULE, dict(palette.connection(), name=attached, state="absent"))
    assert refused.get("failed") is True, refused
    assert "nothing was deleted: %s 1.0.0 is attached to cluster %s" % (attached, palette.info()["cluster_uid"]) \
        in refused["msg"], refused["msg"]
    assert palette.writes_since(mark) == []
    assert attached in attached_uids(palette).values()


def test_reapply_waits_until_palette_deployed_the_changed_pack_not_for_the_ready_listed_before(
        run_module, palette, admin, attached):
    run_module(MODULE, args(palette, attached, use_emulation=True))
    # Palette's agent picks the change up only after a while; until then the packs are listed Ready as before.
    with palette.faulted(apply_delay_seconds=3):
        changed = run_module(MODULE, args(palette, attached, use_emulation=True, feature_gates_extra=["Sidecar"]))
    assert changed.get("failed") is not True and changed["clusters"][0]["action"] == "reapply", changed
    assert kubevirt_spec(admin)["configuration"]["developerConfiguration"]["featureGates"] == VMO_GATES + ["Sidecar"]
    pack = changed["clusters"][0]["packs"][PACK]
    assert (pack["type"], pack["status"]) == ("Ready", "True")


def test_values_fixed_after_an_error_are_applied_again_despite_the_error_listed_before(run_module, palette, admin,
                                                                                       attached):
    bad = {"charts": {PACK: {"kubevirt": {"kubevirtResource": {"useEmulation": "sometimes"}}}}}
    failed = run_module(MODULE, args(palette, attached, values=bad))
    assert "pack %s failed:" % PACK in failed.get("msg", ""), failed
    with palette.faulted(apply_delay_seconds=2):
        fixed = run_module(MODULE, args(palette, attached, use_emulation=True))
    assert fixed.get("failed") is not True and fixed["clusters"][0]["action"] == "reapply", fixed
    assert kubevirt_spec(admin)["configuration"]["developerConfiguration"]["useEmulation"] is True


def test_the_wait_holds_while_a_cluster_condition_is_not_true_and_its_timeout_names_it(run_module, palette, attached):
    with palette.faulted(nodes_not_ready_seconds=3600):
        result = run_module(MODULE, args(palette, attached, use_emulation=True, wait_timeout=4))
    assert result.get("failed") is True, result
    assert "timed out after 4s" in result["msg"]
    assert "cluster %s: condition NodesReady=False: 1 of 3 nodes is not ready" % palette.cluster in result["msg"]
