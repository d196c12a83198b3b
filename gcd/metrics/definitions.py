"""gcd's Prometheus metrics, defined on a registry passed in (never the global default).

Names follow Prometheus conventions: `gcd_` prefix, base units (`_bytes`, `_seconds`,
`_ratio`), `_total` counters. Every label takes values from a small closed set, never an
image id, and every combination of those sets is exported from the start (at 0), so that
`increase()` sees the first event of a series too.

The metrics, their labels and the queries built on them are listed in
deploy/prometheus/README.md.
"""

from __future__ import annotations

import platform
import time
from collections import Counter as Tally  # prometheus_client has the name Counter
from collections.abc import Collection, Mapping
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gcd import __version__
from gcd.core.attribution import apportion, still_reclaimable
from gcd.core.kind import Key, Kind
from gcd.core.plan import Plan
from gcd.core.rules import RuleId
from gcd.engine.outcomes import OutcomeStatus, Report
from gcd.metrics.disk import DiskFigures
from gcd.metrics.policy import PolicyFigures
from gcd.metrics.results import (
    CARRIED_GAUGES,
    DURATION_BUCKETS,
    OUTCOME_OF,
    CycleResult,
    RemovalOutcome,
    RunOutcome,
    Trigger,
    cycle_result,
    freed_by_kind_and_rule,
)
from gcd.metrics.series import deleting, keeping

__all__ = [
    "CARRIED_GAUGES",
    "CycleResult",
    "Metrics",
    "RemovalOutcome",
    "Trigger",
    "cycle_result",
    "freed_by_kind_and_rule",
]


class Metrics(DiskFigures, PolicyFigures):
    """All of gcd's metrics on `registry`. Methods record facts; none of them raises on data
    from a real run, and none does I/O."""

    def __init__(self, registry: CollectorRegistry, started_at: float | None = None) -> None:
        self.registry = registry

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def gauge(name: str, doc: str, *labels: str) -> Gauge:
            return Gauge(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str) -> Histogram:
            return Histogram(name, doc, buckets=DURATION_BUCKETS, registry=registry)

        self.reclaimed_bytes = counter(
            "gcd_reclaimed_bytes",
            "Bytes freed by removing objects, as the engine accounts them (shared layers "
            "counted once), by the rule that deleted them.",
            "kind",
            "rule",
        )
        self.removals = counter(
            "gcd_removals",
            "Planned removals by outcome; capped: deferred by safety.max_deletions_per_run; "
            "deferred_busy: deferred while a build ran (keep.busy); not_attempted: the run "
            "ended first (stop, engine lost, its time budget).",
            "kind",
            "outcome",
        )
        self.cycles = counter(
            "gcd_cycles", "Collection cycles by trigger and result.", "trigger", "result"
        )
        self.cycle_duration = histogram(
            "gcd_cycle_duration_seconds",
            "Wall time of a collection cycle: snapshot, evaluation and removals.",
        )
        self.last_success = gauge(
            "gcd_last_success_timestamp_seconds",
            "Unix time the last cycle with result=success finished; 0 before the first one.",
        )
        self.start_time = gauge(
            "gcd_start_time_seconds",
            "Unix time gcd started collecting here (daemon start, or first timer run).",
        )
        self.reclaimable_bytes = gauge(
            "gcd_reclaimable_bytes",
            "Bytes the policy would still free (including removals deferred by the per-run "
            "cap), as of the last evaluation.",
            "kind",
        )
        self.kept = gauge(
            "gcd_kept",
            "Objects kept at the last evaluation, by the rule that kept them.",
            "kind",
            "rule",
        )
        self.holds = gauge(
            "gcd_holds",
            "Hold containers (gcd hold) at the last evaluation: active ones keep their image "
            "(keep.hold); expired ones are removed in that cycle (delete.hold_expired).",
            "state",
        )
        for state in ("active", "expired"):
            self.holds.labels(state)
        self.docker_usage_bytes = gauge(
            "gcd_docker_usage_bytes",
            "Bytes Docker objects hold after the last cycle, by kind "
            "(from the cycle's one system df and the image layers).",
            "kind",
        )
        self.filesystem_used_ratio = gauge(
            "gcd_filesystem_used_ratio",
            "Used fraction of the filesystem holding the engine's data (statvfs), with its "
            "mountpoint and device as node_filesystem_* name them.",
            "resource",
            "mountpoint",
            "device",
        )
        self._mount = ("", "")
        self.disk_watermark = gauge(
            "gcd_disk_watermark_ratio",
            "The policy's disk watermarks: above high collect now, evict to below low.",
            "watermark",
        )
        self.disk_pressure = gauge(
            "gcd_disk_pressure", "1 while bytes or inodes used are above the high watermark."
        )
        self.filesystem_freed_bytes = counter(
            "gcd_filesystem_freed_bytes",
            "Bytes the filesystem gained across cycles that removed something (statvfs "
            "before/after; other writers on the disk make this differ from reclaimed bytes).",
        )
        self.engine_up = gauge(
            "gcd_engine_up",
            "1 if the Docker engine is reachable: gcd's last look got an HTTP answer, even an "
            "error (a 500); 0 if it could not connect or got no answer in time. The daemon "
            "looks with GET /_ping every 15 s and at each cycle's start, and a cycle's outcome "
            "counts too (finished or refused: 1; engine unreachable: 0); a run sets it from "
            "its own requests.",
        )
        self.policy_reload_success = gauge(
            "gcd_policy_reload_success",
            "1 if the last policy load succeeded; 0 if it failed and the previous policy runs.",
        )
        self.policy_info = gauge(
            "gcd_policy_info", "The policy in force, by sha256 of its file.", "sha256"
        )
        self.safety_aborts = counter(
            "gcd_safety_aborts",
            "Runs refused by a safety limit (safety.max_delete_fraction); nothing was deleted.",
        )
        self.removed_under_container = counter(
            "gcd_images_removed_under_container",
            "Images gcd removed while a container was being created from them (the engine "
            "registers a container only once its create completes): the container keeps its "
            "layers and starts, but its image is gone. Logged as image_removed_under_container.",
        )
        self.orphan_checks_failed = counter(
            "gcd_orphan_checks_failed",
            "Runs whose container list after their image deletions failed: a container created "
            "while gcd deleted its image would have gone unreported (gcd_images_removed_under_"
            "container_total). Logged as orphan_check_failed.",
        )
        self.compose_files = gauge(
            "gcd_compose_files",
            "Compose files of images.keep[i].compose read in the last cycle: ok, or failed "
            "(unreadable, invalid, or a service whose image gcd cannot determine; such a file "
            "keeps every image it could name). Logged as compose_file_unreadable.",
            "state",
        )
        self.compose_globs_unmatched = gauge(
            "gcd_compose_globs_unmatched",
            "Globs of images.keep[i].compose that matched no file in the last cycle (a typo "
            "keeps nothing). Logged as compose_glob_matches_nothing.",
        )
        for state in ("ok", "failed"):
            self.compose_files.labels(state)
        self.engine_busy = gauge(
            "gcd_engine_busy",
            "1 if the last cycle found a build running (a BuildKit record in use, a classic "
            "build's step container within safety.quiet_for) and deferred image and "
            "build-cache deletions (or went ahead at the critical watermark); else 0.",
        )
        self.build_info = gauge(
            "gcd_build_info", "gcd's version and Python's, always 1.", "version", "python"
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        self._started_at = time.time() if started_at is None else started_at
        self._last_success_at = 0.0
        self._kept_series: set[tuple[Kind, RuleId]] = {
            (kind, rule) for kind in Kind for rule in keeping(kind)
        }
        self.start_time.set(self._started_at)
        self._initialise_series()

    def _initialise_series(self) -> None:
        for kind in Kind:
            for rule in deleting(kind):
                self.reclaimed_bytes.labels(kind.value, rule.value)
            for rule in keeping(kind):
                self.kept.labels(kind.value, rule.value)
            for outcome in RemovalOutcome:
                self.removals.labels(kind.value, outcome.value)
            self.reclaimable_bytes.labels(kind.value)
        for trigger in Trigger:
            for result in CycleResult:
                self.cycles.labels(trigger.value, result.value)

    def record_plan(self, plan: Plan, unit_sizes: Mapping[str, int]) -> None:
        """Reclaimable bytes and kept objects by rule, from an evaluation (`gcd plan` too)."""
        self._record_kept(plan)
        self._record_reclaimable(plan, frozenset(), unit_sizes)

    def _record_kept(self, plan: Plan) -> None:
        """Every kept series set: those of this plan, and 0 for all others already exported."""
        counts = Tally((d.key.kind, d.rule) for d in plan.decisions if not d.deletes)
        for kind, rule in {*self._kept_series, *counts}:
            self.kept.labels(kind.value, rule.value).set(counts.get((kind, rule), 0))
        self._kept_series.update(counts)
        holds = Tally(d.rule for d in plan.decisions if d.key.kind is Kind.CONTAINER)
        self.holds.labels("active").set(holds.get(RuleId.HOLD, 0))
        self.holds.labels("expired").set(holds.get(RuleId.HOLD_EXPIRED, 0))

    def _record_reclaimable(
        self, plan: Plan, gone: Collection[Key], unit_sizes: Mapping[str, int]
    ) -> None:
        for kind in Kind:
            of_kind = [d for d in plan.decisions if d.key.kind is kind]
            self.reclaimable_bytes.labels(kind.value).set(
                still_reclaimable(of_kind, gone, unit_sizes)
            )

    def record_run(
        self,
        plan: Plan,
        report: Report,
        freed_bytes: int,
        *,
        unit_sizes: Mapping[str, int],
        trigger: Trigger | str,
        duration_seconds: float,
        now: datetime,
    ) -> CycleResult:
        """A finished run: counters move by exactly what it did. Returns its result.

        `freed_bytes` is the run's exact total; `gcd_reclaimed_bytes_total` moves by exactly
        that, split by the kind and rule of each removed object (`freed_by_kind_and_rule`)."""
        result = cycle_result(plan, report)
        removed = {o.key: o.rule for o in report.outcomes if o.status is OutcomeStatus.REMOVED}
        if freed_bytes > 0 or removed:
            split = freed_by_kind_and_rule(plan, report, unit_sizes)
            fallback = next(((k.kind, r) for k, r in removed.items()), (Kind.IMAGE, RuleId.UNKEPT))
            for (kind, rule), amount in apportion(split, max(freed_bytes, 0), fallback).items():
                self.reclaimed_bytes.labels(kind.value, rule.value).inc(amount)
        self.removed_under_container.inc(len(report.orphans))
        if report.orphan_check_failed:
            self.orphan_checks_failed.inc()
        for outcome in report.outcomes:
            self.removals.labels(outcome.key.kind.value, OUTCOME_OF[outcome.status].value).inc()
        if result is not CycleResult.REFUSED:
            capped = Tally(d.key.kind for d in plan.decisions if d.rule is RuleId.RUN_LIMIT)
            for kind, count in capped.items():
                self.removals.labels(kind.value, RemovalOutcome.CAPPED.value).inc(count)
            waiting = Tally(d.key.kind for d in plan.decisions if d.rule is RuleId.BUSY)
            for kind, count in waiting.items():
                self.removals.labels(kind.value, RemovalOutcome.DEFERRED_BUSY.value).inc(count)
            self.engine_busy.set(1 if plan.busy is not None else 0)
        self._record_kept(plan)
        gone = set(removed) | {
            o.key for o in report.outcomes if o.status is OutcomeStatus.ALREADY_GONE
        }
        self._record_reclaimable(plan, gone, unit_sizes)
        if result is CycleResult.REFUSED:
            self.safety_aborts.inc()
        self.record_cycle(trigger, result, duration_seconds, now)
        if not report.aborted:
            self.engine_up.set(1)
        return result

    def record_result(
        self,
        result: RunOutcome,
        *,
        trigger: Trigger | str,
        duration_seconds: float,
        now: datetime,
    ) -> CycleResult:
        """`record_run` for what `cycle.run_once` returns."""
        return self.record_run(
            result.plan,
            result.report,
            result.freed_bytes,
            unit_sizes=result.snapshot.unit_sizes,
            trigger=trigger,
            duration_seconds=duration_seconds,
            now=now,
        )

    def record_refusal(
        self,
        plan: Plan,
        unit_sizes: Mapping[str, int],
        *,
        trigger: Trigger | str,
        duration_seconds: float,
        now: datetime,
    ) -> None:
        """A plan refused by a safety limit before anything ran (RunRefusedError)."""
        self.record_plan(plan, unit_sizes)
        self.safety_aborts.inc()
        self.record_cycle(trigger, CycleResult.REFUSED, duration_seconds, now)

    def record_failure(
        self,
        *,
        trigger: Trigger | str,
        duration_seconds: float,
        now: datetime,
        engine_unreachable: bool = False,
    ) -> None:
        """A cycle that could not run or finish (an error escaped it)."""
        if engine_unreachable:
            self.engine_up.set(0)
        self.record_cycle(trigger, CycleResult.FAILURE, duration_seconds, now)

    def record_cycle(
        self,
        trigger: Trigger | str,
        result: CycleResult | str,
        duration_seconds: float,
        now: datetime,
    ) -> None:
        """Count one cycle and its duration; a success also sets the last success time.

        `record_run`, `record_refusal` and `record_failure` call this; use it directly only
        for a cycle none of them describes. Unknown trigger or result values raise
        ValueError: the label sets are closed."""
        outcome = CycleResult(result)
        self.cycles.labels(Trigger(trigger).value, outcome.value).inc()
        self.cycle_duration.observe(max(duration_seconds, 0.0))
        if outcome is CycleResult.SUCCESS:
            self._last_success_at = max(self._last_success_at, now.timestamp())
            self.last_success.set(self._last_success_at)

    def cumulative(self) -> dict[str, Counter | Histogram]:
        """The counters and histograms by family name, for carrying them across runs."""
        return {
            "gcd_reclaimed_bytes": self.reclaimed_bytes,
            "gcd_removals": self.removals,
            "gcd_cycles": self.cycles,
            "gcd_cycle_duration_seconds": self.cycle_duration,
            "gcd_filesystem_freed_bytes": self.filesystem_freed_bytes,
            "gcd_safety_aborts": self.safety_aborts,
            "gcd_images_removed_under_container": self.removed_under_container,
            "gcd_orphan_checks_failed": self.orphan_checks_failed,
        }

    def carry_gauge(self, name: str, value: float) -> None:
        """Continue a gauge of CARRIED_GAUGES from a previous run: the latest success, the
        earliest start."""
        if name == "gcd_last_success_timestamp_seconds":
            self._last_success_at = max(self._last_success_at, value)
            self.last_success.set(self._last_success_at)
        elif name == "gcd_start_time_seconds" and value > 0:
            self._started_at = min(self._started_at, value)
            self.start_time.set(self._started_at)
        else:
            raise ValueError(f"{name} is not carried across runs (see CARRIED_GAUGES)")

    def set_engine_up(self, up: bool) -> None:
        self.engine_up.set(1 if up else 0)

    def record_safety_abort(self) -> None:
        self.safety_aborts.inc()
