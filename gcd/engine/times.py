"""Engine timestamps: Go's RFC 3339 with nanoseconds, parsed in one place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_engine_time(text: object) -> datetime | None:
    """An engine timestamp (RFC 3339, nanoseconds cut to microseconds, offsets kept); None
    when absent, naive or unreadable. Go's zero time (`0001-01-01T00:00:00Z`) parses."""
    if not isinstance(text, str) or not text.strip():
        return None
    text = text.strip()
    head, dot, rest = text.partition(".")
    if dot:
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        text = f"{head}.{digits[:6].ljust(6, '0')}{rest[len(digits) :]}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def parse_go_time(text: object) -> datetime | None:
    """A time the engine set (`LastTagTime`, `lastUpdated`), in UTC; Go's zero time, which
    means "never", is None."""
    parsed = parse_engine_time(text)
    if parsed is None or parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)


def parse_created(seconds: object) -> datetime | None:
    """`Created` of a listing, in Unix seconds; 0001-01-01 is -62135596800, reproducible
    builds use 0. None when it is not a number or out of range."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    try:
        return _EPOCH + timedelta(seconds=seconds)
    except OverflowError:
        return None
