"""Attach planning and the bounded wait for a profile's packs, against a scripted cluster."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette_attach import (
    AttachError, plan_attach, wait_for_packs)


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
