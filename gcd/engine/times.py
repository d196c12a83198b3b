"""Engine timestamps: Go's RFC 3339 with nanoseconds, parsed in one place."""

from __future__ import annotations

from datetime import UTC, datetime


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


def parse_go_time(text: str) -> datetime | None:
    """A time the engine set (`LastTagTime`, `lastUpdated`), in UTC; Go's zero time, which
    means "never", is None."""
    parsed = parse_engine_time(text)
    if parsed is None or parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)
