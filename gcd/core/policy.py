"""Policy as plain, validated data: safety limits, the schedule, one section per kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.containers import ContainerPolicy
from gcd.core.kinds.images import ImagePolicy
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.kinds.volumes import VolumePolicy
from gcd.core.safety import Safety


@dataclass(frozen=True, slots=True)
class DiskWatermarks:
    """`schedule.disk`: above `high` (bytes or inodes) collect now, evicting to below `low`.
    At `critical` the engine may be too full to delete images (it rewrites its metadata), so
    containers, volumes and build cache go first and images after them."""

    path: str | None = None
    """None: the engine's DockerRootDir from `GET /info`."""
    high: float = 0.85
    low: float = 0.70
    critical: float | None = None
    """None: 0.95, or `high` when that is higher."""
    check_every: timedelta = timedelta(seconds=30)

    @property
    def critical_ratio(self) -> float:
        return self.critical if self.critical is not None else max(0.95, self.high)


@dataclass(frozen=True, slots=True)
class Schedule:
    """When the daemon runs cycles: `every` or `cron` (exactly one), plus jitter."""

    every: timedelta | None = timedelta(hours=1)
    cron: str | None = None
    jitter: timedelta = timedelta(0)
    disk: DiskWatermarks | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy. A section that is None means that kind is not touched at all."""

    version: int = 1
    safety: Safety = field(default_factory=Safety)
    images: ImagePolicy | None = None
    containers: ContainerPolicy | None = None
    volumes: VolumePolicy | None = None
    build_cache: BuildCachePolicy | None = None
    networks: NetworkPolicy | None = None
    source: str = "<defaults>"
    schedule: Schedule = Schedule()
