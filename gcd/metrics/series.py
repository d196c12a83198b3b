"""Which `kind` and `rule` label pairs gcd exports: a closed set, known before any cycle.

Counters need every series from the start (at 0), or `increase()` misses the first event of
one; gauges of kept objects should not list a rule its kind can never give
(`gcd_kept{kind="network", rule="keep.dangling_within"}` would only be noise). So each kind
names the rules its judge gives, per the rule ids' documentation (gcd.core.rules). A rule a
plan gives outside this table is still recorded (the series appears then): the table decides
only what exists from the start, never what is counted.
"""

from __future__ import annotations

from gcd.core.kind import Kind
from gcd.core.rules import RuleId

_EVERY_KIND = frozenset(
    {
        RuleId.IN_USE,
        RuleId.MIN_AGE,
        RuleId.UNMANAGED,
        RuleId.RUN_LIMIT,
        RuleId.UNKEPT,
        RuleId.PRESSURE,
    }
)

RULES_OF_KIND: dict[Kind, frozenset[RuleId]] = {
    Kind.IMAGE: _EVERY_KIND
    | {
        RuleId.CREATED_IN_FUTURE,
        RuleId.LABEL,
        RuleId.REFERENCE,
        RuleId.NEWEST,
        RuleId.YOUNGER_THAN,
        RuleId.USED_WITHIN,
        RuleId.DANGLING_WITHIN,
        RuleId.DANGLING,
        RuleId.COMPOSE,
        RuleId.HOLD,
        RuleId.BUSY,
    },
    Kind.CONTAINER: _EVERY_KIND
    | {
        RuleId.ACTIVE,
        RuleId.DETAILS_UNKNOWN,
        RuleId.CREATED_IN_FUTURE,
        RuleId.LABEL,
        RuleId.NAME,
        RuleId.IMAGE,
        RuleId.SERVICE,
        RuleId.EXITED_WITHIN,
        RuleId.EXITED,
        RuleId.HOLD,
        RuleId.HOLD_EXPIRED,
        RuleId.BUSY,
    },
    Kind.VOLUME: _EVERY_KIND
    | {
        RuleId.EXTERNAL,
        RuleId.CREATED_IN_FUTURE,
        RuleId.LABEL,
        RuleId.NAME,
        RuleId.NAMED,
        RuleId.UNUSED_WITHIN,
        RuleId.UNUSED,
    },
    Kind.BUILD_CACHE: _EVERY_KIND
    | {
        RuleId.SHARED,
        RuleId.CREATED_IN_FUTURE,
        RuleId.UNUSED_WITHIN,
        RuleId.WITHIN_SIZE,
        RuleId.UNUSED,
        RuleId.OVER_SIZE,
        RuleId.BUSY,
    },
    Kind.NETWORK: _EVERY_KIND
    | {RuleId.BUILTIN, RuleId.CREATED_IN_FUTURE, RuleId.UNUSED_WITHIN, RuleId.UNUSED},
}


def deleting(kind: Kind) -> tuple[RuleId, ...]:
    """The rules that delete objects of `kind`, in RuleId order."""
    return tuple(rule for rule in RuleId if rule.deletes and rule in RULES_OF_KIND[kind])


def keeping(kind: Kind) -> tuple[RuleId, ...]:
    """The rules that keep objects of `kind`, in RuleId order."""
    return tuple(rule for rule in RuleId if not rule.deletes and rule in RULES_OF_KIND[kind])
