# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Palette REST API client on Ansible's own URL helpers.

Requests carry the `ApiKey` header and, for project-scoped calls, the `ProjectUid` header (Palette
assumes tenant scope without it). The project is given by name or uid and resolved once through
`/v1/dashboard/projects/metadata`. Rate limits (429 with Retry-After), server errors and dropped
connections are retried with backoff; lists are followed through `listmeta.continue`, since Palette
returns at most 50 items per page.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import Request

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.http_transport import Endpoint, exchange
from ansible_collections.palette.vmo.plugins.module_utils.common.retry import call_with_retries

PALETTE_ARG_SPEC = dict(
    palette_host=dict(type="str", fallback=(env_fallback, ["PALETTE_HOST"])),
    palette_api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["PALETTE_API_KEY"])),
    palette_project=dict(type="str", fallback=(env_fallback, ["PALETTE_PROJECT"])),
    palette_ca_cert=dict(type="path", fallback=(env_fallback, ["PALETTE_CA_CERT"])),
    # Palette's own TLS switch: never shared with a Kubernetes validate_certs / K8S_AUTH_VERIFY_SSL.
    palette_validate_certs=dict(type="bool", default=True, fallback=(env_fallback, ["PALETTE_VALIDATE_CERTS"])),
    palette_timeout=dict(type="int", default=30),
)


def palette_module_arg_spec():
    """The connection options of a module whose TLS switch can only mean Palette's: there the plain
    `validate_certs` is an alias of palette_validate_certs (a module that also reaches Kubernetes has its own)."""
    spec = dict(PALETTE_ARG_SPEC)
    spec["palette_validate_certs"] = dict(spec["palette_validate_certs"], aliases=["validate_certs"])
    return spec


UID = re.compile(r"^[0-9a-f]{24}$")
TENANT = "tenant"
MAX_PAGES = 1000


def retryable_status(status):
    """Whether a refused request is tried again: 429 and the 5xx above 500, as Palette's own SDK decides.

    palette-sdk-go api/apiutil/transport/runtime.go (Runtime.Submit) retries `StatusCode > 500 || 429` and
    nothing else. A plain 500 is Palette's answer to a request it failed on (a duplicate profile can get one),
    which the same request meets again; 502/503/504 come from a restarting or overloaded service, which passes.
    Retrying a 500 would only delay the error by the whole backoff, or hide what a create's recovery must see.
    The SDK never reads Retry-After on a 429; this client honours it when present and backs off without it.
    """
    return status == 429 or status > 500


class PaletteError(ModuleFailure):
    """Palette refused a request; `status` is the HTTP code, `body` Palette's error document or text."""

    def __init__(self, status, body, method, path):
        self.status, self.body, self.method, self.path = status, body, method, path
        super(PaletteError, self).__init__("%s %s: HTTP %s: %s" % (method, path, status, self.describe()))

    def describe(self):
        if self.status == 401:
            return "bad API key (Palette answered: %s)" % _palette_message(self.body)
        return _palette_message(self.body)


class PaletteConfigError(ModuleFailure):
    """The connection options are missing, malformed, or name something Palette does not have."""


def _palette_message(body):
    if isinstance(body, dict):
        text = body.get("message") or body.get("msg") or json.dumps(body, sort_keys=True)
        return "%s (%s)" % (text, body["code"]) if body.get("code") else text
    return str(body or "").strip() or "no message"


def _normalise_host(host):
    if not host:
        raise PaletteConfigError("no Palette host: set palette_host or PALETTE_HOST (for example "
                                 "https://api.spectrocloud.com)")
    host = host.strip().rstrip("/")
    if not re.match(r"^https?://", host):
        host = "https://" + host
    return host


class PaletteClient(object):
    """One Palette endpoint, one API key, and the project scope the calls run in (None: tenant scope)."""

    def __init__(self, params):
        self.base = _normalise_host(params.get("palette_host"))
        self.api_key = params.get("palette_api_key")
        if not self.api_key:
            raise PaletteConfigError("no Palette API key: set palette_api_key or PALETTE_API_KEY")
        self.request = Request(validate_certs=params.get("palette_validate_certs") is not False,
                               ca_path=params.get("palette_ca_cert"),
                               timeout=params.get("palette_timeout") or 30, follow_redirects="safe")
        self.endpoint = Endpoint("Palette", self.base, "palette_ca_cert", PaletteConfigError,
                                 retryable=retryable_status)
        self.project_name = params.get("palette_project") or None
        self.project_uid = None  # tenant scope until the project is known
        self.writes = []  # "METHOD path" of every write Palette accepted, for a failure's report
        self.project_uid = self.resolve_project(self.project_name) if self.project_name else None

    # -- requests ---------------------------------------------------------------------------------

    def call(self, method, path, query=None, body=None, scope=None, writes=None, accept="application/json"):
        """One API call; `path` starts with /v1. `scope` TENANT drops the ProjectUid header for this call.

        Returns the decoded JSON document (None for an empty answer such as 204), or the text of an answer that
        is not JSON (a file, asked for with `accept` application/octet-stream). Every call but a GET counts
        as a write once Palette accepted it, unless `writes` is False (the POST of a search).
        """
        url = self.base + path + ("?" + urlencode(_query_pairs(query)) if query else "")
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"ApiKey": self.api_key, "Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.project_uid and scope != TENANT:
            headers["ProjectUid"] = self.project_uid

        def refused(status, content, _content_type):
            return PaletteError(status, _decode(content), method, path)

        def attempt():
            content, _content_type = exchange(self.endpoint, self.request, method, url, refused, data=data,
                                              headers=headers)
            return _decode(content)

        # Palette allows about 10 requests/s with a burst of 5 per source; ten tries honouring Retry-After
        # ride out a rate-limit storm or a restarting API server.
        answer = call_with_retries(attempt, attempts=10)
        if writes if writes is not None else method != "GET":
            self.writes.append("%s %s" % (method, path))
        return answer

    def get(self, path, query=None, scope=None):
        return self.call("GET", path, query=query, scope=scope)

    def post(self, path, body=None, query=None, scope=None):
        return self.call("POST", path, query=query, body=body if body is not None else {}, scope=scope)

    def put(self, path, body, query=None, scope=None):
        return self.call("PUT", path, query=query, body=body, scope=scope)

    def patch(self, path, body=None, query=None, scope=None):
        return self.call("PATCH", path, query=query, body=body, scope=scope)

    def delete(self, path, body=None, scope=None):
        return self.call("DELETE", path, body=body, scope=scope)

    def list_all(self, path, method="GET", body=None, query=None, scope=None, items_key="items"):
        """Every item of a paged list, following `listmeta.continue` until it is empty."""
        items, token = [], None
        for _page in range(MAX_PAGES):
            page_query = dict(query or {})
            if token:
                page_query["continue"] = token
            if method == "GET":
                page = self.get(path, query=page_query, scope=scope)
            else:
                page = self.call(method, path, query=page_query, body=body or {}, scope=scope, writes=False)
            page = page or {}
            items.extend(page.get(items_key) or [])
            token = (page.get("listmeta") or {}).get("continue")
            if not token:
                return items
        raise PaletteConfigError("%s did not finish paging after %d pages" % (path, MAX_PAGES))

    # -- lookups ----------------------------------------------------------------------------------

    def resolve_project(self, name_or_uid):
        """The uid of a project given by name or uid, looked up in tenant scope."""
        projects = self.list_all("/v1/dashboard/projects/metadata", scope=TENANT)
        for project in projects:
            meta = project.get("metadata") or {}
            if name_or_uid in (meta.get("name"), meta.get("uid")):
                return meta["uid"]
        names = sorted((p.get("metadata") or {}).get("name") or "?" for p in projects)
        raise PaletteConfigError("palette_project: project %r does not exist (projects: %s)"
                                 % (name_or_uid, ", ".join(names) or "none"))

    def get_or_none(self, path):
        """The object at `path` ({} when Palette answers with no body), or None when it answers 404."""
        try:
            return self.get(path) or {}
        except PaletteError as err:
            if err.status == 404:
                return None
            raise

    def find_cluster(self, name_or_uid):
        """The cluster's summary {metadata: {name, uid}} by name or uid, or None."""
        if UID.match(name_or_uid):
            cluster = self.get_or_none("/v1/spectroclusters/%s" % quote(name_or_uid))
            if cluster and (cluster.get("status") or {}).get("state") != "Deleted":
                return cluster
        matches = [c for c in self.list_all("/v1/dashboard/spectroclusters/search", method="POST",
                                            body=cluster_search_filter(name_or_uid))
                   if (c.get("metadata") or {}).get("name") == name_or_uid]
        return matches[0] if matches else None

    def cluster_uid(self, name_or_uid):
        """The uid of a cluster of the current scope, given by name or uid; fails naming it if unknown."""
        cluster = self.find_cluster(name_or_uid)
        if cluster is None:
            raise PaletteConfigError("cluster %r does not exist in %s" % (name_or_uid, self.scope_label()))
        return cluster["metadata"]["uid"]

    def registry_uid(self, name):
        """The uid of a pack registry given by name (for example "Public Repo")."""
        registries = self.list_all("/v1/registries/metadata", query={"scope": "all"})
        for registry in registries:
            if name in (registry.get("name"), registry.get("uid")):
                return registry["uid"]
        raise PaletteConfigError("registry_name: pack registry %r does not exist (registries: %s)"
                                 % (name, ", ".join(sorted(r.get("name") or "?" for r in registries)) or "none"))

    def scope_label(self):
        return "project %s" % self.project_name if self.project_uid else "the tenant scope"


def cluster_search_filter(name):
    """The search body Palette's SDK sends to find a cluster by name (not nested, not deleted)."""
    def string_filter(prop, value, negation=False):
        return {"property": prop, "type": "string",
                "condition": {"string": {"operator": "eq", "negation": negation, "ignoreCase": False,
                                         "match": {"conjunction": "or", "values": [value]}}}}

    return {"filter": {"conjunction": "and", "filterGroups": [{"conjunction": "and", "filters": [
        string_filter("clusterName", name),
        string_filter("environment", "nested", negation=True),
        {"property": "isDeleted", "type": "bool", "condition": {"bool": {"value": False}}},
    ]}]}, "sort": []}


def _query_pairs(query):
    pairs = []
    for key, value in (query or {}).items():
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            pairs.append((key, "true" if item is True else "false" if item is False else str(item)))
    return pairs


def _decode(data):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    if not text.strip():
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
