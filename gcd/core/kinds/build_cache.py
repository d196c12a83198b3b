"""Build cache: the `build_cache:` section of the policy. Pure.

Guards first: never a record a build holds (`InUse`), never one whose data is an image's
layer (`Shared`: removing it frees nothing), never one used within `safety.min_age`. Records
unused for longer than `unused_for` go; then, least recently used first (a parent only once
its children go), records until the cache (its records that are not shared) is under
`max_size`. A record that is the parent of
a record that stays cannot go (the engine deletes nothing: the child holds it), so `settle`
keeps it, once the disk budget has evicted what it needs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from gcd.core.ages import last_use, not_yet
from gcd.core.kind import Kind
from gcd.core.plan import Judgement
from gcd.core.records import BuildCacheRecord, Snapshot
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.core.units import format_bytes, format_duration, spell_duration

KIND = Kind.BUILD_CACHE


@dataclass(frozen=True, slots=True)
class BuildCachePolicy:
    unused_for: timedelta | None = None
    max_size_bytes: int | None = None
    """The cache (every record but the shared ones, as BuildKit's `keep-storage` counts it)
    is kept under this, by removing records gcd may remove."""


def _depth(record: BuildCacheRecord, by_id: Mapping[str, BuildCacheRecord]) -> int:
    depth, seen, current = 0, {record.id}, record
    while current.parents:
        parent = by_id.get(current.parents[0])
        if parent is None or parent.id in seen:
            break
        seen.add(parent.id)
        depth, current = depth + 1, parent
    return depth


def _used(record: BuildCacheRecord, now: datetime) -> str:
    """`last used 5m ago`, or `never used, created 5m ago`."""
    since = f"created {format_duration(max(now - record.created, timedelta(0)))} ago"
    return last_use(record.last_used, now, since)


def _guard(record: BuildCacheRecord, safety: Safety, now: datetime) -> tuple[RuleId, str] | None:
    if record.in_use:
        return RuleId.IN_USE, "in use by a build"
    if record.shared:
        return RuleId.SHARED, "shared with an image: removing it frees nothing"
    if record.created > now:
        return RuleId.CREATED_IN_FUTURE, f"CreatedAt {record.created.isoformat()} is in the future"
    idle = max(now - record.idle_since, timedelta(0))
    if idle < safety.min_age:
        shown = _used(record, now)
        return RuleId.MIN_AGE, not_yet(shown, idle, safety.min_age, "safety.min_age")
    return None


def _trim(
    records: tuple[BuildCacheRecord, ...],
    candidates: list[BuildCacheRecord],
    decided: dict[str, tuple[RuleId, str]],
    *,
    limit_bytes: int,
    depth: Mapping[str, int],
    now: datetime,
) -> None:
    """`max_size`: least recently used first, but a parent only once its children go (while
    a child stays, the engine frees nothing of its parent)."""
    size = sum(r.size_bytes for r in records if not r.shared)
    size -= sum(r.size_bytes for r in records if decided[r.id][0].deletes)
    children: dict[str, list[str]] = defaultdict(list)
    for record in records:
        for parent in record.parents:
            children[parent].append(record.id)
    remaining = sorted(candidates, key=lambda r: (r.idle_since, -depth[r.id], r.id))
    while size > limit_bytes:
        leaf = next(
            (r for r in remaining if all(decided[c][0].deletes for c in children[r.id])), None
        )
        if leaf is None:
            return
        remaining.remove(leaf)
        decided[leaf.id] = (
            RuleId.OVER_SIZE,
            f"cache {format_bytes(size)} > max_size {format_bytes(limit_bytes)}; least "
            f"recently used ({_used(leaf, now)})",
        )
        size -= leaf.size_bytes


def _decisions(
    records: tuple[BuildCacheRecord, ...],
    section: BuildCachePolicy,
    safety: Safety,
    now: datetime,
    depth: Mapping[str, int],
) -> dict[str, tuple[RuleId, str]]:
    decided: dict[str, tuple[RuleId, str]] = {}
    candidates: list[BuildCacheRecord] = []
    for record in records:
        guard = _guard(record, safety, now)
        idle = now - record.idle_since
        if guard is not None:
            decided[record.id] = guard
        elif section.unused_for is not None and idle >= section.unused_for:
            limit = spell_duration(section.unused_for)
            decided[record.id] = (
                RuleId.UNUSED,
                f"unused for {format_duration(idle)}; unused_for {limit}",
            )
        else:
            candidates.append(record)
            if section.unused_for is not None:
                limit = spell_duration(section.unused_for)
                detail = f"{_used(record, now)}; unused_for {limit}"
                decided[record.id] = (RuleId.UNUSED_WITHIN, detail)
            else:
                decided[record.id] = (RuleId.WITHIN_SIZE, "within build_cache.max_size")
    if section.max_size_bytes is not None:
        _trim(
            records, candidates, decided, limit_bytes=section.max_size_bytes, depth=depth, now=now
        )
    return decided


def judge(
    snapshot: Snapshot, section: BuildCachePolicy, safety: Safety, now: datetime
) -> tuple[Judgement, ...]:
    """Every build-cache record of `snapshot` under the `build_cache:` section; children
    are removed before their parents. Not settled: a record the disk budget evicts may
    release its parent, so `settle` runs on the whole plan at the end."""
    records = tuple(sorted(snapshot.build_cache, key=lambda r: r.id))
    by_id = {r.id: r for r in records}
    depth = {r.id: _depth(r, by_id) for r in records}
    decided = _decisions(records, section, safety, now, depth)
    return tuple(
        Judgement(
            record,
            *decided[record.id],
            age=max(now - record.created, timedelta(0)),
            last_use=record.idle_since,
            order=(-depth[record.id], record.idle_since.timestamp(), record.id),
        )
        for record in records
    )


def unmanaged(snapshot: Snapshot, now: datetime) -> tuple[Judgement, ...]:
    """No `build_cache:` section: the build cache is not touched (BuildKit's own GC may
    still run)."""
    return tuple(
        Judgement(
            record,
            RuleId.UNMANAGED,
            "policy has no build_cache section",
            age=max(now - record.created, timedelta(0)),
            last_use=record.idle_since,
            order=(record.idle_since.timestamp(), record.id),
        )
        for record in sorted(snapshot.build_cache, key=lambda r: r.id)
    )


def leaf_first(soft: Sequence[Judgement], judged: Iterable[Judgement]) -> list[Judgement]:
    """Soft-kept records in the order the disk budget may evict them: as given (least
    recently used first), but a parent only after every child of it goes, as the engine
    frees nothing of a parent while a child stays."""
    children: dict[str, list[str]] = defaultdict(list)
    going: set[str] = set()
    for j in judged:
        if isinstance(j.subject, BuildCacheRecord):
            for parent in j.subject.parents:
                children[parent].append(j.subject.id)
            if j.rule.deletes:
                going.add(j.subject.id)
    remaining, ordered = list(soft), list[Judgement]()
    while True:
        leaf = next(
            (j for j in remaining if all(c in going for c in children[j.subject.key.id])), None
        )
        if leaf is None:
            return ordered
        remaining.remove(leaf)
        ordered.append(leaf)
        going.add(leaf.subject.key.id)


def settle(judged: Iterable[Judgement]) -> tuple[Judgement, ...]:
    """Keep every record whose deletion the engine would refuse because a child of it stays.
    Judgements of other kinds pass through unchanged."""
    result = list(judged)
    while True:
        staying: dict[str, str] = {}
        for j in result:
            if isinstance(j.subject, BuildCacheRecord) and not j.rule.deletes:
                for parent in j.subject.parents:
                    staying.setdefault(parent, j.subject.key.short)
        blocked = [
            i
            for i, j in enumerate(result)
            if isinstance(j.subject, BuildCacheRecord)
            and j.rule.deletes
            and j.subject.id in staying
        ]
        if not blocked:
            return tuple(result)
        for i in blocked:
            child = staying[result[i].subject.key.id]
            result[i] = replace(
                result[i], rule=RuleId.IN_USE, detail=f"parent of record {child}, which stays"
            )
