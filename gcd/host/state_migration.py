"""The state of gcd before SQLite, `state.json` (format 1), imported once into `state.db`.

`{"format": 1, "images": {"<image id>": {"first_seen": "<ISO time>", "last_used": "<ISO
time>", "layers": [["<layer key>", <bytes>], ...]}}}`, every field optional. The file knew no
engine or store, so its rows are imported under the scope of the engine gcd talks to when it
first opens the database for one (the snapshot's `GET /info`, or the daemon's event stream).

In order, on every such open while a `state.json` is there:

1. the file is opened like every state file (statedir.py: never through a link, refused when
   others could write it) and parsed; a file that is not format 1 is an error, as before;
2. in one write transaction: unless the database already records this file's SHA-256 as
   imported, its rows are written the way every process writes (a first sighting only where
   none is recorded, a last use only if later, layers only where none are cached) and the
   SHA-256 is recorded; then COMMIT;
3. `state.json` is renamed to `state.json.migrated` (replacing an older one) and the directory
   fsynced.

If gcd dies in 2, SQLite rolls the transaction back: nothing was imported and the file is still
there, so the next open starts over. If it dies between 2 and 3, the next open finds the file
again, sees its SHA-256 recorded and only renames it. Two processes migrating at once are
serialised by the transaction; the second finds the SHA-256 recorded, and the later rename finds
nothing left to rename. Either way the import is never applied twice, and applying it twice
would change nothing anyway.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog

from gcd.errors import StateError
from gcd.host.state_db import (
    Database,
    Scope,
    get_meta,
    set_meta,
    write_first_seen,
    write_last_used,
    write_units,
)
from gcd.host.statedir import check_private_file, open_regular

log = structlog.get_logger("gcd.state")

LEGACY_FILE = "state.json"
MIGRATED_FILE = "state.json.migrated"
LEGACY_FORMAT = 1
MARKER = "migrated_state_json_sha256"
IMAGE = "image"

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_us(when: datetime) -> int:
    """An aware time as whole microseconds since the Unix epoch (exact, and ordered in SQL)."""
    if when.tzinfo is None:
        raise ValueError(f"state times must be aware datetimes, got {when!r}")
    return (when - EPOCH) // MICROSECOND


def from_us(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + value * MICROSECOND


@dataclass(frozen=True, slots=True)
class LegacyRecord:
    first_seen_us: int | None
    last_used_us: int | None
    layers: tuple[tuple[str, int], ...] | None


def _parse_time(value: Any) -> int | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)  # ValueError: not a gcd state file
    return to_us(parsed) if parsed.tzinfo else None


def _parse_layers(value: Any) -> tuple[tuple[str, int], ...] | None:
    """A malformed layer record is a cache miss, as it always was."""
    if not isinstance(value, list):
        return None
    layers: list[tuple[str, int]] = []
    for item in value:
        if not (isinstance(item, list) and len(item) == 2):
            return None
        key, size = item
        if not isinstance(key, str) or type(size) is not int or size < 0:
            return None
        layers.append((key, size))
    return tuple(layers)


def parse_legacy(data: bytes, path: Path) -> dict[str, LegacyRecord]:
    try:
        document = json.loads(data.decode())
        images = document["images"]
        if document.get("format") != LEGACY_FORMAT or not isinstance(images, dict):
            raise ValueError("unknown format")
        return {
            str(image_id): LegacyRecord(
                _parse_time(record.get("first_seen")),
                _parse_time(record.get("last_used")),
                _parse_layers(record.get("layers")),
            )
            for image_id, record in images.items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(
            f"{path} is not a gcd state file ({exc}); move it aside and gcd starts afresh "
            "(local ages then count from now)"
        ) from exc


def _read(dir_fd: int, path: Path) -> bytes | None:
    try:
        fd = open_regular(dir_fd, LEGACY_FILE, os.O_RDONLY, path)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as handle:
        check_private_file(fd, path)
        return handle.read()


def migrate_legacy(db: Database, scope: Scope) -> None:
    """Import `state.json` from the database's directory under `scope`, if there is one."""
    path = db.path.with_name(LEGACY_FILE)
    try:
        data = _read(db.dir_fd, path)
    except OSError as exc:
        raise StateError(
            f"cannot read {path}: {exc.strerror}; check the permissions of the state "
            "directory or choose another with --state-dir"
        ) from exc
    if data is None:
        return
    records = parse_legacy(data, path)
    digest = hashlib.sha256(data).hexdigest()
    with db.transaction() as conn:
        imported = get_meta(conn, MARKER) != digest
        if imported:
            seen = [(i, r.first_seen_us) for i, r in records.items() if r.first_seen_us is not None]
            used = [(i, r.last_used_us) for i, r in records.items() if r.last_used_us is not None]
            write_first_seen(conn, scope, IMAGE, seen)
            write_last_used(conn, scope, IMAGE, used)
            for image_id, record in records.items():
                if record.layers is not None:
                    write_units(conn, scope, IMAGE, image_id, record.layers, replace=False)
            set_meta(conn, MARKER, digest)
    try:
        os.replace(LEGACY_FILE, MIGRATED_FILE, src_dir_fd=db.dir_fd, dst_dir_fd=db.dir_fd)
    except FileNotFoundError:
        pass  # another process migrating at the same time renamed it first
    except OSError as exc:
        raise StateError(
            f"imported {path} into {db.path} but cannot rename it to {MIGRATED_FILE}: "
            f"{exc.strerror}; rename or remove it yourself"
        ) from exc
    else:
        os.fsync(db.dir_fd)
    if imported:
        log.info(
            "state_migrated",
            source=str(path),
            kept_as=str(path.with_name(MIGRATED_FILE)),
            database=str(db.path),
            images=len(records),
            engine_id=scope.engine_id,
            store=scope.store,
        )
