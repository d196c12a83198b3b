"""Images: the `images:` section of the policy and its keep rules. Pure."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from gcd.core.ages import last_use as last_use_text
from gcd.core.ages import not_yet
from gcd.core.compose import UNRESOLVED, ComposeImages
from gcd.core.holders import holders
from gcd.core.kind import Kind
from gcd.core.patterns import Pattern
from gcd.core.plan import Decision, Judgement
from gcd.core.records import Image, Snapshot
from gcd.core.references import Reference
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.core.units import format_duration, spell_duration

KIND = Kind.IMAGE

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
    compose: tuple[str, ...] = ()
    """Globs of Compose files; such a rule has no other condition (`gcd.config` refuses)."""
    compose_images: ComposeImages | None = None
    """What those files named when last read (`gcd.config.stacks`, each cycle); None: not
    read, and the rule keeps every named image (fail closed)."""

    @property
    def rule_id(self) -> RuleId:
        if self.compose:
            return RuleId.COMPOSE
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

    def matched(self, image: Image) -> tuple[Reference, ...]:
        """The image's references this rule's patterns match (all of them, without patterns)."""
        if not self.references:
            return image.references
        return tuple(
            ref for ref in image.references if any(p.matches(ref) for p in self.references)
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
            parts.append(f"younger_than {spell_duration(self.younger_than)}")
        if self.used_within is not None:
            parts.append(f"used_within {spell_duration(self.used_within)}")
        if self.compose:
            parts.append("compose " + ",".join(self.compose))
        return f"images.keep[{self.index}] " + " ".join(parts)


@dataclass(frozen=True, slots=True)
class DanglingPolicy:
    keep_within: timedelta = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class ImagePolicy:
    keep: tuple[KeepRule, ...] = ()
    dangling: DanglingPolicy = DanglingPolicy()


def image_of(decision: Decision) -> Image:
    """The image a decision is about: the image kind's own view of a generic decision."""
    if not isinstance(decision.subject, Image):
        raise TypeError(f"{decision.key} is not an image")
    return decision.subject


def local_age(image: Image, now: datetime) -> timedelta:
    return max(now - image.seen_at, timedelta(0))


def _rank_key(image: Image) -> tuple[float, float, str]:
    created = image.created.timestamp() if image.created is not None else float("-inf")
    return (-image.seen_at.timestamp(), -created, image.id)


def _newest_sets(rule: KeepRule, images: tuple[Image, ...]) -> dict[str, int]:
    """For a `newest` rule: image id → its best rank (1-based) in any repository it matches."""
    assert rule.newest is not None
    by_repository: dict[str, list[Image]] = defaultdict(list)
    for image in images:
        if image.is_dangling or not rule.matches_labels(image):
            continue
        for repository in rule.matching_repositories(image):
            by_repository[repository].append(image)
    best: dict[str, int] = {}
    for members in by_repository.values():
        for rank, image in enumerate(sorted(members, key=_rank_key), start=1):
            if rank > rule.newest:
                break
            best[image.id] = min(rank, best.get(image.id, rank))
    return best


def last_use(image: Image) -> datetime:
    """When a container last used the image; never used → when gcd first saw it."""
    return max(image.last_used or image.seen_at, image.seen_at)


def _rule_holds(
    rule: KeepRule,
    image: Image,
    age: timedelta,
    newest: dict[int, dict[str, int]],
    now: datetime,
) -> str | None:
    """A detail string when `rule` keeps `image`, else None."""
    if rule.compose:
        return _compose_holds(rule, image)
    if image.is_dangling and not rule.applies_to_dangling and not rule.references:
        return None
    if not rule.matches_labels(image):
        return None
    if rule.references and not rule.matching_repositories(image):
        return None
    if rule.newest is not None:
        rank = newest[rule.index].get(image.id)
        if rank is None:
            return None
        named = f" ({_names(rule.matched(image))})" if rule.references else ""
        return f"{rule.describe()}: #{rank} newest in its repository{named}"
    if rule.younger_than is not None:
        if age >= rule.younger_than:
            return None
        return f"{rule.describe()}: local age {format_duration(age)}"
    if rule.used_within is not None:
        idle = now - last_use(image)
        if idle >= rule.used_within:
            return None
        return f"{rule.describe()}: {_used(image, now)}"
    if rule.references:
        return f"{rule.describe()}: {_names(rule.matched(image))}"
    return rule.describe()


def _names(references: tuple[Reference, ...], limit: int = 2) -> str:
    """`localhost:5000/reports:v3`, or the first two and how many more."""
    shown = ", ".join(ref.familiar for ref in references[:limit])
    more = len(references) - limit
    return f"{shown} and {more} more" if more > 0 else shown


def _used(image: Image, now: datetime) -> str:
    """`last used 5m ago`, or `never used, local age 5m` (a window then counts from the
    start of local age)."""
    return last_use_text(
        image.last_used, now, f"local age {format_duration(local_age(image, now))}"
    )


def why_not_kept(
    rule: KeepRule,
    image: Image,
    age: timedelta,
    newest: dict[int, dict[str, int]],
    now: datetime,
) -> str:
    """Why `rule` does not keep `image`, briefly: the first of its conditions that fails."""
    if rule.compose:
        return "no Compose service names it"
    if image.is_dangling and not rule.applies_to_dangling and not rule.references:
        return "not for dangling images"
    if not rule.matches_labels(image):
        return "labels differ"
    if rule.references and not rule.matching_repositories(image):
        return "matches none of its names" if image.references else "it has no name"
    if rule.newest is not None:
        return f"not among the {rule.newest} newest in its repository"
    if rule.younger_than is not None:
        return f"local age {format_duration(age)} >= {spell_duration(rule.younger_than)}"
    if rule.used_within is not None:
        return f"{_used(image, now)} >= {spell_duration(rule.used_within)}"
    return "does not hold"  # every condition above held: unreachable for a rule that failed


def _unkept(
    section: ImagePolicy,
    image: Image,
    age: timedelta,
    newest: dict[int, dict[str, int]],
    now: datetime,
) -> str:
    if not section.keep:
        return "no keep rule holds: images.keep is empty"
    tried = "; ".join(
        f"keep[{rule.index}] {why_not_kept(rule, image, age, newest, now)}" for rule in section.keep
    )
    return f"no keep rule holds: {tried}"


def _compose_holds(rule: KeepRule, image: Image) -> str | None:
    """A compose rule keeps what a service names, tagged or pinned by digest (so a dangling
    image with a digest too); an image with no name at all no Compose file can name."""
    resolved = rule.compose_images or UNRESOLVED
    for reference in image.references:
        name = resolved.naming(reference)
        if name is not None:
            return f"images.keep[{rule.index}] compose: {reference.familiar} {name.describe()}"
    return None


def _decide(
    image: Image,
    *,
    section: ImagePolicy,
    safety: Safety,
    in_use: dict[str, list[str]],
    newest: dict[int, dict[str, int]],
    now: datetime,
) -> tuple[RuleId, str]:
    age = local_age(image, now)
    if image.id in in_use:
        return RuleId.IN_USE, "used by " + ", ".join(sorted(in_use[image.id]))
    if image.created is not None and image.created > now:
        return RuleId.CREATED_IN_FUTURE, f"Created {image.created.isoformat()} is in the future"
    if age < safety.min_age:
        shown = f"local age {format_duration(age)}"
        return RuleId.MIN_AGE, not_yet(shown, age, safety.min_age, "safety.min_age")
    for rule in section.keep:
        detail = _rule_holds(rule, image, age, newest, now)
        if detail is not None:
            return rule.rule_id, detail
    if image.is_dangling:
        within = section.dangling.keep_within
        shown = f"dangling, local age {format_duration(age)}"
        if age < within:
            return RuleId.DANGLING_WITHIN, not_yet(shown, age, within, "dangling.keep_within")
        return RuleId.DANGLING, f"{shown} >= dangling.keep_within {spell_duration(within)}"
    return RuleId.UNKEPT, _unkept(section, image, age, newest, now)


def _deletion_order(image: Image) -> tuple[int, float, str]:
    # Children before parents (more layers first), oldest first, so that the engine never
    # answers "image has dependent child images" for an image whose child is also going.
    return (-len(image.layers), image.seen_at.timestamp(), image.id)


def _released_note(
    rule: RuleId, detail: str, image: Image, released: dict[str, list[str]]
) -> tuple[RuleId, str]:
    if image.id not in released or rule is RuleId.IN_USE:
        return rule, detail
    return rule, f"{detail}; released by {', '.join(sorted(released[image.id]))}, removed first"


def judge(
    snapshot: Snapshot,
    section: ImagePolicy,
    safety: Safety,
    now: datetime,
    released: frozenset[str] = frozenset(),
) -> tuple[Judgement, ...]:
    """Every image of `snapshot` under the `images:` section: the guards first (in use by
    any container, Created in the future, younger than `safety.min_age`), then the keep rules
    in order, the first that holds being the reason, then dangling images by
    `dangling.keep_within`; what nothing keeps is deleted (`delete.unkept`).

    Containers in `released` (ids) are removed earlier in the same run: they hold nothing,
    and a decision they released says so."""
    images = tuple(sorted(snapshot.images, key=lambda i: i.id))
    in_use, freed = holders(snapshot.containers, released, lambda c: (c.image_id,))
    newest = {
        rule.index: _newest_sets(rule, images) for rule in section.keep if rule.newest is not None
    }
    return tuple(
        Judgement(
            image,
            *_released_note(
                *_decide(
                    image, section=section, safety=safety, in_use=in_use, newest=newest, now=now
                ),
                image,
                freed,
            ),
            age=local_age(image, now),
            last_use=last_use(image),
            order=_deletion_order(image),
        )
        for image in images
    )


def unmanaged(snapshot: Snapshot, now: datetime) -> tuple[Judgement, ...]:
    """No `images:` section: images are not touched."""
    return tuple(
        Judgement(
            image,
            RuleId.UNMANAGED,
            "policy has no images section",
            age=local_age(image, now),
            last_use=last_use(image),
            order=_deletion_order(image),
        )
        for image in sorted(snapshot.images, key=lambda i: i.id)
    )


def explain_reference(section: ImagePolicy, reference: Reference) -> str:
    """What the keep rules say about one reference alone (`gcd test-pattern`): the first
    rule that holds on the reference alone, and the conditional rules before it."""
    conditional: list[str] = []
    for rule in section.keep:
        if rule.references and not any(p.matches(reference) for p in rule.references):
            continue
        if rule.compose:  # its files are read in a cycle, not here
            conditional.append(
                f"{rule.describe()} ({rule.rule_id.value}) if a service of those Compose files "
                "names it, or one of them cannot be read"
            )
            continue
        conditions = []
        if rule.labels:
            conditions.append("its labels match")
        if rule.newest is not None:
            conditions.append(f"it is among the {rule.newest} newest of {reference.repository}")
        if rule.younger_than is not None or rule.used_within is not None:
            conditions.append("its local age or last use is recent enough")
        if conditions:
            conditional.append(
                f"{rule.describe()} ({rule.rule_id.value}) if " + " and ".join(conditions)
            )
            continue
        answer = f"kept by {rule.describe()} ({rule.rule_id.value})"
        return answer + ("; earlier, " + "; ".join(conditional) if conditional else "")
    if conditional:
        return "kept only by " + "; or ".join(conditional)
    return "no keep rule holds: deleted once older than safety.min_age and unused"
