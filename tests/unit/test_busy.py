"""The busy gate in the core (`gcd.core.busy`, `keep.busy`): what counts as busy, what it
defers, and that the critical watermark overrides it."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from prometheus_client import CollectorRegistry

from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import Container, ContainerState
from gcd.core.rules import RuleId
from gcd.engine.outcomes import Report
from gcd.metrics.definitions import Metrics
from tests.unit.builders import (
    NOW,
    cache_record,
    container,
    containers_section,
    days,
    image,
    no_busy_gate,
    policy,
    snapshot,
    volume,
    volumes_section,
)

MINUTE = timedelta(minutes=1)
OLD = image("old:1")
BASE = image("base:1")
STALE = cache_record("stale", used=days(30))
HELD = cache_record("held", used=days(30), in_use=True, age=timedelta(seconds=40))
LEFT = container(OLD, "left", ContainerState.EXITED, exited=days(10))
ANON = volume("a" * 64, anonymous=True, unused=days(30))


def every_kind() -> Policy:
    return policy(
        min_age=MINUTE,
        containers=containers_section(remove_exited_after=days(2)),
        volumes=volumes_section(anonymous_unused_for=days(7)),
        build_cache=BuildCachePolicy(unused_for=days(7)),
    )


def rules(plan: Plan) -> dict[str, RuleId]:
    return {d.key.id: d.rule for d in plan.decisions}


def step(age: timedelta, state: ContainerState = ContainerState.RUNNING) -> Container:
    """A classic-build step container of BASE, created `age` ago."""
    made = container(BASE, f"step-{age}", state, created=age, exited=age / 2, image=BASE.id)
    return replace(made, build_step=True)


class TestBuildKit:
    def test_a_record_in_use_defers_every_image_and_cache_deletion_not_the_rest(self) -> None:
        snap = snapshot(OLD, BASE, containers=(LEFT,), volumes=(ANON,), build_cache=(STALE, HELD))
        plan = evaluate(snap, every_kind(), NOW)
        assert rules(plan) == {
            OLD.id: RuleId.BUSY,
            BASE.id: RuleId.BUSY,
            STALE.id: RuleId.BUSY,
            HELD.id: RuleId.IN_USE,
            LEFT.id: RuleId.EXITED,
            ANON.name: RuleId.UNUSED,
        }
        assert {d.key.id for d in plan.deletions} == {LEFT.id, ANON.name}
        assert plan.busy is not None
        assert "a BuildKit build is running (1 build-cache record(s) in use, held" in plan.busy
        assert plan.busy.endswith("3 deletion(s) deferred to a later cycle")
        detail = next(d.detail for d in plan.decisions if d.key.id == BASE.id)
        assert detail.startswith("deferred: a BuildKit build is running")
        assert detail.endswith("planned delete.unkept")

    def test_nothing_in_use_nothing_deferred(self) -> None:
        plan = evaluate(snapshot(OLD, build_cache=(STALE,)), every_kind(), NOW)
        assert plan.busy is None
        assert RuleId.BUSY not in plan.count_by_rule()

    def test_quiet_for_zero_switches_the_gate_off(self) -> None:
        snap = snapshot(OLD, build_cache=(STALE, HELD))
        plan = evaluate(snap, no_busy_gate(every_kind()), NOW)
        assert plan.busy is None
        assert rules(plan)[OLD.id] is RuleId.UNKEPT


class TestClassicBuild:
    def test_a_young_step_container_defers_images_and_is_kept_itself(self) -> None:
        young = step(timedelta(seconds=5), ContainerState.CREATED)
        plan = evaluate(snapshot(OLD, BASE, containers=(young,)), every_kind(), NOW)
        assert plan.busy is not None
        assert "a classic build is running" in plan.busy
        assert "within safety.quiet_for=10m" in plan.busy
        assert rules(plan)[OLD.id] is RuleId.BUSY

    def test_a_stopped_step_container_past_min_age_is_deferred_too(self) -> None:
        left = step(timedelta(minutes=5), ContainerState.EXITED)
        chosen = replace(
            every_kind(), containers=containers_section(remove_exited_after=timedelta(0))
        )
        plan = evaluate(snapshot(OLD, BASE, containers=(left,)), chosen, NOW)
        assert rules(plan)[left.key.id] is RuleId.BUSY

    def test_a_step_container_older_than_quiet_for_is_a_leftover_not_a_build(self) -> None:
        old = step(timedelta(minutes=11), ContainerState.EXITED)
        plan = evaluate(snapshot(OLD, containers=(old,)), every_kind(), NOW)
        assert plan.busy is None
        assert rules(plan)[OLD.id] is RuleId.UNKEPT

    def test_quiet_for_is_the_policys(self) -> None:
        young = step(timedelta(minutes=11))
        chosen = every_kind()
        chosen = replace(chosen, safety=replace(chosen.safety, quiet_for=timedelta(minutes=15)))
        plan = evaluate(snapshot(OLD, BASE, containers=(young,)), chosen, NOW)
        assert rules(plan)[OLD.id] is RuleId.BUSY


class TestPressure:
    def test_above_high_the_gate_still_defers(self) -> None:
        snap = snapshot(OLD, build_cache=(STALE, HELD))
        plan = evaluate(snap, every_kind(), NOW, Pressure(900, 1000, 0, 0, 0.8, 0.5, 0.95))
        assert rules(plan)[OLD.id] is RuleId.BUSY
        assert plan.pressure is not None

    def test_at_critical_nothing_is_deferred_and_the_plan_says_so(self) -> None:
        snap = snapshot(OLD, build_cache=(STALE, HELD))
        plan = evaluate(snap, every_kind(), NOW, Pressure(960, 1000, 0, 0, 0.8, 0.5, 0.95))
        assert rules(plan)[OLD.id] is RuleId.UNKEPT
        assert rules(plan)[STALE.id] is RuleId.UNUSED
        assert plan.busy is not None
        assert plan.busy.endswith("not deferred: the disk is at the critical watermark")


def test_the_run_cap_counts_only_what_the_gate_let_through() -> None:
    left = step(timedelta(minutes=5), ContainerState.EXITED)
    others = tuple(container(OLD, f"x{n}", ContainerState.EXITED) for n in range(2))
    chosen = replace(every_kind(), containers=containers_section(remove_exited_after=MINUTE))
    chosen = replace(chosen, safety=replace(chosen.safety, max_deletions_per_run=2))
    plan = evaluate(snapshot(OLD, BASE, containers=(left, *others)), chosen, NOW)
    counts = plan.count_by_rule()
    assert counts[RuleId.EXITED] == 2  # the step container waits: it takes no place in the cap
    assert RuleId.RUN_LIMIT not in counts
    assert rules(plan)[left.key.id] is RuleId.BUSY


def test_deferrals_are_counted_and_the_busy_gauge_set() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    snap = snapshot(OLD, BASE, build_cache=(STALE, HELD))
    busy_plan = evaluate(snap, every_kind(), NOW)
    for plan, busy in ((busy_plan, 1), (evaluate(snapshot(OLD), every_kind(), NOW), 0)):
        metrics.record_run(
            plan,
            Report(()),
            0,
            unit_sizes=snap.unit_sizes,
            trigger="schedule",
            duration_seconds=1.0,
            now=NOW,
        )
        assert registry.get_sample_value("gcd_engine_busy") == busy

    def deferred(kind: str) -> float | None:
        labels = {"kind": kind, "outcome": "deferred_busy"}
        return registry.get_sample_value("gcd_removals_total", labels)

    assert (deferred("image"), deferred("build_cache"), deferred("volume")) == (2, 1, 0)
    kept = {"kind": "image", "rule": "keep.busy"}
    assert registry.get_sample_value("gcd_kept", kept) == 0  # the last plan was not busy
