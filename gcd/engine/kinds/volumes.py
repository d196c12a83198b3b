"""Volumes on the engine: reading them into records, and removing one planned volume safely
(engine-facts.md §0 rule 6, §1.3).

**Reading.** `GET /volumes` lists every volume; its bytes come from `GET /system/df`
(`UsageData.Size`, -1 when the engine does not know: 0). A volume is anonymous when it carries
the label `com.docker.volume.anonymous` (engines from 23 set it) or its name is 64 lowercase
hex digits, as engines before 23 and Podman name a volume made without a name. A named volume
is never taken for anonymous by that second test unless someone named it like a generated id.

gcd's state remembers, per engine, when it first saw each volume (`seen_at`, never moved
afterwards; a volume gcd sees for the first time starts at `now`, not at its `CreatedAt`,
because nobody knows which container used it before gcd looked) and the last snapshot in which
a container in any state mounted it (`last_used`). Volumes gone from the engine are forgotten.

**Removing.** Right before, in plan order: re-inspect (gone → `already_gone`; its `CreatedAt`
differs from the planned one: a new volume under the same name → `skipped_changed`); list
every container, in any state, and skip the volume if one mounts it (`skipped_in_use`: a
container created since the plan); then `DELETE /volumes/{name}` without force. The engine is
the final judge: a container created in the last moment is a 409 (`conflict`), counted, never
forced. Never `POST /volumes/prune`: before API 1.42 (every 20.10 engine) it removes named
volumes too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gcd.core.plan import Decision
from gcd.core.records import Container, Volume, is_anonymous_volume
from gcd.engine.api import EngineApi
from gcd.engine.kinds.reinspect import classify_removal
from gcd.engine.outcomes import OutcomeStatus, Removal, Verdict
from gcd.engine.times import parse_go_time
from gcd.host.state import State

KIND = "volume"
"""The state's kind for volume rows."""


def _strings(values: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in values.items()} if isinstance(values, dict) else {}


def parse_volume(
    raw: Mapping[str, Any],
    *,
    seen_at: datetime,
    last_used: datetime | None,
    size_bytes: int,
) -> Volume:
    """One entry of `GET /volumes`, with what the state and `GET /system/df` add."""
    name = str(raw["Name"])
    labels = _strings(raw.get("Labels"))
    return Volume(
        name=name,
        driver=str(raw.get("Driver") or ""),
        seen_at=seen_at,
        anonymous=is_anonymous_volume(name, labels),
        labels=labels,
        options=_strings(raw.get("Options")),
        created=parse_go_time(raw.get("CreatedAt")),
        last_used=last_used,
        size_bytes=max(int(size_bytes), 0),
    )


def volume_sizes(df: Mapping[str, Any]) -> dict[str, int]:
    """`GET /system/df` `Volumes[].UsageData.Size` by name; -1 (unknown) is 0."""
    sizes: dict[str, int] = {}
    for entry in df.get("Volumes") or ():
        if not isinstance(entry, dict) or not entry.get("Name"):
            continue
        usage = entry.get("UsageData")
        size = usage.get("Size") if isinstance(usage, dict) else None
        sizes[str(entry["Name"])] = max(int(size), 0) if isinstance(size, int | float) else 0
    return sizes


def read_volumes(
    raw_volumes: Sequence[Mapping[str, Any]],
    containers: Sequence[Container],
    sizes: Mapping[str, int],
    state: State,
    now: datetime,
) -> tuple[Volume, ...]:
    """The listed volumes as records. Records in `state` (which the caller saves) the first
    sighting of each, a use at `now` of each one a container mounts, and forgets volumes
    that are gone."""
    mounted = {name for container in containers for name in container.volumes}
    volumes: list[Volume] = []
    for raw in raw_volumes:
        if not raw.get("Name"):
            continue
        name = str(raw["Name"])
        seen_at = state.first_seen(name, kind=KIND)
        if seen_at is None:
            seen_at = now
            state.mark_seen(name, now, kind=KIND)
        if name in mounted:
            state.mark_used(name, now, kind=KIND)
        volumes.append(
            parse_volume(
                raw,
                seen_at=seen_at,
                last_used=state.last_used(name, kind=KIND),
                size_bytes=sizes.get(name, 0),
            )
        )
    state.forget_missing((v.name for v in volumes), kind=KIND)
    return tuple(volumes)


def mounted_by(containers: Sequence[Mapping[str, Any]], name: str) -> list[str]:
    """`name (state)` of each listed container that mounts the volume `name`."""
    return sorted(
        f"{str((c.get('Names') or [str(c.get('Id', ''))[:12]])[0]).lstrip('/')} "
        f"({c.get('State', 'unknown state')})"
        for c in containers
        if any(
            isinstance(m, dict) and m.get("Type") == "volume" and m.get("Name") == name
            for m in c.get("Mounts") or ()
        )
    )


def volume_of(decision: Decision) -> Volume:
    """The volume a decision is about: the volume kind's view of a generic decision."""
    if not isinstance(decision.subject, Volume):
        raise TypeError(f"{decision.key} is not a volume")
    return decision.subject


class VolumeRemoval(Removal):
    """Removing one planned volume, without force."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        super().__init__(decision, engine, since)
        self.volume = volume_of(decision)

    def attempt(self) -> Verdict:
        name = self.volume.name
        record = self.engine.inspect_volume(name)
        if record is None:
            return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
        created = parse_go_time(record.get("CreatedAt"))
        planned = self.volume.created
        if planned is not None and created is not None and created != planned:
            return Verdict(
                OutcomeStatus.SKIPPED_CHANGED,
                f"a new volume of that name: created {created.isoformat()}, "
                f"the planned one {planned.isoformat()}",
            )
        # The whole list, every state, compared by the mount's volume name: the engine's
        # `volume` filter is one more semantics this guard would depend on.
        users = mounted_by(self.engine.list_containers(), name)
        if users:
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "now mounted by " + ", ".join(users))
        self.touched = True
        return classify_removal(
            self.engine.remove_volume(name),
            removed="removed without force",
            gone=lambda: self.engine.inspect_volume(name) is None,
            what="the volume",
        )
