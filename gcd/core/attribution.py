"""Which rule freed which bytes: exact, shared units counted once. Pure, no I/O.

A run's freed bytes are the storage units that no remaining object uses any more. Split by
rule, each such unit is attributed once, to the first removed object in plan order that used
it, so the parts add up to the run's total. `apportion` makes that hold even when the total
comes from elsewhere (a caller's own accounting): whole bytes, largest remainders, nothing
lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import TypeVar

from gcd.core.accounting import StorageAccount
from gcd.core.kind import Key
from gcd.core.plan import Decision
from gcd.core.rules import RuleId

__all__ = ["apportion", "freed_by_rule", "still_reclaimable"]

K = TypeVar("K", bound=Hashable)


def freed_by_rule(
    decisions: Sequence[Decision],
    removed: Mapping[Key, RuleId],
    unit_sizes: Mapping[str, int],
) -> dict[RuleId, int]:
    """Bytes freed per rule when the objects in `removed` (key → rule) are gone.

    `decisions` is the whole plan in plan order: every object of the snapshot, so a unit that
    a kept object also uses is never counted as freed."""
    account = StorageAccount.over((d.subject for d in decisions), unit_sizes)
    freed = account.freed_units(d.subject for d in decisions if d.key in removed)
    split: Counter[RuleId] = Counter()
    for decision in decisions:
        rule = removed.get(decision.key)
        if rule is None:
            continue
        for unit in dict.fromkeys(decision.subject.units):
            if unit in freed:
                freed.discard(unit)
                split[rule] += unit_sizes.get(unit, 0)
        split[rule] += 0  # a removed object that freed nothing still names its rule
    return dict(split)


def still_reclaimable(
    decisions: Sequence[Decision], gone: Collection[Key], unit_sizes: Mapping[str, int]
) -> int:
    """Bytes the policy would still free once the objects in `gone` no longer exist: what its
    deletions (and those deferred by the per-run cap) free among the objects that remain."""
    remaining = [d for d in decisions if d.key not in gone]
    account = StorageAccount.over((d.subject for d in remaining), unit_sizes)
    return account.freed_by(d.subject for d in remaining if d.deletes or d.rule is RuleId.RUN_LIMIT)


def apportion(parts: Mapping[K, int], total: int, fallback: K) -> dict[K, int]:
    """Scale whole-number `parts` so that they sum to exactly `total` (≥ 0).

    Proportional with the largest-remainder method; ties go to the earlier key. With no
    parts to scale by (all zero), the whole total goes to `fallback`."""
    if total < 0:
        raise ValueError(f"total must be ≥ 0, got {total}")
    weight = sum(parts.values())
    if weight == total:
        return dict(parts)
    if weight <= 0:
        result = dict.fromkeys(parts, 0)
        result[fallback] = result.get(fallback, 0) + total
        return result
    shares: dict[K, int] = {}
    remainders: list[tuple[int, int, K]] = []
    for position, (key, part) in enumerate(parts.items()):
        share, remainder = divmod(part * total, weight)
        shares[key] = share
        remainders.append((-remainder, position, key))
    left = total - sum(shares.values())
    for _, _, key in sorted(remainders)[:left]:
        shares[key] += 1
    return shares
