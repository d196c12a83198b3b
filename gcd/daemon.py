"""`gcd daemon`: cycles on a schedule and under disk pressure, reload on SIGHUP, sd_notify.

Threads: APScheduler's jobs run cycles (one at a time: `max_instances=1`, coalesced, and a
cycle lock shared with the disk-pressure check), the reachability probe, the use flush and the
heartbeat, each in a daemon thread (gcd.jobs.DaemonThreads); the usage tracker follows
events; a reload reads the policy on a thread of its own; the main thread handles signals,
readiness and the watchdog. The watchdog is pinged only while the scheduler's heartbeat job
keeps running, so a wedged scheduler stops the pings; a scheduler thread that died ends the
daemon (exit 1).

Every job is a boundary: an exception escaping it (a garbled engine answer the parsing did
not foresee, a bug) is logged as one structured event (`cycle_failed` with result "crash",
or `job_failed`), counted, and the daemon carries on.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from gcd.config.trusted import load_trusted_policy
from gcd.core.policy import Policy
from gcd.cycle import RunResult, run_once, usage_after
from gcd.diskwatch import DiskWatch
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from gcd.engine.usage import UsageTracker
from gcd.errors import (
    EngineUnreachableError,
    ExitCode,
    GcdError,
)
from gcd.host.memory import release_memory
from gcd.jobs import (
    Background,
    DaemonThreads,
    ScheduleError,
    Triggers,
    build_triggers,
    guarded,
    scheduler_alive,
)
from gcd.observer import CycleObserver
from gcd.probe import engine_answers
from gcd.reload import PolicyReload
from gcd.sdnotify import Notifier, watchdog_interval_seconds
from gcd.startgate import StartGate
from gcd.uses import UseBuffer

log = structlog.get_logger("gcd.daemon")

HEARTBEAT_SECONDS = 2.0
WEDGE_ENV = "GCD_TEST_WEDGE_AFTER_READY"
"""Test seam, kept on purpose: when set (and only under systemd), the heartbeat job blocks after
READY, as a wedged scheduler would. tests/system/test_systemd_unit.py uses it to show that
systemd restarts the shipped unit when the scheduler, not the process, stops: the main thread
keeps running and would go on pinging if the pings did not follow the heartbeat. Nothing from
outside can wedge the scheduler thread alone (SIGSTOP stops the whole process, which proves
only systemd's side), and the fake engine of the unit tests does not reach the scheduler."""


@dataclass(frozen=True, slots=True)
class DaemonSettings:
    policy_path: Path
    state_dir: Path
    host: str | None = None
    probe_every_seconds: float = 15.0
    """`GET /_ping` between cycles, for gcd_engine_up (also probed at each cycle's start)."""
    probe_timeout_seconds: float = 5.0
    """A probe without an answer within this is "unreachable"."""
    reload_deadline_seconds: float = 10.0
    """A SIGHUP's policy load taking longer is abandoned; the running policy stays."""
    stop_grace_seconds: float = 5.0
    """On SIGTERM, how long to wait for a running cycle to notice the stop (it checks between
    deletions); a cycle stuck in a request is then abandoned and the daemon exits anyway."""
    first_scrape_wait_seconds: float = 0.0
    """The first cycle waits for the first scrape of /metrics, at most this long (StartGate)."""


class Daemon(PolicyReload):
    def __init__(
        self,
        settings: DaemonSettings,
        policy: Policy,
        observer: CycleObserver | None = None,
        notifier: Notifier | None = None,
        *,
        engine: Engine | None = None,
        load_policy: Callable[[Path], Policy] = load_trusted_policy,
        scraped: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.engine = engine or Engine(settings.host)
        self.observer = observer or CycleObserver()
        self.notifier = notifier or Notifier()
        self.load_policy = load_policy
        self.stop_event = threading.Event()
        self.gate = StartGate(scraped, settings.first_scrape_wait_seconds, self.stop_event)
        self.engine_seen_up: bool | None = None
        self.engine_lost = threading.Event()
        """The last cycle failed for want of the engine: the probe runs one when it is back."""
        self.reload_requested = threading.Event()
        self.cycle_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.uses = UseBuffer(settings.state_dir, self.state_lock)
        self.disk = DiskWatch(self.engine, self.observer, lambda: self.policy)
        self.last_status = "starting"
        self.pending_load: Background[Policy] | None = None
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": DaemonThreads()},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600},
        )
        self.tracker = UsageTracker(
            self.engine, self.uses.record, on_reconnect=self.observer.events_reconnected
        )

    # -- signals ---------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_stop_signal)
        signal.signal(signal.SIGINT, self._on_stop_signal)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        self.stop_event.set()

    def _on_hup(self, _signum: int, _frame: FrameType | None) -> None:
        self.reload_requested.set()

    # -- jobs ------------------------------------------------------------------------------

    def _beat(self) -> None:
        if os.environ.get(WEDGE_ENV) and self.notifier.enabled:
            log.warning("scheduler_wedged_for_test")
            self.stop_event.wait()
        self.heartbeat = time.monotonic()

    def probe_engine(self) -> bool:
        """gcd_engine_up from `GET /_ping`: 1 on any HTTP answer, 0 without one (gcd.probe)."""
        up = engine_answers(self.engine, self.settings.probe_timeout_seconds)
        self.observer.engine_up(up)
        return up

    def probe_job(self) -> None:
        """The probe between cycles; the engine back after a cycle failed for want of it: that
        cycle runs now, not at the next scheduled time (an hour later with `every: 1h`)."""
        up = self.probe_engine()
        if up != self.engine_seen_up:  # the transitions only: the probe runs every 15 s
            self.engine_seen_up = up
            if up:
                log.info("engine_reachable", host=self.engine.host)
            else:
                self._status("the Docker engine is unreachable; gcd_engine_up is 0")
                log.warning("engine_unreachable", host=self.engine.host)
        if up and self.engine_lost.is_set() and self.gate.is_open():
            self.engine_lost.clear()
            log.info("engine_back", detail="running the missed cycle now")
            self.scheduler.modify_job("cycle", next_run_time=datetime.now(UTC))

    def scheduled_cycle(self) -> None:
        if self.gate.wait():
            self.run_cycle("schedule")

    def check_disk(self) -> None:
        if self.gate.is_open() and self.disk.due():
            self.run_cycle("pressure")

    def run_cycle(self, trigger: str) -> RunResult | None:
        if not self.cycle_lock.acquire(blocking=False):
            log.info("cycle_skipped_busy", trigger=trigger)
            return None
        started = time.monotonic()
        try:
            return self._cycle(trigger, started)
        except Exception as exc:  # the cycle's boundary: counted, logged once, carried on
            self.observer.cycle_failed(trigger, "failure", time.monotonic() - started)
            self._status(f"last cycle crashed: {type(exc).__name__}: {exc}")
            log.error(
                "cycle_failed",
                trigger=trigger,
                result="crash",
                error_type=type(exc).__name__,
                error=str(exc),
                exc_info=exc,
            )
            return None
        finally:
            release_memory()  # the cycle's listings and plan are garbage now
            self.cycle_lock.release()

    def _cycle(self, trigger: str, started: float) -> RunResult | None:
        policy = self.policy
        self.probe_engine()
        try:
            before = self.disk.usage()
            pressure = self.disk.pressure(before)
            self.uses.flush()
            with self.state_lock:
                result = run_once(
                    self.engine,
                    policy,
                    self.settings.state_dir,
                    pressure=pressure,
                    remeasure=self.disk.remeasure,
                    stop=self.stop_event,
                    trigger=trigger,
                    next_cycle=self._next_cycle(),
                )
            after = self.disk.usage()
        except GcdError as exc:
            # The client reports some HTTP errors (a 500 to its version negotiation) as
            # unreachable: the probe, which counts any answer, decides.
            if isinstance(exc, EngineUnreachableError) and not self.probe_engine():
                self.engine_lost.set()
            # An EngineError (a 500, an answer gcd cannot use) came from an engine that
            # answered: gcd_engine_up stays as the probe measured it.
            self.observer.cycle_failed(trigger, "failure", time.monotonic() - started)
            self._status(f"last cycle failed: {exc}")
            log.warning(
                "cycle_failed",
                trigger=trigger,
                result="failure",
                error_type=type(exc).__name__,
                error=str(exc),
            )
            return None
        self.observer.engine_up(True)  # a snapshot was taken: the engine answered
        self.observer.compose_read(result.compose)
        if result.plan.refusal is not None:
            self.observer.cycle_failed(trigger, "refused", time.monotonic() - started)
            self._status(f"last cycle refused: {result.plan.refusal}")
            log.warning(
                "cycle_failed", trigger=trigger, error=result.plan.refusal, result="refused"
            )
            return None
        self.observer.docker_usage(usage_after(result))
        fs_freed = before.used_bytes - after.used_bytes if before and after else None
        duration = time.monotonic() - started
        self.observer.cycle_finished(trigger, result, duration, fs_freed)
        self.disk.after_cycle(result.plan)
        removed = result.report.count(OutcomeStatus.REMOVED)
        log.info(
            "cycle_finished",
            trigger=trigger,
            removed=removed,
            aborted=result.report.aborted,
            duration_s=round(duration, 3),
        )
        self._status(
            f"last cycle {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} ({trigger}): removed {removed}, "
            f"freed {result.freed_bytes} bytes"
        )
        return result

    def _next_cycle(self) -> float | None:
        """The cycle job's next fire time on the monotonic clock (a paced cycle stops there:
        `cycle.deadline_of`); None when the scheduler has none."""
        job = self.scheduler.get_job("cycle")
        fire = getattr(job, "next_run_time", None) if job is not None else None
        if not isinstance(fire, datetime):
            return None
        return time.monotonic() + max((fire - datetime.now(UTC)).total_seconds(), 0.0)

    def _status(self, text: str) -> None:
        self.last_status = text
        self.notifier.status(text)

    # -- schedule --------------------------------------------------------------------------

    def _apply_schedule(self, triggers: Triggers, *, first: bool) -> None:
        """Hand `triggers` (built and tried by `build_triggers`) to the scheduler."""
        first_run = {"next_run_time": triggers.first_run} if first and triggers.first_run else {}
        self.scheduler.add_job(
            guarded("cycle", self.scheduled_cycle),
            triggers.cycle,
            id="cycle",
            replace_existing=True,
            **first_run,
        )
        if triggers.disk is not None:
            self.scheduler.add_job(
                guarded("disk", self.check_disk),
                triggers.disk,
                id="disk",
                replace_existing=True,
                next_run_time=datetime.now(UTC),
            )
        elif self.scheduler.get_job("disk") is not None:
            self.scheduler.remove_job("disk")

    def _start_scheduler(self, triggers: Triggers) -> None:
        every = self.settings.probe_every_seconds
        self._apply_schedule(triggers, first=True)
        self.scheduler.add_job(self._beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="beat")
        self.scheduler.add_job(
            guarded("flush", self.uses.flush_quietly), IntervalTrigger(seconds=30), id="flush"
        )
        self.scheduler.add_job(
            guarded("probe", self.probe_job),
            IntervalTrigger(seconds=every),
            id="probe",
            next_run_time=datetime.now(UTC),
        )
        self.scheduler.start()
        cycle = self.scheduler.get_job("cycle")
        if not scheduler_alive(self.scheduler) or cycle is None or cycle.next_run_time is None:
            raise ScheduleError(
                f"{self.policy.source}: schedule: the scheduler did not start with the cycle "
                "job (see the log above)"
            )

    # -- main loop -------------------------------------------------------------------------

    def run(self) -> int:
        self.install_signal_handlers()
        self.observer.policy_reloaded(self.settings.policy_path)
        try:
            triggers = build_triggers(self.policy)
        except ScheduleError as exc:
            return self._start_failed(exc)
        self.tracker.start()
        # Ready without the engine (waiting for it got the unit restarted every
        # TimeoutStartSec, resetting the alerts' `for:`): gcd_engine_up says it is down.
        try:
            self._start_scheduler(triggers)
        except Exception as exc:  # the scheduler cannot run this schedule: say so, exit 2
            return self._start_failed(exc)
        self.notifier.ready("running; first cycle scheduled")
        log.info("daemon_ready", policy=self.policy.source, host=self.engine.host)
        return self._shutdown(self._loop())

    def _loop(self) -> int:
        interval = watchdog_interval_seconds()
        tick = min(interval or 0.25, 0.25)
        while not self.stop_event.is_set():
            self._poll_reload()
            if not scheduler_alive(self.scheduler):
                log.error("scheduler_died", detail="no cycle can run; exiting for a restart")
                return int(ExitCode.SOME_FAILED)
            if interval is not None and time.monotonic() - self.heartbeat < 3 * HEARTBEAT_SECONDS:
                self.notifier.watchdog()
            self.stop_event.wait(tick)
        return int(ExitCode.OK)

    def _start_failed(self, exc: Exception) -> int:
        log.error(
            "daemon_start_failed",
            error=str(exc) if isinstance(exc, GcdError) else f"{type(exc).__name__}: {exc}",
            error_type=type(exc).__name__,
        )
        self._shutdown(int(ExitCode.BAD_POLICY_OR_USAGE))
        return int(ExitCode.BAD_POLICY_OR_USAGE)

    def _shutdown(self, code: int = 0) -> int:
        self.notifier.stopping()
        log.info("daemon_stopping")
        self.stop_event.set()  # the running cycle's executor stops between deletions
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.settings.stop_grace_seconds

        def left() -> float:
            return max(deadline - time.monotonic(), 0.1)

        abandoned = not self.cycle_lock.acquire(timeout=left())
        if abandoned:
            # A request in flight is left to the engine: a DELETE completes there or not,
            # and the next run re-plans from what exists. The process exit ends the thread;
            # a state write it had begun is an uncommitted SQLite transaction, rolled back.
            log.warning("cycle_abandoned", waited_s=self.settings.stop_grace_seconds)
        else:
            self.cycle_lock.release()
        self.tracker.stop(timeout=left())
        self.uses.flush_quietly(lock_timeout=left())
        if not abandoned:  # the abandoned cycle may still use the client: the exit closes it
            self.engine.close()
        log.info("daemon_stopped", exit_code=code)
        return code
