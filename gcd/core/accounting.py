"""Storage units: the bytes that go when every user of a unit is gone. Pure.

A unit is whatever the engine frees as one piece: an image layer today (container layers,
volume directories and build-cache records next). The plan, the attribution of freed bytes to
rules and the disk budget all count through this one account, so shared units are counted
once everywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from gcd.core.kind import Kind, Record
from gcd.core.records import Snapshot


def _units(records: Iterable[Record]) -> Counter[str]:
    used: Counter[str] = Counter()
    for record in records:
        used.update(set(record.units))
    return used


@dataclass(frozen=True, slots=True)
class StorageAccount:
    """Which records use each unit, and each unit's bytes."""

    users: Counter[str]
    sizes: Mapping[str, int]

    @classmethod
    def of(cls, snapshot: Snapshot) -> StorageAccount:
        return cls.over(snapshot.records, snapshot.unit_sizes)

    @classmethod
    def over(cls, records: Iterable[Record], sizes: Mapping[str, int]) -> StorageAccount:
        return cls(_units(records), sizes)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.get(unit, 0) for unit in self.users)

    def freed_units(self, gone: Iterable[Record]) -> set[str]:
        """The units that every one of their users is among `gone`."""
        return {unit for unit, count in _units(gone).items() if count >= self.users[unit]}

    def bytes_by_kind(self, records: Iterable[Record]) -> dict[Kind, int]:
        """What `records` hold, per kind (each kind's units are its own: image layers,
        `container:`, `volume:`, `build_cache:`)."""
        units: dict[Kind, set[str]] = {}
        for record in records:
            units.setdefault(record.key.kind, set()).update(record.units)
        return {
            kind: sum(self.sizes.get(unit, 0) for unit in of_kind)
            for kind, of_kind in units.items()
        }

    def freed_by(self, gone: Iterable[Record]) -> int:
        """Bytes of the units used by `gone` and by nothing else."""
        return sum(self.sizes.get(unit, 0) for unit in self.freed_units(gone))
