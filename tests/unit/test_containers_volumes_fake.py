"""Containers and volumes on the fake engine (`tests/unit/fake_engine.py`): how the snapshot
reads them (`gcd.engine.kinds.containers`, `gcd.engine.kinds.volumes`, one `system_df`), and
how the executor removes them, with the races between plan and removal run right before one of
gcd's calls. The same on real engines: tests/integration/test_containers_volumes.py."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from gcd.core.plan import Decision, Plan
from gcd.core.records import Container, ContainerState, Snapshot, Volume
from gcd.core.rules import RuleId
from gcd.engine.executor import execute
from gcd.engine.kinds.containers import SHARED_DETAILS
from gcd.engine.layers import LayerStore
from gcd.engine.outcomes import OutcomeStatus, Report
from gcd.engine.snapshot import take_snapshot
from gcd.errors import EngineUnreachableError
from gcd.host.state import State
from tests.unit.fake_engine import ANONYMOUS_LABEL, FakeEngine, server_error, timeout, unreachable

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


@pytest.fixture
def state(tmp_path: Path) -> State:
    return State.load(tmp_path / "state")


def take(engine: FakeEngine, state: State, now: datetime = NOW) -> Snapshot:
    return take_snapshot(engine, state, now, LayerStore())


def engine_with_image(**options: Any) -> tuple[FakeEngine, str]:
    engine = FakeEngine(clock=NOW - timedelta(days=3), **options)
    return engine, engine.add_image("app", "x/app:1").id


def container_named(snapshot: Snapshot, name: str) -> Container:
    (found,) = (c for c in snapshot.containers if c.name == name)
    return found


def volume_named(snapshot: Snapshot, name: str) -> Volume:
    (found,) = (v for v in snapshot.volumes if v.name == name)
    return found


def plan_of(*subjects: Container | Volume) -> Plan:
    """A plan that deletes `subjects` in this order, as evaluate would order them."""
    decisions = tuple(
        Decision(s, RuleId.EXITED if isinstance(s, Container) else RuleId.UNUSED, "", timedelta())
        for s in subjects
    )
    return Plan(NOW, decisions, 0, 0)


def statuses(report: Report) -> list[OutcomeStatus]:
    return [o.status for o in report.outcomes]


def warnings(logs: Iterable[Mapping[str, Any]]) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == "warning"]


class TestReadingContainers:
    def test_an_exited_container_has_its_details_and_its_writable_layer_s_bytes(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(
            image_id,
            "job",
            "exited",
            image="x/app:1",
            labels={"team": "ci"},
            restart_policy="on-failure",
            volumes=("cache",),
            anonymous_volumes=1,
            networks={"ci-net": "n" * 64},
            size_rw=4096,
        )
        snapshot = take(engine, state)
        job = container_named(snapshot, "job")
        assert (job.state, job.image, job.labels) == (ContainerState.EXITED, "x/app:1", made.labels)
        assert job.created == made.created
        assert (job.started_at, job.finished_at) == (made.started_at, made.finished_at)
        assert job.stopped_at == made.finished_at
        assert (job.restart_policy, job.details_known) == ("on-failure", True)
        assert job.volumes == tuple(sorted(made.volumes))
        assert job.networks == ("ci-net", "n" * 64)  # by name and by id
        assert job.size_rw_bytes == 4096
        assert snapshot.unit_sizes[f"container:{made.id}"] == 4096
        assert engine.sent("system_df") == [(False,)]  # once, without the images' part

    def test_a_never_started_container_is_aged_from_its_creation(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "never")
        never = container_named(take(engine, state), "never")
        assert (never.started_at, never.finished_at) == (None, None)
        assert never.stopped_at == made.created
        assert never.details_known

    def test_an_active_container_is_not_inspected(self, state: State) -> None:
        engine, image_id = engine_with_image()
        for name, status in (("run", "running"), ("pause", "paused"), ("rst", "restarting")):
            engine.create_container(image_id, name, status)
        snapshot = take(engine, state)
        assert engine.sent("inspect_container") == []
        assert not any(c.details_known for c in snapshot.containers)

    def test_without_a_containers_section_no_container_is_inspected(self, state: State) -> None:
        """An images-only policy pays nothing per stopped container: none is a candidate."""
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited", size_rw=4096)
        snapshot = take_snapshot(engine, state, NOW, LayerStore(), inspect_containers=False)
        assert engine.sent("inspect_container") == []
        (job,) = snapshot.containers
        assert (job.image_id, job.details_known, job.size_rw_bytes) == (image_id, False, 4096)

    def test_an_inspect_is_made_once_while_the_container_stays_stopped(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        take(engine, state)
        take(engine, state)
        assert engine.sent("inspect_container") == [(made.id,)]
        engine.start(made.id)
        take(engine, state)  # seen running: its cached details are dropped
        assert len(SHARED_DETAILS) == 0
        engine.stop(made.id)
        job = container_named(take(engine, state), "job")
        assert engine.sent("inspect_container") == [(made.id,), (made.id,)]
        assert job.finished_at == made.finished_at

    def test_many_new_stopped_containers_are_inspected_once_each_in_listing_order(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        made = [engine.create_container(image_id, f"job-{n}", "exited") for n in range(12)]
        snapshot = take(engine, state)
        assert [c.name for c in snapshot.containers] == [m.name for m in made]
        assert [c.finished_at for c in snapshot.containers] == [m.finished_at for m in made]
        assert sorted(engine.sent("inspect_container")) == sorted((m.id,) for m in made)

    def test_a_container_gone_before_its_inspect_is_left_out(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        engine.before("inspect_container", lambda: engine.drop_container(made.id))
        assert take(engine, state).containers == ()
        assert len(SHARED_DETAILS) == 0

    def test_a_container_started_before_its_inspect_is_read_as_active(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        engine.before("inspect_container", lambda: engine.start(made.id))
        job = container_named(take(engine, state), "job")
        assert (job.state, job.details_known) == (ContainerState.RUNNING, False)

    def test_a_failed_inspect_keeps_the_container_without_details(self, state: State) -> None:
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited")
        engine.fail("inspect_container", server_error())
        with capture_logs() as logs:
            job = container_named(take(engine, state), "job")
        assert (job.details_known, job.finished_at) == (False, None)
        assert warnings(logs) == ["container_inspect_failed"]
        assert len(SHARED_DETAILS) == 0  # asked again next time

    def test_an_engine_lost_during_an_inspect_ends_the_snapshot(self, state: State) -> None:
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited")
        engine.fail("inspect_container", unreachable())
        with pytest.raises(EngineUnreachableError):
            take(engine, state)

    def test_a_failed_df_takes_container_sizes_from_their_listing_and_says_so(
        self, state: State
    ) -> None:
        """20.10 on a full disk fails the df writing BuildKit's metadata: the containers,
        which a full disk needs removed first, still have their bytes."""
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited", size_rw=4096)
        engine.create_volume("data", size=10)
        engine.fail("system_df", server_error("a disk usage operation is already running"))
        with capture_logs() as logs:
            snapshot = take(engine, state)
        assert container_named(snapshot, "job").size_rw_bytes == 4096
        assert volume_named(snapshot, "data").size_bytes == 0
        assert warnings(logs) == ["system_df_failed"]
        (taken,) = (e for e in logs if e["event"] == "snapshot_taken")
        assert taken["sizes_known"] is False

    def test_when_the_sized_listing_fails_too_container_sizes_are_zero(self, state: State) -> None:
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited", size_rw=4096)
        engine.fail("system_df", server_error("no space left on device"))
        engine.before("list_containers", lambda: engine.fail("list_containers", server_error()))
        with capture_logs() as logs:
            snapshot = take(engine, state)
        assert container_named(snapshot, "job").size_rw_bytes == 0
        assert warnings(logs) == ["system_df_failed", "container_sizes_failed"]


class TestReadingVolumes:
    def test_named_and_anonymous_volumes_with_their_sizes(self, state: State) -> None:
        engine, _ = engine_with_image()
        made = engine.create_volume(
            "data", labels={"gc.keep": "true"}, options={"type": "tmpfs"}, size=123
        )
        anonymous = engine.create_volume(anonymous=True, size=-1)
        snapshot = take(engine, state)
        data = volume_named(snapshot, "data")
        assert (data.anonymous, data.driver, data.size_bytes) == (False, "local", 123)
        assert (data.labels, data.options) == ({"gc.keep": "true"}, {"type": "tmpfs"})
        assert data.created == made.created.replace(microsecond=0)
        assert (data.seen_at, data.last_used) == (NOW, None)
        unnamed = volume_named(snapshot, anonymous.name)
        assert unnamed.anonymous
        assert ANONYMOUS_LABEL in unnamed.labels
        assert unnamed.size_bytes == 0  # -1: the engine does not know
        assert snapshot.unit_sizes["volume:data"] == 123

    def test_an_old_engine_s_anonymous_volume_is_known_by_its_generated_name(
        self, state: State
    ) -> None:
        engine, _ = engine_with_image(anonymous_label=False)
        anonymous = engine.create_volume(anonymous=True)
        engine.create_volume("f" * 63)  # not a generated name
        snapshot = take(engine, state)
        assert volume_named(snapshot, anonymous.name).anonymous
        assert volume_named(snapshot, anonymous.name).labels == {}
        assert not volume_named(snapshot, "f" * 63).anonymous

    def test_first_sightings_stay_uses_move_forward_and_gone_volumes_are_forgotten(
        self, tmp_path: Path
    ) -> None:
        engine, image_id = engine_with_image()
        engine.create_volume("idle")
        engine.create_volume("gone")
        engine.create_container(image_id, "stopped-user", "exited", volumes=("held",))
        first = State.load(tmp_path)
        take(engine, first)
        first.save()
        engine.drop_volume("gone")
        later = State.load(tmp_path)
        snapshot = take(engine, later, LATER)
        later.save()
        assert volume_named(snapshot, "idle").seen_at == NOW
        assert volume_named(snapshot, "idle").last_used is None
        assert volume_named(snapshot, "held").last_used == LATER  # a stopped container counts
        reread = State.load(tmp_path)
        reread.bind(later.scope)  # type: ignore[arg-type]
        assert reread.first_seen("held", kind="volume") == NOW
        assert reread.first_seen("gone", kind="volume") is None
        assert reread.first_seen("held") is None  # never an image row


class TestRemovingContainers:
    def test_an_exited_container_goes_without_force_and_its_volumes_stay(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited", anonymous_volumes=1)
        job = container_named(take(engine, state), "job")
        report = execute(plan_of(job), engine)
        assert statuses(report) == [OutcomeStatus.REMOVED]
        assert engine.sent("remove_container") == [(made.id,)]
        assert made.id not in engine.containers
        assert made.volumes[0] in engine.volumes
        assert len(SHARED_DETAILS) == 0

    def test_a_container_gone_before_its_turn_is_already_gone(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.drop_container(made.id)
        assert statuses(execute(plan_of(job), engine)) == [OutcomeStatus.ALREADY_GONE]
        assert engine.sent("remove_container") == []

    def test_a_container_running_again_is_in_use_and_never_touched(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.start(made.id)
        report = execute(plan_of(job), engine)
        assert statuses(report) == [OutcomeStatus.SKIPPED_IN_USE]
        assert report.outcomes[0].detail == "now running"
        assert engine.sent("remove_container") == []

    def test_a_container_restarted_since_the_plan_is_changed_and_the_cache_learns_it(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.start(made.id)
        engine.stop(made.id)
        report = execute(plan_of(job), engine)
        assert statuses(report) == [OutcomeStatus.SKIPPED_CHANGED]
        assert "started again since the plan" in report.outcomes[0].detail
        assert engine.sent("remove_container") == []
        calls = len(engine.sent("inspect_container"))
        fresh = container_named(take(engine, state), "job")
        assert len(engine.sent("inspect_container")) == calls  # refreshed by the executor
        assert fresh.finished_at == made.finished_at != job.finished_at

    def test_a_container_started_after_the_check_is_a_conflict_never_forced(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.before("remove_container", lambda: engine.start(made.id))
        report = execute(plan_of(job), engine)
        assert statuses(report) == [OutcomeStatus.CONFLICT]
        assert report.outcomes[0].detail == (
            f"You cannot remove a running container {made.id}. Stop the container before "
            "attempting removal or force remove"
        )
        assert engine.sent("remove_container") == [(made.id,)]
        assert engine.containers[made.id].state == "running"

    def test_podman_s_conflict_text_is_a_conflict_too(self, state: State) -> None:
        engine, image_id = engine_with_image(podman=True)
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.before("remove_container", lambda: engine.start(made.id))
        assert statuses(execute(plan_of(job), engine)) == [OutcomeStatus.CONFLICT]

    @pytest.mark.parametrize(
        ("fault", "drop", "expected"),
        [
            (server_error(), True, OutcomeStatus.ALREADY_GONE),
            (server_error(), False, OutcomeStatus.FAILED),
            (timeout(done=True), False, OutcomeStatus.REMOVED),
            (timeout(), False, OutcomeStatus.TIMEOUT),
        ],
    )
    def test_a_500_or_a_timeout_is_judged_by_a_fresh_inspect(
        self, state: State, fault: Any, drop: bool, expected: OutcomeStatus
    ) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited")
        job = container_named(take(engine, state), "job")
        engine.fail("remove_container", fault)
        if drop:
            engine.before("remove_container", lambda: engine.drop_container(made.id))
        assert statuses(execute(plan_of(job), engine)) == [expected]

    def test_a_lost_engine_ends_the_run(self, state: State) -> None:
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "a", "exited")
        engine.create_container(image_id, "b", "exited")
        snapshot = take(engine, state)
        engine.fail("remove_container", unreachable())
        report = execute(plan_of(*snapshot.containers), engine)
        assert statuses(report) == [OutcomeStatus.FAILED, OutcomeStatus.NOT_ATTEMPTED]
        assert report.aborted is not None


class TestRemovingVolumes:
    def test_an_unmounted_volume_goes_without_force(self, state: State) -> None:
        engine, _ = engine_with_image()
        engine.create_volume("idle")
        report = execute(plan_of(volume_named(take(engine, state), "idle")), engine)
        assert statuses(report) == [OutcomeStatus.REMOVED]
        assert engine.sent("remove_volume") == [("idle",)]
        assert "idle" not in engine.volumes

    def test_a_volume_a_stopped_container_mounts_is_in_use(self, state: State) -> None:
        engine, image_id = engine_with_image()
        engine.create_container(image_id, "job", "exited", volumes=("held",))
        report = execute(plan_of(volume_named(take(engine, state), "held")), engine)
        assert statuses(report) == [OutcomeStatus.SKIPPED_IN_USE]
        assert report.outcomes[0].detail == "now mounted by job (exited)"
        assert engine.sent("remove_volume") == []

    def test_a_container_created_after_the_check_makes_the_engine_refuse(
        self, state: State
    ) -> None:
        engine, image_id = engine_with_image()
        engine.create_volume("idle")
        idle = volume_named(take(engine, state), "idle")
        made: list[str] = []
        engine.before(
            "remove_volume",
            lambda: made.append(engine.create_container(image_id, "late", volumes=("idle",)).id),
        )
        report = execute(plan_of(idle), engine)
        assert statuses(report) == [OutcomeStatus.CONFLICT]
        assert report.outcomes[0].detail == f"remove idle: volume is in use - [{made[0]}]"

    def test_a_volume_gone_or_made_anew_under_its_name_is_left_alone(self, state: State) -> None:
        engine, _ = engine_with_image()
        engine.create_volume("gone")
        engine.create_volume("anew")
        snapshot = take(engine, state)
        engine.drop_volume("gone")
        engine.drop_volume("anew")
        engine.tick()
        engine.create_volume("anew")
        plan = plan_of(volume_named(snapshot, "gone"), volume_named(snapshot, "anew"))
        report = execute(plan, engine)
        assert statuses(report) == [OutcomeStatus.ALREADY_GONE, OutcomeStatus.SKIPPED_CHANGED]
        assert engine.sent("remove_volume") == []

    def test_a_container_and_its_anonymous_volume_go_in_one_run(self, state: State) -> None:
        engine, image_id = engine_with_image()
        made = engine.create_container(image_id, "job", "exited", anonymous_volumes=1)
        snapshot = take(engine, state)
        plan = plan_of(container_named(snapshot, "job"), volume_named(snapshot, made.volumes[0]))
        report = execute(plan, engine)
        assert statuses(report) == [OutcomeStatus.REMOVED, OutcomeStatus.REMOVED]
        assert engine.volumes == {}
