"""Volumes: the `volumes:` section of the policy. Pure.

Guards first: never a volume any container mounts (in any state, unless that container is
removed in the same cycle), never one of another driver or with driver options. Then the keep
rules. Anonymous volumes go once no container has used them for `anonymous_unused_for`; a named
volume is touched only when a `named` pattern names it, after `named_unused_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gcd.core.ages import not_yet
from gcd.core.holders import holders as find_holders
from gcd.core.kind import Kind
from gcd.core.patterns import NamePattern
from gcd.core.plan import Judgement
from gcd.core.records import Snapshot, Volume
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.core.units import format_duration, spell_duration

KIND = Kind.VOLUME

LOCAL_DRIVER = "local"
ANY_VALUE = "*"


@dataclass(frozen=True, slots=True)
class VolumeKeepRule:
    """One entry of `volumes.keep`; its conditions must all hold for it to keep."""

    index: int
    labels: Mapping[str, str] = field(default_factory=dict)
    names: tuple[NamePattern, ...] = ()


@dataclass(frozen=True, slots=True)
class VolumePolicy:
    keep: tuple[VolumeKeepRule, ...] = ()
    anonymous_unused_for: timedelta | None = None
    """None: anonymous volumes are not touched."""
    named: tuple[NamePattern, ...] = ()
    named_unused_for: timedelta | None = None
    """Required when `named` is given."""


def _holds(rule: VolumeKeepRule, volume: Volume) -> bool:
    labels = all(
        key in volume.labels and (value == ANY_VALUE or volume.labels[key] == value)
        for key, value in rule.labels.items()
    )
    return labels and (not rule.names or any(p.matches(volume.name) for p in rule.names))


def rule_id(rule: VolumeKeepRule) -> RuleId:
    return RuleId.NAME if rule.names else RuleId.LABEL


def describe(rule: VolumeKeepRule) -> str:
    parts: list[str] = []
    if rule.labels:
        parts.append("label " + ",".join(f"{k}={v}" for k, v in sorted(rule.labels.items())))
    if rule.names:
        parts.append("name " + ",".join(p.text for p in rule.names))
    return f"volumes.keep[{rule.index}] " + " ".join(parts)


def last_use(volume: Volume, now: datetime, mounted: bool) -> datetime:
    """A volume mounted now (even by a container removed in this run) is used now."""
    if mounted:
        return now
    return max(volume.last_used or volume.seen_at, volume.seen_at)


def _unused_for(volume: Volume, section: VolumePolicy) -> tuple[timedelta | None, str]:
    if volume.anonymous:
        return section.anonymous_unused_for, "volumes.anonymous_unused_for"
    if any(p.matches(volume.name) for p in section.named):
        return section.named_unused_for, "volumes.named_unused_for"
    return None, ""


def _decide(
    volume: Volume,
    *,
    section: VolumePolicy,
    safety: Safety,
    holders: dict[str, list[str]],
    released: dict[str, list[str]],
    now: datetime,
) -> tuple[RuleId, str]:
    if volume.name in holders:
        return RuleId.IN_USE, "mounted by " + ", ".join(sorted(holders[volume.name]))
    if volume.driver != LOCAL_DRIVER or volume.options:
        what = f"driver {volume.driver}" if volume.driver != LOCAL_DRIVER else "driver options"
        return RuleId.EXTERNAL, f"{what}: its data is not the engine's to free"
    if volume.created is not None and volume.created > now:
        return RuleId.CREATED_IN_FUTURE, f"CreatedAt {volume.created.isoformat()} is in the future"
    age = max(now - volume.seen_at, timedelta(0))
    if age < safety.min_age:
        shown = f"local age {format_duration(age)}"
        return RuleId.MIN_AGE, not_yet(shown, age, safety.min_age, "safety.min_age")
    for rule in section.keep:
        if _holds(rule, volume):
            return rule_id(rule), describe(rule)
    limit, field_name = _unused_for(volume, section)
    if limit is None:
        if volume.anonymous:
            return RuleId.UNMANAGED, "anonymous; volumes.anonymous_unused_for is not set"
        return RuleId.NAMED, "named; no volumes.named pattern names it"
    if volume.name in released:
        who = ", ".join(sorted(released[volume.name]))
        return RuleId.UNUSED_WITHIN, f"mounted by {who}, removed first; {field_name} " + (
            spell_duration(limit)
        )
    idle = now - last_use(volume, now, mounted=False)
    text = f"unused for {format_duration(idle)}; {field_name} {spell_duration(limit)}"
    return (RuleId.UNUSED if idle >= limit else RuleId.UNUSED_WITHIN), text


def judge(
    snapshot: Snapshot,
    section: VolumePolicy,
    safety: Safety,
    now: datetime,
    released: frozenset[str] = frozenset(),
) -> tuple[Judgement, ...]:
    """Every volume of `snapshot` under the `volumes:` section. Containers in `released`
    (ids) are removed earlier in the same run; a volume only they mount was used until now."""
    holders, freed = find_holders(snapshot.containers, released, lambda c: c.volumes)
    return tuple(
        Judgement(
            volume,
            *_decide(
                volume, section=section, safety=safety, holders=holders, released=freed, now=now
            ),
            age=max(now - volume.seen_at, timedelta(0)),
            last_use=last_use(volume, now, mounted=volume.name in holders or volume.name in freed),
            order=(volume.seen_at.timestamp(), volume.name),
        )
        for volume in sorted(snapshot.volumes, key=lambda v: v.name)
    )


def unmanaged(snapshot: Snapshot, now: datetime) -> tuple[Judgement, ...]:
    """No `volumes:` section: volumes are not touched."""
    return tuple(
        Judgement(
            volume,
            RuleId.UNMANAGED,
            "policy has no volumes section",
            age=max(now - volume.seen_at, timedelta(0)),
            last_use=last_use(volume, now, mounted=False),
            order=(volume.seen_at.timestamp(), volume.name),
        )
        for volume in sorted(snapshot.volumes, key=lambda v: v.name)
    )
