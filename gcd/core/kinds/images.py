"""Images: the `images:` section of the policy and its keep rules. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.patterns import Pattern
from gcd.core.records import Image
from gcd.core.rules import RuleId

ANY_VALUE = "*"


@dataclass(frozen=True, slots=True)
class KeepRule:
    """One entry of `images.keep`. Its conditions must all hold for it to keep an image."""

    index: int
    labels: Mapping[str, str] = field(default_factory=dict)
    references: tuple[Pattern, ...] = ()
    newest: int | None = None
    younger_than: timedelta | None = None
    used_within: timedelta | None = None

    @property
    def rule_id(self) -> RuleId:
        if self.newest is not None:
            return RuleId.NEWEST
        if self.younger_than is not None:
            return RuleId.YOUNGER_THAN
        if self.used_within is not None:
            return RuleId.USED_WITHIN
        if self.references:
            return RuleId.REFERENCE
        return RuleId.LABEL

    @property
    def applies_to_dangling(self) -> bool:
        """Age alone never keeps a dangling image: `dangling.keep_within` governs those."""
        return bool(self.labels) and self.newest is None

    def matches_labels(self, image: Image) -> bool:
        return all(
            key in image.labels and (value == ANY_VALUE or image.labels[key] == value)
            for key, value in self.labels.items()
        )

    def matching_repositories(self, image: Image) -> frozenset[str]:
        """Repositories in which this rule's patterns match the image (all, without patterns)."""
        if not self.references:
            return image.repositories
        return frozenset(
            ref.repository
            for ref in image.references
            if any(pattern.matches(ref) for pattern in self.references)
        )

    def describe(self) -> str:
        parts: list[str] = []
        if self.labels:
            parts.append("label " + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())))
        if self.references:
            parts.append("reference " + ",".join(p.text for p in self.references))
        if self.newest is not None:
            parts.append(f"newest {self.newest}")
        if self.younger_than is not None:
            parts.append(f"younger_than {_fmt(self.younger_than)}")
        if self.used_within is not None:
            parts.append(f"used_within {_fmt(self.used_within)}")
        return f"images.keep[{self.index}] " + " ".join(parts)


def _fmt(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, length in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % length == 0 and seconds >= length:
            return f"{seconds // length}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True, slots=True)
class DanglingPolicy:
    keep_within: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    keep: tuple[KeepRule, ...] = ()
    dangling: DanglingPolicy = DanglingPolicy()
