"""What differs between engine versions and kinds, decided without an engine: the API version
gcd speaks, and container states as Podman names them."""

from __future__ import annotations

import pytest

from gcd.core.records import ContainerState
from gcd.engine.client import MAX_API_VERSION, negotiate_api_version
from gcd.engine.kinds.containers import parse_container
from gcd.errors import EngineError


@pytest.mark.parametrize(
    ("offered", "spoken"),
    [
        ("1.41", "1.41"),  # Docker 20.10, Podman 5
        ("1.45", "1.45"),  # Docker 26.1
        ("1.52", MAX_API_VERSION),  # Docker 29: asked in the newest version gcd knows
        ("1.100", MAX_API_VERSION),  # compared as numbers, not as strings
    ],
)
def test_the_engines_version_is_spoken_up_to_the_newest_gcd_knows(
    offered: str, spoken: str
) -> None:
    assert negotiate_api_version({"ApiVersion": offered, "MinAPIVersion": "1.24"}) == spoken


@pytest.mark.parametrize("offered", ["1.40", "1.9"])
def test_an_engine_older_than_docker_20_10_is_refused(offered: str) -> None:
    with pytest.raises(EngineError, match=r"needs 1\.41 or newer"):
        negotiate_api_version({"ApiVersion": offered})


def test_an_engine_without_an_api_version_is_not_docker_compatible() -> None:
    with pytest.raises(EngineError, match="no ApiVersion"):
        negotiate_api_version({"Version": "5.4.2"})


@pytest.mark.parametrize(
    ("listed", "state"),
    [
        ("exited", ContainerState.EXITED),
        ("stopped", ContainerState.EXITED),  # Podman
        ("configured", ContainerState.CREATED),  # Podman, never started
        ("Running", ContainerState.RUNNING),
        ("unheard-of", ContainerState.CREATED),  # still protects its image
    ],
)
def test_container_states_of_every_engine_are_understood(
    listed: str, state: ContainerState
) -> None:
    container = parse_container(
        {"Id": "c" * 64, "Names": ["/one"], "ImageID": "sha256:" + "a" * 64, "State": listed}
    )
    assert container is not None
    assert container.state is state
