"""Metrics for node_exporter's textfile collector, for hosts that run gcd from a timer.

Each timer run is a new process, so its counters would start at 0 every time and Prometheus
would see a reset per run (and miss increases between equal values). `restore_counters`
seeds a fresh `Metrics` from the previous file before the run records anything, so the
counters, the duration histogram, the last success time and the start time carry on across
runs. `write_textfile` then replaces the file atomically: node_exporter never reads half.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import structlog
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from gcd.errors import OutputError, StateError
from gcd.host.atomic import replace_file
from gcd.metrics.definitions import CARRIED_GAUGES, Metrics

__all__ = [
    "DEFAULT_NAME",
    "check_textfile_dir",
    "read_textfile",
    "restore_counters",
    "write_textfile",
]

DEFAULT_NAME = "gcd.prom"
_CUMULATIVE = ("counter", "histogram")

log = structlog.get_logger("gcd.metrics_textfile")


class _WithoutCreated(Collector):
    """The registry without `_created` samples: in a textfile they would tell the time of the
    last run, not when the counter started, and they are noise for the textfile collector."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterable[Metric]:
        for family in self._registry.collect():
            created = f"{family.name}_created"
            family.samples = [s for s in family.samples if s.name != created]
            yield family


def write_textfile(registry: CollectorRegistry, directory: Path, name: str = DEFAULT_NAME) -> Path:
    """Write `registry` to `directory/name` atomically (`gcd.host.atomic`), mode 0644.
    Raises StateError when the directory cannot be written."""
    if not name.endswith(".prom"):
        raise ValueError(f"node_exporter reads only *.prom files, got {name!r}")
    target = directory / name
    payload = generate_latest(_WithoutCreated(registry))
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise StateError(
            f"cannot write metrics to {directory}: {exc.strerror}. Give --textfile the "
            "node_exporter textfile directory (--collector.textfile.directory), writable by gcd"
        ) from exc
    try:
        # The temporary name does not end in `.prom`, so the collector never reads it.
        replace_file(dir_fd, name, payload, prefix=f".{name}.", mode=0o644)
    except OSError as exc:
        raise StateError(f"cannot write metrics to {target}: {exc.strerror}") from exc
    finally:
        os.close(dir_fd)
    return target


def check_textfile_dir(directory: Path) -> None:
    """Raise `OutputError` unless a file can be created in `directory`: `gcd run --once
    --textfile DIR` checks before its first deletion, so a wrong DIR never costs a run whose
    results are then lost. A real file is made and removed (`os.access` says yes to root on a
    read-only mount); its name does not end in `.prom`, so node_exporter never reads it."""
    try:
        fd, name = tempfile.mkstemp(prefix=".gcd-check.", dir=directory)
    except OSError as exc:
        raise OutputError(
            f"cannot write metrics to {directory}: {exc.strerror}; nothing was deleted. Create "
            "the directory, or give --textfile the node_exporter textfile directory "
            "(--collector.textfile.directory), writable by gcd"
        ) from exc
    os.close(fd)
    os.unlink(name)


def read_textfile(path: Path) -> list[Metric]:
    """The metric families of a textfile; [] when it does not exist.

    Raises StateError when it exists but cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        raise StateError(f"cannot read the previous metrics file {path}: {exc}") from exc
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise StateError(f"{path} is not in the Prometheus text format: {exc}") from exc


def restore_counters(metrics: Metrics, path: Path) -> int:
    """Seed a fresh `metrics` from the textfile a previous run wrote at `path`.

    Call it once, before recording anything. Returns how many series were carried over. An
    unreadable previous file is logged and ignored: the counters then restart at 0, which
    Prometheus treats as an ordinary counter reset."""
    try:
        families = read_textfile(path)
    except StateError as exc:
        log.warning("metrics_textfile_unreadable", path=str(path), error=str(exc))
        return 0
    restored = 0
    for family in families:
        if family.type in _CUMULATIVE:
            restored += _restore_cumulative(metrics, family)
        elif family.name in CARRIED_GAUGES:
            restored += _restore_gauge(metrics, family)
    return restored


def _restore_cumulative(metrics: Metrics, family: Metric) -> int:
    collector = metrics.cumulative().get(family.name)
    if collector is None:
        return 0
    if isinstance(collector, Histogram):
        return _restore_histogram(collector, family)
    restored = 0
    for sample in family.samples:
        if sample.name != f"{family.name}_total" or not _usable(sample.value):
            continue
        try:
            child = collector.labels(**sample.labels) if sample.labels else collector
            child.inc(sample.value)
        except ValueError:  # labels of another gcd version: that series restarts at 0
            log.warning("metrics_textfile_series_not_restored", series=str(sample))
            continue
        restored += 1
    return restored


def _restore_histogram(histogram: Histogram, family: Metric) -> int:
    """Histogram children keep per-bucket (not cumulative) counts and a sum; rebuild them.

    prometheus_client has no public API to seed a histogram, so this sets its internal
    values; tests/unit/test_metrics.py round-trips it to catch a change in the library."""
    cumulative = sorted(
        (float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket")
    )
    total = next((s.value for s in family.samples if s.name.endswith("_sum")), 0.0)
    buckets = histogram._buckets
    upper_bounds = histogram._upper_bounds
    if [bound for bound, _ in cumulative] != list(upper_bounds) or not _usable(total):
        log.warning("metrics_textfile_histogram_not_restored", reason="bucket layout changed")
        return 0
    previous = 0.0
    for bucket, (_, count) in zip(buckets, cumulative, strict=True):
        bucket.inc(max(count - previous, 0.0))
        previous = count
    histogram._sum.inc(total)
    return 1


def _restore_gauge(metrics: Metrics, family: Metric) -> int:
    for sample in family.samples:
        if sample.name == family.name and _usable(sample.value):
            metrics.carry_gauge(family.name, sample.value)
            return 1
    return 0


def _usable(value: float) -> bool:
    return math.isfinite(value) and value >= 0
