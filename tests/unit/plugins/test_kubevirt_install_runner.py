"""kubevirt_install's stages against a fake cluster: what check mode predicts without a write, the order of the
writes, and what a failure after a write reports."""

import copy
import time

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.install_runner import converge

from .kube_fakes import FakeCluster, crd, path_of

PARAMS = {"feature_gates": [], "use_emulation": True, "kubevirt_name": "kubevirt", "kubevirt_spec": None,
          "cdi_name": "cdi", "cdi_feature_gates": [], "cdi_spec": None, "namespaces": [], "wait": False,
          "field_manager": "palette.vmo", "force": True, "concurrency": 2}
CORE = {"v1": [("Namespace", "namespaces", False)], "apps/v1": [("Deployment", "deployments", True)],
        "apiextensions.k8s.io/v1": [("CustomResourceDefinition", "customresourcedefinitions", False)]}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def deployment(name, ns):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns}}


def manifests():
    return {"kubevirt_operator_manifest": [namespace("kubevirt"), crd("kubevirt.io", "KubeVirt", "kubevirts"),
                                           deployment("virt-operator", "kubevirt")],
            "cdi_operator_manifest": [namespace("cdi"), crd("cdi.kubevirt.io", "CDI", "cdis", "Cluster", ("v1beta1",)),
                                      deployment("cdi-operator", "cdi")]}


def actions(planned):
    return [(item.desired["kind"], item.desired["metadata"]["name"], item.action) for item in planned]


EVERYTHING_NEW = [("Namespace", "kubevirt", "create"), ("CustomResourceDefinition", "kubevirts.kubevirt.io", "create"),
                  ("Namespace", "cdi", "create"), ("CustomResourceDefinition", "cdis.cdi.kubevirt.io", "create"),
                  ("Deployment", "virt-operator", "create"), ("Deployment", "cdi-operator", "create"),
                  ("KubeVirt", "kubevirt", "create"), ("CDI", "cdi", "create")]


def test_check_mode_on_an_empty_cluster_predicts_every_creation_and_dry_runs_only_what_it_can():
    cluster = FakeCluster(CORE)
    planned, kubevirt, cdi = converge(cluster, PARAMS, True, manifests(), time.monotonic() + 5)
    assert actions(planned) == EVERYTHING_NEW
    assert cluster.writes == []
    # The operators' namespaces and the CRs' kinds do not exist yet: only the first stage can be dry-run.
    assert cluster.dry_runs == [path_of(namespace("kubevirt"), "namespaces"),
                                path_of(crd("kubevirt.io", "KubeVirt", "kubevirts"), "customresourcedefinitions"),
                                path_of(namespace("cdi"), "namespaces"),
                                path_of(crd("cdi.kubevirt.io", "CDI", "cdis"), "customresourcedefinitions")]
    assert (kubevirt["kind"], cdi["kind"]) == ("KubeVirt", "CDI")


def test_the_stages_are_written_in_order_and_a_second_run_writes_nothing():
    cluster = FakeCluster(CORE)
    planned = converge(cluster, PARAMS, False, manifests(), time.monotonic() + 5)[0]
    assert actions(planned) == EVERYTHING_NEW
    kinds = [path.split("/")[-2] for _verb, path in cluster.writes]
    assert kinds == ["namespaces", "customresourcedefinitions", "namespaces", "customresourcedefinitions",
                     "deployments", "deployments", "kubevirts", "cdis"]
    writes = len(cluster.writes)
    again = converge(cluster, PARAMS, False, manifests(), time.monotonic() + 5)[0]
    assert {action for _kind, _name, action in actions(again)} == {"none"}
    assert len(cluster.writes) == writes


def test_a_failure_after_the_first_stage_reports_changed_and_what_was_applied():
    cluster = FakeCluster(CORE)
    operator = path_of(deployment("virt-operator", "kubevirt"), "deployments")
    cluster.reject[operator] = KubeApiError(422, {"message": "invalid", "details": {"causes": [
        {"field": "spec.replicas", "message": "must be at least 0"}]}}, "PATCH", operator)
    with pytest.raises(ModuleFailure) as err:
        converge(cluster, PARAMS, False, copy.deepcopy(manifests()), time.monotonic() + 5)
    assert str(err.value) == ("the apiserver rejected the plan in a dry run: Deployment kubevirt/virt-operator: "
                              "spec.replicas: must be at least 0")
    assert err.value.result["changed"] is True
    assert [(o["kind"], o["name"], o["action"]) for o in err.value.result["objects"]] == EVERYTHING_NEW[:4]


def test_a_failure_before_any_write_reports_no_change():
    cluster = FakeCluster(CORE)
    first = path_of(namespace("kubevirt"), "namespaces")
    cluster.reject[first] = KubeApiError(403, {"message": "forbidden"}, "PATCH", first)
    with pytest.raises(ModuleFailure) as err:
        converge(cluster, PARAMS, False, manifests(), time.monotonic() + 5)
    assert "changed" not in err.value.result and cluster.writes == []
