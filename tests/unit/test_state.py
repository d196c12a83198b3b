from __future__ import annotations

import os
import sqlite3
import stat
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gcd.errors import InsecureStateError, StateError
from gcd.host import state_db
from gcd.host.state import State
from gcd.host.state_db import DB_FILE, Scope

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ID = "sha256:" + "a" * 64
OTHER = "sha256:" + "b" * 64
SCOPE = Scope("G5RA:JQZA", "graphdriver/overlay2 /var/lib/docker")
CONTAINERD = Scope("G5RA:JQZA", "containerd/overlayfs /var/lib/docker")


def seeded(directory: Path, *ids: str, scope: Scope = SCOPE) -> None:
    state = State.load(directory, scope)
    for image_id in ids:
        state.mark_seen(image_id, T0)
    state.save()


def test_first_seen_survives_a_reload_and_never_moves(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.mark_seen(ID, T0)
    state.mark_seen(ID, T0 + timedelta(days=1))
    state.save()
    assert State.load(tmp_path, SCOPE).first_seen(ID) == T0


def test_a_later_sighting_by_another_process_never_moves_it(tmp_path: Path) -> None:
    early, late = State.load(tmp_path, SCOPE), State.load(tmp_path, SCOPE)
    early.mark_seen(ID, T0)
    late.mark_seen(ID, T0 + timedelta(days=1))
    early.save()
    late.save()
    assert State.load(tmp_path, SCOPE).first_seen(ID) == T0


def test_last_used_only_moves_forward(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.mark_used(ID, T0)
    state.mark_used(ID, T0 - timedelta(hours=1))
    state.save()
    assert State.load(tmp_path, SCOPE).last_used(ID) == T0


def test_an_earlier_use_written_later_never_moves_last_use_back(tmp_path: Path) -> None:
    newer, older = State.load(tmp_path, SCOPE), State.load(tmp_path, SCOPE)
    newer.mark_used(ID, T0)
    older.mark_used(ID, T0 - timedelta(hours=1))
    newer.save()
    older.save()
    assert State.load(tmp_path, SCOPE).last_used(ID) == T0


def test_two_writers_loaded_at_once_both_keep_their_updates(tmp_path: Path) -> None:
    """The bug of state.json: each rewrote the whole file from what it had loaded."""
    seeded(tmp_path, ID)
    planner, flusher = State.load(tmp_path, SCOPE), State.load(tmp_path, SCOPE)
    planner.mark_seen(OTHER, T0 + timedelta(days=1))
    planner.forget_missing([ID, OTHER])
    flusher.mark_used(ID, T0 + timedelta(days=2))
    flusher.save()
    planner.save()
    after = State.load(tmp_path, SCOPE)
    assert after.first_seen(ID) == T0
    assert after.last_used(ID) == T0 + timedelta(days=2)
    assert after.first_seen(OTHER) == T0 + timedelta(days=1)


def test_a_missing_directory_is_an_empty_state(tmp_path: Path) -> None:
    assert State.load(tmp_path / "new", SCOPE).first_seen(ID) is None


def test_images_that_are_gone_are_forgotten(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.mark_seen(ID, T0)
    state.record_layers(ID, [("sha256:" + "1" * 64, 10)])
    state.forget_missing([])
    assert state.first_seen(ID) is None
    state.save()
    seeded(tmp_path, OTHER)
    state = State.load(tmp_path, SCOPE)
    state.forget_missing([])
    state.save()
    rows = sqlite3.connect(tmp_path / DB_FILE).execute("SELECT count(*) FROM units").fetchone()
    assert State.load(tmp_path, SCOPE).first_seen(OTHER) is None
    assert rows == (0,)


def test_forgetting_spares_rows_added_since_the_load_and_other_stores(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    seeded(tmp_path, ID, scope=CONTAINERD)
    planner = State.load(tmp_path, SCOPE)
    seeded(tmp_path, OTHER)  # another process sees a new image meanwhile
    planner.forget_missing([])
    planner.save()
    assert State.load(tmp_path, SCOPE).first_seen(ID) is None
    assert State.load(tmp_path, SCOPE).first_seen(OTHER) == T0
    assert State.load(tmp_path, CONTAINERD).first_seen(ID) == T0


def test_first_sightings_do_not_survive_a_move_to_another_store(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    assert State.load(tmp_path, CONTAINERD).first_seen(ID) is None
    assert State.load(tmp_path, Scope("other-engine", SCOPE.store)).first_seen(ID) is None
    assert State.load(tmp_path, SCOPE).first_seen(ID) == T0


def test_a_state_without_a_scope_reads_nothing_and_refuses_to_write(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    state = State.load(tmp_path)
    assert state.first_seen(ID) is None
    with pytest.raises(RuntimeError, match="bind"):
        state.mark_seen(ID, T0)
    state.bind(SCOPE)
    assert state.first_seen(ID) == T0


def test_only_changes_are_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seeded(tmp_path, ID, OTHER)
    state = State.load(tmp_path, SCOPE)
    for image_id in (ID, OTHER):
        state.mark_seen(image_id, T0 + timedelta(days=1))  # known: nothing to write
    state.mark_used(ID, T0)
    written: list[tuple[str, list[tuple[str, int]]]] = []
    for name in ("write_first_seen", "write_last_used"):
        real = getattr(state_db, name)

        def spy(*args: Any, _name: str = name, _real: Any = real) -> None:
            rows = list(args[3])
            written.append((_name, rows))
            _real(*args[:3], rows)

        monkeypatch.setattr(f"gcd.host.state.{name}", spy)
    state.save()
    assert [(name, [i for i, _ in rows]) for name, rows in written] == [("write_last_used", [ID])]
    assert State.load(tmp_path, SCOPE).last_used(ID) == T0


def test_a_corrupt_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / DB_FILE).write_bytes(b"not a database at all\n" * 300)
    (tmp_path / DB_FILE).chmod(0o600)
    with pytest.raises(StateError, match="move it aside") as raised:
        State.load(tmp_path)
    message = str(raised.value)
    assert str(tmp_path / DB_FILE) in message
    assert "state.db-wal" in message
    assert "starts afresh" in message


def test_damaged_pages_are_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    for n in range(2000):
        state.mark_seen(f"sha256:{n:064d}", T0)
    state.save()
    data = bytearray((tmp_path / DB_FILE).read_bytes())
    data[4096 * 3 : 4096 * 4] = bytes(range(256)) * 16  # one page of the tables
    (tmp_path / DB_FILE).write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"is damaged .*malformed.*move it aside"):
        State.load(tmp_path, SCOPE)


def test_a_failed_quick_check_is_an_error_that_says_what_to_do(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    data = bytearray((tmp_path / DB_FILE).read_bytes())
    data[36:40] = struct.pack(">I", 3)  # the header's count of free pages, now wrong
    (tmp_path / DB_FILE).write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"quick_check: Main freelist.*move it aside"):
        State.load(tmp_path, SCOPE)


def test_a_newer_schema_is_refused_not_downgraded(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    database = sqlite3.connect(tmp_path / DB_FILE)
    database.execute("PRAGMA user_version = 7")
    database.close()
    with pytest.raises(StateError, match="schema version 7, newer than this gcd knows"):
        State.load(tmp_path, SCOPE)


def test_another_applications_database_is_refused(tmp_path: Path) -> None:
    database = sqlite3.connect(tmp_path / DB_FILE)
    database.execute("CREATE TABLE notes (text TEXT)")
    database.close()
    (tmp_path / DB_FILE).chmod(0o600)
    with pytest.raises(StateError, match=r"another application.*move it aside"):
        State.load(tmp_path)


def test_a_log_without_its_database_is_refused(tmp_path: Path) -> None:
    """Moved aside without its -wal: SQLite would replay that log into a new file."""
    (tmp_path / (DB_FILE + "-wal")).write_bytes(b"\0" * 32)
    with pytest.raises(StateError, match=r"state\.db-wal lie in .* without state\.db"):
        State.load(tmp_path)


def test_the_database_stays_one_file_between_uses(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.mark_seen(ID, T0)
    state.save()
    state.save()
    assert sorted(os.listdir(tmp_path)) == [DB_FILE]


def test_the_schema_has_a_version_and_the_file_is_in_wal_mode(tmp_path: Path) -> None:
    seeded(tmp_path, ID)
    database = sqlite3.connect(tmp_path / DB_FILE)
    assert database.execute("PRAGMA user_version").fetchone() == (state_db.SCHEMA_VERSION,)
    assert database.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert database.execute("SELECT engine_id, store, kind, object_id FROM objects").fetchall() == [
        (SCOPE.engine_id, SCOPE.store, "image", ID)
    ]


def test_an_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="--state-dir"):
        State.load(blocker / "sub").save()


def test_layers_are_cached_across_a_reload(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.record_layers(ID, [("sha256:" + "1" * 64, 10), ("sha256:" + "2" * 64, 0)])
    state.save()
    assert State.load(tmp_path, SCOPE).layers(ID) == (
        ("sha256:" + "1" * 64, 10),
        ("sha256:" + "2" * 64, 0),
    )


def test_an_incomplete_layer_record_is_a_cache_miss(tmp_path: Path) -> None:
    state = State.load(tmp_path, SCOPE)
    state.record_layers(ID, [("k1", 1), ("k2", 2), ("k3", 3)])
    state.save()
    database = sqlite3.connect(tmp_path / DB_FILE)
    database.execute("DELETE FROM units WHERE position = 1")
    database.commit()
    state = State.load(tmp_path, SCOPE)
    assert state.layers(ID) is None
    assert state.layers("sha256:" + "f" * 64) is None


def test_naive_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        State.load(tmp_path, SCOPE).mark_seen(ID, datetime(2026, 1, 1))


def test_times_keep_their_microseconds(tmp_path: Path) -> None:
    when = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
    state = State.load(tmp_path, SCOPE)
    state.mark_seen(ID, when)
    state.mark_used(ID, T0 + timedelta(microseconds=1))
    state.save()
    assert State.load(tmp_path, SCOPE).first_seen(ID) == when
    assert State.load(tmp_path, SCOPE).last_used(ID) == T0 + timedelta(microseconds=1)


# -- who may write the state (issue 8, part 3) ------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
SIDE_FILES = [DB_FILE + suffix for suffix in state_db.SIDE_SUFFIXES]


def private_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


@pytest.mark.parametrize("name", [DB_FILE, *SIDE_FILES])
def test_a_symlinked_database_file_is_refused_and_its_target_survives(
    tmp_path: Path, name: str
) -> None:
    state = private_state(tmp_path)
    seeded(state, ID)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("someone else's file\n")
    if name == DB_FILE:
        os.replace(state / DB_FILE, tmp_path / "moved.db")
    (state / name).symlink_to(elsewhere)
    for action in (lambda: State.load(state, SCOPE), lambda: State(state).save()):
        with pytest.raises(InsecureStateError, match="symbolic link") as raised:
            action()
        assert str(state / name) in str(raised.value)
        assert "remove it" in str(raised.value)
    assert elsewhere.read_text() == "someone else's file\n"
    assert (state / name).is_symlink()


def test_a_symlink_to_a_missing_file_is_not_created_through(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    (state / DB_FILE).symlink_to(tmp_path / "planted.db")
    with pytest.raises(InsecureStateError, match="symbolic link"):
        State.load(state, SCOPE)
    assert not (tmp_path / "planted.db").exists()


@pytest.mark.parametrize("name", [DB_FILE, DB_FILE + "-wal"])
def test_a_hard_linked_database_file_is_refused(tmp_path: Path, name: str) -> None:
    state = private_state(tmp_path)
    seeded(state, ID)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text("")
    if name != DB_FILE:
        os.link(elsewhere, state / name)
    else:
        os.link(state / DB_FILE, elsewhere.with_name("second-name"))
    with pytest.raises(StateError, match="2 hard links"):
        State.load(state, SCOPE)


def test_a_fifo_in_place_of_the_shared_memory_file_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    seeded(state, ID)
    os.mkfifo(state / (DB_FILE + "-shm"))
    with pytest.raises(InsecureStateError, match="is a FIFO"):
        State.load(state, SCOPE)


def test_a_database_replaced_while_gcd_opens_it_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = private_state(tmp_path)
    seeded(state, ID)
    seeded(tmp_path / "other", OTHER)
    real_connect = sqlite3.connect

    def swap_then_connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        os.replace(tmp_path / "other" / DB_FILE, state / DB_FILE)
        connection: sqlite3.Connection = real_connect(*args, **kwargs)
        return connection

    monkeypatch.setattr("gcd.host.state_db.sqlite3.connect", swap_then_connect)
    with pytest.raises(InsecureStateError, match="replaced while gcd opened it"):
        State.load(state, SCOPE)


def test_a_world_writable_state_directory_is_refused_on_read_and_write(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    state.chmod(0o777)
    for action in (lambda: State.load(state, SCOPE), lambda: State(state).save()):
        with pytest.raises(StateError) as raised:
            action()
        assert "mode 0777" in str(raised.value)
        assert f"chmod go-w {state}" in str(raised.value)
    assert os.listdir(state) == []


@pytest.mark.parametrize("name", [DB_FILE, DB_FILE + "-wal"])
def test_a_world_writable_database_file_is_refused(tmp_path: Path, name: str) -> None:
    state = private_state(tmp_path)
    seeded(state, ID)
    (state / name).touch()
    (state / name).chmod(0o666)
    with pytest.raises(StateError, match=f"chmod go-w {state / name}"):
        State.load(state, SCOPE)


@needs_root
def test_a_state_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    os.chown(state, 65534, 65534)
    with pytest.raises(StateError, match=f"chown root: {state}") as raised:
        State.load(state, SCOPE)
    assert "uid 65534" in str(raised.value)


def test_a_state_directory_below_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    """Whoever can write the parent can swap the state directory for a link to another
    directory, where gcd would then write a file named state.db."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateError, match=f"chmod go-w {shared}"):
        State(shared / "gcd").save()


def test_a_state_directory_below_a_sticky_world_writable_directory_is_accepted(
    tmp_path: Path,
) -> None:
    """Like /tmp: the sticky bit keeps others from renaming what they do not own."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    seeded(shared / "gcd", ID)
    assert State.load(shared / "gcd", SCOPE).first_seen(ID) == T0


def test_a_state_directory_reached_through_a_trusted_symlink_is_accepted(tmp_path: Path) -> None:
    """DynamicUser= with StateDirectory= makes /var/lib/gcd a link to /var/lib/private/gcd."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "gcd").mkdir(mode=0o700)
    (tmp_path / "gcd").symlink_to("private/gcd")
    seeded(tmp_path / "gcd", ID)
    assert (private / "gcd" / DB_FILE).is_file()
    assert State.load(tmp_path / "gcd", SCOPE).first_seen(ID) == T0


def test_a_private_state_directory_is_accepted_and_the_files_stay_private(
    tmp_path: Path,
) -> None:
    state = private_state(tmp_path)
    old_umask = os.umask(0)
    try:
        saved = State.load(state, SCOPE)
        saved.mark_seen(ID, T0)
        saved.save()
        database = sqlite3.connect(state / DB_FILE)  # holds the -wal and -shm open
        database.execute("SELECT count(*) FROM objects").fetchone()
        modes = {name: (state / name).stat().st_mode & 0o777 for name in os.listdir(state)}
        database.close()
    finally:
        os.umask(old_umask)
    assert modes == {DB_FILE: 0o600, DB_FILE + "-wal": 0o600, DB_FILE + "-shm": 0o600}
    assert State.load(state, SCOPE).first_seen(ID) == T0


def test_creating_the_database_fsyncs_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new entry is durable only once the directory itself is synced."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    State(private_state(tmp_path)).save()
    assert synced == ["directory"]
