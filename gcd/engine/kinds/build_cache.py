"""BuildKit's build cache: reading its records, and removing one planned record safely.

**Reading.** The records come from `GET /system/df`'s `BuildCache` list, which the snapshot
reads once per cycle anyway (container and volume sizes are there too). An engine without a
build cache (Podman's compatible API answers an empty list or none; an old engine may omit the
field) gives no records, never an error. API 1.42 renamed `Parent` (one id) to `Parents` (a
list), which Docker 26.1 sends as `" Parents"`; all three are read. `LastUsedAt` is null for
a record never used since it was made.

**Removing one record** (`BuildCacheRemoval`), right before, in plan order:

1. Re-read the build cache alone with `GET /system/df?type=build-cache` (API 1.42+: BuildKit's
   own record list, without the container-layer and volume walks of a full df). The record
   must still be listed (else `already_gone`), not `InUse` (`skipped_in_use`: a build holds
   it) and not `Shared` (`skipped_changed`: its data became an image's layer, and removing it
   would free nothing the plan counted).
   On API 1.41 (Docker 20.10) `type` does not exist and the only listing is a full
   `GET /system/df`, which walks every container's writable layer and every volume: seconds
   to minutes on a busy host, once per record, and 20.10 refuses a second df while one runs.
   So there gcd does not re-read first: BuildKit itself never prunes a record a build holds
   (it prunes only records without references), and the engine's answer below tells what
   happened.
2. `POST /build/prune` restricted to this record's full id (`Engine.prune_build_cache_record`),
   with `all=false`, so that BuildKit itself refuses a record an image shares at that moment
   (the final check on 1.41, where step 1 is skipped). BuildKit never prunes the `internal`
   and `frontend` types without `all=true`, so those two are sent with `all=true`, after
   step 1 where there is one; on 1.41 such a record, shared since the plan, would go (it
   frees nothing then, and an image keeps its data).
3. The record's id must be in the engine's `CachesDeleted` for `removed`; the bytes freed are
   the engine's `SpaceReclaimed` (`Verdict.freed_bytes`), not the plan's estimate. When the
   engine deleted nothing, the cache is read again where that is cheap, to say why: gone
   (`already_gone`), held by a build (`skipped_in_use`), shared with an image since
   (`skipped_changed`), or still the parent of another record (`conflict`: BuildKit keeps a
   parent while a child references it; a plan should list a child before its parents, or
   the parent goes in a later cycle). A concurrent prune (409) is a `conflict` too; a lost
   answer is judged by a fresh listing where there is one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog

from gcd.core.plan import Decision
from gcd.core.records import EPOCH, BuildCacheRecord
from gcd.engine.api import EngineApi, RemoveResult, RemoveStatus
from gcd.engine.outcomes import UNANSWERED, OutcomeStatus, Removal, Verdict
from gcd.engine.times import parse_engine_time, parse_go_time
from gcd.errors import EngineDownError, EngineError, EngineNoAnswerError

__all__ = ["BuildCacheRemoval", "read_build_cache", "read_record", "unit_sizes"]

log = structlog.get_logger("gcd.executor")

ALL_ONLY_TYPES = frozenset({"internal", "frontend"})
"""Record types BuildKit prunes only with `all=true` (`cache/manager.go` `pruneOnce`)."""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _parents(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """`Parents` (API 1.42+, a list) or `Parent` (1.41, one id or ""). Docker 26.1 spells
    the key `" Parents"`, with a leading space (a typo in moby's struct tag; seen in API
    1.45): read it too, or every record there looks parentless."""
    parents = raw.get("Parents", raw.get(" Parents"))
    if isinstance(parents, list):
        return tuple(str(p) for p in parents if isinstance(p, str) and p)
    parent = raw.get("Parent")
    return (parent,) if isinstance(parent, str) and parent else ()


def read_record(raw: Mapping[str, Any]) -> BuildCacheRecord | None:
    """One `BuildCache` entry, or None when it has no id."""
    record_id = raw.get("ID")
    if not isinstance(record_id, str) or not record_id:
        return None
    created = parse_engine_time(raw.get("CreatedAt"))
    return BuildCacheRecord(
        id=record_id,
        type=str(raw.get("Type") or "regular"),
        description=str(raw.get("Description") or ""),
        size_bytes=_int(raw.get("Size")),
        created=created or EPOCH,
        last_used=parse_go_time(raw["LastUsedAt"]) if raw.get("LastUsedAt") else None,
        in_use=raw.get("InUse") is True,
        shared=raw.get("Shared") is True,
        parents=_parents(raw),
        usage_count=_int(raw.get("UsageCount")),
    )


def read_build_cache(df: Mapping[str, Any]) -> tuple[BuildCacheRecord, ...]:
    """The records of `GET /system/df`'s `BuildCache`; none when the engine has no build
    cache (the field missing or null, as Podman and engines without BuildKit answer)."""
    entries = df.get("BuildCache")
    if not isinstance(entries, list):
        return ()
    records = (read_record(e) for e in entries if isinstance(e, Mapping))
    return tuple(r for r in records if r is not None)


def unit_sizes(records: Sequence[BuildCacheRecord]) -> dict[str, int]:
    """The snapshot's `unit_sizes` for the build cache: `build_cache:<id>` → the bytes the
    record holds on its own. A shared record's data is an image's layer, already counted
    with the image (and never freed by removing the record): 0, so nothing counts twice."""
    return {
        unit: 0 if record.shared else record.size_bytes
        for record in records
        for unit in record.units
    }


def _children(records: Sequence[BuildCacheRecord], record_id: str) -> list[str]:
    return sorted(r.id for r in records if record_id in r.parents)


class BuildCacheRemoval(Removal):
    """Pruning one planned build cache record by its full id."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        super().__init__(decision, engine, since)
        if not isinstance(decision.subject, BuildCacheRecord):
            raise TypeError(f"{decision.key} is not a build cache record")
        self.record = decision.subject

    def _fresh(self) -> tuple[BuildCacheRecord, ...] | None:
        listed = self.engine.build_cache_records()
        if listed is None:
            return None
        return read_build_cache({"BuildCache": listed})

    def attempt(self) -> Verdict:
        fresh = self._fresh()
        if fresh is not None:
            found = next((r for r in fresh if r.id == self.record.id), None)
            if found is None:
                return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
            if found.in_use:
                return Verdict(OutcomeStatus.SKIPPED_IN_USE, "a build holds it now")
            if found.shared:
                return Verdict(
                    OutcomeStatus.SKIPPED_CHANGED,
                    "now shared with an image: removing it would free nothing",
                )
        self.touched = True
        keep_shared = self.record.type not in ALL_ONLY_TYPES
        result = self.engine.prune_build_cache_record(self.record.id, keep_shared=keep_shared)
        if result.status is RemoveStatus.NOT_FOUND:
            return Verdict(OutcomeStatus.ALREADY_GONE, result.message)
        if result.status is RemoveStatus.CONFLICT:
            return Verdict(OutcomeStatus.CONFLICT, result.message)
        if result.status in UNANSWERED:
            return self._timed_out(result)
        if result.status is not RemoveStatus.REMOVED:
            return Verdict(OutcomeStatus.FAILED, result.message)
        others = sorted(set(result.deleted) - {self.record.id})
        if others:  # an anchored full id selects one record; never seen, but said loudly
            log.error("build_cache_pruned_more", record=self.record.id, also=others)
        if self.record.id in result.deleted:
            detail = "pruned by id"
            if others:
                detail += f"; the engine also pruned {', '.join(others)}"
            return Verdict(OutcomeStatus.REMOVED, detail, freed_bytes=result.reclaimed_bytes or 0)
        return self._nothing_deleted()

    def _timed_out(self, result: RemoveResult) -> Verdict:
        """The prune's answer was lost (a timeout, a reset): gone in a fresh listing →
        `removed`, with the plan's bytes (the engine's count went with the answer); else
        `timeout`, or `failed` after a lost connection."""
        message = result.message
        try:
            fresh = self._fresh()
        except EngineDownError:
            raise
        except (EngineError, EngineNoAnswerError) as exc:
            return Verdict(OutcomeStatus.FAILED, f"{message}; re-reading the build cache: {exc}")
        if fresh is not None and all(r.id != self.record.id for r in fresh):
            return Verdict(OutcomeStatus.REMOVED, f"pruned by id ({message}; re-read)")
        status = (
            OutcomeStatus.TIMEOUT if result.status is RemoveStatus.TIMEOUT else OutcomeStatus.FAILED
        )
        return Verdict(status, f"{message}; the record may still be there")

    def _nothing_deleted(self) -> Verdict:
        """The engine pruned nothing: say why, where the cache can be re-read cheaply."""
        try:
            fresh = self._fresh()
        except EngineError as exc:
            fresh, why = None, f"; re-reading the build cache failed: {exc}"
        else:
            why = "" if fresh is not None else " (API 1.41: not re-read)"
        if fresh is None:
            return Verdict(
                OutcomeStatus.CONFLICT,
                "the engine pruned nothing: the record is in use, shared with an image, the "
                f"parent of another record, or gone{why}",
            )
        found = next((r for r in fresh if r.id == self.record.id), None)
        if found is None:
            return Verdict(OutcomeStatus.ALREADY_GONE, "the engine pruned nothing; it is gone")
        if found.in_use:
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "the engine pruned nothing: in use")
        if found.shared:
            return Verdict(
                OutcomeStatus.SKIPPED_CHANGED, "the engine pruned nothing: shared with an image"
            )
        children = _children(fresh, self.record.id)
        if children:
            return Verdict(
                OutcomeStatus.CONFLICT,
                f"the engine pruned nothing: still the parent of {', '.join(children)}",
            )
        return Verdict(OutcomeStatus.CONFLICT, "the engine pruned nothing, and gave no reason")
