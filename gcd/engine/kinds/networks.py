"""Networks: reading them into records, and removing one planned network safely.

**Used.** A network is used while any container, in any state, is attached to it. The engine
itself only counts *running* endpoints: `DELETE /networks/{id}` removes a network that a
stopped or never-started container is attached to (204 on Docker 20.10 and 26), and that
container then cannot start ("network … not found"). So gcd reads attachments from the
container list (`Container.networks`), never from the network alone. A never-started
container's `NetworkSettings.Networks` entry has an empty `NetworkID` (the endpoint does not
exist yet) and names the network only by its key, the network's name; so attachment is
matched by id or by name. `GET /networks` sends `Containers` empty on Docker (only an
inspect fills it, with running endpoints); it counts when an engine sends it.

**State.** The first sighting and the last use (the last time gcd saw a container attached)
are kept in gcd's state under `kind="network"`, so that `unused_for` counts from when the
network was last seen used, not from its creation.

**Removing** (`NetworkRemoval`), right before, in plan order: re-inspect (gone →
`already_gone`); the engine's own and swarm's networks are never planned, and are refused
here again, loudly, should one ever be; an endpoint in the fresh inspect, or any container of
a fresh `GET /containers/json?all=1` attached by id or name → `skipped_in_use`; then
`DELETE /networks/{id}`, whose 403/409 "has active endpoints" (a container started in the
last round trip) is a `conflict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import structlog

from gcd.core.plan import Decision
from gcd.core.records import Container, Network
from gcd.engine.api import EngineApi
from gcd.engine.kinds.reinspect import classify_removal
from gcd.engine.outcomes import OutcomeStatus, Removal, Verdict
from gcd.engine.times import parse_go_time
from gcd.host.state import State

__all__ = ["KIND", "NetworkRemoval", "attached_networks", "parse_network", "read_networks"]

KIND = "network"
"""The network rows of gcd's state."""

log = structlog.get_logger("gcd.executor")


def _labels(raw: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def parse_network(
    raw: Mapping[str, Any], *, seen_at: datetime, last_used: datetime | None = None
) -> Network | None:
    """One `GET /networks` (or inspect) entry, or None when it has no id."""
    network_id = raw.get("Id")
    if not isinstance(network_id, str) or not network_id:
        return None
    endpoints = raw.get("Containers")
    return Network(
        id=network_id,
        name=str(raw.get("Name") or ""),
        driver=str(raw.get("Driver") or ""),
        scope=str(raw.get("Scope") or "local"),
        seen_at=seen_at,
        labels=_labels(raw.get("Labels")),
        created=parse_go_time(raw.get("Created") or ""),
        last_used=last_used,
        endpoints=len(endpoints) if isinstance(endpoints, Mapping) else 0,
        ingress=raw.get("Ingress") is True,
    )


def attached_networks(raw_container: Mapping[str, Any]) -> tuple[str, ...]:
    """The networks a listed container is attached to, by id where the engine gives one and
    by name always (a never-started container's `NetworkID` is empty)."""
    settings = raw_container.get("NetworkSettings")
    networks = settings.get("Networks") if isinstance(settings, Mapping) else None
    if not isinstance(networks, Mapping):
        return ()
    found: list[str] = []
    for name, entry in networks.items():
        found.append(str(name))
        network_id = entry.get("NetworkID") if isinstance(entry, Mapping) else None
        if isinstance(network_id, str) and network_id:
            found.append(network_id)
    return tuple(found)


def _users(network: Network, attachments: Iterable[tuple[str, Iterable[str]]]) -> list[str]:
    """The containers (by name) attached to `network`, by its id or its name."""
    keys = {network.id, network.name}
    return sorted(name for name, networks in attachments if keys & set(networks))


def read_networks(
    engine: EngineApi, state: State, containers: Sequence[Container], now: datetime
) -> tuple[Network, ...]:
    """`GET /networks` → records; first sightings and uses recorded in the bound `state`
    (which the caller saves), networks that went forgotten."""
    attachments = [(c.name, c.networks) for c in containers]
    networks: list[Network] = []
    for raw in engine.list_networks():
        listed = parse_network(raw, seen_at=now)
        if listed is None:
            continue
        seen_at = state.first_seen(listed.id, kind=KIND)
        if seen_at is None:
            seen_at = now
            state.mark_seen(listed.id, now, kind=KIND)
        if listed.endpoints or _users(listed, attachments):
            state.mark_used(listed.id, now, kind=KIND)
        networks.append(
            replace(listed, seen_at=seen_at, last_used=state.last_used(listed.id, kind=KIND))
        )
    state.forget_missing((n.id for n in networks), kind=KIND)
    return tuple(networks)


class NetworkRemoval(Removal):
    """Removing one planned user-defined network by id."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        super().__init__(decision, engine, since)
        if not isinstance(decision.subject, Network):
            raise TypeError(f"{decision.key} is not a network")
        self.network = decision.subject

    def attempt(self) -> Verdict:
        raw = self.engine.inspect_network(self.network.id)
        if raw is None:
            return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
        fresh = parse_network(raw, seen_at=self.network.seen_at)
        if self.network.is_builtin or fresh is None or fresh.is_builtin:
            # The judges never plan these; reaching here is a bug, and it must not delete.
            log.error("network_builtin_planned", network=self.network.name, id=self.network.id)
            return Verdict(
                OutcomeStatus.SKIPPED_CHANGED,
                f"{self.network.name} is the engine's own or a swarm network: never removed",
            )
        if fresh.endpoints:
            endpoints = raw.get("Containers") or {}
            names = sorted(str(e.get("Name") or k)[:64] for k, e in endpoints.items())
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "endpoints: " + ", ".join(names))
        users = _users(
            self.network,
            (
                (str((c.get("Names") or [c.get("Id", "")])[0]).lstrip("/"), attached_networks(c))
                for c in self.engine.list_containers()
            ),
        )
        if users:
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, "attached: " + ", ".join(users))
        self.touched = True
        return classify_removal(
            self.engine.remove_network(self.network.id),
            removed="removed by id",
            gone=lambda: self.engine.inspect_network(self.network.id) is None,
            what="the network",
        )
