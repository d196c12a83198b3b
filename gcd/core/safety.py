"""`safety:`, the limits every run obeys whatever the keep rules say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class Safety:
    min_age: timedelta = timedelta(hours=1)
    max_deletions_per_run: int = 500
    max_delete_fraction: float = 0.9
