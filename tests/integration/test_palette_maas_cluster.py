"""palette_maas_cluster against the Palette simulator and the MAAS simulator it drives: a cluster made of MAAS
machines whose Nodes join the lab apiserver; converge, check and diff modes, scaling, MAAS's capacity checked by the
module, deletion (and a forced one), bad input, the kubeconfig, and the bounded wait."""

import json
import os
import stat
import uuid
from dataclasses import dataclass
from typing import List

import pytest

from tests.lab.kube import object_path

from .helpers import next_bmc

MODULE = "palette.vmo.palette_maas_cluster"
ACCOUNT = "lab-maas"
INFRA = {"name": "lab-maas-infra", "version": "1.0.0"}
DOMAIN = "maas"
FAST_MAAS_DURATIONS = {"commissioning": 0.5, "deploying": 0.5, "releasing": 0.3, "erasing": 0.3}
# MAAS machines the tests may check with the MAAS API (the collection's own client).
TEST_LABEL = "palette-vmo-test/cluster"


def unique():
    return uuid.uuid4().hex[:6]


@dataclass
class Site:
    """One test's MAAS machines, alone in a resource pool and zone of their own, and the cluster's name."""

    name: str
    pool: str
    zone: str
    hostnames: List[str]
    system_ids: List[str]
    maas: dict  # the MAAS connection options, for the module's capacity check

    def objects(self):
        return self.hostnames + self.system_ids


def maas_client(maas):
    from ansible_collections.palette.vmo.plugins.module_utils.maas.client import MaasClient

    return MaasClient(dict(maas.connection(), validate_certs=True))


def make_site(run_module, maas, machines=4):
    tag = unique()
    zone, pool = f"mcz-{tag}", f"mcp-{tag}"
    client = maas_client(maas)
    client.post("/zones/", name=zone)
    client.post("/resourcepools/", name=pool)
    items = [{"hostname": f"mc{tag}-{i}", "zone": zone, "pool": pool, "power_type": "ipmi",
              "power_parameters": {"power_address": next_bmc(), "power_user": "admin", "power_pass": "bmc-secret"}}
             for i in range(machines)]
    enrolled = run_module("palette.vmo.maas_machine", dict(maas.connection(), state="commissioned", machines=items,
                                                           poll_interval=0.2))
    assert enrolled.get("failed") is not True, enrolled.get("msg")
    return Site(f"mc-{tag}", pool, zone, [m["hostname"] for m in enrolled["machines"]],
                [m["system_id"] for m in enrolled["machines"]], maas.connection())


@pytest.fixture
def site(run_module, fast_maas, palette):
    """Four Ready MAAS machines of the test's own; whatever cluster the test made is deleted afterwards (before the
    MAAS simulator is reset)."""
    made = make_site(run_module, fast_maas)
    yield made
    fast_maas.durations(**FAST_MAAS_DURATIONS)
    gone = run_module(MODULE, dict(palette.connection(), name=made.name, state="absent", wait_timeout=600))
    assert gone.get("failed") is not True, gone.get("msg")


# The environment of a task without a MAAS connection (the lab's environment may carry one).
NO_MAAS_ENV = {"MAAS_URL": "", "MAAS_API_KEY": "", "MAAS_CA_CERT": ""}


def cluster_args(palette, site, workers=2, maas=True, **extra):
    """The task's options; with `maas`, the MAAS connection that lets the module check MAAS's capacity."""
    labels = {TEST_LABEL: site.name}
    args = dict(palette.connection(), **(site.maas if maas else {}))
    args.update(name=site.name, cloud_account=ACCOUNT, domain=DOMAIN, profiles=[INFRA],
                control_plane={"size": 1, "resource_pool": site.pool, "azs": [site.zone],
                               "additional_labels": labels},
                worker_pools=[{"name": "workers", "size": workers, "resource_pool": site.pool,
                               "additional_labels": labels}],
                wait_timeout=600)
    args.update(extra)
    return args


def nodes(admin, site):
    """{node name: (roles, Ready)} of the cluster's Nodes in the lab apiserver."""
    found = admin.get(object_path("v1", "nodes"), labelSelector=f"{TEST_LABEL}={site.name}")["items"]
    result = {}
    for node in found:
        labels = node["metadata"].get("labels") or {}
        roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in node["status"].get("conditions") or [])
        result[node["metadata"]["name"]] = (tuple(roles), ready)
    return result


def maas_status(maas, site):
    """{hostname: MAAS status name} of the site's machines."""
    machines = maas_client(maas).get("/machines/", hostname=site.hostnames)
    return {m["hostname"]: m["status_name"] for m in machines}


def found(palette, name):
    """The clusters of that name Palette's search finds in the project."""
    from ansible_collections.palette.vmo.plugins.module_utils.palette.client import cluster_search_filter

    answer = palette.api("POST", "/v1/dashboard/spectroclusters/search", json=cluster_search_filter(name))
    return [c for c in answer.json()["items"] if c["metadata"]["name"] == name]


def pool_of(result, name):
    return next(p for p in result["cluster"]["pools"] if p["name"] == name)


def read_only(palette, mark):
    """Every Palette request since `mark` was a read (a GET, or a read-only POST the log marks not mutating)."""
    requests = palette.requests_since(mark)
    return bool(requests) and all(not r["mutating"] for r in requests)


def test_create_to_running_with_nodes_then_nothing_to_do(run_module, palette, fast_maas, admin, site, tmp_path):
    dest = tmp_path / "cluster.kubeconfig"
    args = cluster_args(palette, site, kubeconfig_dest=str(dest))

    mark, maas_mark = palette.mark(), fast_maas.mark()
    planned = run_module(MODULE, args, check=True, diff=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["changed"] is True
    assert planned["actions"] == [f"create cluster {site.name} (pools: control-plane-pool 1, workers 2; profiles: "
                                  f"lab-maas-infra 1.0.0)", f"write kubeconfig {dest} (content)"]
    assert planned["diff"]["before"] == {} and [p["size"] for p in planned["diff"]["after"]["pools"]] == [1, 2]
    assert read_only(palette, mark) and fast_maas.writes_to(maas_mark, *site.objects()) == []
    assert not dest.exists()

    created = run_module(MODULE, args)
    assert created.get("failed") is not True, created.get("msg")
    assert created["changed"] is True and created["actions"] == planned["actions"]
    cluster = created["cluster"]
    assert (cluster["state"], cluster["health"]) == ("Running", "Healthy")
    assert cluster["profiles"][0]["name"] == "lab-maas-infra" and cluster["uid"] == created["uid"]
    machines = {p["name"]: p["machines"] for p in cluster["pools"]}
    assert [len(machines["control-plane-pool"]), len(machines["workers"])] == [1, 2]
    deployed = [m["hostname"] for pool in machines.values() for m in pool]
    assert all(m["state"] == "Running" and m["ready"] for pool in machines.values() for m in pool)
    assert sorted(deployed) == sorted(h for h, s in maas_status(fast_maas, site).items() if s == "Deployed")
    members = nodes(admin, site)
    assert sorted(members) == sorted(deployed)
    assert members[machines["control-plane-pool"][0]["hostname"]] == (("control-plane",), True)
    assert all(members[m["hostname"]] == (("worker",), True) for m in machines["workers"])

    # The kubeconfig: mode 0600, and it reaches the lab apiserver as the cluster's client identity.
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600 and created["kubeconfig_dest"] == str(dest)
    kubeconfig = dest.read_text()
    assert "client-key-data" in kubeconfig and "client-key-data" not in created["_stdout"]
    info = run_module("palette.vmo.kubevirt_vm_info", {"kubeconfig": str(dest), "namespace": "default"})
    assert info.get("failed") is not True, info.get("msg")
    admin_dest = tmp_path / "admin.kubeconfig"
    admin_kind = run_module(MODULE, dict(args, kubeconfig_kind="admin", kubeconfig_dest=str(admin_dest)))
    assert admin_kind["actions"] == [f"write kubeconfig {admin_dest} (content)"], admin_kind
    assert admin_dest.read_text() != kubeconfig and "client-key-data" not in admin_kind["_stdout"]

    mark, maas_mark = palette.mark(), fast_maas.mark()
    written = os.stat(dest).st_mtime_ns
    again = run_module(MODULE, args)
    assert again.get("failed") is not True, again.get("msg")
    assert again["changed"] is False and again["actions"] == [], again
    assert palette.writes_since(mark) == [] and fast_maas.writes_to(maas_mark, *site.objects()) == []
    assert os.stat(dest).st_mtime_ns == written
    assert again["cluster"]["state"] == "Running" and again["uid"] == created["uid"]

    checked = run_module(MODULE, args, check=True)
    assert checked["changed"] is False and checked["actions"] == [] and read_only(palette, mark)

    # The file is the task's: changed back when its content or its mode is not what Palette serves.
    os.chmod(dest, 0o644)
    mode_only = run_module(MODULE, args)
    assert mode_only["changed"] is True and mode_only["actions"] == [f"write kubeconfig {dest} (mode)"]
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o600 and palette.writes_since(mark) == []


def test_scale_the_worker_pool_up_and_down_by_one(run_module, palette, fast_maas, admin, site):
    created = run_module(MODULE, cluster_args(palette, site))
    assert created.get("failed") is not True, created.get("msg")
    before = {m["hostname"] for m in pool_of(created, "workers")["machines"]}

    mark, maas_mark = palette.mark(), fast_maas.mark()
    planned = run_module(MODULE, cluster_args(palette, site, workers=3), check=True, diff=True)
    assert planned["changed"] is True and planned["actions"] == ["scale pool workers from 2 to 3"], planned
    assert read_only(palette, mark) and fast_maas.writes_to(maas_mark, *site.objects()) == []

    up = run_module(MODULE, cluster_args(palette, site, workers=3), diff=True)
    assert up.get("failed") is not True, up.get("msg")
    assert up["changed"] is True and up["actions"] == ["scale pool workers from 2 to 3"]
    workers = pool_of(up, "workers")
    assert workers["size"] == 3 and len(workers["machines"]) == 3
    assert all(m["state"] == "Running" and m["ready"] for m in workers["machines"])
    after_up = {m["hostname"] for m in workers["machines"]}
    assert before < after_up
    added = (after_up - before).pop()
    assert maas_status(fast_maas, site)[added] == "Deployed"
    assert nodes(admin, site)[added] == (("worker",), True)
    sizes = {p["name"]: p["size"] for p in up["diff"]["before"]["pools"]}
    assert sizes == {"control-plane-pool": 1, "workers": 2}
    assert {p["name"]: p["size"] for p in up["diff"]["after"]["pools"]} == {"control-plane-pool": 1, "workers": 3}
    writes = [f"{r['method']} {r['path']}" for r in palette.writes_since(mark)]
    config_uid = up["cluster"]["cloud_config_uid"]
    assert writes == [f"PUT /v1/cloudconfigs/maas/{config_uid}/machinePools/workers"]

    down = run_module(MODULE, cluster_args(palette, site, workers=2))
    assert down.get("failed") is not True, down.get("msg")
    assert down["changed"] is True and down["actions"] == ["scale pool workers from 3 to 2"]
    remaining = {m["hostname"] for m in pool_of(down, "workers")["machines"]}
    assert len(remaining) == 2 and remaining < after_up
    released = (after_up - remaining).pop()
    assert maas_status(fast_maas, site)[released] == "Ready"
    assert released not in nodes(admin, site)
    assert sorted(nodes(admin, site)) == sorted(remaining | {m["hostname"] for m in
                                                             pool_of(down, "control-plane-pool")["machines"]})

    mark = palette.mark()
    settled = run_module(MODULE, cluster_args(palette, site, workers=2))
    assert settled["changed"] is False and palette.writes_since(mark) == []

    # Two more workers than the site has Ready machines left (one): Palette would accept the scale and stay
    # Provisioning, so the module reads MAAS's Ready machines itself and refuses before anything is written, naming
    # the cluster and the pool. The machines the pool holds count as its own; Palette's validate (documented for a
    # create) is not asked about an existing cluster.
    mark, maas_mark = palette.mark(), fast_maas.mark()
    short = run_module(MODULE, cluster_args(palette, site, workers=4))
    assert short.get("failed") is True and short.get("changed") is not True, short
    assert short["msg"].startswith(f"invalid input, nothing was changed: cluster {site.name}: pool workers needs 2 "
                                   f"more machines Ready in resource pool {site.pool}; MAAS has 1 ("), short["msg"]
    assert read_only(palette, mark) and palette.writes_since(mark) == []
    assert not any(r["path"].endswith("/validate") for r in palette.requests_since(mark))
    assert any(r["method"] == "GET" and r["path"].endswith("/api/2.0/machines/")
               for r in fast_maas.requests_since(maas_mark))
    assert fast_maas.writes_to(maas_mark, *site.objects()) == []
    config = palette.api("GET", f"/v1/cloudconfigs/maas/{config_uid}").json()["spec"]["machinePoolConfig"]
    assert {p["name"]: p["size"] for p in config} == {"control-plane-pool": 1, "workers": 2}


def test_absent_deletes_the_cluster_and_its_machines_are_released(run_module, palette, fast_maas, admin, site):
    created = run_module(MODULE, cluster_args(palette, site, workers=1))
    assert created.get("failed") is not True, created.get("msg")
    uid = created["uid"]
    absent = dict(palette.connection(), name=site.name, state="absent")

    mark, maas_mark = palette.mark(), fast_maas.mark()
    planned = run_module(MODULE, absent, check=True, diff=True)
    assert planned["changed"] is True and planned["actions"] == [f"delete cluster {site.name}"], planned
    assert planned["diff"]["after"] == {} and planned["diff"]["before"]["name"] == site.name
    assert read_only(palette, mark) and fast_maas.writes_to(maas_mark, *site.objects()) == []

    # force_delete: a plain DELETE first; the cluster is gone well before force_delete_after, so it is never forced.
    deleted = run_module(MODULE, dict(absent, force_delete=True))
    assert deleted.get("failed") is not True, deleted.get("msg")
    assert deleted["changed"] is True and deleted["cluster"]["state"] == "Deleted"
    assert deleted["actions"] == [f"delete cluster {site.name} (forced if still Deleting after 1200s)"]
    assert palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404
    assert nodes(admin, site) == {}
    writes = [(r["method"], r["path"], r["query"]) for r in palette.writes_since(mark)]
    assert writes == [("DELETE", f"/v1/spectroclusters/{uid}", "forceDelete=false")]
    # Gone in Palette does not mean Ready in MAAS: the machines are released (and may still be erasing).
    assert set(maas_status(fast_maas, site).values()) <= {"Releasing", "Disk erasing", "Ready"}

    mark = palette.mark()
    gone = run_module(MODULE, absent)
    assert gone["changed"] is False and gone["actions"] == [] and palette.writes_since(mark) == []


def test_bad_input_is_refused_before_anything_is_written(run_module, palette, fast_maas, site):
    addon = palette.seed(1, prefix=f"addon-{unique()}")[0]
    addon_name = palette.api("GET", f"/v1/clusterprofiles/{addon}").json()["metadata"]["name"]
    workers = cluster_args(palette, site)["worker_pools"][0]
    cases = [
        # More workers than MAAS has Ready machines (the control plane takes one of the four first).
        (dict(worker_pools=[dict(workers, size=9)]),
         f"pool workers needs 9 more machines Ready in resource pool {site.pool}; MAAS has 3 ("),
        (dict(profiles=[INFRA, {"name": "no-such-profile"}]),
         "profiles[1] (no-such-profile): name: no cluster profile named 'no-such-profile' in project lab"),
        (dict(profiles=[dict(INFRA, version="9.9.9")]),
         "profiles[0] (lab-maas-infra): version: profile lab-maas-infra has no version 9.9.9"),
        (dict(profiles=[{"name": addon_name}]), "profiles: none of %s 1.0.0 is an infra or cluster profile" % addon_name),
        (dict(cloud_account="no-such-account"), "cloud_account: MAAS cloud account 'no-such-account' does not exist"),
        (dict(worker_pools=[dict(workers, resource_pool="no-such-pool")]),
         "worker_pools[0] (workers): resource_pool: 'no-such-pool' is not a resource pool of MAAS account lab-maas"),
        (dict(worker_pools=[dict(workers, azs=["no-such-zone"])]),
         "worker_pools[0] (workers): azs: 'no-such-zone' is not a zone of MAAS account lab-maas"),
        (dict(worker_pools=[dict(workers, node_tags=["no-such-tag"])]),
         "worker_pools[0] (workers): node_tags: 'no-such-tag' is not a tag of MAAS account lab-maas"),
        (dict(domain="no-such-domain"), "domain: 'no-such-domain' is not a domain of MAAS account lab-maas"),
        (dict(worker_pools=[dict(workers, size=-1)]), "worker_pools[0] (workers): size: -1 is out of range"),
    ]
    for extra, expected in cases:
        mark, maas_mark = palette.mark(), fast_maas.mark()
        refused = run_module(MODULE, cluster_args(palette, site, **extra))
        assert refused.get("failed") is True, (extra, refused)
        assert refused["msg"].startswith(f"invalid input, nothing was changed: cluster {site.name}: "), refused["msg"]
        assert expected in refused["msg"], (expected, refused["msg"])
        assert refused.get("changed") is not True
        assert palette.writes_since(mark) == [], extra
        assert fast_maas.writes_to(maas_mark, *site.objects()) == [], extra
    assert found(palette, site.name) == []


def test_kubeconfig_is_returned_only_from_a_no_log_task(run_module, ansible_playbook, palette, site, tmp_path):
    mark = palette.mark()
    refused = run_module(MODULE, cluster_args(palette, site, return_kubeconfig=True))
    assert refused.get("failed") is True and "return_kubeconfig: " in refused["msg"]
    assert "set no_log: true on the task" in refused["msg"]
    assert palette.requests_since(mark) == []

    created = run_module(MODULE, cluster_args(palette, site, workers=1, kubeconfig_dest=str(tmp_path / "k")))
    assert created.get("failed") is not True, created.get("msg")
    key = next(line.split(":", 1)[1].strip() for line in (tmp_path / "k").read_text().splitlines()
               if "client-key-data" in line)
    args = cluster_args(palette, site, workers=1, return_kubeconfig=True)
    playbook = tmp_path / "kubeconfig.yml"
    playbook.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "kubeconfig", MODULE: args, "no_log": True, "register": "cluster"},
        {"name": "returned", "ansible.builtin.copy": {"content": "{{ cluster.kubeconfig }}",
                                                      "dest": str(tmp_path / "returned"), "mode": "0600"},
         "no_log": True}]}]))
    run = ansible_playbook(str(playbook), "-vvv")
    assert run.rc == 0 and run.recap["localhost"]["failed"] == 0, run
    assert (tmp_path / "returned").read_text() == (tmp_path / "k").read_text()
    assert key and key not in run.stdout and key not in run.stderr


SLOW_MAAS = dict(FAST_MAAS_DURATIONS, deploying=120)


def test_the_wait_is_bounded_and_names_what_is_pending(run_module, palette, fast_maas, site):
    fast_maas.durations(**SLOW_MAAS)
    timed_out = run_module(MODULE, cluster_args(palette, site, wait_timeout=3))
    assert timed_out.get("failed") is True, timed_out
    message = timed_out["msg"]
    assert message.startswith(f"cluster {site.name}: timed out after 3s waiting for it to be Running and Healthy")
    assert "last seen: state " in message
    # The overview's counts decide; the machines list names the machines still on their way.
    assert "pool workers: 0 of 2 machines healthy, waiting for " in message
    assert "pool control-plane-pool: 0 of 1 machines healthy, waiting for " in message
    assert "; Palette's conditions: " in message  # the cluster's conditions that are not True yet
    # The cluster was made: the task says so, and lists its machines as Palette had them.
    assert timed_out["changed"] is True and timed_out["actions"][0].startswith(f"create cluster {site.name}")
    pending = [m for p in timed_out["cluster"]["pools"] for m in p["machines"]]
    assert all(not m["ready"] for m in pending)
    assert any(m["hostname"] and m["hostname"] in message for m in pending) or "not allocated yet" in message


def test_deletion_is_bounded_and_force_delete_forces_only_a_cluster_still_deleting(run_module, palette, fast_maas,
                                                                                   admin, site):
    created = run_module(MODULE, cluster_args(palette, site, workers=1))
    assert created.get("failed") is not True, created.get("msg")
    uid = created["uid"]
    worker = pool_of(created, "workers")["machines"][0]["hostname"]
    system_id = site.system_ids[site.hostnames.index(worker)]
    client = maas_client(fast_maas)
    # A locked machine: MAAS refuses its release, so Palette keeps the cluster Deleting.
    client.post(f"/machines/{system_id}/", op="lock")
    absent = dict(palette.connection(), name=site.name, state="absent")
    try:
        with palette.faulted(force_delete_after_seconds=3):
            mark = palette.mark()
            stuck = run_module(MODULE, dict(absent, wait_timeout=1))
            assert stuck.get("failed") is True and stuck["changed"] is True, stuck
            assert stuck["msg"].startswith(f"cluster {site.name}: timed out after 1s waiting for Palette to delete "
                                           "it; last seen: state Deleting; machines still held: "), stuck["msg"]
            assert f"pool workers: {worker} (" in stuck["msg"]

            # Still Deleting 4 s later (Palette accepts a force delete after 3 s of Deleting): forced, then gone.
            forced = run_module(MODULE, dict(absent, force_delete=True, force_delete_after=4, wait_timeout=120))
            assert forced.get("failed") is not True, forced.get("msg")
            assert forced["changed"] is True and forced["cluster"]["state"] == "Deleted"
            assert forced["actions"] == [f"force delete cluster {site.name} (still Deleting after 4s)"]
            writes = [(r["method"], r["path"], r["query"]) for r in palette.writes_since(mark)]
            assert writes == [("DELETE", f"/v1/spectroclusters/{uid}", "forceDelete=false"),
                              ("DELETE", f"/v1/spectroclusters/{uid}", "forceDelete=true")]
            assert palette.api("GET", f"/v1/spectroclusters/{uid}").status_code == 404
    finally:
        client.post(f"/machines/{system_id}/", op="unlock")


def test_profiles_attached_replaced_and_their_values_updated(run_module, palette, site):
    prefix = f"mcaddon-{unique()}"
    first, = palette.seed(1, prefix=prefix, version="1.0.0")
    second, = palette.seed(1, prefix=prefix, version="1.1.0")
    addon = f"{prefix}-0000"
    with_addon = [INFRA, {"name": addon, "version": "1.0.0", "pack_values": [{"name": "seed", "values": {"a": 1}}]}]

    created = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=with_addon))
    assert created.get("failed") is not True, created.get("msg")
    uid = created["uid"]
    assert [(p["name"], p["version"], p["uid"]) for p in created["cluster"]["profiles"]][1] == (addon, "1.0.0", first)

    def attached():
        profiles = palette.api("GET", f"/v1/spectroclusters/{uid}/profiles").json()["profiles"]
        return sorted(p["metadata"]["uid"] for p in profiles)

    assert first in attached()
    mark = palette.mark()
    again = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=with_addon))
    assert again["changed"] is False and palette.writes_since(mark) == [], again

    values = [INFRA, dict(with_addon[1], pack_values=[{"name": "seed", "values": "a: 2\n"}])]
    updated = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=values))
    assert updated.get("failed") is not True, updated.get("msg")
    assert updated["actions"] == [f"update pack values of profile {addon} 1.0.0 (seed)"]
    template = next(t for t in palette.api("GET", f"/v1/spectroclusters/{uid}").json()["spec"][
        "clusterProfileTemplates"] if t["uid"] == first)
    assert next(p for p in template["packs"] if p["name"] == "seed")["values"].strip() == "a: 2"

    newer = [INFRA, {"name": addon, "version": "1.1.0"}]
    mark = palette.mark()
    planned = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=newer), check=True)
    assert planned["actions"] == [f"replace profile {addon} 1.0.0 with {addon} 1.1.0"] and read_only(palette, mark)
    replaced = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=newer))
    assert replaced.get("failed") is not True, replaced.get("msg")
    assert replaced["actions"] == planned["actions"]
    assert second in attached() and first not in attached()
    writes = [(r["method"], r["path"]) for r in palette.writes_since(mark)]
    assert writes == [("PATCH", f"/v1/spectroclusters/{uid}/profiles")]
    mark = palette.mark()
    settled = run_module(MODULE, cluster_args(palette, site, workers=1, profiles=newer))
    assert settled["changed"] is False and palette.writes_since(mark) == []


def test_domain_ssh_keys_and_ntp_servers_are_updated_in_place(run_module, palette, fast_maas, admin, site):
    # A second MAAS domain: the lab MAAS knows the domains its machines name.
    domain = f"{site.name}.lab"
    maas_client(fast_maas).put("/machines/%s/" % site.system_ids[-1], domain=domain)
    keys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOne one@lab", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAITwo two@lab"]
    created = run_module(MODULE, cluster_args(palette, site, workers=1, ssh_keys=keys, ntp_servers=["ntp0.lab"]))
    assert created.get("failed") is not True, created.get("msg")
    config_uid = created["cluster"]["cloud_config_uid"]
    deployed = sorted(m["hostname"] for p in created["cluster"]["pools"] for m in p["machines"])

    def cluster_config():
        return palette.api("GET", f"/v1/cloudconfigs/maas/{config_uid}").json()["spec"]["clusterConfig"]
    assert cluster_config() == {"domain": DOMAIN, "sshKeys": keys, "ntpServers": ["ntp0.lab"], "enableLxdVm": False,
                                "staticIp": False}

    # The same keys in another order, one listed twice: the same set, nothing to write.
    mark = palette.mark()
    same = run_module(MODULE, cluster_args(palette, site, workers=1, ssh_keys=[keys[1], keys[0], keys[1]],
                                           ntp_servers=["ntp0.lab"]))
    assert same.get("failed") is not True, same.get("msg")
    assert same["changed"] is False and same["actions"] == [] and palette.writes_since(mark) == []

    new_keys = [keys[1], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIThree three@lab"]
    wanted = cluster_args(palette, site, workers=1, domain=domain, ssh_keys=new_keys,
                          ntp_servers=["ntp1.lab", "ntp0.lab"])
    action = "update cluster config (domain, ssh_keys, ntp_servers)"

    # Check mode: the exact plan and diff, from reads only; nothing written to Palette or MAAS.
    mark, maas_mark = palette.mark(), fast_maas.mark()
    planned = run_module(MODULE, wanted, check=True, diff=True)
    assert planned.get("failed") is not True, planned.get("msg")
    assert planned["changed"] is True and planned["actions"] == [action], planned
    before, after = planned["diff"]["before"], planned["diff"]["after"]
    assert (before["domain"], before["ssh_keys"], before["ntp_servers"]) == (DOMAIN, sorted(keys), ["ntp0.lab"])
    assert (after["domain"], after["ssh_keys"], after["ntp_servers"]) == (
        domain, sorted(new_keys), ["ntp1.lab", "ntp0.lab"])
    assert before["pools"] == after["pools"] and before["profiles"] == after["profiles"]
    assert read_only(palette, mark) and palette.writes_since(mark) == []
    assert fast_maas.writes_to(maas_mark, *site.objects()) == []
    assert cluster_config()["domain"] == DOMAIN

    # The update: one PUT of the whole cluster config; the cluster stays Running and Healthy on the same machines,
    # which MAAS is not asked to touch (they keep what they were deployed with).
    mark, maas_mark = palette.mark(), fast_maas.mark()
    updated = run_module(MODULE, wanted, diff=True)
    assert updated.get("failed") is not True, updated.get("msg")
    assert updated["changed"] is True and updated["actions"] == [action]
    assert updated["diff"] == planned["diff"]
    writes = [(r["method"], r["path"], r["status"]) for r in palette.writes_since(mark)]
    assert writes == [("PUT", f"/v1/cloudconfigs/maas/{config_uid}/clusterConfig", 204)]
    assert cluster_config() == {"domain": domain, "sshKeys": new_keys, "ntpServers": ["ntp1.lab", "ntp0.lab"],
                                "enableLxdVm": False, "staticIp": False}
    assert (updated["cluster"]["state"], updated["cluster"]["health"]) == ("Running", "Healthy")
    assert sorted(m["hostname"] for p in updated["cluster"]["pools"] for m in p["machines"]) == deployed
    assert fast_maas.writes_to(maas_mark, *site.objects()) == []
    assert sorted(nodes(admin, site)) == deployed and all(ready for _roles, ready in nodes(admin, site).values())

    # A second run, and its check, write nothing.
    mark = palette.mark()
    again = run_module(MODULE, wanted)
    assert again["changed"] is False and again["actions"] == [] and palette.writes_since(mark) == [], again
    checked = run_module(MODULE, wanted, check=True, diff=True)
    assert checked["changed"] is False and checked["actions"] == [] and read_only(palette, mark)

    # Only the domain declared (keys and servers left out): they are sent back as the cluster has them. The config
    # is written before the pool grows, so the machine the scale-up deploys gets the cluster's new config.
    mark = palette.mark()
    moved = run_module(MODULE, cluster_args(palette, site, workers=2))
    assert moved.get("failed") is not True, moved.get("msg")
    assert moved["actions"] == ["update cluster config (domain)", "scale pool workers from 1 to 2"]
    writes = [(r["method"], r["path"]) for r in palette.writes_since(mark)]
    assert writes == [("PUT", f"/v1/cloudconfigs/maas/{config_uid}/clusterConfig"),
                      ("PUT", f"/v1/cloudconfigs/maas/{config_uid}/machinePools/workers")]
    assert cluster_config() == {"domain": DOMAIN, "sshKeys": new_keys, "ntpServers": ["ntp1.lab", "ntp0.lab"],
                                "enableLxdVm": False, "staticIp": False}
    assert len(pool_of(moved, "workers")["machines"]) == 2


def test_without_a_maas_connection_the_task_warns_that_capacity_was_not_checked(run_module, palette, site):
    # No MAAS connection in the options or the environment: Palette is not asked about capacity either (it does not
    # check it), so the module says once that nobody checked, and creates the cluster.
    args = cluster_args(palette, site, workers=1, maas=False)
    created = run_module(MODULE, args, env_extra=NO_MAAS_ENV)
    assert created.get("failed") is not True, created.get("msg")
    assert created["changed"] is True and created["actions"][0].startswith(f"create cluster {site.name}")
    assert (created["cluster"]["state"], created["cluster"]["health"]) == ("Running", "Healthy")
    unchecked = [w for w in created.get("warnings") or [] if "was not checked" in w]
    assert unchecked == [f"cluster {site.name}: whether MAAS has enough Ready machines for pools control-plane-pool, "
                         "workers was not checked (Palette does not check it); give maas_url and maas_api_key (or "
                         "MAAS_URL and MAAS_API_KEY) to have it checked before anything is written"], created

    # Nothing to grow, nothing to check: no warning.
    again = run_module(MODULE, args, env_extra=NO_MAAS_ENV)
    assert again["changed"] is False and not any("was not checked" in w for w in again.get("warnings") or [])
