"""Removing one planned image, safely: the image kind's adapter for the executor.

Right before touching a planned image, in plan order (README, "How deletion stays safe"):

1. Re-inspect the image by its full id. Gone → `already_gone`.
2. Re-apply the guards on the fresh record: its tags must be exactly the planned ones, and its
   `Metadata.LastTagTime` no later than the plan (nobody tagged it since the snapshot), else
   `skipped_changed`.
3. `DELETE /images/<full id>`, never by name: a tag may have moved to a freshly built image
   since the plan, and deleting the name would delete the new image. For an image with at
   most one tag the engine is the in-use check: a delete by id without force is refused when
   any container, running or stopped, uses the image (engine-facts §1.1 T2/T6; Podman
   likewise), so no container list is read: two requests per image, whatever the number of
   containers. The engine's 409 (a container, a child image, a tag that appeared after step
   2) is `conflict`, counted, never retried with force.
4. An image with several tags cannot be deleted by id without force (409 "referenced in
   multiple repositories"). On Docker it is deleted by full id with `force` in that one
   request, so that the engine itself removes exactly the references of this id; force lifts
   only the soft conflicts (other tags, stopped containers), so the containers *of this
   image* are read first (`GET /containers/json?filters={"ancestor":[id]}`: the engine
   resolves the id and matches `ImageID` exactly, plus the containers of child images; the
   answer holds only those, so its cost does not grow with the host's containers); a running
   container or a child image still refuses. On Podman, whose force would remove the image's
   containers and whose `ancestor` filter misses some, the whole container list is read, then
   each extra name is untagged *from this id* (`/libpod/images/{id}/untag`), then the image
   is deleted by id without force.
5. The engine's answer is read: a reference it untagged that the plan did not name is logged
   as an error (`image_removed_with_unplanned_references`). A container created from the
   image after the check of step 4 (or whose create was in flight during any delete) is
   found by the run's last container list (`gcd.engine.orphans`).

What is left of the race (README, "Several tags"): only the planned image itself can be hit,
only in the one round trip between step 4's check and the forced delete, and only by someone
tagging it or creating a container from it in that moment. A name moved to another image is
never followed: nothing gcd sends names a tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import structlog

from gcd.core.kind import short_id
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision
from gcd.core.references import InvalidReferenceError, parse_reference
from gcd.engine.api import EngineApi, RemoveResult, RemoveStatus
from gcd.engine.outcomes import OutcomeStatus, Removal, Verdict, classify_after_reinspect
from gcd.engine.times import parse_engine_time
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError

log = structlog.get_logger("gcd.executor")

_NONE_TAG = "<none>:<none>"


def _normalise(raw: str) -> str:
    try:
        return str(parse_reference(raw))
    except InvalidReferenceError:
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


def _changed(decision: Decision, record: Mapping[str, Any], since: datetime) -> str | None:
    planned = {str(ref) for ref in image_of(decision).tags}
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


class ImageRemoval(Removal):
    """Deleting one planned image."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        super().__init__(decision, engine, since)
        self.image = image_of(decision)
        self.image_id = self.image.id
        self.untagged: list[str] = []

    def run(self) -> Verdict:
        verdict = super().run()
        if self.untagged:
            return Verdict(verdict.status, f"{verdict.detail}; untagged {', '.join(self.untagged)}")
        return verdict

    def attempt(self) -> Verdict:
        record = self.engine.inspect_image(self.image_id)
        if record is None:
            return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
        changed = _changed(self.decision, record, self.since)
        if changed is not None:
            return Verdict(OutcomeStatus.SKIPPED_CHANGED, changed)
        tags = _tags(record)
        if len(tags) <= 1:
            # No container list: without force the engine refuses an image any container
            # uses, and its answer is the in-use check (module docstring, step 3).
            self.touched = True
            return self._classify(self.engine.remove_image(self.image_id))
        if self.engine.podman:
            # The whole list, compared by exact ImageID: Podman's `ancestor` filter misses a
            # container of the image (tried, and test_executor caught it), and the untags
            # come before the delete that would refuse.
            users = _users(self.engine.list_containers(), self.image_id)
            if users:
                return Verdict(OutcomeStatus.SKIPPED_IN_USE, "now used by " + ", ".join(users))
            return self._untag_then_delete(tags)
        users = _users(self.engine.list_containers(of_image=self.image_id), self.image_id)
        if users:
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "now used by " + ", ".join(users))
        # Several tags: one request by full id, so the engine itself removes exactly the
        # references of this id. Untagging names from here would follow a name another client
        # moved to a new image in the meantime, and delete that image (README, "Several tags").
        self.touched = True
        return self._classify(self.engine.remove_image(self.image_id, force=True))

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
        except EngineDownError:
            raise
        except (EngineError, EngineNoAnswerError) as exc:
            gone = False
            result = RemoveResult(result.status, f"{result.message}; re-inspect failed: {exc}")
        return classify_after_reinspect(result, gone=gone)

    def _removed(self, result: RemoveResult) -> Verdict:
        """The engine's answer, checked: a reference it removed that the plan did not name
        was put on the image in the last round trip, and the operator must hear of it."""
        planned = {str(ref) for ref in self.image.references}
        unplanned = sorted({n for n in result.untagged if _normalise(n) not in planned})
        if not unplanned:
            return Verdict(OutcomeStatus.REMOVED, "deleted by id")
        log.error(
            "image_removed_with_unplanned_references",
            image=short_id(self.image_id),
            references=unplanned,
            detail="tagged in the moment between gcd's last check and the delete",
        )
        return Verdict(
            OutcomeStatus.REMOVED, f"deleted by id; also untagged {', '.join(unplanned)}"
        )
