"""What the lab registers beside KubeVirt, as the VMO pack does: VmTemplates and Multus's NetworkAttachmentDefinitions."""

from tests.lab.kube import object_path


def test_network_attachment_definitions_are_served_as_multus_defines_them(admin, namespace):
    crd = admin.get(object_path("apiextensions.k8s.io/v1", "customresourcedefinitions",
                                "network-attachment-definitions.k8s.cni.cncf.io"))
    assert crd["spec"]["names"]["kind"] == "NetworkAttachmentDefinition" and crd["spec"]["scope"] == "Namespaced"
    path = object_path("k8s.cni.cncf.io/v1", "network-attachment-definitions", namespace=namespace)
    config = '{"cniVersion": "0.3.1", "type": "bridge", "bridge": "br1"}'
    admin.create(path, {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                        "metadata": {"name": "vlan-42"}, "spec": {"config": config}})
    assert admin.get(path + "/vlan-42")["spec"]["config"] == config
