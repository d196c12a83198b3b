"""One collection cycle composed from the parts: snapshot → evaluate → (lock) execute."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from gcd.config.stacks import read_compose_rules
from gcd.core.accounting import StorageAccount
from gcd.core.budget import Pressure
from gcd.core.compose import ComposeImages
from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import ContainerState, Snapshot
from gcd.core.rules import RuleId
from gcd.core.units import spell_duration
from gcd.engine.client import Engine
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.engine.snapshot import take_snapshot
from gcd.host.lock import hold_lock
from gcd.host.state import State

if TYPE_CHECKING:  # `gcd plan` executes nothing: the executor is imported where a run needs it
    from gcd.engine.executor import Deadline, Pacer

log = structlog.get_logger("gcd.cycle")


def utc_now() -> datetime:
    return datetime.now(UTC)


ComposeRead = tuple[tuple[int, ComposeImages], ...]
"""Each compose rule's index and what its files named in this run."""


@dataclass(frozen=True, slots=True)
class Planned:
    snapshot: Snapshot
    plan: Plan
    compose: ComposeRead = ()


@dataclass(frozen=True, slots=True)
class RunResult:
    snapshot: Snapshot
    plan: Plan
    report: Report
    freed_bytes: int
    """Bytes freed by the objects actually removed, shared units counted once."""
    compose: ComposeRead = ()


USING_STATES = frozenset({ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING})
"""A container in these states uses its image now (one being removed no longer does)."""


def read_compose(policy: Policy) -> tuple[Policy, ComposeRead]:
    """The policy with its compose rules' files read now, each failure logged."""
    policy = read_compose_rules(policy)
    read: ComposeRead = tuple(
        (rule.index, rule.compose_images)
        for rule in (policy.images.keep if policy.images else ())
        if rule.compose_images is not None
    )
    for index, images in read:
        for failure in images.failures:
            log.warning(
                "compose_file_unreadable",
                rule=f"images.keep[{index}]",
                path=failure.file,
                reason=failure.reason,
            )
        for pattern in images.unmatched_globs:
            log.warning("compose_glob_matches_nothing", rule=f"images.keep[{index}]", glob=pattern)
    return policy, read


def plan_once(
    engine: Engine,
    policy: Policy,
    state_dir: Path,
    now: datetime | None = None,
    pressure: Pressure | None = None,
) -> Planned:
    """Snapshot and evaluate. Records first-seen times, so local age accrues from here, and
    reconciles last use from the containers that are active now (events are only hints)."""
    moment = now or utc_now()
    policy, compose = read_compose(policy)
    engine.new_run()  # a stall gcd gave up on in an earlier run is tried afresh
    state = State.load(state_dir)
    # Stopped containers are inspected (their exit time, restart policy) only when the policy
    # may remove containers: an images-only policy pays nothing per container.
    snapshot = take_snapshot(
        engine,
        state,
        moment,
        inspect_containers=policy.containers is not None,
        quiet_for=policy.safety.quiet_for,
        unknown_age=policy.safety.unknown_age,
    )
    used_now = {c.image_id for c in snapshot.containers if c.state in USING_STATES}
    for image_id in used_now:
        state.mark_used(image_id, moment)
    # The plan shows that use too (its LAST USE column, `last_used` in JSON), not the last one.
    snapshot = replace(
        snapshot,
        images=tuple(
            replace(i, last_used=moment) if i.id in used_now else i for i in snapshot.images
        ),
    )
    state.forget_missing({image.id for image in snapshot.images})
    state.save()
    plan = evaluate(snapshot, policy, moment, pressure)
    found = plan.unrecorded
    if found is not None:  # once per image: the next plan reads them as recorded
        log.info(
            "ages_unrecorded",
            images=found.count,
            start=found.start.value,
            eligible_from=found.eligible_from.isoformat() if found.eligible_from else None,
            detail=found.describe(),
        )
    return Planned(snapshot, plan, compose)


def freed_by(snapshot: Snapshot, report: Report) -> int:
    """Bytes the removed objects freed, shared units counted once; for build cache the
    engine's own count (`SpaceReclaimed`), which knows what a record shared."""
    removed = [o for o in report.outcomes if o.status is OutcomeStatus.REMOVED]
    counted = {o.key for o in removed if o.key.kind is not Kind.BUILD_CACHE}
    engine_counted = sum(o.freed_bytes for o in removed if o.key.kind is Kind.BUILD_CACHE)
    account = StorageAccount.of(snapshot)
    return account.freed_by(r for r in snapshot.records if r.key in counted) + engine_counted


def usage_after(result: RunResult) -> dict[Kind, int]:
    """Bytes Docker's objects hold per kind after the run, by the snapshot's accounting (its
    one `GET /system/df` and the image layers), less what the run removed: no second df."""
    removed = {o.key for o in result.report.outcomes if o.status is OutcomeStatus.REMOVED}
    account = StorageAccount.of(result.snapshot)
    return account.bytes_by_kind(r for r in result.snapshot.records if r.key not in removed)


def _relief(
    plan: Plan, remeasure: Callable[[], Pressure | None] | None
) -> Callable[[Kind], str | None] | None:
    """After each kind's deletions under pressure: is the disk below low now, measured?"""
    if plan.pressure is None or remeasure is None:
        return None

    def relieved(kind: Kind) -> str | None:
        now = remeasure()
        if now is None or max(now.bytes_ratio, now.inodes_ratio) >= now.low:
            return None
        log.info("pressure_relieved", after_kind=kind.value, detail=now.describe())
        return f"not needed: {now.describe()} after the {kind.value} deletions, below low"

    return relieved


def _retry_images(plan: Plan, report: Report, engine: Engine, pacer: Pacer) -> Report:
    """At the critical watermark images go last and those the full engine could not delete
    (HTTP 500 while rewriting its metadata) are tried once more, now that the other kinds
    have freed space."""
    from gcd.engine.executor import execute  # noqa: PLC0415 (see TYPE_CHECKING)

    failed = {
        o.key
        for o in report.outcomes
        if o.key.kind is Kind.IMAGE and o.status is OutcomeStatus.FAILED
    }
    freed_other = any(
        o.status is OutcomeStatus.REMOVED and o.key.kind is not Kind.IMAGE for o in report.outcomes
    )
    if not failed or not freed_other:
        return report
    log.info("images_retried", images=len(failed), reason="critical watermark")
    retry = execute(
        replace(plan, decisions=tuple(d for d in plan.decisions if d.key in failed)),
        engine,
        stop=pacer.stop,
        pacer=pacer,
    )
    again = {o.key: o for o in retry.outcomes}
    outcomes = tuple(again.get(o.key, o) for o in report.outcomes)
    return Report(
        outcomes,
        report.aborted or retry.aborted,
        report.orphans + retry.orphans,
        report.time_up or retry.time_up,
        orphan_check_failed=report.orphan_check_failed or retry.orphan_check_failed,
    )


def deadline_of(policy: Policy, started: float, next_cycle: float | None) -> Deadline | None:
    """The earlier of `safety.max_cycle_duration` from `started` and, for a paced policy,
    the next scheduled cycle (both on the monotonic clock). Unpaced, a cycle is not cut at
    the next fire time: the next cycle would only take a new snapshot and go on with the
    same removals, as fast."""
    from gcd.engine.executor import Deadline  # noqa: PLC0415 (see TYPE_CHECKING)

    budget = policy.safety.max_cycle_duration
    candidates: list[Deadline] = []
    if budget is not None:
        candidates.append(
            Deadline(
                started + budget.total_seconds(),
                f"cycle time budget of {spell_duration(budget)} (safety.max_cycle_duration) "
                "used up",
            )
        )
    if next_cycle is not None and policy.safety.pace:
        candidates.append(Deadline(next_cycle, "the next scheduled cycle is due"))
    return min(candidates, key=lambda d: d.at, default=None)


def run_once(
    engine: Engine,
    policy: Policy,
    state_dir: Path,
    *,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    pressure: Pressure | None = None,
    remeasure: Callable[[], Pressure | None] | None = None,
    trigger: str = "once",
    next_cycle: float | None = None,
) -> RunResult:
    """Plan and execute under the host-wide lock. A plan that a safety limit refuses is not
    executed: the result carries it (`plan.refusal`) with an empty report.

    Under `pressure`, `remeasure` reads the disk again after each kind's deletions, and the
    pressure evictions stop as soon as it is below low; at the critical watermark images go
    last and are retried once if the full engine refused them.

    `safety.pace` spaces the removals; the run stops at an object boundary once past
    `safety.max_cycle_duration` or, paced, at `next_cycle` (the daemon's next fire time, on
    the monotonic clock), leaving the rest for the next cycle (`Report.time_up`)."""
    from gcd.engine.executor import Pacer, execute  # noqa: PLC0415 (see TYPE_CHECKING)

    started = time.monotonic()
    with hold_lock(state_dir):
        planned = plan_once(engine, policy, state_dir, now, pressure)
        if planned.plan.refusal is not None:
            log.warning("run_refused", trigger=trigger, refusal=planned.plan.refusal)
            return RunResult(planned.snapshot, planned.plan, Report(()), 0, planned.compose)
        plan = planned.plan
        if plan.busy is not None:
            deferred = Counter(d.key.kind.value for d in plan.decisions if d.rule is RuleId.BUSY)
            log.warning(
                "busy_deferred",
                trigger=trigger,
                detail=plan.busy,
                deferred=sum(deferred.values()),
                by_kind=dict(deferred),
            )
        pacer = Pacer(policy.safety.pace, deadline_of(policy, started, next_cycle), stop)
        report = execute(
            plan,
            engine,
            stop=stop,
            on_outcome=on_outcome,
            relieved=_relief(plan, remeasure),
            pacer=pacer,
        )
        if pressure is not None and pressure.above_high and pressure.critical_reached:
            report = _retry_images(plan, report, engine, pacer)
    freed = freed_by(planned.snapshot, report)
    log.info(
        "run_finished",
        trigger=trigger,
        pressure=planned.plan.pressure,
        objects=len(planned.plan.decisions),
        planned_deletions=len(planned.plan.deletions),
        removed=report.count(OutcomeStatus.REMOVED),
        skipped=len(report.outcomes) - report.count(OutcomeStatus.REMOVED),
        freed_bytes=freed,
        aborted=report.aborted,
        busy=planned.plan.busy,
        time_up=report.time_up,
        left_for_next=report.count(OutcomeStatus.NOT_ATTEMPTED) if report.time_up else 0,
    )
    return RunResult(planned.snapshot, planned.plan, report, freed, planned.compose)
