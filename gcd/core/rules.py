"""The stable rule ids: why an object is kept or deleted. They are user interface."""

from __future__ import annotations

from enum import StrEnum


class RuleId(StrEnum):
    """Why an object is kept or deleted. These ids are user interface: logs, JSON, metrics.
    Most apply to one kind; `keep.in_use`, `keep.min_age`, `keep.label`, `keep.unmanaged`,
    `keep.run_limit`, `delete.unkept` and `delete.pressure` to every kind."""

    # Guards: never switchable, never yield to pressure.
    IN_USE = "keep.in_use"
    """An image or volume a container uses, a network with a container, a build-cache record
    a build holds."""
    ACTIVE = "keep.active"
    """A container that is running, paused, restarting or being removed."""
    DETAILS_UNKNOWN = "keep.details_unknown"
    """A stopped container whose inspect failed: its exit time and restart policy are
    unknown."""
    BUILTIN = "keep.builtin"
    """The engine's own networks (`bridge`, `host`, `none`) and swarm networks."""
    EXTERNAL = "keep.external"
    """A volume of another driver, or with driver options: its data is not the engine's."""
    SHARED = "keep.shared"
    """A build-cache record whose data is an image's layer: removing it frees nothing."""
    MIN_AGE = "keep.min_age"
    CREATED_IN_FUTURE = "keep.created_in_future"
    HOLD = "keep.hold"
    """An image a `gcd hold` protects until its expiry, and the hold's own container."""
    # Keep rules the operator writes.
    LABEL = "keep.label"
    REFERENCE = "keep.reference"
    NAME = "keep.name"
    IMAGE = "keep.image"
    SERVICE = "keep.service"
    """A stopped container with a restart policy or a Compose project: a service, kept unless
    `containers.remove_services_named` names it."""
    NAMED = "keep.named"
    """A named volume that no `volumes.named` pattern names."""
    COMPOSE = "keep.compose"
    """An image a service of a Compose file of `images.keep[i].compose` names, or any named
    image while such a file cannot be read (fail closed). A hard keep."""
    NEWEST = "keep.newest"
    YOUNGER_THAN = "keep.younger_than"
    USED_WITHIN = "keep.used_within"
    DANGLING_WITHIN = "keep.dangling_within"
    EXITED_WITHIN = "keep.exited_within"
    """A stopped container younger than `containers.remove_exited_after`."""
    UNUSED_WITHIN = "keep.unused_within"
    """A volume, network or build-cache record used more recently than its section allows."""
    WITHIN_SIZE = "keep.within_size"
    """A build-cache record the cache keeps under `build_cache.max_size`."""
    UNMANAGED = "keep.unmanaged"
    RUN_LIMIT = "keep.run_limit"
    BUSY = "keep.busy"
    """A deletion deferred while a build runs (`gcd.core.busy`): images and build cache, and
    the classic builder's own step containers; not below the critical watermark."""
    UNKEPT = "delete.unkept"
    DANGLING = "delete.dangling"
    EXITED = "delete.exited"
    UNUSED = "delete.unused"
    OVER_SIZE = "delete.over_size"
    """Build cache beyond `build_cache.max_size`, least recently used first."""
    PRESSURE = "delete.pressure"
    HOLD_EXPIRED = "delete.hold_expired"
    """A hold container (`gcd hold`) past its expiry: gcd's own, whatever the policy says."""

    @property
    def yields_to_pressure(self) -> bool:
        """Soft keeps give way under disk pressure; hard keeps (guards, pins) never do."""
        return self in _SOFT

    @property
    def deletes(self) -> bool:
        # A set lookup: `.value` goes through the enum's descriptor, ~1 µs, and a plan asks
        # this ~12 times per object.
        return self in _DELETING


_DELETING = frozenset(rule for rule in RuleId if rule.value.startswith("delete."))

_SOFT = frozenset(
    {
        RuleId.NEWEST,
        RuleId.YOUNGER_THAN,
        RuleId.USED_WITHIN,
        RuleId.DANGLING_WITHIN,
        RuleId.EXITED_WITHIN,
        RuleId.UNUSED_WITHIN,
        RuleId.WITHIN_SIZE,
    }
)
