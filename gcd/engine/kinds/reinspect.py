"""An engine's answer to a removal, read the same way for containers and volumes: the status
the engine gave, and for a 500 or a timeout, what a fresh inspect says (engine-facts.md §3: a
timed-out request may have been carried out, and a 500 may follow a concurrent removal)."""

from __future__ import annotations

from collections.abc import Callable

from gcd.engine.api import RemoveResult, RemoveStatus
from gcd.engine.outcomes import UNANSWERED, OutcomeStatus, Verdict
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError


def classify_removal(
    result: RemoveResult, *, removed: str, gone: Callable[[], bool], what: str
) -> Verdict:
    """`removed` is the detail of a success; `gone` re-inspects (True: the object no longer
    exists), called only after a 500, a timeout or a lost connection; `what` names the object
    in a detail."""
    if result.status is RemoveStatus.REMOVED:
        return Verdict(OutcomeStatus.REMOVED, removed)
    if result.status is RemoveStatus.NOT_FOUND:
        return Verdict(OutcomeStatus.ALREADY_GONE, result.message)
    if result.status is RemoveStatus.CONFLICT:
        return Verdict(OutcomeStatus.CONFLICT, result.message)
    try:
        vanished = gone()
    except EngineDownError:
        raise
    except (EngineError, EngineNoAnswerError) as exc:
        return Verdict(OutcomeStatus.FAILED, f"{result.message}; re-inspect failed: {exc}")
    if result.status in UNANSWERED:
        if vanished:
            return Verdict(OutcomeStatus.REMOVED, f"{removed} ({result.message}; re-inspected)")
        status = (
            OutcomeStatus.TIMEOUT if result.status is RemoveStatus.TIMEOUT else OutcomeStatus.FAILED
        )
        return Verdict(status, f"{result.message}; {what} is still there")
    if vanished:
        return Verdict(OutcomeStatus.ALREADY_GONE, f"{result.message}; re-inspected: gone")
    return Verdict(OutcomeStatus.FAILED, result.message)
