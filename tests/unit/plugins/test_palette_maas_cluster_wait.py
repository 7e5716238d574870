"""The bounded waits of a MAAS cluster, against a scripted Palette: states, health, the overview's pools (the gate)
and each pool's machines (reported only)."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteClient, PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.palette.maas_cluster_wait import (
    ClusterWaitError, describe_pool, held_machines, machine_view, overview_pools, pool_ready, wait_until_deleted,
    wait_until_running, watch_deletion)


def machine(host, state="Running", ready=True):
    status = {"instanceState": state}
    if ready is not None:
        status["ready"] = ready
    return {"metadata": {"name": "m-" + host, "uid": "u-" + host}, "spec": {"hostname": host, "az": "default"},
            "status": status}


class ScriptedPalette:
    """Each look is the next frame: {state, health, conditions, meta: {pool: (size, healthy)} (the overview's
    pools), pools: {pool: [machines]}}; None means 404."""

    def __init__(self, frames):
        self.frames, self.frame, self.looks = list(frames), None, 0

    get_or_none = PaletteClient.get_or_none  # the real 404 handling over the scripted get

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
        pools = [{"name": name, "size": size, "healthy": healthy, "isControlPlane": name == "cp"}
                 for name, (size, healthy) in sorted(self.frame.get("meta", {}).items())]
        return {"spec": {"cloudConfig": {"machinePools": pools}},
                "status": {"health": {"state": self.frame.get("health")}}}

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


def test_a_pool_is_ready_when_the_overview_has_exactly_its_size_all_healthy():
    assert pool_ready({"size": 2, "healthy": 2}, 2)
    assert not pool_ready({"size": 2, "healthy": 1}, 2)
    assert not pool_ready({"size": 3, "healthy": 3}, 2)  # still to scale down
    assert not pool_ready({"size": 2, "healthy": 2}, 3)  # the scale-up not taken yet
    assert not pool_ready(None, 1)
    assert pool_ready({"size": 0, "healthy": 0}, 0)


def test_the_overviews_pools_are_named_or_taken_in_the_cloud_configs_order():
    def overview(*metas):
        return {"spec": {"cloudConfig": {"machinePools": list(metas)}}}
    nameless = overview({"isControlPlane": True, "size": 1, "healthy": 1}, {"size": 3, "healthy": 2})
    assert overview_pools(nameless, ["cp", "w"]) == {"cp": {"size": 1, "healthy": 1}, "w": {"size": 3, "healthy": 2}}
    named = overview({"name": "w", "size": 3, "healthy": 3}, {"size": 1, "healthy": 0})
    assert overview_pools(named, ["cp", "w"]) == {"w": {"size": 3, "healthy": 3}, "cp": {"size": 1, "healthy": 0}}
    # A pool still being added or removed: no pool is taken for another.
    assert overview_pools(nameless, ["cp"]) is None and overview_pools({}, ["cp"]) is None


def test_machines_are_reported_with_an_unreported_readiness_unknown():
    assert machine_view(machine("a", ready=None))["ready"] is None
    assert machine_view(machine("a", ready=False))["ready"] is False
    machines = [machine_view(machine("a", ready=None)), machine_view(machine("b", "Provisioning", False)),
                machine_view(machine("c", "Running", False))]
    assert describe_pool("w", {"size": 4, "healthy": 1}, machines, 4) == (
        "pool w: 1 of 4 machines healthy, waiting for b (Provisioning, not ready), c (Running, not ready), "
        "1 not allocated yet")
    assert describe_pool("w", None, [], 1) == "pool w: not in Palette's overview yet (size 1), 1 not allocated yet"
    assert describe_pool("w", {"size": 2, "healthy": 2}, machines[:1] * 2, 1) == (
        "pool w: 2 of 1 machines healthy (Palette's pool size 2), 1 more to release")


def test_the_machines_a_pool_holds_are_those_allocated_and_not_deleting():
    machines = [machine_view(machine("a")), machine_view(machine("", "Pending", None)),
                machine_view(machine("c", "Deleting", False)), machine_view(machine("d", "Deleted", False))]
    assert held_machines(machines, 3) == 1 and held_machines(machines * 3, 2) == 2


def test_waits_for_running_healthy_and_the_overviews_pools_not_the_machines_fields():
    frames = [{"state": "Pending"},
              {"state": "Provisioning", "meta": {"cp": (1, 0)},
               "pools": {"cp": [machine("h1", "Provisioning", False)]}},
              {"state": "Running", "health": "UnHealthy", "meta": {"cp": (1, 1), "w": (2, 1)},
               "pools": {"cp": [machine("h1")], "w": [machine("h2")]}},
              {"state": "Running", "health": "Healthy", "meta": {"cp": (1, 1), "w": (2, 1)},
               "pools": {"cp": [machine("h1")], "w": [machine("h2")]}},
              # Machines whose readiness Palette does not report, in a state the wait never looks at: the overview
              # decides.
              {"state": "Running", "health": "Healthy", "meta": {"cp": (1, 1), "w": (2, 2)},
               "pools": {"cp": [machine("h1", "Provisioned", None)],
                         "w": [machine("h2", ready=None), machine("h3", ready=None)]}}]
    client, clock = ScriptedPalette(frames), FakeClock()
    seen = wait_until_running(client, "vmo-lab", "c1", {"cp": 1, "w": 2}, 600, clock=clock, sleep=clock.sleep)
    assert client.looks == 5 and seen.health == "Healthy"
    assert [(m["hostname"], m["ready"]) for m in seen.machines["w"]] == [("h2", None), ("h3", None)]
    assert clock.sleeps == [1.0, 1.5, 2.25, 3.375]  # growing, at most 5 s apart


def test_timeout_names_the_pools_machines_and_palettes_last_condition():
    frame = {"state": "Provisioning", "conditions": [
        {"type": "NodesReady", "status": "False", "reason": "Deploying", "message": "1 of 3 nodes ready"},
        {"type": "ControlPlaneReady", "status": "True"}], "meta": {"cp": (1, 1), "w": (2, 0)},
        "pools": {"cp": [machine("h1")], "w": [machine("h2", "Provisioning", False)]}}
    client, clock = ScriptedPalette([frame]), FakeClock()
    with pytest.raises(ClusterWaitError) as caught:
        wait_until_running(client, "vmo-lab", "c1", {"cp": 1, "w": 2}, 10, clock=clock, sleep=clock.sleep)
    message = str(caught.value)
    assert message.startswith("cluster vmo-lab: timed out after 10s waiting for it to be Running and Healthy")
    assert "state Provisioning; health not reported" in message
    assert message.endswith("; Palette's conditions: NodesReady=False (Deploying): 1 of 3 nodes ready")
    assert "ControlPlaneReady" not in message
    assert "pool w: 0 of 2 machines healthy, waiting for h2 (Provisioning, not ready), 1 not allocated yet" \
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
    assert str(caught.value) == ("cluster vmo-lab: timed out after 5s waiting for Palette to delete it; last seen: "
                                 "state Deleting; machines still held: pool w: h2 (Deleting)")
    assert wait_until_deleted(ScriptedPalette([{"state": "Deleted"}]), "c", "c1", [], 0) is None


def test_watching_a_deletion_gives_the_last_look_when_the_time_is_up():
    client, clock = ScriptedPalette([{"state": "Deleting"}]), FakeClock()
    seen = watch_deletion(client, "c1", [], 3, clock=clock, sleep=clock.sleep)
    assert seen.state == "Deleting" and clock.now == 3
    assert watch_deletion(ScriptedPalette([{"state": "Deleting"}, None]), "c1", [], 3, clock=clock,
                          sleep=clock.sleep) is None
