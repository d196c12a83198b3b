"""The policy engine on hand-built snapshots: one class per rule, guards first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.evaluate import evaluate
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import ContainerState, Snapshot
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    container,
    days,
    hours,
    image,
    policy,
    rule,
    snapshot,
)


def decide(snap: Snapshot, pol: Policy) -> dict[str, RuleId]:
    plan = evaluate(snap, pol, NOW)
    return {d.key.id: d.rule for d in plan.decisions}


def plan_of(snap: Snapshot, pol: Policy) -> Plan:
    return evaluate(snap, pol, NOW)


class TestInUseGuard:
    @pytest.mark.parametrize("state", list(ContainerState))
    def test_an_image_used_by_a_container_in_any_state_is_kept(self, state: ContainerState) -> None:
        used = image("app:1")
        snap = snapshot(used, containers=(container(used, state=state),))
        assert decide(snap, policy())[used.id] is RuleId.IN_USE

    def test_all_tags_of_an_image_used_by_a_stopped_container_stay(self) -> None:
        used = image("app:1", "app:latest", "other/app:1")
        snap = snapshot(used, containers=(container(used, state=ContainerState.EXITED),))
        plan = plan_of(snap, policy())
        assert plan.deletions == ()
        (decision,) = (d for d in plan.decisions if d.key == used.key)
        assert decision.detail.startswith("used by container c")

    def test_the_guard_comes_before_rules_that_would_delete(self) -> None:
        used = image(seed="dangling-used")
        snap = snapshot(used, containers=(container(used),))
        assert decide(snap, policy(dangling_within=hours(0)))[used.id] is RuleId.IN_USE


class TestMinAgeGuard:
    def test_an_image_younger_than_min_age_is_kept(self) -> None:
        young = image("app:1", age=timedelta(minutes=30))
        assert decide(snapshot(young), policy())[young.id] is RuleId.MIN_AGE

    def test_an_image_exactly_min_age_old_is_no_longer_protected(self) -> None:
        old = image("app:1", age=hours(1))
        assert decide(snapshot(old), policy())[old.id] is RuleId.UNKEPT

    def test_local_age_not_created_decides(self) -> None:
        reproducible = image("app:1", age=timedelta(minutes=5), created=NOW - days(20000))
        assert decide(snapshot(reproducible), policy())[reproducible.id] is RuleId.MIN_AGE

    def test_a_created_in_the_future_is_kept_and_said(self) -> None:
        future = image("app:1", age=days(3), created=NOW + days(365))
        plan = plan_of(snapshot(future), policy())
        assert plan.decisions[0].rule is RuleId.CREATED_IN_FUTURE
        assert "future" in plan.decisions[0].detail


class TestLabelRule:
    def test_a_matching_label_keeps(self) -> None:
        pinned = image("app:1", labels={"gc.keep": "true"})
        assert (
            decide(snapshot(pinned), policy(rule(labels={"gc.keep": "true"})))[pinned.id]
            is RuleId.LABEL
        )

    def test_another_value_does_not_keep(self) -> None:
        other = image("app:1", labels={"gc.keep": "false"})
        pol = policy(rule(labels={"gc.keep": "true"}))
        assert decide(snapshot(other), pol)[other.id] is RuleId.UNKEPT

    def test_star_matches_any_value(self) -> None:
        other = image("app:1", labels={"team": "x"})
        assert decide(snapshot(other), policy(rule(labels={"team": "*"})))[other.id] is RuleId.LABEL

    def test_a_label_rule_keeps_a_dangling_image(self) -> None:
        dangling = image(seed="d", labels={"gc.keep": "true"})
        pol = policy(rule(labels={"gc.keep": "true"}))
        assert decide(snapshot(dangling), pol)[dangling.id] is RuleId.LABEL


class TestReferenceRule:
    @pytest.mark.parametrize(
        "tag",
        ["alpine:3.19", "library/alpine:3.19", "docker.io/library/alpine:3.19"],
    )
    def test_short_and_full_references_are_one(self, tag: str) -> None:
        pinned = image(tag)
        assert (
            decide(snapshot(pinned), policy(rule(references=("alpine:*",))))[pinned.id]
            is RuleId.REFERENCE
        )

    def test_double_star_crosses_registries_and_segments(self) -> None:
        base = image("registry.local:5000/team/base/python:3.12")
        pol = policy(rule(references=("**/base/*:*",)))
        assert decide(snapshot(base), pol)[base.id] is RuleId.REFERENCE

    def test_single_star_stays_within_a_segment(self) -> None:
        deep = image("team/sub/app:1")
        assert (
            decide(snapshot(deep), policy(rule(references=("team/*:*",))))[deep.id] is RuleId.UNKEPT
        )

    def test_one_kept_tag_keeps_the_image_with_all_its_tags(self) -> None:
        multi = image("alpine:3.19", "scratchpad/tmp:1")
        plan = plan_of(snapshot(multi), policy(rule(references=("alpine:*",))))
        assert plan.deletions == ()

    def test_digest_references_are_matched(self) -> None:
        digest = "sha256:" + "a" * 64
        by_digest = image(seed="x", digests=(f"registry.local:5000/app@{digest}",))
        pol = policy(rule(references=("registry.local:5000/app@*",)))
        assert decide(snapshot(by_digest), pol)[by_digest.id] is RuleId.REFERENCE

    def test_regex_is_anchored(self) -> None:
        release = image("app:v1.2")
        branch = image("app:v1.2-rc")
        pol = policy(rule(references=(r"regex:docker\.io/library/app:v\d+\.\d+",)))
        decisions = decide(snapshot(release, branch), pol)
        assert decisions[release.id] is RuleId.REFERENCE
        assert decisions[branch.id] is RuleId.UNKEPT


class TestNewestRule:
    def test_every_repository_keeps_its_n_newest(self) -> None:
        images = [image(f"app:{n}", age=days(n + 2)) for n in range(4)]
        other = image("web:1", age=days(50))
        decisions = decide(snapshot(*images, other), policy(rule(newest=2)))
        assert [decisions[i.id] for i in images] == [
            RuleId.NEWEST,
            RuleId.NEWEST,
            RuleId.UNKEPT,
            RuleId.UNKEPT,
        ]
        assert decisions[other.id] is RuleId.NEWEST

    def test_ties_in_local_age_are_broken_by_created_then_id(self) -> None:
        older = image("app:1", age=days(3), created=NOW - days(10))
        newer = image("app:2", age=days(3), created=NOW - days(9))
        decisions = decide(snapshot(older, newer), policy(rule(newest=1)))
        assert decisions[newer.id] is RuleId.NEWEST
        assert decisions[older.id] is RuleId.UNKEPT

    def test_newest_with_patterns_ranks_only_matching_images(self) -> None:
        v = [image(f"registry.example.com/app:v{n}", age=days(n + 2)) for n in range(3)]
        branch = image("registry.example.com/app:main", age=days(1.5))
        pol = policy(rule(references=("registry.example.com/**:v*",), newest=2))
        decisions = decide(snapshot(*v, branch), pol)
        assert [decisions[i.id] for i in v] == [RuleId.NEWEST, RuleId.NEWEST, RuleId.UNKEPT]
        assert decisions[branch.id] is RuleId.UNKEPT

    def test_a_distinct_image_with_two_tags_counts_once(self) -> None:
        twice = image("app:1", "app:latest", age=days(2))
        older = image("app:0", age=days(3))
        decisions = decide(snapshot(twice, older), policy(rule(newest=2)))
        assert decisions[older.id] is RuleId.NEWEST

    def test_dangling_images_are_not_ranked(self) -> None:
        dangling = image(seed="d", age=days(2))
        decisions = decide(snapshot(dangling), policy(rule(newest=5)))
        assert decisions[dangling.id] is RuleId.DANGLING


class TestYoungerThanRule:
    def test_an_image_younger_than_the_rule_is_kept(self) -> None:
        young = image("app:1", age=days(3))
        old = image("app:2", age=days(8))
        decisions = decide(snapshot(young, old), policy(rule(younger_than=days(7))))
        assert decisions[young.id] is RuleId.YOUNGER_THAN
        assert decisions[old.id] is RuleId.UNKEPT

    def test_age_alone_does_not_keep_dangling_images(self) -> None:
        dangling = image(seed="d", age=days(3))
        decisions = decide(snapshot(dangling), policy(rule(younger_than=days(7))))
        assert decisions[dangling.id] is RuleId.DANGLING


class TestDangling:
    def test_a_dangling_image_within_keep_within_stays(self) -> None:
        dangling = image(seed="d", age=hours(2))
        pol = policy(dangling_within=hours(3))
        assert decide(snapshot(dangling), pol)[dangling.id] is RuleId.DANGLING_WITHIN

    def test_an_older_dangling_image_is_deleted(self) -> None:
        dangling = image(seed="d", age=hours(4))
        pol = policy(dangling_within=hours(3))
        assert decide(snapshot(dangling), pol)[dangling.id] is RuleId.DANGLING


class TestRuleOrder:
    def test_the_first_rule_that_holds_is_the_reason(self) -> None:
        both = image("alpine:3", labels={"gc.keep": "true"})
        pol = policy(rule(references=("alpine:*",)), rule(labels={"gc.keep": "true"}))
        plan = plan_of(snapshot(both), pol)
        assert plan.decisions[0].rule is RuleId.REFERENCE
        assert plan.decisions[0].detail.startswith("images.keep[0]")

    def test_no_images_section_touches_nothing(self) -> None:
        old = image("app:1", age=days(400))
        plan = evaluate(snapshot(old), Policy(), NOW)
        assert plan.deletions == ()
        assert plan.decisions[0].rule is RuleId.UNMANAGED


class TestBytes:
    def test_a_layer_shared_with_a_kept_image_is_not_counted(self) -> None:
        kept = image("alpine:3", layers=("base", "k"))
        gone = image("app:1", layers=("base", "a"))
        plan = plan_of(snapshot(kept, gone), policy(rule(references=("alpine:*",))))
        assert plan.freed_bytes == 100
        assert plan.deletions[0].freed_bytes == 100

    def test_a_layer_shared_only_by_deleted_images_counts_once_for_the_set(self) -> None:
        one = image("app:1", layers=("base", "a"))
        two = image("app:2", layers=("base", "b"))
        plan = plan_of(snapshot(one, two), policy())
        assert plan.freed_bytes == 300
        assert [d.freed_bytes for d in plan.deletions] == [100, 100]

    def test_children_are_deleted_before_parents(self) -> None:
        parent = image("base:1", layers=("l1",))
        child = image("app:1", layers=("l1", "l2"))
        plan = plan_of(snapshot(parent, child), policy())
        assert [d.key.id for d in plan.deletions] == [child.id, parent.id]


class TestSafety:
    def test_a_plan_over_the_delete_fraction_is_refused(self) -> None:
        images = [image(f"app:{n}") for n in range(10)]
        plan = plan_of(snapshot(*images), policy(max_fraction=0.5))
        assert plan.refusal is not None
        assert "max_delete_fraction=0.5" in plan.refusal

    def test_a_plan_within_the_fraction_is_not_refused(self) -> None:
        images = [image(f"app:{n}") for n in range(10)]
        pol = policy(rule(references=tuple(f"app:{n}" for n in range(5))), max_fraction=0.5)
        assert plan_of(snapshot(*images), pol).refusal is None

    def test_deletions_beyond_the_run_limit_are_deferred(self) -> None:
        images = [image(f"app:{n}", age=days(n + 2)) for n in range(5)]
        plan = plan_of(snapshot(*images), policy(max_deletions=2))
        assert len(plan.deletions) == 2
        assert plan.count_by_rule()[RuleId.RUN_LIMIT] == 3
        oldest = {images[4].id, images[3].id}
        assert {d.key.id for d in plan.deletions} == oldest
