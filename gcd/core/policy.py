"""Policy as plain, validated data: safety limits, the schedule, one section per kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.kinds.images import ImagePolicy
from gcd.core.safety import Safety


@dataclass(frozen=True, slots=True)
class DiskWatermarks:
    """`schedule.disk`: above `high` (bytes or inodes) collect now, evicting to below `low`."""

    path: str | None = None
    """None: the engine's DockerRootDir from `GET /info`."""
    high: float = 0.85
    low: float = 0.70
    check_every: timedelta = timedelta(seconds=30)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the daemon runs cycles: `every` or `cron` (exactly one), plus jitter."""

    every: timedelta | None = timedelta(hours=1)
    cron: str | None = None
    jitter: timedelta = timedelta(0)
    disk: DiskWatermarks | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. `images is None` means images are not touched at all."""

    version: int = 1
    safety: Safety = field(default_factory=Safety)
    images: ImagePolicy | None = None
    source: str = "<defaults>"
    schedule: Schedule = Schedule()
