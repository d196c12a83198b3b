"""Unit-test fixtures shared by every module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gcd.engine.kinds.containers import SHARED_DETAILS


@pytest.fixture(autouse=True)
def _fresh_container_details() -> Iterator[None]:
    """The process's cache of container inspects starts empty in every test: the fake
    engine's container ids repeat from test to test."""
    SHARED_DETAILS.clear()
    yield
    SHARED_DETAILS.clear()
