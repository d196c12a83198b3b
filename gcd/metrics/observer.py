"""The daemon's observations turned into metrics (see gcd.metrics for the names)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gcd.config.loader import read_policy_file
from gcd.core.budget import Pressure
from gcd.core.kind import Kind
from gcd.cycle import ComposeRead, RunResult
from gcd.errors import PolicyError
from gcd.host.mounts import mount_of
from gcd.metrics.definitions import Metrics
from gcd.observer import CycleObserver

log = structlog.get_logger("gcd.metrics")


class MetricsObserver(CycleObserver):
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._disk_path: Path | None = None

    def engine_up(self, up: bool) -> None:
        self.metrics.set_engine_up(up)

    def policy_reloaded(self, path: Path | None) -> None:
        if path is None:
            self.metrics.record_policy_reload_failed()
            return
        try:
            # Bounded and non-blocking, as the load was: a FIFO swapped in since then must not
            # hang the daemon here.
            self.metrics.record_policy_loaded(read_policy_file(path))
        except PolicyError as exc:
            log.warning("policy_digest_failed", error=str(exc))

    def disk_path(self, path: Path) -> None:
        if path != self._disk_path:  # mountinfo is read again only when the path changes
            self._disk_path = path
            mount = mount_of(path)
            self.metrics.record_mount(
                mount.mountpoint if mount else "", mount.device if mount else ""
            )

    def disk_measured(self, pressure: Pressure) -> None:
        self.metrics.record_disk(
            pressure.bytes_ratio,
            pressure.inodes_ratio,
            pressure.high,
            pressure.low,
            pressure.above_high,
        )

    def cycle_finished(
        self, trigger: str, result: RunResult, duration_seconds: float, fs_freed: int | None
    ) -> None:
        self.metrics.record_result(
            result, trigger=trigger, duration_seconds=duration_seconds, now=datetime.now(UTC)
        )
        # Only cycles that removed something: otherwise other programs' writes would count.
        if fs_freed is not None and result.freed_bytes > 0:
            self.metrics.record_filesystem_freed(fs_freed)

    def compose_read(self, read: ComposeRead) -> None:
        self.metrics.record_compose(images for _, images in read)

    def docker_usage(self, usage: Mapping[Kind, int]) -> None:
        self.metrics.record_docker_usage({kind: usage.get(kind, 0) for kind in Kind})

    def cycle_failed(self, trigger: str, result: str, duration_seconds: float) -> None:
        if result == "refused":
            self.metrics.record_safety_abort()
            self.metrics.record_cycle(trigger, "refused", duration_seconds, datetime.now(UTC))
            return
        self.metrics.record_failure(
            trigger=trigger, duration_seconds=duration_seconds, now=datetime.now(UTC)
        )
