"""Helpers for the lab's own tests: VM manifests and bounded waits on objects."""

import time

from tests.lab.kube import object_path


def vm_manifest(name: str, namespace: str, run_strategy: str = "Always", memory: str = "128Mi") -> dict:
    return {
        "apiVersion": "kubevirt.io/v1", "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runStrategy": run_strategy,
            "template": {"metadata": {"labels": {"kubevirt.io/domain": name}}, "spec": {
                "domain": {"memory": {"guest": memory},
                           "devices": {"interfaces": [{"name": "default", "masquerade": {}}]}},
                "networks": [{"name": "default", "pod": {}}]}},
        },
    }


def vm_path(namespace: str, name: str = "") -> str:
    return object_path("kubevirt.io/v1", "virtualmachines", name, namespace)


def vmi_path(namespace: str, name: str = "") -> str:
    return object_path("kubevirt.io/v1", "virtualmachineinstances", name, namespace)


def subresource_path(namespace: str, plural: str, name: str, verb: str) -> str:
    return f"/apis/subresources.kubevirt.io/v1/namespaces/{namespace}/{plural}/{name}/{verb}"


class Waiter:
    def __init__(self, admin):
        self.admin = admin

    def until(self, path: str, predicate, timeout: float = 30.0, what: str = ""):
        """Polls an object until predicate(obj) holds; returns it. obj is None when absent."""
        deadline = time.monotonic() + timeout
        obj = None
        while time.monotonic() < deadline:
            obj = self.admin.get_or_none(path)
            if predicate(obj):
                return obj
            time.sleep(0.1)
        status = (obj or {}).get("status")
        raise AssertionError(f"timed out waiting for {what or path}; last status: {status}")

    def printable(self, namespace: str, name: str, status: str, timeout: float = 30.0):
        return self.until(vm_path(namespace, name),
                          lambda vm: vm is not None and vm.get("status", {}).get("printableStatus") == status,
                          timeout, f"VM {namespace}/{name} to be {status}")

    def gone(self, path: str, timeout: float = 30.0):
        return self.until(path, lambda obj: obj is None, timeout, f"{path} to be deleted")
