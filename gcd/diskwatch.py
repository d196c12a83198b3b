"""The daemon's view of the watched filesystem: measured before, during and after a cycle,
and polled between cycles (`due`), with a back-off when a cycle could not relieve it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import structlog

from gcd.core.budget import Pressure
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.engine.client import Engine
from gcd.errors import GcdError
from gcd.host.disk import DiskUsage, measure
from gcd.observer import CycleObserver

log = structlog.get_logger("gcd.daemon")


class DiskWatch:
    def __init__(
        self, engine: Engine, observer: CycleObserver, policy: Callable[[], Policy]
    ) -> None:
        self.engine = engine
        self.observer = observer
        self.policy = policy
        """The policy in force now (it changes on reload)."""
        self.backoff_until = 0.0

    def usage(self) -> DiskUsage | None:
        disk = self.policy().schedule.disk
        if disk is None:
            return None
        path = disk.path or str(self.engine.info().get("DockerRootDir", "/var/lib/docker"))
        return measure(Path(path))

    def pressure(self, usage: DiskUsage | None) -> Pressure | None:
        disk = self.policy().schedule.disk
        if disk is None or usage is None:
            return None
        pressure = usage.pressure(disk.high, disk.low, disk.critical_ratio)
        self.observer.disk_path(usage.path)
        self.observer.disk_measured(pressure)
        return pressure

    def remeasure(self) -> Pressure | None:
        """The disk again, mid-cycle (after each kind's deletions): a failed measurement
        only means the run goes on as planned."""
        try:
            return self.pressure(self.usage())
        except GcdError as exc:
            log.warning("disk_check_failed", error=str(exc))
            return None

    def due(self) -> bool:
        """The disk-pressure poll: above `high` → a cycle now, unless backing off."""
        try:
            pressure = self.pressure(self.usage())
        except GcdError as exc:
            log.warning("disk_check_failed", error=str(exc))
            return False
        if pressure is None or not pressure.above_high:
            self.backoff_until = 0.0
            return False
        backing_off = time.monotonic() < self.backoff_until
        log.debug("disk_checked", detail=pressure.describe(), backing_off=backing_off)
        return not backing_off

    def after_cycle(self, plan: Plan) -> None:
        """A cycle that could not bring the disk below low: no pressure cycle for a while."""
        if not plan.shortfall:
            return
        disk = self.policy().schedule.disk
        backoff = max(300.0, 10 * (disk.check_every.total_seconds() if disk else 30.0))
        self.backoff_until = time.monotonic() + backoff
        log.warning("pressure_unresolved", detail=plan.pressure, backoff_s=backoff)
