"""The first sight's layer facts (gcd.engine.first_sight): sizes by subtraction from the listed
`Size` on hand-built data, which images still need their history, and the fetch on the fake
engine (requests, a vanished image, a failure with requests in flight). On real engines:
tests/integration/test_first_sight.py."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gcd.engine.first_sight import WORKERS, Inspected, derive_sizes, fetch_unseen, history_batch
from gcd.engine.layers import ImageLayers, LayerStore, chain_ids
from gcd.engine.snapshot import take_snapshot
from gcd.errors import EngineUnreachableError
from gcd.host.state import State
from tests.unit.fake_engine import FakeEngine, digest_of, unreachable
from tests.unit.test_snapshot_fake import NOW

A, B, C = "sha256:a", "sha256:b", "sha256:c"


def item(image_id: str, size: int, *chains: str) -> Inspected:
    return Inspected(image_id, size, chains, None)


class TestDeriveSizes:
    def test_one_unknown_layer_is_the_rest_of_the_size(self) -> None:
        assert derive_sizes([A, B, C], 100, {A: 30, C: 5}) == (30, 65, 5)

    def test_an_unknown_layer_may_be_empty(self) -> None:
        assert derive_sizes([A, B], 30, {A: 30}) == (30, 0)

    def test_every_layer_known_must_add_up_to_the_size(self) -> None:
        assert derive_sizes([A, B], 50, {A: 30, B: 20}) == (30, 20)
        assert derive_sizes([A, B], 51, {A: 30, B: 20}) is None

    def test_two_unknown_layers_cannot_be_told_apart(self) -> None:
        assert derive_sizes([A, B, C], 100, {A: 30}) is None

    def test_a_size_smaller_than_the_known_layers_is_not_a_sum(self) -> None:
        assert derive_sizes([A, B], 20, {A: 30}) is None

    def test_an_image_without_layers_has_nothing_to_derive(self) -> None:
        assert derive_sizes([], 10, {}) is None


class TestHistoryBatch:
    def test_images_sharing_unknown_layers_send_one_history(self) -> None:
        one, two = item("i1", 0, A, B), item("i2", 0, A, B, C)
        assert history_batch([two, one], {}) == [one]

    def test_images_with_separate_unknown_layers_go_together(self) -> None:
        one, two = item("i1", 0, A, B), item("i2", 0, C, "sha256:d")
        assert history_batch([one, two], {}) == [one, two]

    def test_known_layers_do_not_count_as_shared(self) -> None:
        one, two = item("i1", 0, A, B, C), item("i2", 0, A, "sha256:d", "sha256:e")
        assert history_batch([one, two], {A: 1}) == [one, two]


def built(engine: FakeEngine, count: int, base: int = 2) -> list[str]:
    """`count` images on one base of `base` layers, one layer of their own each."""
    shared = [(digest_of(f"base{n}"), 100 * (n + 1)) for n in range(base)]
    return [
        engine.add_image(
            f"app{n}", f"x/app:{n}", layers=[*shared, (digest_of(f"own{n}"), n + 1)]
        ).id
        for n in range(count)
    ]


def history_from_engine(engine: FakeEngine, image_id: str) -> ImageLayers:
    """What the history alone says of the image, as gcd read it before first_sight."""
    diff_ids = [d for d, _ in engine.images[image_id].layers]
    history = engine.image_history(image_id) or []
    sizes = tuple(e["Size"] for e in reversed(history) if e["Size"] > 0)
    return ImageLayers(tuple(chain_ids(diff_ids)), sizes)


def fetch(engine: FakeEngine, ids: list[str], workers: int) -> dict[str, ImageLayers | None]:
    listed = {str(raw["Id"]): int(raw["Size"]) for raw in engine.list_images()}
    unseen = [(i, listed[i]) for i in ids]
    return fetch_unseen(engine, unseen, {}, subtract=True, own_bytes=True, workers=workers)


@pytest.mark.parametrize("workers", [1, 4])
class TestFetchUnseen:
    def test_images_on_a_shared_base_need_one_history_between_them(self, workers: int) -> None:
        engine = FakeEngine()
        ids = built(engine, 6)
        engine.calls.clear()
        found = fetch(engine, ids, workers)
        assert len(engine.sent("inspect_image")) == 6
        assert len(engine.sent("image_history")) == 1
        expected = {i: history_from_engine(engine, i) for i in ids}
        assert {i: (f.layers, f.sizes) for i, f in found.items() if f} == {
            i: (e.layers, e.sizes) for i, e in expected.items()
        }

    def test_images_sharing_nothing_each_get_their_history(self, workers: int) -> None:
        engine = FakeEngine()
        ids = [
            engine.add_image(
                f"s{n}", f"x/s:{n}", layers=[(digest_of(f"s{n}a"), 5), (digest_of(f"s{n}b"), 7)]
            ).id
            for n in range(3)
        ]
        engine.calls.clear()
        found = fetch(engine, ids, workers)
        assert len(engine.sent("image_history")) == 3
        assert all(f is not None and f.sizes == (5, 7) for f in found.values())

    def test_podman_s_size_is_not_a_sum_of_layers_so_every_image_gets_its_history(
        self, workers: int
    ) -> None:
        engine = FakeEngine(podman=True)
        ids = built(engine, 3)
        engine.calls.clear()
        listed = {str(raw["Id"]): int(raw["Size"]) for raw in engine.list_images()}
        fetch_unseen(
            engine, [(i, listed[i]) for i in ids], {}, subtract=False, own_bytes=True,
            workers=workers,
        )  # fmt: skip
        assert len(engine.sent("image_history")) == 3

    def test_a_size_that_is_not_the_sum_falls_back_to_the_history(self, workers: int) -> None:
        engine = FakeEngine()
        ids = built(engine, 2)
        odd = engine.images[ids[1]]
        odd.size = 5  # smaller than its base: no subtraction can give it
        found = fetch(engine, ids, workers)
        assert len(engine.sent("image_history")) == 2
        assert found[ids[1]] == ImageLayers(
            history_from_engine(engine, ids[1]).layers, (100, 200, 2)
        )

    def test_an_image_gone_before_its_inspect_is_none(self, workers: int) -> None:
        engine = FakeEngine()
        ids = built(engine, 3)
        engine.before("inspect_image", lambda: engine.drop_image(ids[0]))
        found = fetch(engine, ids, workers)
        assert found[ids[0]] is None
        assert found[ids[1]] is not None
        assert found[ids[2]] is not None

    def test_an_engine_gone_raises_and_nothing_more_is_sent(self, workers: int) -> None:
        engine = FakeEngine()
        ids = built(engine, 12)
        engine.fail("inspect_image", unreachable(), times=None)
        with pytest.raises(EngineUnreachableError):
            fetch(engine, ids, workers)
        assert len(engine.sent("inspect_image")) <= workers
        assert engine.sent("image_history") == []


def test_the_snapshot_s_layers_by_subtraction_equal_the_history_s(tmp_path: Path) -> None:
    engine = FakeEngine()
    ids = built(engine, 5, base=3)
    snapshot = take_snapshot(engine, State.load(tmp_path), NOW, LayerStore(use_disk=False))
    assert len(engine.sent("image_history")) == 1
    for image in snapshot.images:
        expected = history_from_engine(engine, image.id)
        assert image.layers == expected.layers
        assert [snapshot.unit_sizes[k] for k in image.layers] == list(expected.sizes)
    assert {i.id for i in snapshot.images} == set(ids)


def test_requests_of_a_first_sight_are_in_flight_together() -> None:
    # The first two inspects wait for each other: served one at a time, they never meet.
    engine = FakeEngine()
    ids = built(engine, 8)
    meet = threading.Barrier(2, timeout=60)
    engine.before("inspect_image", meet.wait, times=2)
    found = fetch(engine, ids, WORKERS)
    assert all(found[i] is not None for i in ids)
