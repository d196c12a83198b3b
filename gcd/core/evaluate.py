"""`evaluate(snapshot, policy, now) -> Plan`: the pure heart of gcd.

Each kind judges its own objects (`gcd.core.kinds`: guards first, then its keep rules).
Containers are judged first: one removed in this run holds nothing, so the images, volumes
and networks it alone used are judged as released (and say so). Then the steps common to
every kind: under disk pressure the soft keeps of every kind yield, kind by kind in the
eviction order, least recently used first within a kind, until the projected usage is below
`low` (`gcd.core.budget`); while a build runs, the deletions that could break it wait
(`gcd.core.busy`, `keep.busy`, not at the critical watermark); deletions are ordered
(containers first; at the critical watermark images last, as the engine may be too full to
delete them); the per-run cap defers the rest
of each kind; the delete fraction of what then remains to delete may refuse the whole plan, as
a value in the plan (`gcd.core.safety`: both limits apply per kind, and a kind's section may
set its own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from copy import copy
from dataclasses import replace
from datetime import datetime

from gcd.core.accounting import StorageAccount
from gcd.core.ages import last_use, unrecorded
from gcd.core.budget import Pressure, evict
from gcd.core.busy import Busy
from gcd.core.busy import busy as find_busy
from gcd.core.holds import is_hold_decision, judge_containers, judge_images
from gcd.core.kind import Key, Kind, Record
from gcd.core.kinds import build_cache, containers, images, networks, volumes
from gcd.core.plan import Decision, Judgement, Plan
from gcd.core.policy import Policy
from gcd.core.records import Image, Network, Snapshot, Volume
from gcd.core.rules import RuleId
from gcd.core.safety import beyond_cap, refusal
from gcd.core.shared import shared_units
from gcd.core.units import format_duration

__all__ = ["CRITICAL_ORDER", "EVICTION_ORDER", "KINDS", "evaluate", "managed_kinds"]

Released = frozenset[str]
Judge = Callable[[Snapshot, Policy, datetime, Released], tuple[Judgement, ...]]


def _containers(
    snapshot: Snapshot, policy: Policy, now: datetime, _: Released
) -> tuple[Judgement, ...]:
    if policy.containers is None:
        return containers.unmanaged(snapshot, now)
    return containers.judge(snapshot, policy.containers, policy.safety, now)


def _images(
    snapshot: Snapshot, policy: Policy, now: datetime, released: Released
) -> tuple[Judgement, ...]:
    if policy.images is None:
        return images.unmanaged(snapshot, now)
    return images.judge(snapshot, policy.images, policy.safety, now, released)


def _volumes(
    snapshot: Snapshot, policy: Policy, now: datetime, released: Released
) -> tuple[Judgement, ...]:
    if policy.volumes is None:
        return volumes.unmanaged(snapshot, now)
    return volumes.judge(snapshot, policy.volumes, policy.safety, now, released)


def _networks(
    snapshot: Snapshot, policy: Policy, now: datetime, released: Released
) -> tuple[Judgement, ...]:
    if policy.networks is None:
        return networks.unmanaged(snapshot, now)
    return networks.judge(snapshot, policy.networks, policy.safety, now, released)


def _build_cache(
    snapshot: Snapshot, policy: Policy, now: datetime, _: Released
) -> tuple[Judgement, ...]:
    if policy.build_cache is None:
        return build_cache.unmanaged(snapshot, now)
    return build_cache.judge(snapshot, policy.build_cache, policy.safety, now)


KINDS: tuple[tuple[Kind, Judge], ...] = (
    (Kind.CONTAINER, _containers),
    (Kind.IMAGE, _images),
    (Kind.VOLUME, _volumes),
    (Kind.NETWORK, _networks),
    (Kind.BUILD_CACHE, _build_cache),
)
"""Every kind gcd collects, in the order its deletions run: a container first releases its
image, volumes and networks. Adding a kind: one module in `gcd.core.kinds`, one adapter in
`gcd.engine.kinds`, and one entry here."""

CRITICAL_ORDER = (Kind.CONTAINER, Kind.VOLUME, Kind.BUILD_CACHE, Kind.NETWORK, Kind.IMAGE)
"""The order of deletions at the critical watermark: a completely full engine cannot delete
images (HTTP 500 writing its metadata) but can remove containers, volumes and build cache."""

DANGLING = "dangling images"
EVICTION_ORDER: tuple[Kind | str, ...] = (
    Kind.BUILD_CACHE,
    Kind.CONTAINER,
    DANGLING,
    Kind.IMAGE,
    Kind.VOLUME,
)
"""Under disk pressure, soft keeps yield in this order of kinds (least recently used first
within each): build cache is rebuilt cheaply, a stopped container is rarely wanted again,
images are pulled again, and a volume may be someone's only copy of its data. Networks hold no
bytes and never yield."""


def managed_kinds(policy: Policy) -> tuple[Kind, ...]:
    sections = {
        Kind.CONTAINER: policy.containers,
        Kind.IMAGE: policy.images,
        Kind.VOLUME: policy.volumes,
        Kind.NETWORK: policy.networks,
        Kind.BUILD_CACHE: policy.build_cache,
    }
    return tuple(kind for kind, _ in KINDS if sections[kind] is not None)


def _stage(judgement: Judgement) -> Kind | str:
    subject = judgement.subject
    if isinstance(subject, Image) and subject.is_dangling:
        return DANGLING
    return subject.key.kind


def _idle(judged: Judgement, now: datetime) -> str:
    """How long since the object was used, `never used` said as such (an image, volume or
    network no container was seen using: its last use is then its first sighting)."""
    subject = judged.subject
    if isinstance(subject, Image | Volume | Network) and subject.last_used is None:
        return last_use(None, now, f"local age {format_duration(judged.age)}")
    return last_use(judged.last_use, now)


class _Judging:
    """The judgements of every kind, redone when the set of released containers grows, with
    the pressure evictions made so far applied on top."""

    def __init__(self, snapshot: Snapshot, policy: Policy, now: datetime) -> None:
        self.snapshot, self.policy, self.now = snapshot, policy, now
        self.evicted: dict[Key, str] = {}
        # Holds are gcd's own: decided whatever the policy's sections (gcd.core.holds).
        self.containers = judge_containers(_containers(snapshot, policy, now, frozenset()), now)
        self.released = frozenset(j.subject.key.id for j in self.containers if j.rule.deletes)
        self.rejudge()

    def rejudge(self) -> None:
        others = judge_images(
            (
                j
                for kind, judge in KINDS
                if kind is not Kind.CONTAINER
                for j in judge(self.snapshot, self.policy, self.now, self.released)
            ),
            (j for j in self.containers if j.subject.key.id not in self.released),
        )
        self.judged = self._evictions_applied([*self.containers, *others])

    def _evictions_applied(self, judged: Iterable[Judgement]) -> list[Judgement]:
        return [
            replace(
                j,
                rule=RuleId.PRESSURE,
                detail=f"{self.evicted[j.subject.key]}; yields {j.rule.value}",
            )
            if j.subject.key in self.evicted and j.rule.yields_to_pressure
            else j
            for j in judged
        ]

    def evict(self, keys: Iterable[Key], pressure: Pressure) -> None:
        by_key = {j.subject.key: j for j in self.judged}
        for key in keys:
            self.evicted[key] = f"{pressure.describe()}; {_idle(by_key[key], self.now)}"
        self.containers = self._evictions_applied(self.containers)
        self.released = frozenset(j.subject.key.id for j in self.containers if j.rule.deletes)
        self.rejudge()

    def deleting(self) -> list[Record]:
        """What would go as judged so far: a build-cache parent only with its children."""
        return [j.subject for j in build_cache.settle(self.judged) if j.rule.deletes]

    def probe(self, keys: Sequence[Key], pressure: Pressure) -> _Judging:
        """The judgements if `keys` were evicted too; this one is left as it is."""
        trial = copy(self)
        trial.evicted = dict(self.evicted)
        trial.evict(keys, pressure)
        return trial

    def defer_containers(self, deferred: set[Key]) -> None:
        """Containers beyond the per-run cap stay, and so hold what they use."""
        self.released = frozenset(
            k.id
            for k in (j.subject.key for j in self.containers if j.rule.deletes)
            if k not in deferred
        )
        self.rejudge()


def _worth(judgement: Judgement, account: StorageAccount) -> bool:
    """A volume or cache record that frees nothing (empty, or of unknown size because the
    engine's df failed) is not deleted for the disk's sake. Images and containers are: a
    layer shared by two images goes with the second, and a container releases its image."""
    if judgement.subject.key.kind in (Kind.VOLUME, Kind.BUILD_CACHE):
        return account.freed_by([judgement.subject]) > 0
    return True


def _under_pressure(
    judging: _Judging, account: StorageAccount, pressure: Pressure
) -> tuple[str, bool]:
    def below_low(trial: _Judging) -> bool:
        return pressure.projected_ratio(account.freed_by(trial.deleting())) < pressure.low

    for stage in EVICTION_ORDER:
        deleting = judging.deleting()
        soft = sorted(
            (
                j
                for j in judging.judged
                if j.rule.yields_to_pressure and _stage(j) == stage and _worth(j, account)
            ),
            key=lambda j: (j.last_use, j.order, j.subject.key),
        )
        if stage is Kind.BUILD_CACHE:
            soft = build_cache.leaf_first(soft, build_cache.settle(judging.judged))
        evicted = evict(pressure, account, deleting, [j.subject for j in soft]).evicted
        if stage is Kind.CONTAINER and len(evicted) > 1:
            # Counted alone, containers are an upper bound: what each releases (its image,
            # volumes) frees more. The shortest prefix that reaches below low, by bisection.
            shortest, longest = 1, len(evicted)
            while shortest < longest:
                middle = (shortest + longest) // 2
                if below_low(judging.probe(evicted[:middle], pressure)):
                    longest = middle
                else:
                    shortest = middle + 1
            evicted = evicted[:shortest]
        if evicted:
            judging.evict(evicted, pressure)
        if below_low(judging):
            break
    deleting = judging.deleting()
    projected = pressure.projected_ratio(account.freed_by(deleting))
    note = f"{pressure.describe()}; projected {projected:.0%} after this run"
    shortfall = projected > pressure.high
    if shortfall:
        note += "; nothing evictable is left above the high watermark"
    return note, shortfall


def _busy_note(busy: Busy | None, critical: bool, deferred: int) -> str | None:
    if busy is None:
        return None
    if critical:
        return f"{busy.describe()}; not deferred: the disk is at the critical watermark"
    return f"{busy.describe()}; {deferred} deletion(s) deferred to a later cycle"


def evaluate(
    snapshot: Snapshot, policy: Policy, now: datetime, pressure: Pressure | None = None
) -> Plan:
    """Decide every object of `snapshot` under `policy` at `now`. Pure and deterministic.

    Under `pressure` above its high watermark, soft keeps (`newest`, `younger_than`,
    `used_within`, `exited_within`, `unused_within`, `within_size`) yield in
    `EVICTION_ORDER` until usage is projected below low."""
    account = StorageAccount.of(snapshot)
    judging = _Judging(snapshot, policy, now)
    pressure_note, shortfall = None, False
    managed = managed_kinds(policy)
    if managed and pressure is not None and pressure.above_high:
        pressure_note, shortfall = _under_pressure(judging, account, pressure)

    critical = pressure is not None and pressure.above_high and pressure.critical_reached
    busy = find_busy(snapshot, policy.safety.quiet_for, now) if managed else None

    def gated(judgements: Iterable[Judgement]) -> set[Key]:
        """What the busy gate defers (`gcd.core.busy`): nothing at the critical watermark."""
        if busy is None or critical:
            return set()
        return {j.subject.key for j in judgements if j.rule.deletes and busy.defers(j.subject.key)}

    limits = {kind: policy.safety.limits(kind) for kind, _ in KINDS}
    waiting = gated(j for j in judging.judged if j.subject.key.kind is Kind.CONTAINER)
    deferred = beyond_cap(
        (j for j in judging.judged if j.subject.key not in waiting), limits[Kind.CONTAINER]
    )
    if deferred or waiting:
        judging.defer_containers(deferred | waiting)
    judged = list(build_cache.settle(judging.judged))
    waiting |= gated(j for j in judged if j.subject.key.kind is not Kind.CONTAINER)
    for kind, _ in KINDS:
        if kind is not Kind.CONTAINER:
            deferred |= beyond_cap(
                (j for j in judged if j.subject.key not in waiting), limits[kind]
            )
    deferred |= waiting

    sequence = CRITICAL_ORDER if critical else tuple(kind for kind, _ in KINDS)
    kind_order = {kind: position for position, kind in enumerate(sequence)}
    deleting = sorted(
        (j for j in judged if j.rule.deletes and j.subject.key not in deferred),
        key=lambda j: (kind_order[j.subject.key.kind], j.order),
    )
    order = {j.subject.key: position for position, j in enumerate(deleting)}

    decisions: list[Decision] = []
    for j in judged:
        rule, detail = j.rule, j.detail
        if j.subject.key in waiting and busy is not None:
            rule, detail = RuleId.BUSY, f"deferred: {busy.describe()}; planned {j.rule.value}"
        elif j.subject.key in deferred:
            cap = limits[j.subject.key.kind]
            rule = RuleId.RUN_LIMIT
            detail = f"beyond {cap.deletions_key}={cap.max_deletions_per_run}"
        freed = account.freed_by([j.subject]) if rule.deletes else 0
        decisions.append(Decision(j.subject, rule, detail, j.age, freed))
    decisions.sort(key=lambda d: (order.get(d.key, len(order)), d.key))
    busy_note = _busy_note(busy, critical, sum(1 for d in decisions if d.rule is RuleId.BUSY))
    return Plan(
        now,
        tuple(decisions),
        account.freed_by(d.subject for d in decisions if d.deletes),
        account.total_bytes,
        refusal(
            [d for d in decisions if not is_hold_decision(d.key.kind, d.rule)],
            (limits[kind] for kind in managed),
        ),
        pressure_note,
        shortfall,
        busy_note,
        unrecorded=unrecorded(
            ((image.age_from, image.seen_at) for image in snapshot.images),
            policy.safety.unknown_age,
            policy.safety.min_age,
        ),
        shared=shared_units(
            (d.subject for d in decisions if d.deletes),
            (d.subject for d in decisions if not d.deletes),
            snapshot.unit_sizes,
        ),
    )
