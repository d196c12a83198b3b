"""The pure parts of layer accounting; the sources themselves are tested on a real engine."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from gcd.engine.layers import ImageLayers, chain_ids, sizes_from_history
from gcd.engine.times import parse_go_time

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64


def entries(*sizes: int) -> list[dict[str, object]]:
    """`/history` answers newest first; the arguments read bottom layer first."""
    return [{"Size": size, "CreatedBy": "step"} for size in reversed(sizes)]


class TestChainIds:
    def test_the_bottom_layer_is_its_own_chain(self) -> None:
        assert chain_ids([A]) == [A]

    def test_each_chain_digests_the_parent_chain_and_the_diff_id(self) -> None:
        expected = "sha256:" + hashlib.sha256(f"{A} {B}".encode()).hexdigest()
        assert chain_ids([A, B]) == [A, expected]

    def test_the_same_diff_on_another_parent_is_another_layer(self) -> None:
        assert chain_ids([A, B])[1] != chain_ids([B, B])[1]


class TestSizesFromHistory:
    def test_one_entry_per_layer_maps_in_order(self) -> None:
        assert sizes_from_history(entries(5, 0, 7), 3) == (5, 0, 7)

    def test_empty_layer_entries_are_skipped_when_every_layer_has_bytes(self) -> None:
        assert sizes_from_history(entries(0, 5, 0, 7, 0), 2) == (5, 7)

    def test_a_zero_byte_layer_among_empty_entries_is_ambiguous(self) -> None:
        assert sizes_from_history(entries(0, 5, 0), 2) is None

    def test_missing_or_odd_sizes_are_ambiguous(self) -> None:
        assert sizes_from_history([{"Size": None}, {"Size": 3}], 2) is None
        assert sizes_from_history([{"Size": -1}], 1) is None

    def test_an_image_without_layers_and_entries_has_no_sizes(self) -> None:
        assert sizes_from_history([], 0) == ()


class TestParseGoTime:
    def test_nanoseconds_are_cut_to_microseconds(self) -> None:
        assert parse_go_time("2026-11-29T04:00:00.123456789Z") == datetime(
            2026, 11, 29, 4, 0, 0, 123456, tzinfo=UTC
        )

    def test_offsets_become_utc(self) -> None:
        assert parse_go_time("2026-11-29T06:00:00+02:00\n") == datetime(2026, 11, 29, 4, tzinfo=UTC)

    def test_the_zero_time_of_loaded_images_means_none(self) -> None:
        assert parse_go_time("0001-01-01T00:00:00Z") is None

    def test_garbage_is_none(self) -> None:
        assert parse_go_time("") is None
        assert parse_go_time("yesterday") is None


def test_an_estimate_is_one_unit_keyed_by_the_image_id() -> None:
    estimate = ImageLayers.estimate(A, 42)
    assert estimate.pairs() == ((A, 42),)
    assert ImageLayers.of_pairs(estimate.pairs()) == estimate
