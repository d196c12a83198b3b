"""The stable rule ids: why an object is kept or deleted. They are user interface."""

from __future__ import annotations

from enum import StrEnum


class RuleId(StrEnum):
    """Why an image is kept or deleted. These ids are user interface: logs, JSON, metrics."""

    IN_USE = "keep.in_use"
    MIN_AGE = "keep.min_age"
    CREATED_IN_FUTURE = "keep.created_in_future"
    LABEL = "keep.label"
    REFERENCE = "keep.reference"
    NEWEST = "keep.newest"
    YOUNGER_THAN = "keep.younger_than"
    USED_WITHIN = "keep.used_within"
    DANGLING_WITHIN = "keep.dangling_within"
    UNMANAGED = "keep.unmanaged"
    RUN_LIMIT = "keep.run_limit"
    UNKEPT = "delete.unkept"
    DANGLING = "delete.dangling"
    PRESSURE = "delete.pressure"

    @property
    def yields_to_pressure(self) -> bool:
        """Soft keeps give way under disk pressure; hard keeps (guards, pins) never do."""
        return self in {RuleId.NEWEST, RuleId.YOUNGER_THAN, RuleId.USED_WITHIN}

    @property
    def deletes(self) -> bool:
        return self.value.startswith("delete.")
