"""Reading a small configuration file an attacker may have pointed somewhere else.

A FIFO would block the reader until someone writes (the daemon's main thread, so SIGTERM would
wait too), `/dev/zero` never ends, a 5 GB file would be read whole before any check: so the file
is opened without blocking, must be a regular file, and at most `limit` bytes are read.
Symbolic links are followed (the policy's permission check judges each link on the way).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class FileRefused(Exception):
    """The file is not one gcd reads; the message says why and what to give instead."""


def read_regular_file(path: Path, limit: int, what: str) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; `what` names the file
    in messages ("policy"). Raises `FileRefused`."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # a FIFO or socket that cannot be opened so
            raise FileRefused(f"not a regular file; give the path of a {what} file") from None
        raise FileRefused(f"cannot read the {what}: {exc.strerror}") from None
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = _file_kind(status.st_mode)
            raise FileRefused(f"{kind}, not a regular file; give the path of a {what} file")
        if status.st_size > limit:
            raise FileRefused(_too_large(f"{status.st_size} bytes", limit, what))
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while size <= limit:  # the file may grow after fstat: read at most limit + 1 bytes
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > limit:
            raise FileRefused(_too_large(f"more than {limit} bytes", limit, what))
        return b"".join(chunks)
    except OSError as exc:
        raise FileRefused(f"cannot read the {what}: {exc.strerror}") from None
    finally:
        os.close(fd)


def _too_large(size: str, limit: int, what: str) -> str:
    return f"{size}: a {what} file is at most {limit} bytes; is this the right file?"


def _file_kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a file"
