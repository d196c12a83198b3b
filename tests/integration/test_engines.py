"""What differs between the engines of the matrix, pinned where gcd relies on it
(docs/engines.md): the API version gcd speaks, image ids, what sizes count, conflict answers and
the event fields the usage tracker reads."""

from __future__ import annotations

import time

import docker
import pytest

from gcd.engine import Engine, RemoveStatus
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, image_id, layer, load, runnable_layer

pytestmark = pytest.mark.core

SPOKEN = {"docker-20.10": "1.41", "docker-26": "1.45", "docker-26-containerd": "1.45"}


def test_gcd_speaks_the_engines_own_api_version(
    clean_engine: PrivateEngine, engine: Engine
) -> None:
    # Podman 5's compatible API says 1.41, like Docker 20.10.
    assert engine.api_version == SPOKEN.get(clean_engine.name, "1.41")


def test_ids_and_sizes_are_each_engines_own(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits
) -> None:
    base, top = layer(10_000, "facts-base"), layer(3_000, "facts-top")
    spec = image(base, top, tags=("facts/app:1",))
    (found,) = load(api, spec)
    (listed,) = api.images()
    history = [entry["Size"] for entry in api.history(found) if entry["Size"]]
    layers_size = api.df()["LayersSize"]
    if clean_engine.name == "docker-26-containerd":
        # The id is the manifest the store wrote, also the image's own digest reference;
        # layers count as snapshot usage in 4 KiB blocks, and the listed size adds the
        # content store's blobs (here the uncompressed layer tars, config and manifest).
        assert found != image_id(spec)
        assert listed["RepoDigests"] == [f"facts/app@{found}"]
        assert layers_size == sum(history)
        assert all(size % 4096 == 0 for size in history)
        blobs = len(base.tar) + len(top.tar)
        assert listed["Size"] - layers_size > blobs
        return
    assert found == image_id(spec)  # the config digest
    if traits.layer_db:  # graphdriver: the files' own bytes
        assert history == [3_000, 10_000]
        assert listed["Size"] == layers_size == 13_000
        return
    # Podman: each layer as its uncompressed tar, and the image's manifest and config too.
    assert history == [len(top.tar), len(base.tar)]
    assert listed["Size"] == layers_size > sum(history)


def test_a_conflict_is_a_conflict_on_every_engine(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine
) -> None:
    (used, multi) = load(
        api,
        image(runnable_layer(), layer(10, "facts-used"), tags=("facts/used:1",)),
        image(layer(10, "facts-multi"), tags=("facts/multi:1", "facts/multi:2")),
    )
    container = api.create_container(
        used, command=["sleep", "1000"], host_config=api.create_host_config(network_mode="none")
    )
    api.start(container)
    in_use = engine.remove_image(used)
    # Docker answers 409; Podman 409 for an image in use, but 500 for several tags.
    two_tags = engine.remove_image(multi)
    assert (in_use.status, two_tags.status) == (RemoveStatus.CONFLICT, RemoveStatus.CONFLICT)
    assert "running container" in in_use.message or "in use" in in_use.message
    assert api.inspect_image(used)["Id"] == used
    assert api.inspect_image(multi)["Id"] == multi


def test_container_events_name_the_container_in_actor_id(
    clean_engine: PrivateEngine, api: docker.APIClient
) -> None:
    (target,) = load(api, image(runnable_layer(), tags=("facts/events:1",)))
    since = int(time.time()) - 1
    container = api.create_container(
        "facts/events:1", command=["true"], host_config=api.create_host_config(network_mode="none")
    )["Id"]
    api.start(container)
    api.wait(container, timeout=60)
    events = api.events(
        since=since,
        until=int(time.time()) + 1,
        filters={"type": ["container"], "event": ["create", "start"], "container": [container]},
        decode=True,
    )
    seen = [(e["Action"], e["Actor"]["ID"]) for e in events]
    assert seen == [("create", container), ("start", container)]
    # The usage tracker maps the container to its image by id, never by the name the user typed.
    assert api.inspect_container(container)["Image"] == target
