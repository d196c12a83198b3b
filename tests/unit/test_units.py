"""Durations and sizes as policy files spell them, and as gcd prints them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.units import format_bytes, format_duration, parse_duration, parse_size, spell_duration


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30s", 30), ("15m", 900), ("1h", 3600), ("7d", 604800), ("2w", 1209600)],
    )
    def test_each_unit_parses(self, text: str, seconds: int) -> None:
        assert parse_duration(text) == timedelta(seconds=seconds)

    @pytest.mark.parametrize("text", ["", "1", "1y", "-1h", "1.5h", "h"])
    def test_anything_else_names_the_accepted_forms(self, text: str) -> None:
        with pytest.raises(ValueError, match="30s, 15m, 1h, 7d or 2w"):
            parse_duration(text)

    @pytest.mark.parametrize(
        ("seconds", "shown"),
        [(0, "0s"), (59, "59s"), (60, "1m"), (3599, "59m"), (90000, "1d"), (1209600, "2w")],
    )
    def test_an_age_is_shown_coarsely_in_its_largest_unit(self, seconds: int, shown: str) -> None:
        assert format_duration(timedelta(seconds=seconds)) == shown

    def test_a_negative_age_is_in_the_future(self) -> None:
        assert format_duration(timedelta(seconds=-1)) == "future"

    @pytest.mark.parametrize(
        ("seconds", "spelled"),
        [(45, "45s"), (5400, "90m"), (3600, "1h"), (604800, "1w"), (691200, "8d"), (0, "0s")],
    )
    def test_a_rule_spells_its_duration_exactly(self, seconds: int, spelled: str) -> None:
        assert spell_duration(timedelta(seconds=seconds)) == spelled
        assert parse_duration(spelled) == timedelta(seconds=seconds)


class TestSizes:
    @pytest.mark.parametrize(
        ("text", "size"), [("500MB", 500 * 10**6), ("20GiB", 20 * 2**30), ("7", 7), ("1.5KB", 1500)]
    )
    def test_si_and_iec_units(self, text: str, size: int) -> None:
        assert parse_size(text) == size

    def test_a_bad_size_names_the_accepted_forms(self) -> None:
        with pytest.raises(ValueError, match="500MB or 20GiB"):
            parse_size("lots")

    @pytest.mark.parametrize(
        ("size", "shown"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (5 * 2**40, "5.0 TiB")]
    )
    def test_bytes_are_shown_in_iec_units(self, size: int, shown: str) -> None:
        assert format_bytes(size) == shown
