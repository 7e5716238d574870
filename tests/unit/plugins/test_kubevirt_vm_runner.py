"""kubevirt_vm's plan against a fake cluster: the run strategy, power verb and pause each state and declared
run strategy lead to, the VM object built once, and what a failure after a write reports."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt import vm_runner
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.vm_options import STATES

from .kube_fakes import FakeCluster

NS = "vms"
API = "kubevirt.io/v1alpha3"  # not the builder's default, so the test sees the served version reach the object
PARAMS = {"field_manager": "palette.vmo", "force_conflicts": True, "concurrency": 4, "propagation_policy": "Background",
          "wait": False, "wait_timeout": 5}
STRATEGIES = ("Always", "RerunOnFailure", "Manual", "Halted", "Once")
CONFLICT = "conflict"  # refused before anything is read or written


def request(state, run_strategy=None, name="web"):
    req = {"name": name, "namespace": NS, "memory": "128Mi", "state": state}
    if run_strategy:
        req["run_strategy"] = run_strategy
    return req


def live_vm(name="web", **spec):
    return {"apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine", "metadata": {"name": name, "namespace": NS},
            "spec": dict(spec, template={"spec": {"domain": {"memory": {"guest": "128Mi"}, "devices": {}}}})}


def running_vmi(name="web"):
    return {"metadata": {"name": name, "namespace": NS}, "status": {"phase": "Running", "conditions": []}}


def plan_one(req, live=None, vmi=None):
    """The plan of one VM: (run strategy, verb, pause_when_running, delete), or CONFLICT."""
    try:
        plans = vm_runner.validate_requests([req])
    except ModuleFailure as err:
        assert str(err).startswith("invalid input, nothing was changed: VM vms/web: state: ")
        return CONFLICT
    key = (NS, req["name"])
    lives = {key: live} if live else {}
    vmis = {key: vmi} if vmi else {}
    plan = vm_runner.plan_batch(FakeCluster(), plans, PARAMS, lives, vmis, API)[0]
    if plan.desired:
        # Built once, complete: the served version and the resolved strategy are in the object itself.
        assert plan.desired["apiVersion"] == API
        assert plan.desired["spec"]["runStrategy"] == plan.strategy
    return plan.strategy, plan.verb, plan.pause_when_running, plan.delete


# A VM that does not exist yet (no VM, no instance).
NEW = {
    ("present", "Always"): ("Always", None, False, False),
    ("present", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("present", "Manual"): ("Manual", None, False, False),
    ("present", "Halted"): ("Halted", None, False, False),
    ("present", "Once"): ("Once", None, False, False),
    ("present", None): ("Always", None, False, False),
    ("started", "Always"): ("Always", None, False, False),
    ("started", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("started", "Manual"): ("Manual", "start", False, False),
    ("started", "Halted"): CONFLICT,
    ("started", "Once"): ("Once", None, False, False),
    ("started", None): ("Always", None, False, False),
    ("stopped", "Always"): CONFLICT,
    ("stopped", "RerunOnFailure"): CONFLICT,
    ("stopped", "Manual"): ("Manual", None, False, False),
    ("stopped", "Halted"): ("Halted", None, False, False),
    ("stopped", "Once"): CONFLICT,
    ("stopped", None): ("Halted", None, False, False),
    ("restarted", "Always"): ("Always", None, False, False),
    ("restarted", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("restarted", "Manual"): ("Manual", "start", False, False),
    ("restarted", "Halted"): CONFLICT,
    ("restarted", "Once"): ("Once", None, False, False),
    ("restarted", None): ("Always", None, False, False),
    ("paused", "Always"): ("Always", None, True, False),
    ("paused", "RerunOnFailure"): ("RerunOnFailure", None, True, False),
    ("paused", "Manual"): ("Manual", "start", True, False),
    ("paused", "Halted"): CONFLICT,
    ("paused", "Once"): ("Once", None, True, False),
    ("paused", None): ("Always", None, True, False),
    ("unpaused", "Always"): ("Always", None, False, False),
    ("unpaused", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("unpaused", "Manual"): ("Manual", "start", False, False),
    ("unpaused", "Halted"): CONFLICT,
    ("unpaused", "Once"): ("Once", None, False, False),
    ("unpaused", None): ("Always", None, False, False),
    ("absent", "Always"): (None, None, False, False),
    ("absent", "RerunOnFailure"): (None, None, False, False),
    ("absent", "Manual"): (None, None, False, False),
    ("absent", "Halted"): (None, None, False, False),
    ("absent", "Once"): (None, None, False, False),
    ("absent", None): (None, None, False, False),
}

# The same VM live with runStrategy Manual and running; the declared strategy (if any) replaces Manual.
RUNNING = {
    ("present", "Always"): ("Always", None, False, False),
    ("present", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("present", "Manual"): ("Manual", None, False, False),
    ("present", "Halted"): ("Halted", None, False, False),
    ("present", "Once"): ("Once", None, False, False),
    ("present", None): ("Manual", None, False, False),
    ("started", "Always"): ("Always", None, False, False),
    ("started", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("started", "Manual"): ("Manual", None, False, False),
    ("started", "Halted"): CONFLICT,
    ("started", "Once"): ("Once", None, False, False),
    ("started", None): ("Manual", None, False, False),
    ("stopped", "Always"): CONFLICT,
    ("stopped", "RerunOnFailure"): CONFLICT,
    ("stopped", "Manual"): ("Manual", "stop", False, False),
    ("stopped", "Halted"): ("Halted", "stop", False, False),
    ("stopped", "Once"): CONFLICT,
    ("stopped", None): ("Manual", "stop", False, False),
    ("restarted", "Always"): ("Always", "restart", False, False),
    ("restarted", "RerunOnFailure"): ("RerunOnFailure", "restart", False, False),
    ("restarted", "Manual"): ("Manual", "restart", False, False),
    ("restarted", "Halted"): CONFLICT,
    ("restarted", "Once"): ("Once", "restart", False, False),
    ("restarted", None): ("Manual", "restart", False, False),
    ("paused", "Always"): ("Always", "pause", False, False),
    ("paused", "RerunOnFailure"): ("RerunOnFailure", "pause", False, False),
    ("paused", "Manual"): ("Manual", "pause", False, False),
    ("paused", "Halted"): CONFLICT,
    ("paused", "Once"): ("Once", "pause", False, False),
    ("paused", None): ("Manual", "pause", False, False),
    ("unpaused", "Always"): ("Always", None, False, False),
    ("unpaused", "RerunOnFailure"): ("RerunOnFailure", None, False, False),
    ("unpaused", "Manual"): ("Manual", None, False, False),
    ("unpaused", "Halted"): CONFLICT,
    ("unpaused", "Once"): ("Once", None, False, False),
    ("unpaused", None): ("Manual", None, False, False),
    ("absent", "Always"): (None, None, False, True),
    ("absent", "RerunOnFailure"): (None, None, False, True),
    ("absent", "Manual"): (None, None, False, True),
    ("absent", "Halted"): (None, None, False, True),
    ("absent", "Once"): (None, None, False, True),
    ("absent", None): (None, None, False, True),
}


def test_the_tables_cover_every_state_and_run_strategy():
    every = {(state, strategy) for state in STATES for strategy in STRATEGIES + (None,)}
    assert set(NEW) == every and set(RUNNING) == every


@pytest.mark.parametrize("state, strategy", sorted(NEW, key=str))
def test_plan_of_a_new_vm(state, strategy):
    assert plan_one(request(state, strategy)) == NEW[(state, strategy)]


@pytest.mark.parametrize("state, strategy", sorted(RUNNING, key=str))
def test_plan_of_a_running_vm(state, strategy):
    planned = plan_one(request(state, strategy), live_vm(runStrategy="Manual"), running_vmi())
    assert planned == RUNNING[(state, strategy)]


@pytest.mark.parametrize("running, strategy", [(True, "Always"), (False, "Halted")])
def test_a_deprecated_spec_running_gives_its_strategy_and_is_migrated(running, strategy):
    plans = vm_runner.validate_requests([request("present")])
    plan = vm_runner.plan_batch(FakeCluster(), plans, PARAMS, {(NS, "web"): live_vm(running=running)}, {}, API)[0]
    assert (plan.strategy, plan.migrate_running) == (strategy, strategy)
    assert plan.apply.removed_first == {"spec": {"running": None}}
    assert "running" not in plan.desired["spec"] and plan.desired["spec"]["runStrategy"] == strategy


def test_a_declared_strategy_replaces_the_live_one_and_migrates_spec_running():
    plan = vm_runner.plan_batch(FakeCluster(), vm_runner.validate_requests([request("present", "Manual")]), PARAMS,
                                {(NS, "web"): live_vm(running=True)}, {}, API)[0]
    assert (plan.strategy, plan.migrate_running) == ("Manual", "Manual")


def test_resolve_run_strategy_order():
    assert vm_runner.resolve_run_strategy({"run_strategy": "Once"}, "present", live_vm(runStrategy="Manual")) == "Once"
    assert vm_runner.resolve_run_strategy({}, "stopped", live_vm(runStrategy="Manual")) == "Manual"
    assert vm_runner.resolve_run_strategy({}, "started", live_vm(running=False)) == "Halted"
    assert vm_runner.resolve_run_strategy({}, "started", live_vm()) == "Halted"
    assert vm_runner.resolve_run_strategy({}, "stopped", None) == "Halted"
    assert vm_runner.resolve_run_strategy({}, "present", None) == "Always"


def test_every_input_problem_of_the_batch_is_listed_and_the_message_names_the_first_ten():
    requests = [request("started", "Halted", name="vm-%02d" % i) for i in range(12)]
    with pytest.raises(ModuleFailure) as err:
        vm_runner.validate_requests(requests)
    assert len(err.value.errors) == 12
    assert str(err.value).endswith("; ... and 2 more (see errors)")
    assert "vm-09" in str(err.value) and "vm-10" not in str(err.value)


def _planned(cluster, *requests):
    plans = vm_runner.validate_requests(list(requests))
    return vm_runner.plan_batch(cluster, plans, PARAMS, {}, {}, API)


def test_a_failure_after_a_write_reports_changed_and_what_was_written():
    cluster = FakeCluster()
    plans = _planned(cluster, request("started", "Manual", name="a"), request("started", "Manual", name="b"))
    start_b = object_path("subresources.kubevirt.io/v1", "virtualmachines", "b", NS, subresource="start")
    cluster.reject[start_b] = KubeApiError(403, {"message": "forbidden"}, "PUT", start_b)
    with pytest.raises(ModuleFailure) as caught:
        vm_runner.execute(cluster, plans, PARAMS, "subresources.kubevirt.io/v1")
    assert str(caught.value) == "VM vms/b: start failed: forbidden"
    assert ("PUT", "/apis/subresources.kubevirt.io/v1/namespaces/vms/virtualmachines/a/start") in cluster.writes
    failure = vm_runner.failure_after_writes(caught.value, plans)
    assert failure.result["changed"] is True and str(failure) == str(caught.value)
    assert [(vm["name"], vm["action"], vm["power"]) for vm in failure.result["vms"]] == [
        ("a", "created", "start"), ("b", "created", "start")]


@pytest.mark.parametrize("verb,state,message", [
    ("start", "started", 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "a": VM is already running'),
    ("stop", "stopped", 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "a": VM is not running'),
])
def test_a_verb_another_run_already_carried_out_is_no_failure(verb, state, message):
    """Two runs of the same task start the same VM: virt-api answers the second 409 'already running'."""
    cluster = FakeCluster()
    vmi = running_vmi("a") if verb == "stop" else None
    plans = [vm_runner.plan_batch(cluster, vm_runner.validate_requests([request(state, "Manual", name="a")]), PARAMS,
                                  {}, {(NS, "a"): vmi} if vmi else {}, API)[0]]
    path = object_path("subresources.kubevirt.io/v1", "virtualmachines", "a", NS, subresource=verb)
    cluster.reject[path] = KubeApiError(409, {"message": message}, "PUT", path)
    assert plans[0].verb == verb
    vm_runner.execute(cluster, plans, PARAMS, "subresources.kubevirt.io/v1")


def test_another_conflict_of_a_verb_is_still_a_failure():
    cluster = FakeCluster()
    plans = _planned(cluster, request("restarted", "Manual", name="a"))
    path = object_path("subresources.kubevirt.io/v1", "virtualmachines", "a", NS, subresource=plans[0].verb)
    cluster.reject[path] = KubeApiError(409, {"message": "VM is not running"}, "PUT", path)
    with pytest.raises(ModuleFailure):
        vm_runner.execute(cluster, plans, PARAMS, "subresources.kubevirt.io/v1")


def test_a_failure_before_any_write_is_left_as_it_is():
    cluster = FakeCluster()
    plans = _planned(cluster, request("present", name="a"))
    refused = KubeApiError(403, {"message": "forbidden"}, "PATCH", plans[0].apply.path)
    cluster.reject[plans[0].apply.path] = refused
    with pytest.raises(ModuleFailure) as caught:
        vm_runner.execute(cluster, plans, PARAMS, "subresources.kubevirt.io/v1")
    assert str(caught.value) == "VM vms/a: forbidden"
    assert vm_runner.failure_after_writes(caught.value, plans) is caught.value
    assert cluster.writes == []
