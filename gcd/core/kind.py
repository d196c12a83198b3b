"""What every collected object has in common: its kind, its key, and what a decision needs to
know of it. Kinds are listed once, here; each has its own module in `gcd.core.kinds`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol


class Kind(StrEnum):
    """What kind of Docker object. The order of a cycle's deletions is
    `gcd.core.evaluate.KINDS`, not this one."""

    IMAGE = "image"
    CONTAINER = "container"
    VOLUME = "volume"
    BUILD_CACHE = "build_cache"
    NETWORK = "network"


def short_id(object_id: str) -> str:
    """The 12-character form `docker` shows; for display only, never to address an object."""
    return object_id.removeprefix("sha256:")[:12]


@dataclass(frozen=True, slots=True, order=True)
class Key:
    """An object's identity across kinds: an image id and a volume name never collide."""

    kind: Kind
    id: str

    @property
    def short(self) -> str:
        return short_id(self.id)

    def __str__(self) -> str:
        return f"{self.kind.value} {self.short}"


class Record(Protocol):
    """What the generic core reads of an object of any kind."""

    @property
    def key(self) -> Key: ...

    @property
    def units(self) -> tuple[str, ...]:
        """The storage units it uses (image layers, a container's RW layer, a volume's
        directory, a build-cache record), shared units counted once."""
        ...

    @property
    def names(self) -> tuple[str, ...]:
        """How people name it (an image: its tags and digests as `docker images` shows
        them); empty when it has none."""
        ...

    @property
    def size_bytes(self) -> int: ...

    @property
    def seen_at(self) -> datetime: ...
