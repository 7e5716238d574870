# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Multi-document manifests (a release's operator YAML): read from a URL or a file, checked, and placed.

Placing an object means finding its REST path: the resource name and scope of its kind, which the
cluster's discovery documents give. A kind the cluster does not serve yet may be defined by a
CustomResourceDefinition of the same batch; its names and scope then come from that CRD.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible.module_utils.urls import Request
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.kube.client import KubeApiError, object_path

from ansible_collections.palette.vmo.plugins.module_utils.common.yaml_safe import (
    HAS_YAML, YamlInputError, load_yaml_documents)


class ManifestError(ModuleFailure):
    """A manifest that cannot be read, parsed or placed; the message names the source and the object."""


def is_url(source):
    return source.startswith("http://") or source.startswith("https://")


def read_manifest(source, validate_certs=True, ca_path=None, timeout=60):
    """The text of a manifest at an http(s) URL or a local path."""
    if is_url(source):
        try:
            return Request(validate_certs=validate_certs, ca_path=ca_path, timeout=timeout).open(
                "GET", source).read().decode("utf-8")
        except HTTPError as err:
            raise ManifestError("cannot download %s: HTTP %s %s" % (source, err.code, err.reason))
        except (URLError, OSError, ValueError) as err:
            raise ManifestError("cannot download %s: %s" % (source, getattr(err, "reason", err)))
    path = os.path.expanduser(source)
    if not os.path.isfile(path):
        raise ManifestError("%s is neither an http(s) URL nor an existing file" % source)
    with open(path, "rb") as handle:
        return handle.read().decode("utf-8")


def parse_manifest(text, source):
    """The objects of a YAML stream, each checked for apiVersion, kind and metadata.name."""
    if not HAS_YAML:
        raise ManifestError("PyYAML is required to read manifests")
    try:
        documents = [doc for doc in load_yaml_documents(text) if doc is not None]
    except YamlInputError as err:
        if err.syntax:
            raise ManifestError("%s is not valid YAML: %s" % (source, err.detail))
        raise ManifestError("%s: %s" % (source, err))
    if not documents:
        raise ManifestError("%s holds no objects" % source)
    for index, doc in enumerate(documents, start=1):
        if not isinstance(doc, dict):
            raise ManifestError("%s document %d is not a Kubernetes object (a %s)" % (source, index, type(doc).__name__))
        missing = [field for field in ("apiVersion", "kind") if not doc.get(field)]
        if not (doc.get("metadata") or {}).get("name"):
            missing.append("metadata.name")
        if missing:
            kind = doc.get("kind") or "no kind"
            raise ManifestError("%s document %d (%s) lacks %s" % (source, index, kind, ", ".join(missing)))
    return documents


def label(obj):
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if metadata.get("namespace"):
        name = "%s/%s" % (metadata["namespace"], name)
    return "%s %s" % (obj.get("kind"), name)


class ResourceResolver(object):
    """kind -> (resource name, namespaced), from discovery, or from CRDs the batch is about to create."""

    def __init__(self, client):
        self.client = client
        self._served = {}  # apiVersion -> {kind: (plural, namespaced)}, or None when not served
        self._pending = {}  # (apiVersion, kind) -> (plural, namespaced), from CRDs not yet registered

    def learn_crd(self, crd):
        spec = crd.get("spec") or {}
        names = spec.get("names") or {}
        for version in spec.get("versions") or []:
            key = ("%s/%s" % (spec.get("group"), version.get("name")), names.get("kind"))
            self._pending[key] = (names.get("plural"), spec.get("scope") == "Namespaced")

    def _discover(self, api_version):
        if api_version not in self._served:
            path = "/api/v1" if api_version == "v1" else "/apis/%s" % api_version
            try:
                listing = self.client.get(path)
            except KubeApiError as err:
                if err.status != 404:
                    raise
                listing = None
            self._served[api_version] = None if listing is None else dict(
                (r["kind"], (r["name"], r.get("namespaced", False)))
                for r in listing.get("resources") or [] if "/" not in r["name"])
        return self._served[api_version]

    def forget(self, api_version):
        """Discovery again next time (after the CRDs of a batch were registered)."""
        self._served.pop(api_version, None)

    def served(self, obj):
        """True when the cluster already serves the object's kind."""
        return obj["kind"] in (self._discover(obj["apiVersion"]) or {})

    def path(self, obj):
        resource = (self._discover(obj["apiVersion"]) or {}).get(obj["kind"]) \
            or self._pending.get((obj["apiVersion"], obj["kind"]))
        if resource is None:
            raise ManifestError("%s: the cluster does not serve %s %s, and no CRD in the manifests defines it"
                                % (label(obj), obj["apiVersion"], obj["kind"]))
        plural, namespaced = resource
        metadata = obj["metadata"]
        if namespaced and not metadata.get("namespace"):
            raise ManifestError("%s: a namespaced %s needs metadata.namespace" % (label(obj), obj["kind"]))
        return object_path(obj["apiVersion"], plural, metadata["name"], metadata.get("namespace") if namespaced else None)
