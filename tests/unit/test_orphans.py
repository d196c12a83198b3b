"""The run's last container list (`gcd.engine.orphans`): a container whose create was in
flight while gcd deleted its image is seen by no earlier list, so after a run that removed
images gcd lists the containers once more and reports each one left without its image."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gcd.engine.executor import execute
from gcd.engine.outcomes import OutcomeStatus
from gcd.metrics.definitions import Metrics
from tests.unit.builders import NOW, image
from tests.unit.fake_engine import FakeEngine, server_error
from tests.unit.test_executor_fake import docker, events, only, planned


def _created_after_the_delete(engine: FakeEngine, image_id: str) -> None:
    """The engine registers the container only after the delete went through: the next
    container list (the run's last one) is the first to see it."""
    engine.before(
        "remove_image",
        lambda: engine.before(
            "list_containers", lambda: engine.create_container(image_id, "late", "exited")
        ),
    )


def test_a_container_registered_after_the_delete_is_reported_and_counted() -> None:
    engine = docker()
    single = image("x/one:1")
    plan = planned(engine, single)
    _created_after_the_delete(engine, single.id)
    with capture_logs() as logs:
        report = execute(plan, engine)
    assert only(report).status is OutcomeStatus.REMOVED
    assert events(logs, "error") == ["image_removed_under_container"]
    (event,) = [e for e in logs if e["log_level"] == "error"]
    assert event["containers"] == ["late (exited)"]
    assert [(o.image_id, o.containers) for o in report.orphans] == [(single.id, ("late (exited)",))]
    assert not report.orphan_check_failed
    registry = CollectorRegistry()
    Metrics(registry).record_run(
        plan, report, 0, unit_sizes={}, trigger="once", duration_seconds=1.0, now=NOW
    )
    assert registry.get_sample_value("gcd_images_removed_under_container_total") == 1
    assert registry.get_sample_value("gcd_orphan_checks_failed_total") == 0


def test_a_container_created_just_before_a_forced_delete_is_found_by_the_last_list() -> None:
    """The forced delete of a multi-tag image lifts the stopped-container conflict; a
    container created in the round trip after its check is found once, by the run's last
    list, not by a list after every forced delete."""
    engine = docker()
    multi = image("x/ctr:1", "x/ctr:2")
    plan = planned(engine, multi)
    engine.before("remove_image", lambda: engine.create_container(multi.id, "late", "exited"))
    with capture_logs() as logs:
        report = execute(plan, engine)
    assert only(report).status is OutcomeStatus.REMOVED
    assert events(logs, "error") == ["image_removed_under_container"]
    assert [o.containers for o in report.orphans] == [("late (exited)",)]
    assert engine.sent("list_containers") == [(multi.id,), ()]  # its own, then the last


def test_a_run_that_removed_no_image_lists_nothing_more() -> None:
    engine = docker()
    used = image("x/used:1")
    plan = planned(engine, used)
    engine.before("remove_image", lambda: engine.create_container(used.id, "now", "exited"))
    report = execute(plan, engine)  # single tag, no force: the engine refuses, 409
    assert only(report).status is OutcomeStatus.CONFLICT
    assert engine.sent("list_containers") == []  # the engine's refusal is the check
    assert report.orphans == ()


def test_a_failing_last_list_is_a_warning_and_the_run_stands() -> None:
    engine = docker()
    single = image("x/one:1")
    plan = planned(engine, single)
    engine.before(
        "remove_image", lambda: engine.fail("list_containers", server_error("daemon busy"))
    )
    with capture_logs() as logs:
        report = execute(plan, engine)
    assert only(report).status is OutcomeStatus.REMOVED
    assert events(logs, "warning") == ["orphan_check_failed"]
    assert report.orphans == ()
    assert report.orphan_check_failed
    registry = CollectorRegistry()
    Metrics(registry).record_run(
        plan, report, 0, unit_sizes={}, trigger="once", duration_seconds=1.0, now=NOW
    )
    assert registry.get_sample_value("gcd_orphan_checks_failed_total") == 1
    assert registry.get_sample_value("gcd_images_removed_under_container_total") == 0
