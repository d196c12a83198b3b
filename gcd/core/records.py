"""Immutable records of Docker state, parsed once at the edge. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from gcd.core.kind import Key, Kind, Record, short_id
from gcd.core.references import Reference


class ContainerState(StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Container:
    id: str
    name: str
    image_id: str
    state: ContainerState


@dataclass(frozen=True, slots=True)
class Image:
    """A local image. `seen_at` is the start of its local age (see the README)."""

    id: str
    tags: tuple[Reference, ...]
    digests: tuple[Reference, ...]
    created: datetime | None
    seen_at: datetime
    size_bytes: int
    layers: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    last_used: datetime | None = None

    @property
    def key(self) -> Key:
        return Key(Kind.IMAGE, self.id)

    @property
    def units(self) -> tuple[str, ...]:
        return self.layers

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(ref.familiar for ref in self.references)

    @property
    def is_dangling(self) -> bool:
        return not self.tags

    @property
    def references(self) -> tuple[Reference, ...]:
        return self.tags + self.digests

    @property
    def short_id(self) -> str:
        return short_id(self.id)

    @property
    def repositories(self) -> frozenset[str]:
        return frozenset(ref.repository for ref in self.references)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the policy needs, taken at `taken_at`.

    `unit_sizes` maps each storage unit a record uses (`Image.layers`) to its bytes on disk,
    so that shared units are counted once; keys are opaque to the core.
    """

    taken_at: datetime
    images: tuple[Image, ...]
    containers: tuple[Container, ...]
    unit_sizes: Mapping[str, int] = field(default_factory=dict)

    @property
    def records(self) -> tuple[Record, ...]:
        """Every collected object, of every kind."""
        return self.images

    def images_in_use(self) -> frozenset[str]:
        return frozenset(c.image_id for c in self.containers)
