"""state.json (format 1) → state.db, on the first open that knows the engine's scope."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gcd.errors import InsecureStateError, StateError
from gcd.host.state import State
from gcd.host.state_db import DB_FILE, Scope

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ID = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
LAYER = "sha256:" + "1" * 64
SCOPE = Scope("G5RA:JQZA", "graphdriver/overlay2 /var/lib/docker")
CONTAINERD = Scope("G5RA:JQZA", "containerd/overlayfs /var/lib/docker")
REPO = Path(__file__).resolve().parents[2]
DOCUMENT = {
    "format": 1,
    "images": {
        ID: {
            "first_seen": T0.isoformat(),
            "last_used": (T0 + timedelta(days=2)).isoformat(),
            "layers": [[LAYER, 10], ["sha256:" + "2" * 64, 0]],
        },
        OTHER: {"first_seen": (T0 + timedelta(days=1)).isoformat()},
    },
}


@pytest.fixture(autouse=True)
def logs() -> Iterator[list[MutableMapping[str, Any]]]:
    with capture_logs() as captured:
        yield captured


def legacy(directory: Path, document: object = DOCUMENT) -> Path:
    directory.mkdir(mode=0o700, exist_ok=True)
    path = directory / "state.json"
    path.write_text(json.dumps(document))
    path.chmod(0o600)
    return path


def rows(directory: Path) -> list[tuple[object, ...]]:
    database = sqlite3.connect(directory / DB_FILE)
    try:
        return database.execute("SELECT * FROM objects ORDER BY object_id").fetchall()
    finally:
        database.close()


def crash_in(directory: Path, where: str) -> None:
    """A real gcd process that dies (`os._exit`, no clean-up) at `where` of the migration."""
    script = f"""
import os, sys
from pathlib import Path
from gcd.host import state_migration
from gcd.host.state import State
from gcd.host.state_db import Scope

if {where!r} == "import":
    real = state_migration.write_units
    def write_units(*args, **kwargs):
        real(*args, **kwargs)
        os._exit(9)  # rows written, not committed
    state_migration.write_units = write_units
else:
    state_migration.os.replace = lambda *args, **kwargs: os._exit(9)  # committed, not renamed
State.load(Path(sys.argv[1]), Scope(*sys.argv[2:4]))
os._exit(0)
"""
    done = subprocess.run(
        [sys.executable, "-c", script, str(directory), SCOPE.engine_id, SCOPE.store],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 9, done.stderr


def test_state_json_is_imported_under_the_current_scope_and_kept_aside(
    tmp_path: Path, logs: list[MutableMapping[str, Any]]
) -> None:
    source = legacy(tmp_path)
    original = source.read_bytes()
    state = State.load(tmp_path, SCOPE)
    assert state.first_seen(ID) == T0
    assert state.last_used(ID) == T0 + timedelta(days=2)
    assert state.layers(ID) == ((LAYER, 10), ("sha256:" + "2" * 64, 0))
    assert state.first_seen(OTHER) == T0 + timedelta(days=1)
    assert state.last_used(OTHER) is None
    assert not source.exists()
    assert (tmp_path / "state.json.migrated").read_bytes() == original
    assert State.load(tmp_path, CONTAINERD).first_seen(ID) is None
    (event,) = [e for e in logs if e["event"] == "state_migrated"]
    assert event["images"] == 2
    assert event["kept_as"] == str(tmp_path / "state.json.migrated")
    assert (event["engine_id"], event["store"]) == (SCOPE.engine_id, SCOPE.store)


def test_opening_without_a_scope_leaves_state_json_for_later(tmp_path: Path) -> None:
    source = legacy(tmp_path)
    State.load(tmp_path)
    assert source.exists()
    assert rows(tmp_path) == []


def test_the_import_merges_with_rows_written_before_it(tmp_path: Path) -> None:
    """The daemon may flush a use before its first cycle binds the state."""
    early = State(tmp_path, SCOPE)
    early.mark_used(ID, T0 + timedelta(days=5))
    early.mark_used(OTHER, T0)
    early.save()
    legacy(tmp_path)
    state = State.load(tmp_path, SCOPE)
    assert state.first_seen(ID) == T0
    assert state.last_used(ID) == T0 + timedelta(days=5)
    assert state.first_seen(OTHER) == T0 + timedelta(days=1)
    assert state.last_used(OTHER) == T0


def test_the_same_file_is_never_imported_twice(tmp_path: Path) -> None:
    legacy(tmp_path)
    state = State.load(tmp_path, SCOPE)
    state.forget_missing([OTHER])  # ID was deleted from the engine since
    state.save()
    shutil.copy(tmp_path / "state.json.migrated", tmp_path / "state.json")
    assert State.load(tmp_path, SCOPE).first_seen(ID) is None
    assert not (tmp_path / "state.json").exists()


def test_a_crash_during_the_import_imports_nothing_and_the_next_start_does_it_all(
    tmp_path: Path,
) -> None:
    source = legacy(tmp_path)
    crash_in(tmp_path, "import")
    assert source.exists()
    assert rows(tmp_path) == []
    state = State.load(tmp_path, SCOPE)
    assert state.first_seen(ID) == T0
    assert state.layers(ID) is not None
    assert not source.exists()


def test_a_crash_before_the_rename_is_finished_by_the_next_start(tmp_path: Path) -> None:
    source = legacy(tmp_path)
    crash_in(tmp_path, "rename")
    assert source.exists()
    imported = rows(tmp_path)
    assert len(imported) == 2
    state = State.load(tmp_path, SCOPE)
    assert not source.exists()
    assert (tmp_path / "state.json.migrated").is_file()
    assert rows(tmp_path) == imported
    assert state.first_seen(ID) == T0


def test_a_corrupt_state_json_says_what_to_do_and_is_left_alone(tmp_path: Path) -> None:
    source = tmp_path / "state.json"
    source.write_text("{not json")
    source.chmod(0o600)
    with pytest.raises(StateError, match="move it aside") as raised:
        State.load(tmp_path, SCOPE)
    assert str(source) in str(raised.value)
    assert source.read_text() == "{not json"
    assert rows(tmp_path) == []


def test_another_format_is_refused(tmp_path: Path) -> None:
    legacy(tmp_path, {"format": 2, "images": {}})
    with pytest.raises(StateError, match="not a gcd state file"):
        State.load(tmp_path, SCOPE)


def test_a_malformed_layer_record_is_a_cache_miss(tmp_path: Path) -> None:
    legacy(
        tmp_path,
        {"format": 1, "images": {ID: {"first_seen": T0.isoformat(), "layers": [["k", "ten"]]}}},
    )
    state = State.load(tmp_path, SCOPE)
    assert state.layers(ID) is None
    assert state.first_seen(ID) == T0


# -- who may write it (issue 8, part 3) --------------------------------------------------------


def private_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def test_a_symlinked_state_json_is_refused_and_its_target_survives(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    elsewhere = legacy(tmp_path / "elsewhere")
    (state / "state.json").symlink_to(elsewhere)
    with pytest.raises(InsecureStateError, match="symbolic link") as raised:
        State.load(state, SCOPE)
    assert str(state / "state.json") in str(raised.value)
    assert "remove it" in str(raised.value)
    assert json.loads(elsewhere.read_text()) == DOCUMENT
    assert (state / "state.json").is_symlink()


def test_a_hard_linked_state_json_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    os.link(legacy(tmp_path / "elsewhere"), state / "state.json")
    with pytest.raises(StateError, match="2 hard links"):
        State.load(state, SCOPE)


def test_a_world_writable_state_json_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    legacy(state).chmod(0o666)
    with pytest.raises(StateError, match=f"chmod go-w {state / 'state.json'}"):
        State.load(state, SCOPE)


def test_a_symlink_in_place_of_the_kept_copy_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    state = private_state(tmp_path)
    legacy(state)
    precious = tmp_path / "precious"
    precious.write_text("someone else's file\n")
    (state / "state.json.migrated").symlink_to(precious)
    State.load(state, SCOPE)
    assert precious.read_text() == "someone else's file\n"
    assert not (state / "state.json.migrated").is_symlink()
