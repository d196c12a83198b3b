"""`safety.pace` and the cycle's time budget in the executor, on the fake engine with an
injected clock: no real sleeping, and the waits are exactly those asked for."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gcd.config.loader import load_policy
from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.plan import Plan
from gcd.core.policy import Policy, Schedule
from gcd.core.safety import Safety
from gcd.cycle import deadline_of
from gcd.engine.executor import Deadline, Pacer, execute
from gcd.engine.outcomes import OutcomeStatus
from gcd.errors import PolicyError
from gcd.jobs import build_triggers
from tests.unit.builders import NOW, image, policy, snapshot
from tests.unit.daemon_support import Rig
from tests.unit.daemon_support import policy as daemon_policy
from tests.unit.fake_engine import FakeEngine

REMOVED, NOT_ATTEMPTED = OutcomeStatus.REMOVED, OutcomeStatus.NOT_ATTEMPTED


class Clock:
    """A monotonic clock that only `wait` moves, and that each engine call moves by `step`."""

    def __init__(self, step: float = 0.0) -> None:
        self.now = 100.0
        self.step = step
        self.waits: list[float] = []
        self.stop_after: int | None = None
        self.stop = threading.Event()

    def __call__(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.waits.append(seconds)
        self.now += seconds
        if self.stop_after is not None and len(self.waits) >= self.stop_after:
            self.stop.set()  # as if SIGTERM came during the wait
        return self.stop.is_set()


def planned(count: int) -> tuple[FakeEngine, Plan]:
    engine = FakeEngine(clock=NOW)
    images = [image(f"app{n}:1") for n in range(count)]
    for planned_image in images:
        engine.add_image(
            planned_image.id, planned_image.tags[0].familiar, image_id=planned_image.id
        )
    return engine, evaluate(snapshot(*images), policy(min_age=timedelta(0)), NOW)


def test_pace_waits_between_removals_of_a_kind() -> None:
    engine, plan = planned(5)
    clock = Clock()
    pacer = Pacer({Kind.IMAGE: 4.0}, None, None, clock=clock, wait=clock.wait)
    report = execute(plan, engine, pacer=pacer)
    assert report.count(REMOVED) == 5
    assert clock.waits == pytest.approx([0.25] * 4)  # none before the first
    assert report.time_up is None


def test_an_unpaced_kind_never_waits() -> None:
    engine, plan = planned(3)
    clock = Clock()
    pacer = Pacer({Kind.BUILD_CACHE: 1.0}, None, None, clock=clock, wait=clock.wait)
    assert execute(plan, engine, pacer=pacer).count(REMOVED) == 3
    assert clock.waits == []


def test_time_already_spent_counts_towards_the_gap() -> None:
    clock = Clock()
    pacer = Pacer({Kind.IMAGE: 2.0}, None, None, clock=clock, wait=clock.wait)
    assert pacer.ready(Kind.IMAGE) is None
    clock.now += 0.3  # the removal itself took 0.3 s
    assert pacer.ready(Kind.IMAGE) is None
    assert clock.waits == pytest.approx([0.2])


def test_past_the_deadline_the_rest_is_left_for_the_next_cycle() -> None:
    engine, plan = planned(6)
    clock = Clock()
    deadline = Deadline(clock.now + 1.1, "cycle time budget of 1s used up")
    pacer = Pacer({Kind.IMAGE: 2.0}, deadline, None, clock=clock, wait=clock.wait)
    with capture_logs() as logs:
        report = execute(plan, engine, pacer=pacer)
    statuses = [o.status for o in report.outcomes]
    # starts at 0, 0.5, 1.0; the next would start at 1.5, past 1.1: not waited for
    assert statuses == [REMOVED] * 3 + [NOT_ATTEMPTED] * 3
    assert clock.waits == pytest.approx([0.5, 0.5])
    assert report.time_up == "cycle time budget of 1s used up; left for the next cycle"
    assert {o.detail for o in report.outcomes[3:]} == {report.time_up}
    assert report.aborted is None
    assert len(engine.images) == 3  # nothing half-done: the others are all still there
    [event] = [e for e in logs if e["event"] == "cycle_time_up"]
    assert (event["done"], event["left_for_next"]) == (3, 3)


def test_a_slow_engine_runs_into_the_deadline_without_pacing() -> None:
    engine, plan = planned(4)
    clock = Clock()
    deadline = Deadline(clock.now + 1.0, "the next scheduled cycle is due")
    pacer = Pacer({}, deadline, None, clock=clock, wait=clock.wait)
    engine.before("remove_image", lambda: setattr(clock, "now", clock.now + 0.6), times=None)
    report = execute(plan, engine, pacer=pacer)
    assert [o.status for o in report.outcomes] == [REMOVED, REMOVED, NOT_ATTEMPTED, NOT_ATTEMPTED]
    assert report.time_up == "the next scheduled cycle is due; left for the next cycle"


def test_a_stop_during_a_pace_wait_ends_the_run_as_a_stop() -> None:
    engine, plan = planned(4)
    clock = Clock()
    clock.stop_after = 1
    stop = clock.stop
    pacer = Pacer({Kind.IMAGE: 1.0}, None, stop, clock=clock, wait=clock.wait)
    report = execute(plan, engine, stop=stop, pacer=pacer)
    assert [o.status for o in report.outcomes] == [REMOVED] + [NOT_ATTEMPTED] * 3
    assert report.outcomes[1].detail == "stop requested; not attempted"
    assert report.time_up is None


def test_the_default_wait_is_the_stop_event() -> None:
    stop = threading.Event()
    stop.set()
    pacer = Pacer({Kind.IMAGE: 0.01}, None, stop)
    assert pacer.ready(Kind.IMAGE) is None
    assert pacer.ready(Kind.IMAGE) == "stop requested; not attempted"  # no 100 s sleep


class TestDeadlineOf:
    def test_none_without_a_budget(self) -> None:
        assert deadline_of(policy(), 10.0, 50.0) is None  # unpaced: the next fire does not cut

    def test_the_budget_from_the_start(self) -> None:
        chosen = Policy(safety=Safety(max_cycle_duration=timedelta(seconds=30)))
        found = deadline_of(chosen, 10.0, None)
        assert found is not None
        assert found.at == 40.0
        assert found.reason == "cycle time budget of 30s (safety.max_cycle_duration) used up"

    def test_paced_the_earlier_of_budget_and_next_fire(self) -> None:
        safety = Safety(max_cycle_duration=timedelta(seconds=30), pace={Kind.IMAGE: 1.0})
        chosen = Policy(safety=safety)
        soon = deadline_of(chosen, 10.0, 25.0)
        assert soon is not None
        assert (soon.at, soon.reason) == (25.0, "the next scheduled cycle is due")
        later = deadline_of(chosen, 10.0, 90.0)
        assert later is not None
        assert later.at == 40.0


class TestPolicy:
    def write(self, tmp_path: Path, body: str) -> Path:
        path = tmp_path / "policy.yaml"
        path.write_text("version: 1\nsafety:\n" + body)
        return path

    def test_one_number_paces_every_kind(self, tmp_path: Path) -> None:
        loaded = load_policy(self.write(tmp_path, "  pace: 4\n"))
        assert loaded.safety.pace == dict.fromkeys(Kind, 4.0)
        assert loaded.safety.max_cycle_duration is None
        assert loaded.safety.quiet_for == timedelta(minutes=10)

    def test_per_kind_pace_and_the_budget(self, tmp_path: Path) -> None:
        body = "  pace: {images: 5, build_cache: 0.5}\n  max_cycle_duration: 20m\n  quiet_for: 0s\n"
        loaded = load_policy(self.write(tmp_path, body))
        assert loaded.safety.pace == {Kind.IMAGE: 5.0, Kind.BUILD_CACHE: 0.5}
        assert loaded.safety.max_cycle_duration == timedelta(minutes=20)
        assert loaded.safety.quiet_for == timedelta(0)

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            (
                "  pace: 0\n",
                "safety.pace: expected a number of removals per second from 0.01 to 1000",
            ),
            ("  pace: 1001\n", "from 0.01 to 1000, such as 5, got 1001"),
            ("  pace: true\n", "got true"),
            ("  pace: {image: 3}\n", "safety.pace.image: unknown key; did you mean `images`?"),
            ("  pace: {images: 0.001}\n", "safety.pace.images: expected a number"),
            ("  max_cycle_duration: 0s\n", "expected a duration from 1s to 1d"),
            ("  max_cycle_duration: 2d\n", "expected a duration from 1s to 1d"),
            ("  quiet_for: 25h\n", "safety.quiet_for: expected a duration of at most 1d"),
        ],
    )
    def test_out_of_range_values_are_refused(self, tmp_path: Path, body: str, message: str) -> None:
        with pytest.raises(PolicyError, match=message.replace("?", r"\?")):
            load_policy(self.write(tmp_path, body))


def test_the_daemon_passes_the_cycle_jobs_next_fire_time_as_the_deadline(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, daemon_policy(Schedule(every=None, cron="0 * * * *")))
    try:
        assert rig.daemon._next_cycle() is None  # no cycle job yet
        rig.daemon._start_scheduler(build_triggers(rig.daemon.policy))
        job = rig.daemon.scheduler.get_job("cycle")
        due_in = (job.next_run_time - datetime.now(UTC)).total_seconds()
        found = rig.daemon._next_cycle()
        assert found is not None
        # the same instant on the monotonic clock (the two clocks read a moment apart)
        assert abs((found - time.monotonic()) - due_in) < 60
        assert 0 < due_in <= 3600
    finally:
        rig.close()
