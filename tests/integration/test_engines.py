"""What differs between the engines of the matrix, pinned where gcd relies on it
(docs/engines.md): the API version gcd speaks, image ids, what sizes count, conflict answers,
the event fields the usage tracker reads, and multi-platform images."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from gcd.core.accounting import StorageAccount
from gcd.engine.client import Engine, RemoveStatus
from gcd.engine.layers import chain_ids
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import (
    image,
    image_id,
    layer,
    load,
    multi_platform_archive,
    runnable_layer,
)

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


def test_a_multi_platform_image_is_counted_by_its_host_platform(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    if clean_engine.name not in ("docker-26-containerd", "podman-5"):
        pytest.skip(f"{clean_engine.name} does not load an OCI image index")
    base = layer(30_000, "mp-base")
    archive, index = multi_platform_archive(
        "mp/app:1",
        {
            "linux/amd64": image(base, layer(5_000, "mp-amd64")),
            "linux/arm64": image(layer(40_000, "mp-arm64")),
        },
    )
    for message in api.load_image(archive):
        assert "error" not in message
    snapshot = take_snapshot(engine, State.load(tmp_path), datetime.now(UTC))
    (found,) = snapshot.images
    predicted = StorageAccount.of(snapshot).freed_by([found])
    before = api.df()["LayersSize"]
    api.remove_image(found.id)
    freed = before - api.df()["LayersSize"]
    # Layers are the host platform's, as inspect and history describe them.
    assert found.layers[:2] == tuple(chain_ids([base.diff_id, layer(5_000, "mp-amd64").diff_id]))
    if clean_engine.name == "podman-5":
        # Podman keeps the host platform's image only, named by its config digest.
        assert found.id != index
        assert freed == predicted
        return
    # The containerd store keeps the index (its digest is the id) and its `Size` counts both
    # platforms' blobs. `docker load` unpacked the arm64 layer too: freed, but not predicted,
    # since API 1.45 shows no other platform's snapshots (1.47's `manifests=1` would).
    assert found.id == index
    assert found.size_bytes > len(base.tar) + len(layer(40_000, "mp-arm64").tar)
    arm64_snapshot = freed - predicted
    assert 40_000 < arm64_snapshot < 40_000 + 3 * 4096
