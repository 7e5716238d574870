"""The install's pure logic: manifest checks, the CRs it declares, its stages, and kinds placed from CRDs."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.manifest import (
    ManifestError, ResourceResolver, parse_manifest)
from ansible_collections.palette.vmo.plugins.module_utils.kubevirt.install_runner import (
    cdi_cr, kubevirt_cr, stages)

PARAMS = {"feature_gates": ["Snapshot", "LiveMigration", "Snapshot"], "use_emulation": True,
          "kubevirt_name": "kubevirt", "kubevirt_spec": None, "cdi_name": "cdi", "cdi_feature_gates": [],
          "cdi_spec": None, "namespaces": ["vms"]}


def _obj(kind, name, namespace=None, api_version="v1"):
    metadata = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata}


def test_parse_manifest_names_the_document_and_what_it_lacks():
    assert [d["kind"] for d in parse_manifest("---\nkind: Namespace\napiVersion: v1\nmetadata: {name: a}\n---\n",
                                              "m.yaml")] == ["Namespace"]
    with pytest.raises(ManifestError, match="m.yaml document 2 \\(Deployment\\) lacks apiVersion, metadata.name"):
        parse_manifest("apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\nkind: Deployment\n", "m.yaml")
    with pytest.raises(ManifestError, match="m.yaml document 1 is not a Kubernetes object \\(a list\\)"):
        parse_manifest("- a\n", "m.yaml")
    with pytest.raises(ManifestError, match="holds no objects"):
        parse_manifest("---\n", "m.yaml")
    with pytest.raises(ManifestError, match="is not valid YAML"):
        parse_manifest("a: [\n", "m.yaml")


def test_the_kubevirt_cr_has_exactly_the_gates_and_the_options_win_over_kubevirt_spec():
    params = dict(PARAMS, kubevirt_spec={"configuration": {"developerConfiguration": {
        "featureGates": ["Other"], "logVerbosity": {"virtAPI": 3}}}, "infra": {"replicas": 1}})
    cr = kubevirt_cr(params, "kubevirt")
    developer = cr["spec"]["configuration"]["developerConfiguration"]
    assert developer["featureGates"] == ["Snapshot", "LiveMigration"]
    assert developer["useEmulation"] is True and developer["logVerbosity"] == {"virtAPI": 3}
    assert cr["spec"]["infra"] == {"replicas": 1} and cr["metadata"] == {"name": "kubevirt", "namespace": "kubevirt"}
    assert cdi_cr(PARAMS)["spec"] == {"config": {}}
    assert cdi_cr(dict(PARAMS, cdi_feature_gates=["HonorWaitForFirstConsumer"]))["spec"]["config"] == {
        "featureGates": ["HonorWaitForFirstConsumer"]}


def test_stages_put_namespaces_and_crds_first_and_the_crs_last():
    kubevirt = [_obj("Namespace", "kubevirt"), _obj("CustomResourceDefinition", "kubevirts.kubevirt.io",
                                                    api_version="apiextensions.k8s.io/v1"),
                _obj("Deployment", "virt-operator", "kubevirt", "apps/v1")]
    cdi = [_obj("Namespace", "cdi"), _obj("Deployment", "cdi-operator", "cdi", "apps/v1"), _obj("Namespace", "vms")]
    first, second, third = stages(PARAMS, {"kubevirt_operator_manifest": kubevirt, "cdi_operator_manifest": cdi})
    assert [(o["kind"], o["metadata"]["name"]) for o in first] == [
        ("Namespace", "kubevirt"), ("CustomResourceDefinition", "kubevirts.kubevirt.io"), ("Namespace", "cdi"),
        ("Namespace", "vms")]
    assert [o["metadata"]["name"] for o in second] == ["virt-operator", "cdi-operator"]
    assert [(o["kind"], o["metadata"].get("namespace")) for o in third] == [("KubeVirt", "kubevirt"), ("CDI", None)]


class _NothingServed(object):
    def get(self, path):
        from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError

        raise KubeApiError(404, {"message": "not found"}, "GET", path)


def test_a_kind_the_cluster_does_not_serve_yet_is_placed_from_the_crd_of_the_batch():
    resolver = ResourceResolver(_NothingServed())
    cr = _obj("KubeVirt", "kubevirt", "kubevirt", "kubevirt.io/v1")
    with pytest.raises(ManifestError, match="no CRD in the manifests defines it"):
        resolver.path(cr)
    resolver.learn_crd({"spec": {"group": "kubevirt.io", "scope": "Namespaced",
                                 "names": {"kind": "KubeVirt", "plural": "kubevirts"},
                                 "versions": [{"name": "v1"}, {"name": "v1alpha3"}]}})
    assert resolver.path(cr) == "/apis/kubevirt.io/v1/namespaces/kubevirt/kubevirts/kubevirt"
    assert not resolver.served(cr)
    with pytest.raises(ManifestError, match="needs metadata.namespace"):
        resolver.path(_obj("KubeVirt", "kubevirt", None, "kubevirt.io/v1alpha3"))
