"""A hand-made plan and run with a decision of every kind, for the output tests: the records
are the core's own (gcd.core.records), the decisions and outcomes as the core and the
executor would make them."""

from __future__ import annotations

from gcd.core.plan import Decision, Plan
from gcd.core.records import BuildCacheRecord, Container, ContainerState, Network, Volume
from gcd.core.rules import RuleId
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from tests.unit.builders import NOW, days, image, image_id

OLD = image("app:1", age=days(30))
PINNED = image("alpine:3.19", age=days(30))
EXITED = Container(
    id=image_id("exited").removeprefix("sha256:"),
    name="ci-job-7",
    image_id=OLD.id,
    state=ContainerState.EXITED,
    image="app:1",
    created=NOW - days(5),
    started_at=NOW - days(5),
    finished_at=NOW - days(4),
    restart_policy="no",
    details_known=True,
    size_rw_bytes=300,
)
SERVICE = Container(
    id=image_id("service").removeprefix("sha256:"),
    name="ci-svc-db",
    image_id=PINNED.id,
    state=ContainerState.EXITED,
    image="alpine:3.19",
    restart_policy="unless-stopped",
    details_known=True,
    size_rw_bytes=50,
)
ANONYMOUS = Volume(
    name="f" * 64, driver="local", seen_at=NOW - days(9), anonymous=True, size_bytes=4000
)
NAMED = Volume(name="ci-cache-go", driver="local", seen_at=NOW - days(20), size_bytes=7000)
CACHE = BuildCacheRecord(
    id="y" * 25,
    type="source.local",
    description="local source for context",
    size_bytes=900,
    created=NOW - days(10),
    last_used=NOW - days(8),
)
UNNAMED_CACHE = BuildCacheRecord(
    id="z" * 25, type="regular", description="", size_bytes=10, created=NOW - days(3), shared=True
)
NETWORK = Network(id="n" * 64, name="ci-net", driver="bridge", scope="local", seen_at=NOW - days(2))

DECISIONS = (
    Decision(EXITED, RuleId.EXITED, "exited 4d ago", days(4), 300),
    Decision(SERVICE, RuleId.SERVICE, "restart policy unless-stopped", days(1)),
    Decision(OLD, RuleId.UNKEPT, "no keep rule holds", days(30), 100),
    Decision(PINNED, RuleId.REFERENCE, "images.keep[0]", days(30)),
    Decision(ANONYMOUS, RuleId.UNUSED, "unused for 9d", days(9), 4000),
    Decision(NAMED, RuleId.UNUSED, "unused for 20d", days(20), 7000),
    Decision(NETWORK, RuleId.UNUSED, "unused for 2d", days(2)),
    Decision(CACHE, RuleId.UNUSED, "unused for 8d", days(10), 900),
    Decision(UNNAMED_CACHE, RuleId.SHARED, "an image's layer", days(3)),
)
# Image layers: OLD's 100 bytes are its own; PINNED's 100 too (kept).
PLAN = Plan(
    created_at=NOW,
    decisions=DECISIONS,
    freed_bytes=300 + 100 + 4000 + 7000 + 900,
    total_bytes=300 + 50 + 100 + 100 + 4000 + 7000 + 900 + 10,
)


def _outcome(decision: Decision, status: OutcomeStatus, freed: int | None = None) -> Outcome:
    removed = status is OutcomeStatus.REMOVED
    return Outcome(
        decision.key,
        decision.subject.names,
        decision.rule,
        status,
        "",
        (decision.freed_bytes if freed is None else freed) if removed else 0,
    )


REPORT = Report(
    (
        _outcome(DECISIONS[0], OutcomeStatus.REMOVED),
        _outcome(DECISIONS[2], OutcomeStatus.REMOVED),
        _outcome(DECISIONS[4], OutcomeStatus.REMOVED),
        _outcome(DECISIONS[5], OutcomeStatus.CONFLICT),
        _outcome(DECISIONS[6], OutcomeStatus.REMOVED),
        _outcome(DECISIONS[7], OutcomeStatus.REMOVED, freed=850),  # the engine's own count
    )
)
FREED = 300 + 100 + 4000 + 850
