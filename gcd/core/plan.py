"""The plan: a decision with its reason for every object, in the order of execution."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

from gcd.core.ages import Unrecorded
from gcd.core.kind import Key, Record
from gcd.core.rules import RuleId
from gcd.core.shared import SharedUnits


@dataclass(frozen=True, slots=True)
class Judgement:
    """A kind's verdict on one object, before the steps common to every kind (the disk
    budget, the order of execution, the per-run cap, the delete fraction)."""

    subject: Record
    rule: RuleId
    detail: str
    age: timedelta
    last_use: datetime
    """When the object was last used (else first seen): the disk budget evicts the least
    recently used first."""
    order: tuple[float | int | str, ...]
    """Where the object goes among the deletions of its kind."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided for one object of any kind, and why."""

    subject: Record
    rule: RuleId
    detail: str
    age: timedelta
    freed_bytes: int = 0
    """Bytes deleting this object alone frees: its storage units nothing else uses."""

    @property
    def key(self) -> Key:
        return self.subject.key

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
    """Why a safety limit refuses the whole plan; then nothing of it is executed."""
    pressure: str | None = None
    """Set when the plan was made under disk pressure: usage, watermarks, projection."""
    shortfall: bool = False
    """Under pressure: even with every soft keep evicted, usage stays above `high`."""
    busy: str | None = None
    """Set when a build was running (`gcd.core.busy`): what showed it, and whether deletions
    were deferred (`keep.busy`) or went ahead at the critical watermark."""
    unrecorded: Unrecorded | None = None
    """Images first seen in this snapshot without an engine record of their arrival: how
    many, and when they become eligible (`gcd.core.ages`)."""
    shared: tuple[SharedUnits, ...] = ()
    """Bytes the deletions free together but none alone (`gcd.core.shared`): with the
    deletions' own `freed_bytes` they add up to `freed_bytes`."""

    @property
    def deletions(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if d.deletes)

    @property
    def kept(self) -> tuple[Decision, ...]:
        return tuple(d for d in self.decisions if not d.deletes)

    def count_by_rule(self) -> dict[RuleId, int]:
        counts = Counter(d.rule for d in self.decisions)
        return {rule: counts[rule] for rule in RuleId if counts[rule]}
