"""`gcd daemon`: cycles on a schedule and under disk pressure, reload on SIGHUP, sd_notify.

Threads: APScheduler's worker runs cycles (one at a time: `max_instances=1`, coalesced, and a
cycle lock shared with the disk-pressure check); the usage tracker follows events; the main
thread handles signals, readiness and the watchdog. The watchdog is pinged only while the
scheduler's heartbeat job keeps running, so a wedged scheduler stops the pings.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import structlog
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gcd.config.trusted import load_trusted_policy
from gcd.core.budget import Pressure
from gcd.core.policy import Policy
from gcd.cycle import RunResult, run_once, usage_after, utc_now
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from gcd.engine.usage import UsageTracker
from gcd.errors import (
    EngineError,
    EngineUnreachableError,
    GcdError,
    InsecurePolicyError,
    PolicyError,
)
from gcd.host.disk import DiskUsage, measure
from gcd.host.state import Scope, State
from gcd.observer import CycleObserver
from gcd.sdnotify import Notifier, watchdog_interval_seconds

log = structlog.get_logger("gcd.daemon")

HEARTBEAT_SECONDS = 2.0
ENGINE_RETRY_MAX_SECONDS = 30.0
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


class Daemon:
    def __init__(
        self,
        settings: DaemonSettings,
        policy: Policy,
        observer: CycleObserver | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.engine = Engine(settings.host)
        self.observer = observer or CycleObserver()
        self.notifier = notifier or Notifier()
        self.stop_event = threading.Event()
        self.reload_requested = threading.Event()
        self.cycle_lock = threading.Lock()
        self.state_lock = threading.Lock()
        self.heartbeat = time.monotonic()
        self.pending_uses: dict[tuple[Scope, str], datetime] = {}
        self.pending_lock = threading.Lock()
        self.pressure_backoff_until = 0.0
        self.last_status = "starting"
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600},
        )
        self.tracker = UsageTracker(
            self.engine, self._record_use, on_reconnect=self.observer.events_reconnected
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

    def _record_use(self, scope: Scope, image_id: str, when: datetime) -> None:
        # The event reader must never block (the engine drops events for slow readers), so
        # uses are buffered here and written to the state by `flush_uses`.
        with self.pending_lock:
            previous = self.pending_uses.get((scope, image_id))
            self.pending_uses[scope, image_id] = max(previous, when) if previous else when
        log.debug("image_used", image=image_id[7:19], at=when.isoformat())

    def flush_uses(self) -> None:
        with self.pending_lock:
            uses, self.pending_uses = self.pending_uses, {}
        if not uses:
            return
        try:
            with self.state_lock:
                for scope in sorted({scope for scope, _ in uses}):
                    state = State.load(self.settings.state_dir, scope)
                    for (of, image_id), when in uses.items():
                        if of == scope:
                            state.mark_used(image_id, when)
                    state.save()
        except GcdError:
            # Kept for the next flush: writing a use twice changes nothing (MAX).
            with self.pending_lock:
                for key, when in uses.items():
                    newer = self.pending_uses.get(key)
                    self.pending_uses[key] = max(newer, when) if newer else when
            raise

    def _flush_quietly(self) -> None:
        try:
            self.flush_uses()
        except GcdError as exc:
            log.warning("usage_flush_failed", error=str(exc))

    def _beat(self) -> None:
        if os.environ.get(WEDGE_ENV) and self.notifier.enabled:
            log.warning("scheduler_wedged_for_test")
            self.stop_event.wait()
        self.heartbeat = time.monotonic()

    def disk_usage(self) -> DiskUsage | None:
        disk = self.policy.schedule.disk
        if disk is None:
            return None
        path = disk.path or str(self.engine.info().get("DockerRootDir", "/var/lib/docker"))
        return measure(Path(path))

    def _pressure(self, usage: DiskUsage | None) -> Pressure | None:
        disk = self.policy.schedule.disk
        if disk is None or usage is None:
            return None
        pressure = usage.pressure(disk.high, disk.low, disk.critical_ratio)
        self.observer.disk_measured(pressure)
        return pressure

    def _remeasure(self) -> Pressure | None:
        """The disk again, mid-cycle (after each kind's deletions): a failed measurement
        only means the run goes on as planned."""
        try:
            return self._pressure(self.disk_usage())
        except GcdError as exc:
            log.warning("disk_check_failed", error=str(exc))
            return None

    def check_disk(self) -> None:
        """The disk-pressure poll: above `high` → a cycle now, unless backing off."""
        try:
            pressure = self._pressure(self.disk_usage())
        except GcdError as exc:
            log.warning("disk_check_failed", error=str(exc))
            return
        if pressure is None or not pressure.above_high:
            self.pressure_backoff_until = 0.0
            return
        backing_off = time.monotonic() < self.pressure_backoff_until
        log.debug("disk_checked", detail=pressure.describe(), backing_off=backing_off)
        if not backing_off:
            self.run_cycle("pressure")

    def run_cycle(self, trigger: str) -> RunResult | None:
        if not self.cycle_lock.acquire(blocking=False):
            log.info("cycle_skipped_busy", trigger=trigger)
            return None
        started = time.monotonic()
        try:
            return self._cycle(trigger, started)
        finally:
            self.cycle_lock.release()

    def _cycle(self, trigger: str, started: float) -> RunResult | None:
        policy = self.policy
        try:
            before = self.disk_usage()
            pressure = self._pressure(before)
            self.flush_uses()
            with self.state_lock:
                result = run_once(
                    self.engine,
                    policy,
                    self.settings.state_dir,
                    pressure=pressure,
                    remeasure=self._remeasure,
                    stop=self.stop_event,
                    trigger=trigger,
                )
            after = self.disk_usage()
        except (EngineUnreachableError, EngineError) as exc:
            self.observer.engine_up(False)
            self.observer.cycle_failed(trigger, "failure", time.monotonic() - started)
            self._status(f"last cycle failed: {exc}")
            log.warning("cycle_failed", trigger=trigger, error=str(exc))
            return None
        except GcdError as exc:
            self.observer.cycle_failed(trigger, "failure", time.monotonic() - started)
            self._status(f"last cycle failure: {exc}")
            log.warning("cycle_failed", trigger=trigger, error=str(exc), result="failure")
            return None
        if result.plan.refusal is not None:
            self.observer.cycle_failed(trigger, "refused", time.monotonic() - started)
            self._status(f"last cycle refused: {result.plan.refusal}")
            log.warning(
                "cycle_failed", trigger=trigger, error=result.plan.refusal, result="refused"
            )
            return None
        self.observer.engine_up(True)
        self.observer.docker_usage(usage_after(result))
        fs_freed = before.used_bytes - after.used_bytes if before and after else None
        self.observer.cycle_finished(trigger, result, time.monotonic() - started, fs_freed)
        if result.plan.shortfall:
            backoff = max(300.0, 10 * self._check_every_seconds())
            self.pressure_backoff_until = time.monotonic() + backoff
            log.warning("pressure_unresolved", detail=result.plan.pressure, backoff_s=backoff)
        removed = result.report.count(OutcomeStatus.REMOVED)
        self._status(
            f"last cycle {datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} ({trigger}): removed {removed}, "
            f"freed {result.freed_bytes} bytes"
        )
        return result

    def _check_every_seconds(self) -> float:
        disk = self.policy.schedule.disk
        return disk.check_every.total_seconds() if disk else 30.0

    def _status(self, text: str) -> None:
        self.last_status = text
        self.notifier.status(text)

    # -- schedule --------------------------------------------------------------------------

    def _schedule_jobs(self) -> None:
        schedule = self.policy.schedule
        jitter = int(schedule.jitter.total_seconds()) or None
        trigger: CronTrigger | IntervalTrigger
        if schedule.cron is not None:
            trigger = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
            trigger.jitter = jitter
        else:
            every = schedule.every or timedelta(hours=1)
            trigger = IntervalTrigger(seconds=every.total_seconds(), jitter=jitter, timezone=UTC)
        first_run = {} if self.scheduler.running or schedule.cron else {"next_run_time": utc_now()}
        self.scheduler.add_job(
            self.run_cycle,
            trigger,
            args=("schedule",),
            id="cycle",
            replace_existing=True,
            **first_run,
        )
        if schedule.disk is not None:
            self.scheduler.add_job(
                self.check_disk,
                IntervalTrigger(seconds=schedule.disk.check_every.total_seconds(), timezone=UTC),
                id="disk",
                replace_existing=True,
                next_run_time=utc_now(),
            )
        elif self.scheduler.get_job("disk") is not None:
            self.scheduler.remove_job("disk")

    def reload(self) -> bool:
        self.notifier.reloading(time.monotonic_ns() // 1000)
        try:
            # Checked like at start: a policy that others could now write is refused too.
            policy = load_trusted_policy(self.settings.policy_path)
        except (PolicyError, InsecurePolicyError) as exc:
            self.observer.policy_reloaded(None)
            log.error("policy_reload_failed", error=str(exc), kept=self.policy.source)
            first = exc.problems[0] if isinstance(exc, PolicyError) else exc
            self.notifier.ready(f"reload failed, kept the running policy: {first}")
            return False
        self.policy = policy
        self._schedule_jobs()
        self.observer.policy_reloaded(self.settings.policy_path)
        log.info("policy_reloaded", policy=policy.source)
        self.notifier.ready(self.last_status)
        return True

    # -- main loop -------------------------------------------------------------------------

    def _wait_for_engine(self) -> bool:
        delay = 1.0
        while not self.stop_event.is_set():
            try:
                self.engine.ping()
            except (EngineUnreachableError, EngineError) as exc:
                self.observer.engine_up(False)
                self._status(f"waiting for the Docker engine: {exc}")
                log.warning("engine_unreachable", error=str(exc), retry_seconds=delay)
                self.stop_event.wait(delay)
                delay = min(delay * 2, ENGINE_RETRY_MAX_SECONDS)
                self.notifier.watchdog()
                continue
            self.observer.engine_up(True)
            return True
        return False

    def run(self) -> int:
        self.install_signal_handlers()
        self.observer.policy_reloaded(self.settings.policy_path)
        self.tracker.start()
        self._schedule_jobs()
        self.scheduler.add_job(self._beat, IntervalTrigger(seconds=HEARTBEAT_SECONDS), id="beat")
        self.scheduler.add_job(self._flush_quietly, IntervalTrigger(seconds=30), id="flush")
        if not self._wait_for_engine():
            return self._shutdown()
        self.scheduler.start()
        self.notifier.ready("running; first cycle scheduled")
        log.info("daemon_ready", policy=self.policy.source, host=self.engine.host)
        interval = watchdog_interval_seconds()
        tick = min(interval or 1.0, 1.0)
        while not self.stop_event.is_set():
            if self.reload_requested.is_set():
                self.reload_requested.clear()
                self.reload()
            if interval is not None and time.monotonic() - self.heartbeat < 3 * HEARTBEAT_SECONDS:
                self.notifier.watchdog()
            self.stop_event.wait(tick)
        return self._shutdown()

    def _shutdown(self) -> int:
        self.notifier.stopping()
        log.info("daemon_stopping")
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        self.tracker.stop()
        self._flush_quietly()
        self.engine.close()
        log.info("daemon_stopped")
        return 0
