"""What happened to each planned deletion: one vocabulary for every kind."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gcd.core.kind import Key
from gcd.core.plan import Decision
from gcd.core.rules import RuleId
from gcd.engine.api import EngineApi, RemoveResult, RemoveStatus
from gcd.engine.orphans import Orphan
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError


class OutcomeStatus(StrEnum):
    REMOVED = "removed"
    ALREADY_GONE = "already_gone"
    SKIPPED_CHANGED = "skipped_changed"
    """The fresh record differs from the plan (an image: tags changed, or tagged since)."""
    SKIPPED_IN_USE = "skipped_in_use"
    """Something holds the object now (an image: a container in any state uses it)."""
    CONFLICT = "conflict"
    """The engine answered 409: kept, counted, never retried with force."""
    FAILED = "failed"
    TIMEOUT = "timeout"
    """The request timed out and a fresh inspect shows the object still there."""
    NOT_ATTEMPTED = "not_attempted"
    """The run ended (stop requested, engine unreachable) before this object."""


ATTENTION = frozenset({OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT})
"""Outcomes where the engine did not do what was asked: a run with any exits non-zero."""


@dataclass(frozen=True, slots=True)
class Outcome:
    key: Key
    references: tuple[str, ...]
    """How the object is named (an image: its tags and digests, as `docker images` shows
    them)."""
    rule: RuleId
    status: OutcomeStatus
    detail: str = ""
    freed_bytes: int = 0
    """The plan's predicted bytes for this object when removed, else 0."""


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: tuple[Outcome, ...]
    aborted: str | None = None
    """Why the run ended before the end of the plan; None when it got through."""
    orphans: tuple[Orphan, ...] = ()
    """Images removed in the run under a container created from them meanwhile."""
    time_up: str | None = None
    """Why the run stopped early on its time budget (`safety.max_cycle_duration`, the next
    scheduled cycle); the rest is `not_attempted` and left for the next cycle."""
    orphan_check_failed: bool = False
    """The container list after the run's image deletions failed (`gcd.engine.orphans`)."""

    def count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def freed_bytes(self) -> int:
        """Sum of per-object predictions; `cycle.freed_by` counts shared units once."""
        return sum(o.freed_bytes for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        """The outcomes needing attention: `failed` and `timeout`."""
        return tuple(o for o in self.outcomes if o.status in ATTENTION)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One object's status and why, before it becomes an `Outcome`."""

    status: OutcomeStatus
    detail: str
    freed_bytes: int | None = None
    """The engine's own count of bytes freed (a build-cache prune), overriding the plan's."""


class Removal:
    """Removing one planned object of one kind; each kind's adapter subclasses it.
    `touched`: a modifying request was sent (an engine lost after it makes that `failed`)."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        self.decision = decision
        self.engine = engine
        self.since = since
        self.touched = False

    def run(self) -> Verdict:
        """The kind's `attempt`; an engine error, or one request without an answer (a strike,
        `gcd.engine.timeouts`), is this object's `failed`, and the executor goes on. A lost
        engine (refused connection, or gcd giving up on it: `EngineDownError`) ends the run."""
        try:
            return self.attempt()
        except EngineDownError:
            raise
        except (EngineError, EngineNoAnswerError) as exc:
            return Verdict(OutcomeStatus.FAILED, str(exc))

    def attempt(self) -> Verdict:
        raise NotImplementedError


UNANSWERED = frozenset({RemoveStatus.TIMEOUT, RemoveStatus.CONNECTION_LOST})
"""A removal sent whose answer never came: the engine may have carried it out."""


def classify_after_reinspect(result: RemoveResult, *, gone: bool) -> Verdict:
    """A 500, a timeout or a lost connection of `DELETE /images/<id>`, judged by a fresh
    inspect: gone after an unanswered request is `removed` (gcd's request did it)."""
    if result.status in UNANSWERED:
        if gone:
            return Verdict(OutcomeStatus.REMOVED, f"deleted by id ({result.message}; re-inspected)")
        status = (
            OutcomeStatus.TIMEOUT if result.status is RemoveStatus.TIMEOUT else OutcomeStatus.FAILED
        )
        return Verdict(status, f"{result.message}; the image is still there")
    if gone:
        return Verdict(OutcomeStatus.ALREADY_GONE, f"{result.message}; re-inspected: gone")
    return Verdict(OutcomeStatus.FAILED, result.message)
