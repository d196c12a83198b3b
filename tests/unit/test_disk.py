from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gcd.errors import DiskError
from gcd.host.disk import measure


def test_usage_agrees_with_df(tmp_path: Path) -> None:
    usage = measure(tmp_path)
    out = subprocess.run(
        ["df", "--block-size=1", "--output=used,avail,iused,itotal", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")[1]
    used, avail, iused, itotal = (int(x) for x in out.split())
    # df reads the same statvfs; allow for writes by other processes in between.
    assert abs(usage.used_bytes - used) < 64 * 2**20
    assert abs(usage.total_bytes - (used + avail)) < 64 * 2**20
    assert usage.total_inodes == itotal
    assert abs(usage.used_inodes - iused) < 10_000


def test_pressure_uses_the_watermarks(tmp_path: Path) -> None:
    pressure = measure(tmp_path).pressure(high=0.0, low=0.0)
    assert pressure.above_high
    assert not measure(tmp_path).pressure(high=1.0, low=0.9).above_high


def test_a_missing_path_says_what_to_set(tmp_path: Path) -> None:
    with pytest.raises(DiskError, match=r"schedule\.disk\.path"):
        measure(tmp_path / "missing")
