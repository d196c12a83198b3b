"""`safety:`, the limits every run obeys whatever the keep rules say, and each kind's own.

`min_age` is one guard for every kind. `max_deletions_per_run` and `max_delete_fraction` apply
to each kind separately, and a kind's section may set its own (`build_cache:
max_delete_fraction: 1`): a build cache is rebuilt and often goes whole, while deleting every
image of a host is more likely a typo in a pattern than meant. Both limits are checked here,
after the kinds have judged: the cap first (what it defers is kept until the next run), then
the fraction on what will really be deleted, which refuses the whole plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.ages import UnknownAge
from gcd.core.kind import Key, Kind
from gcd.core.plan import Decision, Judgement

SECTIONS: Mapping[Kind, str] = {
    Kind.IMAGE: "images",
    Kind.CONTAINER: "containers",
    Kind.VOLUME: "volumes",
    Kind.BUILD_CACHE: "build_cache",
    Kind.NETWORK: "networks",
}
"""Each kind's section in the policy file, where its own limits are set."""

_NOUNS: Mapping[Kind, str] = {
    Kind.IMAGE: "images",
    Kind.CONTAINER: "containers",
    Kind.VOLUME: "volumes",
    Kind.BUILD_CACHE: "build-cache records",
    Kind.NETWORK: "networks",
}


@dataclass(frozen=True, slots=True)
class KindLimits:
    """A kind section's own limits; None takes the `safety:` value."""

    max_deletions_per_run: int | None = None
    max_delete_fraction: float | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits one kind obeys, each with the policy key that set it, so that a message
    names the key to change (`safety.max_delete_fraction` or `build_cache.max_delete_fraction`)."""

    kind: Kind
    max_deletions_per_run: int
    deletions_key: str
    max_delete_fraction: float
    fraction_key: str


@dataclass(frozen=True, slots=True)
class Safety:
    min_age: timedelta = timedelta(hours=1)
    max_deletions_per_run: int = 500
    max_delete_fraction: float = 0.9
    kinds: Mapping[Kind, KindLimits] = field(default_factory=dict)
    """The overrides of the kind sections that set any; a kind not here obeys the above."""
    quiet_for: timedelta = timedelta(minutes=10)
    """A classic-build step container younger than this means a build is running: the busy
    gate (`gcd.core.busy`) defers image and build-cache deletions."""
    pace: Mapping[Kind, float] = field(default_factory=dict)
    """Removals per second at most, per kind; a kind not here is not paced."""
    max_cycle_duration: timedelta | None = None
    """A cycle stops at an object boundary once it has run this long; None: no limit."""
    unknown_age: UnknownAge = UnknownAge.FIRST_SEEN
    """Where local age starts for an image no engine record covers (`gcd.core.ages`)."""

    def limits(self, kind: Kind) -> Limits:
        own = self.kinds.get(kind, KindLimits())
        section = SECTIONS[kind]
        deletions, deletions_key = self.max_deletions_per_run, "safety.max_deletions_per_run"
        if own.max_deletions_per_run is not None:
            deletions = own.max_deletions_per_run
            deletions_key = f"{section}.max_deletions_per_run"
        fraction, fraction_key = self.max_delete_fraction, "safety.max_delete_fraction"
        if own.max_delete_fraction is not None:
            fraction = own.max_delete_fraction
            fraction_key = f"{section}.max_delete_fraction"
        return Limits(kind, deletions, deletions_key, fraction, fraction_key)


def beyond_cap(judged: Iterable[Judgement], limits: Limits) -> set[Key]:
    """The deletions of `limits.kind` past its per-run cap, in the kind's own order: they wait
    for the next run (`keep.run_limit`)."""
    deleting = sorted(
        (j for j in judged if j.rule.deletes and j.subject.key.kind is limits.kind),
        key=lambda j: j.order,
    )
    return {j.subject.key for j in deleting[limits.max_deletions_per_run :]}


def _needed(share: float) -> str:
    """The smallest limit in whole percent that lets `share` through: 1 for all of a kind."""
    return f"{math.ceil(round(share * 100, 6)) / 100:g}"


def refusal(decisions: Sequence[Decision], limits: Iterable[Limits]) -> str | None:
    """Why the plan is refused: each kind whose deletions — those that will run, after the
    cap — are a larger share of all its objects than its `max_delete_fraction`. A policy that
    deletes nearly everything of a kind is more likely wrong than meant, so nothing is deleted
    and the operator must look; the message names, per kind, the setting that allows it for
    that kind alone, never a minimum count that would exempt small kinds unseen."""
    over: list[tuple[str, str]] = []
    for limit in limits:
        of_kind = [d for d in decisions if d.key.kind is limit.kind]
        deleting = sum(1 for d in of_kind if d.deletes)
        if not of_kind or deleting / len(of_kind) <= limit.max_delete_fraction:
            continue
        share = deleting / len(of_kind)
        over.append(
            (
                f"{deleting} of {len(of_kind)} {_NOUNS[limit.kind]} ({share:.0%}), more than "
                f"{limit.fraction_key}={limit.max_delete_fraction:g} allows",
                f"`{SECTIONS[limit.kind]}.max_delete_fraction: {_needed(share)}`",
            )
        )
    if not over:
        return None
    which = "that kind alone in its section" if len(over) == 1 else "each kind in its section"
    return (
        f"the plan deletes {', and '.join(what for what, _ in over)}; nothing was deleted. "
        f"Check the policy with `gcd plan`; if this is meant, raise the limit for {which}: "
        f"{', '.join(fix for _, fix in over)}"
    )
