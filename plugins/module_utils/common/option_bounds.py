# -*- coding: utf-8 -*-
# Copyright: palette.vmo contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Lower bounds of numeric options (timeouts, concurrency), checked before anything is sent.

Ansible's argument spec checks types, not ranges: a negative timeout would otherwise let a module write
and then report that it "timed out after -1s", and a concurrency of 0 would run nothing at all.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# option -> (minimum, what the minimum means)
TIMEOUT = (0, "0 or more seconds")
AT_LEAST_ONE = (1, "at least 1")
POSITIVE = (0.0, "more than 0 seconds")

COMMON_BOUNDS = dict(wait_timeout=TIMEOUT, concurrency=AT_LEAST_ONE, poll_interval=POSITIVE)


def bound_errors(params, bounds=None):
    """One message per option of `bounds` (default: wait_timeout, concurrency, poll_interval) out of range."""
    errors = []
    for option, (minimum, wanted) in sorted((bounds or COMMON_BOUNDS).items()):
        value = params.get(option)
        if value is None:
            continue
        too_small = value <= minimum if isinstance(minimum, float) else value < minimum
        if too_small:
            errors.append("%s: %r is out of range, give %s" % (option, value, wanted))
    return errors
