"""Role vmo_pack, Palette path: the VMO profile made, attached and Ready on the lab cluster, then unchanged."""

import json
import uuid

import yaml

from tests.lab.kube import object_path

VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]


def palette_role_vars(connection, name):
    """The role's Palette path with the simulator's connection, for the profile `name`."""
    return {"vmo_pack_mode": "palette", "vmo_pack_palette_profile_name": name,
            "vmo_pack_palette_host": connection["palette_host"],
            "vmo_pack_palette_api_key": connection["palette_api_key"],
            "vmo_pack_palette_project": connection["palette_project"],
            "vmo_pack_palette_ca_cert": connection["palette_ca_cert"]}


def test_role_palette_path_converges_and_reruns_unchanged(ansible_playbook, run_module, palette, admin, tmp_path):
    name = "vmo-role-%s" % uuid.uuid4().hex[:6]
    connection = palette.connection()
    role_vars = dict(palette_role_vars(connection, name), vmo_pack_palette_pack_tag="4.10.7",
                     vmo_pack_palette_clusters=[palette.cluster], vmo_pack_palette_wait_timeout=120,
                     vmo_pack_feature_gates_extra=["GPU"], vmo_pack_use_emulation=True,
                     vmo_pack_vm_namespaces=["%s-vms" % name])
    playbook = tmp_path / "pack.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "palette.vmo.vmo_pack", "vars": role_vars}]}]))
    try:
        first = ansible_playbook(str(playbook))
        assert first.rc == 0, first
        assert first.recap["localhost"]["changed"] == 1, first
        assert "profile %s 1.0.0 (vmo-manager layout, gates %s): create; %s attach" % (
            name, ",".join(VMO_GATES + ["GPU"]), palette.cluster) in first.stdout, first
        kubevirt = admin.get(object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt"))
        developer = kubevirt["spec"]["configuration"]["developerConfiguration"]
        assert developer["featureGates"] == VMO_GATES + ["GPU"] and developer["useEmulation"] is True
        assert admin.get(object_path("v1", "namespaces", "%s-vms" % name))

        mark = palette.mark()
        second = ansible_playbook(str(playbook))
        assert second.rc == 0 and second.recap["localhost"]["changed"] == 0, second
        assert "unchanged; %s none" % palette.cluster in second.stdout
        assert palette.writes_since(mark) == []
        assert connection["palette_api_key"] not in second.stdout

        bad = tmp_path / "bad.yml"
        bad.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "roles": [
            {"role": "palette.vmo.vmo_pack", "vars": dict(role_vars, vmo_pack_palette_update_mode="sideways")}]}]))
        rejected = ansible_playbook(str(bad))
        assert rejected.rc != 0 and "vmo_pack_palette_update_mode" in rejected.stdout
    finally:
        run_module("palette.vmo.vmo_profile", dict(connection, name=name, state="absent",
                                                   clusters=[palette.cluster]))
        palette.restore_baseline()


def test_role_leaves_use_emulation_to_the_values_when_unset(ansible_playbook, run_module, palette, tmp_path):
    name = "vmo-role-%s" % uuid.uuid4().hex[:6]
    connection = palette.connection()
    chart = {"charts": {"virtual-machine-orchestrator": {"kubevirt": {"kubevirtResource": {"useEmulation": True}}}}}
    # No cluster to attach to: the inventory's site cluster may not exist.
    role_vars = dict(palette_role_vars(connection, name), vmo_pack_palette_values=chart, vmo_pack_palette_clusters=[])
    playbook = tmp_path / "pack.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                     "roles": [{"role": "palette.vmo.vmo_pack", "vars": role_vars}]}]))
    try:
        run = ansible_playbook(str(playbook))
        assert run.rc == 0, run
        profiles = palette.api("GET", "/v1/dashboard/clusterprofiles/metadata").json()["items"]
        uid = next(p["metadata"]["uid"] for p in profiles if p["metadata"]["name"] == name)
        packs = palette.api("GET", "/v1/clusterprofiles/%s" % uid).json()["spec"]["published"]["packs"]
        values = yaml.safe_load(next(p["values"] for p in packs if p["name"] == "virtual-machine-orchestrator"))
        resource = values["charts"]["virtual-machine-orchestrator"]["kubevirt"]["kubevirtResource"]
        assert resource["useEmulation"] is True, resource
    finally:
        run_module("palette.vmo.vmo_profile", dict(connection, name=name, state="absent"))
