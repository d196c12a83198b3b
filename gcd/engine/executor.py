"""Apply a plan, one object at a time, safely (engine-facts.md §0 and §1.1).

The loop is the same for every kind; what it takes to re-check and remove one object is the
kind's adapter (`gcd.engine.kinds`): it re-inspects right before, re-applies the guards on the
fresh record, removes without force where the engine allows it, and reads the engine's answer.

Outcomes: 404 → `already_gone`; a 500 whose fresh inspect says the object is gone (20.10's
"unrecognized image ID" after a concurrent delete) → `already_gone`, otherwise `failed`; a
request timeout is re-inspected: gone → `removed`, still there → `timeout`. Any other engine
error is that object's `failed` and the executor goes on. An unreachable engine ends the run
cleanly (`Report.aborted`; the rest `not_attempted`); so does the `stop` event, after the
object in progress. A refused plan is never executed: the cycle does not call the executor
for it, and the executor refuses it again (`RunRefusedError`) if asked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from gcd.core.kind import Kind
from gcd.core.plan import Decision, Plan
from gcd.core.rules import RuleId
from gcd.engine import orphans
from gcd.engine.api import EngineApi
from gcd.engine.kinds import build_cache, containers, images, networks, volumes
from gcd.engine.outcomes import ATTENTION, Outcome, OutcomeStatus, Removal, Report, Verdict
from gcd.errors import EngineUnreachableError, RunRefusedError

__all__ = ["ADAPTERS", "Deadline", "Pacer", "execute"]

log = structlog.get_logger("gcd.executor")


def _outcome(decision: Decision, verdict: Verdict) -> Outcome:
    removed = verdict.status is OutcomeStatus.REMOVED
    return Outcome(
        key=decision.key,
        references=decision.subject.names,
        rule=decision.rule,
        status=verdict.status,
        detail=verdict.detail,
        freed_bytes=(
            (decision.freed_bytes if verdict.freed_bytes is None else verdict.freed_bytes)
            if removed
            else 0
        ),
    )


def _log(outcome: Outcome) -> None:
    kind = outcome.key.kind.value
    fields = {
        kind: outcome.key.short,
        "references": list(outcome.references),
        "rule": outcome.rule.value,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "freed_bytes": outcome.freed_bytes,
    }
    if outcome.status is OutcomeStatus.REMOVED:
        log.info(f"{kind}_removed", **fields)
    elif outcome.status in ATTENTION:
        log.warning(f"{kind}_skipped", **fields)
    else:
        log.info(f"{kind}_skipped", **fields)


ADAPTERS: dict[Kind, Callable[[Decision, EngineApi, datetime], Removal]] = {
    Kind.CONTAINER: containers.ContainerRemoval,
    Kind.IMAGE: images.ImageRemoval,
    Kind.VOLUME: volumes.VolumeRemoval,
    Kind.NETWORK: networks.NetworkRemoval,
    Kind.BUILD_CACHE: build_cache.BuildCacheRemoval,
}
"""How to re-check and remove an object of each kind (`gcd.engine.kinds`)."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """When the run must stop, on the `time.monotonic` clock, and why (`cycle time budget of
    30s used up`, `the next scheduled cycle is due`)."""

    at: float
    reason: str

    @property
    def detail(self) -> str:
        return f"{self.reason}; left for the next cycle"


def _stopped_wait(stop: threading.Event | None) -> Callable[[float], bool]:
    """Waiting that a stop request cuts short; True when it did."""
    if stop is not None:
        return stop.wait

    def wait(seconds: float) -> bool:
        time.sleep(seconds)
        return False

    return wait


class Pacer:
    """`safety.pace`: at most `pace[kind]` removals of a kind per second, by waiting between
    the starts of two attempts of that kind; the run's deadline and a stop request end the
    wait. `clock` and `wait` are injectable so that tests need not sleep."""

    def __init__(
        self,
        pace: Mapping[Kind, float],
        deadline: Deadline | None,
        stop: threading.Event | None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[float], bool] | None = None,
    ) -> None:
        self.pace, self.deadline, self.stop = pace, deadline, stop
        self.clock = clock
        self.wait = wait or _stopped_wait(stop)
        self.last: dict[Kind, float] = {}

    def ready(self, kind: Kind) -> str | None:
        """Wait for `kind`'s turn; None to go on, else why this object is not attempted."""
        rate = self.pace.get(kind)
        if rate is not None and kind in self.last:
            gap = self.last[kind] + 1 / rate - self.clock()
            if gap > 0:
                if self.deadline is not None and self.clock() + gap >= self.deadline.at:
                    return self.deadline.detail
                if self.wait(gap):
                    return "stop requested; not attempted"
        if self.deadline is not None and self.clock() >= self.deadline.at:
            return self.deadline.detail
        self.last[kind] = self.clock()
        return None


def execute(
    plan: Plan,
    engine: EngineApi,
    *,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    relieved: Callable[[Kind], str | None] | None = None,
    pace: Mapping[Kind, float] | None = None,
    deadline: Deadline | None = None,
    pacer: Pacer | None = None,
) -> Report:
    """Apply `plan`'s deletions in order; one `Outcome` per planned deletion, logged as one
    `<kind>_removed` or `<kind>_skipped` event (`image_removed`) and passed to `on_outcome`.

    `relieved` closes the loop of the disk budget: after the deletions of each kind it is
    asked whether the disk is below its low watermark now (measured, not predicted); when it
    answers (why), the remaining `delete.pressure` decisions are `not_attempted`, while the
    policy's own deletions go on.

    `pace` spaces the removals of each kind (`Pacer`); past `deadline` the run stops before
    the next object (an object boundary: one in progress is finished), the rest is
    `not_attempted` with the deadline's reason, logged once as `cycle_time_up`, and
    `Report.time_up` says why. `pacer` replaces both (tests inject its clock).

    Raises `RunRefusedError` for a refused plan before touching anything. `stop` ends the run
    after the object in progress: the rest is `not_attempted`, and `Report.aborted` stays None
    (a requested stop is no failure); an unreachable engine sets it.
    """
    if plan.refusal is not None:
        raise RunRefusedError(plan.refusal)
    outcomes: list[Outcome] = []
    removed_at: dict[str, float] = {}
    aborted: str | None = None
    below_low: str | None = None
    time_up: str | None = None
    pacing = pacer or Pacer(pace or {}, deadline, stop)
    deletions = plan.deletions
    for position, decision in enumerate(deletions):
        halt = None
        if aborted is not None:
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, aborted)
        elif time_up is not None:
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, time_up)
        elif stop is not None and stop.is_set():
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, "stop requested; not attempted")
        elif below_low is not None and decision.rule is RuleId.PRESSURE:
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, below_low)
        elif (halt := pacing.ready(decision.key.kind)) is not None:
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, halt)
            if pacing.deadline is not None and halt == pacing.deadline.detail:
                time_up = halt
                log.warning(
                    "cycle_time_up",
                    detail=halt,
                    done=position,
                    left_for_next=len(deletions) - position,
                )
        else:
            attempt = ADAPTERS[decision.key.kind](decision, engine, plan.created_at)
            try:
                verdict = attempt.run()
            except EngineUnreachableError as exc:
                aborted = f"the engine became unreachable: {exc}"
                log.error("engine_lost", error=str(exc))
                status = OutcomeStatus.FAILED if attempt.touched else OutcomeStatus.NOT_ATTEMPTED
                verdict = Verdict(status, aborted)
            removed = verdict.status is OutcomeStatus.REMOVED
            if removed and isinstance(attempt, images.ImageRemoval):
                removed_at[attempt.image_id] = time.monotonic()
        outcome = _outcome(decision, verdict)
        _log(outcome)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        kind = decision.key.kind
        last_of_kind = position + 1 == len(deletions) or deletions[position + 1].key.kind != kind
        if relieved is not None and below_low is None and aborted is None and last_of_kind:
            below_low = relieved(kind)
    found = orphans.sweep(engine, removed_at, stop) if aborted is None else ()
    return Report(tuple(outcomes), aborted, found, time_up)
