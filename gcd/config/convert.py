"""Validated policy models → the core's frozen policy records.

The schema has checked every value; here patterns are compiled once and each section becomes
its kind's policy. A section the file leaves out stays None: that kind is never touched.
"""

from __future__ import annotations

from gcd.config.fields import name_pattern, reference_pattern
from gcd.config.kinds import (
    BuildCacheModel,
    ContainerKeepModel,
    ContainersModel,
    KindLimitsModel,
    NetworksModel,
    VolumeKeepModel,
    VolumesModel,
)
from gcd.config.schema import (
    ImagesModel,
    KeepRuleModel,
    PaceModel,
    PolicyModel,
    ScheduleModel,
)
from gcd.core.kind import Kind
from gcd.core.kinds.build_cache import BuildCachePolicy
from gcd.core.kinds.containers import ContainerKeepRule, ContainerPolicy
from gcd.core.kinds.images import DanglingPolicy, ImagePolicy, KeepRule
from gcd.core.kinds.networks import NetworkPolicy
from gcd.core.kinds.volumes import VolumeKeepRule, VolumePolicy
from gcd.core.patterns import NamePattern, Pattern
from gcd.core.policy import DiskWatermarks, Policy, Schedule
from gcd.core.safety import SECTIONS, KindLimits, Safety


def _names(texts: list[str] | None) -> tuple[NamePattern, ...]:
    return tuple(name_pattern(text) for text in texts or ())


def _references(texts: list[str] | None) -> tuple[Pattern, ...]:
    return tuple(reference_pattern(text) for text in texts or ())


def _keep_rule(index: int, model: KeepRuleModel) -> KeepRule:
    return KeepRule(
        index=index,
        labels=dict(model.label or {}),
        references=_references(model.reference),
        newest=model.newest,
        younger_than=model.younger_than,
        used_within=model.used_within,
        compose=tuple(model.compose or ()),
    )


def _images(model: ImagesModel | None) -> ImagePolicy | None:
    if model is None:
        return None
    return ImagePolicy(
        keep=tuple(_keep_rule(i, rule) for i, rule in enumerate(model.keep)),
        dangling=DanglingPolicy(model.dangling.keep_within),
    )


def _container_rule(index: int, model: ContainerKeepModel) -> ContainerKeepRule:
    return ContainerKeepRule(
        index=index,
        labels=dict(model.label or {}),
        names=_names(model.name),
        images=_references(model.image),
    )


def _containers(model: ContainersModel | None) -> ContainerPolicy | None:
    if model is None:
        return None
    return ContainerPolicy(
        remove_exited_after=model.remove_exited_after,
        keep=tuple(_container_rule(i, rule) for i, rule in enumerate(model.keep)),
        remove_services_named=_names(model.remove_services_named),
    )


def _volume_rule(index: int, model: VolumeKeepModel) -> VolumeKeepRule:
    return VolumeKeepRule(index=index, labels=dict(model.label or {}), names=_names(model.name))


def _volumes(model: VolumesModel | None) -> VolumePolicy | None:
    if model is None:
        return None
    return VolumePolicy(
        keep=tuple(_volume_rule(i, rule) for i, rule in enumerate(model.keep)),
        anonymous_unused_for=model.anonymous_unused_for,
        named=_names(model.named),
        named_unused_for=model.named_unused_for,
    )


def _build_cache(model: BuildCacheModel | None) -> BuildCachePolicy | None:
    if model is None:
        return None
    return BuildCachePolicy(unused_for=model.unused_for, max_size_bytes=model.max_size)


def _networks(model: NetworksModel | None) -> NetworkPolicy | None:
    return None if model is None else NetworkPolicy(unused_for=model.unused_for)


def _schedule(model: ScheduleModel) -> Schedule:
    disk = model.disk
    return Schedule(
        every=model.every if model.cron else (model.every or Schedule().every),
        cron=model.cron,
        jitter=model.jitter,
        disk=(
            DiskWatermarks(
                path=disk.path,
                high=disk.high,
                low=disk.low,
                critical=disk.critical,
                check_every=disk.check_every,
            )
            if disk
            else None
        ),
    )


def _kind_limits(model: PolicyModel) -> dict[Kind, KindLimits]:
    """The limits the kind sections set themselves; a kind setting none obeys `safety:`."""
    sections: dict[Kind, KindLimitsModel | None] = {
        Kind.IMAGE: model.images,
        Kind.CONTAINER: model.containers,
        Kind.VOLUME: model.volumes,
        Kind.BUILD_CACHE: model.build_cache,
        Kind.NETWORK: model.networks,
    }
    return {
        kind: KindLimits(section.max_deletions_per_run, section.max_delete_fraction)
        for kind, section in sections.items()
        if section is not None
        and (section.max_deletions_per_run, section.max_delete_fraction) != (None, None)
    }


def _pace(model: PaceModel | None) -> dict[Kind, float]:
    if model is None:
        return {}
    per_kind = {kind: getattr(model, section) for kind, section in SECTIONS.items()}
    return {kind: pace for kind, pace in per_kind.items() if pace is not None}


def to_policy(model: PolicyModel, source: str) -> Policy:
    return Policy(
        version=model.version,
        safety=Safety(
            model.safety.min_age,
            model.safety.max_deletions_per_run,
            model.safety.max_delete_fraction,
            _kind_limits(model),
            model.safety.quiet_for,
            _pace(model.safety.pace),
            model.safety.max_cycle_duration,
            model.safety.unknown_age,
        ),
        images=_images(model.images),
        containers=_containers(model.containers),
        volumes=_volumes(model.volumes),
        build_cache=_build_cache(model.build_cache),
        networks=_networks(model.networks),
        source=source,
        schedule=_schedule(model.schedule),
    )
