"""Concurrent image deletions (`Engine.removal_workers`), on the fake engine: outcomes in
plan order, the sibling race's spurious 409 told from a real conflict, and stop, a lost
engine and pace ending or narrowing a pooled run as they do a sequential one."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from structlog.testing import capture_logs

from gcd.core.kind import Kind
from gcd.core.records import Image
from gcd.engine.executor import Deadline, Pacer, execute
from gcd.engine.outcomes import OutcomeStatus
from tests.unit.builders import image, image_id
from tests.unit.fake_engine import FakeEngine, conflict, unreachable
from tests.unit.test_executor_fake import docker, id_of, planned, planned_ids, statuses

REMOVED = OutcomeStatus.REMOVED


def pooled(workers: int = 4) -> FakeEngine:
    engine = docker()
    engine.removal_workers = workers
    return engine


def deleting_threads(engine: FakeEngine) -> set[str]:
    """The names of the threads the image removals are sent from, filled as they are."""
    threads: set[str] = set()
    engine.before("remove_image", lambda: threads.add(threading.current_thread().name), times=None)
    return threads


def test_images_are_deleted_on_several_threads_and_reported_in_plan_order() -> None:
    engine = pooled()
    images = [image(f"x/pool:{n}") for n in range(12)]
    plan = planned(engine, *images)
    threads = deleting_threads(engine)
    report = execute(plan, engine)
    assert [id_of(o) for o in report.outcomes] == planned_ids(plan)
    assert statuses(report) == [REMOVED] * 12
    assert engine.images == {}
    assert all(name.startswith("gcd-delete") for name in threads)
    assert len(engine.sent("inspect_image")) == len(engine.sent("remove_image")) == 12


def test_a_409_from_the_sibling_race_for_an_image_the_engine_deleted_is_removed() -> None:
    """Concurrent deletes of siblings race on their shared untagged parent: the engine
    deletes the child and answers 409 (engine-facts §7). Tried again once the others are
    done, the image is gone: gcd's request removed it."""
    engine = pooled()
    images = [image(f"x/sib:{n}") for n in range(4)]
    plan = planned(engine, *images)
    raced = images[1].id
    engine.overlap_removals(4)
    engine.before("remove_image", lambda: engine.drop_image(raced), arg=raced)
    engine.fail(
        "remove_image", conflict("conflict: unable to delete 2cc9 (cannot be forced)"), arg=raced
    )
    report = execute(plan, engine)
    assert statuses(report) == [REMOVED] * 4
    (outcome,) = [o for o in report.outcomes if id_of(o) == raced]
    assert "concurrent deletion's 409" in outcome.detail
    assert outcome.freed_bytes > 0


CHAIN = ("layer-busybox", "layer-token")


def built(tag: str, *layers: str) -> Image:
    """A classic build's image: on a previous step's image (`ParentId`)."""
    return replace(image(tag, layers=layers), parent=image_id(f"step-of-{tag}"))


def estimated(made: Image) -> Image:
    """Its layers unknown: the snapshot's estimate names the image itself."""
    return replace(made, layers=(made.id,))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (built("x/tool:a", *CHAIN, "layer-a"), built("x/tool:b", *CHAIN, "layer-b")),
        (image("x/base:1", layers=CHAIN[:1]), built("x/tool:c", *CHAIN, "layer-c")),
        (built("x/tool:d", *CHAIN, "layer-d"), estimated(built("x/odd:1", "layer-odd"))),
    ],
    ids=["two children of one chain", "its base image and a child", "layers unknown"],
)
def test_images_whose_parent_walks_could_race_are_never_deleted_beside_each_other(
    first: Image, second: Image
) -> None:
    """The engine deletes a child's untagged parents with it, and two parent walks at once
    (or a walk and the parent's own delete) answer 404 or 500 for a child the engine
    deleted (engine-facts §7). Images of another chain, and images without a parent, still
    go beside them."""
    engine = pooled()
    other = built("x/other:1", "layer-other")
    loaded = image("x/loaded:1")
    order = [first.id, other.id, loaded.id, second.id]
    plan = planned(engine, first, other, loaded, second)
    plan = replace(
        plan, decisions=tuple(sorted(plan.decisions, key=lambda d: order.index(d.key.id)))
    )
    beside_first = threading.Barrier(3, timeout=10)  # the other chain and the loaded image
    second_started = threading.Event()
    first_gone_then: list[bool] = []

    def hold_first() -> None:
        beside_first.wait()
        second_started.wait(0.3)  # long enough for a second started beside it to arrive

    def start_second() -> None:
        first_gone_then.append(first.id not in engine.images)
        second_started.set()

    engine.before("inspect_image", hold_first, arg=first.id)
    engine.before("inspect_image", beside_first.wait, arg=other.id)
    engine.before("inspect_image", beside_first.wait, arg=loaded.id)
    engine.before("inspect_image", start_second, arg=second.id)
    report = execute(plan, engine)
    assert statuses(report) == [REMOVED] * 4
    assert first_gone_then == [True]


def test_a_real_conflict_in_a_pool_is_tried_once_more_and_stays_a_conflict() -> None:
    engine = pooled()
    images = [image(f"x/real:{n}") for n in range(4)]
    plan = planned(engine, *images)
    used = images[2].id
    engine.overlap_removals(4)
    engine.before(
        "remove_image", lambda: engine.create_container(used, "ci-job", "exited"), arg=used
    )
    report = execute(plan, engine)
    (outcome,) = [o for o in report.outcomes if id_of(o) == used]
    assert outcome.status is OutcomeStatus.CONFLICT
    assert "tried again after" in outcome.detail
    assert used in engine.images
    assert (used, True) not in engine.sent("remove_image")  # never forced
    assert engine.sent("remove_image").count((used, False)) == 2


def test_a_409_of_a_deletion_that_ran_alone_is_not_tried_again() -> None:
    engine = pooled()
    used = image("x/alone:1")
    plan = planned(engine, used)
    engine.create_container(used.id, "ci-job", "exited")
    (outcome,) = execute(plan, engine).outcomes
    assert outcome.status is OutcomeStatus.CONFLICT
    assert "tried again" not in outcome.detail
    assert engine.sent("remove_image") == [(used.id, False)]


def test_a_stop_lets_the_deletions_in_flight_finish_and_starts_no_more() -> None:
    engine = pooled(workers=3)
    images = [image(f"x/stop:{n}") for n in range(20)]
    plan = planned(engine, *images)
    stop = threading.Event()
    engine.before("remove_image", stop.set)
    report = execute(plan, engine, stop=stop)
    removed = report.count(REMOVED)
    assert 1 <= removed <= 3, statuses(report)  # the first, and at most two beside it
    assert report.count(OutcomeStatus.NOT_ATTEMPTED) == 20 - removed
    assert statuses(report) == [REMOVED] * removed + [OutcomeStatus.NOT_ATTEMPTED] * (20 - removed)
    assert report.aborted is None


def test_an_engine_lost_in_a_pool_ends_the_run_and_the_rest_is_not_attempted() -> None:
    engine = pooled()
    images = [image(f"x/lost:{n}") for n in range(12)]
    plan = planned(engine, *images)
    engine.fail("remove_image", unreachable(), arg=planned_ids(plan)[3])
    report = execute(plan, engine)
    assert report.aborted is not None
    assert "unreachable" in report.aborted
    assert statuses(report)[:4] == [REMOVED] * 3 + [OutcomeStatus.FAILED]  # its delete was sent
    assert report.count(REMOVED) <= 3 + 3  # and those started beside it, at most
    assert report.outcomes[-1].status is OutcomeStatus.NOT_ATTEMPTED
    assert report.orphans == ()


def test_paced_images_are_deleted_one_at_a_time() -> None:
    engine = pooled()
    images = [image(f"x/paced:{n}") for n in range(3)]
    plan = planned(engine, *images)
    threads = deleting_threads(engine)
    pacer = Pacer({Kind.IMAGE: 1000.0}, None, None)
    assert execute(plan, engine, pacer=pacer).count(REMOVED) == 3
    assert threads == {threading.current_thread().name}


def test_an_engine_lost_by_every_deletion_in_flight_is_logged_once() -> None:
    engine = pooled()
    images = [image(f"x/down:{n}") for n in range(8)]
    plan = planned(engine, *images)
    engine.overlap_removals(4)
    engine.fail("remove_image", unreachable(), times=None)
    with capture_logs() as logs:
        report = execute(plan, engine)
    assert report.aborted is not None
    assert statuses(report)[:4] == [OutcomeStatus.FAILED] * 4  # all four were in flight
    assert statuses(report)[4:] == [OutcomeStatus.NOT_ATTEMPTED] * 4
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["engine_lost"]


def test_the_time_budget_in_a_pool_starts_no_more_and_the_ones_in_flight_finish() -> None:
    engine = pooled()
    images = [image(f"x/budget:{n}") for n in range(8)]
    plan = planned(engine, *images)
    engine.overlap_removals(2)  # the first two are in flight together when time is up
    reads = iter([0.0] * 4)  # two starts (a read for the check, one for the pace), then late

    def clock() -> float:
        return next(reads, 100.0)

    deadline = Deadline(10.0, "cycle time budget of 10s used up")
    report = execute(plan, engine, pacer=Pacer({}, deadline, None, clock=clock))
    assert statuses(report) == [REMOVED] * 2 + [OutcomeStatus.NOT_ATTEMPTED] * 6
    assert report.time_up == deadline.detail
    assert all(o.detail == deadline.detail for o in report.outcomes[2:])
