"""Retries: transient errors are retried with the server's hint or a jittered backoff, others are not."""

import pytest

from ansible_collections.palette.vmo.plugins.module_utils.common.retry import TransientError, backoff_delay, call_with_retries


def test_transient_errors_are_retried_honouring_retry_after():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("429", retry_after=2.5 if len(calls) == 1 else None)
        return "ok"

    assert call_with_retries(flaky, sleep=sleeps.append) == "ok"
    assert len(calls) == 3 and sleeps[0] == 2.5 and 0 <= sleeps[1] <= 0.5


def test_giving_up_raises_the_underlying_cause():
    cause = ValueError("connection reset")

    def always():
        raise TransientError("reset", cause=cause)

    with pytest.raises(ValueError) as err:
        call_with_retries(always, attempts=3, sleep=lambda _s: None)
    assert err.value is cause


def test_other_errors_are_not_retried():
    calls = []

    def broken():
        calls.append(1)
        raise KeyError("bad input")

    with pytest.raises(KeyError):
        call_with_retries(broken, sleep=lambda _s: None)
    assert calls == [1]


def test_backoff_is_capped_and_jittered():
    assert backoff_delay(10, base=0.25, cap=8.0, rng=lambda: 1.0) == 8.0
    assert backoff_delay(1, base=0.25, cap=8.0, rng=lambda: 0.5) == 0.25
