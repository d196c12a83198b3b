"""Small builders that make the intent of a policy test visible."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gcd.core.kinds.images import DanglingPolicy, ImagePolicy, KeepRule
from gcd.core.patterns import Pattern
from gcd.core.policy import Policy
from gcd.core.records import Container, ContainerState, Image, Snapshot
from gcd.core.references import parse_reference
from gcd.core.safety import Safety

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def days(n: float) -> timedelta:
    return timedelta(days=n)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def image_id(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def image(
    *tags: str,
    age: timedelta = timedelta(days=30),
    seed: str | None = None,
    created: datetime | None = None,
    labels: dict[str, str] | None = None,
    layers: tuple[str, ...] | None = None,
    digests: tuple[str, ...] = (),
) -> Image:
    key = seed or ",".join(tags) or f"dangling-{age}"
    return Image(
        id=image_id(key),
        tags=tuple(parse_reference(t) for t in tags),
        digests=tuple(parse_reference(d) for d in digests),
        created=created if created is not None else NOW - age,
        seen_at=NOW - age,
        size_bytes=100,
        layers=layers if layers is not None else (f"layer-{key}",),
        labels=labels or {},
    )


def container(
    of: Image, name: str = "c", state: ContainerState = ContainerState.RUNNING
) -> Container:
    return Container(id=image_id(f"container-{name}"), name=name, image_id=of.id, state=state)


def snapshot(
    *images: Image, containers: tuple[Container, ...] = (), layer_size: int = 100
) -> Snapshot:
    layers = {layer for i in images for layer in i.layers}
    return Snapshot(NOW, images, containers, dict.fromkeys(layers, layer_size))


def rule(
    index: int = 0,
    *,
    labels: dict[str, str] | None = None,
    references: tuple[str, ...] = (),
    newest: int | None = None,
    younger_than: timedelta | None = None,
    used_within: timedelta | None = None,
) -> KeepRule:
    return KeepRule(
        index=index,
        labels=labels or {},
        references=tuple(Pattern.compile(p) for p in references),
        newest=newest,
        younger_than=younger_than,
        used_within=used_within,
    )


def policy(
    *rules: KeepRule,
    min_age: timedelta = timedelta(hours=1),
    dangling_within: timedelta = timedelta(hours=1),
    max_deletions: int = 500,
    max_fraction: float = 1.0,
) -> Policy:
    return Policy(
        safety=Safety(min_age, max_deletions, max_fraction),
        images=ImagePolicy(
            tuple(replace(r, index=i) for i, r in enumerate(rules)),
            DanglingPolicy(dangling_within),
        ),
    )
