"""The daemon's schedule and reloads: a schedule the scheduler cannot compute stops the start
(exit 2, before daemon_ready) or fails the reload with the running schedule kept; a reload
is all or nothing and has a deadline; a scheduler thread that dies ends the daemon."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from apscheduler.triggers.base import BaseTrigger
from structlog.testing import capture_logs

from gcd.core.policy import Policy, Schedule
from gcd.errors import ExitCode, PolicyError, PolicyProblem
from gcd.jobs import Background, ScheduleError, build_triggers
from tests.unit.daemon_support import EVERY_SECOND, Rig, policy, process_hooks, until

HUGE = timedelta(days=999_999_999)


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule(every=HUGE),
        Schedule(every=timedelta(days=2_000_000)),
        Schedule(every=timedelta(hours=1), jitter=HUGE),
        Schedule(every=None, cron="0 * * * *", jitter=timedelta(days=3_000_000)),
    ],
)
def test_a_schedule_the_scheduler_cannot_compute_is_a_schedule_error(schedule: Schedule) -> None:
    with pytest.raises(ScheduleError, match=r"policy\.yaml: schedule: the scheduler cannot"):
        build_triggers(policy(schedule))


def test_a_sane_schedule_builds_and_only_an_interval_runs_at_once() -> None:
    now = datetime(2026, 6, 1, tzinfo=UTC)
    assert build_triggers(policy(EVERY_SECOND), now).first_run == now
    assert build_triggers(policy(Schedule(every=None, cron="0 * * * *")), now).first_run is None


def test_the_daemon_refuses_to_start_on_such_a_schedule_before_it_is_ready(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, policy(Schedule(every=HUGE)))
    with process_hooks(), capture_logs() as logs:
        assert rig.daemon.run() == ExitCode.BAD_POLICY_OR_USAGE
    events = [e["event"] for e in logs]
    assert "daemon_start_failed" in events
    assert "daemon_ready" not in events
    assert not rig.daemon.scheduler.running


def _started(rig: Rig) -> None:
    rig.daemon._start_scheduler(build_triggers(rig.daemon.policy))


def _reload(rig: Rig) -> None:
    rig.daemon.reload_requested.set()
    rig.daemon._poll_reload()
    until(lambda: rig.daemon.pending_load is not None and rig.daemon.pending_load.done.is_set())
    rig.daemon._poll_reload()


def test_a_reload_whose_schedule_overflows_keeps_the_running_policy_and_schedule(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, load=lambda _p: policy(Schedule(every=HUGE), source="bad.yaml"))
    try:
        _started(rig)
        running, trigger = rig.daemon.policy, rig.daemon.scheduler.get_job("cycle").trigger
        with capture_logs() as logs:
            _reload(rig)
        assert rig.daemon.policy is running
        assert rig.daemon.scheduler.get_job("cycle").trigger is trigger
        failed = [e for e in logs if e["event"] == "policy_reload_failed"]
        assert len(failed) == 1
        assert "bad.yaml: schedule" in failed[0]["error"]
        assert failed[0]["kept"] == "policy.yaml"
        assert rig.sample("gcd_policy_reload_success") == 0
    finally:
        rig.close()


def test_a_good_reload_swaps_the_policy_and_its_schedule(tmp_path: Path) -> None:
    rig = Rig(tmp_path, load=lambda _p: policy(Schedule(every=timedelta(hours=2)), "new.yaml"))
    try:
        _started(rig)
        with capture_logs() as logs:
            _reload(rig)
        assert rig.daemon.policy.source == "new.yaml"
        trigger = rig.daemon.scheduler.get_job("cycle").trigger
        assert trigger.interval == timedelta(hours=2)
        # (the probe job, running at start now, may log the fake engine's socket as down)
        assert [e["event"] for e in logs if e["event"] != "engine_unreachable"] == [
            "policy_reloaded"
        ]
    finally:
        rig.close()


def test_an_invalid_policy_on_reload_is_logged_with_its_position(tmp_path: Path) -> None:
    def invalid(path: Path) -> Policy:
        raise PolicyError([PolicyProblem(str(path), 3, 5, "schedule.every", "not a duration")])

    rig = Rig(tmp_path, load=invalid)
    with capture_logs() as logs:
        _reload(rig)
    assert [e["event"] for e in logs] == ["policy_reload_failed"]
    assert "policy.yaml:3:5: schedule.every: not a duration" in logs[0]["error"]


def test_a_reload_past_its_deadline_is_abandoned_and_the_main_thread_never_waits(
    tmp_path: Path,
) -> None:
    """A FIFO with no writer, as on main: the load blocks; the main loop only polls."""
    release = threading.Event()

    def blocked(_path: Path) -> Policy:
        release.wait(30)
        return policy(source="late.yaml")

    rig = Rig(tmp_path, load=blocked, reload_deadline_seconds=0.2)
    try:
        rig.daemon.reload_requested.set()
        with capture_logs() as logs:
            rig.daemon._poll_reload()  # returns at once: the load runs on its own thread
            assert rig.daemon.pending_load is not None

            def finished() -> bool:
                rig.daemon._poll_reload()
                return rig.daemon.pending_load is None

            until(finished)
        assert rig.daemon.policy.source == "policy.yaml"
        failed = [e for e in logs if e["event"] == "policy_reload_failed"]
        assert len(failed) == 1
        assert "took longer than 0.2 s" in failed[0]["error"]
    finally:
        release.set()


class _DiesOnTheSecondFire(BaseTrigger):  # type: ignore[misc]
    def get_next_fire_time(self, previous: datetime | None, now: datetime) -> datetime:
        if previous is None:
            return now
        raise OverflowError("date value out of range")


def test_a_scheduler_thread_that_dies_ends_the_daemon_with_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    crashed: list[threading.ExceptHookArgs] = []
    monkeypatch.setattr(threading, "excepthook", crashed.append)
    rig = Rig(tmp_path)
    try:
        _started(rig)
        rig.daemon.scheduler.add_job(lambda: None, _DiesOnTheSecondFire(), id="doomed")
        with capture_logs() as logs:
            assert rig.daemon._loop() == ExitCode.SOME_FAILED
        assert [e["event"] for e in logs if e["event"] == "scheduler_died"] == ["scheduler_died"]
        assert crashed[0].exc_type is OverflowError
    finally:
        rig.close()


def test_a_background_call_reports_its_value_error_and_deadline() -> None:
    stop = threading.Event()
    assert Background("t", lambda: 42).wait(stop)
    failing = Background("t", lambda: 1 // 0)
    assert failing.wait(stop)
    assert isinstance(failing.error, ZeroDivisionError)
    release = threading.Event()
    slow = Background("t", lambda: release.wait(30), deadline_seconds=0.05)
    assert not slow.wait(stop)
    assert slow.overdue
    release.set()
