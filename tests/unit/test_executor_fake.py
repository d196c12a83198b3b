"""The executor's branches on the fake engine (`tests/unit/fake_engine.py`): every guard, every
answer of the engine, and the races between plan and delete, made deterministic by running
another client's move right before one of gcd's calls. The same races on real engines are in
tests/integration/test_executor.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from structlog.testing import capture_logs

from gcd.core.evaluate import evaluate
from gcd.core.plan import Plan
from gcd.core.records import Image
from gcd.engine.executor import execute
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.errors import RunRefusedError
from tests.unit.builders import NOW, image, policy, snapshot
from tests.unit.fake_engine import FakeEngine, server_error, timeout, unreachable

REMOVED = OutcomeStatus.REMOVED


def id_of(outcome: Outcome) -> str:
    """The outcome's object id (one place to follow the outcome's shape)."""
    return outcome.key.id


def docker() -> FakeEngine:
    return FakeEngine(clock=NOW)


def podman() -> FakeEngine:
    return FakeEngine(podman=True, clock=NOW)


def planned(engine: FakeEngine, *images: Image) -> Plan:
    """Put `images` on the engine as loaded images, and plan to delete every one."""
    for planned_image in images:
        engine.add_image(
            planned_image.id,
            *(tag.familiar for tag in planned_image.tags),
            image_id=planned_image.id,
            digests=tuple(d.familiar for d in planned_image.digests),
        )
    plan = evaluate(snapshot(*images), policy(min_age=timedelta(0)), NOW)
    assert sorted(planned_ids(plan)) == sorted(i.id for i in images)
    return plan


def planned_ids(plan: Plan) -> list[str]:
    """The planned deletions' ids, in the order the executor goes."""
    return [d.key.id for d in plan.deletions]


def only(report: Report) -> Outcome:
    (outcome,) = report.outcomes
    return outcome


def statuses(report: Report) -> list[OutcomeStatus]:
    return [o.status for o in report.outcomes]


def events(logs: Iterable[Mapping[str, Any]], level: str) -> list[str]:
    return [e["event"] for e in logs if e["log_level"] == level]


class TestDeletion:
    def test_an_unused_single_tag_image_is_deleted_by_id_without_force(self) -> None:
        engine = docker()
        doomed = image("x/app:1")
        seen: list[Outcome] = []
        with capture_logs() as logs:
            report = execute(planned(engine, doomed), engine, on_outcome=seen.append)
        assert engine.sent("remove_image") == [(doomed.id, False)]
        assert only(report).status is REMOVED
        assert only(report).freed_bytes == 100
        assert doomed.id not in engine.images
        assert seen == list(report.outcomes)
        (event,) = logs
        assert (event["event"], event["log_level"], event["rule"]) == (
            "image_removed",
            "info",
            "delete.unkept",
        )
        assert event["references"] == ["x/app:1"]

    def test_a_dangling_image_is_deleted_by_id_without_force(self) -> None:
        engine = docker()
        dangling = image(seed="dangling")
        report = execute(planned(engine, dangling), engine)
        assert only(report).status is REMOVED
        assert engine.sent("remove_image") == [(dangling.id, False)]

    def test_a_multi_tag_image_goes_in_one_forced_delete_by_id_and_no_request_names_a_tag(
        self,
    ) -> None:
        engine = docker()
        multi = image("x/multi:1", "x/multi:2", "localhost:5000/x/other:1")
        with capture_logs() as logs:
            report = execute(planned(engine, multi), engine)
        assert only(report).status is REMOVED, only(report).detail
        assert engine.sent("remove_image") == [(multi.id, True)]
        assert engine.sent("untag_image_by_id") == []
        assert engine.images == {}
        assert events(logs, "error") == []

    def test_a_digest_reference_of_the_plan_is_no_surprise_in_the_answer(self) -> None:
        engine = docker()
        pulled = image("x/app:1", digests=("x/app@sha256:" + "d" * 64,))
        with capture_logs() as logs:
            report = execute(planned(engine, pulled), engine)
        assert only(report).status is REMOVED
        assert events(logs, "error") == []

    def test_a_refused_plan_raises_before_any_request(self) -> None:
        engine = docker()
        plan = replace(planned(engine, image("x/app:1")), refusal="deletes 1 of 1 images")
        with pytest.raises(RunRefusedError, match="1 of 1"):
            execute(plan, engine)
        assert engine.calls == []


class TestFreshChecks:
    """Right before each image: re-inspect it, compare with the plan, look for containers."""

    def test_an_image_gone_before_its_turn_is_already_gone(self) -> None:
        engine = docker()
        gone = image("x/gone:1")
        plan = planned(engine, gone)
        engine.before("inspect_image", lambda: engine.drop_image(gone.id))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.ALREADY_GONE
        assert report.failed == ()
        assert engine.sent("remove_image") == []

    @pytest.mark.parametrize("added", ["x/app:extra", "Not/A:Reference"])
    def test_a_tag_added_since_the_plan_skips_the_image_as_changed(self, added: str) -> None:
        engine = docker()
        target = image("x/app:1")
        plan = planned(engine, target)
        engine.before("inspect_image", lambda: engine.tag(target.id, added))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.SKIPPED_CHANGED
        assert "tags changed since the plan" in only(report).detail
        assert engine.sent("remove_image") == []
        assert target.id in engine.images

    def test_a_tag_moved_to_a_new_image_skips_the_old_one_and_leaves_the_new_one_whole(
        self,
    ) -> None:
        engine = docker()
        old = image("x/app:latest")
        plan = planned(engine, old)
        engine.before("inspect_image", lambda: engine.add_image("rebuilt", "x/app:latest"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.SKIPPED_CHANGED
        assert "now no tags" in only(report).detail
        (new,) = [i for i in engine.images.values() if i.id != old.id]
        assert new.tags == ["docker.io/x/app:latest"]
        assert engine.images[old.id].tags == []

    def test_an_image_tagged_again_since_the_plan_is_skipped_by_its_last_tag_time(
        self,
    ) -> None:
        engine = docker()
        target = image("x/retag:1")
        plan = planned(engine, target)
        engine.before("inspect_image", lambda: engine.tag(target.id, "x/retag:1"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.SKIPPED_CHANGED
        assert "tagged again at 2026-06-01T12:00:01+00:00" in only(report).detail
        assert target.id in engine.images

    def test_an_image_tagged_before_the_plan_is_deleted(self) -> None:
        engine = docker()
        target = image("x/app:1")
        plan = planned(engine, target)
        engine.images[target.id].last_tag_time = NOW - timedelta(hours=1)
        assert only(execute(plan, engine)).status is REMOVED

    @pytest.mark.parametrize("state", ["created", "running", "paused", "exited", "dead"])
    def test_a_container_in_any_state_created_since_the_plan_keeps_the_image(
        self, state: str
    ) -> None:
        """A single-tag image: the engine's own refusal of the delete without force (409,
        `conflict`) is the check, and no container list is read; a multi-tag one: the
        containers of the image, read before the forced delete, which is then never sent."""
        engine = docker()
        target, multi = image("x/used:1"), image("x/multi:1", "x/multi:2")
        plan = planned(engine, target, multi)

        def user_of(image_id: str) -> Callable[[], object]:
            return lambda: engine.create_container(image_id, f"ci-{image_id[7:11]}", state)

        for planned_image in (target, multi):
            engine.before("inspect_image", user_of(planned_image.id), arg=planned_image.id)
        report = execute(plan, engine)
        single, several = report.outcomes
        assert single.status is OutcomeStatus.CONFLICT
        assert several.status is OutcomeStatus.SKIPPED_IN_USE
        kind = "running" if state in ("running", "paused") else "stopped"
        assert f"image is being used by {kind} container" in single.detail
        assert several.detail == f"now used by ci-{multi.id[7:11]} ({state})"
        assert engine.sent("remove_image") == [(target.id, False)]
        assert engine.sent("list_containers")[0] == (multi.id,)
        assert engine.images[target.id].tags == ["docker.io/x/used:1"]

    def test_a_container_of_another_image_does_not_hold_the_planned_one(self) -> None:
        engine = docker()
        target, other = image("x/app:1"), image("x/other:1")
        plan = planned(engine, target)
        engine.add_image("other", "x/other:1", image_id=other.id)
        engine.create_container(other.id, "runs-other", "running")
        assert only(execute(plan, engine)).status is REMOVED


class TestTheLastMoment:
    """Between the fresh checks and the delete: the engine is the final judge."""

    def test_a_container_started_then_is_a_conflict_even_for_a_forced_delete(self) -> None:
        engine = docker()
        multi = image("x/m:1", "x/m:2")
        plan = planned(engine, multi)
        engine.before("remove_image", lambda: engine.create_container(multi.id, "late", "running"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.CONFLICT
        assert "(cannot be forced) - image is being used by running container" in (
            only(report).detail
        )
        assert engine.sent("remove_image") == [(multi.id, True)]
        assert engine.images[multi.id].tags == ["docker.io/x/m:1", "docker.io/x/m:2"]

    def test_a_stopped_container_created_then_makes_a_single_tag_delete_a_conflict(
        self,
    ) -> None:
        engine = docker()
        single = image("x/s:1")
        plan = planned(engine, single)
        engine.before("remove_image", lambda: engine.create_container(single.id, "late"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.CONFLICT
        assert "(must be forced) - image is being used by stopped container" in (
            only(report).detail
        )
        assert single.id in engine.images

    def test_a_stopped_container_created_then_under_a_forced_delete_is_logged_as_an_error(
        self,
    ) -> None:
        engine = docker()
        multi = image("x/ctr:1", "x/ctr:2")
        plan = planned(engine, multi)
        engine.before("remove_image", lambda: engine.create_container(multi.id, "late", "exited"))
        with capture_logs() as logs:
            report = execute(plan, engine)
        assert only(report).status is REMOVED
        assert [(o.image_id, o.containers) for o in report.orphans] == [
            (multi.id, ("late (exited)",))
        ]  # found by the run's last container list
        assert multi.id not in engine.images
        assert events(logs, "error") == ["image_removed_under_container"]
        (event,) = [e for e in logs if e["log_level"] == "error"]
        assert event["containers"] == ["late (exited)"]

    def test_a_tag_put_on_the_planned_image_then_goes_with_it_and_is_logged_as_an_error(
        self,
    ) -> None:
        engine = docker()
        multi = image("x/late:1", "x/late:2")
        plan = planned(engine, multi)
        engine.before("remove_image", lambda: engine.tag(multi.id, "x/promoted:prod"))
        with capture_logs() as logs:
            report = execute(plan, engine)
        assert only(report).status is REMOVED
        assert "also untagged x/promoted:prod" in only(report).detail
        (event,) = [e for e in logs if e["log_level"] == "error"]
        assert event["event"] == "image_removed_with_unplanned_references"
        assert event["references"] == ["x/promoted:prod"]

    def test_a_name_moved_to_a_new_image_then_leaves_the_new_image_whole(self) -> None:
        engine = docker()
        multi = image("x/mv:main", "x/mv:sha-1")
        plan = planned(engine, multi)
        engine.before("remove_image", lambda: engine.add_image("new", "x/mv:sha-1"))
        with capture_logs() as logs:
            report = execute(plan, engine)
        assert only(report).status is REMOVED
        (new,) = engine.images.values()
        assert new.tags == ["docker.io/x/mv:sha-1"]
        assert events(logs, "error") == []


class TestAnswers:
    """What the engine answers to the delete, and what a fresh inspect then says."""

    def test_a_404_is_already_gone(self) -> None:
        engine = docker()
        target = image("x/app:1")
        plan = planned(engine, target)
        engine.before("remove_image", lambda: engine.drop_image(target.id))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.ALREADY_GONE
        assert "No such image" in only(report).detail
        assert only(report).freed_bytes == 0

    def test_a_500_after_a_concurrent_delete_is_already_gone(self) -> None:
        engine = docker()
        target = image("x/app:1")
        plan = planned(engine, target)
        engine.before("remove_image", lambda: engine.drop_image(target.id))
        engine.fail("remove_image", server_error(f"unrecognized image ID {target.id}"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.ALREADY_GONE
        assert only(report).detail.endswith("re-inspected: gone")

    def test_a_500_whose_image_is_still_there_failed(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/app:1"))
        engine.fail("remove_image", server_error("no space left on device"))
        with capture_logs() as logs:
            report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.FAILED
        assert report.failed == report.outcomes
        assert only(report).detail == "no space left on device"
        assert [(e["event"], e["log_level"]) for e in logs] == [("image_skipped", "warning")]

    def test_a_500_whose_re_inspect_fails_too_failed_and_says_so(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/app:1"))
        engine.fail("remove_image", server_error("no space left on device"))
        engine.before("remove_image", lambda: engine.fail("inspect_image", server_error("boom")))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.FAILED
        assert "re-inspect failed" in only(report).detail

    def test_a_timeout_whose_delete_went_through_counts_as_removed(self) -> None:
        engine = docker()
        target = image("x/app:1")
        plan = planned(engine, target)
        engine.fail("remove_image", timeout(done=True))
        report = execute(plan, engine)
        assert only(report).status is REMOVED
        assert "re-inspected" in only(report).detail
        assert only(report).freed_bytes == 100
        assert target.id not in engine.images

    def test_a_timeout_whose_image_is_still_there_is_a_timeout(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/app:1"))
        engine.fail("remove_image", timeout())
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.TIMEOUT
        assert report.failed == report.outcomes
        assert "the image is still there" in only(report).detail


class TestTheRun:
    def test_an_engine_error_fails_that_image_and_the_run_goes_on(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/a:1"), image("x/b:1"))
        engine.fail("inspect_image", server_error("boom"), arg=planned_ids(plan)[0])
        report = execute(plan, engine)
        assert statuses(report) == [OutcomeStatus.FAILED, REMOVED]
        assert "boom" in report.outcomes[0].detail
        assert report.aborted is None

    def test_an_engine_lost_before_an_image_ends_the_run_with_the_rest_not_attempted(
        self,
    ) -> None:
        engine = docker()
        plan = planned(engine, image("x/a:1"), image("x/b:1"), image("x/c:1"))
        first, second, third = planned_ids(plan)
        engine.fail("inspect_image", unreachable(), arg=second)
        with capture_logs() as logs:
            report = execute(plan, engine)
        assert statuses(report) == [
            REMOVED,
            OutcomeStatus.NOT_ATTEMPTED,
            OutcomeStatus.NOT_ATTEMPTED,
        ]
        assert [id_of(o) for o in report.outcomes] == [first, second, third]
        assert report.aborted is not None
        assert "unreachable" in report.aborted
        assert events(logs, "error") == ["engine_lost"]
        assert third not in {args[0] for _, args in engine.calls if args}

    def test_an_engine_lost_during_a_delete_fails_the_image_it_was_deleting(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/a:1"), image("x/b:1"))
        engine.fail("remove_image", unreachable())
        report = execute(plan, engine)
        assert statuses(report) == [OutcomeStatus.FAILED, OutcomeStatus.NOT_ATTEMPTED]
        assert report.aborted is not None

    def test_a_stop_during_an_image_finishes_it_and_attempts_no_more(self) -> None:
        engine = docker()
        plan = planned(engine, image("x/a:1"), image("x/b:1"), image("x/c:1"))
        stop = threading.Event()
        engine.before("inspect_image", stop.set)
        report = execute(plan, engine, stop=stop)
        assert statuses(report) == [
            REMOVED,
            OutcomeStatus.NOT_ATTEMPTED,
            OutcomeStatus.NOT_ATTEMPTED,
        ]
        assert report.aborted is None
        assert len(engine.sent("inspect_image")) == 1


class TestPodman:
    """Podman's force would remove the image's containers: gcd never sends it there."""

    def test_a_multi_tag_image_is_untagged_from_its_id_then_deleted_without_force(self) -> None:
        engine = podman()
        multi = image("x/multi:1", "x/multi:2", "localhost:5000/x/other:1")
        report = execute(planned(engine, multi), engine)
        assert only(report).status is REMOVED, only(report).detail
        assert engine.sent("untag_image_by_id") == [
            (multi.id, "docker.io/x/multi", "2"),
            (multi.id, "localhost:5000/x/other", "1"),
        ]
        assert engine.sent("remove_image") == [(multi.id, False)]
        assert "untagged docker.io/x/multi:2, localhost:5000/x/other:1" in only(report).detail
        assert engine.images == {}

    def test_a_single_tag_image_is_deleted_by_id_without_force(self) -> None:
        engine = podman()
        single = image("x/app:1")
        assert only(execute(planned(engine, single), engine)).status is REMOVED
        assert engine.sent("remove_image") == [(single.id, False)]

    def test_a_name_that_left_the_image_is_not_known_to_it_and_the_image_is_skipped(
        self,
    ) -> None:
        engine = podman()
        multi = image("x/mv:main", "x/mv:sha-1")
        plan = planned(engine, multi)
        engine.before("untag_image_by_id", lambda: engine.add_image("new", "x/mv:sha-1"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.SKIPPED_CHANGED
        assert "tag not known" in only(report).detail
        assert "keeps docker.io/x/mv:main, docker.io/x/mv:sha-1" in only(report).detail
        assert engine.images[multi.id].tags == ["docker.io/x/mv:main"]
        (new,) = [i for i in engine.images.values() if i.id != multi.id]
        assert new.tags == ["docker.io/x/mv:sha-1"]

    def test_a_tag_put_on_the_image_in_the_last_moment_makes_the_delete_a_conflict(
        self,
    ) -> None:
        engine = podman()
        multi = image("x/late:1", "x/late:2")
        plan = planned(engine, multi)
        engine.before("remove_image", lambda: engine.tag(multi.id, "x/promoted:prod"))
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.CONFLICT
        assert "please force removal" in only(report).detail
        assert "docker.io/x/promoted:prod" in engine.images[multi.id].tags

    def test_a_container_created_in_the_last_moment_is_a_conflict_and_keeps_its_container(
        self,
    ) -> None:
        engine = podman()
        multi = image("x/ctr:1", "x/ctr:2")
        plan = planned(engine, multi)
        late: list[str] = []
        engine.before(
            "remove_image", lambda: late.append(engine.create_container(multi.id, "late").id)
        )
        report = execute(plan, engine)
        assert only(report).status is OutcomeStatus.CONFLICT
        assert "is in use" in only(report).detail
        assert engine.images[multi.id].tags == ["docker.io/x/ctr:1"]
        assert list(engine.containers) == late
        assert all(force is False for _, force in engine.sent("remove_image"))

    @pytest.mark.parametrize(
        ("fault", "status"),
        [(timeout(), OutcomeStatus.TIMEOUT), (server_error("boom"), OutcomeStatus.FAILED)],
    )
    def test_an_untag_that_does_not_answer_keeps_the_image_with_its_names(
        self, fault: Any, status: OutcomeStatus
    ) -> None:
        engine = podman()
        multi = image("x/u:1", "x/u:2")
        plan = planned(engine, multi)
        engine.fail("untag_image_by_id", fault)
        report = execute(plan, engine)
        assert only(report).status is status
        assert engine.sent("remove_image") == []
        assert len(engine.images[multi.id].tags) == 2
