"""A Palette cluster's kubeconfig by name: Palette's answer decoded as its SDK does, errors that name the cluster
and never quote the kubeconfig, the plugin options' environment, and one source of connection per task."""

import base64
import json

import pytest
import yaml

from ansible.module_utils import basic
from ansible.module_utils.common.text.converters import to_bytes

from ansible_collections.palette.vmo.plugins.module_utils.kube.auth import AUTH_ARG_SPEC, KubeModule
from ansible_collections.palette.vmo.plugins.module_utils.palette import cluster_access
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
    PaletteConfigError, PaletteError)
from ansible_collections.palette.vmo.plugins.module_utils.palette.cluster_access import (
    PALETTE_CLUSTER_ARG_SPEC, PaletteClusterSource, PaletteKubeconfigError, decode_kubeconfig, fetch_kubeconfig,
    find_cluster_uid, palette_params)

ORIGIN = "the client kubeconfig of Palette cluster 'lab-cluster'"
KUBECONFIG = {"apiVersion": "v1", "kind": "Config", "current-context": "ctx",
              "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
              "users": [{"name": "u", "user": {"token": "s3cret-token"}}],
              "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}]}
TEXT = yaml.safe_dump(KUBECONFIG)


@pytest.mark.parametrize("body", [
    TEXT, TEXT.encode(), base64.b64encode(TEXT.encode()).decode(),
    # base64 wrapped over lines, as `base64` prints it
    "\n".join(base64.b64encode(TEXT.encode()).decode()[i:i + 76] for i in range(0, 400, 76))
    + base64.b64encode(TEXT.encode()).decode()[400:],
    KUBECONFIG,  # a JSON kubeconfig, which the client decodes already
])
def test_palette_answers_decode_to_the_kubeconfig(body):
    assert decode_kubeconfig(body, ORIGIN) == KUBECONFIG


@pytest.mark.parametrize("body, message", [
    ("", "is empty: Palette has none for the cluster yet"),
    ("  \n", "is empty"),
    ("users: [\n  token: s3cret-token\n", r"is not YAML \(line"),
    ("just text", "is not a kubeconfig"),
    ({"clusters": []}, "is not a kubeconfig"),
])
def test_unusable_answers_name_the_cluster_and_quote_nothing(body, message):
    with pytest.raises(PaletteKubeconfigError, match=message) as err:
        decode_kubeconfig(body, ORIGIN)
    assert ORIGIN in str(err.value) and "s3cret" not in str(err.value)


class FakePalette:
    project_name, project_uid = "lab", "p1"

    def __init__(self, answer=TEXT, clusters=None):
        self.answer, self.calls = answer, []
        self.clusters = clusters if clusters is not None else {"lab-cluster": "c0ffee"}

    def call(self, method, path, accept="application/json", **_):
        self.calls.append((method, path, accept))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    def find_cluster(self, name):
        uid = self.clusters.get(name)
        return {"metadata": {"name": name, "uid": uid}} if uid else None


@pytest.mark.parametrize("kind, asset", [("client", "kubeconfigclient"), ("admin", "adminKubeconfig")])
def test_the_kubeconfig_is_downloaded_as_a_file(kind, asset):
    palette = FakePalette()
    assert fetch_kubeconfig(palette, "c0ffee", kind, ORIGIN) == KUBECONFIG
    assert palette.calls == [("GET", "/v1/spectroclusters/c0ffee/assets/%s" % asset, "application/octet-stream")]


def test_no_kubeconfig_in_palette_is_a_clear_error():
    palette = FakePalette(PaletteError(404, {"code": "ResourceNotFound", "message": "no kubeconfig"}, "GET", "/x"))
    with pytest.raises(PaletteKubeconfigError, match="%s: Palette has none" % ORIGIN):
        fetch_kubeconfig(palette, "c0ffee", "client", ORIGIN)
    refused = FakePalette(PaletteError(403, {"message": "forbidden"}, "GET", "/x"))
    with pytest.raises(PaletteError, match="forbidden"):
        fetch_kubeconfig(refused, "c0ffee", "admin", ORIGIN)


def test_an_unknown_cluster_names_itself_and_the_project():
    palette = FakePalette(clusters={})
    with pytest.raises(PaletteConfigError) as err:
        find_cluster_uid(palette, "no-such")
    assert str(err.value) == "palette_cluster: Palette cluster 'no-such' not found in project 'lab'"
    palette.project_uid = None
    with pytest.raises(PaletteConfigError, match="not found in the tenant scope"):
        find_cluster_uid(palette, "no-such")
    assert find_cluster_uid(FakePalette(), "lab-cluster") == "c0ffee"


def test_plugin_options_fall_back_to_the_palette_environment(monkeypatch):
    monkeypatch.setenv("PALETTE_HOST", "https://palette.example")
    monkeypatch.setenv("PALETTE_API_KEY", "k3y")
    monkeypatch.setenv("PALETTE_VALIDATE_CERTS", "false")
    monkeypatch.delenv("PALETTE_PROJECT", raising=False)
    options = {"palette_cluster": "edge-1", "palette_project": "Default", "palette_ca_cert": "~/ca.pem"}
    params = palette_params(options.get)
    assert params["palette_host"] == "https://palette.example" and params["palette_api_key"] == "k3y"
    assert params["palette_validate_certs"] is False and params["palette_project"] == "Default"
    assert params["palette_kubeconfig_kind"] == "client" and params["palette_timeout"] == 30
    assert params["palette_ca_cert"].endswith("/ca.pem") and not params["palette_ca_cert"].startswith("~")
    assert set(params) == set(PALETTE_CLUSTER_ARG_SPEC)


# -- KubeModule with the Palette source -------------------------------------------------------------------

class CountingSource(PaletteClusterSource):
    fetched = 0

    @classmethod
    def fetch(cls, params):
        cls.fetched += 1
        return KUBECONFIG, ORIGIN


def kube_module(monkeypatch, **args):
    spec = dict(AUTH_ARG_SPEC, **PALETTE_CLUSTER_ARG_SPEC)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", to_bytes(json.dumps({"ANSIBLE_MODULE_ARGS": args})))
    monkeypatch.setattr(basic, "_ANSIBLE_PROFILE", "legacy")
    CountingSource.fetched = 0
    return KubeModule(argument_spec=spec, supports_check_mode=True, kubeconfig_source=CountingSource())


@pytest.mark.parametrize("given, named", [
    ({"kubeconfig": "/k"}, "kubeconfig"),
    ({"host": "https://h", "api_key": "t0ken-value"}, "api_key, host"),
    ({"cert_file": "/c.crt"}, "cert_file"),
    ({"validate_certs": False}, "validate_certs"),
])
def test_palette_cluster_with_kubernetes_options_is_refused_before_any_request(monkeypatch, capsys, given, named):
    with pytest.raises(SystemExit):
        kube_module(monkeypatch, palette_cluster="lab-cluster", **given)
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert result["msg"].startswith("palette_cluster and %s are mutually exclusive" % named)
    assert CountingSource.fetched == 0


def test_the_kubernetes_environment_is_not_read_with_palette_cluster(monkeypatch):
    monkeypatch.setenv("K8S_AUTH_KUBECONFIG", "/somewhere/kubeconfig")
    monkeypatch.setenv("K8S_AUTH_HOST", "https://elsewhere")
    module = kube_module(monkeypatch, palette_cluster="lab-cluster")
    connection = module.connection()
    assert CountingSource.fetched == 1
    assert connection.server == "https://127.0.0.1:6443" and connection.origin == ORIGIN
    assert "s3cret-token" in module.no_log_values


def test_without_palette_cluster_the_source_is_not_used(monkeypatch):
    module = kube_module(monkeypatch, host="https://127.0.0.1:6443", api_key="t0ken")
    assert module.uses_kubeconfig_source() is False
    assert module.connection().server == "https://127.0.0.1:6443" and CountingSource.fetched == 0


def test_the_module_options_are_the_palette_ones_plus_the_cluster():
    assert set(PALETTE_CLUSTER_ARG_SPEC) - set(cluster_access.PALETTE_ARG_SPEC) == {
        "palette_cluster", "palette_kubeconfig_kind"}
    assert PALETTE_CLUSTER_ARG_SPEC["palette_api_key"]["no_log"] is True
