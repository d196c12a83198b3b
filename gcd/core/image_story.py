"""One image's whole story (`gcd explain`): who uses it, how old it is here, every guard and
keep rule with its verdict, what the plan decided, and what deleting it frees. Pure.

The steps are every check `gcd.core.kinds.images.judge` makes, in its order, each tried
whether or not an earlier one decided (so an operator sees which later rule would also have
held); `decides` marks the one the policy stopped at. The plan's own decision comes last and
may differ from that step: disk pressure, a build running, the per-run cap or a hold act
after the rules (the decision's detail says which).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gcd.core.accounting import StorageAccount
from gcd.core.kinds.images import (
    ImagePolicy,
    _newest_sets,
    _rule_holds,
    local_age,
    why_not_kept,
)
from gcd.core.plan import Decision, Plan
from gcd.core.policy import Policy
from gcd.core.records import Container, Image, Snapshot
from gcd.core.references import InvalidReferenceError, parse_reference
from gcd.core.rules import RuleId
from gcd.core.units import format_duration, spell_duration


@dataclass(frozen=True, slots=True)
class Step:
    """One guard or keep rule, tried on the image."""

    name: str
    """`guard`, or the rule as the policy file places it (`images.keep[2] newest 3`)."""
    rule: RuleId
    holds: bool
    detail: str
    decides: bool = False


@dataclass(frozen=True, slots=True)
class ImageStory:
    now: datetime
    """When the plan was made."""
    image: Image
    decision: Decision
    users: tuple[Container, ...]
    """Every container created from it, in any state."""
    steps: tuple[Step, ...]
    alone_bytes: int
    """What deleting it alone would free: the layers nothing else uses."""
    with_plan_bytes: int
    """What it adds to the plan's deletions: the plan with it less the plan without it."""
    plan_freed_bytes: int
    """What the plan frees with it deleted (whatever the plan decided for it)."""


def find_image(snapshot: Snapshot, text: str) -> Image | None:
    """An image by full id, id prefix (with or without `sha256:`, at least 4 hex digits;
    ambiguous → None), tag or digest reference (`app:1`, `alpine` is `alpine:latest`)."""
    wanted = text.strip().lower().removeprefix("sha256:")
    if len(wanted) >= 4 and all(c in "0123456789abcdef" for c in wanted):
        by_id = [i for i in snapshot.images if i.id.removeprefix("sha256:").startswith(wanted)]
        if len(by_id) == 1:
            return by_id[0]
    try:
        reference = parse_reference(text.strip())
    except InvalidReferenceError:
        return None
    return next((i for i in snapshot.images if reference in i.references), None)


def _guards(image: Image, snapshot: Snapshot, policy: Policy, plan: Plan) -> list[Step]:
    now = plan.created_at
    users = [c for c in snapshot.containers if c.image_id == image.id]
    named = ", ".join(f"{c.name} ({c.state.value})" for c in users)
    age = local_age(image, now)
    min_age = policy.safety.min_age
    future = image.created is not None and image.created > now
    eligible = min_age - age
    return [
        Step(
            "guard",
            RuleId.IN_USE,
            bool(users),
            f"used by {named}" if users else "no container uses it",
        ),
        Step(
            "guard",
            RuleId.CREATED_IN_FUTURE,
            future,
            f"Created {image.created.isoformat() if image.created else 'unknown'}"
            + (" is in the future" if future else ""),
        ),
        Step(
            "guard",
            RuleId.MIN_AGE,
            age < min_age,
            f"local age {format_duration(age)} < safety.min_age {spell_duration(min_age)}: "
            f"eligible in {format_duration(eligible)}"
            if age < min_age
            else f"local age {format_duration(age)} ≥ safety.min_age {spell_duration(min_age)}",
        ),
    ]


def _rules(image: Image, section: ImagePolicy, snapshot: Snapshot, plan: Plan) -> list[Step]:
    now = plan.created_at
    images = tuple(sorted(snapshot.images, key=lambda i: i.id))
    newest = {r.index: _newest_sets(r, images) for r in section.keep if r.newest is not None}
    age = local_age(image, now)
    steps = []
    for rule in section.keep:
        name = rule.describe()
        detail = _rule_holds(rule, image, age, newest, now)
        if detail is None:
            said = why_not_kept(rule, image, age, newest, now)  # the plan's own words
        else:  # the plan's detail names the rule first; the step's name says it already
            said = detail.removeprefix(name).removeprefix(": ") or "holds"
        steps.append(Step(name, rule.rule_id, detail is not None, said))
    if image.is_dangling:
        within = section.dangling.keep_within
        steps.append(
            Step(
                "images.dangling",
                RuleId.DANGLING_WITHIN,
                age < within,
                f"dangling, local age {format_duration(age)} "
                + ("<" if age < within else "≥")
                + f" dangling.keep_within {spell_duration(within)}",
            )
        )
    return steps


def _first_deciding(steps: list[Step]) -> list[Step]:
    marked, done = [], False
    for step in steps:
        decides = step.holds and not done
        done = done or step.holds
        marked.append(
            Step(step.name, step.rule, step.holds, step.detail, decides) if decides else step
        )
    return marked


def tell(snapshot: Snapshot, policy: Policy, plan: Plan, image: Image) -> ImageStory:
    """`plan` is `evaluate(snapshot, policy, …)`: the story ends with its decision."""
    decision = next(d for d in plan.decisions if d.key == image.key)
    steps = _guards(image, snapshot, policy, plan)
    if policy.images is None:
        steps.append(Step("images", RuleId.UNMANAGED, True, "policy has no images section"))
    else:
        steps += _rules(image, policy.images, snapshot, plan)
        if not any(step.holds for step in steps):
            fallback = RuleId.DANGLING if image.is_dangling else RuleId.UNKEPT
            steps.append(Step("images", fallback, True, "no keep rule holds"))
    account = StorageAccount.of(snapshot)
    others = [d.subject for d in plan.decisions if d.deletes and d.key != image.key]
    with_it = account.freed_by([*others, image])
    return ImageStory(
        now=plan.created_at,
        image=image,
        decision=decision,
        users=tuple(c for c in snapshot.containers if c.image_id == image.id),
        steps=tuple(_first_deciding(steps)),
        alone_bytes=account.freed_by([image]),
        with_plan_bytes=with_it - account.freed_by(others),
        plan_freed_bytes=with_it,
    )
