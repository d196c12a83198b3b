"""The busy gate: while a build runs, deletions that could break it wait for a later cycle.

A build is running when the snapshot shows
- a BuildKit build-cache record in use (`GET /system/df` `BuildCache[].InUse`): BuildKit holds
  the records of every build in progress; or
- a container the classic builder made for a Dockerfile step (`Container.build_step`, how it
  is recognised: `gcd.engine.builds`) created within `safety.quiet_for`. The classic builder
  creates one per `RUN`/`COPY` step and removes it after committing the step; an older one
  is a build left behind, not one running.

An image pull in progress is not visible: no Engine API call lists pulls (the `pull` event
comes only once a pull has finished), so pulls are not part of the gate.

While busy, every image and build-cache deletion is deferred (`keep.busy`): a build may be
about to use any image as a base (`FROM`), any dangling image as its previous step's result,
and any cache record as a hit; and the step containers themselves are kept. Other containers,
volumes and networks go as planned: a build does not use them. At or above the critical
watermark nothing is deferred: a full disk breaks the build anyway. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gcd.core.kind import Key, Kind
from gcd.core.records import Snapshot
from gcd.core.units import format_duration, spell_duration

DEFERRED_KINDS = frozenset({Kind.IMAGE, Kind.BUILD_CACHE})
"""The kinds whose every deletion waits while a build runs."""


@dataclass(frozen=True, slots=True)
class Busy:
    """What shows a build running: the reasons, for the plan and log, and the classic
    builder's step containers, which are kept too."""

    reasons: tuple[str, ...]
    build_steps: frozenset[Key]
    build_cache_in_use: int
    step_containers: int

    def describe(self) -> str:
        return "; ".join(self.reasons)

    def defers(self, key: Key) -> bool:
        return key.kind in DEFERRED_KINDS or key in self.build_steps


def busy(snapshot: Snapshot, quiet_for: timedelta, now: datetime) -> Busy | None:
    """Whether a build is running, as the snapshot shows it; None when nothing is, and
    always None with `quiet_for` 0 (`safety.quiet_for: 0s` switches the gate off)."""
    if quiet_for <= timedelta(0):
        return None
    in_use = sorted((r for r in snapshot.build_cache if r.in_use), key=lambda r: (r.created, r.id))
    steps = sorted(
        (
            c
            for c in snapshot.containers
            if c.build_step and c.created is not None and now - c.created <= quiet_for
        ),
        key=lambda c: (c.created or now, c.id),
    )
    reasons: list[str] = []
    if in_use:
        first = in_use[0]
        reasons.append(
            f"a BuildKit build is running ({len(in_use)} build-cache record(s) in use, "
            f"{first.id[:12]} created {format_duration(now - first.created)} ago)"
        )
    if steps:
        newest = steps[-1]
        created = newest.created or now
        reasons.append(
            f"a classic build is running (step container {newest.id[:12]} of image "
            f"{newest.image_id.removeprefix('sha256:')[:12]} created "
            f"{format_duration(now - created)} ago, within safety.quiet_for="
            f"{spell_duration(quiet_for)})"
        )
    if not reasons:
        return None
    return Busy(tuple(reasons), frozenset(c.key for c in steps), len(in_use), len(steps))
