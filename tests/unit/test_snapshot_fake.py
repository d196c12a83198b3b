"""The snapshot on the fake engine (`tests/unit/fake_engine.py`): how the engine's listings
become records, where layers come from (the graphdriver's databases, the API, an estimate),
and where local age starts. The same on real engines: tests/integration/test_snapshot.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gcd.core.records import ContainerState, Image, Snapshot
from gcd.engine.layers import LayerStore, chain_ids
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.unit.fake_engine import FakeEngine, digest_of

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
PER_IMAGE_CALLS = ("inspect_image", "image_history")


def state_in(directory: Path) -> State:
    """gcd's state for these tests (one place to follow the state's shape)."""
    return State.load(directory)


def take(engine: FakeEngine, state: State, now: datetime = NOW) -> Snapshot:
    return take_snapshot(engine, state, now, LayerStore())


def only(snapshot: Snapshot) -> Image:
    (image,) = snapshot.images
    return image


def per_image_calls(engine: FakeEngine) -> list[str]:
    return [name for name, _ in engine.calls if name in PER_IMAGE_CALLS]


def warnings(logs: Iterable[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == "warning"]


@pytest.fixture
def state(tmp_path: Path) -> State:
    return state_in(tmp_path / "state")


class TestImages:
    def test_an_image_is_read_with_its_tags_digests_labels_created_size_and_parent(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        loaded = engine.add_image(
            "app",
            "x/app:1",
            "localhost:5000/x/app:1",
            digests=("x/app@sha256:" + "d" * 64,),
            labels={"gc.keep": "true"},
            created=0,
            size=1234,
            parent=digest_of("step"),
        )
        image = only(take(engine, state))
        assert image.id == loaded.id
        assert image.parent == digest_of("step")
        assert [t.familiar for t in image.tags] == ["x/app:1", "localhost:5000/x/app:1"]
        assert [d.familiar for d in image.digests] == ["x/app@sha256:" + "d" * 64]
        assert image.labels == {"gc.keep": "true"}
        assert image.created == datetime(1970, 1, 1, tzinfo=UTC)
        assert image.size_bytes == 1234

    def test_a_dangling_image_has_no_references(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("dangling")
        image = only(take(engine, state))
        assert (image.tags, image.digests) == ((), ())
        assert engine.list_images()[0]["RepoTags"] == ["<none>:<none>"]

    def test_podman_s_qualified_names_are_the_same_references(self, state: State) -> None:
        engine = FakeEngine(podman=True)
        engine.add_image("app", "x/app:1")
        assert [str(t) for t in only(take(engine, state)).tags] == ["docker.io/x/app:1"]

    def test_a_reference_that_does_not_parse_is_logged_and_left_out(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("odd", "x/app:1", "Upper/Case:1")
        with capture_logs() as logs:
            image = only(take(engine, state))
        assert [t.familiar for t in image.tags] == ["x/app:1"]
        assert warnings(logs) == ["reference_unparsed"]

    @pytest.mark.parametrize(
        ("created", "expected"),
        [
            (-62135596800, datetime(1, 1, 1, tzinfo=UTC)),
            (1767225600.5, datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)),
            ("2026-01-01T00:00:00Z", None),
            (None, None),
            (10**20, None),
        ],
    )
    def test_created_is_unix_seconds_and_anything_else_is_unknown(
        self, state: State, created: object, expected: datetime | None
    ) -> None:
        engine = FakeEngine()
        engine.add_image("app", "x/app:1", created=created)
        assert only(take(engine, state)).created == expected

    def test_a_created_in_the_future_is_kept_as_the_engine_says(self, state: State) -> None:
        engine = FakeEngine()
        tomorrow = NOW + timedelta(days=1)
        engine.add_image("app", "x/app:1", created=int(tomorrow.timestamp()))
        assert only(take(engine, state)).created == tomorrow

    def test_an_image_without_labels_has_none(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("app", "x/app:1")
        assert engine.list_images()[0]["Labels"] is None
        assert only(take(engine, state)).labels == {}


class TestContainers:
    @pytest.mark.parametrize(
        ("listed", "expected"),
        [
            ("running", ContainerState.RUNNING),
            ("exited", ContainerState.EXITED),
            ("Paused", ContainerState.PAUSED),
            ("stopped", ContainerState.EXITED),
            ("configured", ContainerState.CREATED),
            ("initialized", ContainerState.CREATED),
            ("stopping", ContainerState.RUNNING),
            ("hibernating", ContainerState.CREATED),
        ],
    )
    def test_every_state_is_read_and_an_unknown_one_still_protects_its_image(
        self, state: State, listed: str, expected: ContainerState
    ) -> None:
        engine = FakeEngine()
        image = engine.add_image("app", "x/app:1")
        engine.create_container(image.id, "job", listed)
        (container,) = take(engine, state).containers
        assert (container.name, container.image_id) == ("job", image.id)
        assert container.state is expected

    def test_a_container_without_names_is_named_by_its_short_id(self, state: State) -> None:
        engine = FakeEngine()
        image = engine.add_image("app", "x/app:1")
        created = engine.create_container(image.id, "job")
        created.name = None
        (container,) = take(engine, state).containers
        assert container.name == created.id[:12]

    def test_a_container_without_an_image_id_is_logged_and_left_out(self, state: State) -> None:
        engine = FakeEngine()
        engine.create_container(None, "by-name-only")
        with capture_logs() as logs:
            snapshot = take(engine, state)
        assert snapshot.containers == ()
        assert warnings(logs) == ["container_without_image_id"]


class TestLayersFromTheApi:
    """A remote engine, or one whose databases gcd cannot read: inspect and history, once per
    image gcd has never seen, cached in the state."""

    def test_layers_are_chain_ids_with_the_sizes_of_the_history(self, state: State) -> None:
        engine = FakeEngine()
        diffs = [digest_of("d1"), digest_of("d2")]
        image = engine.add_image("app", "x/app:1", layers=[(diffs[0], 10), (diffs[1], 20)])
        snapshot = take(engine, state)
        assert only(snapshot).layers == tuple(chain_ids(diffs))
        assert snapshot.unit_sizes == dict(zip(chain_ids(diffs), (10, 20), strict=True))
        assert per_image_calls(engine) == list(PER_IMAGE_CALLS)
        assert state.layers(image.id) == tuple(zip(chain_ids(diffs), (10, 20), strict=True))

    def test_an_image_seen_before_costs_no_call(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("app", "x/app:1")
        first = take(engine, state)
        engine.calls.clear()
        assert take(engine, state).images == first.images
        assert per_image_calls(engine) == []

    def test_a_zero_byte_layer_among_empty_steps_makes_the_image_one_estimated_unit(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        layers = [(digest_of("empty"), 0), (digest_of("files"), 5)]
        image = engine.add_image("app", "x/app:1", layers=layers, size=77)
        snapshot = take(engine, state)
        assert only(snapshot).layers == (image.id,)
        assert snapshot.unit_sizes == {image.id: 77}

    def test_an_image_without_layers_in_its_record_is_one_estimated_unit(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        image = engine.add_image("app", "x/app:1", layers=[], size=9)
        assert take(engine, state).unit_sizes == {image.id: 9}

    @pytest.mark.parametrize("call", PER_IMAGE_CALLS)
    def test_an_image_gone_since_the_listing_is_one_estimated_unit_and_not_cached(
        self, state: State, call: str
    ) -> None:
        engine = FakeEngine()
        # Two layers: one alone is a subtraction, without a history (gcd.engine.first_sight).
        layers = [(digest_of("gone1"), 10), (digest_of("gone2"), 32)]
        image = engine.add_image("app", "x/app:1", layers=layers)
        engine.before(call, lambda: engine.drop_image(image.id))
        assert only(take(engine, state)).layers == (image.id,)
        assert state.layers(image.id) is None

    def test_on_podman_the_bytes_beyond_the_layers_are_the_image_s_own_unit(
        self, state: State
    ) -> None:
        engine = FakeEngine(podman=True)
        diff = digest_of("d")
        image = engine.add_image("app", "x/app:1", layers=[(diff, 1000)], size=1500)
        snapshot = take(engine, state)
        assert only(snapshot).layers == (diff, image.id)
        assert snapshot.unit_sizes == {diff: 1000, image.id: 500}

    def test_on_the_containerd_store_the_bytes_beyond_the_layers_are_not_counted(
        self, state: State
    ) -> None:
        engine = FakeEngine(containerd_store=True)
        diff = digest_of("d")
        engine.add_image("app", "x/app:1", layers=[(diff, 1000)], size=1500)
        assert take(engine, state).unit_sizes == {diff: 1000}


class TestLayersFromTheLayerDatabase:
    """A local graphdriver engine whose data root gcd can read (as root): no per-image call."""

    def test_layers_and_sizes_come_from_disk_without_a_call_per_image(
        self, state: State, tmp_path: Path
    ) -> None:
        engine = FakeEngine(data_root=tmp_path / "docker")
        diffs = [digest_of("d1"), digest_of("d2")]
        engine.add_image("app", "x/app:1", layers=[(diffs[0], 10), (diffs[1], 20)], size=1)
        snapshot = take(engine, state)
        assert only(snapshot).layers == tuple(chain_ids(diffs))
        assert snapshot.unit_sizes == dict(zip(chain_ids(diffs), (10, 20), strict=True))
        assert per_image_calls(engine) == []

    def test_an_image_gone_from_disk_since_the_listing_is_one_estimated_unit(
        self, state: State, tmp_path: Path
    ) -> None:
        engine = FakeEngine(data_root=tmp_path / "docker")
        image = engine.add_image("app", "x/app:1", size=42)
        engine.before("list_containers", lambda: engine.drop_image(image.id))
        assert take(engine, state).unit_sizes == {image.id: 42}
        assert per_image_calls(engine) == []

    def test_the_last_tag_time_on_disk_starts_the_local_age(
        self, state: State, tmp_path: Path
    ) -> None:
        engine = FakeEngine(data_root=tmp_path / "docker")
        tagged = NOW - timedelta(days=3)
        engine.add_image("app", "x/app:1", last_tag_time=tagged)
        assert only(take(engine, state)).seen_at == tagged

    def test_layers_read_from_disk_once_are_kept_in_the_state_for_the_next_run(
        self, tmp_path: Path
    ) -> None:
        """Cold: read from the layer database and recorded; warm (a new process: a new
        state and layer store): from the state alone, even with the files unreadable."""
        engine = FakeEngine(data_root=tmp_path / "docker")
        diffs = [digest_of("d1"), digest_of("d2")]
        image = engine.add_image("app", "x/app:1", layers=[(diffs[0], 10), (diffs[1], 20)])
        cold = state_in(tmp_path / "state")
        expected = dict(zip(chain_ids(diffs), (10, 20), strict=True))
        assert take(engine, cold).unit_sizes == expected
        cold.save()
        size_files = list((tmp_path / "docker/image/overlay2/layerdb/sha256").glob("*/size"))
        assert len(size_files) == 2
        for size_file in size_files:
            size_file.write_text("999999")  # what a warm run must not read
        warm = state_in(tmp_path / "state")
        assert take(engine, warm).unit_sizes == expected
        assert warm.layers(image.id) == tuple(expected.items())
        assert per_image_calls(engine) == []

    def test_a_deleted_image_s_kept_layers_go_with_it(self, tmp_path: Path) -> None:
        """The next snapshot forgets an image gone from the engine, its layers too; an
        image loaded again under the same id (the same content) is read afresh."""
        engine = FakeEngine(data_root=tmp_path / "docker")
        diff = digest_of("gone")
        image = engine.add_image("app", "x/app:1", layers=[(diff, 10)])
        state = state_in(tmp_path / "state")
        take(engine, state)
        state.save()
        engine.drop_image(image.id)
        state = state_in(tmp_path / "state")
        snapshot = take(engine, state)
        state.forget_missing({i.id for i in snapshot.images})  # as `cycle.plan` does
        state.save()
        assert state_in(tmp_path / "state").layers(image.id) is None

    def test_an_estimate_kept_by_the_api_path_is_read_again_from_disk(self, tmp_path: Path) -> None:
        engine = FakeEngine(data_root=tmp_path / "docker")
        diff = digest_of("exact")
        image = engine.add_image("app", "x/app:1", layers=[(diff, 10)], size=10)
        state = state_in(tmp_path / "state")
        take(engine, state)  # binds the state to the engine's scope
        state.record_layers(image.id, [(image.id, 10)])  # an estimate, as the API path keeps
        assert take(engine, state).unit_sizes == {diff: 10}
        assert state.layers(image.id) == ((diff, 10),)

    def test_a_remote_engine_s_data_root_is_never_read(self, state: State, tmp_path: Path) -> None:
        engine = FakeEngine(data_root=tmp_path / "docker")
        engine.host = "tcp://build-host:2376"
        engine.add_image("app", "x/app:1")
        take(engine, state)
        assert per_image_calls(engine) == ["inspect_image"]  # one layer: its size is `Size`


class TestLocalAge:
    def test_a_first_sighting_recorded_in_the_state_is_kept(self, state: State) -> None:
        engine = FakeEngine()
        image = engine.add_image("app", "x/app:1", last_tag_time=NOW - timedelta(days=1))
        take(engine, state, NOW - timedelta(days=10))
        assert only(take(engine, state)).seen_at == NOW - timedelta(days=10)
        assert state.first_seen(image.id) == NOW - timedelta(days=10)

    def test_an_image_never_seen_starts_at_its_last_tag_time_and_is_recorded(
        self, state: State
    ) -> None:
        engine = FakeEngine()
        tagged = NOW - timedelta(hours=5)
        image = engine.add_image("app", "x/app:1", last_tag_time=tagged)
        assert only(take(engine, state)).seen_at == tagged
        assert state.first_seen(image.id) == tagged

    def test_a_last_tag_time_in_the_future_starts_the_age_now(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("app", "x/app:1", last_tag_time=NOW + timedelta(hours=1))
        assert only(take(engine, state)).seen_at == NOW

    def test_a_loaded_image_starts_its_age_when_first_seen(self, state: State) -> None:
        engine = FakeEngine()
        engine.add_image("app", "x/app:1")
        assert only(take(engine, state)).seen_at == NOW

    def test_on_podman_a_tagged_image_starts_its_age_when_first_seen(self, state: State) -> None:
        engine = FakeEngine(podman=True, clock=NOW - timedelta(days=1))
        image = engine.add_image("app", "x/app:1")
        engine.tag(image.id, "x/app:2")  # Podman records no tag time
        assert only(take(engine, state)).seen_at == NOW

    def test_the_last_use_recorded_in_the_state_is_read(self, state: State) -> None:
        engine = FakeEngine()
        image = engine.add_image("app", "x/app:1")
        take(engine, state)
        state.mark_used(image.id, NOW - timedelta(hours=2))
        assert only(take(engine, state)).last_used == NOW - timedelta(hours=2)
