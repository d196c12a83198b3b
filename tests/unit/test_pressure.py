"""Disk pressure: soft keeps yield least recently used first; hard keeps never do."""

from __future__ import annotations

from dataclasses import replace

from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.records import Image
from gcd.core.rules import RuleId
from tests.unit.builders import NOW, container, days, image, policy, rule, snapshot


def pressure(used: int, total: int = 1000, high: float = 0.85, low: float = 0.7) -> Pressure:
    return Pressure(used, total, 10, 1000, high, low)


def used(img: Image, days_ago: float) -> Image:
    return replace(img, last_used=NOW - days(days_ago))


class TestUsedWithinRule:
    def test_an_image_used_recently_is_kept(self) -> None:
        recent = used(image("app:1", age=days(30)), 1)
        idle = used(image("app:2", age=days(30)), 5)
        plan = evaluate(snapshot(recent, idle), policy(rule(used_within=days(3))), NOW)
        rules = {d.key.id: d.rule for d in plan.decisions}
        assert rules[recent.id] is RuleId.USED_WITHIN
        assert rules[idle.id] is RuleId.UNKEPT

    def test_an_image_never_used_counts_from_first_seen(self) -> None:
        never = image("app:1", age=days(2))
        plan = evaluate(snapshot(never), policy(rule(used_within=days(3))), NOW)
        assert plan.decisions[0].rule is RuleId.USED_WITHIN


class TestPressure:
    def test_without_pressure_soft_keeps_stay(self) -> None:
        a = used(image("app:1", age=days(30)), 1)
        plan = evaluate(snapshot(a), policy(rule(newest=5)), NOW, pressure(500))
        assert plan.deletions == ()
        assert plan.pressure is None

    def test_soft_keeps_yield_least_recently_used_first_until_below_low(self) -> None:
        # 4 images of 100 bytes each; 900 of 1000 used → free ≥ 201 bytes to get below 70%.
        imgs = [used(image(f"app:{n}", age=days(30)), days_ago=n + 1) for n in range(4)]
        plan = evaluate(snapshot(*imgs), policy(rule(newest=10)), NOW, pressure(900))
        evicted = {d.key.id for d in plan.deletions}
        assert evicted == {imgs[3].id, imgs[2].id, imgs[1].id}
        assert all(d.rule is RuleId.PRESSURE for d in plan.deletions)
        assert "high 85%" in plan.deletions[0].detail
        assert "yields keep.newest" in plan.deletions[0].detail
        assert plan.pressure is not None

    def test_hard_keeps_never_yield_and_the_shortfall_is_said(self) -> None:
        pinned = image("alpine:3", age=days(30))
        labelled = image("app:1", age=days(30), labels={"gc.keep": "true"})
        in_use = image("web:1", age=days(30))
        young = image("web:2", age=days(0.01))
        pol = policy(rule(labels={"gc.keep": "true"}), rule(references=("alpine:*",)))
        snap = snapshot(pinned, labelled, in_use, young, containers=(container(in_use),))
        plan = evaluate(snap, pol, NOW, pressure(990))
        assert plan.deletions == ()
        assert plan.pressure is not None
        assert "nothing evictable" in plan.pressure

    def test_inode_pressure_alone_triggers_eviction(self) -> None:
        imgs = [used(image(f"app:{n}", age=days(30)), n + 1) for n in range(4)]
        inodes = Pressure(100, 1000, 950, 1000, 0.85, 0.7)
        plan = evaluate(snapshot(*imgs), policy(rule(younger_than=days(60))), NOW, inodes)
        assert len(plan.deletions) >= 1
        assert plan.deletions[0].rule is RuleId.PRESSURE
