"""Lower bounds of timeouts, concurrency and poll intervals."""

from ansible_collections.palette.vmo.plugins.module_utils.common.option_bounds import bound_errors


def test_negative_timeout_zero_concurrency_and_zero_interval_are_refused():
    assert bound_errors({"wait_timeout": -1, "concurrency": 0, "poll_interval": 0.0}) == [
        "concurrency: 0 is out of range, give at least 1",
        "poll_interval: 0.0 is out of range, give more than 0 seconds",
        "wait_timeout: -1 is out of range, give 0 or more seconds"]


def test_limits_themselves_and_unset_options_pass():
    assert bound_errors({"wait_timeout": 0, "concurrency": 1, "poll_interval": 0.1}) == []
    assert bound_errors({"wait_timeout": None}) == []
