"""Apply a plan, one object at a time, safely (engine-facts.md §0 and §1.1).

The loop is the same for every kind; what it takes to re-check and remove one object is the
kind's adapter (`gcd.engine.kinds`): it re-inspects right before, re-applies the guards on the
fresh record, removes without force where the engine allows it, and reads the engine's answer.

Outcomes: 404 → `already_gone`; a 500 whose fresh inspect says the object is gone (20.10's
"unrecognized image ID" after a concurrent delete) → `already_gone`, otherwise `failed`; a
request timeout is re-inspected: gone → `removed`, still there → `timeout`. Any other engine
error is that object's `failed` and the executor goes on. An unreachable engine ends the run
cleanly (`Report.aborted`; the rest `not_attempted`); so does the `stop` event. Either starts
no further removal and lets the ones in flight finish: the object in progress, and for images
up to `removal_workers - 1` deletions started beside it (`execute`). A refused plan is never
executed: the cycle does not call the executor for it, and the executor refuses it again
(`RunRefusedError`) if asked.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, wait
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
from gcd.engine.parent_walks import Chain
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


_LOST = "the engine became unreachable: "


def _attempt(decision: Decision, engine: EngineApi, since: datetime) -> tuple[Verdict, str | None]:
    """One object's removal; with why the run must end when the engine became unreachable."""
    attempt = ADAPTERS[decision.key.kind](decision, engine, since)
    try:
        return attempt.run(), None
    except EngineUnreachableError as exc:
        aborted = f"{_LOST}{exc}"
        status = OutcomeStatus.FAILED if attempt.touched else OutcomeStatus.NOT_ATTEMPTED
        return Verdict(status, aborted), aborted


def _after_siblings(
    decision: Decision, engine: EngineApi, since: datetime, first: Verdict
) -> tuple[Verdict, str | None]:
    """An image delete answered 409 while other deletions ran beside it: concurrent deletes of
    siblings race on their shared untagged parent and answer a spurious 409 (or 404) for a
    child the engine did delete (engine-facts §7). Tried once more, from the re-inspect, now
    that they are done: gone → `removed` by the first request; a real conflict (a container,
    a child image) answers 409 again."""
    verdict, aborted = _attempt(decision, engine, since)
    if verdict.status is OutcomeStatus.ALREADY_GONE:
        detail = f"deleted by id; the engine answered a concurrent deletion's 409 ({first.detail})"
        return Verdict(OutcomeStatus.REMOVED, f"{detail}; re-inspected: gone"), aborted
    return Verdict(verdict.status, f"{verdict.detail} (tried again after: {first.detail})"), aborted


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
    `<kind>_removed` or `<kind>_skipped` event (`image_removed`) and passed to `on_outcome`,
    in plan order.

    Images are deleted `engine.removal_workers` at a time (a real engine's: 4, as the engine
    deleted 1.5–1.9× faster with 4 concurrent requests on 2 cores and no faster with 8,
    engine-facts §7; 1 where the engine does not say, and whenever `safety.pace` paces images):
    each is started in plan order, after the same checks as a single one (stop, deadline,
    pace), and its outcome reported in plan order; an image first waits for the deletions in
    flight it could race with in the engine's parent walk (`gcd.engine.parent_walks`). A stop, the
    deadline or a lost engine lets the ones in flight finish (at most `removal_workers - 1`
    beyond the object in progress) and starts no more. A 409 of a deletion that ran beside
    others is tried again once they are done (`_after_siblings`), also after a stop: it
    finishes a deletion in flight.

    `relieved` closes the loop of the disk budget: after the deletions of each kind it is
    asked whether the disk is below its low watermark now (measured, not predicted); when it
    answers (why), the remaining `delete.pressure` decisions are `not_attempted`, while the
    policy's own deletions go on.

    `pace` spaces the removals of each kind (`Pacer`); past `deadline` the run stops before
    the next object (an object boundary: the ones in flight are finished), the rest is
    `not_attempted` with the deadline's reason, logged once as `cycle_time_up`, and
    `Report.time_up` says why. `pacer` replaces both (tests inject its clock).

    Raises `RunRefusedError` for a refused plan before touching anything. `stop` ends the run
    after the ones in flight: the rest is `not_attempted`, and `Report.aborted` stays None
    (a requested stop is no failure); an unreachable engine sets it.
    """
    if plan.refusal is not None:
        raise RunRefusedError(plan.refusal)
    pacing = pacer or Pacer(pace or {}, deadline, stop)
    workers = max(1, int(getattr(engine, "removal_workers", 1)))
    if pacing.pace.get(Kind.IMAGE) is not None:
        workers = 1  # a paced run asks for gentleness, not speed
    run = _Run(
        plan, engine, pacing, stop=stop, on_outcome=on_outcome, relieved=relieved, workers=workers
    )
    return run.go()


_Pending = Verdict | Future[tuple[Verdict, str | None]]


_threads = itertools.count(1)


def _in_thread(decision: Decision, engine: EngineApi, since: datetime) -> _Pending:
    """`_attempt` on a thread of its own. A daemon thread, not a `ThreadPoolExecutor`'s: the
    interpreter joins those at exit, so a DELETE the engine never answers would hold a
    stopping daemon past its grace (README, SIGTERM) until the request's timeout; the window
    (`_Run.settle`) bounds how many run at once."""
    future: Future[tuple[Verdict, str | None]] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(_attempt(decision, engine, since))
        except BaseException as exc:  # re-raised in the executor's thread by `result()`
            future.set_exception(exc)

    name = f"gcd-delete-{next(_threads)}"
    threading.Thread(target=run, name=name, daemon=True).start()
    return future


class _Run:
    """One `execute`: the outcomes so far, and what ends or narrows the rest."""

    def __init__(
        self,
        plan: Plan,
        engine: EngineApi,
        pacing: Pacer,
        *,
        stop: threading.Event | None,
        on_outcome: Callable[[Outcome], None] | None,
        relieved: Callable[[Kind], str | None] | None,
        workers: int,
    ) -> None:
        self.plan, self.engine, self.pacing, self.stop = plan, engine, pacing, stop
        self.on_outcome, self.relieved, self.workers = on_outcome, relieved, workers
        self.deletions = plan.deletions
        self.outcomes: list[Outcome] = []
        self.removed_at: dict[str, float] = {}
        self.aborted: str | None = None
        self.below_low: str | None = None
        self.time_up: str | None = None
        self.window: deque[tuple[int, Decision, _Pending]] = deque()
        """Started or decided, not yet reported: plan order."""
        self.crowded: set[int] = set()
        """Positions of image deletions that ran while another one did (`_after_siblings`)."""

    def go(self) -> Report:
        since = self.plan.created_at
        for position, decision in enumerate(self.deletions):
            self.settle(room=self.workers - 1)
            verdict = self.gate(position, decision)
            if verdict is None and self.workers > 1 and decision.key.kind is Kind.IMAGE:
                chain = Chain.of(decision)
                if chain is not None:
                    wait(
                        [
                            f
                            for _, d, f in self.window
                            if isinstance(f, Future) and chain.races(Chain.of(d))
                        ]
                    )
                running = [p for p, _, f in self.window if isinstance(f, Future) and not f.done()]
                if running:
                    self.crowded.update((*running, position))
                self.window.append((position, decision, _in_thread(decision, self.engine, since)))
                continue
            if verdict is None:
                self.settle(room=0)  # another kind starts once every image is reported
                verdict, lost = _attempt(decision, self.engine, since)
                self.lose(lost)
            self.window.append((position, decision, verdict))
        self.settle(room=0)
        found = (
            orphans.sweep(self.engine, self.removed_at, self.stop) if self.aborted is None else ()
        )
        return Report(
            tuple(self.outcomes),
            self.aborted,
            found or (),
            self.time_up,
            orphan_check_failed=found is None,
        )

    def lose(self, lost: str | None) -> None:
        """The run ends when the engine became unreachable: logged once, however many
        deletions in flight met it."""
        if lost is not None and self.aborted is None:
            log.error("engine_lost", error=lost.removeprefix(_LOST))
            self.aborted = lost

    def gate(self, position: int, decision: Decision) -> Verdict | None:
        """Why `decision` is not attempted, or None to attempt it now."""
        if self.aborted is not None:
            return Verdict(OutcomeStatus.NOT_ATTEMPTED, self.aborted)
        if self.time_up is not None:
            return Verdict(OutcomeStatus.NOT_ATTEMPTED, self.time_up)
        if self.stop is not None and self.stop.is_set():
            return Verdict(OutcomeStatus.NOT_ATTEMPTED, "stop requested; not attempted")
        if self.below_low is not None and decision.rule is RuleId.PRESSURE:
            return Verdict(OutcomeStatus.NOT_ATTEMPTED, self.below_low)
        halt = self.pacing.ready(decision.key.kind)
        if halt is None:
            return None
        if self.pacing.deadline is not None and halt == self.pacing.deadline.detail:
            self.time_up = halt
            log.warning(
                "cycle_time_up",
                detail=halt,
                done=position,
                left_for_next=len(self.deletions) - position,
            )
        return Verdict(OutcomeStatus.NOT_ATTEMPTED, halt)

    def settle(self, *, room: int) -> None:
        """Report the finished head of the window, in plan order, waiting for it while more
        than `room` entries are left (0: until every one is reported)."""
        while self.window:
            position, decision, pending = self.window[0]
            if isinstance(pending, Future):
                if not pending.done() and len(self.window) <= room:
                    return
                verdict, lost = pending.result()
                beside = position in self.crowded
                if verdict.status is OutcomeStatus.CONFLICT and beside and self.aborted is None:
                    # Others ran beside it: each finishes first, and none starts meanwhile.
                    others = [p for _, _, p in self.window if isinstance(p, Future)]
                    wait([p for p in others if p is not pending])
                    verdict, lost = _after_siblings(
                        decision, self.engine, self.plan.created_at, verdict
                    )
                self.lose(lost)
            else:
                verdict = pending
            self.window.popleft()
            self.report(position, decision, verdict)

    def report(self, position: int, decision: Decision, verdict: Verdict) -> None:
        if verdict.status is OutcomeStatus.REMOVED and decision.key.kind is Kind.IMAGE:
            self.removed_at[decision.key.id] = time.monotonic()
        outcome = _outcome(decision, verdict)
        _log(outcome)
        self.outcomes.append(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
        kind, deletions = decision.key.kind, self.deletions
        last_of_kind = position + 1 == len(deletions) or deletions[position + 1].key.kind != kind
        open_ = self.below_low is None and self.aborted is None
        if self.relieved is not None and open_ and last_of_kind:
            self.below_low = self.relieved(kind)
