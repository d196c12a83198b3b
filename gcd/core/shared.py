"""What a plan frees beyond the sum of its objects' own bytes. Pure.

Each decision's `freed_bytes` counts the units only that object uses. A unit used by several
deleted objects (and by nothing kept) is freed too, but with the last of them: the layers of a
base image deleted with the images built on it, or of a classic-build parent (an untagged
intermediate the engine lists only with `all=1`, and deletes quietly with its last child).
Grouped by the set of deleted objects that share them, these groups are what makes the
plan's rows add up to its total.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gcd.core.kind import Key, Record


@dataclass(frozen=True, slots=True)
class SharedUnits:
    """Units that go only once every one of `users` (all deleted) is gone."""

    users: tuple[Key, ...]
    """In plan order: the engine frees these bytes with the last of them."""
    units: int
    freed_bytes: int


def shared_units(
    deleted: Iterable[Record], kept: Iterable[Record], sizes: Mapping[str, int]
) -> tuple[SharedUnits, ...]:
    """The groups of units that two or more of `deleted` use and none of `kept` does,
    largest first; their bytes plus each deleted object's own bytes are the plan's total."""
    holding = {unit for record in kept for unit in record.units}
    users: dict[str, list[Key]] = defaultdict(list)
    for record in deleted:
        for unit in dict.fromkeys(record.units):
            if unit not in holding:
                users[unit].append(record.key)
    groups: dict[tuple[Key, ...], list[str]] = defaultdict(list)
    for unit, keys in users.items():
        if len(keys) > 1:
            groups[tuple(keys)].append(unit)
    found = [
        SharedUnits(keys, len(units), sum(sizes.get(unit, 0) for unit in units))
        for keys, units in groups.items()
    ]
    return tuple(sorted(found, key=lambda g: (-g.freed_bytes, g.users)))
