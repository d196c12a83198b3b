"""One disk budget across kinds: soft keeps yield kind by kind, hard keeps never do."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta
from typing import TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gcd.core.budget import Pressure
from gcd.core.evaluate import EVICTION_ORDER, evaluate
from gcd.core.kind import Kind
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.policy import Policy
from gcd.core.records import (
    BuildCacheRecord,
    Container,
    ContainerState,
    Image,
    Network,
    Snapshot,
    Volume,
)
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    cache_record,
    container,
    containers_section,
    days,
    image,
    network,
    no_busy_gate,
    policy,
    rule,
    snapshot,
    volume,
    volumes_section,
)

MINUTE = timedelta(minutes=1)
T = TypeVar("T")


def pressure(used: int, total: int = 1000, low: float = 0.5, high: float = 0.5) -> Pressure:
    return Pressure(used, total, 0, 0, high, low)


def soft_policy() -> Policy:
    """Every kind's soft keep within reach: min_age one minute."""
    return policy(
        rule(younger_than=days(60)),
        min_age=MINUTE,
        containers=containers_section(remove_exited_after=days(2)),
        volumes=volumes_section(anonymous_unused_for=days(7)),
        build_cache=BuildCachePolicy(unused_for=days(7)),
        networks=NetworkPolicy(days(1)),
    )


def one_soft_keep_of_each_stage() -> tuple[Snapshot, list[str]]:
    """100 bytes each: a cache record, an exited container, a dangling and a tagged image, an
    anonymous volume, all soft-kept; and a network, which holds no bytes. Returns the
    snapshot and the ids in eviction order."""
    record = cache_record("r", used=days(1))
    exited = container(None, "job", ContainerState.EXITED, exited=days(1), size=100)
    dangling = image(seed="dangling", age=timedelta(minutes=30))
    tagged = image("app:1", age=days(20))
    anonymous = volume("a" * 64, anonymous=True, unused=days(1))
    snap = snapshot(
        dangling,
        tagged,
        containers=(exited,),
        volumes=(anonymous,),
        build_cache=(record,),
        networks=(network("ci", unused=timedelta(hours=1)),),
    )
    return snap, [record.id, exited.id, dangling.id, tagged.id, anonymous.name]


def test_the_eviction_order_is_the_documented_one() -> None:
    assert EVICTION_ORDER == (
        Kind.BUILD_CACHE,
        Kind.CONTAINER,
        "dangling images",
        Kind.IMAGE,
        Kind.VOLUME,
    )


class TestEvictionAcrossKinds:
    def test_without_pressure_every_soft_keep_stays(self) -> None:
        snap, _ = one_soft_keep_of_each_stage()
        assert evaluate(snap, soft_policy(), NOW, pressure(400)).deletions == ()

    @pytest.mark.parametrize("needed", [1, 2, 3, 4, 5])
    def test_soft_keeps_yield_in_order_and_stop_below_low(self, needed: int) -> None:
        # Below low (500 of 1000) means freeing more than used - 500: `needed` objects.
        snap, ids = one_soft_keep_of_each_stage()
        plan = evaluate(snap, soft_policy(), NOW, pressure(500 + 100 * needed - 50))
        assert {d.key.id for d in plan.deletions} == set(ids[:needed])
        assert all(d.rule is RuleId.PRESSURE for d in plan.deletions)
        assert not plan.shortfall

    def test_networks_never_yield(self) -> None:
        snap, _ = one_soft_keep_of_each_stage()
        plan = evaluate(snap, soft_policy(), NOW, pressure(1000, low=0.01, high=0.1))
        (net,) = (d for d in plan.decisions if d.key.kind is Kind.NETWORK)
        assert net.rule is RuleId.UNUSED_WITHIN
        assert plan.shortfall

    def test_within_a_kind_the_least_recently_used_goes_first(self) -> None:
        older = cache_record("older", used=days(3))
        newer = cache_record("newer", used=days(1))
        snap = snapshot(build_cache=(newer, older))
        plan = evaluate(snap, soft_policy(), NOW, pressure(560))
        assert [d.key.id for d in plan.deletions] == ["older"]
        assert "yields keep.unused_within" in plan.deletions[0].detail
        assert "last used 3d ago" in plan.deletions[0].detail

    def test_the_records_max_size_keeps_yield_too(self) -> None:
        records = [cache_record(f"r{n}", used=days(n + 1)) for n in range(3)]
        pol = replace(soft_policy(), build_cache=BuildCachePolicy(max_size_bytes=10_000))
        plan = evaluate(snapshot(build_cache=tuple(records)), pol, NOW, pressure(620))
        assert [d.key.id for d in plan.deletions] == ["r2", "r1"]
        assert "yields keep.within_size" in plan.deletions[0].detail

    def test_a_kind_without_a_section_never_yields(self) -> None:
        snap, _ = one_soft_keep_of_each_stage()
        pol = replace(soft_policy(), build_cache=None, volumes=None)
        plan = evaluate(snap, pol, NOW, pressure(1000, low=0.01))
        kinds = {d.key.kind for d in plan.deletions}
        assert kinds == {Kind.CONTAINER, Kind.IMAGE}


class TestReleaseUnderPressure:
    def test_evicting_a_container_releases_its_image_in_the_same_plan(self) -> None:
        app = image("app:1", age=days(90))
        job = container(app, "job", ContainerState.EXITED, exited=days(1), size=10)
        pol = policy(min_age=MINUTE, containers=containers_section())
        plan = evaluate(snapshot(app, containers=(job,)), pol, NOW, pressure(600))
        rules = {d.key.id: (d.rule, d.detail) for d in plan.decisions}
        assert rules[job.id][0] is RuleId.PRESSURE
        assert rules[app.id][0] is RuleId.UNKEPT
        assert "released by container job (exited), removed first" in rules[app.id][1]
        assert [d.key.kind for d in plan.deletions] == [Kind.CONTAINER, Kind.IMAGE]

    def test_the_image_a_container_releases_counts_before_the_next_container_yields(self) -> None:
        # Evicting `old` frees 10 bytes of its own and 500 of the image only it holds: enough.
        # `recent` must stay.
        app = image("app:1", age=days(90), layers=("big",))
        old = container(app, "old", ContainerState.EXITED, exited=days(1), size=10)
        recent = container(
            None, "recent", ContainerState.EXITED, exited=timedelta(hours=5), size=10
        )
        snap = replace(
            snapshot(app, containers=(old, recent)),
            unit_sizes={"big": 500, f"container:{old.id}": 10, f"container:{recent.id}": 10},
        )
        pol = policy(min_age=MINUTE, containers=containers_section())
        plan = evaluate(snap, pol, NOW, pressure(800))
        assert {d.key.id for d in plan.deletions} == {old.id, app.id}

    def test_a_parent_record_yields_only_with_its_child(self) -> None:
        # The parent was used longest ago, but frees nothing while its child stays.
        parent = cache_record("p", used=days(3))
        child = cache_record("c", used=days(1), parents=("p",))
        snap = snapshot(build_cache=(parent, child))
        plan = evaluate(snap, soft_policy(), NOW, pressure(560))
        assert [d.key.id for d in plan.deletions] == ["c"]
        assert not plan.shortfall

    def test_a_parent_held_only_by_an_evicted_child_goes_with_it(self) -> None:
        parent = cache_record("p", used=days(30))
        child = cache_record("c", used=days(1), parents=("p",))
        plan = evaluate(snapshot(build_cache=(parent, child)), soft_policy(), NOW, pressure(700))
        rules = {d.key.id: d.rule for d in plan.decisions}
        assert rules == {"c": RuleId.PRESSURE, "p": RuleId.UNUSED}
        assert [d.key.id for d in plan.deletions] == ["c", "p"]

    def test_a_parent_a_staying_child_holds_is_not_counted_as_freed(self) -> None:
        parent = cache_record("p", size=500, used=days(30))
        child = cache_record("c", size=100, used=days(30), parents=("p",), in_use=True)
        other = cache_record("o", size=450, used=days(1))
        snap = snapshot(build_cache=(parent, child, other))
        plan = evaluate(snap, no_busy_gate(soft_policy()), NOW, pressure(900))
        rules = {d.key.id: d.rule for d in plan.decisions}
        assert rules == {"p": RuleId.IN_USE, "c": RuleId.IN_USE, "o": RuleId.PRESSURE}
        assert plan.freed_bytes == 450


# Hard keeps under any pressure.

STATES = list(ContainerState)


@st.composite
def host(draw: st.DrawFn) -> Snapshot:
    n_images = draw(st.integers(0, 5))
    imgs = [
        image(
            *draw(st.sampled_from([(), (f"app:{n}",)])),
            seed=f"i{n}",
            age=timedelta(hours=draw(st.integers(0, 24 * 60))),
        )
        for n in range(n_images)
    ]
    vol_names = [f"v{n}" for n in range(draw(st.integers(0, 4)))]
    net_names = ["bridge", "host", "none"] + [f"n{n}" for n in range(draw(st.integers(0, 3)))]
    containers: list[Container] = []
    for n in range(draw(st.integers(0, 6))):
        of: Image | None = draw(st.sampled_from([None, *imgs]))
        containers.append(
            container(
                of,
                f"c{n}",
                draw(st.sampled_from(STATES)),
                exited=draw(st.sampled_from([None, MINUTE * 10, days(1), days(30)])),
                restart=draw(st.sampled_from(["no", "always"])),
                details_known=draw(st.booleans()),
                volumes=tuple(draw(st.lists(st.sampled_from(vol_names), max_size=2)))
                if vol_names
                else (),
                networks=tuple(
                    f"net-{name}" for name in draw(st.lists(st.sampled_from(net_names), max_size=2))
                ),
                size=draw(st.integers(0, 300)),
            )
        )
    volumes: list[Volume] = [
        volume(
            name,
            anonymous=draw(st.booleans()),
            unused=draw(st.sampled_from([None, days(1), days(30)])),
            size=draw(st.integers(0, 300)),
        )
        for name in vol_names
    ]
    records: list[BuildCacheRecord] = []
    for n in range(draw(st.integers(0, 5))):
        parents = (f"r{n - 1}",) if n and draw(st.booleans()) else ()
        records.append(
            cache_record(
                f"r{n}",
                used=draw(st.sampled_from([MINUTE * 5, days(1), days(30)])),
                in_use=draw(st.booleans()),
                shared=draw(st.booleans()),
                parents=parents,
                size=draw(st.integers(0, 300)),
            )
        )
    networks: list[Network] = [
        network(
            name,
            unused=draw(st.sampled_from([None, days(1), days(30)])),
            endpoints=draw(st.integers(0, 1)),
        )
        for name in net_names
    ]
    networks.append(network("swarm-net", scope="swarm", unused=days(30)))
    return snapshot(
        *imgs,
        containers=tuple(containers),
        volumes=tuple(volumes),
        build_cache=tuple(records),
        networks=tuple(networks),
    )


def guarded(snap: Snapshot, deleted_containers: set[str]) -> set[str]:
    """Ids of what no pressure may ever delete, given the containers the plan removes."""
    staying = [c for c in snap.containers if c.id not in deleted_containers]
    ids = {c.id for c in snap.containers if c.is_active or not c.details_known}
    ids |= {c.image_id for c in staying}
    ids |= {name for c in staying for name in c.volumes}
    ids |= {r.id for r in snap.build_cache if r.in_use or r.shared}
    ids |= {n.id for n in snap.networks if n.is_builtin or n.endpoints}
    ids |= {network_id for c in staying for network_id in c.networks}
    return ids


@settings(max_examples=150, deadline=None)
@given(host(), st.integers(0, 2000), st.floats(0.0, 1.0), st.sampled_from([0.5, 0.95, 1.0]))
def test_under_any_pressure_nothing_guarded_is_ever_deleted(
    snap: Snapshot, used: int, low: float, critical: float
) -> None:
    pol = replace(soft_policy(), containers=containers_section(remove_services_named=("c1",)))
    plan = evaluate(snap, pol, NOW, Pressure(used, 1000, 0, 0, min(low, 0.9), low, critical))
    deleted = {d.key.id for d in plan.deletions}
    containers_gone = {c.id for c in snap.containers if c.id in deleted}
    assert not deleted & guarded(snap, containers_gone)
    # A parent record goes only when each of its children goes too.
    for record in snap.build_cache:
        if record.id in deleted:
            children = [r for r in snap.build_cache if record.id in r.parents]
            assert all(child.id in deleted for child in children)


def shuffled(items: tuple[T, ...], rng: random.Random) -> tuple[T, ...]:
    copy = list(items)
    rng.shuffle(copy)
    return tuple(copy)


@settings(max_examples=100, deadline=None)
@given(host(), st.integers(0, 2000), st.randoms(use_true_random=False))
def test_the_plan_does_not_depend_on_the_order_of_the_snapshot(
    snap: Snapshot, used: int, rng: random.Random
) -> None:
    other = replace(
        snap,
        images=shuffled(snap.images, rng),
        containers=shuffled(snap.containers, rng),
        volumes=shuffled(snap.volumes, rng),
        build_cache=shuffled(snap.build_cache, rng),
        networks=shuffled(snap.networks, rng),
    )
    squeeze = Pressure(used, 1000, 0, 0, 0.5, 0.4)
    assert evaluate(snap, soft_policy(), NOW, squeeze) == evaluate(
        other, soft_policy(), NOW, squeeze
    )


def four_tied(kind: Kind, rotation: int) -> Snapshot:
    """Four soft-kept objects of `kind`, all last used a day ago, the list rotated."""

    def rotated(items: list[T]) -> tuple[T, ...]:
        return tuple(items[rotation:] + items[:rotation])

    if kind is Kind.CONTAINER:
        exited = [
            container(None, f"c{n}", ContainerState.EXITED, exited=days(1), size=100)
            for n in range(4)
        ]
        return snapshot(containers=rotated(exited))
    if kind is Kind.VOLUME:
        vols = [volume(f"{n}" * 64, anonymous=True, unused=days(1)) for n in range(4)]
        return snapshot(volumes=rotated(vols))
    return snapshot(build_cache=rotated([cache_record(f"r{n}", used=days(1)) for n in range(4)]))


@pytest.mark.parametrize("kind", [Kind.CONTAINER, Kind.VOLUME, Kind.BUILD_CACHE])
def test_ties_in_last_use_are_broken_the_same_whatever_the_input_order(kind: Kind) -> None:
    plans = [evaluate(four_tied(kind, r), soft_policy(), NOW, pressure(560)) for r in range(4)]
    assert len(plans[0].deletions) == 1
    assert all(plan == plans[0] for plan in plans)
