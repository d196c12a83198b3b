"""The `containers:` section on hand-built snapshots: one class per rule, guards first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.evaluate import evaluate
from gcd.core.kinds.containers import ContainerPolicy
from gcd.core.plan import Decision
from gcd.core.records import Container, ContainerState, Snapshot
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    container,
    containers_section,
    days,
    hours,
    image,
    keep_container,
    policy,
    snapshot,
)

STOPPED = (ContainerState.EXITED, ContainerState.CREATED, ContainerState.DEAD)


def decision(c: Container, section: ContainerPolicy | None = None) -> Decision:
    """The decision on `c`, alone, under `section` (default: remove_exited_after 2d)."""
    snap = snapshot(containers=(c,))
    pol = policy(images=False, containers=section or containers_section())
    (only,) = evaluate(snap, pol, NOW).decisions
    return only


def rule_of(c: Container, section: ContainerPolicy | None = None) -> RuleId:
    return decision(c, section).rule


class TestActiveGuard:
    @pytest.mark.parametrize(
        "state",
        [
            ContainerState.RUNNING,
            ContainerState.PAUSED,
            ContainerState.RESTARTING,
            ContainerState.REMOVING,
        ],
    )
    def test_an_active_container_is_kept_even_when_old(self, state: ContainerState) -> None:
        old = container(state=state, created=days(400))
        assert rule_of(old, containers_section(remove_exited_after=timedelta(0))) is (RuleId.ACTIVE)

    def test_the_guard_comes_before_an_opt_in_of_services(self) -> None:
        service = container(name="web", restart="always", created=days(400))
        section = containers_section(remove_services_named=("web",))
        assert rule_of(service, section) is RuleId.ACTIVE


class TestDetailsUnknownGuard:
    @pytest.mark.parametrize("state", STOPPED)
    def test_a_stopped_container_not_inspected_is_kept(self, state: ContainerState) -> None:
        unknown = container(state=state, details_known=False)
        d = decision(unknown)
        assert d.rule is RuleId.DETAILS_UNKNOWN
        assert "could not be read" in d.detail

    def test_started_but_never_finished_is_unknown(self) -> None:
        # An exited container with StartedAt but no FinishedAt: its exit time is unknown.
        odd = Container("c1", "c1", "img", ContainerState.EXITED, created=NOW - days(9),
                        started_at=NOW - days(9), details_known=True)  # fmt: skip
        assert rule_of(odd) is RuleId.DETAILS_UNKNOWN


class TestCreatedInFutureGuard:
    def test_a_container_created_in_the_future_is_kept(self) -> None:
        future = container(state=ContainerState.CREATED, exited=None, created=-days(3))
        d = decision(future)
        assert d.rule is RuleId.CREATED_IN_FUTURE
        assert "future" in d.detail


class TestMinAgeGuard:
    def test_a_container_exited_within_min_age_is_kept(self) -> None:
        just = container(state=ContainerState.EXITED, exited=timedelta(minutes=30))
        assert rule_of(just, containers_section(remove_exited_after=timedelta(0))) is (
            RuleId.MIN_AGE
        )

    def test_min_age_counts_from_the_exit_not_the_creation(self) -> None:
        just = container(
            state=ContainerState.EXITED, exited=timedelta(minutes=30), created=days(90)
        )
        assert rule_of(just) is RuleId.MIN_AGE

    def test_exactly_min_age_after_exit_is_no_longer_protected(self) -> None:
        c = container(state=ContainerState.EXITED, exited=hours(1))
        assert rule_of(c, containers_section(remove_exited_after=hours(1))) is RuleId.EXITED


class TestKeepByLabel:
    def test_a_matching_label_keeps(self) -> None:
        c = container(state=ContainerState.EXITED, labels={"gc.keep": "true"})
        d = decision(c, containers_section(keep_container(labels={"gc.keep": "true"})))
        assert d.rule is RuleId.LABEL
        assert d.detail == "containers.keep[0] label gc.keep=true"

    def test_another_value_does_not_keep(self) -> None:
        c = container(state=ContainerState.EXITED, labels={"gc.keep": "false"})
        section = containers_section(keep_container(labels={"gc.keep": "true"}))
        assert rule_of(c, section) is RuleId.EXITED

    def test_star_matches_any_value_but_needs_the_key(self) -> None:
        section = containers_section(keep_container(labels={"team": "*"}))
        assert rule_of(container(state=ContainerState.EXITED, labels={"team": "x"}), section) is (
            RuleId.LABEL
        )
        assert rule_of(container(state=ContainerState.EXITED), section) is RuleId.EXITED


class TestKeepByName:
    @pytest.mark.parametrize("name", ["db-main", "db-", "api-debug"])
    def test_a_glob_keeps_the_names_it_matches(self, name: str) -> None:
        section = containers_section(keep_container(names=("db-*", "*-debug")))
        assert rule_of(container(name=name, state=ContainerState.EXITED), section) is RuleId.NAME

    @pytest.mark.parametrize("name", ["main-db", "xdb-main", "api-debugger"])
    def test_a_glob_is_anchored(self, name: str) -> None:
        section = containers_section(keep_container(names=("db-*", "*-debug")))
        assert rule_of(container(name=name, state=ContainerState.EXITED), section) is RuleId.EXITED

    def test_a_regex_is_anchored(self) -> None:
        section = containers_section(keep_container(names=("regex:ci-[0-9]+",)))
        assert rule_of(container(name="ci-42", state=ContainerState.EXITED), section) is RuleId.NAME
        assert rule_of(container(name="ci-42x", state=ContainerState.EXITED), section) is (
            RuleId.EXITED
        )


class TestKeepByImage:
    @pytest.mark.parametrize(
        "typed", ["postgres:15", "docker.io/library/postgres:15", "library/postgres:15"]
    )
    def test_a_short_pattern_matches_the_full_reference(self, typed: str) -> None:
        c = container(image("postgres:15"), state=ContainerState.EXITED, image=typed)
        section = containers_section(keep_container(images=("postgres:*",)))
        assert rule_of(c, section) is RuleId.IMAGE

    def test_an_untagged_reference_means_latest(self) -> None:
        # `docker run postgres` lists Image "postgres": the engine ran postgres:latest.
        c = container(image("postgres:latest"), state=ContainerState.EXITED, image="postgres")
        section = containers_section(keep_container(images=("postgres:*",)))
        assert rule_of(c, section) is RuleId.IMAGE

    def test_another_repository_does_not_match(self) -> None:
        c = container(image("postgresql:15"), state=ContainerState.EXITED)
        section = containers_section(keep_container(images=("postgres:*",)))
        assert rule_of(c, section) is RuleId.EXITED

    @pytest.mark.parametrize("pattern", ["**", "sha256:*", "regex:.*"])
    def test_a_container_created_from_an_id_matches_no_image_pattern(self, pattern: str) -> None:
        img = image("postgres:15")
        for typed in (img.id, img.id.removeprefix("sha256:"), img.id.removeprefix("sha256:")[:12]):
            c = container(img, state=ContainerState.EXITED, image=typed)
            section = containers_section(keep_container(images=(pattern,)))
            assert rule_of(c, section) is RuleId.EXITED, typed


class TestKeepRuleConditions:
    def test_every_condition_of_one_rule_must_hold(self) -> None:
        both = keep_container(labels={"gc.keep": "true"}, names=("db-*",))
        section = containers_section(both)
        labelled = container(name="web", state=ContainerState.EXITED, labels={"gc.keep": "true"})
        named = container(name="db-1", state=ContainerState.EXITED)
        matching = container(name="db-2", state=ContainerState.EXITED, labels={"gc.keep": "true"})
        assert rule_of(labelled, section) is RuleId.EXITED
        assert rule_of(named, section) is RuleId.EXITED
        assert rule_of(matching, section) is RuleId.NAME

    def test_the_first_rule_that_holds_is_the_reason(self) -> None:
        c = container(image("postgres:15"), name="db-1", state=ContainerState.EXITED)
        section = containers_section(
            keep_container(images=("postgres:*",)), keep_container(names=("db-*",))
        )
        d = decision(c, section)
        assert d.rule is RuleId.IMAGE
        assert d.detail == "containers.keep[0] image postgres:*"


class TestServices:
    @pytest.mark.parametrize("restart", ["always", "unless-stopped", "on-failure"])
    def test_a_restart_policy_makes_a_service(self, restart: str) -> None:
        d = decision(container(name="web", state=ContainerState.EXITED, restart=restart))
        assert d.rule is RuleId.SERVICE
        assert f"restart policy {restart}" in d.detail

    def test_a_compose_project_makes_a_service(self) -> None:
        labels = {"com.docker.compose.project": "shop"}
        d = decision(container(name="shop-db-1", state=ContainerState.EXITED, labels=labels))
        assert d.rule is RuleId.SERVICE
        assert "Compose project shop" in d.detail

    def test_a_never_started_service_is_kept_too(self) -> None:
        c = container(state=ContainerState.CREATED, exited=None, restart="always")
        assert rule_of(c) is RuleId.SERVICE

    def test_remove_services_named_opts_in_only_what_it_names(self) -> None:
        section = containers_section(remove_services_named=("ci-*",))
        named = container(name="ci-1", state=ContainerState.EXITED, restart="always")
        other = container(name="web", state=ContainerState.EXITED, restart="always")
        assert rule_of(named, section) is RuleId.EXITED
        assert rule_of(other, section) is RuleId.SERVICE

    def test_an_opted_in_service_still_waits_for_remove_exited_after(self) -> None:
        section = containers_section(remove_services_named=("ci-*",))
        recent = container(
            name="ci-1", state=ContainerState.EXITED, exited=days(1), restart="always"
        )
        assert rule_of(recent, section) is RuleId.EXITED_WITHIN

    def test_keep_rules_come_before_the_service_rule(self) -> None:
        section = containers_section(keep_container(names=("web",)))
        c = container(name="web", state=ContainerState.EXITED, restart="always")
        assert rule_of(c, section) is RuleId.NAME


class TestRemoveExitedAfter:
    def test_exited_longer_ago_is_deleted_and_says_since_when(self) -> None:
        d = decision(container(state=ContainerState.EXITED, exited=days(3)))
        assert d.rule is RuleId.EXITED
        assert d.detail == "exited 3d ago; remove_exited_after 2d"

    def test_exactly_at_the_limit_is_deleted(self) -> None:
        assert rule_of(container(state=ContainerState.EXITED, exited=days(2))) is RuleId.EXITED

    def test_just_under_the_limit_is_kept(self) -> None:
        c = container(state=ContainerState.EXITED, exited=days(2) - timedelta(seconds=1))
        assert rule_of(c) is RuleId.EXITED_WITHIN

    def test_the_exit_time_decides_not_the_creation(self) -> None:
        c = container(state=ContainerState.EXITED, exited=days(1), created=days(300))
        assert rule_of(c) is RuleId.EXITED_WITHIN

    def test_a_never_started_container_counts_from_its_creation(self) -> None:
        old = decision(container(state=ContainerState.CREATED, exited=None, created=days(3)))
        young = container(state=ContainerState.CREATED, exited=None, created=days(1))
        assert old.rule is RuleId.EXITED
        assert old.detail == "created 3d ago, never started; remove_exited_after 2d"
        assert rule_of(young) is RuleId.EXITED_WITHIN

    def test_a_dead_container_goes_like_an_exited_one(self) -> None:
        assert rule_of(container(state=ContainerState.DEAD, exited=days(3))) is RuleId.EXITED

    def test_the_writable_layer_is_what_a_deletion_frees(self) -> None:
        d = decision(container(state=ContainerState.EXITED, size=4096))
        assert d.freed_bytes == 4096


class TestUnmanaged:
    @pytest.mark.parametrize("state", list(ContainerState))
    def test_without_a_section_no_container_is_touched(self, state: ContainerState) -> None:
        c = container(state=state, exited=days(400))
        plan = evaluate(snapshot(containers=(c,)), policy(), NOW)
        (d,) = (d for d in plan.decisions if d.key == c.key)
        assert d.rule is RuleId.UNMANAGED
        assert plan.deletions == ()


def test_deletions_go_oldest_exit_first() -> None:
    cs = [
        container(name=f"c{n}", state=ContainerState.EXITED, exited=days(3 + n)) for n in range(4)
    ]
    plan = evaluate(
        Snapshot(NOW, (), tuple(cs)), policy(images=False, containers=containers_section()), NOW
    )
    assert [d.key for d in plan.deletions] == [c.key for c in reversed(cs)]
