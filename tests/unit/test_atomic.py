"""`replace_file` and the temp files a killed writer leaves (gcd/host/atomic.py)."""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gcd.host.atomic import remove_stale_temps, replace_file

PREFIX = ".gcd.prom."


@pytest.fixture
def dir_fd(tmp_path: Path) -> Iterator[int]:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def test_a_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path, dir_fd: int) -> None:
    replace_file(dir_fd, "gcd.prom", b"one\n", PREFIX, mode=0o644)
    replace_file(dir_fd, "gcd.prom", b"two\n", PREFIX, mode=0o644)
    assert sorted(os.listdir(tmp_path)) == ["gcd.prom"]
    assert (tmp_path / "gcd.prom").read_bytes() == b"two\n"
    assert (tmp_path / "gcd.prom").stat().st_mode & 0o777 == 0o644


def test_a_writer_killed_before_its_rename_leaves_a_temp_file_the_next_write_removes(
    tmp_path: Path, dir_fd: int
) -> None:
    """A real SIGKILL of a process holding its locked, written temp file."""
    script = (
        "import os, sys\n"
        "from gcd.host.atomic import _locked_temp\n"
        f"d = os.open({str(tmp_path)!r}, os.O_RDONLY | os.O_DIRECTORY)\n"
        f"name, fd = _locked_temp(d, {PREFIX!r}, 0o644)\n"
        "os.write(fd, b'half')\n"
        "print(name, flush=True)\n"
        "sys.stdin.read()\n"
    )
    writer = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    temp = writer.stdout.readline().strip()
    assert (tmp_path / temp).exists()
    assert remove_stale_temps(dir_fd, PREFIX) == []  # alive: its lock is held
    writer.send_signal(signal.SIGKILL)
    writer.wait(10)
    assert (tmp_path / temp).exists()  # what the kill leaves behind
    replace_file(dir_fd, "gcd.prom", b"whole\n", PREFIX)
    assert sorted(os.listdir(tmp_path)) == ["gcd.prom"]


def test_a_temp_file_a_live_writer_holds_is_left_alone(tmp_path: Path, dir_fd: int) -> None:
    held = tmp_path / f"{PREFIX}{'a' * 16}"
    held.write_bytes(b"in progress")
    fd = os.open(held, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        replace_file(dir_fd, "gcd.prom", b"x", PREFIX)
        assert held.exists()
    finally:
        os.close(fd)
    assert remove_stale_temps(dir_fd, PREFIX) == [held.name]
    assert not held.exists()


def test_only_regular_files_named_exactly_like_temp_files_are_removed(
    tmp_path: Path, dir_fd: int
) -> None:
    keep = [
        tmp_path / f"{PREFIX}{'b' * 15}",  # too short
        tmp_path / f"{PREFIX}{'c' * 16}.bak",
        tmp_path / f".other.{'d' * 16}",  # another prefix
        tmp_path / "gcd.prom",
    ]
    for path in keep:
        path.write_bytes(b"not gcd's temp file")
    (tmp_path / f"{PREFIX}{'e' * 16}").mkdir()
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    (tmp_path / f"{PREFIX}{'f' * 16}").symlink_to(target)
    hard = tmp_path / f"{PREFIX}{'0' * 16}"
    os.link(target, hard)
    stale = tmp_path / f"{PREFIX}{'1' * 16}"
    stale.write_bytes(b"left by a kill")

    assert remove_stale_temps(dir_fd, PREFIX) == [stale.name]
    assert all(path.exists() for path in keep)
    assert target.read_bytes() == b"precious"
    assert hard.exists()
    assert (tmp_path / f"{PREFIX}{'f' * 16}").is_symlink()
