"""One collection cycle composed from the parts: snapshot → evaluate → (lock) execute."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gcd.core.accounting import StorageAccount
from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import ContainerState, Snapshot
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.engine.snapshot import take_snapshot
from gcd.host.lock import hold_lock
from gcd.host.state import State

log = structlog.get_logger("gcd.cycle")

DEFAULT_STATE_DIR = Path("/var/lib/gcd")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Planned:
    snapshot: Snapshot
    plan: Plan


@dataclass(frozen=True, slots=True)
class RunResult:
    snapshot: Snapshot
    plan: Plan
    report: Report
    freed_bytes: int
    """Bytes freed by the images actually removed, shared layers counted once."""


ACTIVE_STATES = frozenset(
    {ContainerState.RUNNING, ContainerState.PAUSED, ContainerState.RESTARTING}
)


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
    state = State.load(state_dir)
    snapshot = take_snapshot(engine, state, moment)
    for container in snapshot.containers:
        if container.state in ACTIVE_STATES:
            state.mark_used(container.image_id, moment)
    state.forget_missing({image.id for image in snapshot.images})
    state.save()
    return Planned(snapshot, evaluate(snapshot, policy, moment, pressure))


def freed_by(snapshot: Snapshot, report: Report) -> int:
    gone = {o.key for o in report.outcomes if o.status is OutcomeStatus.REMOVED}
    return StorageAccount.of(snapshot).freed_by(r for r in snapshot.records if r.key in gone)


def run_once(
    engine: Engine,
    policy: Policy,
    state_dir: Path,
    *,
    now: datetime | None = None,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    pressure: Pressure | None = None,
    trigger: str = "once",
) -> RunResult:
    """Plan and execute under the host-wide lock. A plan that a safety limit refuses is not
    executed: the result carries it (`plan.refusal`) with an empty report."""
    with hold_lock(state_dir):
        planned = plan_once(engine, policy, state_dir, now, pressure)
        if planned.plan.refusal is not None:
            log.warning("run_refused", trigger=trigger, refusal=planned.plan.refusal)
            return RunResult(planned.snapshot, planned.plan, Report(()), 0)
        report = execute(planned.plan, engine, stop=stop, on_outcome=on_outcome)
    freed = freed_by(planned.snapshot, report)
    log.info(
        "run_finished",
        trigger=trigger,
        pressure=planned.plan.pressure,
        images=len(planned.plan.decisions),
        planned_deletions=len(planned.plan.deletions),
        removed=report.count(OutcomeStatus.REMOVED),
        skipped=len(report.outcomes) - report.count(OutcomeStatus.REMOVED),
        freed_bytes=freed,
        aborted=report.aborted,
    )
    return RunResult(planned.snapshot, planned.plan, report, freed)
