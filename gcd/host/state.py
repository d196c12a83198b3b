"""gcd's memory of this host: when it first saw each image, and when one was last used.

One JSON file in the state directory (default /var/lib/gcd), written atomically: a temp file
in the same directory, fsync, rename, fsync of the directory. A crash leaves the old file or the
new one, never half. The directory and the file are opened as statedir.py describes: refused
when others could write them, never through a link.

Besides times it caches each image's layers (layer key, bytes) when they had to be asked of the
engine (`store_accounting`): image ids are content addresses, so the record never goes stale,
and a one-shot run does not repeat those per-image calls. A malformed layer record is a cache
miss, not an error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from gcd.errors import StateError
from gcd.host.statedir import (
    check_private_file,
    open_existing_state_dir,
    open_regular,
    open_state_dir,
    replace_file,
)

STATE_FILE = "state.json"
FORMAT = 1


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else None


def _aware(when: datetime) -> str:
    if when.tzinfo is None:
        raise ValueError(f"state times must be aware datetimes, got {when!r}")
    return when.isoformat()


def _parse_layers(value: Any) -> tuple[tuple[str, int], ...] | None:
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


class State:
    def __init__(self, directory: Path, images: dict[str, dict[str, Any]] | None = None) -> None:
        self.directory = directory
        self._images: dict[str, dict[str, Any]] = images or {}

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    @classmethod
    def load(cls, directory: Path) -> State:
        path = directory / STATE_FILE
        try:
            with open_existing_state_dir(directory) as dir_fd:
                if dir_fd is None:
                    return cls(directory)
                fd = open_regular(dir_fd, STATE_FILE, os.O_RDONLY, path)
                with os.fdopen(fd, "rb") as handle:
                    check_private_file(fd, path)
                    data = handle.read()
        except FileNotFoundError:
            return cls(directory)
        except OSError as exc:
            raise StateError(
                f"cannot read {path}: {exc.strerror}; check the permissions of the state "
                "directory or choose another with --state-dir"
            ) from exc
        try:
            document = json.loads(data.decode())
            images = document["images"]
            if document.get("format") != FORMAT or not isinstance(images, dict):
                raise ValueError("unknown format")
            for record in images.values():
                for key in ("first_seen", "last_used"):
                    _parse_time(record.get(key))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise StateError(
                f"{path} is not a gcd state file ({exc}); move it aside and gcd starts afresh "
                "(local ages then count from now)"
            ) from exc
        return cls(directory, images)

    def first_seen(self, image_id: str) -> datetime | None:
        return _parse_time(self._images.get(image_id, {}).get("first_seen"))

    def last_used(self, image_id: str) -> datetime | None:
        return _parse_time(self._images.get(image_id, {}).get("last_used"))

    def mark_seen(self, image_id: str, when: datetime) -> None:
        """Record the first sighting; later sightings never move it."""
        self._images.setdefault(image_id, {}).setdefault("first_seen", _aware(when))

    def mark_used(self, image_id: str, when: datetime) -> None:
        previous = self.last_used(image_id)
        if previous is None or when > previous:
            self._images.setdefault(image_id, {})["last_used"] = _aware(when)

    def layers(self, image_id: str) -> tuple[tuple[str, int], ...] | None:
        """The cached (layer key, bytes) pairs of an image, bottom layer first."""
        return _parse_layers(self._images.get(image_id, {}).get("layers"))

    def record_layers(self, image_id: str, layers: Sequence[tuple[str, int]]) -> None:
        self._images.setdefault(image_id, {})["layers"] = [[key, size] for key, size in layers]

    def forget_missing(self, present: Iterable[str]) -> None:
        keep = set(present)
        self._images = {k: v for k, v in self._images.items() if k in keep}

    def save(self) -> None:
        document = {"format": FORMAT, "images": self._images}
        data = json.dumps(document, sort_keys=True).encode()
        try:
            with open_state_dir(self.directory) as dir_fd:
                replace_file(dir_fd, STATE_FILE, data, prefix=".state-")
        except OSError as exc:
            raise StateError(
                f"cannot write {self.path}: {exc.strerror}; gcd needs a writable state "
                "directory (--state-dir) to remember local ages"
            ) from exc
