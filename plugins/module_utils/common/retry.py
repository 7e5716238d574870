# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retries with jittered exponential backoff, shared by every backend client of the collection.

A call is retried when it raises `TransientError` (rate limits, server errors, dropped connections);
a `retry_after` the server gave wins over the computed delay. Anything else fails at once.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import random
import time

from ansible_collections.palette.vmo.plugins.module_utils.common.errors import ModuleFailure


class TransientError(ModuleFailure):
    """A failure worth trying again; `retry_after` is the server's own hint in seconds.

    A ModuleFailure because one without a `cause` is what `call_with_retries` raises once it gives up.
    """

    def __init__(self, message, retry_after=None, cause=None):
        super(TransientError, self).__init__(message)
        self.retry_after = retry_after
        self.cause = cause


def backoff_delay(attempt, base=0.25, cap=8.0, rng=random.random):
    """Full-jitter backoff: a random delay up to base * 2**attempt, at most `cap` seconds."""
    return min(cap, base * (2 ** attempt)) * rng()


def call_with_retries(func, attempts=6, base=0.25, cap=8.0, sleep=time.sleep, deadline=None):
    """Calls func() until it succeeds, raises something not transient, or the attempts run out.

    The last TransientError's cause (or the error itself) is raised when giving up, so the caller
    reports what actually went wrong.
    """
    for attempt in range(attempts):
        try:
            return func()
        except TransientError as err:
            last = attempt == attempts - 1
            delay = err.retry_after if err.retry_after is not None else backoff_delay(attempt, base, cap)
            if deadline is not None and time.monotonic() + delay > deadline:
                last = True
            if last:
                raise err.cause if err.cause is not None else err
            sleep(min(delay, cap * 4))
    raise AssertionError("unreachable")
