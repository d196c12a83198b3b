"""`evaluate` across kinds: order of deletions, releases, per-run caps, the delete fraction."""

from __future__ import annotations

from datetime import timedelta

import pytest

from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import Container, ContainerState, Snapshot
from gcd.core.rules import RuleId
from tests.unit.builders import (
    NOW,
    cache_record,
    container,
    containers_section,
    days,
    image,
    keep_container,
    network,
    policy,
    snapshot,
    volume,
    volumes_section,
)


def every_kind(
    *, max_deletions: int = 500, max_fraction: float = 1.0, min_age: timedelta = timedelta(hours=1)
) -> Policy:
    return policy(
        min_age=min_age,
        max_deletions=max_deletions,
        max_fraction=max_fraction,
        containers=containers_section(keep_container(labels={"gc.keep": "true"})),
        volumes=volumes_section(),
        build_cache=BuildCachePolicy(unused_for=days(7)),
        networks=NetworkPolicy(days(1)),
    )


def one_of_each() -> Snapshot:
    """One deletable object of every kind; the container uses the image."""
    app = image("app:1")
    job = container(app, "job", ContainerState.EXITED, exited=days(5), size=10)
    return snapshot(
        app,
        containers=(job,),
        volumes=(volume("a" * 64, anonymous=True, unused=days(10)),),
        build_cache=(cache_record("r", used=days(10)),),
        networks=(network("ci", unused=days(3)),),
    )


def rule_by_key(plan: Plan) -> dict[str, RuleId]:
    return {d.key.id: d.rule for d in plan.decisions}


class TestOrder:
    def test_deletions_run_containers_images_volumes_networks_build_cache(self) -> None:
        plan = evaluate(one_of_each(), every_kind(), NOW)
        assert [d.key.kind for d in plan.deletions] == [
            Kind.CONTAINER,
            Kind.IMAGE,
            Kind.VOLUME,
            Kind.NETWORK,
            Kind.BUILD_CACHE,
        ]

    def test_at_the_critical_watermark_images_go_after_every_other_kind(self) -> None:
        full = Pressure(990, 1000, 0, 0, high=0.85, low=0.7, critical=0.95)
        plan = evaluate(one_of_each(), every_kind(), NOW, full)
        assert [d.key.kind for d in plan.deletions] == [
            Kind.CONTAINER,
            Kind.VOLUME,
            Kind.BUILD_CACHE,
            Kind.NETWORK,
            Kind.IMAGE,
        ]

    def test_below_the_critical_watermark_the_order_is_the_usual_one(self) -> None:
        high = Pressure(900, 1000, 0, 0, high=0.85, low=0.7, critical=0.95)
        plan = evaluate(one_of_each(), every_kind(), NOW, high)
        assert [d.key.kind for d in plan.deletions][:2] == [Kind.CONTAINER, Kind.IMAGE]


class TestRelease:
    def test_an_exited_container_and_its_image_go_in_the_same_plan(self) -> None:
        plan = evaluate(one_of_each(), every_kind(), NOW)
        (img,) = (d for d in plan.decisions if d.key.kind is Kind.IMAGE)
        assert img.rule is RuleId.UNKEPT
        assert img.detail == (
            "no keep rule holds: images.keep is empty; released by container job (exited), "
            "removed first"
        )
        assert img.freed_bytes == 100

    @pytest.mark.parametrize(
        ("kept", "why"),
        [
            (container(image("app:1"), "job"), RuleId.ACTIVE),
            (container(image("app:1"), "job", ContainerState.PAUSED), RuleId.ACTIVE),
            (
                container(image("app:1"), "job", ContainerState.EXITED, details_known=False),
                RuleId.DETAILS_UNKNOWN,
            ),
            (
                container(
                    image("app:1"), "job", ContainerState.EXITED, exited=timedelta(minutes=5)
                ),
                RuleId.MIN_AGE,
            ),
            (
                container(image("app:1"), "job", ContainerState.EXITED, labels={"gc.keep": "true"}),
                RuleId.LABEL,
            ),
            (
                container(image("app:1"), "job", ContainerState.EXITED, restart="unless-stopped"),
                RuleId.SERVICE,
            ),
            (
                container(image("app:1"), "job", ContainerState.EXITED, exited=days(1)),
                RuleId.EXITED_WITHIN,
            ),
        ],
        ids=lambda v: v.value if isinstance(v, RuleId) else "",
    )
    def test_a_container_that_stays_keeps_its_image_in_use(
        self, kept: Container, why: RuleId
    ) -> None:
        plan = evaluate(snapshot(image("app:1"), containers=(kept,)), every_kind(), NOW)
        rules = rule_by_key(plan)
        assert rules[kept.id] is why
        assert rules[image("app:1").id] is RuleId.IN_USE


class TestRunLimit:
    def test_a_deferred_container_keeps_its_image(self) -> None:
        imgs = [image(f"app:{n}") for n in range(3)]
        cs = [
            container(i, f"c{n}", ContainerState.EXITED, exited=days(10 - n))
            for n, i in enumerate(imgs)
        ]
        plan = evaluate(snapshot(*imgs, containers=tuple(cs)), every_kind(max_deletions=2), NOW)
        rules = rule_by_key(plan)
        assert [rules[c.id] for c in cs] == [RuleId.EXITED, RuleId.EXITED, RuleId.RUN_LIMIT]
        assert [rules[i.id] for i in imgs] == [RuleId.UNKEPT, RuleId.UNKEPT, RuleId.IN_USE]
        assert {d.key.id for d in plan.deletions} == {cs[0].id, cs[1].id, imgs[0].id, imgs[1].id}

    def test_the_cap_applies_to_each_kind_separately(self) -> None:
        snap = snapshot(
            *(image(f"app:{n}") for n in range(3)),
            volumes=tuple(volume(f"{n}" * 64, anonymous=True, unused=days(10)) for n in range(3)),
            build_cache=tuple(cache_record(f"r{n}", used=days(10)) for n in range(3)),
            networks=tuple(network(f"n{n}", unused=days(3)) for n in range(3)),
        )
        plan = evaluate(snap, every_kind(max_deletions=2), NOW)
        by_kind = {kind: [d for d in plan.decisions if d.key.kind is kind] for kind in Kind}
        for kind in (Kind.IMAGE, Kind.VOLUME, Kind.BUILD_CACHE, Kind.NETWORK):
            rules = sorted(d.rule.value for d in by_kind[kind])
            assert rules.count(RuleId.RUN_LIMIT.value) == 1, kind
        assert len(plan.deletions) == 8


class TestDeleteFraction:
    def test_the_fraction_is_per_kind_not_diluted_by_other_kinds(self) -> None:
        kept_images = [image(f"keep:{n}", age=timedelta(minutes=1)) for n in range(20)]
        gone = [container(name=f"c{n}", state=ContainerState.EXITED) for n in range(2)]
        plan = evaluate(
            snapshot(*kept_images, containers=tuple(gone)), every_kind(max_fraction=0.9), NOW
        )
        assert plan.refusal is not None
        assert "2 of 2 containers" in plan.refusal

    def test_within_the_fraction_the_plan_stands(self) -> None:
        gone = container(name="gone", state=ContainerState.EXITED)
        running = container(name="web")
        plan = evaluate(snapshot(containers=(gone, running)), every_kind(max_fraction=0.5), NOW)
        assert plan.refusal is None
        assert [d.key for d in plan.deletions] == [gone.key]
