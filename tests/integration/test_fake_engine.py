"""The fake engine of the unit tests (`tests/unit/fake_engine.py`) answers as the suite's real
engine does: the same removal, sent by `Engine` to the real engine and to the fake holding the
same image and container, gets the same status, the same text (ids aside) and the same
`Untagged` items, and leaves the same names behind. What the fake does not model is not
compared: the containerd store's own 409 text for a name in use."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import docker
import pytest

from gcd.engine.api import EngineApi, RemoveResult
from gcd.engine.client import Engine
from gcd.engine.layers import is_containerd_store
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.unit.fake_engine import FakeEngine

pytestmark = pytest.mark.core

HEX = re.compile(r"[0-9a-f]{12,64}")
MISSING = "sha256:" + "0" * 64


@dataclass(frozen=True)
class Scenario:
    tags: tuple[str, ...]
    send: Callable[[EngineApi, str], RemoveResult]
    """The removal, given an engine and the image's id."""
    container: bool = False
    """A container (created, never started) uses the image."""
    engines: frozenset[str] = frozenset({"docker", "containerd", "podman"})


def by_id(engine: EngineApi, image_id: str) -> RemoveResult:
    return engine.remove_image(image_id)


SCENARIOS = {
    "a single tag, by id": Scenario(("x/c:1",), by_id),
    "two tags, by id": Scenario(("x/c:1", "x/c:2"), by_id),
    "a container, by id": Scenario(("x/c:1",), by_id, container=True),
    "a container, by id, forced": Scenario(
        ("x/c:1", "x/c:2"),
        lambda e, i: e.remove_image(i, force=True),
        container=True,
        engines=frozenset({"docker", "containerd"}),
    ),
    "two tags, forced": Scenario(
        ("x/c:1", "x/c:2"),
        lambda e, i: e.remove_image(i, force=True),
        engines=frozenset({"docker", "containerd"}),
    ),
    "a container, by its only tag": Scenario(
        ("x/c:1",),
        lambda e, _: e.remove_image("x/c:1"),
        container=True,
        engines=frozenset({"docker", "podman"}),  # not modelled: the containerd store's text
    ),
    "one of two tags, by name": Scenario(("x/c:1", "x/c:2"), lambda e, _: e.remove_image("x/c:1")),
    "a missing image": Scenario(("x/c:1",), lambda e, _: e.remove_image(MISSING)),
    "a name that is not on the image, untagged by id": Scenario(
        ("x/c:1", "x/c:2"),
        lambda e, i: e.untag_image_by_id(i, "docker.io/x/other", "9"),
        engines=frozenset({"podman"}),
    ),
    "a name of the image, untagged by id": Scenario(
        ("x/c:1", "x/c:2"),
        lambda e, i: e.untag_image_by_id(i, "docker.io/x/c", "2"),
        engines=frozenset({"podman"}),
    ),
}


def answer(result: RemoveResult) -> tuple[str, str, tuple[str, ...], tuple[str, ...]]:
    """What is compared: status, text and `Untagged` items without ids, and the first
    `Deleted` item (the image; layer keys differ between stores)."""
    return (
        result.status.value,
        HEX.sub("<id>", result.message),
        tuple(sorted(result.untagged)),
        result.deleted[:1],
    )


def names(engine: EngineApi, image_id: str) -> set[str] | None:
    found: dict[str, Any] | None = engine.inspect_image(image_id)
    return None if found is None else set(found["RepoTags"] or ())


@pytest.mark.parametrize("case", list(SCENARIOS))
def test_a_removal_is_answered_and_done_as_the_real_engine_does(
    clean_engine: PrivateEngine, api: docker.APIClient, case: str
) -> None:
    scenario = SCENARIOS[case]
    real = Engine(clean_engine.host)
    try:
        containerd = is_containerd_store(real.info())
        kind = "podman" if real.podman else "containerd" if containerd else "docker"
        if kind not in scenario.engines:
            pytest.skip(f"not sent to {kind}")
        spec = image(runnable_layer(), layer(1000, "fake-contract"), tags=scenario.tags)
        (image_id,) = load(api, spec)
        fake = FakeEngine(podman=real.podman, containerd_store=containerd)
        fake.add_image("contract", *scenario.tags, image_id=image_id)
        if scenario.container:
            api.create_container(image_id, command=["true"])
            fake.create_container(image_id)
        expected = answer(scenario.send(real, image_id))
        assert answer(scenario.send(fake, image_id)) == expected
        assert names(fake, image_id) == names(real, image_id)
    finally:
        real.close()
