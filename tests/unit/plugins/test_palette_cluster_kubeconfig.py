"""A Palette cluster's kubeconfig: base64 or not, its credentials, and the file written with mode 0600."""

import base64
import os
import stat

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.palette.client import PaletteError
from ansible_collections.palette.vmo.plugins.module_utils.palette.cluster_kubeconfig import (
    KubeconfigError, decode_kubeconfig, fetch_kubeconfig, file_changes, kubeconfig_secrets, write_kubeconfig)

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: vmo-lab
  cluster: {server: "https://127.0.0.1:6443", certificate-authority-data: Q0EtREFUQQ==}
users:
- name: palette-vmo-lab-client
  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZLVNFQ1JFVA==}
- name: token-user
  user: {token: the-token}
contexts:
- name: vmo-lab
  context: {cluster: vmo-lab, user: palette-vmo-lab-client}
current-context: vmo-lab
"""


def test_base64_is_decoded_and_plain_text_kept():
    encoded = base64.b64encode(KUBECONFIG.encode()).decode()
    assert decode_kubeconfig(encoded) == KUBECONFIG
    # Palette may wrap the base64 over lines.
    assert decode_kubeconfig("\n".join(encoded[i:i + 60] for i in range(0, len(encoded), 60)) + "\n") == KUBECONFIG
    assert decode_kubeconfig(KUBECONFIG) == KUBECONFIG
    assert decode_kubeconfig(KUBECONFIG.encode()) == KUBECONFIG
    # Valid base64 of something that is not text stays as it was given.
    binary = base64.b64encode(b"\xff\xfe\x00").decode()
    assert decode_kubeconfig(binary) == binary


def test_credentials_are_named_for_no_log():
    assert kubeconfig_secrets(KUBECONFIG) == {"S0VZLVNFQ1JFVA==", "the-token"}
    assert kubeconfig_secrets("{not yaml: [") == {"{not yaml: ["}
    assert kubeconfig_secrets("- a list") == {"- a list"}


class FakeClient:
    def __init__(self, answer):
        self.answer, self.paths = answer, []

    def call(self, method, path, accept=None):
        assert method == "GET" and accept == "application/octet-stream"
        self.paths.append(path)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_fetch_reads_the_asked_asset():
    client = FakeClient(base64.b64encode(KUBECONFIG.encode()).decode())
    assert fetch_kubeconfig(client, "vmo-lab", "c1", "client") == KUBECONFIG
    assert fetch_kubeconfig(client, "vmo-lab", "c1", "admin") == KUBECONFIG
    assert client.paths == ["/v1/spectroclusters/c1/assets/kubeconfigclient",
                            "/v1/spectroclusters/c1/assets/adminKubeconfig"]
    as_json = fetch_kubeconfig(FakeClient({"apiVersion": "v1", "kind": "Config"}), "vmo-lab", "c1", "client")
    assert '"kind": "Config"' in as_json


def test_fetch_failures_name_the_cluster_and_never_the_content():
    missing = FakeClient(PaletteError(404, {"message": "kubeconfig not found"}, "GET", "/v1/x"))
    with pytest.raises(KubeconfigError, match="cluster vmo-lab: Palette has no client kubeconfig for it"):
        fetch_kubeconfig(missing, "vmo-lab", "c1", "client")
    with pytest.raises(KubeconfigError, match="cluster vmo-lab: Palette returned an empty admin kubeconfig"):
        fetch_kubeconfig(FakeClient("  \n"), "vmo-lab", "c1", "admin")


def test_file_written_atomically_with_mode_0600_only_when_it_differs(tmp_path):
    path = str(tmp_path / "vmo-lab.kubeconfig")
    assert file_changes(path, KUBECONFIG) == ["content"]
    write_kubeconfig(path, KUBECONFIG, ["content"])
    assert open(path).read() == KUBECONFIG and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert file_changes(path, KUBECONFIG) == []
    assert os.listdir(str(tmp_path)) == ["vmo-lab.kubeconfig"]  # no temporary file left beside it

    os.chmod(path, 0o644)
    assert file_changes(path, KUBECONFIG) == ["mode"]
    inode = os.stat(path).st_ino
    write_kubeconfig(path, KUBECONFIG, ["mode"])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and os.stat(path).st_ino == inode

    os.chmod(path, 0o644)
    assert file_changes(path, KUBECONFIG + "# new\n") == ["content", "mode"]
    write_kubeconfig(path, KUBECONFIG + "# new\n", ["content", "mode"])
    assert open(path).read().endswith("# new\n") and stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_failed_write_is_a_clear_error_and_leaves_nothing_behind(tmp_path, monkeypatch):
    path = tmp_path / "k"

    def refuse(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "rename", refuse)
    with pytest.raises(KubeconfigError, match="kubeconfig_dest: cannot write .*/k: .*No space left on device"):
        write_kubeconfig(str(path), KUBECONFIG, ["content"])
    assert os.listdir(str(tmp_path)) == []
    with pytest.raises(KubeconfigError, match="kubeconfig_dest: cannot write"):
        write_kubeconfig(str(tmp_path / "missing" / "k"), KUBECONFIG, ["content"])
