# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A MAAS API 2.0 client on Ansible's own URL helpers, signed with OAuth 1.0a PLAINTEXT.

MAAS API keys are `consumer_key:token_key:token_secret` with an empty consumer secret; the PLAINTEXT
signature is `&<token_secret>`. Every request carries a fresh nonce and timestamp. Server errors (503
while the region is busy, 502/504), 429 and dropped connections are retried with backoff; writes are
safe to retry because the callers check state before they act.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time
import uuid

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.six.moves.urllib.parse import quote, urlencode
from ansible.module_utils.urls import Request

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure
from ansible_collections.palette.vmo.plugins.module_utils.common.module import NestedSecretsModule
from ansible_collections.palette.vmo.plugins.module_utils.common.http_transport import Endpoint, exchange
from ansible_collections.palette.vmo.plugins.module_utils.common.retry import call_with_retries

MAAS_ARG_SPEC = dict(
    maas_url=dict(type="str", aliases=["url"], fallback=(env_fallback, ["MAAS_URL"])),
    maas_api_key=dict(type="str", aliases=["api_key"], no_log=True, fallback=(env_fallback, ["MAAS_API_KEY"])),
    maas_ca_cert=dict(type="path", aliases=["ca_cert"], fallback=(env_fallback, ["MAAS_CA_CERT"])),
    validate_certs=dict(type="bool", default=True),
    maas_timeout=dict(type="int", default=30),
)
RETRYABLE_STATUS = (429, 502, 503, 504)


def bmc_secrets(items):
    """The BMC credentials inside `machines` items (every power parameter but the address, which names the
    machine in messages)."""
    secrets = set()
    for item in items if isinstance(items, list) else []:
        parameters = item.get("power_parameters") if isinstance(item, dict) else None
        for key, value in (parameters.items() if isinstance(parameters, dict) else []):
            if value not in (None, "") and key != "power_address":
                secrets.add(str(value))
    return secrets


class MaasModule(NestedSecretsModule):
    """The module class of the MAAS modules: BMC credentials inside `machines` items are no_log."""

    @staticmethod
    def nested_secrets(params):
        return bmc_secrets(params.get("machines"))


class MaasError(ModuleFailure):
    """MAAS refused a request; `status` is the HTTP code and `body` MAAS's own text or JSON."""

    def __init__(self, status, body, method, path):
        self.status, self.body, self.method, self.path = status, body, method, path
        super(MaasError, self).__init__("%s %s: HTTP %s: %s" % (method, path, status, self.describe()))

    def describe(self):
        """MAAS's own words: field errors as `field: message`, form-wide ones (`__all__`) as they are."""
        if isinstance(self.body, dict):
            return "; ".join(("%s" if k == "__all__" else k + ": %s") % (" ".join(v) if isinstance(v, list) else v)
                             for k, v in self.body.items())
        text = str(self.body).strip()
        if not text and self.status == 403:
            return "Forbidden (MAAS gives no reason; it refuses every change to a locked machine this way)"
        return text


class MaasConfigError(ModuleFailure):
    """The connection options are missing or malformed."""


def parse_api_key(value):
    parts = (value or "").split(":")
    if len(parts) != 3 or not all(parts):
        raise MaasConfigError("maas_api_key must be consumer_key:token_key:token_secret (as `maas apikey` prints it)")
    return parts


def oauth_header(api_key):
    consumer, token, secret = parse_api_key(api_key)
    params = [
        ("oauth_consumer_key", consumer), ("oauth_token", token), ("oauth_signature_method", "PLAINTEXT"),
        ("oauth_signature", "&" + secret), ("oauth_timestamp", str(int(time.time()))),
        ("oauth_nonce", uuid.uuid4().hex), ("oauth_version", "1.0"),
    ]
    return 'OAuth realm=""' + "".join(', %s="%s"' % (k, quote(v, safe="")) for k, v in params)


class MaasClient(object):
    def __init__(self, params):
        if not params.get("maas_url"):
            raise MaasConfigError("no MAAS URL: set maas_url or MAAS_URL (for example https://maas.example.com:5443/MAAS)")
        self.api_key = params.get("maas_api_key")
        parse_api_key(self.api_key)
        self.base = params["maas_url"].rstrip("/") + "/api/2.0"
        self.timeout = params.get("maas_timeout") or 30
        self.request = Request(validate_certs=params.get("validate_certs", True), ca_path=params.get("maas_ca_cert"),
                               timeout=self.timeout, follow_redirects="safe")
        self.endpoint = Endpoint("MAAS", self.base, "maas_ca_cert", MaasConfigError,
                                 retryable=lambda status: status in RETRYABLE_STATUS)

    def call(self, method, path, op=None, query=None, data=None):
        """One API call; `path` is relative to /api/2.0 (e.g. `/machines/`). Returns decoded JSON or text."""
        pairs = list((query or {}).items())
        if op:
            pairs.insert(0, ("op", op))
        url = self.base + path + ("?" + urlencode(_flatten(pairs)) if pairs else "")
        body = urlencode(_flatten(list((data or {}).items()))).encode() if data is not None else None

        def refused(status, content, content_type):
            return MaasError(status, _decode(content, content_type), method, path + ("?op=" + op if op else ""))

        def attempt():
            headers = {"Authorization": oauth_header(self.api_key), "Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/x-www-form-urlencoded"
            content, content_type = exchange(self.endpoint, self.request, method, url, refused, data=body,
                                             headers=headers)
            return _decode(content, content_type)

        # A busy region answers 503 for a while; ten tries with backoff ride out a burst of several seconds.
        return call_with_retries(attempt, attempts=10)

    def get(self, path, op=None, **query):
        return self.call("GET", path, op=op, query=query)

    def post(self, path, op=None, **data):
        return self.call("POST", path, op=op, data=data)

    def put(self, path, **data):
        return self.call("PUT", path, data=data)

    def delete(self, path):
        return self.call("DELETE", path)


def _flatten(pairs):
    """Form fields: a list value repeats its field, as MAAS expects for mac_addresses or id."""
    flat = []
    for key, value in pairs:
        if value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            flat.append((key, "true" if item is True else "false" if item is False else str(item)))
    return flat


def _decode(data, content_type):
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    if "json" in content_type or text[:1] in ("{", "["):
        try:
            return json.loads(text)
        except ValueError:
            pass
    return text
