"""The safety limits per kind: `max_deletions_per_run` and `max_delete_fraction` from `safety:`
unless a kind's section sets its own, the cap before the fraction, and a refusal that names
the kind and the key that allows it."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import ContainerState, Snapshot
from gcd.core.rules import RuleId
from gcd.core.safety import KindLimits, Safety
from tests.unit.builders import (
    NOW,
    cache_record,
    container,
    containers_section,
    days,
    image,
    policy,
    snapshot,
)


def build_host(
    *,
    fraction: float = 0.9,
    cap: int = 500,
    own: dict[Kind, KindLimits] | None = None,
) -> Policy:
    """Images, containers and build cache managed, `safety:` as given, the sections' own."""
    base = policy(
        max_deletions=cap,
        max_fraction=fraction,
        containers=containers_section(),
        build_cache=BuildCachePolicy(unused_for=days(7)),
    )
    return replace(base, safety=replace(base.safety, kinds=own or {}))


def idle_cache(count: int = 3) -> Snapshot:
    """A build host between builds: the whole cache idle, one kept image, nothing stopped."""
    return snapshot(
        image("base:1", age=days(0.01)),
        build_cache=tuple(cache_record(f"r{n}", used=days(10)) for n in range(count)),
    )


def rules(plan: Plan, kind: Kind) -> list[RuleId]:
    return [d.rule for d in plan.decisions if d.key.kind is kind]


class TestLimitsOfAKind:
    def test_without_its_own_a_kind_obeys_safety(self) -> None:
        limits = Safety(max_deletions_per_run=7, max_delete_fraction=0.4).limits(Kind.NETWORK)
        assert (limits.max_deletions_per_run, limits.max_delete_fraction) == (7, 0.4)
        assert limits.deletions_key == "safety.max_deletions_per_run"
        assert limits.fraction_key == "safety.max_delete_fraction"

    def test_each_own_value_overrides_alone_and_names_its_section(self) -> None:
        safety = Safety(kinds={Kind.BUILD_CACHE: KindLimits(max_delete_fraction=1.0)})
        limits = safety.limits(Kind.BUILD_CACHE)
        assert (limits.max_deletions_per_run, limits.max_delete_fraction) == (500, 1.0)
        assert limits.deletions_key == "safety.max_deletions_per_run"
        assert limits.fraction_key == "build_cache.max_delete_fraction"
        assert safety.limits(Kind.IMAGE).max_delete_fraction == 0.9


class TestRefusal:
    def test_an_idle_cache_deleted_whole_refuses_the_plan_and_says_how_to_allow_it(
        self,
    ) -> None:
        plan = evaluate(idle_cache(), build_host(), NOW)
        assert plan.refusal == (
            "the plan deletes 3 of 3 build-cache records (100%), more than "
            "safety.max_delete_fraction=0.9 allows; nothing was deleted. Check the policy with "
            "`gcd plan`; if this is meant, raise the limit for that kind alone in its section: "
            "`build_cache.max_delete_fraction: 1`"
        )

    def test_the_kind_s_own_fraction_lets_it_through(self) -> None:
        own = {Kind.BUILD_CACHE: KindLimits(max_delete_fraction=1.0)}
        plan = evaluate(idle_cache(), build_host(own=own), NOW)
        assert plan.refusal is None
        assert rules(plan, Kind.BUILD_CACHE) == [RuleId.UNUSED] * 3

    def test_another_kind_s_override_does_not_loosen_this_one(self) -> None:
        own = {Kind.BUILD_CACHE: KindLimits(max_delete_fraction=1.0)}
        stopped = container(image("app:1", age=days(0.01)), "job", ContainerState.EXITED)
        snap = replace(idle_cache(), containers=(stopped,))
        plan = evaluate(snap, build_host(own=own), NOW)
        assert plan.refusal is not None
        assert "1 of 1 containers (100%), more than safety.max_delete_fraction=0.9" in (
            plan.refusal
        )
        assert "build-cache" not in plan.refusal
        assert plan.refusal.endswith("`containers.max_delete_fraction: 1`")

    def test_a_stricter_own_fraction_refuses_what_safety_allows_and_names_itself(
        self,
    ) -> None:
        gone = [container(name=f"c{n}", state=ContainerState.EXITED) for n in range(2)]
        running = [container(name=f"web{n}") for n in range(2)]
        snap = snapshot(containers=(*gone, *running))
        assert evaluate(snap, build_host(), NOW).refusal is None
        own = {Kind.CONTAINER: KindLimits(max_delete_fraction=0.25)}
        refused = evaluate(snap, build_host(own=own), NOW).refusal
        assert refused is not None
        assert "2 of 4 containers (50%), more than containers.max_delete_fraction=0.25" in refused
        assert refused.endswith("`containers.max_delete_fraction: 0.5`")

    def test_every_kind_over_its_limit_is_named(self) -> None:
        stopped = container(name="job", state=ContainerState.EXITED)
        snap = replace(idle_cache(2), containers=(stopped,))
        refused = evaluate(snap, build_host(), NOW).refusal
        assert refused is not None
        assert refused.startswith(
            "the plan deletes 1 of 1 containers (100%), more than safety.max_delete_fraction=0.9 "
            "allows, and 2 of 2 build-cache records (100%), more than "
            "safety.max_delete_fraction=0.9 allows; nothing was deleted."
        )
        assert refused.endswith(
            "raise the limit for each kind in its section: "
            "`containers.max_delete_fraction: 1`, `build_cache.max_delete_fraction: 1`"
        )

    @pytest.mark.parametrize(
        ("deleting", "kept"), [(1, 0), (2, 1), (19, 1), (7, 4), (99, 1), (1, 2)]
    )
    def test_the_value_the_refusal_suggests_lets_that_plan_through(
        self, deleting: int, kept: int
    ) -> None:
        gone = [container(name=f"c{n}", state=ContainerState.EXITED) for n in range(deleting)]
        running = [container(name=f"web{n}") for n in range(kept)]
        snap = snapshot(containers=(*gone, *running))
        refused = evaluate(snap, build_host(fraction=0.3), NOW).refusal
        assert refused is not None
        found = re.search(r"`containers\.max_delete_fraction: ([0-9.]+)`", refused)
        assert found is not None
        suggested = float(found.group(1))
        own = {Kind.CONTAINER: KindLimits(max_delete_fraction=suggested)}
        assert evaluate(snap, build_host(fraction=0.3, own=own), NOW).refusal is None
        smaller = round(suggested - 0.01, 2)
        if smaller > 0:
            own = {Kind.CONTAINER: KindLimits(max_delete_fraction=smaller)}
            assert evaluate(snap, build_host(fraction=0.3, own=own), NOW).refusal is not None

    def test_a_kind_without_a_section_never_refuses(self) -> None:
        bare = replace(build_host(), build_cache=None)
        plan = evaluate(idle_cache(), bare, NOW)
        assert plan.refusal is None
        assert rules(plan, Kind.BUILD_CACHE) == [RuleId.UNMANAGED] * 3


class TestCapThenFraction:
    def test_the_fraction_counts_only_what_the_cap_lets_run(self) -> None:
        """4 of 4 cache records selected, 2 run: 50%, below the 90% limit. Counting the
        selection before the cap (as before) refused this plan."""
        plan = evaluate(idle_cache(4), build_host(cap=2), NOW)
        assert plan.refusal is None
        assert sorted(r.value for r in rules(plan, Kind.BUILD_CACHE)) == sorted(
            [RuleId.UNUSED.value] * 2 + [RuleId.RUN_LIMIT.value] * 2
        )

    def test_a_deferred_container_s_image_is_kept_and_not_counted(self) -> None:
        """3 exited containers, each of its own image: capped at 1, one container and its
        image go, 1 of 3 of each kind, so 33% is below a 50% limit."""
        imgs = [image(f"app:{n}") for n in range(3)]
        cs = [
            container(i, f"c{n}", ContainerState.EXITED, exited=days(10 - n))
            for n, i in enumerate(imgs)
        ]
        snap = snapshot(*imgs, containers=tuple(cs))
        own = {Kind.CONTAINER: KindLimits(max_deletions_per_run=1)}
        plan = evaluate(snap, build_host(fraction=0.5, own=own), NOW)
        assert plan.refusal is None
        assert rules(plan, Kind.CONTAINER).count(RuleId.RUN_LIMIT) == 2
        assert rules(plan, Kind.IMAGE).count(RuleId.IN_USE) == 2
        assert {d.key for d in plan.deletions} == {cs[0].key, imgs[0].key}

    def test_the_kind_s_own_cap_defers_only_that_kind_and_says_whose_cap(self) -> None:
        cs = [container(name=f"c{n}", state=ContainerState.EXITED) for n in range(3)]
        snap = replace(idle_cache(3), containers=tuple(cs))
        own = {
            Kind.CONTAINER: KindLimits(max_deletions_per_run=1),
            Kind.BUILD_CACHE: KindLimits(max_delete_fraction=1.0),
        }
        plan = evaluate(snap, build_host(fraction=1.0, cap=2, own=own), NOW)
        deferred = {d.key.kind: d.detail for d in plan.decisions if d.rule is RuleId.RUN_LIMIT}
        assert deferred == {
            Kind.CONTAINER: "beyond containers.max_deletions_per_run=1",
            Kind.BUILD_CACHE: "beyond safety.max_deletions_per_run=2",
        }
        assert rules(plan, Kind.CONTAINER).count(RuleId.RUN_LIMIT) == 2
        assert rules(plan, Kind.BUILD_CACHE).count(RuleId.RUN_LIMIT) == 1
