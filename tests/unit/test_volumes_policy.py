"""The `volumes:` section on hand-built snapshots: one class per rule, guards first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.evaluate import evaluate
from gcd.core.kinds.volumes import VolumePolicy
from gcd.core.plan import Decision, Plan
from gcd.core.records import Container, ContainerState, Volume
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    container,
    containers_section,
    days,
    hours,
    keep_volume,
    policy,
    snapshot,
    volume,
    volumes_section,
)

ANONYMOUS = "f" * 64


def plan_of(
    *vols: Volume,
    section: VolumePolicy | None = None,
    containers: tuple[Container, ...] = (),
    remove_exited_after: timedelta | None = None,
) -> Plan:
    """`vols` under `section` (default: anonymous_unused_for 7d), with a containers section
    when `remove_exited_after` is given."""
    pol = policy(
        images=False,
        volumes=section or volumes_section(),
        containers=None
        if remove_exited_after is None
        else containers_section(remove_exited_after=remove_exited_after),
    )
    return evaluate(snapshot(containers=containers, volumes=vols), pol, NOW)


def decision(v: Volume, **kwargs: object) -> Decision:
    plan = plan_of(v, **kwargs)  # type: ignore[arg-type]
    (only,) = (d for d in plan.decisions if d.key == v.key)
    return only


def anonymous(**kwargs: object) -> Volume:
    return volume(ANONYMOUS, anonymous=True, **kwargs)  # type: ignore[arg-type]


class TestInUseGuard:
    @pytest.mark.parametrize("state", list(ContainerState))
    def test_a_volume_mounted_by_a_container_in_any_state_is_kept(
        self, state: ContainerState
    ) -> None:
        holder = container(name="app", state=state, volumes=(ANONYMOUS,))
        d = decision(anonymous(unused=days(100)), containers=(holder,))
        assert d.rule is RuleId.IN_USE
        assert d.detail == f"mounted by container app ({state})"

    def test_a_container_that_stays_holds_it_even_with_a_containers_section(self) -> None:
        kept = container(name="app", state=ContainerState.EXITED, exited=days(1), volumes=("v",))
        d = decision(volume("v"), containers=(kept,), remove_exited_after=days(2))
        assert d.rule is RuleId.IN_USE


class TestReleasedInTheSameRun:
    def test_a_volume_only_a_removed_container_mounts_was_used_until_now(self) -> None:
        gone = container(
            name="job", state=ContainerState.EXITED, exited=days(5), volumes=(ANONYMOUS,)
        )
        plan = plan_of(anonymous(unused=days(100)), containers=(gone,), remove_exited_after=days(2))
        rules = {d.key: (d.rule, d.detail) for d in plan.decisions}
        assert rules[gone.key][0] is RuleId.EXITED
        rule, detail = rules[anonymous().key]
        assert rule is RuleId.UNUSED_WITHIN
        assert detail == (
            "mounted by container job (exited), removed first; volumes.anonymous_unused_for 1w"
        )

    def test_one_removed_and_one_staying_holder_keep_it_in_use(self) -> None:
        gone = container(name="job", state=ContainerState.EXITED, exited=days(5), volumes=("v",))
        stays = container(name="web", state=ContainerState.RUNNING, volumes=("v",))
        plan = plan_of(volume("v"), containers=(gone, stays), remove_exited_after=days(2))
        (d,) = (d for d in plan.decisions if d.key == volume("v").key)
        assert d.rule is RuleId.IN_USE
        assert d.detail == "mounted by container web (running)"


class TestExternalGuard:
    def test_a_volume_of_another_driver_is_kept(self) -> None:
        d = decision(anonymous(driver="rexray", unused=days(100)))
        assert d.rule is RuleId.EXTERNAL
        assert d.detail.startswith("driver rexray")

    def test_a_local_volume_with_driver_options_is_kept(self) -> None:
        nfs = anonymous(options={"type": "nfs", "o": "addr=10.0.0.1"}, unused=days(100))
        d = decision(nfs)
        assert d.rule is RuleId.EXTERNAL
        assert d.detail.startswith("driver options")


class TestAgeGuards:
    def test_a_volume_first_seen_within_min_age_is_kept(self) -> None:
        assert decision(anonymous(age=timedelta(minutes=30))).rule is RuleId.MIN_AGE

    def test_a_volume_created_in_the_future_is_kept(self) -> None:
        assert decision(anonymous(created=NOW + days(1))).rule is RuleId.CREATED_IN_FUTURE


class TestAnonymous:
    def test_an_anonymous_volume_unused_for_longer_is_deleted(self) -> None:
        d = decision(anonymous(unused=days(8), size=777))
        assert d.rule is RuleId.UNUSED
        assert d.detail == "unused for 1w; volumes.anonymous_unused_for 1w"
        assert d.freed_bytes == 777

    def test_exactly_at_the_limit_is_deleted(self) -> None:
        assert decision(anonymous(unused=days(7))).rule is RuleId.UNUSED

    def test_used_more_recently_is_kept(self) -> None:
        assert decision(anonymous(unused=days(6))).rule is RuleId.UNUSED_WITHIN

    def test_never_seen_mounted_counts_from_first_sighting(self) -> None:
        assert decision(anonymous(age=days(3))).rule is RuleId.UNUSED_WITHIN
        assert decision(anonymous(age=days(8))).rule is RuleId.UNUSED

    def test_without_anonymous_unused_for_anonymous_volumes_stay(self) -> None:
        section = volumes_section(anonymous_unused_for=None)
        assert decision(anonymous(unused=days(100)), section=section).rule is RuleId.UNMANAGED


class TestNamed:
    def test_a_named_volume_is_untouched_without_a_pattern(self) -> None:
        d = decision(volume("pgdata", unused=days(365)))
        assert d.rule is RuleId.NAMED
        assert "no volumes.named pattern" in d.detail

    def test_a_named_volume_a_pattern_names_goes_after_named_unused_for(self) -> None:
        section = volumes_section(named=("ci-cache-*",), named_unused_for=days(14))
        old = volume("ci-cache-1", unused=days(14))
        recent = volume("ci-cache-2", unused=days(13))
        other = volume("pgdata", unused=days(365))
        plan = plan_of(old, recent, other, section=section)
        rules = {d.key: d.rule for d in plan.decisions}
        assert rules[old.key] is RuleId.UNUSED
        assert rules[recent.key] is RuleId.UNUSED_WITHIN
        assert rules[other.key] is RuleId.NAMED

    def test_anonymous_unused_for_does_not_apply_to_named_volumes(self) -> None:
        section = volumes_section(anonymous_unused_for=hours(1))
        assert decision(volume("pgdata", unused=days(30)), section=section).rule is RuleId.NAMED


class TestKeepRules:
    def test_a_label_keeps_an_anonymous_volume(self) -> None:
        section = volumes_section(keep_volume(labels={"gc.keep": "true"}))
        kept = anonymous(labels={"gc.keep": "true"}, unused=days(100))
        d = decision(kept, section=section)
        assert d.rule is RuleId.LABEL
        assert d.detail == "volumes.keep[0] label gc.keep=true"

    def test_a_name_keeps_a_volume_a_named_pattern_opted_in(self) -> None:
        section = volumes_section(
            keep_volume(names=("ci-cache-main",)), named=("ci-cache-*",), named_unused_for=days(1)
        )
        assert decision(volume("ci-cache-main", unused=days(9)), section=section).rule is (
            RuleId.NAME
        )
        assert decision(volume("ci-cache-pr", unused=days(9)), section=section).rule is (
            RuleId.UNUSED
        )

    def test_all_conditions_of_one_rule_must_hold(self) -> None:
        section = volumes_section(keep_volume(labels={"team": "*"}, names=("keep-*",)))
        vols = (
            volume("keep-1", anonymous=True, unused=days(9)),
            volume("keep-2", anonymous=True, unused=days(9), labels={"team": "a"}),
        )
        rules = [d.rule for d in plan_of(*vols, section=section).decisions]
        assert sorted(rules) == sorted([RuleId.UNUSED, RuleId.NAME])


class TestUnmanaged:
    def test_without_a_section_no_volume_is_touched(self) -> None:
        snap = snapshot(volumes=(anonymous(unused=days(100)), volume("pgdata", unused=days(100))))
        plan = evaluate(snap, policy(), NOW)
        assert {d.rule for d in plan.decisions} == {RuleId.UNMANAGED}
