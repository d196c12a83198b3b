"""The plan: a decision with its reason for every object, in the order of execution."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from gcd.core.records import Image
from gcd.core.rules import RuleId


@dataclass(frozen=True, slots=True)
class Decision:
    image: Image
    rule: RuleId
    detail: str
    age: timedelta
    freed_bytes: int = 0
    """Bytes deleting this image alone frees: its layers no other image uses."""

    @property
    def deletes(self) -> bool:
        return self.rule.deletes


@dataclass(frozen=True, slots=True)
class Plan:
    """The outcome of `evaluate`. `deletions` are in the order the executor applies them."""

    created_at: datetime
    decisions: tuple[Decision, ...]
    freed_bytes: int
    total_bytes: int
    refusal: str | None = None
    pressure: str | None = None
    """Set when the plan was made under disk pressure: usage, watermarks, projection."""

    @property
    def deletions(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.deletes)

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.deletes)

    def count_by_rule(self) -> dict[RuleId, int]:
        counts = Counter(d.rule for d in self.decisions)
        return {rule: counts[rule] for rule in RuleId if counts[rule]}
