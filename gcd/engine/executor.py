"""Apply a plan, one image at a time, safely (engine-facts.md §0 and §1.1).

For each planned deletion, in plan order, right before touching it:

1. Re-inspect the image by its full id. Gone → `already_gone`.
2. Re-apply the guards on the fresh record: its tags must be exactly the planned ones, and its
   `Metadata.LastTagTime` no later than the plan (nobody tagged it since the snapshot), else
   `skipped_changed`; no container in any state may use it (one `GET /containers/json?all=1`
   per image, comparing `ImageID` exactly), else `skipped_in_use`.
3. `DELETE /images/<full id>`, never by name: a tag may have moved to a freshly built image
   since the plan, and deleting the name would delete the new image. The daemon is the final
   judge: a container or a tag that appeared after step 2 gives a 409 → `conflict`, counted,
   never retried with force.
4. An image with several tags cannot be deleted by id without force (409 "referenced in
   multiple repositories"). On Docker it is deleted by full id with `force` in that one
   request, so that the engine itself removes exactly the references of this id; force lifts
   only the soft conflicts (other tags, stopped containers), a running container or a child
   image still refuses. On Podman, whose force would remove the image's containers, each
   extra name is untagged *from this id* (`/libpod/images/{id}/untag`), then the image is
   deleted by id without force.
5. The engine's answer is read: a reference it untagged that the plan did not name is logged
   as an error (`image_removed_with_unplanned_references`), and after a forced delete a
   container created from the image in that one round trip is logged
   (`image_removed_under_container`).

Outcomes: 404 → `already_gone`; a 500 whose fresh inspect says the image is gone (20.10's
"unrecognized image ID" after a concurrent delete) → `already_gone`, otherwise `failed`; a
request timeout is re-inspected: gone → `removed`, still there → `timeout`. Any other engine
error is that image's `failed` and the executor goes on. An unreachable engine ends the run
cleanly (`Report.aborted`; the rest `not_attempted`); so does the `stop` event, after the
image in progress.

What is left of the race (README, "Several tags"): only the planned image itself can be hit,
only in the one round trip between step 2 and the forced delete, and only by someone tagging
it or creating a container from it in that moment. A name moved to another image is never
followed: nothing gcd sends names a tag.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog

from gcd.core.plan import Decision, Plan
from gcd.core.references import ReferenceError, parse_reference
from gcd.core.rules import RuleId
from gcd.engine.client import Engine, RemoveResult, RemoveStatus
from gcd.errors import EngineError, EngineUnreachableError, RunRefusedError

__all__ = [
    "ATTENTION",
    "Outcome",
    "OutcomeStatus",
    "Report",
    "classify_after_reinspect",
    "execute",
    "parse_engine_time",
]

log = structlog.get_logger("gcd.executor")

_NONE_TAG = "<none>:<none>"


class OutcomeStatus(StrEnum):
    REMOVED = "removed"
    ALREADY_GONE = "already_gone"
    SKIPPED_CHANGED = "skipped_changed"
    """The fresh record differs from the plan: tags changed, or tagged since the snapshot."""
    SKIPPED_IN_USE = "skipped_in_use"
    """A container (in any state) uses the image now, found by the fresh check."""
    CONFLICT = "conflict"
    """The engine answered 409: kept, counted, never retried with force."""
    FAILED = "failed"
    TIMEOUT = "timeout"
    """The request timed out and a fresh inspect shows the image still there."""
    NOT_ATTEMPTED = "not_attempted"
    """The run ended (stop requested, engine unreachable) before this image."""


ATTENTION = frozenset({OutcomeStatus.FAILED, OutcomeStatus.TIMEOUT})
"""Outcomes where the engine did not do what was asked: a run with any exits non-zero."""


@dataclass(frozen=True, slots=True)
class Outcome:
    image_id: str
    references: tuple[str, ...]
    """The planned image's tags and digests, in the familiar form `docker images` shows."""
    rule: RuleId
    status: OutcomeStatus
    detail: str = ""
    freed_bytes: int = 0
    """The plan's predicted bytes for this image when removed, else 0."""


@dataclass(frozen=True, slots=True)
class Report:
    outcomes: tuple[Outcome, ...]
    aborted: str | None = None
    """Why the run ended before the end of the plan; None when it got through."""

    def count(self, status: OutcomeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)

    @property
    def freed_bytes(self) -> int:
        """Sum of per-image predictions; `cycle.freed_by` counts shared layers once."""
        return sum(o.freed_bytes for o in self.outcomes)

    @property
    def failed(self) -> tuple[Outcome, ...]:
        """The outcomes needing attention: `failed` and `timeout`."""
        return tuple(o for o in self.outcomes if o.status in ATTENTION)


@dataclass(frozen=True, slots=True)
class Verdict:
    """One image's status and why, before it becomes an `Outcome`."""

    status: OutcomeStatus
    detail: str


def _short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def _normalise(raw: str) -> str:
    try:
        return str(parse_reference(raw))
    except ReferenceError:
        return raw  # never equal to a planned (parsed) tag, so the image is skipped


def _tags(record: Mapping[str, Any]) -> dict[str, str]:
    """Normalised tag → the engine's own spelling of it (the name to untag)."""
    return {
        _normalise(raw): raw
        for raw in record.get("RepoTags") or ()
        if isinstance(raw, str) and raw != _NONE_TAG
    }


def _describe(tags: set[str]) -> str:
    return ", ".join(sorted(tags)) or "no tags"


def parse_engine_time(text: object) -> datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds); None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _changed(decision: Decision, record: Mapping[str, Any], since: datetime) -> str | None:
    planned = {str(ref) for ref in decision.image.tags}
    fresh = set(_tags(record))
    if fresh != planned:
        return f"tags changed since the plan: planned {_describe(planned)}, now {_describe(fresh)}"
    metadata = record.get("Metadata")
    tagged = parse_engine_time(metadata.get("LastTagTime") if isinstance(metadata, dict) else None)
    if tagged is not None and tagged > since:
        return f"tagged again at {tagged.isoformat()}, after the plan ({since.isoformat()})"
    return None


def _users(containers: list[dict[str, Any]], image_id: str) -> list[str]:
    return sorted(
        f"{str((c.get('Names') or [str(c.get('Id', ''))[:12]])[0]).lstrip('/')} "
        f"({c.get('State', 'unknown state')})"
        for c in containers
        if c.get("ImageID") == image_id
    )


def classify_after_reinspect(result: RemoveResult, *, gone: bool) -> Verdict:
    """A 500 or a timeout of `DELETE /images/<id>`, judged by a fresh inspect."""
    if result.status is RemoveStatus.TIMEOUT:
        if gone:
            return Verdict(OutcomeStatus.REMOVED, f"deleted by id ({result.message}; re-inspected)")
        return Verdict(OutcomeStatus.TIMEOUT, f"{result.message}; the image is still there")
    if gone:
        return Verdict(OutcomeStatus.ALREADY_GONE, f"{result.message}; re-inspected: gone")
    return Verdict(OutcomeStatus.FAILED, result.message)


class _Attempt:
    """Deleting one planned image. `touched`: a modifying request was sent."""

    def __init__(
        self,
        decision: Decision,
        engine: Engine,
        since: datetime,
    ) -> None:
        self.decision = decision
        self.image_id = decision.image.id
        self.engine = engine
        self.since = since
        self.touched = False
        self.untagged: list[str] = []

    def run(self) -> Verdict:
        try:
            verdict = self._run()
        except EngineError as exc:
            verdict = Verdict(OutcomeStatus.FAILED, str(exc))
        if self.untagged:
            return Verdict(verdict.status, f"{verdict.detail}; untagged {', '.join(self.untagged)}")
        return verdict

    def _run(self) -> Verdict:
        record = self.engine.inspect_image(self.image_id)
        if record is None:
            return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
        changed = _changed(self.decision, record, self.since)
        if changed is not None:
            return Verdict(OutcomeStatus.SKIPPED_CHANGED, changed)
        # The whole list, compared by exact ImageID: Podman's `ancestor` filter misses a
        # container of the image (tried, and test_executor caught it), and this guard must not
        # depend on an engine's filter semantics.
        users = _users(self.engine.list_containers(), self.image_id)
        if users:
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "now used by " + ", ".join(users))
        tags = _tags(record)
        if len(tags) <= 1:
            self.touched = True
            return self._classify(self.engine.remove_image(self.image_id))
        if self.engine.podman:
            return self._untag_then_delete(tags)
        # Several tags: one request by full id, so the engine itself removes exactly the
        # references of this id. Untagging names from here would follow a name another client
        # moved to a new image in the meantime, and delete that image (README, "Several tags").
        self.touched = True
        verdict = self._classify(self.engine.remove_image(self.image_id, force=True))
        if verdict.status is OutcomeStatus.REMOVED:
            users = _users(self.engine.list_containers(), self.image_id)
            if users:  # created in the one round trip since the check above
                log.error(
                    "image_removed_under_container",
                    image=_short(self.image_id),
                    containers=users,
                    detail="created while gcd deleted the image; it keeps its own layers",
                )
                detail = f"{verdict.detail}; meanwhile created from it: {', '.join(users)}"
                return Verdict(verdict.status, detail)
        return verdict

    def _untag_then_delete(self, tags: dict[str, str]) -> Verdict:
        """Podman: untag the extra names from this image id (never by name), then delete by
        id without force. A name that left the image meanwhile is "not known" to it."""
        remaining = set(tags)
        for tag in sorted(tags)[1:]:  # the first tag goes with the delete by id
            reference = parse_reference(tags[tag])
            self.touched = True
            result = self.engine.untag_image_by_id(
                self.image_id, reference.repository, reference.tag or "latest"
            )
            if result.status is not RemoveStatus.REMOVED:
                status = {
                    RemoveStatus.NOT_FOUND: OutcomeStatus.SKIPPED_CHANGED,
                    RemoveStatus.CONFLICT: OutcomeStatus.CONFLICT,
                    RemoveStatus.TIMEOUT: OutcomeStatus.TIMEOUT,
                }.get(result.status, OutcomeStatus.FAILED)
                keeps = _describe(remaining)
                return Verdict(status, f"untagging {tags[tag]}: {result.message}; keeps {keeps}")
            remaining.discard(tag)
            self.untagged.append(tags[tag])
        return self._classify(self.engine.remove_image(self.image_id))

    def _classify(self, result: RemoveResult) -> Verdict:
        if result.status is RemoveStatus.REMOVED:
            return self._removed(result)
        if result.status is RemoveStatus.NOT_FOUND:
            return Verdict(OutcomeStatus.ALREADY_GONE, result.message)
        if result.status is RemoveStatus.CONFLICT:
            return Verdict(OutcomeStatus.CONFLICT, result.message)
        try:
            gone = self.engine.inspect_image(self.image_id) is None
        except EngineError as exc:
            gone = False
            result = RemoveResult(result.status, f"{result.message}; re-inspect failed: {exc}")
        return classify_after_reinspect(result, gone=gone)

    def _removed(self, result: RemoveResult) -> Verdict:
        """The engine's answer, checked: a reference it removed that the plan did not name
        was put on the image in the last round trip, and the operator must hear of it."""
        planned = {str(ref) for ref in self.decision.image.references}
        unplanned = sorted({n for n in result.untagged if _normalise(n) not in planned})
        if not unplanned:
            return Verdict(OutcomeStatus.REMOVED, "deleted by id")
        log.error(
            "image_removed_with_unplanned_references",
            image=_short(self.image_id),
            references=unplanned,
            detail="tagged in the moment between gcd's last check and the delete",
        )
        return Verdict(
            OutcomeStatus.REMOVED, f"deleted by id; also untagged {', '.join(unplanned)}"
        )


def _outcome(decision: Decision, verdict: Verdict) -> Outcome:
    removed = verdict.status is OutcomeStatus.REMOVED
    return Outcome(
        image_id=decision.image.id,
        references=tuple(ref.familiar for ref in decision.image.references),
        rule=decision.rule,
        status=verdict.status,
        detail=verdict.detail,
        freed_bytes=decision.freed_bytes if removed else 0,
    )


def _log(outcome: Outcome) -> None:
    fields = {
        "image": _short(outcome.image_id),
        "references": list(outcome.references),
        "rule": outcome.rule.value,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "freed_bytes": outcome.freed_bytes,
    }
    if outcome.status is OutcomeStatus.REMOVED:
        log.info("image_removed", **fields)
    elif outcome.status in ATTENTION:
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
    """Apply `plan`'s deletions in order; one `Outcome` per planned deletion, logged as one
    `image_removed` or `image_skipped` event and passed to `on_outcome`.

    Raises `RunRefusedError` for a refused plan before touching anything. `stop` ends the run
    after the image in progress: the rest is `not_attempted`, and `Report.aborted` stays None
    (a requested stop is no failure); an unreachable engine sets it.

    Test seam, never used in production: `before_delete(decision)` runs before each image's
    checks, so that tests can change the engine between plan and execution deterministically
    (the integration tests put a proxy in front of the engine for the moments in between).
    """
    if plan.refusal is not None:
        raise RunRefusedError(plan.refusal)
    outcomes: list[Outcome] = []
    aborted: str | None = None
    for decision in plan.deletions:
        if aborted is not None:
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, aborted)
        elif stop is not None and stop.is_set():
            verdict = Verdict(OutcomeStatus.NOT_ATTEMPTED, "stop requested; not attempted")
        else:
            attempt = _Attempt(decision, engine, plan.created_at)
            try:
                if before_delete is not None:
                    before_delete(decision)
                verdict = attempt.run()
            except EngineUnreachableError as exc:
                aborted = f"the engine became unreachable: {exc}"
                log.error("engine_lost", error=str(exc))
                status = OutcomeStatus.FAILED if attempt.touched else OutcomeStatus.NOT_ATTEMPTED
                verdict = Verdict(status, aborted)
        outcome = _outcome(decision, verdict)
        _log(outcome)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return Report(tuple(outcomes), aborted)
