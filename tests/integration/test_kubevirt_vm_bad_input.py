"""Bad input to kubevirt_vm: a clear error naming the VM and the field, and not one write."""

import uuid

import pytest

from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

MODULE = "palette.vmo.kubevirt_vm"
GOOD = {"name": "vm", "memory": "128Mi"}


def item(**overrides):
    return dict(GOOD, **overrides)


# (id, the `vms` items or task options, substrings the error must contain)
CASES = [
    ("uppercase-name", {"vms": [item(name="Bad_Name")]}, ["Bad_Name", "name:", "not a valid name"]),
    ("name-too-long", {"vms": [item(name="x" * 64)]}, ["x" * 64, "name:", "at most 63"]),
    ("memory-not-a-quantity", {"vms": [item(memory="lots")]}, ["/vm: memory:", "'lots' is not a Kubernetes quantity"]),
    ("disk-size-not-a-quantity", {"vms": [item(disks=[{"name": "root", "data_volume": {"size": "ten", "blank": True}}])]},
     ["/vm: disks[root].data_volume.size:", "'ten'"]),
    ("raw-and-typed-disk", {"vms": [item(
        disks=[{"name": "root", "container_disk": "quay.io/containerdisks/fedora:41"}],
        spec={"domain": {"devices": {"disks": [{"name": "root", "disk": {}}]}},
              "volumes": [{"name": "root", "containerDisk": {"image": "quay.io/x:1"}}]})]},
     ["/vm: disks:", "'root' is given both in spec and as a typed option"]),
    ("disk-two-sources", {"vms": [item(disks=[{"name": "root", "container_disk": "quay.io/x:1", "pvc": "root"}])]},
     ["/vm: disks[root]:", "exactly one of", "container_disk, pvc"]),
    ("disk-no-source", {"vms": [item(disks=[{"name": "root"}])]}, ["/vm: disks[root]:", "got none"]),
    ("data-volume-two-sources", {"vms": [item(disks=[{"name": "root", "data_volume": {
        "size": "1Gi", "http": "https://example.invalid/x.img", "blank": True}}])]},
     ["disks[root].data_volume:", "exactly one of registry, http, clone or blank"]),
    ("clone-without-name", {"vms": [item(disks=[{"name": "root", "data_volume": {"size": "1Gi", "clone": {"namespace": "x"}}}])]},
     ["vms[0] (vm): missing required arguments: name found in disks -> data_volume -> clone"]),
    ("halted-but-started", {"vms": [item(run_strategy="Halted", state="started")]},
     ["/vm: state:", "run_strategy Halted", "state=started"]),
    ("always-but-stopped", {"vms": [item(run_strategy="Always", state="stopped")]},
     ["/vm: state:", "run_strategy Always", "state=stopped"]),
    ("unknown-run-strategy-in-item", {"vms": [item(run_strategy="Sometimes")]},
     ["vms[0] (vm): value of run_strategy must be one of: Always, Halted", "got: Sometimes"]),
    ("unknown-state-in-item", {"vms": [item(state="asleep")]},
     ["vms[0] (vm): value of state must be one of: present, absent", "got: asleep"]),
    ("unknown-option-in-item", {"vms": [item(colour="blue")]}, ["vms[0] (vm): unsupported parameters: colour."]),
    ("zero-cores", {"vms": [item(cpu={"cores": 0})]}, ["/vm: cpu.cores:", "at least 1"]),
    ("bad-mac", {"vms": [item(nics=[{"name": "default", "mac_address": "02:zz"}])]},
     ["/vm: nics[default].mac_address:", "not a MAC address"]),
    ("bad-nic-model", {"vms": [item(nics=[{"name": "default", "model": "rtl9999"}])]},
     ["/vm: nics[default].model:", "'rtl9999'"]),
    ("unknown-network", {"vms": [item(nics=[{"name": "default"}, {"name": "data", "network": "vlan-42"}])]},
     ["/vm: nics[data].network:", "unknown network 'vlan-42'"]),
    ("instancetype-with-memory", {"vms": [item(instancetype="u1.medium")]},
     ["/vm: instancetype:", "cannot be combined with cpu or memory"]),
    ("duplicate-vm", {"vms": [item(), item()]}, ["/vm: name:", "declared more than once"]),
    ("no-memory", {"vms": [{"name": "vm"}]}, ["/vm: memory:", "is required"]),
    ("keys-and-user-data", {"vms": [item(cloud_init={"user_data": "#cloud-config\n", "ssh_authorized_keys": ["k"]})]},
     ["/vm: cloud_init.ssh_authorized_keys:", "cannot be combined with user_data"]),
    ("schema-violation-caught-by-dry-run", {"vms": [item(spec={"domain": {"cpu": {"cores": "many"}}})]},
     ["/vm:", "spec.template.spec.domain.cpu.cores", "dry run, nothing was changed"]),
    ("one-bad-vm-stops-the-whole-batch", {"vms": [item(name="fine"), item(name="bad", spec={
        "domain": {"memory": {"guest": "128Mi"}, "devices": {}, "clock": {"timer": {"hpet": {"present": "yes"}}}}})]},
     ["/bad:", "spec.template.spec.domain.clock.timer.hpet.present"]),
    ("invalid-eviction-strategy", {"vms": [item(eviction_strategy="Evaporate")]},
     ["vms[0] (vm): value of eviction_strategy must be one of: LiveMigrate", "got: Evaporate"]),
    # Items go through Ansible's argument-spec validation: its conversions and messages, naming the item.
    ("item-not-a-dict", {"vms": [item(), "web-2"]}, ["Elements value for option 'vms' is of type str and we were unable to convert to dict"]),
    ("item-name-a-list", {"vms": [item(name=["web-1"])]}, ["name: \"['web-1']\" is not a valid name"]),
    ("item-disks-a-string", {"vms": [item(disks="root")]},
     ["vms[0] (vm): Elements value for option 'disks' is of type str and we were unable to convert to dict"]),
    ("item-cpu-a-string", {"vms": [item(cpu="4")]},
     ["vms[0] (vm): argument 'cpu' is of type str and we were unable to convert to dict"]),
    ("item-cores-not-a-number", {"vms": [item(name="web-3", cpu={"cores": "two"})]},
     ["vms[0] (web-3): argument 'cores' is of type str found in 'cpu'. and we were unable to convert to int"]),
    ("item-disk-without-name", {"vms": [item(disks=[{"container_disk": "quay.io/x:1"}])]},
     ["vms[0] (vm): missing required arguments: name found in disks"]),
    # Values KubeVirt or the quantity parser refuses, and names given twice, fail before any write.
    ("memory-beyond-int64", {"vms": [item(memory="99999999Ei")]},
     ["/vm: memory: '99999999Ei' is too large: a quantity of bytes must stay below 8Ei"]),
    ("duplicate-disk-names", {"vms": [item(disks=[{"name": "root", "container_disk": "quay.io/x:1"},
                                                  {"name": "root", "empty_disk": "1Gi"}])]},
     ["/vm: disks: 'root' is given more than once"]),
    ("disk-named-like-the-cloud-init-disk", {"vms": [item(disks=[{"name": "cloudinitdisk", "empty_disk": "1Gi"}],
                                                          cloud_init={"user_data": "#cloud-config\n"})]},
     ["/vm: disks: 'cloudinitdisk' is given more than once"]),
    ("duplicate-nic-names", {"vms": [item(nics=[{"name": "default"}, {"name": "default"}])]},
     ["/vm: nics: 'default' is given more than once"]),
    ("negative-wait-timeout", {"vms": [item()], "wait": True, "wait_timeout": -1},
     ["wait_timeout: -1 is out of range, give 0 or more seconds"]),
    ("zero-concurrency", {"vms": [item()], "concurrency": 0}, ["concurrency: 0 is out of range, give at least 1"]),
]


@pytest.fixture(scope="module")
def bad_ns(admin):
    name = f"bad-input-{uuid.uuid4().hex[:6]}"
    admin.create(object_path("v1", "namespaces"), {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    admin.delete(object_path("v1", "namespaces", name))


def _writes(audit, mark, namespace=None):
    """What the module's user wrote to VMs since the mark (in `namespace`, when tests run side by side)."""
    return [e for e in audit.mutations(mark, user=ADMIN_USER)
            if (e.get("objectRef") or {}).get("resource") in ("virtualmachines", "virtualmachineinstances")
            and (namespace is None or (e.get("objectRef") or {}).get("namespace") == namespace)]


@pytest.mark.parametrize("case_id, args, expected", CASES, ids=[c[0] for c in CASES])
def test_bad_input_fails_clearly_without_writing(run_module, audit, bad_ns, case_id, args, expected):
    mark = audit.mark()
    result = run_module(MODULE, dict(args, namespace=bad_ns))
    assert result.get("failed") is True, result
    for text in expected:
        assert text in result["msg"], (text, result["msg"])
    assert _writes(audit, mark, bad_ns) == []


def test_namespace_that_does_not_exist(run_module, audit):
    mark = audit.mark()
    result = run_module(MODULE, dict(GOOD, namespace="no-such-namespace"))
    assert result.get("failed") is True
    assert "namespace: 'no-such-namespace' does not exist (VM vm)" in result["msg"]
    assert _writes(audit, mark) == []


def test_missing_credentials(run_module, audit, tmp_path):
    mark = audit.mark()
    result = run_module(MODULE, dict(GOOD, namespace="default"),
                        env_extra={"KUBECONFIG": str(tmp_path / "missing"), "HOME": str(tmp_path)})
    assert result.get("failed") is True
    assert "kubeconfig" in result["msg"] and "does not exist" in result["msg"]
    assert _writes(audit, mark) == []


def test_host_without_credentials(run_module, lab, tmp_path):
    result = run_module(MODULE, dict(GOOD, namespace="default", host=lab.apiserver_url),
                        env_extra={"KUBECONFIG": "", "HOME": str(tmp_path)})
    assert result.get("failed") is True
    assert "no Kubernetes credentials" in result["msg"]


def test_wrong_ca_is_refused(run_module, lab, audit, tmp_path):
    from tests.lab import pki

    other_ca = tmp_path / "other-ca"
    pki.make_ca(other_ca, "not-the-lab-ca")
    mark = audit.mark()
    result = run_module(MODULE, dict(GOOD, namespace="default", ca_cert=str(other_ca.with_suffix(".crt"))))
    assert result.get("failed") is True
    assert "TLS verification of %s failed" % lab.apiserver_url in result["msg"]
    assert _writes(audit, mark) == []


def test_api_key_is_never_shown(run_module, lab):
    token = lab.token("alice")
    result = run_module(MODULE, dict(GOOD, namespace="default", host=lab.apiserver_url, api_key=token,
                                     ca_cert=str(lab.ca_file)))
    assert result.get("failed") is True  # alice may not create VMs
    assert "forbidden" in result["msg"]
    assert token not in result["_stdout"]


def test_item_options_get_ansible_type_conversion_like_task_options(run_module, bad_ns):
    """`cores: "2"` is accepted in an item as at the task level (check mode: nothing written)."""
    result = run_module(MODULE, {"namespace": bad_ns, "vms": [item(cpu={"cores": "2"})]}, check=True)
    assert result.get("failed") is not True and result["changed"] is True, result
    task_level = run_module(MODULE, dict(GOOD, namespace=bad_ns, cpu={"cores": "2"}), check=True)
    assert task_level.get("failed") is not True and task_level["changed"] is True, task_level
