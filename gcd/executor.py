"""Apply a plan, one image at a time, safely (engine-facts.md §0 and §1.1).

For each planned deletion, right before touching it: re-inspect by full id and re-apply the
guards on the fresh record (still there, same tags, no container uses it); anything changed →
skip. Never `force`. Delete by full id, never by name: a tag may have moved to a freshly built
image since the plan, and deleting the name would delete the new image.

An image with several tags cannot be deleted by id without force (409), so its extra tags are
untagged by name one by one, each only after a fresh inspect shows that name still resolves to
the planned id; then the image is deleted by id. The residual race: between that inspect and
the untag (one round trip), another client may move the tag to another image; the untag then
removes the tag from that image, and if it was that image's last reference and no container
uses it, the engine deletes it. Untagging only ever happens while the planned image keeps
another name, so it never leaves a dangling image that a container still uses.

Outcomes: 404, or a 500 whose fresh inspect says the image is gone → already_gone; 409 →
conflict (kept, counted, never retried with force); a timeout is re-inspected before it is
counted. An unreachable engine ends the run cleanly: the rest is `not_attempted`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import structlog

from gcd.engine import Engine, RemoveResult, RemoveStatus
from gcd.errors import EngineUnreachableError, RunRefusedError
from gcd.plan import Decision, Plan
from gcd.rules import RuleId
from gcd.snapshot import parse_references

log = structlog.get_logger("gcd.executor")


class OutcomeStatus(StrEnum):
    REMOVED = "removed"
    ALREADY_GONE = "already_gone"
    SKIPPED_CHANGED = "skipped_changed"
    SKIPPED_IN_USE = "skipped_in_use"
    CONFLICT = "conflict"
    FAILED = "failed"
    TIMEOUT = "timeout"
    NOT_ATTEMPTED = "not_attempted"


@dataclass(frozen=True, slots=True)
class Outcome:
    image_id: str
    references: tuple[str, ...]
    rule: RuleId
    status: OutcomeStatus
    detail: str = ""
    freed_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: tuple[Outcome, ...]
    aborted: str | None = None

    def count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def freed_bytes(self) -> int:
        """Sum of per-image predictions; `cycle.freed_by` counts shared layers once."""
        return sum(o.freed_bytes for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        return tuple(
            o for o in self.outcomes if o.status in (OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT)
        )


class _Skip(Exception):  # control flow within one image; never escapes
    def __init__(self, status: OutcomeStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _fresh_tags(record: dict[str, Any]) -> set[str]:
    return {str(ref) for ref in parse_references(record.get("RepoTags"))}


def _check_guards(decision: Decision, engine: Engine) -> dict[str, Any]:
    image = decision.image
    fresh = engine.inspect_image(image.id)
    if fresh is None:
        raise _Skip(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
    planned = {str(ref) for ref in image.tags}
    now_tagged = _fresh_tags(fresh)
    if now_tagged != planned:
        added = sorted(now_tagged - planned)
        removed = sorted(planned - now_tagged)
        raise _Skip(
            OutcomeStatus.SKIPPED_CHANGED,
            f"tags changed since the plan (added {added}, removed {removed})",
        )
    users = [
        str((c.get("Names") or [c["Id"][:12]])[0]).lstrip("/")
        for c in engine.list_containers()
        if c.get("ImageID") == image.id
    ]
    if users:
        raise _Skip(OutcomeStatus.SKIPPED_IN_USE, "now used by container " + ", ".join(users))
    return fresh


def _classify(result: RemoveResult, decision: Decision, engine: Engine) -> Outcome | None:
    """None when the removal went through; an Outcome for everything else."""
    image = decision.image
    status = result.status
    if status is RemoveStatus.REMOVED:
        return None
    if status is RemoveStatus.NOT_FOUND:
        return _outcome(decision, OutcomeStatus.ALREADY_GONE, result.message)
    if status is RemoveStatus.CONFLICT:
        return _outcome(decision, OutcomeStatus.CONFLICT, result.message)
    gone = engine.inspect_image(image.id) is None
    if status is RemoveStatus.TIMEOUT:
        if gone:
            return None
        return _outcome(decision, OutcomeStatus.TIMEOUT, result.message)
    if gone:  # e.g. 20.10's 500 "unrecognized image ID" after a concurrent delete
        return _outcome(decision, OutcomeStatus.ALREADY_GONE, result.message)
    return _outcome(decision, OutcomeStatus.FAILED, result.message)


def _outcome(decision: Decision, status: OutcomeStatus, detail: str, freed: int = 0) -> Outcome:
    return Outcome(
        image_id=decision.image.id,
        references=tuple(ref.familiar for ref in decision.image.tags),
        rule=decision.rule,
        status=status,
        detail=detail,
        freed_bytes=freed,
    )


def remove_image(decision: Decision, engine: Engine) -> Outcome:
    """Remove one planned image, re-checking everything first."""
    image = decision.image
    try:
        _check_guards(decision, engine)
        extra = sorted(str(ref) for ref in image.tags)[1:]
        for name in extra:
            resolved = engine.inspect_image(name)
            if resolved is None or resolved.get("Id") != image.id:
                raise _Skip(OutcomeStatus.SKIPPED_CHANGED, f"{name} no longer names this image")
            untagged = engine.remove_image(name)
            problem = _classify(untagged, decision, engine)
            if problem is not None and problem.status is not OutcomeStatus.ALREADY_GONE:
                return problem
        problem = _classify(engine.remove_image(image.id), decision, engine)
    except _Skip as skip:
        return _outcome(decision, skip.status, skip.detail)
    if problem is not None:
        return problem
    return _outcome(decision, OutcomeStatus.REMOVED, decision.detail, decision.freed_bytes)


def _log(outcome: Outcome) -> None:
    fields = {
        "image": outcome.image_id.removeprefix("sha256:")[:12],
        "references": list(outcome.references),
        "rule": outcome.rule.value,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "freed_bytes": outcome.freed_bytes,
    }
    if outcome.status is OutcomeStatus.REMOVED:
        log.info("image_removed", **fields)
    elif outcome.status in (OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT):
        log.warning("image_skipped", **fields)
    else:
        log.info("image_skipped", **fields)


def execute(
    plan: Plan,
    engine: Engine,
    *,
    stop: threading.Event | None = None,
    on_outcome: Callable[[Outcome], None] | None = None,
    before_delete: Callable[[Decision], None] | None = None,
) -> Report:
    """Apply `plan`'s deletions in order. `before_delete` is a test seam: it runs after
    planning and before each image's checks, so tests can race the executor deterministically."""
    if plan.refusal is not None:
        raise RunRefusedError(plan.refusal)
    outcomes: list[Outcome] = []
    aborted: str | None = None
    for decision in plan.deletions:
        if aborted is not None or (stop is not None and stop.is_set()):
            reason = aborted or "stop requested"
            outcome = _outcome(decision, OutcomeStatus.NOT_ATTEMPTED, reason)
        else:
            if before_delete is not None:
                before_delete(decision)
            try:
                outcome = remove_image(decision, engine)
            except EngineUnreachableError as exc:
                aborted = str(exc)
                outcome = _outcome(decision, OutcomeStatus.NOT_ATTEMPTED, aborted)
                log.error("engine_lost", error=aborted)
            else:
                _log(outcome)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return Report(tuple(outcomes), aborted)
