"""What the lab registers beside KubeVirt, as the VMO pack (and Velero) does: VmTemplates, Multus's
NetworkAttachmentDefinitions, the external-snapshotter's VolumeSnapshots and Velero's kinds."""

from tests.lab.kube import KubeError, object_path


def test_network_attachment_definitions_are_served_as_multus_defines_them(admin, namespace):
    crd = admin.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                "network-attachment-definitions.k8s.cni.cncf.io"))
    assert crd["spec"]["names"]["kind"] == "NetworkAttachmentDefinition" and crd["spec"]["scope"] == "Namespaced"
    path = object_path("k8s.cni.cncf.io/v1", "network-attachment-definitions", namespace=namespace)
    config = '{"cniVersion": "0.3.1", "type": "bridge", "bridge": "br1"}'
    admin.create(path, {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                        "metadata": {"name": "vlan-42"}, "spec": {"config": config}})
    assert admin.get(path + "/vlan-42")["spec"]["config"] == config


def test_volume_snapshot_kinds_are_served_as_the_external_snapshotter_defines_them(admin, namespace):
    for plural, scope in (("volumesnapshots", "Namespaced"), ("volumesnapshotcontents", "Cluster"),
                          ("volumesnapshotclasses", "Cluster")):
        crd = admin.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                    f"{plural}.snapshot.storage.k8s.io"))
        assert crd["spec"]["scope"] == scope
        assert [v["name"] for v in crd["spec"]["versions"] if v["served"] and v["storage"]] == ["v1"]
    # The CRD's own validation rules apply: a VolumeSnapshot needs exactly one source.
    path = object_path("snapshot.storage.k8s.io/v1", "volumesnapshots", namespace=namespace)
    try:
        admin.create(path, {"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
                            "metadata": {"name": "no-source"}, "spec": {"source": {}}})
        refused = None
    except KubeError as err:
        refused = err
    assert refused is not None and refused.status == 422


def test_velero_kinds_are_served_in_the_velero_namespace(admin):
    assert admin.get(object_path("v1", "namespaces", "velero"))["status"]["phase"] == "Active"
    for plural in ("backups", "restores", "backupstoragelocations", "downloadrequests", "deletebackuprequests"):
        crd = admin.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions", f"{plural}.velero.io"))
        assert crd["spec"]["scope"] == "Namespaced" and crd["spec"]["versions"][0]["name"] == "v1"
