"""`evaluate(snapshot, policy, now) -> Plan`: the pure heart of gcd.

Each kind judges its own objects (`gcd.core.kinds`: guards first, then its keep rules); then
the steps common to every kind: under disk pressure the soft keeps of every kind yield, least
recently used first (`gcd.core.budget`); deletions are ordered; the per-run cap defers the
rest; the delete fraction may refuse the whole plan, as a value in the plan.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from gcd.core.accounting import StorageAccount
from gcd.core.budget import Pressure, evict
from gcd.core.kind import Kind
from gcd.core.kinds import images
from gcd.core.plan import Decision, Judgement, Plan
from gcd.core.policy import Policy
from gcd.core.records import Snapshot
from gcd.core.rules import RuleId
from gcd.core.units import format_duration

__all__ = ["KINDS", "evaluate"]

Judge = Callable[[Snapshot, Policy, datetime], tuple[Judgement, ...]]


def _images(snapshot: Snapshot, policy: Policy, now: datetime) -> tuple[Judgement, ...]:
    if policy.images is None:
        return images.unmanaged(snapshot, now)
    return images.judge(snapshot, policy.images, policy.safety, now)


KINDS: tuple[tuple[Kind, Judge], ...] = ((Kind.IMAGE, _images),)
"""Every kind gcd collects, in the order its deletions run. Adding a kind: one module in
`gcd.core.kinds`, one adapter in `gcd.engine`, and one entry here."""


def _under_pressure(
    judged: list[Judgement], account: StorageAccount, pressure: Pressure, now: datetime
) -> tuple[list[Judgement], str, bool]:
    deleting = [j.subject for j in judged if j.rule.deletes]
    soft = sorted(
        (j for j in judged if j.rule.yields_to_pressure),
        key=lambda j: (j.last_use, j.subject.key),
    )
    eviction = evict(pressure, account, deleting, [j.subject for j in soft])
    evicted = set(eviction.evicted)
    result = [
        replace(
            j,
            rule=RuleId.PRESSURE,
            detail=f"{pressure.describe()}; last used {format_duration(now - j.last_use)} "
            f"ago; yields {j.rule.value}",
        )
        if j.subject.key in evicted
        else j
        for j in judged
    ]
    note = f"{pressure.describe()}; projected {eviction.projected_ratio:.0%} after this run"
    if eviction.shortfall:
        note += "; nothing evictable is left above the high watermark"
    return result, note, eviction.shortfall


def _refusal(judged: Sequence[Judgement], policy: Policy) -> str | None:
    """The delete fraction, per kind: a policy that would delete nearly everything of a kind
    is more likely wrong than meant."""
    limit = policy.safety.max_delete_fraction
    for kind, _ in KINDS:
        of_kind = [j for j in judged if j.subject.key.kind is kind]
        deleting = sum(1 for j in of_kind if j.rule.deletes)
        if of_kind and deleting / len(of_kind) > limit:
            return (
                f"the plan deletes {deleting} of {len(of_kind)} {kind.value}s "
                f"({deleting / len(of_kind):.0%}), more than "
                f"safety.max_delete_fraction={limit:g}; nothing was deleted. Check the policy "
                "with `gcd plan`, or raise the limit if this is intended"
            )
    return None


def evaluate(
    snapshot: Snapshot, policy: Policy, now: datetime, pressure: Pressure | None = None
) -> Plan:
    """Decide every object of `snapshot` under `policy` at `now`. Pure and deterministic.

    Under `pressure` above its high watermark, soft keeps (`newest`, `younger_than`,
    `used_within`) yield, least recently used first, until usage is projected below low."""
    account = StorageAccount.of(snapshot)
    judged = [j for _, judge in KINDS for j in judge(snapshot, policy, now)]
    pressure_note, shortfall = None, False
    managed = policy.images is not None
    if managed and pressure is not None and pressure.above_high:
        judged, pressure_note, shortfall = _under_pressure(judged, account, pressure, now)

    kind_order = {kind: position for position, (kind, _) in enumerate(KINDS)}
    deleting = sorted(
        (j for j in judged if j.rule.deletes),
        key=lambda j: (kind_order[j.subject.key.kind], j.order),
    )
    limit = policy.safety.max_deletions_per_run
    deferred = {j.subject.key for j in deleting[limit:]}
    order = {j.subject.key: position for position, j in enumerate(deleting)}

    decisions: list[Decision] = []
    for j in judged:
        rule, detail = j.rule, j.detail
        if j.subject.key in deferred:
            rule, detail = RuleId.RUN_LIMIT, f"beyond safety.max_deletions_per_run={limit}"
        freed = account.freed_by([j.subject]) if rule.deletes else 0
        decisions.append(Decision(j.subject, rule, detail, j.age, freed))
    decisions.sort(key=lambda d: (order.get(d.key, len(order)), d.key))
    return Plan(
        now,
        tuple(decisions),
        account.freed_by(d.subject for d in decisions if d.deletes),
        account.total_bytes,
        _refusal(judged, policy) if managed else None,
        pressure_note,
        shortfall,
    )
