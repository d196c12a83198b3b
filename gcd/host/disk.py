"""The filesystem under the engine's data: statvfs figures and pressure against watermarks."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gcd.core.budget import Pressure
from gcd.errors import DiskError


@dataclass(frozen=True, slots=True)
class DiskUsage:
    path: Path
    used_bytes: int
    total_bytes: int
    used_inodes: int
    total_inodes: int

    def pressure(self, high: float, low: float, critical: float = 1.0) -> Pressure:
        return Pressure(
            self.used_bytes,
            self.total_bytes,
            self.used_inodes,
            self.total_inodes,
            high,
            low,
            critical,
        )


def measure(path: Path) -> DiskUsage:
    """statvfs of `path`. Used bytes count the root-reserved blocks as used, as `df` does."""
    try:
        stats = os.statvfs(path)
    except OSError as exc:
        raise DiskError(
            f"cannot measure the filesystem at {path}: {exc.strerror}. Set schedule.disk.path "
            "to the engine's data root (DockerRootDir in `docker info`)"
        ) from exc
    total = stats.f_blocks * stats.f_frsize
    free_for_users = stats.f_bavail * stats.f_frsize
    reserved = (stats.f_bfree - stats.f_bavail) * stats.f_frsize
    used = total - free_for_users - reserved
    size_for_users = used + free_for_users
    return DiskUsage(
        path=path,
        used_bytes=used,
        total_bytes=size_for_users,
        used_inodes=stats.f_files - stats.f_ffree,
        total_inodes=stats.f_files,
    )
