"""gcd's metrics on a private registry: counters move by exactly what a run did."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gcd.core.evaluate import evaluate
from gcd.core.kind import Kind
from gcd.core.kinds.images import image_of
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.records import Snapshot
from gcd.core.rules import RuleId
from gcd.cycle import freed_by
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.errors import StateError
from gcd.metrics.definitions import (
    CycleResult,
    Metrics,
    RemovalOutcome,
    Trigger,
)
from gcd.metrics.series import deleting, keeping
from gcd.metrics.textfile import restore_counters, write_textfile
from tests.unit.builders import NOW, image, policy, rule

LATER = NOW + timedelta(hours=1)

BASE = image("app:1", layers=("base", "a"))
SIBLING = image("app:2", layers=("base", "b"))
KEPT = image("keep/web:1", layers=("base", "k"))
DANGLING = image(seed="dangling", layers=("d",))
SIZES = {"base": 1_000_000, "a": 10, "b": 20, "k": 40, "d": 7}
SNAPSHOT = Snapshot(NOW, (BASE, SIBLING, KEPT, DANGLING), (), SIZES)
KEEP_WEB = policy(rule(references=("keep/*",)))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def metrics(registry: CollectorRegistry) -> Metrics:
    return Metrics(registry, started_at=NOW.timestamp())


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    sample = registry.get_sample_value(name, labels)
    assert sample is not None, f"{name}{labels} is not exported"
    return sample


def plan_of(snapshot: Snapshot = SNAPSHOT, with_policy: Policy = KEEP_WEB) -> Plan:
    return evaluate(snapshot, with_policy, NOW)


def report(plan: Plan, *statuses: OutcomeStatus, aborted: str | None = None) -> Report:
    """Outcomes for the plan's deletions in order; missing statuses mean removed."""
    outcomes = []
    for position, decision in enumerate(plan.deletions):
        status = statuses[position] if position < len(statuses) else OutcomeStatus.REMOVED
        outcomes.append(
            Outcome(
                key=decision.key,
                references=tuple(str(r) for r in image_of(decision).references),
                rule=decision.rule,
                status=status,
                detail="",
                freed_bytes=0,
            )
        )
    return Report(tuple(outcomes), aborted)


def freed(report: Report, snapshot: Snapshot = SNAPSHOT) -> int:
    """The exact total a cycle reports: the removed images' layers that nothing else uses."""
    return freed_by(snapshot, report)


def record(
    metrics: Metrics,
    plan: Plan,
    run: Report,
    trigger: Trigger | str = Trigger.ONCE,
    freed_bytes: int | None = None,
) -> CycleResult:
    return metrics.record_run(
        plan,
        run,
        freed(run) if freed_bytes is None else freed_bytes,
        unit_sizes=SIZES,
        trigger=trigger,
        duration_seconds=2.0,
        now=LATER,
    )


class TestARun:
    def test_reclaimed_bytes_move_by_exactly_the_freed_bytes_split_by_rule(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of()
        assert {d.rule for d in plan.deletions} == {RuleId.UNKEPT, RuleId.DANGLING}
        run = report(plan)
        assert record(metrics, plan, run) is CycleResult.SUCCESS
        # base is shared with the kept image: only a, b (unkept) and d (dangling) are freed.
        unkept = value(registry, "gcd_reclaimed_bytes_total", kind="image", rule="delete.unkept")
        dangling = value(
            registry, "gcd_reclaimed_bytes_total", kind="image", rule="delete.dangling"
        )
        assert (unkept, dangling) == (30, 7)
        assert unkept + dangling == freed(run)

    def test_a_shared_layer_freed_by_the_run_counts_once(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        snapshot = Snapshot(NOW, (BASE, SIBLING, DANGLING), (), SIZES)
        plan = plan_of(snapshot)
        run = report(plan)
        metrics.record_run(
            plan, run, freed(run, snapshot), unit_sizes=SIZES, trigger="schedule",
            duration_seconds=1, now=LATER,
        )  # fmt: skip
        total = sum(
            value(registry, "gcd_reclaimed_bytes_total", kind="image", rule=r.value)
            for r in deleting(Kind.IMAGE)
        )
        assert total == 1_000_000 + 10 + 20 + 7 == freed(run, snapshot)

    def test_a_total_from_elsewhere_is_still_counted_exactly(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of()
        record(metrics, plan, report(plan), freed_bytes=1001)
        total = sum(
            value(registry, "gcd_reclaimed_bytes_total", kind="image", rule=r.value)
            for r in deleting(Kind.IMAGE)
        )
        assert total == 1001

    def test_removals_cycles_duration_and_last_success(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of()
        record(metrics, plan, report(plan), Trigger.PRESSURE)
        assert value(registry, "gcd_removals_total", kind="image", outcome="removed") == 3
        assert value(registry, "gcd_cycles_total", trigger="pressure", result="success") == 1
        assert value(registry, "gcd_cycle_duration_seconds_count") == 1
        assert value(registry, "gcd_cycle_duration_seconds_sum") == 2.0
        assert value(registry, "gcd_last_success_timestamp_seconds") == LATER.timestamp()
        assert value(registry, "gcd_engine_up") == 1

    def test_every_outcome_has_its_own_counter(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        images = tuple(image(f"app:{n}", layers=(f"l{n}",)) for n in range(8))
        snapshot = Snapshot(NOW, images, (), {f"l{n}": 1 for n in range(8)})
        plan = plan_of(snapshot)
        statuses = list(OutcomeStatus)
        record(metrics, plan, report(plan, *statuses), freed_bytes=1)
        for _status, outcome in zip(
            statuses,
            ["removed", "already_gone", "changed", "in_use", "conflict", "failed", "timeout",
             "not_attempted"],
            strict=True,
        ):  # fmt: skip
            assert value(registry, "gcd_removals_total", kind="image", outcome=outcome) == 1

    def test_an_aborted_run_is_no_success(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of()
        run = report(
            plan, OutcomeStatus.REMOVED, OutcomeStatus.NOT_ATTEMPTED, aborted="engine gone"
        )
        assert record(metrics, plan, run) is CycleResult.ABORTED
        assert value(registry, "gcd_cycles_total", trigger="once", result="aborted") == 1
        assert value(registry, "gcd_last_success_timestamp_seconds") == 0

    def test_deletions_beyond_the_run_cap_count_as_capped(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of(with_policy=policy(rule(references=("keep/*",)), max_deletions=1))
        record(metrics, plan, report(plan))
        assert value(registry, "gcd_removals_total", kind="image", outcome="capped") == 2
        assert value(registry, "gcd_removals_total", kind="image", outcome="removed") == 1
        assert value(registry, "gcd_kept", kind="image", rule="keep.run_limit") == 2

    def test_an_unknown_trigger_is_refused(self, metrics: Metrics) -> None:
        plan = plan_of()
        with pytest.raises(ValueError, match="cron"):
            record(metrics, plan, report(plan), trigger="cron")


class TestRefusalsAndFailures:
    def test_a_refused_plan_counts_a_safety_abort(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of(with_policy=policy(max_fraction=0.1))
        assert plan.refusal is not None
        metrics.record_refusal(
            plan, SIZES, trigger=Trigger.SCHEDULE, duration_seconds=0.1, now=LATER
        )
        assert value(registry, "gcd_safety_aborts_total") == 1
        assert value(registry, "gcd_cycles_total", trigger="schedule", result="refused") == 1
        assert value(registry, "gcd_last_success_timestamp_seconds") == 0

    def test_a_failed_cycle_with_the_engine_gone(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        metrics.set_engine_up(True)
        metrics.record_failure(
            trigger=Trigger.SCHEDULE, duration_seconds=3, now=LATER, engine_unreachable=True
        )
        assert value(registry, "gcd_cycles_total", trigger="schedule", result="failure") == 1
        assert value(registry, "gcd_engine_up") == 0


class TestGauges:
    def test_kept_counts_every_keep_rule_and_zero_for_the_rest(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_plan(plan_of(), SIZES)
        kept = {
            r: value(registry, "gcd_kept", kind="image", rule=r.value) for r in keeping(Kind.IMAGE)
        }
        assert kept[RuleId.REFERENCE] == 1
        assert sum(kept.values()) == 1
        assert not any(r.deletes for r in kept)

    def test_reclaimable_is_what_the_plan_frees_then_what_is_left_after_the_run(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        plan = plan_of()
        metrics.record_plan(plan, SIZES)
        assert value(registry, "gcd_reclaimable_bytes", kind="image") == plan.freed_bytes == 37
        record(metrics, plan, report(plan, OutcomeStatus.REMOVED, OutcomeStatus.FAILED))
        left = value(registry, "gcd_reclaimable_bytes", kind="image")
        assert left in {7, 10, 20}  # the one image that failed to go
        record(metrics, plan, report(plan))
        assert value(registry, "gcd_reclaimable_bytes", kind="image") == 0

    def test_the_policy_info_is_replaced_on_reload(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        first = metrics.record_policy_loaded(b"version: 1\n")
        second = metrics.record_policy_loaded(b"version: 1\nimages: {}\n")
        assert value(registry, "gcd_policy_info", sha256=second) == 1
        assert registry.get_sample_value("gcd_policy_info", {"sha256": first}) is None
        assert value(registry, "gcd_policy_reload_success") == 1
        metrics.record_policy_reload_failed()
        assert value(registry, "gcd_policy_reload_success") == 0
        assert value(registry, "gcd_policy_info", sha256=second) == 1

    def test_disk_figures_and_watermarks(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_disk(0.9, 0.2, high=0.85, low=0.7, pressure=True)
        on = {"mountpoint": "", "device": ""}  # before any mount is known
        assert value(registry, "gcd_filesystem_used_ratio", resource="bytes", **on) == 0.9
        metrics.record_mount("/var/lib/docker", "/dev/sdb1")
        metrics.record_disk(0.9, 0.2, high=0.85, low=0.7, pressure=True)
        on = {"mountpoint": "/var/lib/docker", "device": "/dev/sdb1"}
        assert value(registry, "gcd_filesystem_used_ratio", resource="bytes", **on) == 0.9
        assert value(registry, "gcd_filesystem_used_ratio", resource="inodes", **on) == 0.2
        ratio = registry.get_sample_value
        assert (
            ratio(
                "gcd_filesystem_used_ratio", {"resource": "bytes", "mountpoint": "", "device": ""}
            )
            is None
        )
        assert value(registry, "gcd_disk_watermark_ratio", watermark="high") == 0.85
        assert value(registry, "gcd_disk_pressure") == 1
        metrics.record_disk(0.5, 0.2, high=None, low=None, pressure=False)
        assert registry.get_sample_value("gcd_disk_watermark_ratio", {"watermark": "high"}) is None
        assert value(registry, "gcd_disk_pressure") == 0

    def test_docker_usage_and_filesystem_freed(
        self, metrics: Metrics, registry: CollectorRegistry
    ) -> None:
        metrics.record_docker_usage({Kind.IMAGE: 5, Kind.BUILD_CACHE: 3})
        assert value(registry, "gcd_docker_usage_bytes", kind="build_cache") == 3
        metrics.record_filesystem_freed(100)
        metrics.record_filesystem_freed(-50)  # another writer filled the disk meanwhile
        assert value(registry, "gcd_filesystem_freed_bytes_total") == 100

    def test_build_info_and_start_time(self, registry: CollectorRegistry) -> None:
        Metrics(registry, started_at=123.0)
        names = {s.labels.get("version") for f in registry.collect() for s in f.samples}
        assert any(names - {None})
        assert value(registry, "gcd_start_time_seconds") == 123.0

    def test_every_closed_label_combination_exists_from_the_start(
        self, registry: CollectorRegistry, metrics: Metrics
    ) -> None:
        for trigger in Trigger:
            for result in CycleResult:
                assert value(registry, "gcd_cycles_total", trigger=trigger, result=result) == 0
        for outcome in RemovalOutcome:
            assert value(registry, "gcd_removals_total", kind="image", outcome=outcome) == 0


def families(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    result: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            result.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return result


class TestTextfile:
    def test_the_file_parses_back_to_the_same_values(
        self, metrics: Metrics, tmp_path: Path
    ) -> None:
        plan = plan_of()
        record(metrics, plan, report(plan))
        path = write_textfile(metrics.registry, tmp_path)
        assert path == tmp_path / "gcd.prom"
        samples = families(path)
        assert samples["gcd_removals_total"][(("kind", "image"), ("outcome", "removed"))] == 3
        assert not any(name.endswith("_created") for name in samples)
        assert os.stat(path).st_mode & 0o777 == 0o644
        assert [p.name for p in tmp_path.iterdir()] == ["gcd.prom"]

    def test_counters_carry_on_across_runs(self, tmp_path: Path) -> None:
        plan = plan_of()
        first = Metrics(CollectorRegistry(), started_at=NOW.timestamp())
        first.record_policy_loaded(b"policy")
        record(first, plan, report(plan))
        write_textfile(first.registry, tmp_path)

        second = Metrics(CollectorRegistry(), started_at=LATER.timestamp())
        assert restore_counters(second, tmp_path / "gcd.prom") > 0
        partial = report(plan, OutcomeStatus.FAILED)
        record(second, plan, partial, Trigger.SCHEDULE)
        write_textfile(second.registry, tmp_path)

        samples = families(tmp_path / "gcd.prom")
        assert samples["gcd_removals_total"][(("kind", "image"), ("outcome", "removed"))] == 5
        assert samples["gcd_removals_total"][(("kind", "image"), ("outcome", "failed"))] == 1
        assert samples["gcd_cycle_duration_seconds_count"][()] == 2
        assert samples["gcd_cycle_duration_seconds_sum"][()] == 4.0
        assert samples["gcd_cycle_duration_seconds_bucket"][(("le", "2.5"),)] == 2
        assert samples["gcd_cycle_duration_seconds_bucket"][(("le", "1.0"),)] == 0
        assert samples["gcd_start_time_seconds"][()] == NOW.timestamp()
        assert samples["gcd_last_success_timestamp_seconds"][()] == LATER.timestamp()
        reclaimed = samples["gcd_reclaimed_bytes_total"]
        assert reclaimed[(("kind", "image"), ("rule", "delete.unkept"))] == 30 + freed(partial) - 7

    def test_no_previous_file_restores_nothing(self, metrics: Metrics, tmp_path: Path) -> None:
        assert restore_counters(metrics, tmp_path / "gcd.prom") == 0

    def test_a_corrupt_previous_file_is_ignored(self, metrics: Metrics, tmp_path: Path) -> None:
        (tmp_path / "gcd.prom").write_text("gcd_cycles_total{ this is not a metric\n")
        assert restore_counters(metrics, tmp_path / "gcd.prom") == 0

    def test_an_unwritable_directory_says_what_to_give(
        self, metrics: Metrics, tmp_path: Path
    ) -> None:
        with pytest.raises(StateError, match="--textfile"):
            write_textfile(metrics.registry, tmp_path / "missing")

    def test_only_prom_names_are_written(self, metrics: Metrics, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"\*\.prom"):
            write_textfile(metrics.registry, tmp_path, "gcd.txt")


def test_images_are_only_decided_not_listed_as_labels(registry: CollectorRegistry) -> None:
    Metrics(registry)
    label_values = {v for f in registry.collect() for s in f.samples for v in s.labels.values()}
    assert not any(isinstance(v, str) and v.startswith("sha256:") for v in label_values)
    assert BASE.id not in label_values
