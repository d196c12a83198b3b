"""Fixtures shared by the system tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system import nspawn

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gcd_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gcd as a wheel for the nspawn containers, built once per session."""
    nspawn.venv_layer(REPO)  # the cached layers, built here on first use
    return nspawn.build_gcd_wheel(REPO, tmp_path_factory.mktemp("wheel"))
