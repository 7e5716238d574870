# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Palette cluster's kubeconfig, fetched by the cluster's name and kept in memory.

The Kubernetes modules and the KubeVirt inventory take `palette_cluster` (a name or uid) with the Palette
connection options instead of a kubeconfig: the cluster is looked up in the project, and its kubeconfig is
read from `GET /v1/spectroclusters/{uid}/assets/kubeconfigclient` (or `/assets/adminKubeconfig`), as
Palette's SDK does (palette-sdk-go client/cluster.go GetClusterClientKubeConfig and
GetClusterAdminKubeConfig: the body is the kubeconfig, base64-encoded or not). The kubeconfig is returned as
a dict and never written anywhere; kube/memory_kubeconfig.py turns it into a connection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import os
import re

from ansible.module_utils.six.moves.urllib.parse import quote

from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import YamlInputError, load_yaml
from ansible_collections.palette.vmo.plugins.module_utils.palette.client import (
    PALETTE_ARG_SPEC, PaletteClient, PaletteConfigError, PaletteError)

OCTET_STREAM = "application/octet-stream"
PALETTE_CLUSTER_OPTIONS = dict(
    palette_cluster=dict(type="str"),
    palette_kubeconfig_kind=dict(type="str", choices=["client", "admin"], default="client"),
)
# The options of a Kubernetes module that can address its cluster through Palette.
PALETTE_CLUSTER_ARG_SPEC = dict(PALETTE_ARG_SPEC, **PALETTE_CLUSTER_OPTIONS)
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


class PaletteKubeconfigError(PaletteConfigError):
    """Palette has no usable kubeconfig for the cluster."""


def decode_kubeconfig(body, origin):
    """The kubeconfig dict from Palette's answer: the kubeconfig's YAML (or JSON) text, base64-encoded or not.

    Errors name `origin` and never quote the text: it holds the cluster's credentials.
    """
    if isinstance(body, dict):
        kubeconfig = body
    else:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
        compact = "".join(text.split())
        if compact and len(compact) % 4 == 0 and _BASE64.match(compact):
            # Palette's SDK decodes any body that is valid base64 (apiutil.IsBase64); text that only looks
            # like base64 (a single word) decodes to bytes that are not text, and is kept as it is.
            try:
                text = base64.b64decode(compact, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                pass
        if not text.strip():
            raise PaletteKubeconfigError("%s is empty: Palette has none for the cluster yet" % origin)
        try:
            kubeconfig = load_yaml(text)
        except YamlInputError as err:
            line = re.search(r"line (\d+)", err.detail)
            raise PaletteKubeconfigError("%s is not YAML%s" % (origin, " (line %s)" % line.group(1) if line else ""))
    if not isinstance(kubeconfig, dict) or not kubeconfig.get("clusters") or not kubeconfig.get("users"):
        raise PaletteKubeconfigError("%s is not a kubeconfig (no clusters and users)" % origin)
    return kubeconfig


def fetch_kubeconfig(client, cluster_uid, kind, origin):
    """The kubeconfig of a cluster given by uid, as a dict (see decode_kubeconfig)."""
    uid = quote(cluster_uid, safe="")
    try:
        # A file download (the spec's `produces: application/octet-stream`), not a JSON document.
        if kind == "admin":
            body = client.call("GET", "/v1/spectroclusters/%s/assets/adminKubeconfig" % uid, accept=OCTET_STREAM)
        else:
            body = client.call("GET", "/v1/spectroclusters/%s/assets/kubeconfigclient" % uid, accept=OCTET_STREAM)
    except PaletteError as err:
        if err.status == 404:
            raise PaletteKubeconfigError("%s: Palette has none (HTTP 404: %s)" % (origin, err.describe()))
        raise
    return decode_kubeconfig(body, origin)


def cluster_label(name, kind):
    return "the %s kubeconfig of Palette cluster %r" % (kind, name)


def find_cluster_uid(client, name_or_uid):
    """The uid of the cluster named (or with the uid) `name_or_uid` in the client's project."""
    cluster = client.find_cluster(name_or_uid)
    if cluster is None:
        where = "project %r" % client.project_name if client.project_uid else "the tenant scope"
        raise PaletteConfigError("palette_cluster: Palette cluster %r not found in %s" % (name_or_uid, where))
    return cluster["metadata"]["uid"]


def palette_cluster_kubeconfig(params):
    """(kubeconfig dict, origin phrase) of the cluster `params["palette_cluster"]`, from the Palette options."""
    client = PaletteClient(params)
    kind = params.get("palette_kubeconfig_kind") or "client"
    uid = find_cluster_uid(client, params["palette_cluster"])
    origin = cluster_label(params["palette_cluster"], kind)
    return fetch_kubeconfig(client, uid, kind, origin), origin


class PaletteClusterSource(object):
    """The kubeconfig source of a Kubernetes module (kube/auth.KubeModule) that takes `palette_cluster`."""

    option = "palette_cluster"

    @staticmethod
    def wanted(params):
        return bool(params.get("palette_cluster"))

    @staticmethod
    def fetch(params):
        return palette_cluster_kubeconfig(params)


def palette_params(get_option):
    """The Palette options of a plugin (not a module): its options, else their PALETTE_* environment."""
    params = {}
    for name, spec in PALETTE_CLUSTER_ARG_SPEC.items():
        value = get_option(name)
        if value is None and spec.get("fallback"):
            value = next((os.environ[var] for var in spec["fallback"][1] if os.environ.get(var)), None)
        if spec.get("type") == "bool" and isinstance(value, str):
            value = value.lower() in ("1", "true", "yes", "on")
        elif spec.get("type") in ("str", "path") and value is not None:
            value = str(value)  # a vaulted value becomes its text here
            if spec["type"] == "path":
                value = os.path.expanduser(value)
        if value is None:
            value = spec.get("default")
        params[name] = value
    return params
