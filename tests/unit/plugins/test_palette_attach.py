"""Attach planning and the bounded wait for a profile's packs, against a scripted cluster."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.attach import (
    REAPPLY_GRACE, AttachError, plan_attach, wait_for_packs)


def test_plan_attach():
    assert plan_attach({"p1": "vmo"}, "p1", "vmo") == ("none", None)
    assert plan_attach({"p1": "vmo"}, "p1", "vmo", reapply=True) == ("reapply", None)
    assert plan_attach({"p0": "vmo", "i": "infra"}, "p1", "vmo") == ("replace", "p0")
    assert plan_attach({"i": "infra"}, "p1", "vmo") == ("attach", None)


class ScriptedClient:
    """Answers GET /v1/spectroclusters/{uid} with the next scripted pack conditions."""

    def __init__(self, script):
        self.script, self.reads = list(script), 0

    def get(self, path):
        self.reads += 1
        conditions = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return {"status": {"packs": [dict(name=n, profileUid="p1", condition=c) for n, c in conditions.items()]
                           + [{"name": "other", "profileUid": "p0", "condition": {"type": "Error"}}]}}


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


READY = {"type": "Ready", "status": "True"}
DEPLOYING = {"type": "Ready", "status": "False", "message": "deploying"}


def test_wait_until_every_pack_is_ready():
    client = ScriptedClient([{"vmo": DEPLOYING}, {"vmo": READY, "tpl": DEPLOYING}, {"vmo": READY, "tpl": READY}])
    clock = FakeClock()
    seen = wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo", "tpl"], 60, 1, clock=clock, sleep=clock.sleep)
    assert seen["c1"]["tpl"] == READY and client.reads == 3


def test_error_condition_fails_with_the_pack_message():
    client = ScriptedClient([{"vmo": {"type": "Error", "status": "True", "message": "useEmulation must be a bool"}}])
    clock = FakeClock()
    with pytest.raises(AttachError, match="cluster lab: pack vmo failed: useEmulation must be a bool"):
        wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, clock=clock, sleep=clock.sleep)


def test_timeout_names_cluster_pack_and_last_condition():
    client = ScriptedClient([{"vmo": DEPLOYING}])
    clock = FakeClock()
    with pytest.raises(AttachError) as err:
        wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo", "tpl"], 5, 1, clock=clock, sleep=clock.sleep)
    message = str(err.value)
    assert "timed out after 5s" in message
    assert "cluster lab: pack vmo (last: Ready=False: deploying)" in message
    assert "cluster lab: pack tpl (last: not reported yet)" in message
    assert clock.now <= 5


class ScriptedCluster:
    """Answers GET /v1/spectroclusters/{uid} with the next scripted (cluster conditions, {pack: entry}) of p1."""

    def __init__(self, script):
        self.script, self.reads = list(script), 0

    def get(self, path):
        self.reads += 1
        conditions, packs = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        return {"status": {"conditions": conditions,
                           "packs": [dict(entry, name=n, profileUid="p1") for n, entry in packs.items()]}}


NODES_READY = [{"type": "NodesReady", "status": "True"}]
NODES_NOT_READY = [{"type": "NodesReady", "status": "False", "message": "1 of 3 nodes is not ready"}]
EARLIER_READY = {"condition": dict(READY, lastTransitionTime="t0"), "startTime": "t0", "endTime": "t0"}
REDEPLOYING = {"condition": dict(DEPLOYING, lastTransitionTime="t1"), "startTime": "t1", "endTime": ""}
READY_AGAIN = {"condition": dict(READY, lastTransitionTime="t2"), "startTime": "t1", "endTime": "t2"}


def test_the_cluster_conditions_come_first_and_a_timeout_names_them():
    client = ScriptedCluster([(NODES_NOT_READY, {"vmo": READY_AGAIN})])
    clock = FakeClock()
    with pytest.raises(AttachError) as err:
        wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 5, 1, clock=clock, sleep=clock.sleep)
    assert "cluster lab: condition NodesReady=False: 1 of 3 nodes is not ready" in str(err.value)

    client = ScriptedCluster([(NODES_NOT_READY, {"vmo": READY_AGAIN}), (NODES_READY, {"vmo": READY_AGAIN})])
    assert wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, clock=clock, sleep=clock.sleep)
    assert client.reads == 2


def test_an_error_is_judged_only_once_the_cluster_conditions_are_true():
    error = {"condition": {"type": "Error", "status": "True", "message": "boom"}}
    client = ScriptedCluster([(NODES_NOT_READY, {"vmo": error}), (NODES_READY, {"vmo": READY_AGAIN})])
    clock = FakeClock()
    assert wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, clock=clock, sleep=clock.sleep)


def test_a_reapply_waits_past_the_ready_listed_before_it_until_the_pack_deployed_again():
    client = ScriptedCluster([(NODES_READY, {"vmo": EARLIER_READY}), (NODES_READY, {"vmo": EARLIER_READY}),
                              (NODES_READY, {"vmo": REDEPLOYING}), (NODES_READY, {"vmo": READY_AGAIN})])
    clock = FakeClock()
    seen = wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, earlier={"c1": {"vmo": EARLIER_READY}},
                          clock=clock, sleep=clock.sleep)
    assert client.reads == 4 and seen["c1"]["vmo"]["lastTransitionTime"] == "t2"


def test_a_reapply_is_not_failed_by_the_error_listed_before_it():
    earlier_error = {"condition": {"type": "Error", "status": "True", "message": "bad values",
                                   "lastTransitionTime": "t0"}, "startTime": "t0", "endTime": "t0"}
    client = ScriptedCluster([(NODES_READY, {"vmo": earlier_error}), (NODES_READY, {"vmo": READY_AGAIN})])
    clock = FakeClock()
    seen = wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, earlier={"c1": {"vmo": earlier_error}},
                          clock=clock, sleep=clock.sleep)
    assert _ready_condition(seen["c1"]["vmo"])


def test_a_reapply_that_changes_nothing_is_taken_as_it_stands_after_the_providers_delay():
    client = ScriptedCluster([(NODES_READY, {"vmo": EARLIER_READY})])
    clock = FakeClock()
    with pytest.raises(AttachError) as err:
        wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 10, 1, earlier={"c1": {"vmo": EARLIER_READY}},
                       clock=clock, sleep=clock.sleep)
    assert "cluster lab: pack vmo (last: Ready=True, as before the re-apply)" in str(err.value)
    clock = FakeClock()
    wait_for_packs(client, {"c1": "lab"}, "p1", ["vmo"], 60, 1, earlier={"c1": {"vmo": EARLIER_READY}},
                   clock=clock, sleep=clock.sleep)
    assert clock.now == REAPPLY_GRACE


def _ready_condition(condition):
    return condition["type"] == "Ready" and condition["status"] == "True"


class Clusters:
    """One ScriptedCluster per cluster uid, answering by the uid in the path."""

    def __init__(self, scripts):
        self.clusters = {uid: ScriptedCluster(script) for uid, script in scripts.items()}

    def get(self, path):
        return self.clusters[path.rsplit("/", 1)[1]].get(path)


def test_each_cluster_is_waited_for_until_it_is_ready_and_a_timeout_names_only_those_still_pending():
    client = Clusters({"c1": [(NODES_READY, {"vmo": READY_AGAIN})],
                       "c2": [(NODES_READY, {"vmo": REDEPLOYING})]})
    clock = FakeClock()
    with pytest.raises(AttachError) as err:
        wait_for_packs(client, {"c1": "east", "c2": "west"}, "p1", ["vmo"], 4, 1, clock=clock, sleep=clock.sleep)
    assert str(err.value) == "timed out after 4s waiting for packs to be Ready: cluster west: pack vmo (last: " \
                             "Ready=False: deploying)"
    assert client.clusters["c1"].reads == 1, "a ready cluster is not read again"
    assert clock.now <= 4

    client = Clusters({"c1": [(NODES_READY, {"vmo": READY_AGAIN})],
                       "c2": [(NODES_READY, {"vmo": REDEPLOYING}), (NODES_READY, {"vmo": READY_AGAIN})]})
    clock = FakeClock()
    seen = wait_for_packs(client, {"c1": "east", "c2": "west"}, "p1", ["vmo"], 60, 1, clock=clock,
                          sleep=clock.sleep)
    assert set(seen) == {"c1", "c2"} and clock.now == 1
