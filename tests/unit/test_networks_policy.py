"""The `networks:` section on hand-built snapshots: one class per rule, guards first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.evaluate import evaluate
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.plan import Decision, Plan
from gcd.core.records import Container, ContainerState, Network
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    container,
    containers_section,
    days,
    network,
    policy,
    snapshot,
)

BUILTIN = (
    network("bridge"),
    network("host", driver="host"),
    network("none", driver="null"),
    network("overlay-app", scope="swarm", driver="overlay"),
    network("ingress", scope="swarm", driver="overlay", ingress=True),
    network("my-ingress", driver="overlay", ingress=True),
)


def plan_of(
    *nets: Network,
    unused_for: timedelta | None = timedelta(days=1),
    containers: tuple[Container, ...] = (),
    remove_exited_after: timedelta | None = None,
) -> Plan:
    pol = policy(
        images=False,
        networks=None if unused_for is None else NetworkPolicy(unused_for),
        containers=None
        if remove_exited_after is None
        else containers_section(remove_exited_after=remove_exited_after),
    )
    return evaluate(snapshot(containers=containers, networks=nets), pol, NOW)


def decision(n: Network, **kwargs: object) -> Decision:
    plan = plan_of(n, **kwargs)  # type: ignore[arg-type]
    (only,) = (d for d in plan.decisions if d.key == n.key)
    return only


class TestBuiltinGuard:
    @pytest.mark.parametrize("net", BUILTIN, ids=lambda n: n.name)
    def test_the_engines_own_networks_are_never_touched(self, net: Network) -> None:
        old = decision(net, unused_for=timedelta(seconds=1))
        assert old.rule is RuleId.BUILTIN

    @pytest.mark.parametrize("net", BUILTIN, ids=lambda n: n.name)
    def test_not_even_without_a_section(self, net: Network) -> None:
        assert decision(net, unused_for=None).rule is RuleId.BUILTIN


class TestInUseGuard:
    @pytest.mark.parametrize("state", list(ContainerState))
    def test_a_network_a_container_in_any_state_is_attached_to_is_kept(
        self, state: ContainerState
    ) -> None:
        attached = container(name="app", state=state, networks=("net-ci",))
        d = decision(network("ci", unused=days(30)), containers=(attached,))
        assert d.rule is RuleId.IN_USE
        assert d.detail == f"attached: container app ({state})"

    def test_a_network_the_engine_lists_endpoints_of_is_kept(self) -> None:
        d = decision(network("ci", unused=days(30), endpoints=2))
        assert d.rule is RuleId.IN_USE
        assert d.detail == "2 endpoints"


class TestReleasedInTheSameRun:
    def test_a_network_only_a_removed_container_used_was_used_until_now(self) -> None:
        gone = container(
            name="job", state=ContainerState.EXITED, exited=days(5), networks=("net-ci",)
        )
        plan = plan_of(
            network("ci", unused=days(30)), containers=(gone,), remove_exited_after=days(2)
        )
        rules = {d.key: (d.rule, d.detail) for d in plan.decisions}
        assert rules[gone.key][0] is RuleId.EXITED
        assert rules[network("ci").key] == (
            RuleId.UNUSED_WITHIN,
            "attached to container job (exited), removed first; unused_for 1d",
        )


class TestUnusedFor:
    def test_a_network_unused_for_longer_is_deleted(self) -> None:
        d = decision(network("ci", unused=days(2)))
        assert d.rule is RuleId.UNUSED
        assert d.detail == "unused for 2d; unused_for 1d"
        assert d.freed_bytes == 0

    def test_exactly_at_the_limit_is_deleted(self) -> None:
        assert decision(network("ci", unused=days(1))).rule is RuleId.UNUSED

    def test_just_under_the_limit_is_kept(self) -> None:
        recent = network("ci", unused=days(1) - timedelta(seconds=1))
        assert decision(recent).rule is RuleId.UNUSED_WITHIN

    def test_never_seen_in_use_counts_from_first_sighting(self) -> None:
        assert decision(network("ci", age=days(2))).rule is RuleId.UNUSED
        assert decision(network("ci", age=timedelta(hours=20))).rule is RuleId.UNUSED_WITHIN

    def test_min_age_and_a_future_creation_keep(self) -> None:
        assert decision(network("ci", age=timedelta(minutes=5))).rule is RuleId.MIN_AGE
        future = network("ci", created=NOW + days(1))
        assert decision(future).rule is RuleId.CREATED_IN_FUTURE


class TestUnmanaged:
    def test_without_a_section_no_network_is_touched(self) -> None:
        assert decision(network("ci", unused=days(300)), unused_for=None).rule is (RuleId.UNMANAGED)
