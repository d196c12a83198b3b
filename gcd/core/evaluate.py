"""`evaluate(snapshot, policy, now) -> Plan`: the pure heart of gcd.

Two guards come first and cannot be switched off (in use by any container, younger than
`safety.min_age`); then the keep rules in order, the first that holds being the reason; then
dangling images by `dangling.keep_within`; what nothing keeps is deleted.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from gcd.core.accounting import LayerAccount
from gcd.core.budget import Pressure, evict
from gcd.core.kinds.images import KeepRule
from gcd.core.plan import Decision, Plan
from gcd.core.policy import Policy
from gcd.core.records import Image, Snapshot
from gcd.core.rules import RuleId
from gcd.core.units import format_duration

__all__ = ["evaluate", "last_use", "local_age"]


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
        return f"{rule.describe()}: #{rank} newest in its repository"
    if rule.younger_than is not None:
        if age >= rule.younger_than:
            return None
        return f"{rule.describe()}: local age {format_duration(age)}"
    if rule.used_within is not None:
        idle = now - last_use(image)
        if idle >= rule.used_within:
            return None
        return f"{rule.describe()}: last used {format_duration(idle)} ago"
    return rule.describe()


def _decide(
    image: Image,
    policy: Policy,
    in_use: dict[str, list[str]],
    newest: dict[int, dict[str, int]],
    now: datetime,
) -> tuple[RuleId, str]:
    age = local_age(image, now)
    if image.id in in_use:
        return RuleId.IN_USE, "used by container " + ", ".join(sorted(in_use[image.id]))
    if image.created is not None and image.created > now:
        return RuleId.CREATED_IN_FUTURE, f"Created {image.created.isoformat()} is in the future"
    if age < policy.safety.min_age:
        return RuleId.MIN_AGE, f"local age {format_duration(age)} < safety.min_age"
    assert policy.images is not None
    for rule in policy.images.keep:
        detail = _rule_holds(rule, image, age, newest, now)
        if detail is not None:
            return rule.rule_id, detail
    if image.is_dangling:
        if age < policy.images.dangling.keep_within:
            return RuleId.DANGLING_WITHIN, f"dangling, local age {format_duration(age)}"
        return RuleId.DANGLING, f"dangling, local age {format_duration(age)}"
    return RuleId.UNKEPT, "no keep rule holds"


def _apply_pressure(
    decided: list[tuple[Image, RuleId, str]],
    account: LayerAccount,
    pressure: Pressure,
    now: datetime,
) -> tuple[list[tuple[Image, RuleId, str]], str]:
    deleting = [image for image, rule, _ in decided if rule.deletes]
    soft = sorted(
        (image for image, rule, _ in decided if rule.yields_to_pressure),
        key=lambda i: (last_use(i), i.id),
    )
    eviction = evict(pressure, account, deleting, soft)
    evicted = set(eviction.evicted)
    result = [
        (
            (
                image,
                RuleId.PRESSURE,
                f"{pressure.describe()}; last used {format_duration(now - last_use(image))} "
                f"ago; yields {rule.value}",
            )
            if image.id in evicted
            else (image, rule, detail)
        )
        for image, rule, detail in decided
    ]
    note = f"{pressure.describe()}; projected {eviction.projected_ratio:.0%} after this run"
    if eviction.shortfall:
        note += "; nothing evictable is left above the high watermark"
    return result, note


def evaluate(
    snapshot: Snapshot, policy: Policy, now: datetime, pressure: Pressure | None = None
) -> Plan:
    """Decide every image of `snapshot` under `policy` at `now`. Pure and deterministic.

    Under `pressure` above its high watermark, soft keeps (`newest`, `younger_than`,
    `used_within`) yield, least recently used first, until usage is projected below low."""
    images = tuple(sorted(snapshot.images, key=lambda i: i.id))
    account = LayerAccount.of(snapshot)
    total = sum(account.sizes.get(layer, 0) for layer in account.users)
    if policy.images is None:
        untouched = tuple(
            Decision(i, RuleId.UNMANAGED, "policy has no images section", local_age(i, now))
            for i in images
        )
        return Plan(now, untouched, 0, total)

    in_use: dict[str, list[str]] = defaultdict(list)
    for container in snapshot.containers:
        in_use[container.image_id].append(f"{container.name} ({container.state})")
    newest = {
        rule.index: _newest_sets(rule, images)
        for rule in policy.images.keep
        if rule.newest is not None
    }
    decided = [(image, *_decide(image, policy, in_use, newest, now)) for image in images]
    pressure_note = None
    if pressure is not None and pressure.above_high:
        decided, pressure_note = _apply_pressure(decided, account, pressure, now)

    # Children before parents (more layers first), oldest first, so that the engine never
    # answers "image has dependent child images" for an image whose child is also going.
    deleting = sorted(
        (image for image, rule, _ in decided if rule.deletes),
        key=lambda i: (-len(i.layers), i.seen_at, i.id),
    )
    limit = policy.safety.max_deletions_per_run
    deferred = {image.id for image in deleting[limit:]}
    order = {image.id: position for position, image in enumerate(deleting)}

    decisions: list[Decision] = []
    for image, decided_rule, decided_detail in decided:
        rule, detail = decided_rule, decided_detail
        if image.id in deferred:
            rule, detail = RuleId.RUN_LIMIT, f"beyond safety.max_deletions_per_run={limit}"
        freed = account.freed_by([image]) if rule.deletes else 0
        decisions.append(Decision(image, rule, detail, local_age(image, now), freed))
    decisions.sort(key=lambda d: (order.get(d.image.id, len(order)), d.image.id))

    deleted = [d.image for d in decisions if d.deletes]
    refusal = None
    if images and len(deleting) / len(images) > policy.safety.max_delete_fraction:
        refusal = (
            f"the plan deletes {len(deleting)} of {len(images)} images "
            f"({len(deleting) / len(images):.0%}), more than "
            f"safety.max_delete_fraction={policy.safety.max_delete_fraction:g}; nothing was "
            "deleted. Check the policy with `gcd plan`, or raise the limit if this is intended"
        )
    return Plan(now, tuple(decisions), account.freed_by(deleted), total, refusal, pressure_note)
