"""A small real filesystem of its own: an ext4 image on a loop device, for disk pressure."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def loop_filesystem(directory: Path, size: str) -> Iterator[Path]:
    """An ext4 filesystem of `size` (truncate's units: 300M) mounted at `directory/mnt`,
    backed by `directory/disk.img`; unmounted (lazily) at exit."""
    backing, mount = directory / "disk.img", directory / "mnt"
    mount.mkdir()
    subprocess.run(["truncate", "-s", size, str(backing)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True)
    subprocess.run(["mount", "-o", "loop", str(backing), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
