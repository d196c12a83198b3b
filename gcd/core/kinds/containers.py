"""Containers: the `containers:` section of the policy. Pure.

A stopped container is not garbage by itself: guards first (never an active container, never
one whose details could not be read), then the keep rules in order, then service-like
containers (a restart policy other than `no`, or a Compose project) are kept unless
`remove_services_named` names them; what is left goes once it has been stopped for longer
than `remove_exited_after` (by its exit time; a never-started one by its creation time).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from gcd.core.ages import not_yet
from gcd.core.kind import Kind
from gcd.core.patterns import NamePattern, Pattern
from gcd.core.plan import Judgement
from gcd.core.records import Container, Snapshot
from gcd.core.references import InvalidReferenceError, parse_reference
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.core.units import format_duration, spell_duration

KIND = Kind.CONTAINER

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
ANY_VALUE = "*"
_HEX_ID = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ContainerKeepRule:
    """One entry of `containers.keep`; its conditions must all hold for it to keep."""

    index: int
    labels: Mapping[str, str] = field(default_factory=dict)
    names: tuple[NamePattern, ...] = ()
    images: tuple[Pattern, ...] = ()

    @property
    def rule_id(self) -> RuleId:
        if self.names:
            return RuleId.NAME
        if self.images:
            return RuleId.IMAGE
        return RuleId.LABEL

    def holds(self, container: Container) -> bool:
        labels = all(
            key in container.labels and (value == ANY_VALUE or container.labels[key] == value)
            for key, value in self.labels.items()
        )
        names = not self.names or any(p.matches(container.name) for p in self.names)
        return labels and names and (not self.images or _image_matches(self.images, container))

    def describe(self) -> str:
        parts: list[str] = []
        if self.labels:
            parts.append("label " + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())))
        if self.names:
            parts.append("name " + ",".join(p.text for p in self.names))
        if self.images:
            parts.append("image " + ",".join(p.text for p in self.images))
        return f"containers.keep[{self.index}] " + " ".join(parts)


def _created_from_id(container: Container) -> bool:
    """`docker run <id>` (or an image whose tag moved since) lists the id as `Image`, which
    would otherwise parse as the repository `sha256` or a 64-hex repository name."""
    typed = container.image.removeprefix("sha256:")
    full = container.image_id.removeprefix("sha256:")
    return _HEX_ID.match(typed) is not None or (len(typed) >= 12 and full.startswith(typed))


def _image_matches(patterns: tuple[Pattern, ...], container: Container) -> bool:
    if _created_from_id(container):
        return False
    try:
        reference = parse_reference(container.image)
    except InvalidReferenceError:
        return False  # no reference to match
    if reference.tag is None and reference.digest is None:
        reference = replace(reference, tag="latest")  # as the engine resolved it
    return any(p.matches(reference) for p in patterns)


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    remove_exited_after: timedelta
    keep: tuple[ContainerKeepRule, ...] = ()
    remove_services_named: tuple[NamePattern, ...] = ()
    """Service-like containers these name are treated like any other; no others ever are."""


def is_service(container: Container) -> bool:
    return container.restart_policy not in ("", "no") or COMPOSE_PROJECT_LABEL in container.labels


def _age(container: Container, now: datetime) -> timedelta:
    since = container.stopped_at or container.created or now
    return max(now - since, timedelta(0))


def _stopped(container: Container, now: datetime) -> str:
    if container.finished_at is not None:
        return f"exited {format_duration(_age(container, now))} ago"
    return f"created {format_duration(_age(container, now))} ago, never started"


def _service(container: Container) -> str:
    if container.restart_policy not in ("", "no"):
        return f"restart policy {container.restart_policy}"
    return f"Compose project {container.labels[COMPOSE_PROJECT_LABEL]}"


def _decide(
    container: Container, section: ContainerPolicy, safety: Safety, now: datetime
) -> tuple[RuleId, str]:
    if container.is_active:
        return RuleId.ACTIVE, f"{container.state}"
    if not container.details_known or container.stopped_at is None:
        return RuleId.DETAILS_UNKNOWN, "its exit time and restart policy could not be read"
    if container.created is not None and container.created > now:
        return RuleId.CREATED_IN_FUTURE, f"Created {container.created.isoformat()} is in the future"
    age = _age(container, now)
    if age < safety.min_age:
        return RuleId.MIN_AGE, not_yet(
            _stopped(container, now), age, safety.min_age, "safety.min_age"
        )
    for rule in section.keep:
        if rule.holds(container):
            return rule.rule_id, rule.describe()
    if is_service(container) and not any(
        p.matches(container.name) for p in section.remove_services_named
    ):
        return RuleId.SERVICE, (
            f"{_service(container)}: a service; containers.remove_services_named does not name it"
        )
    limit = spell_duration(section.remove_exited_after)
    if age < section.remove_exited_after:
        return RuleId.EXITED_WITHIN, f"{_stopped(container, now)}; remove_exited_after {limit}"
    return RuleId.EXITED, f"{_stopped(container, now)}; remove_exited_after {limit}"


def _last_use(container: Container, now: datetime) -> datetime:
    return now if container.is_active else container.stopped_at or container.created or now


def _order(container: Container, now: datetime) -> tuple[float, str]:
    return (_last_use(container, now).timestamp(), container.id)


def judge(
    snapshot: Snapshot, section: ContainerPolicy, safety: Safety, now: datetime
) -> tuple[Judgement, ...]:
    """Every container of `snapshot` under the `containers:` section, oldest exit first."""
    return tuple(
        Judgement(
            container,
            *_decide(container, section, safety, now),
            age=_age(container, now),
            last_use=_last_use(container, now),
            order=_order(container, now),
        )
        for container in sorted(snapshot.containers, key=lambda c: c.id)
    )


def unmanaged(snapshot: Snapshot, now: datetime) -> tuple[Judgement, ...]:
    """No `containers:` section: containers are not touched."""
    return tuple(
        Judgement(
            container,
            RuleId.UNMANAGED,
            "policy has no containers section",
            age=_age(container, now),
            last_use=_last_use(container, now),
            order=_order(container, now),
        )
        for container in sorted(snapshot.containers, key=lambda c: c.id)
    )
