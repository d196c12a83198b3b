"""Session fixtures shared by the package and image tests: each is built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.system import debian_package
from tests.system.debian_package import Packages


@pytest.fixture(scope="session")
def packages(tmp_path_factory: pytest.TempPathFactory) -> Packages:
    reason = debian_package.unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    # GCD_TEST_PACKAGES=OLD.deb:NEW.deb reuses two builds of scripts/package (while working on
    # these tests); without it, the session builds both.
    given = os.environ.get("GCD_TEST_PACKAGES")
    if given:
        old, new = given.split(":")
        return Packages(Path(old), Path(new))
    return debian_package.build_packages(tmp_path_factory.mktemp("packages"))
