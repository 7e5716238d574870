# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP exchange over Ansible's url helpers, with its failures sorted for the retry loop.

The MAAS and Palette clients share it: an HTTP error the service may answer differently a moment later
(rate limits, server errors) and a dropped connection become `TransientError`s that `retry.call_with_retries`
tries again; a failed TLS verification is a configuration error at once, since trying again cannot help.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ssl

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.palette.vmo.plugins.module_utils.common.retry import TransientError


class Endpoint(object):
    """What a client tells the transport about its service, to build its errors."""

    def __init__(self, service, base, ca_option, config_error, retryable):
        self.service, self.base, self.ca_option = service, base, ca_option
        self.config_error, self.retryable = config_error, retryable


def exchange(endpoint, request, method, url, http_failure, data=None, headers=None):
    """Sends one request; returns (body bytes, content type), or raises as the module docstring says.

    `http_failure(status, body bytes, content type)` makes the client's own exception for a refused request.
    """
    try:
        resp = request.open(method, url, data=data, headers=headers or {})
        return resp.read(), resp.headers.get("Content-Type", "")
    except HTTPError as err:
        content_type = err.headers.get("Content-Type", "") if err.headers else ""
        failure = http_failure(err.code, err.read(), content_type)
        if endpoint.retryable(err.code):
            retry_after = err.headers.get("Retry-After") if err.headers else None
            raise TransientError(str(failure), retry_after=retry_after_seconds(retry_after), cause=failure)
        raise failure
    except (URLError, ssl.SSLError, ConnectionError, OSError) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(reason):
            raise endpoint.config_error("TLS verification of %s failed: %s (set %s to the CA that signed the %s "
                                        "certificate)" % (endpoint.base, reason, endpoint.ca_option, endpoint.service))
        raise TransientError(str(reason), cause=endpoint.config_error(
            "cannot reach %s at %s: %s" % (endpoint.service, endpoint.base, reason)))


def retry_after_seconds(value):
    """Retry-After in seconds (the delta-seconds form), or None when absent or not a number."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
