# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A thin, thread-safe REST client for the Kubernetes API, on pooled urllib3 connections.

It speaks paths, not generated models: the modules know which objects they want, and skipping the
`kubernetes` library's discovery and model layer is what makes a batch of a thousand objects fast.
Rate limits (429 with Retry-After), server errors and dropped connections are retried with backoff.
Requests share a pool bounded by the concurrency; watches hold their connection for as long as they
stream, so they open their own, outside that bound, and close it when they end.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

try:
    from urllib.parse import urlencode, quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    from urllib import urlencode, quote

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.http_transport import retry_after_seconds
from ansible_collections.palette.vmo.plugins.module_utils.common.retry import TransientError, call_with_retries

try:
    import urllib3
    from urllib3._collections import HTTPHeaderDict

    HAS_URLLIB3 = True
except ImportError:  # pragma: no cover - urllib3 comes with the kubernetes library
    HAS_URLLIB3 = False

USER_AGENT = "palette.vmo/0.1.0"
RETRYABLE_STATUS = (429, 500, 502, 503, 504)


class KubeApiError(ModuleFailure):
    """The apiserver answered with an error status; a module that fails on it reports the `status` too."""

    def __init__(self, status, body, method, path):
        self.status = status
        self.body = body if isinstance(body, dict) else {"message": body}
        self.method, self.path = method, path
        super(KubeApiError, self).__init__("%s %s: HTTP %s: %s" % (method, path, status, self.message),
                                           status=status)

    @property
    def message(self):
        return self.body.get("message") or ""

    @property
    def reason(self):
        return self.body.get("reason") or ""

    @property
    def causes(self):
        return (self.body.get("details") or {}).get("causes") or []


class KubeConnectionError(ModuleFailure):
    """The apiserver could not be reached, or its certificate could not be verified."""


def object_path(api_version, plural, name=None, namespace=None, subresource=None):
    """The REST path of a collection or an object: core `v1` or `group/version`."""
    prefix = "/api/v1" if api_version == "v1" else "/apis/%s" % api_version
    path = prefix + ("/namespaces/%s" % quote(namespace, safe="") if namespace else "") + "/" + plural
    if name:
        path += "/" + quote(name, safe="")
    if subresource:
        path += "/" + subresource
    return path


class KubeClient(object):
    def __init__(self, connection, concurrency=8, timeout=60):
        self.connection = connection
        self.timeout = timeout
        # The connection says how TLS is set up: certificate files, or a TLS context built in memory.
        self.pool = self._pool_manager(maxsize=max(concurrency, 1), block=True)
        # A watch keeps its connection until it ends: in the bounded pool, watches would starve requests (and
        # each other). They get a connection of their own each, never waiting, and close it when they end.
        self.watch_pool = self._pool_manager(maxsize=1, block=False)

    def _pool_manager(self, **sizing):
        kwargs = dict(self.connection.pool_options(), num_pools=4, **sizing)
        if self.connection.proxy:
            return urllib3.ProxyManager(self.connection.proxy, **kwargs)
        return urllib3.PoolManager(**kwargs)

    def _headers(self, content_type):
        headers = HTTPHeaderDict({"Accept": "application/json", "User-Agent": USER_AGENT})
        for key, value in self.connection.auth_headers().items():
            headers[key] = value
        for key, value in self.connection.impersonate_group_headers():
            headers.add(key, value)
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _url(self, path, query):
        url = self.connection.server + path
        if query:
            url += "?" + urlencode([(k, v) for k, v in query.items() if v is not None], doseq=True)
        return url

    def _send(self, method, path, query, data, content_type, timeout, stream=False):
        try:
            pool = self.watch_pool if stream else self.pool
            return pool.request(method, self._url(path, query), body=data,
                                headers=self._headers(content_type if data is not None else None),
                                timeout=urllib3.Timeout(connect=15, read=timeout or self.timeout),
                                retries=False, preload_content=not stream)
        except urllib3.exceptions.SSLError as err:
            raise KubeConnectionError("TLS verification of %s failed: %s (%s)"
                                      % (self.connection.server, err, self.connection.tls_hint()))
        except urllib3.exceptions.HTTPError as err:
            raise TransientError(str(err), cause=KubeConnectionError(
                "cannot reach the Kubernetes API at %s: %s" % (self.connection.server, err)))

    def request(self, method, path, query=None, body=None, content_type="application/json", timeout=None):
        """Sends one request; returns the decoded JSON body (None when empty)."""
        data = None if body is None else (body if isinstance(body, (bytes, str)) else json.dumps(body))

        def attempt():
            resp = self._send(method, path, query, data, content_type, timeout)
            payload = _decode(resp.data)
            if resp.status in RETRYABLE_STATUS:
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                raise TransientError("HTTP %s" % resp.status, retry_after=retry_after,
                                     cause=KubeApiError(resp.status, payload, method, path))
            if resp.status >= 400:
                raise KubeApiError(resp.status, payload, method, path)
            return payload

        return call_with_retries(attempt)

    # -- conveniences -------------------------------------------------------------------------

    def get(self, path, query=None):
        return self.request("GET", path, query)

    def get_or_none(self, path):
        try:
            return self.get(path)
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    def list_all(self, path, query=None, page_size=500):
        """All items of a collection, following `continue` tokens; returns (items, resourceVersion)."""
        items, token = [], None
        while True:
            page_query = dict(query or {}, limit=page_size)
            if token:
                page_query["continue"] = token
            page = self.get(path, page_query)
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items, (page.get("metadata") or {}).get("resourceVersion")

    def apply(self, path, obj, field_manager, force=False, dry_run=False):
        """Server-side apply of one object at its own path."""
        query = {"fieldManager": field_manager, "force": "true" if force else None,
                 "dryRun": "All" if dry_run else None}
        return self.request("PATCH", path, query, obj, content_type="application/apply-patch+yaml")

    def merge_patch(self, path, patch, dry_run=False):
        return self.request("PATCH", path, {"dryRun": "All" if dry_run else None}, patch,
                            content_type="application/merge-patch+json")

    def delete(self, path, propagation_policy=None, dry_run=False):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if dry_run:
            # The apiserver reads a DELETE's options from its body when there is one and ignores the query
            # then (handlers/delete.go DeleteResource): the dry run must be in the body.
            body["dryRun"] = ["All"]
        try:
            return self.request("DELETE", path, {"dryRun": "All" if dry_run else None}, body)
        except KubeApiError as err:
            if err.status == 404:
                return None
            raise

    def watch(self, path, query=None, timeout_seconds=60):
        """Opens a watch: a WatchStream that yields events until the server ends it (at most timeout_seconds)
        or until its close(), which any thread may call."""
        query = dict(query or {}, watch="true", allowWatchBookmarks="true", timeoutSeconds=int(timeout_seconds))
        resp = call_with_retries(lambda: self._send("GET", path, query, None, None, timeout_seconds + 15, stream=True))
        return WatchStream(resp, path)


class WatchStream(object):
    """The events of one watch response. close() ends the stream at once, from any thread: it shuts the
    socket's reading side, so a read blocked on it returns, and the connection is closed, not reused."""

    def __init__(self, resp, path):
        self._resp, self.path = resp, path
        self._closed = False

    def __iter__(self):
        resp = self._resp
        try:
            if resp.status >= 400:
                raise KubeApiError(resp.status, _decode(resp.read()), "WATCH", self.path)
            buffer = b""
            for chunk in resp.stream(65536):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError):
            # Closed by close(), or dropped: the stream ends here as it does when the server ends it, and the
            # watcher watches again from its last resourceVersion.
            return
        finally:
            self._closed = True
            resp.close()
            resp.release_conn()

    def close(self):
        if self._closed:
            return
        self._closed = True
        try:
            if hasattr(self._resp, "shutdown"):  # urllib3 >= 2.3
                self._resp.shutdown()
            else:
                sock = getattr(getattr(self._resp, "_connection", None), "sock", None)
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)
        except (OSError, ValueError, RuntimeError):
            pass  # already ended: its connection is closed or released


def _decode(data):
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace") if isinstance(data, bytes) else data
