"""maas/capacity: which pools MAAS's Ready machines cannot fill, with MAAS's allocate constraints."""

from ansible_collections.palette.vmo.plugins.module_utils.maas.capacity import PoolNeed, shortfalls


def machine(hostname, status="Ready", pool="default", zone="default", tags=(), cpu=8, memory=16384):
    return {"hostname": hostname, "system_id": hostname[:6], "status_name": status, "pool": {"name": pool},
            "zone": {"name": zone}, "tag_names": list(tags), "cpu_count": cpu, "memory": memory}


def test_enough_matching_machines_is_no_problem():
    machines = [machine("a", tags=["vmo"]), machine("b", tags=["vmo", "gpu"])]
    assert shortfalls([PoolNeed("workers", 2, "default", tags=["vmo"])], machines) == []


def test_each_constraint_excludes_a_machine():
    need = PoolNeed("workers", 1, "vmo", zones=["az1", "az2"], tags=["vmo"], min_cpu=16, min_memory_mb=65536)
    fits = machine("fits", pool="vmo", zone="az2", tags=["vmo"], cpu=16, memory=65536)
    assert need.matches(fits)
    for other in (dict(status="Deployed"), dict(pool="default"), dict(zone="az3"), dict(tags=[]), dict(cpu=8),
                  dict(memory=32768)):
        spec = dict(pool="vmo", zone="az2", tags=["vmo"], cpu=16, memory=65536)
        spec.update(other)
        assert not need.matches(machine("m", status=spec.pop("status", "Ready"), **spec)), other


def test_a_short_pool_is_named_with_what_it_needs_and_what_maas_has():
    problems = shortfalls([PoolNeed("workers", 3, "default", zones=["az1"], tags=["vmo"], min_cpu=4)],
                          [machine("a", zone="az1", tags=["vmo"]), machine("b", zone="az2", tags=["vmo"])])
    assert problems == ["pool workers needs 3 more machines Ready in resource pool default in zone az1 tagged vmo "
                        "with at least 4 CPU cores; MAAS has 1 (a)"]


def test_pools_do_not_count_the_same_machine_twice():
    machines = [machine("a"), machine("b")]
    needs = [PoolNeed("control-plane", 1, "default"), PoolNeed("workers", 2, "default")]
    assert shortfalls(needs, machines) == [
        "pool workers needs 2 more machines Ready in resource pool default; MAAS has 1 (b)"]


def test_a_pool_that_needs_nothing_more_is_not_checked():
    assert shortfalls([PoolNeed("workers", 0, "default")], []) == []
