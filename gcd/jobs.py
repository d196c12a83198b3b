"""The daemon's scheduling parts that must not fail where nobody sees it.

- `build_triggers`: a schedule's triggers, made and tried before the scheduler gets them. The
  scheduler computes each next fire time on its own thread after a run, where an overflow (a
  huge `every` or `jitter` that validation let through) kills that thread while the process
  lives on; tried here, the same overflow is a `ScheduleError` at start (exit 2) or a failed
  reload (the running schedule stays).
- `DaemonThreads`: an APScheduler executor whose jobs run in daemon threads, so that a cycle
  stuck in a request the engine never answers cannot hold the process at exit (Python joins
  the threads of `concurrent.futures` pools before it exits).
- `guarded`: a job whose exceptions are one structured event each, and `scheduler_alive`.
- `Background`: a call on a thread of its own, with a deadline, so that the main thread keeps
  handling SIGTERM while a reload reads a slow file or a ping waits for a stalled engine.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, ParamSpec, TypeVar

import structlog
from apscheduler.executors.pool import BasePoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from gcd.core.policy import Policy, Schedule
from gcd.errors import ExitCode, GcdError

log = structlog.get_logger("gcd.daemon")

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_EVERY = timedelta(hours=1)
TRIED_FIRES = 3
"""Fire times computed ahead, each with the whole jitter added: a schedule whose next few
runs can be represented keeps working for centuries (datetime ends in the year 9999)."""


class ScheduleError(GcdError):
    """The policy's schedule passed validation but the scheduler cannot compute its runs."""

    exit_code = ExitCode.BAD_POLICY_OR_USAGE


class ReloadTimeoutError(GcdError):
    """Loading the policy on SIGHUP took longer than the daemon's reload deadline."""

    exit_code = ExitCode.BAD_POLICY_OR_USAGE


@dataclass(frozen=True, slots=True)
class Triggers:
    cycle: CronTrigger | IntervalTrigger
    disk: IntervalTrigger | None
    first_run: datetime | None
    """When an interval schedule's first cycle runs at start (now); a cron waits for its time."""


def build_triggers(policy: Policy, now: datetime | None = None) -> Triggers:
    """The triggers of `policy.schedule`, each tried for its next runs; `ScheduleError`, with
    what to change, when the scheduler could not use them."""
    moment = now or datetime.now(UTC)
    schedule = policy.schedule
    try:
        cycle, disk = _make(schedule)
        jitter = timedelta(seconds=int(schedule.jitter.total_seconds()))
        for trigger, jittered in ((cycle, jitter), (disk, timedelta(0))):
            if trigger is not None:
                _try_fires(trigger, moment, jittered)
    except ScheduleError:
        raise
    except Exception as exc:  # overflow, or anything else the trigger raises: nothing runs
        raise ScheduleError(
            f"{policy.source}: schedule: the scheduler cannot compute its runs "
            f"({type(exc).__name__}: {exc}); choose a shorter every, jitter or "
            "disk.check_every, or another cron expression"
        ) from exc
    first_run = None if schedule.cron is not None else moment
    return Triggers(cycle, disk, first_run)


def _make(schedule: Schedule) -> tuple[CronTrigger | IntervalTrigger, IntervalTrigger | None]:
    jitter = int(schedule.jitter.total_seconds()) or None
    cycle: CronTrigger | IntervalTrigger
    if schedule.cron is not None:
        cycle = CronTrigger.from_crontab(schedule.cron, timezone=UTC)
        cycle.jitter = jitter
    else:
        every = schedule.every or DEFAULT_EVERY
        cycle = IntervalTrigger(seconds=every.total_seconds(), jitter=jitter, timezone=UTC)
    disk = None
    if schedule.disk is not None:
        disk = IntervalTrigger(seconds=schedule.disk.check_every.total_seconds(), timezone=UTC)
    return cycle, disk


def _try_fires(trigger: CronTrigger | IntervalTrigger, now: datetime, jitter: timedelta) -> None:
    previous: datetime | None = None
    fire: datetime = now
    for _ in range(TRIED_FIRES):
        following = trigger.get_next_fire_time(previous, fire)
        if following is None:
            raise ScheduleError("the schedule never fires")
        _ = following + jitter
        previous = fire = following


class DaemonThreadPool(Executor):
    """Each job in a daemon thread of its own. APScheduler runs at most one instance of each
    of the daemon's few jobs (`max_instances=1`), so the threads are bounded by the jobs."""

    def __init__(self) -> None:
        self._shut = False

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        if self._shut:
            raise RuntimeError("the daemon's job pool is shut down")
        future: Future[T] = Future()

        def work() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:  # handed to APScheduler, as its own pool does
                future.set_exception(exc)
            else:
                future.set_result(result)

        threading.Thread(target=work, name="gcd-job", daemon=True).start()
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        # Never waits: a job stuck in a request is abandoned (the daemon decides how long
        # to wait for a cycle, see Daemon._shutdown).
        self._shut = True


class DaemonThreads(BasePoolExecutor):  # type: ignore[misc]  # APScheduler 3 is untyped
    def __init__(self) -> None:
        super().__init__(DaemonThreadPool())


class Background(Generic[T]):
    """`call()` on a daemon thread of its own, for the main thread to poll (`done`, `overdue`)
    while it goes on handling signals. A call past its deadline is abandoned: its thread
    ends when the call returns, or with the process."""

    def __init__(
        self, name: str, call: Callable[[], T], deadline_seconds: float = float("inf")
    ) -> None:
        self.deadline_seconds = deadline_seconds
        self.started = time.monotonic()
        self.done = threading.Event()
        self.value: T | None = None
        self.error: Exception | None = None
        self._call = call
        threading.Thread(target=self._run, name=name, daemon=True).start()

    def _run(self) -> None:
        try:
            self.value = self._call()
        except Exception as exc:  # every failure is the caller's to report
            self.error = exc
        finally:
            self.done.set()

    @property
    def overdue(self) -> bool:
        return not self.done.is_set() and time.monotonic() - self.started > self.deadline_seconds

    def wait(self, stop: threading.Event, tick: float = 0.1) -> bool:
        """Until the call is done (True), or `stop` is set or the deadline passed (False)."""
        while not self.done.wait(tick):
            if stop.is_set() or self.overdue:
                return False
        return True


def guarded(name: str, job: Callable[[], object]) -> Callable[[], None]:
    """`job` as a scheduled job: whatever it raises is one `job_failed` event, never an
    APScheduler traceback, and the job runs again at its next time."""

    def run() -> None:
        try:
            job()
        except Exception as exc:  # the boundary: the daemon outlives any one job
            log.error(
                "job_failed",
                job=name,
                error_type=type(exc).__name__,
                error=str(exc),
                exc_info=exc,
            )

    return run


def scheduler_alive(scheduler: BackgroundScheduler) -> bool:
    """The scheduler's thread runs. APScheduler 3 keeps it as `_thread` and has no public way
    to ask: when it dies (an exception while computing a next fire time), the scheduler still
    says `running`."""
    thread = getattr(scheduler, "_thread", None)
    return bool(scheduler.running) and isinstance(thread, threading.Thread) and thread.is_alive()
