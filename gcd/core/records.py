"""Immutable records of Docker state, parsed once at the edge. No I/O here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from gcd.core.ages import AgeStart
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


ACTIVE_STATES = frozenset(
    {
        ContainerState.RUNNING,
        ContainerState.PAUSED,
        ContainerState.RESTARTING,
        ContainerState.REMOVING,
    }
)
"""States in which a container is never removed: it runs, may run again at once, or the engine
is already removing it."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Container:
    """A container in any state. The list call gives the first fields; `started_at`,
    `finished_at` and `restart_policy` come from an inspect, which the snapshot makes only for
    containers that are not active (`details_known` says whether it did)."""

    id: str
    name: str
    image_id: str
    state: ContainerState
    image: str = ""
    """The reference it was created from, as typed (`docker run alpine:3`), or an id."""
    labels: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    started_at: datetime | None = None
    """None: never started."""
    finished_at: datetime | None = None
    """None: never finished (never started, or running)."""
    restart_policy: str = "no"
    details_known: bool = False
    """The inspect that gives the start, finish and restart policy was made and answered."""
    volumes: tuple[str, ...] = ()
    """Names of the volumes it mounts (anonymous ones by their generated name)."""
    networks: tuple[str, ...] = ()
    """The networks it is attached to, by id and by name (a never-started container has no
    network id yet, only the name)."""
    size_rw_bytes: int = 0
    """Its writable layer (`SizeRw` from `GET /system/df`): what removing it frees."""
    build_step: bool = False
    """Made by the classic builder for one Dockerfile step (`gcd.engine.builds`): a build
    is running while it exists, and removing it would break that build."""

    key: Key = field(init=False, compare=False, repr=False)
    """`Key(Kind.CONTAINER, id)`, made once (read many times per plan)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key(Kind.CONTAINER, self.id))

    @property
    def units(self) -> tuple[str, ...]:
        return (f"container:{self.id}",)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def size_bytes(self) -> int:
        return self.size_rw_bytes

    @property
    def seen_at(self) -> datetime:
        return self.created or EPOCH

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def stopped_at(self) -> datetime | None:
        """Where a stopped container's age starts: its exit, or its creation when it never
        started; None when unknown."""
        if self.finished_at is not None:
            return self.finished_at
        if self.started_at is None:
            return self.created
        return None


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
    """None: gcd never saw a container use it."""
    parent: str = ""
    """The listing's `ParentId`: a classic-builder step's image this one was built on (its
    untagged parents go with their last child), "" for BuildKit, pulled and loaded images."""
    age_from: AgeStart = field(default=AgeStart.RECORDED, compare=False)
    """What `seen_at` was started from (`gcd.core.ages`): how it was read, not what the image
    is, so two readings of one image are equal."""
    key: Key = field(init=False, compare=False, repr=False)
    """`Key(Kind.IMAGE, id)`, made once: a plan reads it ~15 times per image."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", Key(Kind.IMAGE, self.id))

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


ANONYMOUS_VOLUME_LABEL = "com.docker.volume.anonymous"


def is_anonymous_volume(name: str, labels: Mapping[str, str]) -> bool:
    """Created without a name: the engine's label (engines ≥ 23), or, as older engines and
    Podman name such volumes, 64 lowercase hex digits."""
    return ANONYMOUS_VOLUME_LABEL in labels or (
        len(name) == 64 and all(c in "0123456789abcdef" for c in name)
    )


@dataclass(frozen=True, slots=True)
class Volume:
    """A volume. `anonymous`: created without a name (label `com.docker.volume.anonymous`,
    or a generated 64-hex name on engines before 23). `seen_at` is gcd's first sighting;
    `last_used` the last time gcd saw a container mount it."""

    name: str
    driver: str
    seen_at: datetime
    anonymous: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, str] = field(default_factory=dict)
    """Driver options (`type=nfs`, `o=bind`): removing such a volume frees nothing local."""
    created: datetime | None = None
    last_used: datetime | None = None
    size_bytes: int = 0
    """`UsageData.Size` from `GET /system/df`; 0 when the engine does not know (-1)."""

    @property
    def key(self) -> Key:
        return Key(Kind.VOLUME, self.name)

    @property
    def units(self) -> tuple[str, ...]:
        return (f"volume:{self.name}",)

    @property
    def names(self) -> tuple[str, ...]:
        return () if self.anonymous else (self.name,)


@dataclass(frozen=True, slots=True)
class BuildCacheRecord:
    """One BuildKit cache record (`GET /system/df` `BuildCache`)."""

    id: str
    type: str
    description: str
    size_bytes: int
    created: datetime
    last_used: datetime | None = None
    in_use: bool = False
    shared: bool = False
    """Its data is also an image's layer: removing it frees nothing."""
    parents: tuple[str, ...] = ()
    usage_count: int = 0

    @property
    def key(self) -> Key:
        return Key(Kind.BUILD_CACHE, self.id)

    @property
    def units(self) -> tuple[str, ...]:
        return (f"build_cache:{self.id}",)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.description,) if self.description else ()

    @property
    def seen_at(self) -> datetime:
        return self.created

    @property
    def idle_since(self) -> datetime:
        return max(self.last_used or self.created, self.created)


BUILTIN_NETWORKS = frozenset({"bridge", "host", "none"})


@dataclass(frozen=True, slots=True)
class Network:
    """A network. `seen_at` is gcd's first sighting; `last_used` the last time gcd saw a
    container attached to it."""

    id: str
    name: str
    driver: str
    scope: str
    seen_at: datetime
    labels: Mapping[str, str] = field(default_factory=dict)
    created: datetime | None = None
    last_used: datetime | None = None
    endpoints: int = 0
    """Containers the engine lists as attached (`GET /networks` `Containers`, when sent)."""
    ingress: bool = False

    @property
    def key(self) -> Key:
        return Key(Kind.NETWORK, self.id)

    @property
    def units(self) -> tuple[str, ...]:
        return ()

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def size_bytes(self) -> int:
        return 0

    @property
    def is_builtin(self) -> bool:
        """The engine's own networks and swarm's: never gcd's to remove."""
        return self.name in BUILTIN_NETWORKS or self.scope == "swarm" or self.ingress


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything the policy needs, taken at `taken_at`.

    `unit_sizes` maps each storage unit a record uses (`Image.layers`, `container:<id>`,
    `volume:<name>`, `build_cache:<id>`) to its bytes on disk, so that shared units are
    counted once; keys are opaque to the core.
    """

    taken_at: datetime
    images: tuple[Image, ...]
    containers: tuple[Container, ...]
    unit_sizes: Mapping[str, int] = field(default_factory=dict)
    volumes: tuple[Volume, ...] = ()
    build_cache: tuple[BuildCacheRecord, ...] = ()
    networks: tuple[Network, ...] = ()

    @property
    def records(self) -> tuple[Record, ...]:
        """Every collected object, of every kind."""
        return (*self.images, *self.containers, *self.volumes, *self.build_cache, *self.networks)

    def images_in_use(self) -> frozenset[str]:
        return frozenset(c.image_id for c in self.containers)
