"""Holds: images a CI job protects for a while (`gcd hold`). Pure.

A hold lives on the engine, not in gcd's state: one created, never started container per held
image, labelled `io.gcd.hold=1` with its expiry (RFC 3339 UTC), reason and owner. Any
container keeps its image from `docker rmi` and `docker image prune -a`; gcd also reads the
labels: an unexpired hold keeps its container and its image (`keep.hold`, a guard that never
yields to pressure, whether or not the policy has a `containers:` or `images:` section). An
expired hold container goes in gcd's cycle (`delete.hold_expired`), and its image is then
judged as released, in the same run.

A hold container that was started (someone ran `docker start` on it) is no longer a hold: it
is judged like any other container. One whose expiry label cannot be read is kept (fail
closed) and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from gcd.core.kind import Kind
from gcd.core.plan import Judgement
from gcd.core.records import Container, ContainerState
from gcd.core.rules import RuleId

HOLD_LABEL = "io.gcd.hold"
EXPIRES_LABEL = "io.gcd.hold.expires"
REASON_LABEL = "io.gcd.hold.reason"
OWNER_LABEL = "io.gcd.hold.owner"
REFERENCE_LABEL = "io.gcd.hold.reference"
"""What the user typed (`app:1`), resolved once, at hold time, to the image id."""
NAME_PREFIX = "gcd-hold-"

MIN_DURATION = timedelta(seconds=1)
MAX_DURATION = timedelta(days=30)
"""`gcd hold --for`: 1s..30d. A CI job rarely needs more than hours; 30 days bounds what a
forgotten hold can keep. Seconds are allowed (tests, very short jobs)."""


def format_expiry(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second: `2026-12-01T17:04:38Z`."""
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_expiry(text: str) -> datetime | None:
    """An expiry label; None when it is not an RFC 3339 time with a zone."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def check_duration(duration: timedelta) -> None:
    """Raises ValueError naming the range when `duration` is outside 1s..30d."""
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise ValueError(f"a hold lasts from 1s to 30d, got {int(duration.total_seconds())}s")


@dataclass(frozen=True, slots=True)
class Hold:
    """One hold container, read from its labels."""

    container_id: str
    name: str
    image_id: str
    expires: datetime | None
    """None: the label is missing or unreadable; such a hold never expires by itself."""
    reason: str
    owner: str
    reference: str
    started: bool
    """Someone started the container: it is no hold any more."""

    def expired(self, now: datetime) -> bool:
        return self.expires is not None and self.expires <= now

    def describe(self, now: datetime) -> str:
        until = "an unreadable expiry" if self.expires is None else format_expiry(self.expires)
        state = f"expired {until}" if self.expired(now) else f"until {until}"
        parts = [f"hold {self.name} {state}", f"owner {self.owner or '?'}"]
        if self.reason:
            parts.append(f"reason {self.reason!r}")
        return "; ".join(parts)


def is_hold(labels: Mapping[str, str]) -> bool:
    return labels.get(HOLD_LABEL) == "1"


def hold_of(container: Container) -> Hold | None:
    """The hold a container is, or None."""
    if not is_hold(container.labels):
        return None
    labels = container.labels
    started = container.started_at is not None or container.state is not ContainerState.CREATED
    return Hold(
        container_id=container.id,
        name=container.name,
        image_id=container.image_id,
        expires=parse_expiry(labels.get(EXPIRES_LABEL, "")),
        reason=labels.get(REASON_LABEL, ""),
        owner=labels.get(OWNER_LABEL, ""),
        reference=labels.get(REFERENCE_LABEL, ""),
        started=started,
    )


def holds_of(containers: Iterable[Container]) -> tuple[Hold, ...]:
    """The holds among `containers` that are still holds (never started)."""
    return tuple(h for h in (hold_of(c) for c in containers) if h is not None and not h.started)


def judge_containers(judged: Iterable[Judgement], now: datetime) -> list[Judgement]:
    """The containers' judgements with the holds' own decided: an unexpired hold is kept
    (`keep.hold`), an expired one deleted (`delete.hold_expired`), whatever the `containers:`
    section says, or whether there is one."""
    result: list[Judgement] = []
    for j in judged:
        hold = hold_of(j.subject) if isinstance(j.subject, Container) else None
        if hold is None or hold.started:
            result.append(j)
        elif hold.expired(now):
            result.append(replace(j, rule=RuleId.HOLD_EXPIRED, detail=hold.describe(now)))
        else:
            result.append(replace(j, rule=RuleId.HOLD, detail=hold.describe(now)))
    return result


def judge_images(judged: Iterable[Judgement], containers: Iterable[Judgement]) -> list[Judgement]:
    """The images' judgements with every image an unexpired hold keeps set to `keep.hold`,
    from the containers' final judgements: a hold container that is deleted in this run holds
    nothing."""
    held: dict[str, list[str]] = {}
    for j in containers:
        if j.rule is RuleId.HOLD and isinstance(j.subject, Container):
            held.setdefault(j.subject.image_id, []).append(j.detail)
    return [
        replace(j, rule=RuleId.HOLD, detail="; and ".join(sorted(held[j.subject.key.id])))
        if j.subject.key.kind is Kind.IMAGE and j.subject.key.id in held
        else j
        for j in judged
    ]


def is_hold_decision(kind: Kind, rule: RuleId) -> bool:
    """A hold container's own decision: not counted in the containers' delete fraction (an
    expired hold going is gcd's own bookkeeping, never a policy mistake)."""
    return kind is Kind.CONTAINER and rule in (RuleId.HOLD, RuleId.HOLD_EXPIRED)
