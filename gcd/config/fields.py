"""The policy file's scalar types and the strict base model, shared by every section's schema.

Custom scalar types (durations, sizes, fractions, counts, patterns) raise `expected(...)`,
saying what was expected; `gcd.config.loader` adds the value as the file spells it, the file,
line, column and field path. `field_error` places a whole-section problem at one key.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic_core import PydanticCustomError

from gcd.config.scalars import excerpt
from gcd.core.ages import UnknownAge
from gcd.core.patterns import NamePattern, Pattern, never_matches
from gcd.core.units import parse_duration, parse_size, spell_duration
from gcd.errors import PatternError

# The ranges a value must lie in (README, Policy reference, "Ranges"). Each is wide enough for
# any real host and narrow enough that nothing downstream overflows: `now - 36500d` is a date,
# an APScheduler interval of 366d has a next fire time, a count fits every counter.
MAX_DURATION = timedelta(days=36500)  # about 100 years
MAX_EVERY = timedelta(days=366)
MAX_JITTER = timedelta(days=1)
MAX_CHECK_EVERY = timedelta(days=1)
MAX_COUNT = 1_000_000
MAX_SIZE = 2**60  # 1 EiB = 1024PiB
MAX_QUIET_FOR = timedelta(days=1)
MAX_CYCLE_DURATION = timedelta(days=1)
MIN_PACE, MAX_PACE = 0.01, 1000.0
_LONGEST_UNIT_TEXT = 40  # `20GiB`, `7d`: no sane value needs more characters


def shown(value: Any) -> str:
    """A found value as the policy file would spell it: `"ten"`, `true`, `null`, `[1, 2]`,
    cut to an excerpt: a message never echoes a huge value."""
    try:
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return excerpt(text)


def expected(what: str) -> PydanticCustomError:
    """`expected a whole number from 1 to 1000000`; `gcd.config.loader` appends `, got <the
    value as written>`."""
    return PydanticCustomError("gcd_expected", "expected {expected}", {"expected": what})


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str) and len(value) <= _LONGEST_UNIT_TEXT and value.isascii():
        try:
            return parse_duration(value)
        except ValueError:
            pass  # OverflowError (`99999999999d`) is out of range: the caller says which
    raise expected("a duration such as 30s, 15m, 1h, 7d or 2w")


def _duration_between(least: timedelta, most: timedelta) -> Any:
    """A duration validator refusing values outside [least, most], naming the range."""
    low, high = spell_duration(least), spell_duration(most)
    what = f"a duration from {low} to {high}" if least else f"a duration of at most {high}"

    def validate(value: Any) -> timedelta:
        try:
            duration = _read_duration(value)
        except OverflowError:
            raise expected(what) from None
        if not least <= duration <= most:
            raise expected(what)
        return duration

    return BeforeValidator(validate)


def _positive_whole(value: Any) -> int:
    """`10` → 10. `true`, `1.5`, `10.0`, `"10"`, `0` and more than a million are refused. The
    YAML reader only makes ints of plain decimals: `0755`, `0x10`, `1:30` and `1_000` never
    get here."""
    if _whole(value) and 1 <= value <= MAX_COUNT:
        return int(value)
    raise expected(f"a whole number from 1 to {MAX_COUNT}")


def pace_rate(value: Any) -> float:
    """Removals per second: a number from 0.01 (one every 100 s) to 1000; `true` refused."""
    what = f"a number of removals per second from {MIN_PACE:g} to {MAX_PACE:g}, such as 5"
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise expected(what) from None
        if MIN_PACE <= number <= MAX_PACE:
            return number
    raise expected(what)


def version_number(value: Any) -> Any:
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
        try:
            number = float(value)
        except OverflowError:  # a whole number beyond any float
            raise expected("a share above 0 and at most 1 (100%)") from None
    else:
        raise expected("a share such as 0.9 or 90%")
    if not 0 < number <= 1:
        raise expected("a share above 0 and at most 1 (100%)")
    return number


@functools.lru_cache(maxsize=4096)
def reference_pattern(text: str) -> Pattern:
    """`Pattern.compile`, once per text: validation and conversion share the compiled RE2
    (compiling is most of the time a large policy takes)."""
    return Pattern.compile(text)


@functools.lru_cache(maxsize=4096)
def name_pattern(text: str) -> NamePattern:
    """`NamePattern.compile`, once per text (see `reference_pattern`)."""
    return NamePattern.compile(text)


def _pattern(value: str) -> str:
    try:
        reference_pattern(value)
    except PatternError as exc:
        raise ValueError(excerpt(str(exc), 300)) from None
    reason = never_matches(value, reference=True)
    if reason is not None:
        raise ValueError(f"{excerpt(repr(value))} can never match: {reason}")
    return value


def _name_pattern(value: str) -> str:
    try:
        name_pattern(value)
    except PatternError as exc:
        raise ValueError(excerpt(str(exc), 300)) from None
    reason = never_matches(value, reference=False)
    if reason is not None:
        raise ValueError(f"{excerpt(repr(value))} can never match: {reason}")
    return value


MIN_OPT_IN_LITERALS = 3


def _opt_in_pattern(value: str) -> str:
    """`remove_services_named`: service-like containers are kept unless named here, so an
    entry must name something. A regex is refused (it cannot be read at a glance), and so is a
    glob with fewer than 3 literal characters: `*` would opt every service in."""
    if value.startswith("regex:"):
        raise ValueError(
            "regex: is not accepted here: opting services in must name them with a glob of "
            f"at least {MIN_OPT_IN_LITERALS} literal characters, such as ci-svc-*"
        )
    pattern = name_pattern(_name_pattern(value))
    if pattern.literal_characters == 0:
        raise ValueError(
            f"{excerpt(repr(value))} has no literal character: it would opt in every service-like "
            "container (a restart policy or a Compose project) whatever its name, which must "
            f"not happen by accident; name them with at least {MIN_OPT_IN_LITERALS} literal "
            "characters, such as ci-svc-*"
        )
    if pattern.literal_characters < MIN_OPT_IN_LITERALS:
        raise ValueError(
            f"{excerpt(repr(value))} has {pattern.literal_characters} literal character(s): an "
            f"opt-in of services needs at least {MIN_OPT_IN_LITERALS}, such as ci-svc-*, so "
            "that it cannot match many services by accident"
        )
    return value


def _size(value: Any) -> int:
    """`20GB` → 20·10⁹, `20GiB` → 20·2³⁰, at most 1 EiB. A bare number is refused: bytes or
    gigabytes?"""
    if (
        isinstance(value, str)
        and value.strip()[-1:] == "B"
        and len(value) <= _LONGEST_UNIT_TEXT
        and value.isascii()
    ):
        try:
            size = parse_size(value)
        except (ValueError, OverflowError):
            pass
        else:
            if size <= MAX_SIZE:
                return size
            raise expected("a size of at most 1024PiB (1 EiB)")
    raise expected("a size with its unit, such as 500MB, 20GB or 20GiB")


def field_error(field: str, message: str) -> PydanticCustomError:
    """A section's problem placed at one of its keys (`gcd.config.loader` appends `field` to
    the path): `volumes.named_unused_for: ... without named`."""
    return PydanticCustomError("gcd_field", "{message}", {"field": field, "message": message})


def as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def _label_text(value: Any) -> str:
    """Docker labels are text, and so is a label rule's value: `release: 1.10` would have been
    the float 1.1 and matched `release=1.1`, so nothing is converted (`config.py` shows the
    value as written and how to quote it)."""
    if isinstance(value, str):
        return value
    raise PydanticCustomError("label_text", "a label value is text")


_LONGEST_CRON = 200


def _cron(value: str) -> str:
    """A crontab line APScheduler takes (UTC, as the daemon builds it) and that fires at all:
    `0 0 30 2 *` (30 February) is valid to it and would leave the daemon with no cycle."""
    if len(value) > _LONGEST_CRON:
        raise ValueError(
            f"expected a crontab line such as '0 * * * *' (at most {_LONGEST_CRON} characters)"
        )
    # Imported here: the scheduler stack is for the daemon, not `gcd check` (start-up).
    from apscheduler.triggers.cron import CronTrigger  # noqa: PLC0415

    try:
        trigger = CronTrigger.from_crontab(value, timezone=UTC)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        reason = excerpt(str(exc), 200)
        raise ValueError(f"expected a crontab line such as '0 * * * *': {reason}") from None
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError(
            f"the crontab line {excerpt(repr(value))} never fires (a day that no month has?): "
            "the daemon would never run a cycle"
        )
    return value


MAX_COMPOSE_GLOB = 4096  # PATH_MAX


def _compose_glob(value: str) -> str:
    """An absolute path, globs allowed (`*`, `?`, `[...]` within a path component). Relative
    paths are refused: the daemon's working directory is `/`, and a path relative to the
    policy file's directory would read differently in `gcd plan` run from elsewhere."""
    if not value.startswith("/") or len(value) > MAX_COMPOSE_GLOB or "\0" in value:
        raise ValueError(
            f"expected an absolute path of at most {MAX_COMPOSE_GLOB} characters, globs "
            "allowed, such as /srv/*/compose.yaml"
        )
    if "**" in value:
        raise ValueError("** is not supported: use one * per directory level, /srv/*/compose.yaml")
    return value


Duration = Annotated[timedelta, _duration_between(timedelta(0), MAX_DURATION)]
"""Ages and idle times: 0s to 36500d (about 100 years)."""
Every = Annotated[timedelta, _duration_between(timedelta(seconds=1), MAX_EVERY)]
Jitter = Annotated[timedelta, _duration_between(timedelta(0), MAX_JITTER)]
CheckEvery = Annotated[timedelta, _duration_between(timedelta(seconds=1), MAX_CHECK_EVERY)]
PositiveWhole = Annotated[int, BeforeValidator(_positive_whole)]
Fraction = Annotated[float, BeforeValidator(_fraction)]
PatternText = Annotated[str, AfterValidator(_pattern)]
NamePatternText = Annotated[str, AfterValidator(_name_pattern)]
OptInPatternText = Annotated[str, AfterValidator(_opt_in_pattern)]
Size = Annotated[int, BeforeValidator(_size)]
LabelValue = Annotated[str, BeforeValidator(_label_text)]
Cron = Annotated[str, AfterValidator(_cron)]
ComposeGlob = Annotated[str, AfterValidator(_compose_glob)]
QuietFor = Annotated[timedelta, _duration_between(timedelta(0), MAX_QUIET_FOR)]
"""`safety.quiet_for`: 0s (classic builds are not watched) to 1d."""
CycleBudget = Annotated[timedelta, _duration_between(timedelta(seconds=1), MAX_CYCLE_DURATION)]
"""`safety.max_cycle_duration`: 1s to 1d."""
Pace = Annotated[float, BeforeValidator(pace_rate)]
"""Removals per second: 0.01 to 1000."""


def _unknown_age(value: Any) -> UnknownAge:
    choices = " or ".join(choice.value for choice in UnknownAge)
    if not isinstance(value, str) or value not in {choice.value for choice in UnknownAge}:
        raise expected(choices)
    return UnknownAge(value)


UnknownAgeChoice = Annotated[UnknownAge, BeforeValidator(_unknown_age)]
"""`safety.unknown_age`: first_seen or created."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, defer_build=True)
