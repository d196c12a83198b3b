"""Metrics for every kind: each per-kind series carries `kind`, exists from the start, and moves
by exactly what the run did to objects of that kind."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from prometheus_client import CollectorRegistry

from gcd.core.kind import Kind
from gcd.core.plan import Decision
from gcd.core.rules import RuleId
from gcd.engine.outcomes import Report
from gcd.metrics.definitions import Metrics, RemovalOutcome, freed_by_kind_and_rule
from gcd.metrics.series import RULES_OF_KIND, deleting, keeping
from tests.unit.builders import NOW
from tests.unit.kinds_plan import (
    ANONYMOUS,
    CACHE,
    EXITED,
    FREED,
    NAMED,
    OLD,
    PINNED,
    PLAN,
    REPORT,
    SERVICE,
    UNNAMED_CACHE,
)

SIZES = {
    OLD.layers[0]: 100,
    PINNED.layers[0]: 100,
    f"container:{EXITED.id}": 300,
    f"container:{SERVICE.id}": 50,
    f"volume:{ANONYMOUS.name}": 4000,
    f"volume:{NAMED.name}": 7000,
    f"build_cache:{CACHE.id}": 900,
    f"build_cache:{UNNAMED_CACHE.id}": 10,
}


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, started_at=NOW.timestamp())


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def run(metrics: Metrics, report: Report = REPORT, freed: int = FREED) -> None:
    metrics.record_run(
        PLAN,
        report,
        freed,
        unit_sizes=SIZES,
        trigger="once",
        duration_seconds=1,
        now=NOW + timedelta(hours=1),
    )


def test_every_kind_has_its_series_from_the_start(registry: CollectorRegistry) -> None:
    Metrics(registry)
    for kind in Kind:
        for rule in deleting(kind):
            assert value(registry, "gcd_reclaimed_bytes_total", kind=kind, rule=rule) == 0
        for rule in keeping(kind):
            assert value(registry, "gcd_kept", kind=kind, rule=rule) == 0
        for outcome in RemovalOutcome:
            assert value(registry, "gcd_removals_total", kind=kind, outcome=outcome) == 0
        assert value(registry, "gcd_reclaimable_bytes", kind=kind) == 0
    # Only rules a kind can give: no noise series.
    assert value(registry, "gcd_kept", kind="network", rule="keep.dangling_within") is None
    assert value(registry, "gcd_reclaimed_bytes_total", kind="volume", rule="delete.exited") is None


def test_label_values_are_closed_sets(registry: CollectorRegistry, metrics: Metrics) -> None:
    run(metrics)
    kinds, rules = set(), set()
    for family in registry.collect():
        for sample in family.samples:
            kinds.add(sample.labels.get("kind"))
            rules.add(sample.labels.get("rule"))
    assert kinds - {None} <= {kind.value for kind in Kind}
    assert rules - {None} <= {rule.value for rule in RuleId}
    # Every rule some kind gives, and every kind gives the rules common to all.
    assert set().union(*RULES_OF_KIND.values()) == set(RuleId)


def test_freed_bytes_are_split_by_kind_and_rule_and_add_up_exactly(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    assert freed_by_kind_and_rule(PLAN, REPORT, SIZES) == {
        (Kind.IMAGE, RuleId.UNKEPT): 100,
        (Kind.CONTAINER, RuleId.EXITED): 300,
        (Kind.VOLUME, RuleId.UNUSED): 4000,
        (Kind.NETWORK, RuleId.UNUSED): 0,
        (Kind.BUILD_CACHE, RuleId.UNUSED): 850,  # the engine's count, not the plan's 900
    }
    run(metrics)
    freed = {
        (kind, rule): value(registry, "gcd_reclaimed_bytes_total", kind=kind, rule=rule)
        for kind in Kind
        for rule in deleting(kind)
    }
    assert freed[(Kind.CONTAINER, RuleId.EXITED)] == 300
    assert freed[(Kind.IMAGE, RuleId.UNKEPT)] == 100
    assert freed[(Kind.VOLUME, RuleId.UNUSED)] == 4000  # the named one hit a conflict
    assert freed[(Kind.BUILD_CACHE, RuleId.UNUSED)] == 850
    assert sum(v or 0 for v in freed.values()) == FREED


def test_removals_kept_and_reclaimable_per_kind(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    metrics.record_plan(PLAN, SIZES)
    reclaimable = {k: value(registry, "gcd_reclaimable_bytes", kind=k) for k in Kind}
    assert reclaimable == {
        Kind.IMAGE: 100,
        Kind.CONTAINER: 300,
        Kind.VOLUME: 11000,
        Kind.BUILD_CACHE: 900,
        Kind.NETWORK: 0,
    }
    run(metrics)
    assert value(registry, "gcd_removals_total", kind="volume", outcome="conflict") == 1
    assert value(registry, "gcd_removals_total", kind="volume", outcome="removed") == 1
    assert value(registry, "gcd_removals_total", kind="network", outcome="removed") == 1
    assert value(registry, "gcd_removals_total", kind="image", outcome="conflict") == 0
    assert value(registry, "gcd_kept", kind="container", rule="keep.service") == 1
    assert value(registry, "gcd_kept", kind="build_cache", rule="keep.shared") == 1
    assert value(registry, "gcd_kept", kind="image", rule="keep.reference") == 1
    assert value(registry, "gcd_reclaimable_bytes", kind="volume") == 7000  # still there
    assert value(registry, "gcd_reclaimable_bytes", kind="container") == 0


def test_deferred_removals_are_capped_per_kind(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    deferred = tuple(
        replace(d, rule=RuleId.RUN_LIMIT) if d.key.kind is Kind.CONTAINER and d.deletes else d
        for d in PLAN.decisions
    )
    metrics.record_run(
        replace(PLAN, decisions=deferred),
        Report(()),
        0,
        unit_sizes=SIZES,
        trigger="once",
        duration_seconds=1,
        now=NOW,
    )
    assert value(registry, "gcd_removals_total", kind="container", outcome="capped") == 1
    assert value(registry, "gcd_removals_total", kind="image", outcome="capped") == 0
    assert value(registry, "gcd_kept", kind="container", rule="keep.run_limit") == 1


def test_a_rule_outside_the_table_is_still_counted_and_reset(
    registry: CollectorRegistry, metrics: Metrics
) -> None:
    odd = Decision(NAMED, RuleId.DANGLING_WITHIN, "", timedelta(0))
    plan = replace(PLAN, decisions=(*PLAN.decisions, odd))
    metrics.record_plan(plan, SIZES)
    assert value(registry, "gcd_kept", kind="volume", rule="keep.dangling_within") == 1
    metrics.record_plan(PLAN, SIZES)
    assert value(registry, "gcd_kept", kind="volume", rule="keep.dangling_within") == 0
