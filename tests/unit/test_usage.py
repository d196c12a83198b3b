"""The usage tracker's handling of one container event, on the fake engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gcd.engine.kinds.containers import SHARED_DETAILS, ContainerDetails
from gcd.engine.usage import UsageTracker
from gcd.host.state import Scope
from tests.unit.fake_engine import FakeEngine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
SCOPE = Scope("engine-id", "overlay2")


def event(action: str, container_id: str) -> dict[str, object]:
    return {
        "Type": "container",
        "Action": action,
        "Actor": {"ID": container_id},
        "timeNano": int(NOW.timestamp() * 1e9),
    }


def tracker(engine: FakeEngine) -> tuple[UsageTracker, list[tuple[str, datetime]]]:
    uses: list[tuple[str, datetime]] = []
    return UsageTracker(engine, lambda _scope, image, when: uses.append((image, when))), uses


def test_a_start_is_a_use_of_the_container_s_image_and_drops_its_cached_details() -> None:
    engine = FakeEngine(clock=NOW - timedelta(days=3))
    image_id = engine.add_image("app", "x/app:1").id
    job = engine.create_container(image_id, "job", "exited")
    SHARED_DETAILS.put(
        job.id, ContainerDetails(NOW - timedelta(days=2), NOW - timedelta(days=1), "no")
    )
    follow, uses = tracker(engine)

    follow.handle(event("start", job.id), SCOPE)

    assert uses == [(image_id, NOW)]
    assert SHARED_DETAILS.get(job.id) is None, "its exit time is about to change"


def test_a_create_is_a_use_and_leaves_cached_details_alone() -> None:
    engine = FakeEngine(clock=NOW - timedelta(days=3))
    image_id = engine.add_image("app", "x/app:1").id
    job = engine.create_container(image_id, "job", "exited")
    details = ContainerDetails(None, None, "no")
    SHARED_DETAILS.put(job.id, details)
    follow, uses = tracker(engine)

    follow.handle(event("create", job.id), SCOPE)

    assert uses == [(image_id, NOW)]
    assert SHARED_DETAILS.get(job.id) == details


def test_events_of_other_kinds_and_actions_are_ignored() -> None:
    engine = FakeEngine(clock=NOW - timedelta(days=3))
    image_id = engine.add_image("app", "x/app:1").id
    job = engine.create_container(image_id, "job", "exited")
    follow, uses = tracker(engine)

    follow.handle({**event("start", job.id), "Type": "image"}, SCOPE)
    follow.handle(event("die", job.id), SCOPE)

    assert uses == []
