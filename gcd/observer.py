"""What the daemon reports about itself. The base does nothing; metrics subclass it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gcd.core.budget import Pressure
from gcd.core.kind import Kind
from gcd.cycle import ComposeRead, RunResult


class CycleObserver:
    def engine_up(self, up: bool) -> None:
        """The engine answered (True) or could not be reached (False)."""

    def policy_reloaded(self, path: Path | None) -> None:
        """A policy file was loaded (`path`) or a reload failed (None)."""

    def disk_path(self, path: Path) -> None:
        """The path measured for the disk figures (its mount labels them)."""

    def disk_measured(self, pressure: Pressure) -> None:
        """Usage of the watched filesystem against the watermarks."""

    def cycle_finished(
        self, trigger: str, result: RunResult, duration_seconds: float, fs_freed: int | None
    ) -> None:
        """A cycle ran to its end; `fs_freed` is statvfs used bytes before minus after."""

    def cycle_failed(self, trigger: str, result: str, duration_seconds: float) -> None:
        """A cycle could not run (`failure`) or was refused by a safety limit (`refused`)."""

    def docker_usage(self, usage: Mapping[Kind, int]) -> None:
        """Bytes Docker's objects hold per kind after a cycle (`cycle.usage_after`)."""

    def compose_read(self, read: ComposeRead) -> None:
        """What the compose keep rules' files named in a cycle (`cycle.read_compose`)."""

    def events_reconnected(self) -> None:
        """The event stream ended and is being reopened."""
