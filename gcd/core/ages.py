"""Where an image's local age starts, and how the guards and rules say when an object becomes
eligible. Pure: the engine side (`gcd.engine.arrivals`) reads the records, this names them.

docs/ages.md has what each engine records for pull, load, build and tag.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from gcd.core.units import format_duration, spell_duration


class AgeStart(StrEnum):
    """What an image's local age (`Image.seen_at`) was started from, on its first sighting."""

    ARRIVAL = "arrival"
    """The engine's own record of when the image was written on this host: the image store's
    files under the data root (graphdriver, as root), or the image record's `UpdatedAt`
    (containerd image store, `Metadata.LastTagTime`)."""
    TAGGED = "tagged"
    """The graphdriver's `LastTagTime` through the API (unprivileged): builds and `docker
    tag` set it, loads and pulls do not."""
    FIRST_SEEN = "first_seen"
    """No record: the moment gcd first saw it (`safety.unknown_age: first_seen`)."""
    CREATED = "created"
    """No record: the image config's `Created` (`safety.unknown_age: created`)."""
    RECORDED = "recorded"
    """Read from gcd's state: started on an earlier run, by one of the above."""

    @property
    def unrecorded(self) -> bool:
        """The engine had no record of the image's arrival."""
        return self in (AgeStart.FIRST_SEEN, AgeStart.CREATED)


class UnknownAge(StrEnum):
    """`safety.unknown_age`: where local age starts for an image no engine record covers."""

    FIRST_SEEN = "first_seen"
    """When gcd first sees it: nothing is deleted for `safety.min_age` after gcd starts."""
    CREATED = "created"
    """The image config's `Created`, as `docker image prune --filter until=` reads it: a
    reproducible build's 1970 makes it old at once. A `Created` in the future counts as
    `first_seen` (and the image is kept by `keep.created_in_future`)."""


def unknown_start(created: datetime | None, now: datetime, choice: UnknownAge) -> datetime:
    """The start of local age for an image without an arrival record."""
    if choice is UnknownAge.CREATED and created is not None and created <= now:
        return created
    return now


def not_yet(what: str, age: timedelta, limit: timedelta, key: str) -> str:
    """A guard's or rule's detail that names its threshold and when it stops holding:
    `local age 5m < safety.min_age 1h: eligible in 55m`."""
    left = max(limit - age, timedelta(seconds=1))
    return f"{what} < {key} {spell_duration(limit)}: eligible in {format_duration(left)}"


def last_use(last_used: datetime | None, now: datetime, since: str = "local age") -> str:
    """`last used 5m ago`, or, for an object nothing was seen using, `never used` with the
    time its window counts from (`never used, local age 2d`; `since` names that start)."""
    if last_used is None:
        return f"never used, {since}"
    return f"last used {format_duration(max(now - last_used, timedelta(0)))} ago"


@dataclass(frozen=True, slots=True)
class Unrecorded:
    """The images of a snapshot whose local age started without an arrival record, seen for
    the first time in it: what the plan's summary says on a host's first run."""

    count: int
    start: UnknownAge
    eligible_from: datetime | None
    """When the last of them passes `safety.min_age` (first_seen), or None (created: each
    by its own `Created`)."""

    def describe(self) -> str:
        have = "1 image has" if self.count == 1 else f"{self.count} images have"
        if self.start is UnknownAge.CREATED:
            return (
                f"{have} no arrival record: local age starts at Created where it is in the "
                "past, else now (safety.unknown_age: created)"
            )
        when = self.eligible_from.isoformat(timespec="seconds") if self.eligible_from else "-"
        return (
            f"{have} no arrival record: local age starts now (first seen), eligible from "
            f"{when} (safety.min_age); safety.unknown_age: created starts it at Created instead"
        )


def unrecorded(
    starts: Iterable[tuple[AgeStart, datetime]], choice: UnknownAge, min_age: timedelta
) -> Unrecorded | None:
    """From each image's (age start, seen_at): the summary of those without a record, or None
    when every image had one (or was known before)."""
    seen = [at for start, at in starts if start.unrecorded]
    if not seen:
        return None
    if choice is UnknownAge.CREATED:
        return Unrecorded(len(seen), choice, None)
    return Unrecorded(len(seen), choice, max(seen) + min_age)
