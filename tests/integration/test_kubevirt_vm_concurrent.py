"""Two kubevirt_vm tasks in parallel processes declaring the same VMs both succeed and leave one set of VMs."""

from concurrent.futures import ThreadPoolExecutor

from tests.lab.kube import object_path

MODULE = "palette.vmo.kubevirt_vm"


def test_parallel_applies_of_the_same_vms_both_succeed(run_module, admin, ns):
    args = {"namespace": ns, "memory": "128Mi", "state": "started", "run_strategy": "Manual", "wait": True,
            "wait_timeout": 300,
            "vms": [{"name": "race-%d" % i} for i in range(10)]}
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda _run: run_module(MODULE, args), range(2)))
    for result in results:
        assert result.get("failed") is not True, result
        assert sorted(vm["printable_status"] for vm in result["vms"]) == ["Running"] * 10, result
    assert any(result["changed"] for result in results)
    vms = admin.get(object_path("kubevirt.io/v1", "virtualmachines", namespace=ns))["items"]
    assert sorted(vm["metadata"]["name"] for vm in vms) == sorted("race-%d" % i for i in range(10))
    again = run_module(MODULE, args)
    assert again.get("failed") is not True and again["changed"] is False, again
