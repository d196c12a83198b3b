"""Which mount holds a path: its mount point and device as node_exporter names them.

node_exporter's `node_filesystem_*` series carry `mountpoint` (field 5 of
/proc/self/mountinfo) and `device` (the mount source, field 10); gcd labels
gcd_filesystem_used_ratio with the same two, so the series join with `on (instance,
mountpoint)`. The longest mount point that contains the path wins (the last one mounted when
two are stacked on one point, as the kernel resolves it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


@dataclass(frozen=True, slots=True)
class Mount:
    mountpoint: str
    device: str


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field = field.replace(code, chr(int(code[1:], 8)))
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if len(fields) < separator + 3:
            continue
        mounts.append(Mount(_unescape(fields[4]), _unescape(fields[separator + 2])))
    return mounts


def mount_of(path: Path, mountinfo: str | None = None) -> Mount | None:
    """The mount holding `path` (resolved); None when mountinfo cannot be read."""
    try:
        text = MOUNTINFO.read_text(encoding="utf-8") if mountinfo is None else mountinfo
    except OSError:
        return None
    target = os.path.realpath(path)
    best: Mount | None = None
    for mount in parse_mountinfo(text):
        point = mount.mountpoint
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best.mountpoint)):
            best = mount
    return best
