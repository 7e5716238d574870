"""The bounded waits of a MAAS cluster, against a scripted Palette: states, health, each pool's machines."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_wait import (
    ClusterWaitError, describe_pool, machine_view, pool_ready, wait_until_deleted, wait_until_running)


def machine(host, state="Running", ready=True):
    return {"metadata": {"name": "m-" + host, "uid": "u-" + host}, "spec": {"hostname": host, "az": "default"},
            "status": {"instanceState": state, "ready": ready}}


class ScriptedPalette:
    """Each look is the next frame: {state, health, conditions, pools: {pool: [machines]}}; None means 404."""

    def __init__(self, frames):
        self.frames, self.frame, self.looks = list(frames), None, 0

    def _next(self):
        self.frame = self.frames.pop(0) if len(self.frames) > 1 else self.frames[0]
        self.looks += 1

    def get(self, path):
        if path == "/v1/spectroclusters/c1":
            self._next()
            if self.frame is None:
                raise PaletteError(404, {"message": "not found"}, "GET", path)
            return {"spec": {"cloudConfigRef": {"uid": "cfg1"}},
                    "status": {"state": self.frame["state"], "conditions": self.frame.get("conditions", [])}}
        assert path == "/v1/dashboard/spectroclusters/c1/overview"
        return {"status": {"health": {"state": self.frame.get("health")}}}

    def list_all(self, path):
        pool = path.split("/machinePools/")[1].split("/")[0]
        if pool not in self.frame.get("pools", {}):
            raise PaletteError(404, {"message": "no such pool"}, "GET", path)
        return self.frame["pools"][pool]


class FakeClock:
    def __init__(self):
        self.now, self.sleeps = 0.0, []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_pool_readiness_counts_exactly_size_running_and_ready():
    machines = [machine_view(machine("a")), machine_view(machine("b", "Provisioning", False))]
    assert not pool_ready(machines, 2) and not pool_ready(machines[:1], 2) and pool_ready(machines[:1], 1)
    assert not pool_ready(machines[:1], 0)
    assert pool_ready([machine_view(machine("a")), machine_view(machine("z", "Deleted", False))], 1)
    assert describe_pool("w", machines, 3) == ("pool w: 1 of 3 machines running and ready, waiting for "
                                               "b (Provisioning, not ready), 1 not allocated yet")
    assert describe_pool("w", machines[:1] * 2, 1).endswith("1 more to release")


def test_waits_through_provisioning_to_running_healthy_and_every_machine():
    frames = [{"state": "Pending"},
              {"state": "Provisioning", "pools": {"cp": [machine("h1", "Provisioning", False)]}},
              {"state": "Running", "health": "UnHealthy", "pools": {"cp": [machine("h1")], "w": [machine("h2")]}},
              {"state": "Running", "health": "Healthy", "pools": {"cp": [machine("h1")], "w": [machine("h2")]}},
              {"state": "Running", "health": "Healthy", "pools": {"cp": [machine("h1")],
                                                                  "w": [machine("h2"), machine("h3")]}}]
    client, clock = ScriptedPalette(frames), FakeClock()
    seen = wait_until_running(client, "vmo-lab", "c1", {"cp": 1, "w": 2}, 600, clock=clock, sleep=clock.sleep)
    assert client.looks == 5 and seen.health == "Healthy"
    assert [m["hostname"] for m in seen.machines["w"]] == ["h2", "h3"]
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.375]  # growing, at most 5 s apart


def test_timeout_names_the_pools_machines_and_palettes_last_condition():
    frame = {"state": "Provisioning", "conditions": [
        {"type": "NodesReady", "status": "False", "reason": "Deploying", "message": "1 of 3 nodes ready"},
        {"type": "ControlPlaneReady", "status": "True"}],
        "pools": {"cp": [machine("h1")], "w": [machine("h2", "Provisioning", False)]}}
    client, clock = ScriptedPalette([frame]), FakeClock()
    with pytest.raises(ClusterWaitError) as caught:
        wait_until_running(client, "vmo-lab", "c1", {"cp": 1, "w": 2}, 10, clock=clock, sleep=clock.sleep)
    message = str(caught.value)
    assert message.startswith("cluster vmo-lab: timed out after 10s waiting for it to be Running and Healthy")
    assert "state Provisioning" in message
    assert message.endswith("; Palette's conditions: NodesReady=False (Deploying): 1 of 3 nodes ready")
    assert "ControlPlaneReady" not in message
    assert "pool w: 0 of 2 machines running and ready, waiting for h2 (Provisioning, not ready), 1 not allocated yet" \
        in message
    assert "pool cp" not in message
    assert caught.value.observation.machines["cp"][0]["hostname"] == "h1"
    assert clock.now == 10


def test_zero_timeout_looks_once():
    client, clock = ScriptedPalette([{"state": "Pending"}]), FakeClock()
    with pytest.raises(ClusterWaitError, match="timed out after 0s"):
        wait_until_running(client, "vmo-lab", "c1", {"cp": 1}, 0, clock=clock, sleep=clock.sleep)
    assert client.looks == 1 and clock.sleeps == []


def test_a_cluster_deleted_meanwhile_stops_the_wait():
    client, clock = ScriptedPalette([{"state": "Provisioning"}, {"state": "Deleting"}]), FakeClock()
    with pytest.raises(ClusterWaitError, match="cluster vmo-lab: is Deleting while waiting for it to be Running"):
        wait_until_running(client, "vmo-lab", "c1", {"cp": 1}, 600, clock=clock, sleep=clock.sleep)


def test_deletion_waits_until_gone_and_names_the_machines_still_held():
    client, clock = ScriptedPalette([{"state": "Deleting", "pools": {"w": [machine("h2", "Deleting", False)]}},
                                     {"state": "Deleting", "pools": {}}, None]), FakeClock()
    wait_until_deleted(client, "vmo-lab", "c1", ["w"], 600, clock=clock, sleep=clock.sleep)
    assert client.looks == 3

    client, clock = ScriptedPalette([{"state": "Deleting", "pools": {"w": [machine("h2", "Deleting", False)]}}]), \
        FakeClock()
    with pytest.raises(ClusterWaitError) as caught:
        wait_until_deleted(client, "vmo-lab", "c1", ["w"], 5, clock=clock, sleep=clock.sleep)
    assert str(caught.value) == ("cluster vmo-lab: timed out after 5s waiting for Palette to delete it and release "
                                 "its machines; last seen: state Deleting; machines still held: pool w: h2 (Deleting)")
    assert wait_until_deleted(ScriptedPalette([{"state": "Deleted"}]), "c", "c1", [], 0) is None
