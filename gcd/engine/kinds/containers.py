"""Containers on the engine: reading them into records, and removing one planned container
safely (engine-facts.md §1.2).

**Reading.** `GET /containers/json?all=1` gives the state, labels, image, creation time,
mounts and networks of every container in one call; it does not say when a container started
or exited, nor its restart policy. Those come from `GET /containers/{id}/json`, made only for
containers that are not active (running, paused, restarting, being removed: the core never
removes those, so their details would not change a decision). The answer is cached in the
process by container id (`DetailsCache`) while the container stays inactive: an exited
container's start and exit times do not change until it is started again, and a container
seen active is dropped from the cache. A container restarted and stopped between two
snapshots keeps its cached (older) exit time, which is why the executor re-inspects right
before removal and skips a container whose `StartedAt` moved since the plan (refreshing the
cache). An inspect that answers 404 means the container went meanwhile: it is left out of the
snapshot. Any other failure keeps it with `details_known=False`, which the core keeps
(`keep.details_unknown`).

**Removing.** Right before, in plan order:

1. Re-inspect the container by id. Gone → `already_gone`.
2. Active now (started since the plan, or being removed) → `skipped_in_use`. Its `StartedAt`
   differs from the planned one (started and stopped again since the snapshot: its exit time
   is not the one the policy judged) → `skipped_changed`, and the cache takes the fresh
   details, so the next plan judges the new exit time.
3. `DELETE /containers/{id}?v=0&force=0`. Never force: a container started in the moment
   after step 2 is a 409 (`conflict`), counted, never killed. Never `v`: its anonymous volumes
   stay, for the `volumes` section to judge like any other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from gcd.core.holds import EXPIRES_LABEL, is_hold, parse_expiry
from gcd.core.plan import Decision
from gcd.core.records import ACTIVE_STATES, Container, ContainerState
from gcd.core.rules import RuleId
from gcd.engine.api import EngineApi
from gcd.engine.kinds.networks import attached_networks
from gcd.engine.kinds.reinspect import classify_removal
from gcd.engine.outcomes import OutcomeStatus, Removal, Verdict
from gcd.engine.times import parse_created, parse_go_time
from gcd.errors import EngineError

log = structlog.get_logger("gcd.snapshot")

_PODMAN_STATES = {
    "stopped": ContainerState.EXITED,
    "configured": ContainerState.CREATED,
    "initialized": ContainerState.CREATED,
    "stopping": ContainerState.RUNNING,
}
"""Podman's compatible API lists its own state names (an exited container is `stopped`)."""


def parse_state(text: object) -> ContainerState:
    """A state as an engine names it; an unknown one is `created`, which still protects the
    container's image and volumes and is never judged active."""
    name = str(text or "").lower()
    try:
        return _PODMAN_STATES.get(name) or ContainerState(name)
    except ValueError:
        return ContainerState.CREATED


def _volumes(mounts: Any) -> tuple[str, ...]:
    names = {
        str(m["Name"])
        for m in mounts or ()
        if isinstance(m, dict) and m.get("Type") == "volume" and m.get("Name")
    }
    return tuple(sorted(names))


def _labels(labels: Any) -> dict[str, str]:
    return {str(k): str(v) for k, v in (labels or {}).items()} if isinstance(labels, dict) else {}


def parse_container(raw: Mapping[str, Any]) -> Container | None:
    """One entry of `GET /containers/json?all=1`; without the inspect's details."""
    image_id = raw.get("ImageID")
    if not isinstance(image_id, str) or not image_id:
        # Every engine version sends ImageID; an image named only by reference cannot be
        # protected by id, so say so rather than guess.
        log.warning("container_without_image_id", container=raw.get("Id"), image=raw.get("Image"))
        return None
    names = raw.get("Names") or [raw["Id"][:12]]
    return Container(
        id=raw["Id"],
        name=str(names[0]).lstrip("/"),
        image_id=image_id,
        state=parse_state(raw.get("State")),
        image=str(raw.get("Image") or ""),
        labels=_labels(raw.get("Labels")),
        created=parse_created(raw.get("Created")),
        volumes=_volumes(raw.get("Mounts")),
        networks=attached_networks(raw),
    )


@dataclass(frozen=True, slots=True)
class ContainerDetails:
    """What only an inspect says of a container."""

    started_at: datetime | None
    finished_at: datetime | None
    restart_policy: str


def _object(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def details_of(record: Mapping[str, Any]) -> ContainerDetails:
    """`GET /containers/{id}/json` → its details; Go's zero time (never started, never
    finished) is None."""
    state = _object(record.get("State"))
    policy = _object(_object(record.get("HostConfig")).get("RestartPolicy"))
    return ContainerDetails(
        started_at=parse_go_time(state.get("StartedAt")),
        finished_at=parse_go_time(state.get("FinishedAt")),
        restart_policy=str(policy.get("Name") or "no"),
    )


def inspected_state(record: Mapping[str, Any]) -> ContainerState:
    """The inspected container's state; a `Running`, `Paused` or `Restarting` flag wins over
    a status that does not say so (an engine's new state name must not make it removable)."""
    state = _object(record.get("State"))
    status = parse_state(state.get("Status"))
    if status in ACTIVE_STATES:
        return status
    if state.get("Paused"):
        return ContainerState.PAUSED
    if state.get("Restarting"):
        return ContainerState.RESTARTING
    return ContainerState.RUNNING if state.get("Running") else status


class DetailsCache:
    """Inspected details of inactive containers, by container id, for the life of the
    process. Thread-safe: the daemon's event thread may `forget` while a cycle reads."""

    def __init__(self) -> None:
        self._entries: dict[str, ContainerDetails] = {}
        self._lock = threading.Lock()

    def get(self, container_id: str) -> ContainerDetails | None:
        with self._lock:
            return self._entries.get(container_id)

    def put(self, container_id: str, details: ContainerDetails) -> None:
        with self._lock:
            self._entries[container_id] = details

    def forget(self, container_id: str) -> None:
        """Drop one entry (the container started, or went): the next snapshot inspects it."""
        with self._lock:
            self._entries.pop(container_id, None)

    def retain(self, container_ids: Iterable[str]) -> None:
        keep = set(container_ids)
        with self._lock:
            self._entries = {k: v for k, v in self._entries.items() if k in keep}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


SHARED_DETAILS = DetailsCache()
"""The process's cache: the snapshot fills it, the executor refreshes what it finds stale."""


INSPECT_THREADS = 4
"""Concurrent inspects when many stopped containers are new to the cache (a first snapshot,
every one-shot `gcd plan`): the engine answers them in parallel, and more than 4 gain nothing
on 2 cores (engine-facts.md §7)."""

_Inspected = Mapping[str, Any] | None | EngineError


def _inspect(engine: EngineApi, container_id: str) -> _Inspected:
    try:
        return engine.inspect_container(container_id)
    except EngineError as exc:  # an unreachable engine is no EngineError: it ends the read
        return exc


def _inspect_all(engine: EngineApi, ids: Sequence[str]) -> dict[str, _Inspected]:
    if len(ids) < 2:
        return {i: _inspect(engine, i) for i in ids}
    with ThreadPoolExecutor(min(INSPECT_THREADS, len(ids))) as pool:
        return dict(zip(ids, pool.map(lambda i: _inspect(engine, i), ids), strict=True))


def _with_details(container: Container, details: ContainerDetails) -> Container:
    return replace(
        container,
        started_at=details.started_at,
        finished_at=details.finished_at,
        restart_policy=details.restart_policy,
        details_known=True,
    )


def read_containers(
    engine: EngineApi,
    raw_containers: Sequence[Mapping[str, Any]],
    sizes: Mapping[str, int],
    cache: DetailsCache = SHARED_DETAILS,
    *,
    inspect: bool = True,
) -> tuple[Container, ...]:
    """The listed containers as records, in listing order: with their writable layer's bytes
    (`sizes`, from `GET /system/df`), and for each inactive one its inspected (or cached)
    details. Without `inspect` (a policy with no `containers:` section, where no container
    is a candidate) none is inspected and their details stay unknown."""
    listed = [
        replace(c, size_rw_bytes=int(sizes.get(c.id, 0)))
        for c in map(parse_container, raw_containers)
        if c is not None
    ]
    if not inspect:
        return tuple(listed)
    pending = [c.id for c in listed if not c.is_active and cache.get(c.id) is None]
    answers = _inspect_all(engine, pending)
    containers: list[Container] = []
    for container in listed:
        if container.is_active:
            cache.forget(container.id)
            containers.append(container)
            continue
        details = cache.get(container.id)
        if details is None:
            record = answers.get(container.id)
            if isinstance(record, EngineError):
                log.warning("container_inspect_failed", container=container.name, error=str(record))
                containers.append(container)  # details_known=False: the core keeps it
                continue
            if record is None:
                log.info("container_gone_while_read", container=container.name)
                continue
            fresh = inspected_state(record)
            if fresh in ACTIVE_STATES:  # started since the listing: judged as active
                containers.append(replace(container, state=fresh))
                continue
            details = details_of(record)
            cache.put(container.id, details)
        containers.append(_with_details(container, details))
    cache.retain(c.id for c in containers)
    log.debug("containers_read", containers=len(containers), inspected=len(pending))
    return tuple(containers)


def container_of(decision: Decision) -> Container:
    """The container a decision is about: the container kind's view of a generic decision."""
    if not isinstance(decision.subject, Container):
        raise TypeError(f"{decision.key} is not a container")
    return decision.subject


def _when(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else "never"


def not_an_expired_hold(record: Mapping[str, Any]) -> str | None:
    """Why a container planned as an expired hold must stay: it is no longer a never-started
    hold, or its expiry label is not past now."""
    labels = _labels(_object(record.get("Config")).get("Labels"))
    if not is_hold(labels):
        return "no longer labelled as a hold"
    if inspected_state(record) is not ContainerState.CREATED or details_of(record).started_at:
        return "the hold container was started: no longer a hold"
    expires = parse_expiry(labels.get(EXPIRES_LABEL, ""))
    if expires is None or expires > datetime.now(UTC):
        return f"the hold's expiry {labels.get(EXPIRES_LABEL, '')!r} is not past"
    return None


class ContainerRemoval(Removal):
    """Removing one planned container, without force and without its volumes."""

    def __init__(self, decision: Decision, engine: EngineApi, since: datetime) -> None:
        super().__init__(decision, engine, since)
        self.container = container_of(decision)
        self.cache = SHARED_DETAILS

    def attempt(self) -> Verdict:
        container_id = self.container.id
        record = self.engine.inspect_container(container_id)
        if record is None:
            self.cache.forget(container_id)
            return Verdict(OutcomeStatus.ALREADY_GONE, "gone before gcd got to it")
        state = inspected_state(record)
        if state in ACTIVE_STATES:
            self.cache.forget(container_id)
            return Verdict(OutcomeStatus.SKIPPED_IN_USE, f"now {state.value}")
        fresh = details_of(record)
        if self.decision.rule is RuleId.HOLD_EXPIRED and (why := not_an_expired_hold(record)):
            return Verdict(OutcomeStatus.SKIPPED_CHANGED, why)
        if fresh.started_at != self.container.started_at:
            self.cache.put(container_id, fresh)
            return Verdict(
                OutcomeStatus.SKIPPED_CHANGED,
                f"started again since the plan: planned start {_when(self.container.started_at)}"
                f", now {_when(fresh.started_at)} (exited {_when(fresh.finished_at)})",
            )
        self.touched = True
        result = self.engine.remove_container(container_id)
        verdict = classify_removal(
            result,
            removed="removed without force; its volumes stay",
            gone=lambda: self.engine.inspect_container(container_id) is None,
            what="the container",
        )
        if verdict.status in (OutcomeStatus.REMOVED, OutcomeStatus.ALREADY_GONE):
            self.cache.forget(container_id)
        return verdict
