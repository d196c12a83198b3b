"""The policy file's schema as pydantic models: validation once, at the edge.

Field names here are the policy file's keys. Custom scalar types (durations, fractions,
counts) raise `expected(...)`, saying what was expected; `config.py` adds the value as the file
spells it, the file, line, column and field path. Models are strict: a value of the wrong type
is refused, never converted (pydantic would read `"10"` as 10 and `true` as version 1).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from gcd.core.kinds.images import DanglingPolicy
from gcd.core.patterns import Pattern
from gcd.core.policy import DiskWatermarks, Schedule
from gcd.core.safety import Safety
from gcd.core.units import parse_duration
from gcd.errors import PatternError


def shown(value: Any) -> str:
    """A found value as the policy file would spell it: `"ten"`, `true`, `null`, `[1, 2]`."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError):
        return repr(value)


def expected(what: str) -> PydanticCustomError:
    """`expected a whole number ≥ 1`; `config.py` appends `, got <the value as written>`."""
    return PydanticCustomError("gcd_expected", "expected {expected}", {"expected": what})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    try:
        if isinstance(value, str):
            return parse_duration(value)
    except ValueError:
        pass
    raise expected("a duration such as 30s, 15m, 1h, 7d or 2w")


def _positive_whole(value: Any) -> int:
    """`10` → 10. `true`, `1.5`, `10.0`, `"10"` and `0` are refused. The YAML reader only makes
    ints of plain decimals: `0755`, `0x10`, `1:30` and `1_000` never get here."""
    if _whole(value) and value >= 1:
        return int(value)
    raise expected("a whole number ≥ 1")


def _version(value: Any) -> Any:
    """Only the number 1: the `Literal` alone would take `true` and `1.0` for it."""
    if _whole(value):
        return value
    raise expected("1")


def _fraction(value: Any) -> float:
    """`0.9` or `"90%"` → 0.9; must lie in (0, 1]."""
    number: float
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            number = float(value.strip()[:-1]) / 100
        except ValueError:
            raise expected("a share such as 0.9 or 90%") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    else:
        raise expected("a share such as 0.9 or 90%")
    if not 0 < number <= 1:
        raise expected("a share above 0 and at most 1 (100%)")
    return number


def _pattern(value: str) -> str:
    try:
        Pattern.compile(value)
    except PatternError as exc:
        raise ValueError(str(exc)) from None
    return value


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _label_text(value: Any) -> str:
    """Docker labels are text, and so is a label rule's value: `release: 1.10` would have been
    the float 1.1 and matched `release=1.1`, so nothing is converted (`config.py` shows the
    value as written and how to quote it)."""
    if isinstance(value, str):
        return value
    raise PydanticCustomError("label_text", "a label value is text")


def _cron(value: str) -> str:
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"expected a crontab line such as '0 * * * *': {exc}") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(_duration)]
PositiveWhole = Annotated[int, BeforeValidator(_positive_whole)]
Fraction = Annotated[float, BeforeValidator(_fraction)]
PatternText = Annotated[str, AfterValidator(_pattern)]
LabelValue = Annotated[str, BeforeValidator(_label_text)]
Cron = Annotated[str, AfterValidator(_cron)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


# Defaults come from the core's records, so that a policy file without a key and a policy
# built in code mean the same.
_SAFETY, _DANGLING, _DISK, _SCHEDULE = Safety(), DanglingPolicy(), DiskWatermarks(), Schedule()


class SafetyModel(Strict):
    min_age: Duration = _SAFETY.min_age
    max_deletions_per_run: PositiveWhole = _SAFETY.max_deletions_per_run
    max_delete_fraction: Fraction = _SAFETY.max_delete_fraction


class KeepRuleModel(Strict):
    # An empty `label: {}` or `reference: []` would hold for every image: refused.
    label: Annotated[dict[str, LabelValue], Field(min_length=1)] | None = None
    reference: (
        Annotated[list[PatternText], BeforeValidator(_as_list), Field(min_length=1)] | None
    ) = None
    newest: PositiveWhole | None = None
    younger_than: Duration | None = None
    used_within: Duration | None = None

    @model_validator(mode="after")
    def _has_a_condition(self) -> KeepRuleModel:
        if not any(
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
                "used_within"
            )
        return self


class DanglingModel(Strict):
    keep_within: Duration = _DANGLING.keep_within


class ImagesModel(Strict):
    keep: list[KeepRuleModel] = []
    dangling: DanglingModel = DanglingModel()


class DiskModel(Strict):
    path: str | None = _DISK.path
    high: Fraction = _DISK.high
    low: Fraction = _DISK.low
    check_every: Duration = _DISK.check_every

    @model_validator(mode="after")
    def _low_below_high(self) -> DiskModel:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low:.0%}) must be below high ({self.high:.0%})")
        return self


class ScheduleModel(Strict):
    every: Duration | None = None
    cron: Cron | None = None
    jitter: Duration = _SCHEDULE.jitter
    disk: DiskModel | None = None

    @model_validator(mode="after")
    def _one_timer(self) -> ScheduleModel:
        if self.every is not None and self.cron is not None:
            raise ValueError("set either every or cron, not both")
        if self.every is not None and self.every.total_seconds() < 1:
            raise ValueError("every must be at least 1s")
        return self


class PolicyModel(Strict):
    version: Annotated[Literal[1], BeforeValidator(_version)] = 1
    safety: SafetyModel = SafetyModel()
    images: ImagesModel | None = None
    schedule: ScheduleModel = ScheduleModel()
