"""The disk budget's closed loop in the executor, on the fake engine: after each kind's
deletions it asks whether the disk is below low now; once it is, the remaining pressure
evictions are not attempted, and the policy's own deletions still run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.kinds.containers import ContainerPolicy
from gcd.core.plan import Plan
from gcd.core.rules import RuleId
from gcd.engine.executor import execute
from gcd.engine.layers import LayerStore
from gcd.engine.outcomes import OutcomeStatus
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.unit.builders import policy, rule
from tests.unit.fake_engine import FakeEngine

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
MiB = 2**20
GiB = 2**30
FULL = Pressure(95 * GiB, 100 * GiB, 1, 100, high=0.9, low=0.5)
"""Usage that no prediction brings below low: every soft keep is evicted in the plan."""


def pressured_plan(tmp_path: Path) -> tuple[FakeEngine, Plan]:
    """An exited container (soft: exited an hour ago), a soft-kept image (`newest`) and an
    image no rule keeps, all evicted or deleted under `FULL`."""
    engine = FakeEngine(clock=NOW - timedelta(days=3))
    base = engine.add_image("base", "base:1", layers=[("base", MiB)]).id
    engine.add_image("app", "team/app:1", layers=[("app", MiB)])
    engine.add_image("old", "old/tool:1", layers=[("old", MiB)])
    engine.create_container(base, "job", "exited", size_rw=MiB)
    state = State.load(tmp_path / "state")
    snapshot = take_snapshot(engine, state, NOW, LayerStore())
    section = ContainerPolicy(remove_exited_after=timedelta(days=7))
    rules = (rule(references=("base:*",)), rule(references=("team/**",), newest=5))
    later = NOW + timedelta(days=2)
    plan = evaluate(snapshot, policy(*rules, min_age=timedelta(0), containers=section), later, FULL)
    assert {(d.key.kind, d.rule) for d in plan.deletions} == {
        (Kind.CONTAINER, RuleId.PRESSURE),
        (Kind.IMAGE, RuleId.PRESSURE),
        (Kind.IMAGE, RuleId.UNKEPT),
    }
    return engine, plan


def test_once_the_disk_is_below_low_the_remaining_evictions_are_not_attempted(
    tmp_path: Path,
) -> None:
    engine, plan = pressured_plan(tmp_path)
    asked: list[Kind] = []

    def relieved(kind: Kind) -> str | None:
        asked.append(kind)
        return "not needed: below low"

    report = execute(plan, engine, relieved=relieved)

    by_rule = {(o.key.kind, o.rule): o.status for o in report.outcomes}
    assert by_rule[Kind.CONTAINER, RuleId.PRESSURE] is OutcomeStatus.REMOVED
    assert by_rule[Kind.IMAGE, RuleId.PRESSURE] is OutcomeStatus.NOT_ATTEMPTED
    assert by_rule[Kind.IMAGE, RuleId.UNKEPT] is OutcomeStatus.REMOVED, "the policy's own"
    assert asked == [Kind.CONTAINER], "asked once per kind, and no more once relieved"
    (kept,) = (o for o in report.outcomes if o.rule is RuleId.PRESSURE and o.key.kind is Kind.IMAGE)
    assert engine.inspect_image(kept.key.id) is not None, "the evicted image is still there"
    assert "below low" in kept.detail


def test_while_the_disk_stays_above_low_every_eviction_runs(tmp_path: Path) -> None:
    engine, plan = pressured_plan(tmp_path)
    asked: list[Kind] = []

    def relieved(kind: Kind) -> str | None:
        asked.append(kind)
        return None

    report = execute(plan, engine, relieved=relieved)

    assert {o.status for o in report.outcomes} == {OutcomeStatus.REMOVED}
    assert asked == [Kind.CONTAINER, Kind.IMAGE]
