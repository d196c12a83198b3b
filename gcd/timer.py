"""Timer mode: one run whose metrics go to a textfile for node_exporter (`gcd run --once
--textfile DIR`).

The run is measured as a daemon's cycle is: the filesystem under the engine's data against
`schedule.disk`'s watermarks (so gcd_disk_pressure, gcd_filesystem_used_ratio and the
evictions under pressure are those of a real evaluation), Docker's usage by kind after the
run, and what the filesystem gained. Counters continue the previous file
(`gcd.metrics.textfile.restore_counters`).

The first run on a host has no previous file, so its counters would appear already moved in
the first sample node_exporter serves, and `increase()` would not count them. With
`first_scrape_wait_seconds`, that first run writes the file at 0 first and waits: a timer
cannot tell when node_exporter was scraped, so the wait is blind, once per host.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import structlog

from gcd.config.loader import read_policy_file
from gcd.core.policy import Policy
from gcd.cycle import RunResult, run_once, usage_after
from gcd.diskwatch import DiskWatch
from gcd.engine.client import Engine
from gcd.errors import EngineUnreachableError, GcdError
from gcd.metrics.definitions import Metrics
from gcd.metrics.observer import MetricsObserver
from gcd.metrics.registry import run_registry
from gcd.metrics.textfile import DEFAULT_NAME, check_textfile_dir, restore_counters, write_textfile
from gcd.probe import engine_reachable

log = structlog.get_logger("gcd.timer")

__all__ = ["TextfileRun", "run_with_textfile"]

PROBE_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class TextfileRun:
    policy_path: Path
    state_dir: Path
    directory: Path
    first_scrape_wait_seconds: float = 0.0


def run_with_textfile(
    run: TextfileRun,
    engine: Engine,
    policy: Policy,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> RunResult:
    """One run; the textfile is written whatever its result (a GcdError is re-raised)."""
    check_textfile_dir(run.directory)  # before any deletion: a wrong DIR costs nothing
    registry = run_registry()
    metrics = Metrics(registry)
    first = not (run.directory / DEFAULT_NAME).exists()
    restore_counters(metrics, run.directory / DEFAULT_NAME)
    metrics.record_policy_loaded(read_policy_file(run.policy_path))
    if first and run.first_scrape_wait_seconds > 0:
        write_textfile(registry, run.directory)
        log.info("first_run_waits_for_scrape", seconds=run.first_scrape_wait_seconds)
        sleep(run.first_scrape_wait_seconds)
    observer = MetricsObserver(metrics)
    disk = DiskWatch(engine, observer, lambda: policy)
    started = time.monotonic()
    try:
        before = disk.usage()
        pressure = disk.pressure(before)
        result = run_once(
            engine, policy, run.state_dir, pressure=pressure, remeasure=disk.remeasure
        )
        after = disk.usage()
    except GcdError as exc:
        metrics.record_failure(
            trigger="once",
            duration_seconds=time.monotonic() - started,
            now=datetime.now(UTC),
            # as the daemon does: the client calls a 500 to its version query unreachable
            engine_unreachable=isinstance(exc, EngineUnreachableError)
            and engine_reachable(engine.host, PROBE_TIMEOUT_SECONDS) is False,
        )
        write_textfile(registry, run.directory)
        raise
    metrics.record_result(
        result, trigger="once", duration_seconds=time.monotonic() - started, now=datetime.now(UTC)
    )
    if result.plan.refusal is None:
        observer.docker_usage(usage_after(result))
    if before is not None and after is not None and result.freed_bytes > 0:
        metrics.record_filesystem_freed(before.used_bytes - after.used_bytes)
    metrics.record_compose(images for _, images in result.compose)
    write_textfile(registry, run.directory)
    return result
