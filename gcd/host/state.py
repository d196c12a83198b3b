"""gcd's memory of this host: when it first saw each object, when one was last used, and the
storage units (image layers) it had to ask the engine for.

One SQLite database, `state.db` in the state directory (default /var/lib/gcd), schema version 1
(`PRAGMA user_version`; state_db.py has the DDL, how the file is opened and checked, and the
WAL, `synchronous` and `busy_timeout` settings):

    objects(engine_id, store, kind, object_id, first_seen_us, last_used_us)
        primary key (engine_id, store, kind, object_id)
    units(engine_id, store, kind, object_id, position, unit, bytes)
        primary key (engine_id, store, kind, object_id, position)
    meta(key, value)                  what was migrated (state_migration.py)

Times are whole microseconds since the Unix epoch, UTC. `kind` is "image" or "volume" (a
volume's first sighting and the last snapshot a container mounted it, keyed by its name);
other kinds get their own rows the same way, never a new table.

**Scope.** Rows are keyed by the engine's `GET /info` `ID` and its image store (`Scope`, made by
`gcd.engine.identity`): image ids mean something only in the store that made them, and the
containerd store names the same image by another id. So a host that moves to the containerd
store, or to a new data root, starts local ages afresh instead of carrying first sightings
over; rows of the other store stay, and count again if the host moves back.

**Concurrency.** `gcd plan`, `gcd run --once` and the daemon (its cycles and its flush of
last uses from events) may all write at once, without the host lock: every write is a short
`BEGIN IMMEDIATE` transaction of upserts that cannot lose another process's update. A first
sighting is written only where none is recorded (whoever commits first wins, nobody moves it);
a last use becomes MAX(recorded, new). A `State` reads its scope's rows once (`bind`), answers
from that copy, and queues its own changes; `save` writes only those, so a cycle writes the
images it saw for the first time, the uses it observed and the rows it forgets, never the
whole file. `forget_missing` deletes only rows this `State` read or wrote itself and found gone
from the engine, in its own scope: a row another process added meanwhile stays.

**Migration.** A `state.json` from before is imported under the first scope gcd binds, then
renamed to `state.json.migrated`; state_migration.py says why that is idempotent and safe
against a crash at any point.

**Damage.** A file that is not gcd's database, fails `PRAGMA quick_check`, or has a newer
schema is a `StateError` naming the file and what to do: move it aside (with its `-wal` and
`-shm`), and gcd starts afresh, which only makes it keep images longer.

The cached units are an image's layers (layer key, bytes) when they had to be asked of the
engine (`store_accounting`): image ids are content addresses, so the record never goes stale,
and a one-shot run does not repeat those per-image calls. An incomplete record is a cache miss.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from gcd.host.state_db import (
    DB_FILE,
    Rows,
    Scope,
    connect,
    delete_objects,
    read_scope,
    write_first_seen,
    write_last_used,
    write_units,
)
from gcd.host.state_migration import IMAGE, from_us, migrate_legacy, to_us

__all__ = ["DB_FILE", "IMAGE", "Scope", "State"]

Units = tuple[tuple[str, int], ...]
_Key = tuple[str, str]  # (kind, object id)


@dataclass(slots=True)
class _Record:
    first_seen: datetime | None = None
    last_used: datetime | None = None
    units: Units | None = None


class _Op(Enum):
    SEEN = "seen"
    USED = "used"
    UNITS = "units"
    FORGET = "forget"


@dataclass(frozen=True, slots=True)
class _Change:
    op: _Op
    kind: str
    object_id: str
    micros: int = 0
    units: Units = ()


def _write(conn: sqlite3.Connection, scope: Scope, changes: list[_Change]) -> None:
    """Apply the changes in order, consecutive ones of a kind in one statement."""
    for (op, kind), run in itertools.groupby(changes, key=lambda c: (c.op, c.kind)):
        group = list(run)
        if op is _Op.SEEN:
            write_first_seen(conn, scope, kind, [(c.object_id, c.micros) for c in group])
        elif op is _Op.USED:
            write_last_used(conn, scope, kind, [(c.object_id, c.micros) for c in group])
        elif op is _Op.UNITS:
            for change in group:
                write_units(conn, scope, kind, change.object_id, change.units)
        else:
            delete_objects(conn, scope, kind, [c.object_id for c in group])


def _records_of(rows: Rows) -> dict[_Key, _Record]:
    """The rows as records; an object's units only when positions 0… are all there (the
    units come ordered by object and position)."""
    records: dict[_Key, _Record] = {
        (kind, object_id): _Record(from_us(first_seen_us), from_us(last_used_us))
        for kind, object_id, first_seen_us, last_used_us in rows.objects
    }
    for key, group in itertools.groupby(rows.units, key=lambda row: (row[0], row[1])):
        entries = list(group)
        if all(entry[2] == position for position, entry in enumerate(entries)):
            record = records.get(key)
            if record is None:
                record = records[key] = _Record()
            record.units = tuple((entry[3], entry[4]) for entry in entries)
    return records


class State:
    """The state of one engine and store. `State.load(directory, scope)` reads it; a `State`
    loaded without a scope checks the database and learns its scope from `bind` (the snapshot
    binds it to the engine it lists)."""

    def __init__(self, directory: Path, scope: Scope | None = None) -> None:
        self.directory = directory
        self.scope = scope
        self._records: dict[_Key, _Record] = {}
        self._pending: list[_Change] = []
        self._loaded = False

    @property
    def path(self) -> Path:
        return self.directory / DB_FILE

    @classmethod
    def load(cls, directory: Path, scope: Scope | None = None) -> State:
        state = cls(directory)
        if scope is None:
            with connect(directory):
                pass  # created if missing, and checked: a damaged file fails here
        else:
            state.bind(scope)
        return state

    def bind(self, scope: Scope) -> None:
        """Read the rows of `scope`, importing an old `state.json` first if there is one."""
        if self._loaded and scope == self.scope:
            return
        if self._pending:
            raise RuntimeError(f"unsaved changes for {self.scope}; save before binding {scope}")
        with connect(self.directory) as db:
            migrate_legacy(db, scope)
            rows = read_scope(db.conn, scope)
        self.scope, self._records, self._loaded = scope, _records_of(rows), True

    def _bound(self) -> Scope:
        if self.scope is None:
            raise RuntimeError("the state does not know its engine yet: bind it to a scope")
        return self.scope

    def _record(self, object_id: str, kind: str) -> _Record:
        return self._records.get((kind, object_id)) or _Record()

    # -- reading ----------------------------------------------------------------------------

    def first_seen(self, object_id: str, *, kind: str = IMAGE) -> datetime | None:
        return self._record(object_id, kind).first_seen

    def last_used(self, object_id: str, *, kind: str = IMAGE) -> datetime | None:
        return self._record(object_id, kind).last_used

    def units(self, object_id: str, *, kind: str = IMAGE) -> Units | None:
        """The cached (unit key, bytes) pairs of an object, in order."""
        return self._record(object_id, kind).units

    def layers(self, image_id: str) -> Units | None:
        """The cached (layer key, bytes) pairs of an image, bottom layer first."""
        return self.units(image_id)

    # -- changing (written by `save`) ---------------------------------------------------------

    def mark_seen(self, object_id: str, when: datetime, *, kind: str = IMAGE) -> None:
        """Record the first sighting; later sightings never move it."""
        micros, _ = to_us(when), self._bound()
        record = self._records.setdefault((kind, object_id), _Record())
        if record.first_seen is None:
            record.first_seen = when
            self._pending.append(_Change(_Op.SEEN, kind, object_id, micros))

    def mark_used(self, object_id: str, when: datetime, *, kind: str = IMAGE) -> None:
        micros, _ = to_us(when), self._bound()
        record = self._records.setdefault((kind, object_id), _Record())
        if record.last_used is None or when > record.last_used:
            record.last_used = when
            self._pending.append(_Change(_Op.USED, kind, object_id, micros))

    def record_units(
        self, object_id: str, units: Sequence[tuple[str, int]], *, kind: str = IMAGE
    ) -> None:
        self._bound()
        pairs = tuple((str(key), int(size)) for key, size in units)
        self._records.setdefault((kind, object_id), _Record()).units = pairs
        self._pending.append(_Change(_Op.UNITS, kind, object_id, units=pairs))

    def record_layers(self, image_id: str, layers: Sequence[tuple[str, int]]) -> None:
        self.record_units(image_id, layers)

    def forget_missing(self, present: Iterable[str], *, kind: str = IMAGE) -> None:
        """Forget the objects of `kind` this state knows that are not `present` any more."""
        self._bound()
        keep = set(present)
        gone = sorted(i for k, i in self._records if k == kind and i not in keep)
        for object_id in gone:
            del self._records[kind, object_id]
            self._pending.append(_Change(_Op.FORGET, kind, object_id))

    def save(self) -> None:
        """Write the queued changes in one short transaction (and create and check the
        database if it is missing, even with nothing to write, unless `bind` opened and
        checked it: a warm plan with nothing new opens the database once)."""
        if not self._pending and self._loaded:
            return
        pending, self._pending = self._pending, []
        try:
            with connect(self.directory) as db:
                if pending:
                    with db.transaction() as conn:
                        _write(conn, self._bound(), pending)
        except BaseException:
            self._pending = pending + self._pending
            raise
