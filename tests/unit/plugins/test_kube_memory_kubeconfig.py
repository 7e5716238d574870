"""A kubeconfig held in memory becomes a connection with nothing written: context chosen, credentials read,
unsupported forms refused by field, TLS material loaded through in-memory files only."""

import base64
import os
import ssl

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import fetched_kubeconfig_secrets
from ansible_collections.palette.vmo.plugins.module_utils.kube.memory_kubeconfig import (
    MemoryKubeconfigError, memory_connection, memory_file, select_context)

from tests.lab import pki

ORIGIN = "the client kubeconfig of Palette cluster 'edge-1'"


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    """A CA and a client certificate signed by it, as PEM bytes, and a second key that does not match."""
    folder = tmp_path_factory.mktemp("pki")
    ca = pki.make_ca(folder / "ca", "test-ca")
    pki.make_leaf(folder / "client", ca, "palette-edge-1-client")
    pki.make_leaf(folder / "other", ca, "someone-else")
    return {"ca": (folder / "ca.crt").read_bytes(), "cert": (folder / "client.crt").read_bytes(),
            "key": (folder / "client.key").read_bytes(), "other_key": (folder / "other.key").read_bytes()}


def b64(data):
    return base64.b64encode(data).decode()


def kubeconfig(user, cluster=None, current="ctx"):
    return {"apiVersion": "v1", "kind": "Config", "current-context": current,
            "clusters": [{"name": "c", "cluster": dict({"server": "https://10.0.0.1:6443"}, **(cluster or {}))}],
            "users": [{"name": "u", "user": user}],
            "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}


def test_client_certificate_connection(material, monkeypatch):
    made = []
    real = os.memfd_create
    monkeypatch.setattr(os, "memfd_create", lambda *a: made.append(a) or real(*a))
    config = kubeconfig({"client-certificate-data": b64(material["cert"]), "client-key-data": b64(material["key"])},
                        {"certificate-authority-data": b64(material["ca"]), "tls-server-name": "api.edge-1"})
    connection = memory_connection(config, ORIGIN)
    assert connection.server == "https://10.0.0.1:6443" and connection.verify is True
    assert connection.auth_headers() == {} and connection.impersonate_group_headers() == []
    options = connection.pool_options()
    assert options["cert_reqs"] == ssl.CERT_REQUIRED and options["server_hostname"] == "api.edge-1"
    context = options["ssl_context"]
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname is True
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test-ca"),),)]
    assert len(made) == 2, "certificate and key each through one anonymous in-memory file"
    assert "ca_certs" not in options and "cert_file" not in options and "key_file" not in options


def test_token_and_basic_credentials(material):
    token = memory_connection(kubeconfig({"token": "abc"}, {"certificate-authority-data": b64(material["ca"])}), ORIGIN)
    assert token.auth_headers() == {"authorization": "Bearer abc"}
    basic = memory_connection(kubeconfig({"username": "u", "password": "p"}), ORIGIN)
    assert basic.auth_headers() == {"authorization": "Basic " + b64(b"u:p")}


def test_insecure_skip_tls_verify_is_not_honoured():
    connection = memory_connection(kubeconfig({"token": "t"}, {"insecure-skip-tls-verify": True}), ORIGIN)
    assert connection.verify is True and connection.ssl_context.verify_mode == ssl.CERT_REQUIRED


def test_the_only_context_is_used_when_none_is_current():
    config = kubeconfig({"token": "t"}, current=None)
    assert select_context(config, ORIGIN)[1] == {"token": "t"}
    config["contexts"].append({"name": "two", "context": {"cluster": "c", "user": "u"}})
    with pytest.raises(MemoryKubeconfigError, match="no current-context and 2 contexts"):
        select_context(config, ORIGIN)


@pytest.mark.parametrize("user, cluster, message", [
    ({"exec": {"command": "kubelogin"}}, None, "user uses exec"),
    ({"auth-provider": {"name": "oidc"}}, None, "user uses auth-provider"),
    ({"client-certificate": "/x.crt", "client-key": "/x.key"}, None, "user uses client-certificate"),
    ({"tokenFile": "/var/run/token"}, None, "user uses tokenFile"),
    ({"token": "t"}, {"certificate-authority": "/ca.crt"}, "cluster uses certificate-authority"),
    ({}, None, "its user has no credentials"),
    ({"client-certificate-data": "QUJD"}, None, "its user has no credentials"),
    ({"token": "t"}, {"server": "http://10.0.0.1:8080"}, "is not an https:// URL"),
    ({"token": "t"}, {"certificate-authority-data": "not base64!"}, "certificate-authority-data is not base64"),
])
def test_refused_forms_name_the_field(user, cluster, message):
    with pytest.raises(MemoryKubeconfigError, match=message) as err:
        memory_connection(kubeconfig(user, cluster), ORIGIN)
    assert ORIGIN in str(err.value)


def test_unknown_context_names_it():
    config = kubeconfig({"token": "t"}, current="elsewhere")
    with pytest.raises(MemoryKubeconfigError, match="has no context named 'elsewhere'"):
        memory_connection(config, ORIGIN)


def test_a_key_that_does_not_match_fails_without_quoting_it(material):
    config = kubeconfig({"client-certificate-data": b64(material["cert"]),
                         "client-key-data": b64(material["other_key"])})
    with pytest.raises(MemoryKubeconfigError, match="its certificates cannot be loaded") as err:
        memory_connection(config, ORIGIN)
    assert b64(material["other_key"]) not in str(err.value) and "PRIVATE KEY" not in str(err.value)


def test_memory_file_reads_back_and_is_closed_after():
    with memory_file(b"secret bytes") as path:
        assert path.startswith("/proc/self/fd/")
        with open(path, "rb") as reader:
            assert reader.read() == b"secret bytes"
        fd = int(path.rsplit("/", 1)[1])
    with pytest.raises(OSError):
        os.fstat(fd)


def test_without_memfd_a_pipe_carries_the_data(material, monkeypatch):
    monkeypatch.delattr(os, "memfd_create")
    with memory_file(b"through a pipe") as path:
        assert path.startswith("/dev/fd/")
        with open(path, "rb") as reader:
            assert reader.read() == b"through a pipe"
    config = kubeconfig({"client-certificate-data": b64(material["cert"]), "client-key-data": b64(material["key"])})
    assert memory_connection(config, ORIGIN).ssl_context is not None
    with pytest.raises(MemoryKubeconfigError, match="does not fit in a pipe's buffer"):
        with memory_file(b"x" * (4 * 1024 * 1024)):
            pass


def test_no_temporary_file_is_made(material, monkeypatch, tmp_path):
    """Loading goes through no file the tempfile module would make, wherever TMPDIR points."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    made = []
    monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: made.append(a) or pytest.fail("mkstemp called"))
    monkeypatch.setattr(tempfile, "NamedTemporaryFile", lambda *a, **k: pytest.fail("NamedTemporaryFile called"))
    config = kubeconfig({"client-certificate-data": b64(material["cert"]), "client-key-data": b64(material["key"])},
                        {"certificate-authority-data": b64(material["ca"])})
    memory_connection(config, ORIGIN)
    assert made == [] and list(tmp_path.iterdir()) == []


def test_every_credential_of_a_fetched_kubeconfig_is_secret(material):
    config = kubeconfig({"client-certificate-data": b64(material["cert"]), "client-key-data": b64(material["key"]),
                         "token": "tok"}, {"certificate-authority-data": b64(material["ca"])})
    secrets = fetched_kubeconfig_secrets(config)
    key_pem = material["key"].decode()
    assert {"tok", b64(material["key"]), b64(material["cert"]), b64(material["ca"]), key_pem} <= secrets
    body_lines = [line for line in key_pem.splitlines() if not line.startswith("-----") and len(line) >= 16]
    assert body_lines and set(body_lines) <= secrets
    assert not {"c", "u", "ctx", "https://10.0.0.1:6443"} & secrets, "names and the server stay readable"
