"""Small builders that make the intent of a policy test visible."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.containers import ContainerKeepRule, ContainerPolicy
from gcd.core.kinds.images import DanglingPolicy, ImagePolicy, KeepRule
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.kinds.volumes import VolumeKeepRule, VolumePolicy
from gcd.core.patterns import NamePattern, Pattern
from gcd.core.policy import Policy
from gcd.core.records import (
    ACTIVE_STATES,
    BuildCacheRecord,
    Container,
    ContainerState,
    Image,
    Network,
    Snapshot,
    Volume,
)
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
    of: Image | None = None,
    name: str = "c",
    state: ContainerState = ContainerState.RUNNING,
    *,
    exited: timedelta | None = timedelta(days=10),
    created: timedelta = timedelta(days=30),
    restart: str = "no",
    labels: dict[str, str] | None = None,
    image: str | None = None,
    volumes: tuple[str, ...] = (),
    networks: tuple[str, ...] = (),
    size: int = 0,
    details_known: bool = True,
) -> Container:
    """A container of `of` (or of no listed image). Active ones started at creation; a
    stopped one exited `exited` ago, or never started when `exited` is None. `image` is the
    reference it was created from; by default the image's first tag, else its id."""
    created_at = NOW - created
    started_at: datetime | None = created_at
    finished_at: datetime | None = None
    if state not in ACTIVE_STATES:
        finished_at = None if exited is None else NOW - exited
        started_at = None if exited is None else min(created_at, NOW - exited)
    image_id_ = of.id if of is not None else image_id("no-image")
    if image is None:
        image = of.tags[0].familiar if of is not None and of.tags else image_id_
    return Container(
        id=image_id(f"container-{name}"),
        name=name,
        image_id=image_id_,
        state=state,
        image=image,
        labels=labels or {},
        created=created_at,
        started_at=started_at,
        finished_at=finished_at,
        restart_policy=restart,
        details_known=details_known,
        volumes=volumes,
        networks=networks,
        size_rw_bytes=size,
    )


def volume(
    name: str = "v",
    *,
    anonymous: bool = False,
    age: timedelta = timedelta(days=30),
    unused: timedelta | None = None,
    driver: str = "local",
    options: dict[str, str] | None = None,
    labels: dict[str, str] | None = None,
    size: int = 100,
    created: datetime | None = None,
) -> Volume:
    """A volume gcd first saw `age` ago and last saw mounted `unused` ago (never: None)."""
    return Volume(
        name=name,
        driver=driver,
        seen_at=NOW - age,
        anonymous=anonymous,
        labels=labels or {},
        options=options or {},
        created=created,
        last_used=None if unused is None else NOW - unused,
        size_bytes=size,
    )


def cache_record(
    record_id: str,
    *,
    size: int = 100,
    age: timedelta = timedelta(days=30),
    used: timedelta | None = None,
    in_use: bool = False,
    shared: bool = False,
    parents: tuple[str, ...] = (),
) -> BuildCacheRecord:
    """A build-cache record created `age` ago and last used `used` ago (never: None)."""
    return BuildCacheRecord(
        id=record_id,
        type="regular",
        description=f"record {record_id}",
        size_bytes=size,
        created=NOW - age,
        last_used=None if used is None else NOW - used,
        in_use=in_use,
        shared=shared,
        parents=parents,
    )


def network(
    name: str,
    *,
    scope: str = "local",
    driver: str = "bridge",
    age: timedelta = timedelta(days=30),
    unused: timedelta | None = None,
    endpoints: int = 0,
    ingress: bool = False,
    created: datetime | None = None,
) -> Network:
    """A network gcd first saw `age` ago and last saw in use `unused` ago (never: None); its
    id is `net-<name>`."""
    return Network(
        id=f"net-{name}",
        name=name,
        driver=driver,
        scope=scope,
        seen_at=NOW - age,
        created=created,
        last_used=None if unused is None else NOW - unused,
        endpoints=endpoints,
        ingress=ingress,
    )


def snapshot(
    *images: Image,
    containers: tuple[Container, ...] = (),
    layer_size: int = 100,
    volumes: tuple[Volume, ...] = (),
    build_cache: tuple[BuildCacheRecord, ...] = (),
    networks: tuple[Network, ...] = (),
) -> Snapshot:
    """Image layers of `layer_size` bytes each; every other unit as big as its record says."""
    sizes = dict.fromkeys({layer for i in images for layer in i.layers}, layer_size)
    sizes |= {f"container:{c.id}": c.size_rw_bytes for c in containers}
    sizes |= {f"volume:{v.name}": v.size_bytes for v in volumes}
    sizes |= {f"build_cache:{r.id}": r.size_bytes for r in build_cache}
    return Snapshot(NOW, images, containers, sizes, volumes, build_cache, networks)


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


def keep_container(
    *,
    labels: dict[str, str] | None = None,
    names: tuple[str, ...] = (),
    images: tuple[str, ...] = (),
) -> ContainerKeepRule:
    return ContainerKeepRule(
        index=0,
        labels=labels or {},
        names=tuple(NamePattern.compile(n) for n in names),
        images=tuple(Pattern.compile(p) for p in images),
    )


def containers_section(
    *keep: ContainerKeepRule,
    remove_exited_after: timedelta = timedelta(days=2),
    remove_services_named: tuple[str, ...] = (),
) -> ContainerPolicy:
    return ContainerPolicy(
        remove_exited_after,
        tuple(replace(r, index=i) for i, r in enumerate(keep)),
        tuple(NamePattern.compile(n) for n in remove_services_named),
    )


def keep_volume(
    *, labels: dict[str, str] | None = None, names: tuple[str, ...] = ()
) -> VolumeKeepRule:
    return VolumeKeepRule(0, labels or {}, tuple(NamePattern.compile(n) for n in names))


def volumes_section(
    *keep: VolumeKeepRule,
    anonymous_unused_for: timedelta | None = timedelta(days=7),
    named: tuple[str, ...] = (),
    named_unused_for: timedelta | None = None,
) -> VolumePolicy:
    return VolumePolicy(
        tuple(replace(r, index=i) for i, r in enumerate(keep)),
        anonymous_unused_for,
        tuple(NamePattern.compile(n) for n in named),
        named_unused_for,
    )


def policy(
    *rules: KeepRule,
    min_age: timedelta = timedelta(hours=1),
    dangling_within: timedelta = timedelta(hours=1),
    max_deletions: int = 500,
    max_fraction: float = 1.0,
    images: bool = True,
    containers: ContainerPolicy | None = None,
    volumes: VolumePolicy | None = None,
    build_cache: BuildCachePolicy | None = None,
    networks: NetworkPolicy | None = None,
) -> Policy:
    """An images section from `rules` (none when `images` is False), and the other kinds'
    sections as given."""
    return Policy(
        safety=Safety(min_age, max_deletions, max_fraction),
        images=ImagePolicy(
            tuple(replace(r, index=i) for i, r in enumerate(rules)),
            DanglingPolicy(dangling_within),
        )
        if images
        else None,
        containers=containers,
        volumes=volumes,
        build_cache=build_cache,
        networks=networks,
    )


def no_busy_gate(of: Policy) -> Policy:
    """`of` with `safety.quiet_for: 0s`: a build-cache record in use then only holds itself,
    for tests about something else than the busy gate (`gcd.core.busy`)."""
    return replace(of, safety=replace(of.safety, quiet_for=timedelta(0)))
