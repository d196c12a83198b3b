"""The policy file's sections for containers, volumes, build cache and networks.

Each section is optional: without it gcd never touches that kind. Within a section nothing has
a silent default that deletes: the age after which stopped containers or unused networks go is
required, named volumes are touched only when a pattern names them, and a section that could
delete nothing is refused rather than accepted as a no-op the operator did not mean.

Every section, `images` too, may set its own `max_deletions_per_run` and `max_delete_fraction`
(`KindLimitsModel`), overriding `safety:`'s for that kind alone.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from gcd.config.fields import (
    Duration,
    Fraction,
    LabelValue,
    NamePatternText,
    OptInPatternText,
    PatternText,
    PositiveWhole,
    Size,
    Strict,
    as_list,
    field_error,
)

# An empty `label: {}`, `name: []` or `image: []` would hold for every object: refused.
Labels = Annotated[dict[str, LabelValue], Field(min_length=1)]
NamePatterns = Annotated[list[NamePatternText], BeforeValidator(as_list), Field(min_length=1)]
ReferencePatterns = Annotated[list[PatternText], BeforeValidator(as_list), Field(min_length=1)]


class KindLimitsModel(Strict):
    """A kind's own safety limits; absent, `safety:`'s hold. Validated as those are: a
    whole number from 1 to 1000000, and a share above 0 and at most 1."""

    max_deletions_per_run: PositiveWhole | None = None
    max_delete_fraction: Fraction | None = None


class ContainerKeepModel(Strict):
    label: Labels | None = None
    name: NamePatterns | None = None
    image: ReferencePatterns | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> ContainerKeepModel:
        if self.label is None and self.name is None and self.image is None:
            raise ValueError("a keep rule needs at least one of label, name, image")
        return self


class ContainersModel(KindLimitsModel):
    keep: list[ContainerKeepModel] = Field(default_factory=list)
    remove_exited_after: Duration
    remove_services_named: Annotated[list[OptInPatternText], BeforeValidator(as_list)] = Field(
        default_factory=list
    )


class VolumeKeepModel(Strict):
    label: Labels | None = None
    name: NamePatterns | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> VolumeKeepModel:
        if self.label is None and self.name is None:
            raise ValueError("a keep rule needs at least one of label, name")
        return self


class VolumesModel(KindLimitsModel):
    keep: list[VolumeKeepModel] = Field(default_factory=list)
    anonymous_unused_for: Duration | None = None
    named: NamePatterns | None = None
    named_unused_for: Duration | None = None

    @model_validator(mode="after")
    def _does_something(self) -> VolumesModel:
        if self.named is not None and self.named_unused_for is None:
            raise field_error(
                "named",
                "named volumes need named_unused_for too: how long no container may have "
                "used one before it goes, such as 14d",
            )
        if self.named is None and self.named_unused_for is not None:
            raise field_error(
                "named_unused_for",
                "named_unused_for without named: named volumes are touched only when a "
                'pattern in named names them, such as named: ["ci-cache-*"]',
            )
        if self.named is None and self.anonymous_unused_for is None:
            raise ValueError(
                "this volumes section would touch no volume: give anonymous_unused_for "
                "(anonymous volumes) or named with named_unused_for (named volumes), or "
                "leave the section out"
            )
        return self


class BuildCacheModel(KindLimitsModel):
    unused_for: Duration | None = None
    max_size: Size | None = None

    @model_validator(mode="after")
    def _does_something(self) -> BuildCacheModel:
        if self.unused_for is None and self.max_size is None:
            raise ValueError(
                "this build_cache section would remove nothing: give unused_for, max_size or "
                "both, or leave the section out"
            )
        return self


class NetworksModel(KindLimitsModel):
    unused_for: Duration
