"""Volumes: the `volumes:` section of the policy. Pure.

Guards first: never a volume any container mounts (in any state, unless that container is
removed in the same cycle), never one of another driver or with driver options. Then the keep
rules. Anonymous volumes go once no container has used them for `anonymous_unused_for`; a named
volume is touched only when a `named` pattern names it, after `named_unused_for`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.kind import Kind
from gcd.core.patterns import NamePattern

KIND = Kind.VOLUME

LOCAL_DRIVER = "local"
ANY_VALUE = "*"


@dataclass(frozen=True, slots=True)
class VolumeKeepRule:
    """One entry of `volumes.keep`; its conditions must all hold for it to keep."""

    index: int
    labels: Mapping[str, str] = field(default_factory=dict)
    names: tuple[NamePattern, ...] = ()


@dataclass(frozen=True, slots=True)
class VolumePolicy:
    keep: tuple[VolumeKeepRule, ...] = ()
    anonymous_unused_for: timedelta | None = None
    """None: anonymous volumes are not touched."""
    named: tuple[NamePattern, ...] = ()
    named_unused_for: timedelta | None = None
    """Required when `named` is given."""
