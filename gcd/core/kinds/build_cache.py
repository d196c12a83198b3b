"""Build cache: the `build_cache:` section of the policy. Pure.

Guards first: never a record a build holds (`InUse`), never one whose data is an image's
layer (`Shared`: removing it frees nothing). Records unused for longer than `unused_for` go;
then, least recently used first, records until the cache is under `max_size`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from gcd.core.kind import Kind

KIND = Kind.BUILD_CACHE


@dataclass(frozen=True, slots=True)
class BuildCachePolicy:
    unused_for: timedelta | None = None
    max_size_bytes: int | None = None
    """The cache (records gcd may remove: not in use, not shared) is kept under this."""
