"""Disk pressure as plain data, and least-recently-used eviction of soft keeps. Pure."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from gcd.core.accounting import StorageAccount
from gcd.core.kind import Key, Record


@dataclass(frozen=True, slots=True)
class Pressure:
    """Usage of the filesystem holding the engine's data, with the policy's watermarks."""

    used_bytes: int
    total_bytes: int
    used_inodes: int
    total_inodes: int
    high: float
    low: float
    critical: float = 1.0
    """At or above this share of bytes the engine may be unable to delete images."""

    @property
    def bytes_ratio(self) -> float:
        return self.used_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def inodes_ratio(self) -> float:
        return self.used_inodes / self.total_inodes if self.total_inodes else 0.0

    @property
    def above_high(self) -> bool:
        return max(self.bytes_ratio, self.inodes_ratio) > self.high

    @property
    def critical_reached(self) -> bool:
        return self.bytes_ratio >= self.critical

    def projected_ratio(self, freed_bytes: int) -> float:
        """Usage after freeing `freed_bytes`. Inodes are assumed to go with bytes, an estimate:
        the engine does not account inodes per layer."""
        bytes_ratio = (self.used_bytes - freed_bytes) / self.total_bytes if self.total_bytes else 0
        share = freed_bytes / self.used_bytes if self.used_bytes else 0.0
        inodes_ratio = self.inodes_ratio * (1 - share)
        return max(bytes_ratio, inodes_ratio, 0.0)

    def describe(self) -> str:
        return (
            f"disk {self.bytes_ratio:.0%} of bytes, {self.inodes_ratio:.0%} of inodes used; "
            f"high {self.high:.0%}, low {self.low:.0%}"
        )


@dataclass(frozen=True, slots=True)
class Eviction:
    evicted: tuple[Key, ...]
    """What to delete under pressure, least recently used first."""
    projected_ratio: float
    shortfall: bool
    """True when nothing evictable is left and usage stays above `high`."""


def evict(
    pressure: Pressure,
    account: StorageAccount,
    deleting: Sequence[Record],
    candidates: Sequence[Record],
) -> Eviction:
    """Add soft-kept `candidates` (already in eviction order, of any kind) to `deleting`
    until the projected usage is below `low`."""
    chosen: list[Record] = []
    gone = Counter(unit for record in deleting for unit in set(record.units))
    freed = account.freed_by(deleting)
    projected = pressure.projected_ratio(freed)
    for record in candidates:
        if projected < pressure.low:
            break
        chosen.append(record)
        # Incrementally (a plan may weigh thousands of candidates): the units whose last
        # user this record is.
        for unit in set(record.units):
            gone[unit] += 1
            if gone[unit] == account.users[unit]:
                freed += account.sizes.get(unit, 0)
        projected = pressure.projected_ratio(freed)
    return Eviction(tuple(r.key for r in chosen), projected, projected > pressure.high)
