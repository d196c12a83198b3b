"""One gcd at a time per host: an exclusive, non-blocking flock in the state directory."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gcd.errors import LockHeldError, StateError

LOCK_FILE = "gcd.lock"


@contextmanager
def hold_lock(directory: Path) -> Iterator[None]:
    path = directory / LOCK_FILE
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StateError(f"cannot open the lock file {path}: {exc.strerror}") from exc
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
        yield
    finally:
        os.close(fd)
