"""Replacing a file atomically: the one way gcd writes a file that others read."""

from __future__ import annotations

import errno
import os
import secrets
from contextlib import suppress


def replace_file(dir_fd: int, name: str, data: bytes, prefix: str, mode: int = 0o600) -> None:
    """Write `data` as `name` in the directory `dir_fd` atomically: a new temp file (never
    through a link: O_EXCL|O_NOFOLLOW), fsync, rename over `name`, fsync of the directory
    (until then the rename may not survive a crash). `prefix` names the temp file so that
    readers of the directory can tell it apart."""
    for _ in range(100):
        temp = f"{prefix}{secrets.token_hex(8)}"
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                mode,
                dir_fd=dir_fd,
            )
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(errno.EEXIST, "no free temporary file name", prefix)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # the umask may have narrowed it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)
