"""The closed sets gcd's metrics label by (triggers, cycle results, removal outcomes), and
what a run's results come to in those terms: the split of freed bytes by kind and rule, the
cycle's result. Kept apart from the metric definitions (`gcd.metrics.definitions`), which
record them."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from gcd.core.attribution import freed_by_rule
from gcd.core.kind import Kind
from gcd.core.plan import Plan
from gcd.core.records import Snapshot
from gcd.core.rules import RuleId
from gcd.engine.outcomes import OutcomeStatus, Report

__all__ = [
    "CARRIED_GAUGES",
    "DURATION_BUCKETS",
    "OUTCOME_OF",
    "CycleResult",
    "RemovalOutcome",
    "RunOutcome",
    "Trigger",
    "cycle_result",
    "freed_by_kind_and_rule",
]


class Trigger(StrEnum):
    SCHEDULE = "schedule"
    PRESSURE = "pressure"
    ONCE = "once"
    MANUAL = "manual"


class CycleResult(StrEnum):
    SUCCESS = "success"
    """The cycle ran to its end; single removals may still have failed (see removals)."""
    FAILURE = "failure"
    """The cycle could not run or finish: engine unreachable, an error before executing."""
    REFUSED = "refused"
    """A safety limit refused the plan; nothing was deleted."""
    ABORTED = "aborted"
    """Execution stopped midway (engine lost, shutdown); the rest was not attempted."""


class RemovalOutcome(StrEnum):
    REMOVED = "removed"
    ALREADY_GONE = "already_gone"
    CONFLICT = "conflict"
    CHANGED = "changed"
    IN_USE = "in_use"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CAPPED = "capped"
    """Planned for deletion but deferred by safety.max_deletions_per_run."""
    DEFERRED_BUSY = "deferred_busy"
    """Planned for deletion but deferred while a build ran (keep.busy, gcd.core.busy)."""
    NOT_ATTEMPTED = "not_attempted"


OUTCOME_OF: dict[OutcomeStatus, RemovalOutcome] = {
    OutcomeStatus.REMOVED: RemovalOutcome.REMOVED,
    OutcomeStatus.ALREADY_GONE: RemovalOutcome.ALREADY_GONE,
    OutcomeStatus.SKIPPED_CHANGED: RemovalOutcome.CHANGED,
    OutcomeStatus.SKIPPED_IN_USE: RemovalOutcome.IN_USE,
    OutcomeStatus.CONFLICT: RemovalOutcome.CONFLICT,
    OutcomeStatus.FAILED: RemovalOutcome.FAILED,
    OutcomeStatus.TIMEOUT: RemovalOutcome.TIMEOUT,
    OutcomeStatus.NOT_ATTEMPTED: RemovalOutcome.NOT_ATTEMPTED,
}
# From 10 ms: a cycle on a quiet host takes tens of milliseconds, and a 0.5 s first bucket
# hid them all in one.
DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

# Cumulative series that a run in timer mode continues from the previous textfile.
CARRIED_GAUGES = ("gcd_last_success_timestamp_seconds", "gcd_start_time_seconds")


class RunOutcome(Protocol):
    """What `cycle.run_once` returns (structurally: metrics does not import the cycle)."""

    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def plan(self) -> Plan: ...
    @property
    def report(self) -> Report: ...
    @property
    def freed_bytes(self) -> int: ...


def freed_by_kind_and_rule(
    plan: Plan, report: Report, unit_sizes: Mapping[str, int]
) -> dict[tuple[Kind, RuleId], int]:
    """The bytes each (kind, rule) freed in a run, before scaling to the run's exact total.

    Images share layers, so theirs are attributed unit by unit (gcd.core.attribution: each
    shared layer once). Every other kind's units are its own: an object frees what its
    outcome says, which is the engine's own count where it gives one (a build-cache prune)."""
    removed = [o for o in report.outcomes if o.status is OutcomeStatus.REMOVED]
    images = {o.key: o.rule for o in removed if o.key.kind is Kind.IMAGE}
    split: dict[tuple[Kind, RuleId], int] = {}
    if images:
        image_decisions = [d for d in plan.decisions if d.key.kind is Kind.IMAGE]
        for rule, amount in freed_by_rule(image_decisions, images, unit_sizes).items():
            split[(Kind.IMAGE, rule)] = amount
    for outcome in removed:
        if outcome.key.kind is not Kind.IMAGE:
            part = (outcome.key.kind, outcome.rule)
            split[part] = split.get(part, 0) + outcome.freed_bytes
    return split


def cycle_result(plan: Plan, report: Report) -> CycleResult:
    if plan.refusal is not None:
        return CycleResult.REFUSED
    if report.aborted:
        return CycleResult.ABORTED
    return CycleResult.SUCCESS
