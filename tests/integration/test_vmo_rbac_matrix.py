"""The VMO role matrix, proven as real people: each lab user, bound by vmo_rbac to one VMO role, performs each
operation with their own token against the real apiserver (subresources through its aggregation layer to the
virt-api stand-in), and every answer must be the one the documented table gives."""

import uuid

import pytest

from tests.lab.kube import KubeError, object_path

MODULE = "palette.vmo.vmo_rbac"
PEOPLE = {"alice": "spectro-vm-admin", "bob": "spectro-vm-power-user", "carol": "spectro-vm-user",
          "dave": "spectro-vm-viewer"}
# VMO's documented role table ("VM roles and permissions"), written out here rather than read from the
# collection, so the matrix proves the roles against the documentation and not against themselves.
# Columns: admin, power-user, user, viewer.
DOCUMENTED = {
    "list VMs": (True, True, True, True),
    "get a VM": (True, True, True, True),
    "create a VM": (True, True, False, False),
    "delete a VM": (True, True, False, False),
    "start a VM": (True, True, True, False),
    "stop a VM": (True, True, True, False),
    "create a migration": (True, True, False, False),
    "create a snapshot": (True, True, True, False),
    "clone a VM": (True, True, False, False),
    "update a VmTemplate": (True, False, False, False),
    "read a VmTemplate": (True, True, True, True),
    "read a DataVolume": (True, True, True, True),
    "manage Secrets": (True, False, False, False),
    "list Secrets": (True, False, False, False),
    "list namespaces": (True, True, True, True),
}
VM_API = "kubevirt.io/v1"
SUBRESOURCES = "subresources.kubevirt.io/v1"


def vm(name, strategy):
    return {"apiVersion": VM_API, "kind": "VirtualMachine", "metadata": {"name": name},
            "spec": {"runStrategy": strategy, "template": {"spec": {"domain": {
                "devices": {}, "memory": {"guest": "64Mi"}}}}}}


def preferred(admin, group):
    return admin.get(f"/apis/{group}")["preferredVersion"]["groupVersion"]


class Scene:
    """The objects each person acts on, made by the admin in a fresh namespace."""

    def __init__(self, admin, ns):
        self.admin, self.ns = admin, ns
        self.versions = {group: preferred(admin, group) for group in (
            "snapshot.kubevirt.io", "clone.kubevirt.io", "cdi.kubevirt.io")}
        self.template = f"matrix-{uuid.uuid4().hex[:6]}"

    def build(self):
        vms = object_path(VM_API, "virtualmachines", namespace=self.ns)
        self.admin.create(vms, vm("shared", "Halted"))
        for person in PEOPLE:
            self.admin.create(vms, vm(f"{person}-halted", "Halted"))
            self.admin.create(vms, vm(f"{person}-running", "Always"))
            self.admin.create(vms, vm(f"{person}-victim", "Halted"))
        cdi = self.versions["cdi.kubevirt.io"]
        self.admin.create(object_path(cdi, "datavolumes", namespace=self.ns), {
            "apiVersion": cdi, "kind": "DataVolume", "metadata": {"name": "disk"},
            "spec": {"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": "1Gi"}}}}})
        self.admin.create(object_path("spectrocloud.com/v1", "vmtemplates"), {
            "apiVersion": "spectrocloud.com/v1", "kind": "VmTemplate", "metadata": {"name": self.template},
            "spec": {"displayName": "matrix", "running": False, "template": {"spec": {"domain": {"devices": {}}}}}})

    def remove(self):
        self.admin.delete(object_path("spectrocloud.com/v1", "vmtemplates", self.template))

    def operations(self, person, client):
        """{operation name: a call that performs it as `client`}; names are those of the VMO table."""
        ns, vms = self.ns, object_path(VM_API, "virtualmachines", namespace=self.ns)
        snap, clone = self.versions["snapshot.kubevirt.io"], self.versions["clone.kubevirt.io"]

        def subresource(name, verb):
            return lambda: client.request("PUT", f"/apis/{SUBRESOURCES}/namespaces/{ns}/virtualmachines/{name}/{verb}",
                                          {}, expect_json=False)

        def update_template():
            live = self.admin.get(object_path("spectrocloud.com/v1", "vmtemplates", self.template))
            live["spec"]["displayName"] = f"changed by {person}"
            return client.request("PUT", object_path("spectrocloud.com/v1", "vmtemplates", self.template), live)

        return {
            "list VMs": lambda: client.get(vms),
            "get a VM": lambda: client.get(f"{vms}/shared"),
            "create a VM": lambda: client.create(vms, vm(f"{person}-new", "Halted")),
            "delete a VM": lambda: client.request("DELETE", f"{vms}/{person}-victim"),
            "start a VM": subresource(f"{person}-halted", "start"),
            "stop a VM": subresource(f"{person}-running", "stop"),
            "create a migration": lambda: client.create(
                object_path(VM_API, "virtualmachineinstancemigrations", namespace=ns),
                {"apiVersion": VM_API, "kind": "VirtualMachineInstanceMigration",
                 "metadata": {"name": f"{person}-migration"}, "spec": {"vmiName": "shared"}}),
            "create a snapshot": lambda: client.create(
                object_path(snap, "virtualmachinesnapshots", namespace=ns),
                {"apiVersion": snap, "kind": "VirtualMachineSnapshot", "metadata": {"name": f"{person}-snap"},
                 "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "shared"}}}),
            "clone a VM": lambda: client.create(
                object_path(clone, "virtualmachineclones", namespace=ns),
                {"apiVersion": clone, "kind": "VirtualMachineClone", "metadata": {"name": f"{person}-clone"},
                 "spec": {"source": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine", "name": "shared"},
                          "target": {"apiGroup": "kubevirt.io", "kind": "VirtualMachine",
                                     "name": f"{person}-cloned"}}}),
            "update a VmTemplate": update_template,
            "read a VmTemplate": lambda: client.get(object_path("spectrocloud.com/v1", "vmtemplates", self.template)),
            "read a DataVolume": lambda: client.get(
                object_path(self.versions["cdi.kubevirt.io"], "datavolumes", "disk", ns)),
            "manage Secrets": lambda: client.create(object_path("v1", "secrets", namespace=ns), {
                "apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{person}-secret"}, "stringData": {"a": "b"}}),
            "list Secrets": lambda: client.get(object_path("v1", "secrets", namespace=ns)),
            "list namespaces": lambda: client.get(object_path("v1", "namespaces")),
        }


def attempt(call):
    """True when the apiserver let the person do it, False when it refused it as forbidden.

    The apiserver authorizes a request before admission: a refusal by an admission webhook (KubeVirt's migration
    validator refuses a migration of a VM that is not running) means RBAC allowed it."""
    try:
        call()
        return True
    except KubeError as err:
        if err.status == 403:
            return False
        if err.status == 400 and "admission webhook" in str(err):
            return True
        raise AssertionError(f"neither done nor forbidden: {err}")


def print_matrix(operations, observed):
    people = list(PEOPLE)
    width = max(len(op) for op in operations)
    print("\nVMO role matrix, as real users (yes = done, no = forbidden):")
    print(" " * width + "  " + "  ".join(f"{PEOPLE[p]:>21}" for p in people))
    for op in operations:
        print(f"{op:<{width}}  " + "  ".join(f"{'yes' if observed[(p, op)] else 'no':>21}" for p in people))


@pytest.fixture
def bound_people(run_module, vmo_cluster_roles):
    """Each person bound cluster-wide to one VMO role (VmTemplates are cluster-scoped), by the module."""
    bindings = [{"role": role, "subjects": {"users": [person]}, "cluster_wide": True, "name": f"matrix-{person}"}
                for person, role in PEOPLE.items()]
    result = run_module(MODULE, {"bindings": bindings, "verify": True, "verify_fail": True})
    assert not result.get("failed"), result.get("msg")
    yield result
    gone = run_module(MODULE, {"bindings": [dict(b, state="absent") for b in bindings]})
    assert not gone.get("failed"), gone.get("msg")


def test_each_vmo_role_does_exactly_what_the_table_says(admin, user_client, ns, bound_people):
    from tests.vmo_role_table import expected_operations

    assert bound_people["verify_mismatches"] == 0
    scene = Scene(admin, ns)
    scene.build()
    try:
        observed, names = {}, None
        for person in PEOPLE:
            operations = scene.operations(person, user_client(person))
            names = list(operations)
            for name, call in operations.items():
                observed[(person, name)] = attempt(call)
    finally:
        scene.remove()
    print_matrix(names, observed)
    assert sorted(names) == sorted(DOCUMENTED)
    wrong = []
    for column, (person, role) in enumerate(PEOPLE.items()):
        # The collection's own table (its docs and verify) says the same as the documentation.
        table = {op.name: allowed for op, allowed in expected_operations(role)}
        assert {name: table[name] for name in names} == {name: DOCUMENTED[name][column] for name in names}, role
        for name in names:
            if observed[(person, name)] != DOCUMENTED[name][column]:
                wrong.append(f"{person} ({role}) {name}: {'done' if observed[(person, name)] else 'forbidden'}, "
                             f"table says {'allowed' if table[name] else 'denied'}")
    assert wrong == []
    # The cells are not all alike: every role is refused something, and every operation is done by someone.
    assert all(not all(observed[(p, n)] for n in names) for p in PEOPLE if p != "alice")
    assert all(any(observed[(p, n)] for p in PEOPLE) for n in names)
    # What was done really happened: the start reached the VM through the aggregated virt-api.
    started = admin.get(object_path(VM_API, "virtualmachines", "bob-halted", ns))
    assert started["spec"]["runStrategy"] == "Always"
    assert admin.get_or_none(object_path(VM_API, "virtualmachines", "carol-victim", ns)) is not None
