"""Which rule freed which bytes: exact, shared layers counted once. Pure, no I/O.

A run's freed bytes are the layers that no remaining image uses any more. Split by rule, each
such layer is attributed once, to the first removed image in plan order that used it, so the
parts add up to the run's total. `apportion` makes that hold even when the total comes from
elsewhere (a caller's own accounting): whole bytes, largest remainders, nothing lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import TypeVar

from gcd.core.plan import Decision
from gcd.core.rules import RuleId

__all__ = ["apportion", "freed_by_rule", "still_reclaimable"]

K = TypeVar("K", bound=Hashable)


def _users(decisions: Sequence[Decision]) -> Counter[str]:
    users: Counter[str] = Counter()
    for decision in decisions:
        users.update(set(decision.image.layers))
    return users


def freed_by_rule(
    decisions: Sequence[Decision],
    removed: Mapping[str, RuleId],
    layer_sizes: Mapping[str, int],
) -> dict[RuleId, int]:
    """Bytes freed per rule when the images in `removed` (id → rule) are gone.

    `decisions` is the whole plan in plan order: every image of the snapshot, so a layer that
    a kept image also uses is never counted as freed."""
    gone: Counter[str] = Counter()
    for decision in decisions:
        if decision.image.id in removed:
            gone.update(set(decision.image.layers))
    users = _users(decisions)
    freed_layers = {layer for layer, count in gone.items() if count >= users[layer]}
    split: Counter[RuleId] = Counter()
    for decision in decisions:
        rule = removed.get(decision.image.id)
        if rule is None:
            continue
        for layer in dict.fromkeys(decision.image.layers):
            if layer in freed_layers:
                freed_layers.discard(layer)
                split[rule] += layer_sizes.get(layer, 0)
        split[rule] += 0  # a removed image that freed nothing still names its rule
    return dict(split)


def still_reclaimable(
    decisions: Sequence[Decision], gone: Collection[str], layer_sizes: Mapping[str, int]
) -> int:
    """Bytes the policy would still free once the images in `gone` no longer exist: what its
    deletions (and those deferred by the per-run cap) free among the images that remain."""
    remaining = [d for d in decisions if d.image.id not in gone]
    users = _users(remaining)
    wanted: Counter[str] = Counter()
    for decision in remaining:
        if decision.deletes or decision.rule is RuleId.RUN_LIMIT:
            wanted.update(set(decision.image.layers))
    return sum(
        layer_sizes.get(layer, 0) for layer, count in wanted.items() if count >= users[layer]
    )


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
