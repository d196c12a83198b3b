"""The policy file's schema as pydantic models: validation once, at the edge.

Field names here are the policy file's keys; the scalar types are in `gcd.config.fields`, the
sections of the kinds other than images in `gcd.config.kinds`. Models are strict: a value of
the wrong type is refused, never converted (pydantic would read `"10"` as 10 and `true` as
version 1).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, model_validator

from gcd.config.fields import (
    CheckEvery,
    ComposeGlob,
    Cron,
    CycleBudget,
    Duration,
    Every,
    Fraction,
    Jitter,
    LabelValue,
    Pace,
    PatternText,
    PositiveWhole,
    QuietFor,
    Strict,
    UnknownAgeChoice,
    as_list,
    field_error,
    pace_rate,
    shown,
    version_number,
)
from gcd.config.kinds import (
    BuildCacheModel,
    ContainersModel,
    KindLimitsModel,
    NetworksModel,
    VolumesModel,
)
from gcd.core.kinds.images import DanglingPolicy
from gcd.core.policy import DiskWatermarks, Schedule
from gcd.core.safety import Safety
from gcd.core.units import spell_duration

__all__ = ["KeepRuleModel", "PolicyModel", "shown"]


# Defaults come from the core's records, so that a policy file without a key and a policy
# built in code mean the same.
_SAFETY, _DANGLING, _DISK, _SCHEDULE = Safety(), DanglingPolicy(), DiskWatermarks(), Schedule()


class PaceModel(Strict):
    """`safety.pace` per kind: `{images: 5, build_cache: 1}`; a kind left out is not paced."""

    images: Pace | None = None
    containers: Pace | None = None
    volumes: Pace | None = None
    build_cache: Pace | None = None
    networks: Pace | None = None


def _every_kind(value: Any) -> Any:
    """`pace: 5` is 5 for every kind; a mapping is read by `PaceModel`."""
    if isinstance(value, dict) or value is None:
        return value
    rate = pace_rate(value)
    return dict.fromkeys(PaceModel.model_fields, rate)


class SafetyModel(Strict):
    min_age: Duration = _SAFETY.min_age
    max_deletions_per_run: PositiveWhole = _SAFETY.max_deletions_per_run
    max_delete_fraction: Fraction = _SAFETY.max_delete_fraction
    quiet_for: QuietFor = _SAFETY.quiet_for
    pace: Annotated[PaceModel, BeforeValidator(_every_kind)] | None = None
    """One number for every kind, or one per kind."""
    max_cycle_duration: CycleBudget | None = _SAFETY.max_cycle_duration
    unknown_age: UnknownAgeChoice = _SAFETY.unknown_age


class KeepRuleModel(Strict):
    # An empty `label: {}` or `reference: []` would hold for every image: refused.
    label: Annotated[dict[str, LabelValue], Field(min_length=1)] | None = None
    reference: (
        Annotated[list[PatternText], BeforeValidator(as_list), Field(min_length=1)] | None
    ) = None
    newest: PositiveWhole | None = None
    younger_than: Duration | None = None
    used_within: Duration | None = None
    compose: (
        Annotated[list[ComposeGlob], BeforeValidator(as_list), Field(min_length=1, max_length=100)]
        | None
    ) = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> KeepRuleModel:
        others = (self.label, self.reference, self.newest, self.younger_than, self.used_within)
        if self.compose is not None and any(value is not None for value in others):
            raise field_error(
                "compose",
                "a compose rule keeps what the files name and takes no other condition: put "
                "label, reference, newest, younger_than or used_within in a rule of its own",
            )
        if self.compose is None and not any(
            value is not None
            for value in (
                self.label,
                self.reference,
                self.newest,
                self.younger_than,
                self.used_within,
            )
        ):
            raise ValueError(
                "a keep rule needs at least one of label, reference, newest, younger_than, "
                "used_within, compose"
            )
        return self


class DanglingModel(Strict):
    keep_within: Duration = _DANGLING.keep_within


class ImagesModel(KindLimitsModel):
    keep: list[KeepRuleModel] = Field(default_factory=list)
    dangling: DanglingModel = DanglingModel()


class DiskModel(Strict):
    path: str | None = _DISK.path
    high: Fraction = _DISK.high
    low: Fraction = _DISK.low
    critical: Fraction | None = _DISK.critical
    check_every: CheckEvery = _DISK.check_every

    @model_validator(mode="after")
    def _low_below_high(self) -> DiskModel:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:.0%}) must be below high ({self.high:.0%})")
        if self.critical is not None and self.critical <= self.high:
            raise field_error(
                "critical",
                f"critical ({self.critical:.0%}) must be above high ({self.high:.0%}): at "
                "critical, containers, volumes and build cache go before images",
            )
        return self


class ScheduleModel(Strict):
    every: Every | None = None
    cron: Cron | None = None
    jitter: Jitter = _SCHEDULE.jitter
    disk: DiskModel | None = None

    @model_validator(mode="after")
    def _one_timer(self) -> ScheduleModel:
        if self.every is not None and self.cron is not None:
            raise ValueError("set either every or cron, not both")
        every = self.every if self.cron is None else None
        if self.cron is None and every is None:
            every = _SCHEDULE.every
        if every is not None and self.jitter > every:
            raise field_error(
                "jitter",
                f"jitter ({spell_duration(self.jitter)}) must not exceed every "
                f"({spell_duration(every)}): cycles would overtake each other",
            )
        return self


class PolicyModel(Strict):
    version: Annotated[Literal[1], BeforeValidator(version_number)] = 1
    safety: SafetyModel = SafetyModel()
    images: ImagesModel | None = None
    containers: ContainersModel | None = None
    volumes: VolumesModel | None = None
    build_cache: BuildCacheModel | None = None
    networks: NetworksModel | None = None
    schedule: ScheduleModel = ScheduleModel()

    @model_validator(mode="after")
    def _no_empty_kind_section(self) -> PolicyModel:
        """`containers:` with nothing after it would touch nothing, silently: refused, as a
        section without its required keys is. (`images:` alone keeps its old meaning.)"""
        for name in ("containers", "volumes", "build_cache", "networks"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise field_error(
                    name,
                    f"an empty {name} section would touch nothing: give its settings "
                    "(README, Policy reference) or remove the key",
                )
        return self
