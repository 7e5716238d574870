"""palette_maas_cluster's input checks, request bodies and plan: what is compared, what is written, in what order."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_plan import (
    ClusterInputError, Current, Desired, attached_match, capacity_needs, check_input, plan_cluster,
    profile_candidates, profile_type_errors, tag_warnings, validation_errors)
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_spec import (
    CONTROL_PLANE_POOL, current_pool, pool_entity, profile_entity)

INFRA = {"name": "lab-maas-infra", "version": "1.0.0", "uid": "infra-1", "type": "infra", "cloud_type": "maas",
         "packs": {"kubernetes": {"tag": "1.32.2", "type": "spectro"}}, "pack_values": [], "variables": {}}
VMO = {"name": "vmo", "version": "1.0.0", "uid": "vmo-1", "type": "add-on", "cloud_type": "all",
       "packs": {"virtual-machine-orchestrator": {"tag": "4.9.9", "type": "spectro"}}, "pack_values": [],
       "variables": {}}


def params(**extra):
    base = {"name": "vmo-lab", "state": "present", "cloud_account": "lab-maas", "domain": "maas",
            "profiles": [{"name": "lab-maas-infra", "version": "1.0.0"}],
            "control_plane": {"size": 1, "resource_pool": "default", "azs": None, "node_tags": None, "min_cpu": None,
                              "min_memory_mb": None, "as_worker": False, "additional_labels": None},
            "worker_pools": [{"name": "workers", "size": 2, "resource_pool": "default"}],
            "ssh_keys": None, "ntp_servers": None, "wait": True, "wait_timeout": 3600, "force_delete": False,
            "kubeconfig_kind": "client", "kubeconfig_dest": None, "return_kubeconfig": False}
    base.update(extra)
    return base


def desired(profiles=(INFRA,), **extra):
    request = check_input(params(**extra), no_log=False)
    return Desired(request, "account-1", [dict(p) for p in profiles])


def palette_pool(name, size, control_plane=False, **extra):
    pool = {"name": name, "size": size, "isControlPlane": control_plane, "resourcePool": "default",
            "labels": ["control-plane" if control_plane else "worker"], "azs": [], "tags": [],
            "instanceType": {"minCPU": 0, "minMemInMB": 0}, "additionalLabels": {}, "taints": [],
            "useControlPlaneAsWorker": False}
    pool.update(extra)
    return pool


def current(pools, templates=({"uid": "infra-1", "name": "lab-maas-infra", "type": "infra",
                               "profileVersion": "1.0.0", "packs": []},), config=None):
    cluster = {"metadata": {"uid": "c1"}, "spec": {"cloudType": "maas", "cloudConfigRef": {"uid": "cfg1"},
                                                   "clusterProfileTemplates": list(templates)},
               "status": {"state": "Running"}}
    return Current(cluster, {"spec": {"clusterConfig": config or {"domain": "maas"}, "machinePoolConfig": pools}})


EXISTING = [palette_pool(CONTROL_PLANE_POOL, 1, True), palette_pool("workers", 2)]


# -- input -------------------------------------------------------------------------------------------------

def test_every_input_problem_at_once_naming_the_item_and_field():
    with pytest.raises(ClusterInputError) as caught:
        check_input(params(
            profiles=[{"name": "a"}, {"name": "a", "version": "one"},
                      {"name": "b", "pack_values": [{"name": "p", "values": "[1, 2]"}]}],
            worker_pools=[{"name": "Workers", "size": -1, "resource_pool": "default"},
                          {"name": "gpu", "size": 1, "resource_pool": "default", "min_cpu": -2},
                          {"name": "gpu", "size": 1, "resource_pool": "default"},
                          {"name": CONTROL_PLANE_POOL, "size": 1, "resource_pool": "default"}],
            control_plane=dict(params()["control_plane"], size=0)), no_log=False)
    errors = caught.value.errors
    assert str(caught.value).startswith("invalid input, nothing was changed: cluster vmo-lab: ")
    assert "profiles[1] (a): name: listed twice" in errors
    assert any(e.startswith("profiles[1] (a): version: 'one' is not a profile version") for e in errors)
    assert "profiles[2] (b): pack_values[0] (p): values: must be a YAML mapping, not list" in errors
    assert any(e.startswith("worker_pools[0] (Workers): name: 'Workers' is not a pool name") for e in errors)
    assert "worker_pools[0] (Workers): size: -1 is out of range, give 0 or more" in errors
    assert "worker_pools[1] (gpu): min_cpu: -2 is out of range, give 0 or more" in errors
    assert "worker_pools[2] (gpu): name: listed twice" in errors
    assert "worker_pools[3] (%s): name: %r is the control plane's pool" % (CONTROL_PLANE_POOL,
                                                                           CONTROL_PLANE_POOL) in errors
    assert "control_plane: size: 0 is out of range, give 1 or more" in errors


def test_items_go_through_ansible_validation():
    with pytest.raises(ClusterInputError) as caught:
        check_input(params(worker_pools=[{"name": "w", "size": "two", "resource_pool": "default"},
                                         {"name": "x", "size": 1, "resource_pool": "default",
                                          "taints": [{"key": "k", "effect": "Sometimes"}]},
                                         {"name": "y", "size": 1}]), no_log=False)
    text = " | ".join(caught.value.errors)
    assert "worker_pools[0] (w):" in text and "size" in text
    assert "worker_pools[1] (x):" in text and "Sometimes" in text
    assert "worker_pools[2] (y): missing required arguments: resource_pool" in text


def test_return_kubeconfig_needs_no_log(tmp_path):
    with pytest.raises(ClusterInputError, match="return_kubeconfig: .*set no_log: true"):
        check_input(params(return_kubeconfig=True), no_log=False)
    assert check_input(params(return_kubeconfig=True), no_log=True).name == "vmo-lab"
    with pytest.raises(ClusterInputError, match="kubeconfig_dest: directory .*/missing does not exist"):
        check_input(params(kubeconfig_dest=str(tmp_path / "missing" / "kubeconfig")), no_log=False)
    with pytest.raises(ClusterInputError, match="kubeconfig_dest: .* is a directory"):
        check_input(params(kubeconfig_dest=str(tmp_path)), no_log=False)


def test_absent_refuses_kubeconfig_options_only():
    check_input(params(state="absent", profiles=None, worker_pools=[{"bad": 1}]), no_log=False)
    with pytest.raises(ClusterInputError, match="kubeconfig_dest: only applies with state=present"):
        check_input(params(state="absent", kubeconfig_dest="/tmp/k"), no_log=False)


def test_pack_values_text_or_mapping():
    request = check_input(params(profiles=[{"name": "vmo", "pack_values": [
        {"name": "a", "values": "x: 1\n"}, {"name": "b", "values": {"y": {"z": [1]}}}]}]), no_log=False)
    values = request.profiles[0]["pack_values"]
    assert values[0] == {"name": "a", "text": "x: 1\n", "parsed": {"x": 1}}
    assert values[1]["parsed"] == {"y": {"z": [1]}} and values[1]["text"] == "y:\n  z:\n  - 1\n"


# -- profiles ----------------------------------------------------------------------------------------------

def test_profile_candidates_newest_first_and_the_projects_own_first():
    items = [{"metadata": {"name": "vmo", "uid": "t2", "annotations": {"scope": "tenant"}}, "spec": {"version": "1.2.0"}},
             {"metadata": {"name": "vmo", "uid": "p2", "annotations": {"scope": "project"}}, "spec": {"version": "1.2.0"}},
             {"metadata": {"name": "vmo", "uid": "p10", "annotations": {"scope": "project"}},
              "spec": {"version": "1.10.0"}},
             {"metadata": {"name": "vmo-x", "uid": "x"}, "spec": {"version": "9.0.0"}}]
    assert profile_candidates(items, "vmo", None) == ["p10", "p2", "t2"]
    assert profile_candidates(items, "vmo", "1.2.0") == ["p2", "t2"]
    assert profile_candidates(items, "vmo", "2.0.0") == []


def test_exactly_one_infra_profile_and_known_packs():
    assert profile_type_errors([INFRA, VMO]) == []
    assert profile_type_errors([VMO])[0].startswith("profiles: none of vmo 1.0.0 is an infra or cluster profile")
    two = dict(INFRA, name="other", uid="infra-2", type="cluster")
    assert "are all infra or cluster profiles" in profile_type_errors([INFRA, two])[0]
    aws = dict(VMO, cloud_type="aws", pack_values=[{"name": "nope", "text": "", "parsed": {}}])
    errors = profile_type_errors([INFRA, aws])
    assert "profiles[1] (vmo): profile vmo 1.0.0 is for cloud 'aws', not maas" in errors
    assert "profiles[1] (vmo): pack_values[0] (nope): profile vmo 1.0.0 has no pack 'nope' " \
           "(packs: virtual-machine-orchestrator)" in errors


def test_profile_entity_carries_pack_tag_type_and_variables():
    profile = dict(INFRA, pack_values=[{"name": "kubernetes", "text": "a: 1\n", "parsed": {"a": 1}}],
                   variables={"b": True, "a": 3})
    assert profile_entity(profile, replaces="old") == {
        "uid": "infra-1", "replaceWithProfile": "old",
        "packValues": [{"name": "kubernetes", "values": "a: 1\n", "tag": "1.32.2", "type": "spectro"}],
        "variables": [{"name": "a", "value": "3"}, {"name": "b", "value": "true"}]}


def test_attached_match_infra_by_type_add_on_by_name():
    templates = [{"uid": "infra-0", "name": "old-infra", "type": "cluster"}, {"uid": "vmo-0", "name": "vmo", "type": "add-on"}]
    assert attached_match(INFRA, templates)["uid"] == "infra-0"
    assert attached_match(VMO, templates)["uid"] == "vmo-0"
    assert attached_match(dict(VMO, name="other"), templates) is None


# -- plan ----------------------------------------------------------------------------------------------------

def test_create_body_follows_the_provider_mapping():
    plan = plan_cluster(desired((INFRA, VMO), ssh_keys=["ssh-ed25519 AAA"], ntp_servers=["ntp.lab"],
                                worker_pools=[{"name": "workers", "size": 2, "resource_pool": "vm", "azs": ["z1"],
                                               "node_tags": ["vmo"], "min_cpu": 4, "min_memory_mb": 8192,
                                               "additional_labels": {"pool": "w"},
                                               "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}]),
                        None)
    assert [s["kind"] for s in plan.steps] == ["create"]
    assert plan.actions == ["create cluster vmo-lab (pools: control-plane-pool 1, workers 2; profiles: "
                            "lab-maas-infra 1.0.0, vmo 1.0.0)"]
    body = plan.steps[0]["body"]
    assert body["metadata"] == {"name": "vmo-lab"}
    assert body["spec"]["cloudAccountUid"] == "account-1"
    assert body["spec"]["cloudConfig"] == {"domain": "maas", "sshKeys": ["ssh-ed25519 AAA"], "ntpServers": ["ntp.lab"]}
    assert body["spec"]["profiles"] == [{"uid": "infra-1"}, {"uid": "vmo-1"}]
    cp, workers = body["spec"]["machinepoolconfig"]
    assert cp["poolConfig"]["labels"] == ["control-plane"] and cp["poolConfig"]["isControlPlane"] is True
    assert workers == {
        "cloudConfig": {"resourcePool": "vm", "azs": ["z1"], "tags": ["vmo"],
                        "instanceType": {"minCPU": 4, "minMemInMB": 8192}},
        "poolConfig": {"name": "workers", "size": 2, "minSize": 2, "maxSize": 2, "labels": ["worker"],
                       "isControlPlane": False, "useControlPlaneAsWorker": False, "additionalLabels": {"pool": "w"},
                       "taints": [{"key": "k", "value": "v", "effect": "NoSchedule"}]}}
    assert plan.grown == [CONTROL_PLANE_POOL, "workers"] and plan.before == {}
    assert plan.after["pools"][1]["size"] == 2 and plan.after["profiles"] == ["lab-maas-infra 1.0.0", "vmo 1.0.0"]


def test_create_needs_a_control_plane():
    with pytest.raises(ClusterInputError, match="control_plane: required to create the cluster"):
        plan_cluster(desired(control_plane=None), None)


def test_second_run_plans_nothing():
    plan = plan_cluster(desired(), current(EXISTING))
    assert plan.actions == [] and plan.steps == [] and plan.grown == []
    assert plan.before == plan.after


def test_only_declared_fields_are_compared():
    pools = [palette_pool(CONTROL_PLANE_POOL, 1, True),
             palette_pool("workers", 2, azs=["z1", "z2"], tags=["vmo"], instanceType={"minCPU": 8, "minMemInMB": 1})]
    assert plan_cluster(desired(), current(pools)).actions == []
    same_sets = desired(worker_pools=[{"name": "workers", "size": 2, "resource_pool": "default",
                                       "azs": ["z2", "z1", "z1"]}])
    assert plan_cluster(same_sets, current(pools)).actions == []


def test_scale_up_and_down_in_place():
    up = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 3, "resource_pool": "default"}]),
                      current(EXISTING))
    assert up.actions == ["scale pool workers from 2 to 3"] and up.grown == ["workers"]
    step = up.steps[0]
    assert step["kind"] == "pool_update" and step["name"] == "workers"
    assert step["body"]["poolConfig"]["size"] == 3 and step["body"]["poolConfig"]["maxSize"] == 3
    down = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 1, "resource_pool": "default"}]),
                        current(EXISTING))
    assert down.actions == ["scale pool workers from 2 to 1"] and down.grown == []
    assert [p["size"] for p in down.pools_after] == [1, 1]
    assert down.before["pools"][1]["size"] == 2 and down.after["pools"][1]["size"] == 1


def test_an_update_keeps_what_the_task_does_not_declare():
    pools = [palette_pool(CONTROL_PLANE_POOL, 1, True),
             palette_pool("workers", 2, tags=["vmo"], additionalLabels={"pool": "w"})]
    plan = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 2, "resource_pool": "default",
                                               "min_cpu": 4}]), current(pools))
    assert plan.actions == ["update pool workers (min_cpu)"] and plan.grown == ["workers"]
    body = plan.steps[0]["body"]
    assert body["cloudConfig"]["tags"] == ["vmo"] and body["poolConfig"]["additionalLabels"] == {"pool": "w"}
    assert body["cloudConfig"]["instanceType"] == {"minCPU": 4, "minMemInMB": 0}


def test_pools_added_first_and_removed_last():
    pools = EXISTING + [palette_pool("old", 1)]
    plan = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 3, "resource_pool": "default"},
                                              {"name": "gpu", "size": 1, "resource_pool": "gpu"}]), current(pools))
    assert plan.actions == ["add pool gpu (size 1)", "scale pool workers from 2 to 3", "remove pool old (size 1)"]
    assert [s["kind"] for s in plan.steps] == ["pool_add", "pool_update", "pool_remove"]
    assert [p["name"] for p in plan.pools_after] == [CONTROL_PLANE_POOL, "workers", "gpu"]
    assert plan.grown == ["gpu", "workers"]


def test_worker_pools_omitted_leaves_the_workers_alone():
    pools = EXISTING + [palette_pool("old", 1)]
    plan = plan_cluster(desired(worker_pools=None), current(pools))
    assert plan.actions == [] and [p["name"] for p in plan.pools_after] == [CONTROL_PLANE_POOL, "workers", "old"]


def test_control_plane_found_whatever_its_name():
    pools = [palette_pool("master-pool", 1, True), palette_pool("workers", 2)]
    plan = plan_cluster(desired(control_plane=dict(params()["control_plane"], size=3)), current(pools))
    assert plan.actions == ["scale pool master-pool from 1 to 3"] and plan.steps[0]["name"] == "master-pool"
    with pytest.raises(ClusterInputError, match=r"worker_pools\[0\] \(master-pool\): name: it is the cluster's "
                                                r"control-plane pool"):
        plan_cluster(desired(worker_pools=[{"name": "master-pool", "size": 1, "resource_pool": "default"}]), current(pools))


def test_profiles_attached_replaced_and_values_updated():
    templates = [{"uid": "infra-0", "name": "lab-maas-infra", "type": "infra", "profileVersion": "0.9.0", "packs": []},
                 {"uid": "vmo-0", "name": "vmo", "type": "add-on", "profileVersion": "0.1.0", "packs": []}]
    extra = dict(VMO, name="extra", uid="extra-1")
    plan = plan_cluster(desired((INFRA, VMO, extra)), current(EXISTING, templates))
    assert plan.actions == ["replace profile lab-maas-infra 0.9.0 with lab-maas-infra 1.0.0",
                            "replace profile vmo 0.1.0 with vmo 1.0.0", "attach profile extra 1.0.0"]
    assert [s["entries"] for s in plan.steps] == [[{"uid": "infra-1", "replaceWithProfile": "infra-0"}],
                                                  [{"uid": "vmo-1", "replaceWithProfile": "vmo-0"}],
                                                  [{"uid": "extra-1"}]]
    assert [s["resolve"] for s in plan.steps] == [True, True, False]
    assert plan.before["profiles"] == ["lab-maas-infra 0.9.0", "vmo 0.1.0"]
    assert plan.grown == []

    attached = [{"uid": "infra-1", "name": "lab-maas-infra", "type": "infra", "profileVersion": "1.0.0",
                 "packs": [{"name": "kubernetes", "values": "# comment\na: 1\n"}]}]
    same = dict(INFRA, pack_values=[{"name": "kubernetes", "text": "a: 1", "parsed": {"a": 1}}])
    assert plan_cluster(desired((same,)), current(EXISTING, attached)).actions == []
    other = dict(INFRA, pack_values=[{"name": "kubernetes", "text": "a: 2", "parsed": {"a": 2}}])
    plan = plan_cluster(desired((other,)), current(EXISTING, attached))
    assert plan.actions == ["update pack values of profile lab-maas-infra 1.0.0 (kubernetes)"]
    assert plan.steps[0]["entries"][0]["packValues"][0]["values"] == "a: 2"


def test_cluster_config_compared_as_declared_keys_as_a_set_servers_in_order():
    config = {"domain": "maas", "sshKeys": ["b", "a"], "ntpServers": ["n1", "n2"], "enableLxdVm": False}
    same = plan_cluster(desired(ssh_keys=["a", "b", "a"], ntp_servers=["n1", "n2"]), current(EXISTING, config=config))
    assert same.actions == [] and same.steps == []
    assert same.before["ssh_keys"] == same.after["ssh_keys"] == ["a", "b"]
    # Left out: not compared (a task without ssh_keys or ntp_servers keeps the cluster's).
    assert plan_cluster(desired(), current(EXISTING, config=config)).actions == []
    # The NTP servers in another order are another config: the machines try them in that order.
    reordered = plan_cluster(desired(ntp_servers=["n2", "n1"]), current(EXISTING, config=config))
    assert reordered.actions == ["update cluster config (ntp_servers)"]
    assert (reordered.before["ntp_servers"], reordered.after["ntp_servers"]) == (["n1", "n2"], ["n2", "n1"])


def test_cluster_config_updated_in_place_with_the_whole_config():
    config = {"domain": "maas", "sshKeys": ["b", "a"], "ntpServers": ["n1"], "enableLxdVm": True, "staticIp": False}
    plan = plan_cluster(desired(domain="lab", ssh_keys=["c"], ntp_servers=["n1", "n2"]),
                        current(EXISTING, config=config))
    assert plan.actions == ["update cluster config (domain, ssh_keys, ntp_servers)"]
    assert plan.steps == [{"kind": "cluster_config", "body": {"clusterConfig": {
        "domain": "lab", "sshKeys": ["c"], "ntpServers": ["n1", "n2"], "enableLxdVm": True, "staticIp": False}}}]
    assert plan.grown == [] and plan.pools_after == current(EXISTING).pools
    before, after = plan.before, plan.after
    assert (before["domain"], before["ssh_keys"], before["ntp_servers"]) == ("maas", ["a", "b"], ["n1"])
    assert (after["domain"], after["ssh_keys"], after["ntp_servers"]) == ("lab", ["c"], ["n1", "n2"])

    # Only the domain declared differs: the PUT carries the cluster's keys and servers as they are.
    domain_only = plan_cluster(desired(domain="lab"), current(EXISTING, config=config))
    assert domain_only.actions == ["update cluster config (domain)"]
    assert domain_only.steps[0]["body"]["clusterConfig"] == dict(config, domain="lab")
    assert "ssh_keys" not in domain_only.after and "ntp_servers" not in domain_only.after
    # Empty lists take the keys and servers away.
    emptied = plan_cluster(desired(ssh_keys=[], ntp_servers=[]), current(EXISTING, config=config))
    assert emptied.actions == ["update cluster config (ssh_keys, ntp_servers)"]
    assert emptied.steps[0]["body"]["clusterConfig"] == dict(config, sshKeys=[], ntpServers=[])
    # A cluster with no keys or servers in Palette has none: declaring none is no change.
    bare = plan_cluster(desired(ssh_keys=[], ntp_servers=[]), current(EXISTING, config={"domain": "maas"}))
    assert bare.actions == []


def test_cluster_config_written_before_the_pools_it_applies_to():
    plan = plan_cluster(desired((INFRA, VMO), ntp_servers=["n9"],
                                worker_pools=[{"name": "workers", "size": 3, "resource_pool": "default"}]),
                        current(EXISTING, config={"domain": "maas", "ntpServers": ["n1"]}))
    assert plan.actions == ["update cluster config (ntp_servers)", "attach profile vmo 1.0.0",
                            "scale pool workers from 2 to 3"]
    assert [s["kind"] for s in plan.steps] == ["cluster_config", "profiles", "pool_update"]


def test_current_pool_reads_palettes_cloud_config():
    pool = current_pool(palette_pool("w", 2, taints=[{"key": "k", "value": "v", "effect": "NoExecute",
                                                      "timeAdded": "2026-01-01T00:00:00Z"}]))
    assert pool["taints"] == [{"key": "k", "value": "v", "effect": "NoExecute"}] and pool["as_worker"] is None
    assert pool_entity(pool)["poolConfig"]["taints"] == [{"key": "k", "value": "v", "effect": "NoExecute"}]


def test_validation_errors_of_the_written_pools_and_the_profiles():
    answer = {"machinePools": {"results": [
        {"name": "workers", "errors": [{"code": "InsufficientMachines", "message": "2 Ready machines match, 3 wanted"}]},
        {"name": "untouched", "errors": [{"message": "a problem of a pool the task does not change"}]}]},
        "profiles": [{"uid": "vmo-1", "packs": {"results": [{"name": "vmo", "errors": [{"message": "bad values"}]}]}}]}
    assert validation_errors(answer, {"workers"}, {"vmo-1": "vmo 1.0.0"}) == [
        "pool workers: 2 Ready machines match, 3 wanted (InsufficientMachines)",
        "profile vmo 1.0.0: pack vmo: bad values"]
    assert validation_errors({}, {"workers"}, {}) == []


# -- SSH keys, node tags, capacity -----------------------------------------------------------------------------

def test_ssh_keys_are_sent_and_compared_trimmed():
    created = plan_cluster(desired(ssh_keys=["ssh-ed25519 AAA a@lab\n", "  ssh-ed25519 BBB b@lab"]), None)
    sent = created.steps[0]["body"]["spec"]["cloudConfig"]["sshKeys"]
    assert sent == ["ssh-ed25519 AAA a@lab", "ssh-ed25519 BBB b@lab"]
    config = {"domain": "maas", "sshKeys": ["ssh-ed25519 AAA a@lab"]}
    same = plan_cluster(desired(ssh_keys=["ssh-ed25519 AAA a@lab\n"]), current(EXISTING, config=config))
    assert same.actions == []
    other = plan_cluster(desired(ssh_keys=["ssh-ed25519 CCC c@lab\n"]), current(EXISTING, config=config))
    assert other.steps[0]["body"]["clusterConfig"]["sshKeys"] == ["ssh-ed25519 CCC c@lab"]


def test_more_than_one_node_tag_is_warned_about_naming_the_tag_that_counts():
    request = check_input(params(worker_pools=[{"name": "gpu", "size": 1, "resource_pool": "default",
                                                "node_tags": ["vmo", "gpu"]},
                                               {"name": "plain", "size": 1, "resource_pool": "default",
                                                "node_tags": ["vmo"]}]), no_log=False)
    assert tag_warnings(request.pools) == [
        "worker_pools[0] (gpu): node_tags: Palette's MAAS provider sends only the last tag (gpu) to MAAS when it "
        "allocates the machines of pool gpu, so they may lack vmo"]


def test_capacity_needs_are_what_created_or_grown_pools_still_need_control_plane_first():
    created = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 2, "resource_pool": "wp",
                                                  "azs": ["z1"], "node_tags": ["vmo", "gpu"], "min_cpu": 4,
                                                  "min_memory_mb": 8192}]), None)
    assert capacity_needs(created, {}) == [
        {"name": CONTROL_PLANE_POOL, "needed": 1, "resource_pool": "default", "zones": [], "tags": [], "min_cpu": 0,
         "min_memory_mb": 0},
        {"name": "workers", "needed": 2, "resource_pool": "wp", "zones": ["z1"], "tags": ["gpu"], "min_cpu": 4,
         "min_memory_mb": 8192}]

    up = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 4, "resource_pool": "default"},
                                            {"name": "extra", "size": 1, "resource_pool": "default"}]),
                      current(EXISTING))
    # workers holds 2 machines now: 2 more; the new pool all of its size.
    assert [(n["name"], n["needed"]) for n in capacity_needs(up, {"workers": 2})] == [("workers", 2), ("extra", 1)]
    # A pool still short of machines it was given before needs those too.
    assert [(n["name"], n["needed"]) for n in capacity_needs(up, {"workers": 1})] == [("workers", 3), ("extra", 1)]
    down = plan_cluster(desired(worker_pools=[{"name": "workers", "size": 1, "resource_pool": "default"}]),
                        current(EXISTING))
    assert capacity_needs(down, {"workers": 2}) == []


def test_force_delete_after_is_bounded():
    with pytest.raises(ClusterInputError, match="force_delete_after: -1 is out of range"):
        check_input(params(state="absent", force_delete_after=-1), no_log=False)
