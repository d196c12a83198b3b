"""Networks: the `networks:` section of the policy. Pure.

Guards first: never the engine's own networks (`bridge`, `host`, `none`) nor swarm's, never a
network any container (in any state) is attached to or the engine lists an endpoint of. A
user-defined network nothing has used for `unused_for` goes. Networks hold no bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from gcd.core.ages import not_yet
from gcd.core.holders import holders as find_holders
from gcd.core.kind import Kind
from gcd.core.plan import Judgement
from gcd.core.records import Network, Snapshot
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.core.units import format_duration, spell_duration

KIND = Kind.NETWORK


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    unused_for: timedelta


def _of(network: Network, attached: dict[str, list[str]]) -> list[str]:
    return sorted({*attached.get(network.id, ()), *attached.get(network.name, ())})


def last_use(network: Network, now: datetime, attached: bool) -> datetime:
    if attached:
        return now
    return max(network.last_used or network.seen_at, network.seen_at)


def _decide(
    network: Network,
    *,
    section: NetworkPolicy,
    safety: Safety,
    holders: dict[str, list[str]],
    released: dict[str, list[str]],
    now: datetime,
) -> tuple[RuleId, str]:
    if network.is_builtin:
        return RuleId.BUILTIN, f"the engine's own network ({network.scope} scope)"
    if _of(network, holders):
        return RuleId.IN_USE, "attached: " + ", ".join(_of(network, holders))
    if network.endpoints:
        return RuleId.IN_USE, f"{network.endpoints} endpoints"
    if network.created is not None and network.created > now:
        return RuleId.CREATED_IN_FUTURE, f"Created {network.created.isoformat()} is in the future"
    age = max(now - network.seen_at, timedelta(0))
    if age < safety.min_age:
        shown = f"local age {format_duration(age)}"
        return RuleId.MIN_AGE, not_yet(shown, age, safety.min_age, "safety.min_age")
    limit = spell_duration(section.unused_for)
    if _of(network, released):
        who = ", ".join(_of(network, released))
        return RuleId.UNUSED_WITHIN, f"attached to {who}, removed first; unused_for {limit}"
    idle = now - last_use(network, now, attached=False)
    text = f"unused for {format_duration(idle)}; unused_for {limit}"
    return (RuleId.UNUSED if idle >= section.unused_for else RuleId.UNUSED_WITHIN), text


def judge(
    snapshot: Snapshot,
    section: NetworkPolicy,
    safety: Safety,
    now: datetime,
    released: frozenset[str] = frozenset(),
) -> tuple[Judgement, ...]:
    """Every network of `snapshot` under the `networks:` section."""
    # By id, and by name: a never-started container has no NetworkID yet, only the name.
    holders, freed = find_holders(snapshot.containers, released, lambda c: c.networks)
    return tuple(
        Judgement(
            network,
            *_decide(
                network, section=section, safety=safety, holders=holders, released=freed, now=now
            ),
            age=max(now - network.seen_at, timedelta(0)),
            last_use=last_use(
                network, now, attached=bool(_of(network, holders) or _of(network, freed))
            ),
            order=(network.seen_at.timestamp(), network.id),
        )
        for network in sorted(snapshot.networks, key=lambda n: n.id)
    )


def unmanaged(snapshot: Snapshot, now: datetime) -> tuple[Judgement, ...]:
    """No `networks:` section (or a built-in network): not touched."""
    return tuple(
        Judgement(
            network,
            RuleId.BUILTIN if network.is_builtin else RuleId.UNMANAGED,
            "the engine's own network" if network.is_builtin else "policy has no networks section",
            age=max(now - network.seen_at, timedelta(0)),
            last_use=last_use(network, now, attached=False),
            order=(network.seen_at.timestamp(), network.id),
        )
        for network in sorted(snapshot.networks, key=lambda n: n.id)
    )
