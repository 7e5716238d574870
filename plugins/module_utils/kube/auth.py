# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kubernetes connection options, named and resolved as kubernetes.core does.

Options come from the task, then the K8S_AUTH_* environment, then a kubeconfig (the `kubeconfig`
option, K8S_AUTH_KUBECONFIG, KUBECONFIG or ~/.kube/config), then the in-cluster service account (an
execution environment running in a pod). The kubeconfig is read by the `kubernetes` client library,
so exec plugins, tokens and embedded certificates work as they do for kubectl.

A module may also reach its cluster through a kubeconfig it fetches itself (a Palette cluster's, given by
name): its KubeModule then has a `kubeconfig_source`, and that kubeconfig is used from memory only
(kube/memory_kubeconfig.py), in place of every option above.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import os
import ssl

from ansible.module_utils.basic import env_fallback

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.module import NestedSecretsModule
from ansible_collections.palette.vmo.plugins.module_utils.kube.memory_kubeconfig import memory_connection

try:
    from kubernetes.client import Configuration
    from kubernetes.config import ConfigException, kube_config, incluster_config

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as import_error:  # pragma: no cover - reported by the module
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = import_error

AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="raw", fallback=(env_fallback, ["K8S_AUTH_KUBECONFIG"])),
    context=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_CONTEXT"])),
    host=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_HOST"])),
    api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_API_KEY"])),
    username=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_USERNAME"])),
    password=dict(type="str", no_log=True, fallback=(env_fallback, ["K8S_AUTH_PASSWORD"])),
    client_cert=dict(type="path", aliases=["cert_file"], fallback=(env_fallback, ["K8S_AUTH_CERT_FILE"])),
    client_key=dict(type="path", aliases=["key_file"], no_log=False,
                    fallback=(env_fallback, ["K8S_AUTH_KEY_FILE"])),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"], fallback=(env_fallback, ["K8S_AUTH_SSL_CA_CERT"])),
    validate_certs=dict(type="bool", aliases=["verify_ssl"], fallback=(env_fallback, ["K8S_AUTH_VERIFY_SSL"])),
    proxy=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_PROXY"])),
    impersonate_user=dict(type="str", fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_USER"])),
    impersonate_groups=dict(type="list", elements="str",
                            fallback=(env_fallback, ["K8S_AUTH_IMPERSONATE_GROUPS"])),
)

# Every name of a Kubernetes connection option, aliases included.
AUTH_OPTION_NAMES = frozenset(list(AUTH_ARG_SPEC) + [
    alias for spec in AUTH_ARG_SPEC.values() for alias in spec.get("aliases", [])])

# Fields of a kubeconfig user that hold a credential; everything under these is one.
KUBECONFIG_SECRET_FIELDS = ("token", "password", "client-key-data")
KUBECONFIG_SECRET_SECTIONS = ("auth-provider", "exec")


def _strings(value):
    if isinstance(value, (dict, list)):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)
    elif isinstance(value, str) and value:
        yield value


def kubeconfig_secrets(kubeconfig):
    """The credentials in a kubeconfig given as a dict: tokens, passwords, keys, auth-provider and exec
    settings. Only these, not the whole dict: its context, cluster and user names are words such as
    `default` that masking would blank out of every result."""
    secrets = set()
    if not isinstance(kubeconfig, dict):
        return secrets
    for entry in kubeconfig.get("users") or []:
        user = entry.get("user") if isinstance(entry, dict) else None
        if not isinstance(user, dict):
            continue
        for field in KUBECONFIG_SECRET_FIELDS + KUBECONFIG_SECRET_SECTIONS:
            secrets.update(_strings(user.get(field)))
    return secrets


def fetched_kubeconfig_secrets(kubeconfig):
    """Everything of a fetched kubeconfig that identifies or authenticates: its credentials, and its certificate
    and CA data, base64 and decoded. None of it is ever meant to be shown; naming it all no_log is the guard."""
    secrets = kubeconfig_secrets(kubeconfig)
    sections = [e.get("user") for e in (kubeconfig or {}).get("users") or [] if isinstance(e, dict)]
    sections += [e.get("cluster") for e in (kubeconfig or {}).get("clusters") or [] if isinstance(e, dict)]
    for section in sections:
        if not isinstance(section, dict):
            continue
        for field in ("client-certificate-data", "client-key-data", "certificate-authority-data"):
            value = section.get(field)
            if not isinstance(value, str) or not value:
                continue
            secrets.add(value)
            try:
                decoded = base64.b64decode("".join(value.split())).decode("ascii")
            except (ValueError, UnicodeDecodeError):
                continue
            secrets.add(decoded)
            if field == "client-key-data":
                # And each line of the key, in case something quotes only part of it.
                secrets.update(line for line in decoded.splitlines()
                               if len(line) >= 16 and not line.startswith("-----"))
    return secrets


class KubeModule(NestedSecretsModule):
    """The module class of the Kubernetes modules: the credentials inside a kubeconfig dict are no_log.

    `kubeconfig_source` (optional) is another way to the cluster, an object with:
    `option` (the option that selects it, for messages), `wanted(params)` (whether the task uses it) and
    `fetch(params)` (returns the kubeconfig dict and a phrase naming where it came from, such as "the client
    kubeconfig of Palette cluster 'edge-1'"). When the task uses it, none of the Kubernetes connection options
    may be given in the task (a conflict fails before any request), the K8S_AUTH_* environment is not read,
    and the fetched kubeconfig stays in memory; every credential in it is no_log from the moment it arrives.
    """

    def __init__(self, *args, **kwargs):
        self.kubeconfig_source = kwargs.pop("kubeconfig_source", None)
        self.task_options = frozenset()
        super(KubeModule, self).__init__(*args, **kwargs)
        if self.uses_kubeconfig_source():
            option = self.kubeconfig_source.option
            conflicts = sorted(self.task_options & AUTH_OPTION_NAMES)
            if conflicts:
                message = ("%s and %s are mutually exclusive: give the cluster either by %s or by the Kubernetes "
                           "connection options; nothing was sent" % (option, ", ".join(conflicts), option))
                self.fail_json(msg=message, errors=["%s: mutually exclusive with %s" % (name, option) for name in conflicts])

    @staticmethod
    def nested_secrets(params):
        return kubeconfig_secrets(params.get("kubeconfig"))

    def _load_params(self):
        super(KubeModule, self)._load_params()
        # The options the task gave, before defaults and the environment fill the rest in.
        self.task_options = frozenset(k for k, v in self.params.items() if v is not None and not k.startswith("_"))

    def uses_kubeconfig_source(self):
        return bool(self.kubeconfig_source) and self.kubeconfig_source.wanted(self.params)

    def connection(self):
        """The task's connection: from the kubeconfig source when the task uses it, else from the options."""
        if not self.uses_kubeconfig_source():
            return resolve_connection(self.params)
        kubeconfig, origin = self.kubeconfig_source.fetch(self.params)
        self.no_log_values.update(fetched_kubeconfig_secrets(kubeconfig))
        return memory_connection(kubeconfig, origin)


def module_connection(module):
    """The connection of a module's task (KubeModule.connection), or from its options for a plain module."""
    connection = getattr(module, "connection", None)
    return connection() if callable(connection) else resolve_connection(module.params)


class AuthError(ModuleFailure):
    """The options do not give a usable way to reach a cluster."""


class Connection(object):
    """Everything a client needs to talk to one apiserver."""

    def __init__(self, configuration, impersonate_user=None, impersonate_groups=None):
        self.configuration = configuration
        self.server = configuration.host.rstrip("/")
        self.proxy = configuration.proxy
        self.impersonate_user = impersonate_user
        self.impersonate_groups = impersonate_groups or []

    @property
    def verify(self):
        return bool(self.configuration.verify_ssl)

    def pool_options(self):
        """Keyword arguments of urllib3's PoolManager: verification and the certificate files, if any."""
        cfg = self.configuration
        options = {"cert_reqs": ssl.CERT_REQUIRED if self.verify else ssl.CERT_NONE}
        for attribute, option in (("ssl_ca_cert", "ca_certs"), ("cert_file", "cert_file"), ("key_file", "key_file"),
                                  ("tls_server_name", "server_hostname")):
            if getattr(cfg, attribute, None):
                options[option] = getattr(cfg, attribute)
        return options

    @staticmethod
    def tls_hint():
        return "set ca_cert to the cluster's CA certificate"

    def auth_headers(self):
        """Fresh on every call: an exec plugin or a rotating token may have renewed it."""
        headers = {}
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"]] = setting["value"]
        if self.configuration.username and self.configuration.password and "authorization" not in headers:
            headers["authorization"] = self.configuration.get_basic_auth_token()
        if self.impersonate_user:
            headers["Impersonate-User"] = self.impersonate_user
        return headers

    def impersonate_group_headers(self):
        return [("Impersonate-Group", group) for group in self.impersonate_groups]


def _kubeconfig_path(value):
    if value:
        return value
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    default = os.path.expanduser("~/.kube/config")
    return default if os.path.exists(default) else None


def _load_kubeconfig(params, configuration):
    source = _kubeconfig_path(params.get("kubeconfig"))
    if isinstance(source, dict):
        kube_config.load_kube_config_from_dict(source, context=params.get("context"),
                                               client_configuration=configuration, persist_config=False)
        return True
    if source:
        if not os.path.exists(source):
            raise AuthError("kubeconfig %s does not exist" % source)
        kube_config.load_kube_config(config_file=source, context=params.get("context"),
                                     client_configuration=configuration, persist_config=False)
        return True
    return False


def _load_in_cluster(configuration):
    try:
        incluster_config.InClusterConfigLoader(
            token_filename=incluster_config.SERVICE_TOKEN_FILENAME,
            cert_filename=incluster_config.SERVICE_CERT_FILENAME,
        ).load_and_set(configuration)
        return True
    except ConfigException:
        return False


def resolve_connection(params):
    """Builds a Connection from module parameters; raises AuthError with the reason when it cannot."""
    if not HAS_KUBERNETES:
        raise AuthError("the kubernetes Python library is required: %s" % KUBERNETES_IMPORT_ERROR)
    configuration = Configuration()
    explicit_credentials = params.get("api_key") or params.get("client_cert") or params.get("username")
    loaded = False
    if not (params.get("host") and explicit_credentials):
        try:
            loaded = _load_kubeconfig(params, configuration) or _load_in_cluster(configuration)
        except (ConfigException, OSError, ValueError, KeyError) as err:
            raise AuthError("cannot read kubeconfig: %s" % err)
    if params.get("host"):
        configuration.host = params["host"]
    if params.get("api_key"):
        configuration.api_key = {"BearerToken": "Bearer %s" % params["api_key"]}
        configuration.refresh_api_key_hook = None
    for option, attribute in (("client_cert", "cert_file"), ("client_key", "key_file"),
                              ("ca_cert", "ssl_ca_cert"), ("username", "username"),
                              ("password", "password"), ("proxy", "proxy")):
        if params.get(option):
            setattr(configuration, attribute, params[option])
    if params.get("validate_certs") is not None:
        configuration.verify_ssl = params["validate_certs"]
    if not loaded and not (params.get("host") and explicit_credentials):
        raise AuthError(
            "no Kubernetes credentials: set kubeconfig (or K8S_AUTH_KUBECONFIG / KUBECONFIG), or host with "
            "api_key or client_cert, or run inside a pod with a service account")
    if not configuration.host or configuration.host == "http://localhost":
        raise AuthError("no Kubernetes API server: set host (or K8S_AUTH_HOST) or a kubeconfig with a server")
    for path_option in ("ssl_ca_cert", "cert_file", "key_file"):
        path = getattr(configuration, path_option)
        if path and not os.path.exists(path):
            raise AuthError("%s file %s does not exist" % (path_option, path))
    return Connection(configuration, params.get("impersonate_user"), params.get("impersonate_groups"))


def auth_params(get_option):
    """The auth options for a plugin (not a module): its options, else the K8S_AUTH_* environment."""
    params = {}
    for name, spec in AUTH_ARG_SPEC.items():
        value = get_option(name)
        if value is None and spec.get("fallback"):
            for var in spec["fallback"][1]:
                if os.environ.get(var):
                    value = os.environ[var]
                    break
        if spec.get("type") == "bool" and isinstance(value, str):
            value = value.lower() in ("1", "true", "yes", "on")
        if spec.get("type") == "list" and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        params[name] = value
    return params
