"""Fixtures for the lab's own tests."""

import pytest

from .helpers import Waiter


@pytest.fixture
def wait(admin):
    return Waiter(admin)
