"""The disk figures of `Metrics`: the watched filesystem, its mount, Docker's usage."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge

from gcd.core.kind import Kind

__all__ = ["DiskFigures"]


class DiskFigures:
    """Mixed into `gcd.metrics.definitions.Metrics`, which defines these series."""

    filesystem_used_ratio: Gauge
    disk_watermark: Gauge
    disk_pressure: Gauge
    docker_usage_bytes: Gauge
    filesystem_freed_bytes: Counter
    _mount: tuple[str, str]

    def record_disk(
        self,
        used_ratio_bytes: float,
        used_ratio_inodes: float,
        high: float | None,
        low: float | None,
        pressure: bool,
    ) -> None:
        self.filesystem_used_ratio.labels("bytes", *self._mount).set(used_ratio_bytes)
        self.filesystem_used_ratio.labels("inodes", *self._mount).set(used_ratio_inodes)
        for name, value in (("high", high), ("low", low)):
            if value is None:
                self.disk_watermark.remove(name)
            else:
                self.disk_watermark.labels(name).set(value)
        self.disk_pressure.set(1 if pressure else 0)

    def record_mount(self, mountpoint: str, device: str) -> None:
        """The mount of the measured filesystem: labels of gcd_filesystem_used_ratio."""
        if (mountpoint, device) != self._mount:
            self.filesystem_used_ratio.clear()
            self._mount = (mountpoint, device)

    def record_docker_usage(self, usage: Mapping[Kind, int]) -> None:
        for kind, size in usage.items():
            self.docker_usage_bytes.labels(Kind(kind).value).set(size)

    def record_filesystem_freed(self, freed_bytes: int) -> None:
        """statvfs free bytes after a cycle minus before. Other writers can make it negative;
        a counter cannot go down, so a negative figure counts as 0."""
        self.filesystem_freed_bytes.inc(max(freed_bytes, 0))
