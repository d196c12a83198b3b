"""What the daemon reports about itself. The base does nothing; metrics subclass it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gcd.core.budget import Pressure
from gcd.cycle import RunResult


class CycleObserver:
    def engine_up(self, up: bool) -> None:
        """The engine answered (True) or could not be reached (False)."""

    def policy_reloaded(self, path: Path | None) -> None:
        """A policy file was loaded (`path`) or a reload failed (None)."""

    def disk_measured(self, pressure: Pressure) -> None:
        """Usage of the watched filesystem against the watermarks."""

    def cycle_finished(
        self, trigger: str, result: RunResult, duration_seconds: float, fs_freed: int | None
    ) -> None:
        """A cycle ran to its end; `fs_freed` is statvfs used bytes before minus after."""

    def cycle_failed(self, trigger: str, result: str, duration_seconds: float) -> None:
        """A cycle could not run (`failure`) or was refused by a safety limit (`refused`)."""

    def docker_usage(self, df: dict[str, Any]) -> None:
        """`GET /system/df` after a cycle (costly: once per cycle, never per tick)."""

    def events_reconnected(self) -> None:
        """The event stream ended and is being reopened."""
