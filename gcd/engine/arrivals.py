"""When an image arrived on this host, from the engine's own records: where local age starts
for an image gcd sees for the first time, so that the first plan on a host with images
already there can act (docs/ages.md has what each engine records, as observed).

- Graphdriver (overlay2…), data root readable (root): the image store writes
  `image/<driver>/imagedb/content/sha256/<id>` when the image arrives (load, pull, build; a
  second load of the same image rewrites it) and `imagedb/metadata/sha256/<id>/lastUpdated`
  on every tag (`docker tag`, `build -t`; a pull of an image already there). The later of the
  two is the arrival.
- Containerd image store: `Metadata.LastTagTime` of an inspect is the image records' latest
  `UpdatedAt`, which load, pull, build and tag all set (`layers_from_engine` reads it).
- Graphdriver through the API only (unprivileged): `LastTagTime` covers builds and tags, not
  loads and pulls (their `0001-01-01` is no record).
- Podman: its API has no such time (`LastTagTime` is always `0001-01-01`).

With no record, `safety.unknown_age` decides (`gcd.core.ages.unknown_start`). The start is
recorded in gcd's state once, at the first sighting, and never moves: this is read only for
images gcd has not seen before.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from gcd.core.ages import AgeStart, UnknownAge, unknown_start
from gcd.engine.layers import ImageLayers


def stored_at(image_root: Path, image_id: str) -> datetime | None:
    """When the image store last wrote the image's config: its arrival by load, pull or
    build. None when the file cannot be read (gone, or no access)."""
    path = image_root / "imagedb" / "content" / "sha256" / image_id.removeprefix("sha256:")
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime_ns / 1e9, UTC)
    except (OSError, ValueError, OverflowError):
        return None


def age_start(
    found: ImageLayers,
    *,
    image_id: str,
    image_root: Path | None,
    containerd_store: bool,
    created: datetime | None,
    now: datetime,
    unknown_age: UnknownAge,
) -> tuple[datetime, AgeStart]:
    """Where the local age of an image seen for the first time starts, and from what.

    `found` is what the layer source read (`last_tag_time`: the disk's `lastUpdated`, or the
    inspect's `LastTagTime`); `image_root` the graphdriver's image root when gcd reads it. A
    time in the future (a clock set back) is no evidence of age: the latest time that is not,
    else now."""
    tagged = found.last_tag_time
    if image_root is not None:
        times = [t for t in (stored_at(image_root, image_id), tagged) if t is not None]
        source = AgeStart.ARRIVAL
    else:
        times = [tagged] if tagged is not None else []
        source = AgeStart.ARRIVAL if containerd_store else AgeStart.TAGGED
    if times:
        past = [t for t in times if t <= now]
        return (max(past) if past else now), source
    start = unknown_start(created, now, unknown_age)
    return start, AgeStart.CREATED if start != now else AgeStart.FIRST_SEEN
