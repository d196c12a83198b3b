"""One gcd at a time per host: an exclusive, non-blocking flock in the state directory.

The lock is the flock on `gcd.lock`, not the file's existence: the kernel releases it when the
holder exits, however it exits, so a crash never leaves a stale lock. The holder writes its pid
into the file for the message the next process prints, and empties it on release.

The file is opened relative to the checked state directory, never through a link, and must be
a regular file of its own (statedir.py): as root, gcd truncates it, so a `gcd.lock` planted as
a symlink or hard link to another file would empty that file. Its owner and mode are not
checked beyond that: it holds only a pid, and the directory check already keeps others out.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gcd.errors import LockHeldError, StateError
from gcd.host.statedir import open_regular, open_state_dir

LOCK_FILE = "gcd.lock"


@contextmanager
def hold_lock(directory: Path) -> Iterator[Path]:
    """Hold `directory/gcd.lock` (the directory is created 0700 if missing) for the block;
    raise `LockHeldError` naming the file and the holder's pid when another process has it,
    `InsecureStateError` when the directory or the file is unsafe (statedir.py)."""
    path = directory / LOCK_FILE
    try:
        with open_state_dir(directory) as dir_fd:
            fd = open_regular(dir_fd, LOCK_FILE, os.O_RDWR | os.O_CREAT, path)
    except OSError as exc:
        raise StateError(
            f"cannot open the lock file {path}: {exc.strerror}; check the permissions of the "
            "state directory or choose another with --state-dir"
        ) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise LockHeldError(
                f"another gcd process (pid {holder}) is running on this host and holds {path}; "
                "wait for it to finish (the daemon and a one-shot run must not overlap)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            os.ftruncate(fd, 0)  # still locked here: nobody reads a stale pid
    finally:
        os.close(fd)
