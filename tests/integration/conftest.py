"""Fixtures on the suite's own private dockerd, started once and always stopped."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

import docker
import pytest

from gcd.engine.client import Engine
from gcd.engine.timeouts import TIMEOUTS_ENV
from tests.integration.engines import (
    DEFAULT_ENGINE,
    TRAITS,
    Traits,
    engine_for,
    selected_engine,
)
from tests.integration.harness import PrivateEngine

# A run that removed images waits `settle` (2 s) before its last container list, to report
# containers created while an image was deleted (gcd.engine.orphans). Nothing in the suite
# creates containers then but the tests that prove that check, which set the real value; for
# the rest the wait would only add minutes. Subprocesses (gcd commands, daemons) inherit it.
os.environ.setdefault(TIMEOUTS_ENV, "settle=0.2")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def engine_host() -> Iterator[PrivateEngine]:
    """The suite's own engine, of the kind `GCD_TEST_ENGINE` names (`docker-20.10` unless
    set; `tests/integration/engines.py`). A named extra engine that is not installed is an
    error, not a skip, so a CI matrix cannot pass vacuously."""
    if os.geteuid() != 0:
        pytest.skip("integration tests start a private dockerd and need root")
    name = selected_engine()
    if name == DEFAULT_ENGINE and shutil.which("dockerd") is None:
        pytest.skip("dockerd is missing: scripts/bootstrap installs docker.io")
    with engine_for(name) as private:
        yield private


@pytest.fixture(scope="session")
def traits(engine_host: PrivateEngine) -> Traits:
    """How the suite's engine differs from the others (tests/integration/engines.py)."""
    return TRAITS[engine_host.name]


@pytest.fixture(scope="session")
def api(engine_host: PrivateEngine) -> Iterator[docker.APIClient]:
    client = docker.APIClient(base_url=engine_host.host, version="auto", timeout=120)
    yield client
    client.close()


@pytest.fixture
def engine(engine_host: PrivateEngine) -> Iterator[Engine]:
    facade = Engine(engine_host.host)
    yield facade
    facade.close()


def wipe(api: docker.APIClient) -> None:
    """Remove every container, image, volume, user network and build-cache record of the
    suite's own engine (on the containerd store build cache counts in `LayersSize`)."""
    for container in api.containers(all=True):
        if container["State"] == "running":  # Podman's forced remove waits 10 s for PID 1
            with contextlib.suppress(docker.errors.APIError):  # it may have exited since
                api.kill(container["Id"])
        api.remove_container(container["Id"], force=True, v=True)
    for image in api.images(all=True):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_image(image["Id"], force=True)
    for volume in api.volumes().get("Volumes") or ():
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_volume(volume["Name"], force=True)
    for network in api.networks():
        if network["Name"] not in ("bridge", "host", "none", "podman"):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_network(network["Id"])
    with contextlib.suppress(docker.errors.APIError):  # Podman has no build cache to prune
        api.prune_builds(all=True)


@pytest.fixture
def clean_engine(engine_host: PrivateEngine, api: docker.APIClient) -> PrivateEngine:
    wipe(api)
    return engine_host
