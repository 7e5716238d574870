"""A small Kubernetes REST client for the lab's own code (bootstrap, stand-ins, lab tests).

The lab talks to the apiserver in plain REST so that its tests see exactly the status codes and
bodies the apiserver sends, with nothing in between.
"""

import json
import threading
from typing import Any, Dict, Iterator, Optional

import requests

JSON = Dict[str, Any]


class KubeError(Exception):
    def __init__(self, status: int, body: Any, method: str, path: str):
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")

    @property
    def reason(self) -> Optional[str]:
        return self.body.get("reason") if isinstance(self.body, dict) else None


class Kube:
    def __init__(self, server: str, token: str, ca_file: str, timeout: float = 30.0):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.token, self.ca_file = token, ca_file
        self._local = threading.local()

    @property
    def session(self) -> requests.Session:
        # One session per thread: the stand-ins call the apiserver from several threads at once.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Authorization"] = f"Bearer {self.token}"
            session.verify = self.ca_file
            # Environment settings (REQUESTS_CA_BUNDLE, proxies) would override the lab's CA.
            session.trust_env = False
            self._local.session = session
        return session

    def request(self, method: str, path: str, body: Any = None, params: Optional[dict] = None,
                content_type: str = "application/json", expect_json: bool = True) -> Any:
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            # Compact, as Go clients send it: the apiserver keeps embedded raw JSON (ControllerRevision data)
            # byte for byte, and a later patch that re-encodes it compactly would count as a change.
            data = body if isinstance(body, (bytes, str)) else json.dumps(body, separators=(",", ":"))
            headers["Content-Type"] = content_type
        resp = self.session.request(method, self.server + path, data=data, params=params,
                                    headers=headers, timeout=self.timeout)
        payload: Any = resp.text
        if resp.content and resp.headers.get("Content-Type", "").startswith("application/json"):
            payload = resp.json()
        if resp.status_code >= 400:
            raise KubeError(resp.status_code, payload, method, path)
        return payload if expect_json else resp

    def get(self, path: str, **params) -> JSON:
        return self.request("GET", path, params=params or None)

    def get_or_none(self, path: str) -> Optional[JSON]:
        try:
            return self.get(path)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def create(self, path: str, obj: JSON, **params) -> JSON:
        return self.request("POST", path, obj, params=params or None)

    def merge_patch(self, path: str, patch: JSON, **params) -> JSON:
        return self.request("PATCH", path, patch, params=params or None,
                            content_type="application/merge-patch+json")

    def json_patch(self, path: str, ops: list, **params) -> JSON:
        return self.request("PATCH", path, ops, params=params or None,
                            content_type="application/json-patch+json")

    def apply(self, path: str, obj: JSON, field_manager: str, force: bool = False, **params) -> JSON:
        """Server-side apply; `path` names the object itself."""
        query = {"fieldManager": field_manager, **params}
        if force:
            query["force"] = "true"
        return self.request("PATCH", path, obj, params=query,
                            content_type="application/apply-patch+yaml")

    def delete(self, path: str, **params) -> Optional[JSON]:
        try:
            return self.request("DELETE", path, params=params or None)
        except KubeError as err:
            if err.status == 404:
                return None
            raise

    def watch(self, path: str, resource_version: str = "", timeout_seconds: int = 300) -> Iterator[JSON]:
        """Yields watch events until the server closes the stream."""
        params = {"watch": "true", "allowWatchBookmarks": "true", "timeoutSeconds": str(timeout_seconds)}
        if resource_version:
            params["resourceVersion"] = resource_version
        with self.session.get(self.server + path, params=params, stream=True,
                              timeout=(self.timeout, timeout_seconds + 30)) as resp:
            if resp.status_code >= 400:
                raise KubeError(resp.status_code, resp.text, "WATCH", path)
            # The apiserver sends each event as one chunk; reading whole chunks (not requests' 512 bytes at a
            # time) keeps a large object's event from costing dozens of reads
            for line in resp.iter_lines(chunk_size=1 << 20):
                if line:
                    yield json.loads(line)


def object_path(api_version: str, plural: str, name: str = "", namespace: str = "") -> str:
    """The REST path of a collection or an object: core `v1` or `group/version`."""
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    ns = f"/namespaces/{namespace}" if namespace else ""
    return f"{prefix}{ns}/{plural}" + (f"/{name}" if name else "")
