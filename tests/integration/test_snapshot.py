"""The snapshot on the suite's own engine: records, constant API calls, exact bytes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.core.accounting import StorageAccount
from gcd.core.records import ContainerState
from gcd.engine.client import Engine
from gcd.engine.layers import LayerStore, chain_ids
from gcd.engine.snapshot import take_snapshot
from gcd.engine.timeouts import Wait
from gcd.host.state import State
from tests.integration.engines import Traits
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer

pytestmark = pytest.mark.core  # records, ids and layer bytes differ per engine

NOW = datetime.now(UTC)
CALLS = 6
"""A snapshot's calls whatever the engine holds: `GET /info`, `/images/json`,
`/containers/json`, `/volumes`, `/networks` and one `/system/df` (stopped containers cost one
inspect each on first sight; these tests have none)."""


class CountingEngine(Engine):
    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.calls = 0

    def _send(self, kind: str, wait: Wait, request: Callable[[], Any]) -> Any:
        self.calls += 1
        return super()._send(kind, wait, request)


def test_records_are_parsed_once_with_aware_dates(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    engine: Engine,
    traits: Traits,
    tmp_path: Path,
) -> None:
    future = NOW + timedelta(days=100)
    ids = load(
        api,
        image(
            layer(10, "s1"),
            tags=("s/epoch:1", "s/epoch:2"),
            created=datetime(1970, 1, 1, tzinfo=UTC),
        ),
        image(layer(10, "s2"), tags=("s/one:1",), created=datetime(1, 1, 1, tzinfo=UTC)),
        image(layer(10, "s3"), tags=("s/future:1",), created=future, labels={"gc.keep": "true"}),
        image(layer(10, "s4")),
    )
    snapshot = take_snapshot(engine, State.load(tmp_path), NOW)
    by_id = {i.id: i for i in snapshot.images}
    assert [str(t) for t in by_id[ids[0]].tags] == [
        "docker.io/s/epoch:1",
        "docker.io/s/epoch:2",
    ]
    assert by_id[ids[0]].created == datetime(1970, 1, 1, tzinfo=UTC)
    if traits.year_one_listed:
        assert by_id[ids[1]].created == datetime(1, 1, 1, tzinfo=UTC)
    else:  # Podman lists the time it loaded the image instead
        loaded = by_id[ids[1]].created
        assert loaded is not None
        assert loaded > NOW - timedelta(minutes=10)
    created = by_id[ids[2]].created
    assert created is not None
    assert abs(created - future) < timedelta(seconds=1)
    assert by_id[ids[2]].labels == {"gc.keep": "true"}
    assert by_id[ids[3]].is_dangling
    assert all(i.seen_at == NOW for i in snapshot.images)


def test_first_sightings_are_kept_across_snapshots(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    load(api, image(layer(10, "fs"), tags=("fs/app:1",)))
    state = State.load(tmp_path)
    take_snapshot(engine, state, NOW - timedelta(days=3))
    state.save()
    later = take_snapshot(engine, State.load(tmp_path), NOW)
    assert later.images[0].seen_at == NOW - timedelta(days=3)


def test_a_stopped_container_is_a_container(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    (image_id,) = load(api, image(runnable_layer(), tags=("run/app:1",)))
    created = api.create_container("run/app:1", command=["true"], name="stopped-one")
    api.start(created)
    api.wait(created)
    snapshot = take_snapshot(engine, State.load(tmp_path), NOW)
    (container,) = snapshot.containers
    assert container.image_id == image_id
    assert container.state is ContainerState.EXITED
    assert container.name == "stopped-one"


def test_the_number_of_api_calls_does_not_grow_with_the_images(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    counts = []
    for total in (3, 30):
        load(api, *(image(layer(10, f"n{n}"), tags=(f"n/app:{n}",)) for n in range(total)))
        counting = CountingEngine(clean_engine.host)
        state = State.load(tmp_path)
        take_snapshot(counting, state, NOW, LayerStore())
        state.save()
        counts.append(counting.calls)
        again = CountingEngine(clean_engine.host)
        take_snapshot(again, State.load(tmp_path), NOW, LayerStore())
        assert again.calls == CALLS  # images gcd has seen cost nothing, whatever the engine
    if traits.layer_db:
        assert counts == [CALLS, CALLS]
    else:  # inspect and history once per image never seen: 3, then 27 new ones
        assert counts == [CALLS + 2 * 3, CALLS + 2 * 27]


def test_freed_bytes_match_docker_accounting_with_shared_layers(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    base = layer(50_000, "shared-base")
    _keep, one, two = load(
        api,
        image(base, layer(1_000, "k"), tags=("acct/keep:1",)),
        image(base, layer(20_000, "o"), layer(3_000, "o2"), tags=("acct/one:1",)),
        image(layer(7_000, "t"), base, tags=("acct/two:1", "acct/two:2")),
    )
    snapshot = take_snapshot(engine, State.load(tmp_path), NOW)
    account = StorageAccount.of(snapshot)
    gone = [i for i in snapshot.images if i.id in {one, two}]
    predicted = account.freed_by(gone)
    before = api.df()["LayersSize"]
    api.remove_image("acct/two:2")
    for image_id in (one, two):
        api.remove_image(image_id)
    assert before - api.df()["LayersSize"] == predicted


def test_without_the_data_root_the_engine_api_gives_the_same_exact_layers(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    base = layer(40_000, "api-base")
    keep, one, two = load(
        api,
        image(base, layer(1_000, "api-k"), tags=("api/keep:1",)),
        image(base, layer(20_000, "api-o"), tags=("api/one:1",)),
        image(layer(7_000, "api-t"), base, tags=("api/two:1",)),
    )
    from_disk = take_snapshot(Engine(clean_engine.host), State.load(tmp_path / "a"), NOW)
    counting = CountingEngine(clean_engine.host)
    state = State.load(tmp_path / "b")
    via_api = take_snapshot(counting, state, NOW, LayerStore(use_disk=False))
    # An inspect per new image; a history for `keep` and `two`, whose two layers are unknown:
    # `one`'s own layer is the rest of its listed `Size` (gcd.engine.first_sight), but not on
    # the containerd store or Podman, whose `Size` is not the sum of the layers.
    assert counting.calls == CALLS + 3 + (2 if traits.layer_db else 3)
    assert {i.id: i.layers for i in via_api.images} == {i.id: i.layers for i in from_disk.images}
    assert via_api.unit_sizes == from_disk.unit_sizes

    state.save()
    again = CountingEngine(clean_engine.host)
    take_snapshot(again, State.load(tmp_path / "b"), NOW, LayerStore(use_disk=False))
    assert again.calls == CALLS  # the layers come from the state now

    predicted = StorageAccount.of(via_api).freed_by([i for i in via_api.images if i.id != keep])
    before = api.df()["LayersSize"]
    for image_id in (one, two):
        api.remove_image(image_id)
    assert before - api.df()["LayersSize"] == predicted


def test_a_history_that_cannot_be_matched_to_layers_is_an_estimate(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    # A zero-byte layer beside an empty-layer CMD entry: which entry is the layer is unknown.
    spec = image(layer(0, "empty"), layer(500, "e1"), tags=("est/app:1",))
    (image_id,) = load(api, spec)
    snapshot = take_snapshot(engine_for(clean_engine), State.load(tmp_path), NOW, api_only())
    (found,) = snapshot.images
    if not traits.layer_db:
        # Snapshot usage (containerd) and tar sizes (Podman) are never 0: no ambiguity.
        assert found.layers[:2] == tuple(chain_ids([item.diff_id for item in spec.layers]))
        assert all(snapshot.unit_sizes[key] > 0 for key in found.layers)
        return
    assert found.layers == (image_id,)
    assert {unit: snapshot.unit_sizes[unit] for unit in found.units} == {image_id: 500}


def test_local_age_starts_at_the_engines_last_tag_time_for_unknown_images(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    if not traits.last_tag_time:
        pytest.skip(f"{clean_engine.name} records no LastTagTime: local age starts when seen")
    (image_id,) = load(api, image(layer(10, "lt"), tags=("lt/app:1",)))
    api.tag(image_id, "lt/app", "2")  # `docker tag` stamps LastTagTime; a load does not
    inspected = api.inspect_image(image_id)["Metadata"]["LastTagTime"]
    later = NOW + timedelta(days=1)
    for store in (LayerStore(), api_only()):
        directory = tmp_path / str(store.use_disk)
        snapshot = take_snapshot(engine_for(clean_engine), State.load(directory), later, store)
        seen_at = snapshot.images[0].seen_at
        assert seen_at < later
        assert seen_at.isoformat()[:19] == inspected[:19]


def test_the_layer_cache_forgets_images_that_are_gone(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    if not traits.layer_db:
        pytest.skip(f"{clean_engine.name} has no graphdriver layer database to cache")
    ids = load(api, *(image(layer(10, f"gone{n}"), tags=(f"gone/app:{n}",)) for n in range(3)))
    store = LayerStore()
    take_snapshot(engine_for(clean_engine), State.load(tmp_path), NOW, store)
    assert store.cached_images == 3
    api.remove_image(ids[0])
    take_snapshot(engine_for(clean_engine), State.load(tmp_path), NOW, store)
    assert store.cached_images == 2


def engine_for(private: PrivateEngine) -> Engine:
    return Engine(private.host)


def api_only() -> LayerStore:
    return LayerStore(use_disk=False)
