"""Fixtures shared by the system tests."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.system import debian_package, nspawn
from tests.system.debian_package import Packages

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def gcd_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """gcd as a wheel for the nspawn containers, built once per session."""
    nspawn.venv_layer(REPO)  # the cached layers, built here on first use
    return nspawn.build_gcd_wheel(REPO, tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Packages]:
    """The Debian packages +test1 and +test2 (debian_package.py), built once per session, and
    lintian over +test2, started in the background."""
    reason = debian_package.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # GCD_TEST_PACKAGES=OLD.deb:NEW.deb reuses two builds of scripts/package (while working on
    # these tests); without it, the session builds both.
    given = os.environ.get("GCD_TEST_PACKAGES")
    if given:
        old, new = given.split(":")
        built = Packages(Path(old), Path(new))
    else:
        built = debian_package.build_packages(tmp_path_factory.mktemp("packages"))
    linting = debian_package.start_lintian(built.new)
    try:
        yield dataclasses.replace(built, lintian=linting)
    finally:
        if linting.poll() is None:
            linting.kill()
        linting.communicate()
