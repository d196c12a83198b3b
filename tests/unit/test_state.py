from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gcd.errors import StateError
from gcd.state import State

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ID = "sha256:" + "a" * 64


def test_first_seen_survives_a_reload_and_never_moves(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.mark_seen(ID, T0 + timedelta(days=1))
    state.save()
    assert State.load(tmp_path).first_seen(ID) == T0


def test_last_used_only_moves_forward(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_used(ID, T0)
    state.mark_used(ID, T0 - timedelta(hours=1))
    state.save()
    assert State.load(tmp_path).last_used(ID) == T0


def test_a_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert State.load(tmp_path / "new").first_seen(ID) is None


def test_images_that_are_gone_are_forgotten(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.forget_missing([])
    assert state.first_seen(ID) is None


def test_a_corrupt_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="move it aside"):
        State.load(tmp_path)


def test_the_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.save()
    state.save()
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_an_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="--state-dir"):
        State.load(blocker / "sub").save()


def test_layers_are_cached_across_a_reload(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.record_layers(ID, [("sha256:" + "1" * 64, 10), ("sha256:" + "2" * 64, 0)])
    state.save()
    assert State.load(tmp_path).layers(ID) == (
        ("sha256:" + "1" * 64, 10),
        ("sha256:" + "2" * 64, 0),
    )


def test_a_malformed_layer_record_is_a_cache_miss(tmp_path: Path) -> None:
    document = {"format": 1, "images": {ID: {"layers": [["k", "ten"]]}}}
    (tmp_path / "state.json").write_text(json.dumps(document))
    state = State.load(tmp_path)
    assert state.layers(ID) is None
    assert state.layers("sha256:" + "f" * 64) is None


def test_naive_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        State.load(tmp_path).mark_seen(ID, datetime(2026, 1, 1))
