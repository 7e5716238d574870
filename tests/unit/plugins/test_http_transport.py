"""How one HTTP exchange's failures are sorted for the retry loop (pure logic: the request object is a fake)."""

import io
import ssl

import pytest
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.palette.vmo.plugins.module_utils.common.http_transport import (
    Endpoint, exchange, retry_after_seconds)
from ansible_collections.palette.vmo.plugins.module_utils.common.retry import TransientError


class Refused(Exception):
    pass


class Misconfigured(Exception):
    pass


ENDPOINT = Endpoint("Svc", "https://svc.example", "svc_ca_cert", Misconfigured, retryable=lambda s: s in (429, 503))


class FailingRequest:
    def __init__(self, error):
        self.error = error

    def open(self, *_args, **_kwargs):
        raise self.error


def http_error(status, headers=None, body=b"{}"):
    return HTTPError("https://svc.example/x", status, "status", headers or {}, io.BytesIO(body))


def refused(status, body, content_type):
    return Refused(status, body, content_type)


def test_a_retryable_status_is_transient_with_the_servers_delay_and_the_refusal_as_cause():
    with pytest.raises(TransientError) as caught:
        exchange(ENDPOINT, FailingRequest(http_error(429, {"Retry-After": "3"})), "GET", "u", refused)
    assert caught.value.retry_after == 3.0 and isinstance(caught.value.cause, Refused)


def test_another_status_is_the_clients_refusal_at_once():
    with pytest.raises(Refused) as caught:
        exchange(ENDPOINT, FailingRequest(http_error(404, {"Content-Type": "application/json"}, b"nope")), "GET",
                 "u", refused)
    assert caught.value.args == (404, b"nope", "application/json")


def test_a_dropped_connection_is_transient_and_names_the_service():
    with pytest.raises(TransientError) as caught:
        exchange(ENDPOINT, FailingRequest(URLError(ConnectionResetError("reset"))), "GET", "u", refused)
    assert "cannot reach Svc at https://svc.example" in str(caught.value.cause)


def test_a_failed_tls_verification_is_a_configuration_error_naming_the_ca_option():
    with pytest.raises(Misconfigured, match="set svc_ca_cert to the CA that signed the Svc certificate"):
        exchange(ENDPOINT, FailingRequest(URLError(ssl.SSLError("CERTIFICATE_VERIFY_FAILED"))), "GET", "u", refused)


@pytest.mark.parametrize("value, seconds", [("2", 2.0), ("0.5", 0.5), (None, None),
                                            ("Wed, 21 Oct 2026 07:28:00 GMT", None)])
def test_retry_after_in_seconds(value, seconds):
    assert retry_after_seconds(value) == seconds
