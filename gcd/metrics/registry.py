"""The registry gcd's metrics live on: without `*_created` samples, with `process_*` metrics.

prometheus_client adds a `_created` sample to every counter and histogram series by default
(31 of the daemon's series): undocumented, unused by any rule or panel, and in a textfile a
lie (the time of the last run). `disable_created_metrics` turns them off process-wide, which
is what gcd wants everywhere. The process collector gives what every exporter exports
(`process_resident_memory_bytes` against the unit's `MemoryMax`, CPU seconds, open fds);
it reads /proc of this process, so it belongs to the daemon's registry only: in timer mode
the figures of a process that has exited would mean nothing.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, ProcessCollector, disable_created_metrics

__all__ = ["daemon_registry", "run_registry"]


def run_registry() -> CollectorRegistry:
    """A registry for one run's metrics (the timer mode's textfile, tests)."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    return CollectorRegistry()


def daemon_registry() -> CollectorRegistry:
    """The daemon's registry: gcd's metrics plus `process_*` of this process."""
    registry = run_registry()
    ProcessCollector(registry=registry)
    return registry
