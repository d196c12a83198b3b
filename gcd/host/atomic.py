"""Replacing a file atomically: the one way gcd writes a file that others read.

A writer killed between creating its temp file and renaming it (SIGKILL, OOM, power loss)
leaves the temp file behind, and nothing else would ever remove it: a node_exporter textfile
directory would collect one per kill. So every write first removes the temp files of its own
prefix that no live writer holds. A writer holds an exclusive `flock` on its temp file from
the moment it exists until after the rename (the kernel drops it when the writer dies, however
it dies); a temp file whose lock can be taken, and which is still the file of that name, is a
dead writer's. A writer that finds its new file unlinked by such a cleanup in the moment
before it took the lock (its link count is 0) simply starts again under a new name.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import secrets
import stat
from contextlib import suppress

_TOKEN_HEX = 16
"""Hex digits of the random part of a temp file's name (8 random bytes)."""


def replace_file(dir_fd: int, name: str, data: bytes, prefix: str, mode: int = 0o600) -> None:
    """Write `data` as `name` in the directory `dir_fd` atomically: a new temp file (never
    through a link: O_EXCL|O_NOFOLLOW), fsync, rename over `name`, fsync of the directory
    (until then the rename may not survive a crash). `prefix` names the temp file so that
    readers of the directory can tell it apart, and so that the temp files of killed writers
    of the same prefix are found and removed first (`remove_stale_temps`)."""
    remove_stale_temps(dir_fd, prefix)
    temp, fd = _locked_temp(dir_fd, prefix, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            # Renamed while still locked: a cleanup that takes the lock later finds the name
            # gone or taken by another file, never this one under its temp name.
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def _locked_temp(dir_fd: int, prefix: str, mode: int) -> tuple[str, int]:
    """A new temp file of `prefix`, open for writing and exclusively flocked."""
    for _ in range(100):
        temp = f"{prefix}{secrets.token_hex(_TOKEN_HEX // 2)}"
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=dir_fd,
            )
        except FileExistsError:
            continue
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits only while a cleanup looks at this very file
        if os.fstat(fd).st_nlink == 0:  # a cleanup removed it before the lock was ours
            os.close(fd)
            continue
        return temp, fd
    raise FileExistsError(errno.EEXIST, "no free temporary file name", prefix)


def remove_stale_temps(dir_fd: int, prefix: str) -> list[str]:
    """Remove the temp files `replace_file` left under `prefix` in `dir_fd` when its writer
    died before the rename; returns their names. A temp file a live writer holds is left
    alone, and so is anything not named like one (prefix + 16 hex digits) or not a regular
    file: this never removes what gcd did not write."""
    pattern = re.compile(re.escape(prefix) + f"[0-9a-f]{{{_TOKEN_HEX}}}")
    removed = []
    for entry in os.listdir(dir_fd):
        if pattern.fullmatch(entry) and _remove_if_abandoned(dir_fd, entry):
            removed.append(entry)
    return removed


def _remove_if_abandoned(dir_fd: int, entry: str) -> bool:
    try:
        fd = os.open(
            entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )
    except OSError:
        return False  # gone already, a link, unreadable: not ours to judge
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_nlink != 1:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a live writer
        try:
            named = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            return False  # renamed into place meanwhile, and the name reused
        os.unlink(entry, dir_fd=dir_fd)
        return True
    finally:
        os.close(fd)
