"""The daemon's SIGHUP reload: the policy read on a thread of its own within a deadline, then
swapped in whole with its new schedule, or refused with the running policy kept."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gcd.core.policy import Policy
from gcd.errors import GcdError, PolicyError
from gcd.jobs import Background, ReloadTimeoutError, Triggers, build_triggers
from gcd.observer import CycleObserver
from gcd.sdnotify import Notifier

if TYPE_CHECKING:
    from gcd.daemon import DaemonSettings

log = structlog.get_logger("gcd.daemon")

__all__ = ["PolicyReload"]


class PolicyReload:
    """Mixed into `gcd.daemon.Daemon`, which sets these attributes and schedules triggers."""

    settings: DaemonSettings
    policy: Policy
    observer: CycleObserver
    notifier: Notifier
    load_policy: Callable[[Path], Policy]
    reload_requested: threading.Event
    pending_load: Background[Policy] | None
    last_status: str

    def _apply_schedule(self, triggers: Triggers, *, first: bool) -> None:
        raise NotImplementedError

    def _poll_reload(self) -> None:
        """Start a reload asked for by SIGHUP, or finish the one under way; never blocks."""
        pending = self.pending_load
        if pending is None:
            if not self.reload_requested.is_set():
                return
            self.reload_requested.clear()
            self.notifier.reloading(time.monotonic_ns() // 1000)
            path = self.settings.policy_path
            self.pending_load = Background(
                "gcd-reload", lambda: self.load_policy(path), self.settings.reload_deadline_seconds
            )
            return
        if pending.done.is_set() or pending.overdue:
            self.pending_load = None
            self._finish_reload(pending)

    def _finish_reload(self, pending: Background[Policy]) -> bool:
        # All or nothing: the new triggers are built and tried before anything is swapped.
        try:
            if not pending.done.is_set():
                raise ReloadTimeoutError(
                    f"loading {self.settings.policy_path} took longer than "
                    f"{pending.deadline_seconds:g} s (a FIFO, a device, a huge file?); "
                    "abandoned"
                )
            if pending.error is not None:
                raise pending.error
            assert pending.value is not None
            policy = pending.value
            triggers = build_triggers(policy)
        except Exception as exc:  # every failure keeps the running policy
            return self._reload_failed(exc)
        running = self.policy
        try:
            self.policy = policy
            self._apply_schedule(triggers, first=False)
        except Exception as exc:  # the scheduler refused the triggers: back to the old ones
            self.policy = running
            self._apply_schedule(build_triggers(running), first=False)
            return self._reload_failed(exc)
        self.observer.policy_reloaded(self.settings.policy_path)
        log.info("policy_reloaded", policy=policy.source)
        self.notifier.ready(self.last_status)
        return True

    def _reload_failed(self, exc: Exception) -> bool:
        self.observer.policy_reloaded(None)
        known = isinstance(exc, GcdError)
        log.error(
            "policy_reload_failed",
            error=str(exc) if known else f"{type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
            kept=self.policy.source,
            **({} if known else {"exc_info": exc}),
        )
        first = exc.problems[0] if isinstance(exc, PolicyError) else exc
        self.notifier.ready(f"reload failed, kept the running policy: {first}")
        return False
