"""The edge path of the vmo_pack role and kubevirt_install, on a bare lab: from nothing to a running VM.

The tests of this file share one bare lab. The first two need it bare, so they come first; the others ask for
`edge_installed`, which installs (or, after the first two, finds nothing to change) when run on their own.
"""

import json

import pytest
from ansible_collections.palette.vmo.plugins.module_utils.vmo.roles import VMO_ROLE_NAMES

from tests.lab import releases, versions
from tests.lab.kube import object_path
from tests.lab.state import ADMIN_USER

VMO_GATES = ["LiveMigration", "Snapshot", "HotplugVolumes", "VMExport", "ExpandDisks", "HotplugNICs",
             "VMLiveUpdateFeatures"]
KUBEVIRT_CR = object_path("kubevirt.io/v1", "kubevirts", "kubevirt", "kubevirt")
CDI_CR = object_path("cdi.kubevirt.io/v1beta1", "cdis", "cdi")


def _urls(bare_lab):
    base = bare_lab.env["LAB_RELEASE_URL"]
    return f"{base}/{releases.KUBEVIRT_OPERATOR}", f"{base}/{releases.CDI_OPERATOR}"


def _files(bare_lab):
    root = bare_lab.env["LAB_RELEASE_DIR"]
    return f"{root}/{releases.KUBEVIRT_OPERATOR}", f"{root}/{releases.CDI_OPERATOR}"


def _role_playbook(tmp_path, bare_lab, manifests, **extra):
    kubevirt, cdi = manifests
    role_vars = {"vmo_pack_mode": "edge", "vmo_pack_kubeconfig": bare_lab.kubeconfig,
                 "vmo_pack_kubevirt_operator_manifest": kubevirt, "vmo_pack_cdi_operator_manifest": cdi,
                 "vmo_pack_use_emulation": True, "vmo_pack_feature_gates_extra": ["Sidecar"],
                 "vmo_pack_vm_namespaces": ["edge-vms"]}
    role_vars.update(extra)
    path = tmp_path / f"edge-{len(list(tmp_path.iterdir()))}.yml"
    path.write_text(json.dumps([{"hosts": "localhost", "gather_facts": False,
                                 "roles": [{"role": "palette.vmo.vmo_pack", "vars": role_vars}]}]))
    return str(path)


def _module_args(bare_lab, manifests, **extra):
    kubevirt, cdi = manifests
    args = {"kubeconfig": bare_lab.kubeconfig, "kubevirt_operator_manifest": kubevirt,
            "cdi_operator_manifest": cdi, "feature_gates": VMO_GATES + ["Sidecar"], "use_emulation": True,
            "namespaces": ["edge-vms", "vmo-golden-images"]}
    args.update(extra)
    return args


def _admin_writes(bare_lab, mark):
    return [f"{e['verb']} {e['requestURI']}" for e in bare_lab.audit().mutations(mark, user=ADMIN_USER)]


@pytest.fixture(scope="module")
def edge_installed(bare_lab, run_module):
    result = run_module("palette.vmo.kubevirt_install", _module_args(bare_lab, _files(bare_lab)))
    assert result["kubevirt"]["phase"] == "Deployed", result
    return bare_lab


def test_check_mode_on_a_bare_cluster_predicts_the_install_and_writes_nothing(bare_lab, ansible_playbook, tmp_path):
    kube, audit = bare_lab.admin(), bare_lab.audit()
    mark = audit.mark()
    run = ansible_playbook(_role_playbook(tmp_path, bare_lab, _urls(bare_lab)), "--check", "--diff")
    assert run.rc == 0, run
    assert run.recap["localhost"]["changed"] >= 1, run
    assert "Deployment kubevirt/virt-operator" in run.stdout, run
    assert _admin_writes(bare_lab, mark) == []
    assert kube.get_or_none(object_path("v1", "namespaces", "kubevirt")) is None
    assert kube.get_or_none(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                        "kubevirts.kubevirt.io")) is None


def test_edge_path_installs_kubevirt_and_cdi_from_urls_then_reruns_from_local_files_unchanged(
        bare_lab, ansible_playbook, tmp_path):
    kube, audit = bare_lab.admin(), bare_lab.audit()
    first = ansible_playbook(_role_playbook(tmp_path, bare_lab, _urls(bare_lab)))
    assert first.rc == 0, first
    assert first.recap["localhost"]["changed"] == 2, first  # the install and the VMO roles
    assert f"KubeVirt {versions.KUBEVIRT} Deployed" in first.stdout, first
    assert f"CDI {versions.CDI} Deployed" in first.stdout, first

    kubevirt = kube.get(KUBEVIRT_CR)
    developer = kubevirt["spec"]["configuration"]["developerConfiguration"]
    assert developer["featureGates"] == VMO_GATES + ["Sidecar"]
    assert developer["useEmulation"] is True
    assert kubevirt["status"]["phase"] == "Deployed"
    assert kube.get(CDI_CR)["status"]["phase"] == "Deployed"
    for name in ("edge-vms", "vmo-golden-images", "kubevirt", "cdi"):
        assert kube.get_or_none(object_path("v1", "namespaces", name)) is not None, name
    for role in VMO_ROLE_NAMES:
        assert kube.get_or_none(object_path("rbac.authorization.k8s.io/v1", "clusterroles", role)) is not None
    operator = kube.get(object_path("apps/v1", "deployments", "virt-operator", "kubevirt"))
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"].endswith(f"virt-operator:{versions.KUBEVIRT}")

    # The same release from an air-gapped copy on disk: nothing to change, nothing written.
    mark = audit.mark()
    again = ansible_playbook(_role_playbook(tmp_path, bare_lab, _files(bare_lab)))
    assert again.rc == 0 and again.recap["localhost"]["changed"] == 0, again
    assert "0 objects changed" in again.stdout, again
    assert _admin_writes(bare_lab, mark) == []


def test_one_more_feature_gate_is_one_update_in_check_and_diff_mode_then_applied(edge_installed, bare_lab, run_module):
    kube, audit = bare_lab.admin(), bare_lab.audit()
    args = _module_args(bare_lab, _files(bare_lab), feature_gates=VMO_GATES + ["Sidecar", "GPU"])
    mark = audit.mark()
    planned = run_module("palette.vmo.kubevirt_install", args, check=True, diff=True)
    assert planned["changed"] is True, planned
    assert [o for o in planned["objects"] if o["action"] != "none"] == [
        {"kind": "KubeVirt", "name": "kubevirt", "namespace": "kubevirt", "action": "update"}]
    diff = planned["diff"][0]
    assert diff["after"]["spec"]["configuration"]["developerConfiguration"]["featureGates"][-1] == "GPU"
    assert "GPU" not in diff["before"]["spec"]["configuration"]["developerConfiguration"]["featureGates"]
    assert _admin_writes(bare_lab, mark) == []

    applied = run_module("palette.vmo.kubevirt_install", args)
    assert applied["changed"] is True and applied["kubevirt"]["phase"] == "Deployed", applied
    live = kube.get(KUBEVIRT_CR)
    assert live["spec"]["configuration"]["developerConfiguration"]["featureGates"] == VMO_GATES + ["Sidecar", "GPU"]
    assert live["status"]["observedGeneration"] == live["metadata"]["generation"]
    assert run_module("palette.vmo.kubevirt_install", args)["changed"] is False


def test_a_vm_declared_with_kubevirt_vm_runs_on_the_edge_cluster(edge_installed, bare_lab, run_module):
    result = run_module("palette.vmo.kubevirt_vm", {
        "kubeconfig": bare_lab.kubeconfig, "name": "edge-vm-1", "namespace": "edge-vms", "state": "started",
        "memory": "128Mi", "disks": [{"name": "root", "container_disk": "quay.io/containerdisks/fedora:41"}],
        "wait": True})
    assert result["changed"] is True, result
    vm = bare_lab.admin().get(object_path("kubevirt.io/v1", "virtualmachines", "edge-vm-1", "edge-vms"))
    assert vm["status"]["printableStatus"] == "Running"


@pytest.mark.parametrize("kubevirt_manifest, expected", [
    ("{url}/kubevirt/v0.0.1/kubevirt-operator.yaml", "kubevirt_operator_manifest: cannot download {url}/kubevirt/"
                                                     "v0.0.1/kubevirt-operator.yaml: HTTP 404"),
    ("/nonexistent/kubevirt-operator.yaml", "kubevirt_operator_manifest: /nonexistent/kubevirt-operator.yaml is "
                                            "neither an http(s) URL nor an existing file"),
    ("ftp://mirror.example/kubevirt-operator.yaml", "only http and https URLs, or local paths, are supported"),
    ("{cdi}", "kubevirt_operator_manifest: {cdi} has no Deployment virt-operator"),
    ("{not_yaml}", "kubevirt_operator_manifest: {not_yaml} is not valid YAML"),
    ("{no_name}", "document 1 (Deployment) lacks metadata.name"),
])
def test_bad_manifests_fail_clearly_with_nothing_written(edge_installed, bare_lab, run_module, tmp_path,
                                                         kubevirt_manifest, expected):
    not_yaml = tmp_path / "not-yaml.yaml"
    not_yaml.write_text("kind: [unclosed\n")
    no_name = tmp_path / "no-name.yaml"
    no_name.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {namespace: kubevirt}\n")
    values = {"url": bare_lab.env["LAB_RELEASE_URL"], "cdi": _files(bare_lab)[1], "not_yaml": not_yaml,
              "no_name": no_name}
    mark = bare_lab.audit().mark()
    result = run_module("palette.vmo.kubevirt_install",
                        _module_args(bare_lab, (kubevirt_manifest.format(**values), _files(bare_lab)[1])))
    assert result.get("failed") is True, result
    assert expected.format(**values) in result["msg"], result["msg"]
    assert _admin_writes(bare_lab, mark) == []


def test_a_wait_that_times_out_names_what_is_still_pending(edge_installed, bare_lab, run_module, tmp_path):
    """virt-operator scaled to zero cannot roll out a change: the wait says so, then a normal run recovers."""
    docs = releases.documents(releases.kubevirt_operator_yaml())
    for doc in docs:
        if doc["kind"] == "Deployment":
            doc["spec"]["replicas"] = 0
    stopped = tmp_path / "kubevirt-operator-stopped.yaml"
    stopped.write_text("---\n".join(json.dumps(doc) + "\n" for doc in docs))
    args = _module_args(bare_lab, (str(stopped), _files(bare_lab)[1]), feature_gates=VMO_GATES, wait_timeout=5)
    result = run_module("palette.vmo.kubevirt_install", args)
    assert result.get("failed") is True, result
    assert "KubeVirt: timed out after" in result["msg"], result["msg"]
    assert "kubevirt/kubevirt (waiting for phase Deployed; last seen: phase Deployed for generation" in result["msg"]

    recovered = run_module("palette.vmo.kubevirt_install", _module_args(bare_lab, _files(bare_lab)))
    assert recovered["changed"] is True and recovered["kubevirt"]["phase"] == "Deployed", recovered
