"""Small helpers shared by the integration tests."""

import itertools
import random


def unwrap(value):
    """ansible-inventory marks values that came from an API as untrusted: {"__ansible_unsafe": v}."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


_ADDRESSES = itertools.count(random.randrange(1, 200) * 250)


def next_bmc():
    """A BMC address no other test uses (loopback: the simulator never contacts a BMC)."""
    n = next(_ADDRESSES)
    return "127.%d.%d.%d" % (10 + n // 62500 % 240, n // 250 % 250, n % 250 + 1)
