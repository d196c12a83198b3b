"""Containers: the `containers:` section of the policy. Pure.

A stopped container is not garbage by itself: guards first (never an active container, never
one whose details could not be read), then the keep rules in order, then service-like
containers (a restart policy other than `no`, or a Compose project) are kept unless
`remove_services_named` names them; what is left goes once it has been stopped for longer
than `remove_exited_after` (by its exit time; a never-started one by its creation time).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from gcd.core.kind import Kind
from gcd.core.patterns import NamePattern, Pattern
from gcd.core.records import Container
from gcd.core.references import InvalidReferenceError, parse_reference
from gcd.core.rules import RuleId

KIND = Kind.CONTAINER

COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
ANY_VALUE = "*"


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


def _image_matches(patterns: tuple[Pattern, ...], container: Container) -> bool:
    try:
        reference = parse_reference(container.image)
    except InvalidReferenceError:
        return False  # created from an id: no reference to match
    return any(p.matches(reference) for p in patterns)


@dataclass(frozen=True, slots=True)
class ContainerPolicy:
    remove_exited_after: timedelta
    keep: tuple[ContainerKeepRule, ...] = ()
    remove_services_named: tuple[NamePattern, ...] = ()
    """Service-like containers these name are treated like any other; no others ever are."""


def is_service(container: Container) -> bool:
    return container.restart_policy not in ("", "no") or COMPOSE_PROJECT_LABEL in container.labels
