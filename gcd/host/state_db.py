"""The SQLite database behind `state.py`: how `state.db` is opened, checked and written.

Opening. SQLite opens `state.db`, and next to it `state.db-wal`, `state.db-shm` (and, only
while a new file is switched to WAL, `state.db-journal`), by path and following links: its unix
VFS has no O_NOFOLLOW, and `SQLITE_OPEN_NOFOLLOW`, which Python's `sqlite3` cannot pass anyway,
is only an lstat of the main file's name. gcd cannot open these files with O_NOFOLLOW itself and
hand the descriptor over either, and it must not even open and close one: SQLite's locks are
POSIX record locks, which the kernel drops for the whole process when *any* descriptor of the
file is closed, so a check by open/fstat/close would silently release the locks of another
connection in the same process (the daemon has two threads that use the state). So, per
connection:

1. the state directory is opened and checked as statedir.py describes (not writable by others,
   nor any directory on the way), and pinned by its descriptor for the checks;
2. a missing `state.db` is created by gcd, O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600 (SQLite gives
   its `-wal` and `-shm` the main file's mode), and the directory fsynced; a `-wal` or `-shm`
   without a `state.db` is refused (SQLite would replay a stale log into a new file);
3. each of the four entries is checked with lstat relative to the directory descriptor: a
   symlink, a FIFO, a directory or a hard-linked file is refused (never overridable), and one
   that others could write is refused unless overridden;
4. SQLite connects through a `file:` URI with `mode=rw`, so it never creates the file itself;
5. after its first reads (which open the `-wal` and `-shm`), the entries are checked again and
   `state.db` must still be the inode checked in 3.

What remains: an entry swapped for a link in the moment between 3 and SQLite's own open, and
swapped back before 5, is followed once. Only someone who can write the state directory can do
that, and step 1 admits only root and gcd's own user, unless `--allow-insecure-permissions` let
a directory that others can write through (it then says so on every use).

Settings, per connection: `journal_mode=WAL` (persistent in the file; readers never block
writers nor each other, so `gcd plan` reads while the daemon writes), `synchronous=FULL` (each
commit is on disk before gcd goes on: a lost last-use time could make an image look unused;
there are only a few commits per cycle), `busy_timeout` of `BUSY_TIMEOUT_SECONDS` (30 s: every
write transaction gcd makes is a batch of upserts that takes milliseconds, and even a checkpoint
on a loaded CI disk takes well under that, so waiting 30 s outlasts any healthy writer, while a
writer that holds the lock longer, such as a stopped process, turns into a clear error instead of
a hang), and `trusted_schema=OFF`.

Checks, per connection: the file must be gcd's (`PRAGMA application_id`), of a schema version
this gcd knows (`PRAGMA user_version`; a newer one is refused, never downgraded), and pass
`PRAGMA quick_check` (O(size of the file): milliseconds for thousands of images). Any of these
failing, or SQLite finding the file is not a database or malformed, is a `StateError` naming the
file and what to do.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gcd.errors import InsecureStateError, StateError
from gcd.host.statedir import check_private_status, lstat_regular, open_state_dir

DB_FILE = "state.db"
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
SCHEMA_VERSION = 1
APPLICATION_ID = 0x67636431  # "gcd1"
BUSY_TIMEOUT_SECONDS = 30.0

SCHEMA = """
CREATE TABLE objects (
    engine_id     TEXT NOT NULL,
    store         TEXT NOT NULL,
    kind          TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    first_seen_us INTEGER,
    last_used_us  INTEGER,
    PRIMARY KEY (engine_id, store, kind, object_id)
) WITHOUT ROWID;
CREATE TABLE units (
    engine_id TEXT NOT NULL,
    store     TEXT NOT NULL,
    kind      TEXT NOT NULL,
    object_id TEXT NOT NULL,
    position  INTEGER NOT NULL CHECK (position >= 0),
    unit      TEXT NOT NULL,
    bytes     INTEGER NOT NULL CHECK (bytes >= 0),
    PRIMARY KEY (engine_id, store, kind, object_id, position)
) WITHOUT ROWID;
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
"""

_KEY = "engine_id, store, kind, object_id"


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """Which engine and image store rows belong to: image ids mean something only there (the
    containerd store names the same image by another id, and a fresh store starts ages anew)."""

    engine_id: str
    store: str


def _afresh(path: Path) -> str:
    return (
        f"move it aside together with any {path.name}-wal and {path.name}-shm next to it "
        f"(e.g. `mv {path} {path}.broken`), and gcd starts afresh: local ages and last uses "
        "then count from now, which only keeps images longer"
    )


def damaged(path: Path, detail: str) -> StateError:
    return StateError(f"{path} is damaged or not a database ({detail}); {_afresh(path)}")


def _wording(path: Path, exc: sqlite3.Error) -> StateError:
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return damaged(path, str(exc))
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return StateError(
            f"{path} stayed locked for {BUSY_TIMEOUT_SECONDS:.0f} s: another process holds a "
            f"write transaction on it (a stopped gcd? `fuser {path}` names it); try again"
        )
    return StateError(
        f"cannot use {path}: {exc}; check the permissions of the state directory or choose "
        "another with --state-dir"
    )


class Database:
    """One open connection, for the duration of a `connect` block."""

    def __init__(self, conn: sqlite3.Connection, path: Path, dir_fd: int) -> None:
        self.conn = conn
        self.path = path
        self.dir_fd = dir_fd

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return transaction(self.conn)


@contextlib.contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction: BEGIN IMMEDIATE takes the write lock up front (waiting up to the
    busy timeout), so it never fails half-way for a lock; committed at the end of the block,
    rolled back on any exception (or by SQLite, if the process dies first)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


@contextlib.contextmanager
def connect(directory: Path) -> Iterator[Database]:
    """The checked database in the checked state directory, created if missing, for the block.
    Every failure is a `StateError` (`InsecureStateError` for what others could change)."""
    path = directory / DB_FILE
    try:
        with open_state_dir(directory) as dir_fd:
            checked = _check_entries(dir_fd, path, create=True)
            uri = f"file:{quote(os.path.abspath(path))}?mode=rw"
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None
            )
            try:
                _prepare(conn, path)
                again = _check_entries(dir_fd, path, create=False)
                if (again.st_dev, again.st_ino) != (checked.st_dev, checked.st_ino):
                    raise InsecureStateError(
                        f"refusing {path}: it was replaced while gcd opened it; find out who "
                        f"can write {directory}"
                    )
                yield Database(conn, path, dir_fd)
            finally:
                conn.close()
    except sqlite3.Error as exc:
        raise _wording(path, exc) from exc
    except OSError as exc:
        raise StateError(
            f"cannot use {path}: {exc.strerror or exc}; check the permissions of the state "
            "directory or choose another with --state-dir"
        ) from exc


def _check_entries(dir_fd: int, path: Path, *, create: bool) -> os.stat_result:
    """Step 2 and 3 (or 5) of the module docstring; the lstat of `state.db`."""
    sides = {
        suffix: lstat_regular(dir_fd, path.name + suffix, path.with_name(path.name + suffix))
        for suffix in SIDE_SUFFIXES
    }
    main = lstat_regular(dir_fd, path.name, path)
    if main is None and create:
        stale = [path.name + suffix for suffix in ("-wal", "-shm") if sides[suffix] is not None]
        if stale:
            raise StateError(
                f"{' and '.join(stale)} lie in {path.parent} without {path.name}, whose log they "
                f"are; move them aside (gcd then starts afresh: local ages count from now)"
            )
        _create(dir_fd, path)
        main = lstat_regular(dir_fd, path.name, path)
    if main is None:
        raise FileNotFoundError(2, "it vanished while gcd opened it", str(path))
    check_private_status(main, path)
    for suffix, status in sides.items():
        if status is not None:
            check_private_status(status, path.with_name(path.name + suffix))
    return main


def _create(dir_fd: int, path: Path) -> None:
    try:
        fd = os.open(
            path.name,
            os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
            0o600,
            dir_fd=dir_fd,
        )
    except FileExistsError:
        return  # another process created it first: checked like any existing file
    # Closing is harmless here: nobody has a lock on a file that did not exist a moment ago.
    os.close(fd)
    os.fsync(dir_fd)


def _prepare(conn: sqlite3.Connection, path: Path) -> None:
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_SECONDS * 1000)}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StateError(
            f"cannot use {path} in WAL mode (SQLite chose {mode}); is the state directory on a "
            "network filesystem? choose a local one with --state-dir"
        )
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA trusted_schema = OFF")
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == 0:
        _create_schema(conn, path)
    elif version > SCHEMA_VERSION:
        raise StateError(
            f"{path} has schema version {version}, newer than this gcd knows "
            f"({SCHEMA_VERSION}): a newer gcd wrote it. Run that gcd again, or {_afresh(path)}"
        )
    application = int(conn.execute("PRAGMA application_id").fetchone()[0])
    if application != APPLICATION_ID:
        raise damaged(path, f"application_id {application:#x}, not gcd's {APPLICATION_ID:#x}")
    problems = [str(row[0]) for row in conn.execute("PRAGMA quick_check").fetchall()]
    if problems != ["ok"]:
        text = "; ".join(problems[:3]).replace("*** in database main ***", "")
        raise damaged(path, "quick_check: " + " ".join(text.split()))


def _create_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Version 0 is an empty file: create the schema, unless another process just did. Later
    versions will upgrade here, in one transaction, from the version found."""
    with transaction(conn):
        if int(conn.execute("PRAGMA user_version").fetchone()[0]) != 0:
            return
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if tables:
            raise damaged(path, f"{tables} objects of another application in it")
        for statement in filter(str.strip, SCHEMA.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


# -- rows ------------------------------------------------------------------------------------


def _scoped(
    scope: Scope, kind: str, rows: Iterable[tuple[object, ...]]
) -> list[tuple[object, ...]]:
    return [(scope.engine_id, scope.store, kind, *row) for row in rows]


def write_first_seen(
    conn: sqlite3.Connection, scope: Scope, kind: str, rows: Iterable[tuple[str, int]]
) -> None:
    """INSERT OR IGNORE, column by column: a first sighting is written only where the row has
    none, so whichever process commits first wins and nobody ever moves it."""
    conn.executemany(
        f"INSERT INTO objects ({_KEY}, first_seen_us) VALUES (?, ?, ?, ?, ?) "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET first_seen_us = excluded.first_seen_us "
        "WHERE objects.first_seen_us IS NULL",
        _scoped(scope, kind, rows),
    )


def write_last_used(
    conn: sqlite3.Connection, scope: Scope, kind: str, rows: Iterable[tuple[str, int]]
) -> None:
    """MAX(existing, new): a use only ever moves the time forward, whoever writes it."""
    conn.executemany(
        f"INSERT INTO objects ({_KEY}, last_used_us) VALUES (?, ?, ?, ?, ?) "
        f"ON CONFLICT ({_KEY}) DO UPDATE SET last_used_us = excluded.last_used_us "
        "WHERE objects.last_used_us IS NULL OR objects.last_used_us < excluded.last_used_us",
        _scoped(scope, kind, rows),
    )


def write_units(
    conn: sqlite3.Connection,
    scope: Scope,
    kind: str,
    object_id: str,
    units: Sequence[tuple[str, int]],
    *,
    replace: bool = True,
) -> None:
    """An object's storage units (an image's layers, bottom first, with their bytes)."""
    key = (scope.engine_id, scope.store, kind, object_id)
    where = "engine_id = ? AND store = ? AND kind = ? AND object_id = ?"
    if not replace and conn.execute(f"SELECT 1 FROM units WHERE {where}", key).fetchone():
        return
    conn.execute(f"DELETE FROM units WHERE {where}", key)
    conn.executemany(
        "INSERT INTO units VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(*key, position, unit, size) for position, (unit, size) in enumerate(units)],
    )


def delete_objects(
    conn: sqlite3.Connection, scope: Scope, kind: str, object_ids: Iterable[str]
) -> None:
    rows = _scoped(scope, kind, ((object_id,) for object_id in object_ids))
    where = "engine_id = ? AND store = ? AND kind = ? AND object_id = ?"
    conn.executemany(f"DELETE FROM objects WHERE {where}", rows)
    conn.executemany(f"DELETE FROM units WHERE {where}", rows)


@dataclass(frozen=True, slots=True)
class Rows:
    """Everything recorded under one scope, as read in one transaction."""

    objects: list[tuple[str, str, int | None, int | None]]
    """(kind, object id, first seen µs, last used µs)"""
    units: list[tuple[str, str, int, str, int]]
    """(kind, object id, position, unit, bytes), in order"""


def read_scope(conn: sqlite3.Connection, scope: Scope) -> Rows:
    key = (scope.engine_id, scope.store)
    conn.execute("BEGIN")  # one snapshot for both tables
    try:
        objects = conn.execute(
            "SELECT kind, object_id, first_seen_us, last_used_us FROM objects "
            "WHERE engine_id = ? AND store = ?",
            key,
        ).fetchall()
        units = conn.execute(
            "SELECT kind, object_id, position, unit, bytes FROM units "
            "WHERE engine_id = ? AND store = ? ORDER BY kind, object_id, position",
            key,
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    return Rows(objects, units)


def get_meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
