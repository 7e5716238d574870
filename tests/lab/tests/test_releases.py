"""The release manifests the lab serves, the bare lab, and the stand-in operators waiting for their Deployments."""

import time

import requests

from tests.conftest import BareLab
from tests.lab import bootstrap, releases, versions
from tests.lab.kube import object_path
from tests.lab.kubevirt import crds

KUBEVIRT_CR = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt")
KUBEVIRTS_CRD = object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", crds.KUBEVIRT_OPERATOR_CRD)


def _fetch(url: str) -> requests.Response:
    session = requests.Session()
    session.trust_env = False
    return session.get(url, timeout=10)


def _by_kind(docs, kind, name):
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_the_lab_serves_kubevirts_and_cdis_operator_manifests_at_the_pinned_versions(lab):
    kubevirt = _fetch(f"{lab.release_url}/kubevirt/{versions.KUBEVIRT}/kubevirt-operator.yaml")
    cdi = _fetch(f"{lab.release_url}/cdi/{versions.CDI}/cdi-operator.yaml")
    assert kubevirt.status_code == 200 and cdi.status_code == 200
    kv_docs, cdi_docs = releases.documents(kubevirt.text), releases.documents(cdi.text)

    operator = _by_kind(kv_docs, "Deployment", "virt-operator")
    assert operator["metadata"]["namespace"] == "kubevirt"
    image = operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"quay.io/kubevirt/virt-operator:{versions.KUBEVIRT}"
    # The CRD in the manifest is the one virt-operator's generator makes, as the lab registers it.
    assert _by_kind(kv_docs, "CustomResourceDefinition", crds.KUBEVIRT_OPERATOR_CRD)["spec"] == \
        crds.by_name(crds.kubevirt_crds(), crds.KUBEVIRT_OPERATOR_CRD)["spec"]
    assert {"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Namespace",
            "PriorityClass"} <= {d["kind"] for d in kv_docs}

    cdi_operator = _by_kind(cdi_docs, "Deployment", "cdi-operator")
    assert cdi_operator["metadata"]["namespace"] == "cdi"
    assert f"cdi-operator:{versions.CDI}" in cdi_operator["spec"]["template"]["spec"]["containers"][0]["image"]
    assert _by_kind(cdi_docs, "CustomResourceDefinition", crds.CDI_OPERATOR_CRD)["spec"]["names"]["kind"] == "CDI"

    # An air-gapped site's copy: the same files, on disk.
    on_disk = lab.release_dir / releases.KUBEVIRT_OPERATOR
    assert on_disk.read_text() == kubevirt.text
    assert _fetch(f"{lab.release_url}/kubevirt/v0.0.1/kubevirt-operator.yaml").status_code == 404


def test_the_normal_lab_installed_the_operators_from_those_manifests(admin):
    for namespace, name in (("kubevirt", "virt-operator"), ("cdi", "cdi-operator")):
        deployment = admin.get(object_path("apps/v1", "deployments", name, namespace))
        assert deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"]
    assert admin.get(KUBEVIRT_CR)["status"]["phase"] == "Deployed"


def _assert_bare(bare_lab):
    kube = bare_lab.admin()
    assert len(kube.get(object_path("v1", "nodes"))["items"]) == len(bootstrap.NODES)
    assert kube.get_or_none(KUBEVIRTS_CRD) is None
    assert kube.get_or_none(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                        crds.CDI_OPERATOR_CRD)) is None
    assert kube.get_or_none(object_path("v1", "namespaces", "kubevirt")) is None
    assert kube.get_or_none(object_path("apiregistration.k8s.io/v1", "apiservices",
                                        "v1.subresources.kubevirt.io")) is None
    assert bare_lab.env["LAB_RELEASE_URL"].startswith("http://127.0.0.1:")


def test_a_bare_lab_has_nothing_of_kubevirt_and_its_operator_acts_only_once_its_deployment_exists(tmp_path, lab):
    """A KubeVirt CR without virt-operator stays as it is; the operator manifest brings it to Deployed."""
    own = BareLab(tmp_path / "lab")
    own.start()
    try:
        _assert_bare(own)
        kube = own.admin()
        docs = releases.documents(releases.kubevirt_operator_yaml())
        first = [d for d in docs if d["kind"] in ("Namespace", "CustomResourceDefinition")]
        for doc in first:
            kube.apply(bootstrap.manifest_object_path(doc), doc, "test", force=True)
        bootstrap.wait_established(kube, [crds.KUBEVIRT_OPERATOR_CRD])
        kube.apply(KUBEVIRT_CR, bootstrap.kubevirt_cr(["Snapshot"]), "test")
        time.sleep(3)  # time enough for an operator that would act (it acts within a second otherwise)
        assert "status" not in kube.get(KUBEVIRT_CR)

        for doc in docs:
            if doc not in first:
                kube.apply(bootstrap.manifest_object_path(doc), doc, "test", force=True)
        # Bounded generously: on a loaded machine the controller-manager's Deployment and the stand-in's informers
        # (retrying every CRD a bare lab lacks) take their time.
        deadline = time.monotonic() + 180
        while kube.get(KUBEVIRT_CR).get("status", {}).get("phase") != "Deployed":
            assert time.monotonic() < deadline, kube.get(KUBEVIRT_CR).get("status")
            time.sleep(0.2)
        deployment = kube.get(object_path("apps/v1", "deployments", "virt-operator", "kubevirt"))
        assert deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"]
    finally:
        own.command("down")
