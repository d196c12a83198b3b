"""The state directory and the files gcd keeps in it, opened so that nobody can redirect them.

The directory is created if missing (0700), checked (permissions.py: nobody but root and the
running user can write it or any directory on the way to it) and opened once per use with
O_DIRECTORY. Its path may be a symlink: with DynamicUser= and StateDirectory=, systemd makes
/var/lib/gcd a link to /var/lib/private/gcd. Everything inside is then opened relative to that
descriptor with O_NOFOLLOW, so a symlink in place of `gcd.lock` or the old `state.json` fails
the open (ELOOP) instead of being followed, and O_NONBLOCK keeps a FIFO there from hanging it.
fstat on the open file then refuses anything but a regular file with a single link: as root,
gcd truncates the lock and would read or truncate whatever file a symlink or hard link named.
Writes go to a new temp file (O_CREAT|O_EXCL: never an existing name or link), renamed over the
old name, which replaces that directory entry (link or not) rather than writing through it.

The SQLite database (`state.db` and its `-wal`, `-shm` and `-journal` files) is opened by
SQLite itself, by path; `lstat_regular` checks those entries without opening them (state_db.py
says why an open and close of gcd's own would be wrong there, and what remains).

None of these file checks can be overridden: gcd creates these files itself, and no setup
needs one of them to be a link, a FIFO or a directory.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gcd.errors import InsecureStateError, StateError
from gcd.host.permissions import enforce, mode_finding, owner_finding, path_findings, running_user

DEFAULT_STATE_DIR = Path("/var/lib/gcd")

DIRECTORY_WHY = (
    "whoever can write it can plant links for gcd to write through and rewrite the first-seen "
    "times that decide local age"
)
FILE_WHY = "whoever can write it decides the local ages that make images old enough to delete"


def _kind(mode: int) -> str:
    kinds = {
        stat.S_ISLNK: "a symbolic link",
        stat.S_ISDIR: "a directory",
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
    }
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def _refusal(shown: Path, problem: str) -> InsecureStateError:
    return InsecureStateError(
        f"refusing {shown}: it {problem}; remove it ({shown.name} must be a regular file of its "
        f"own, which gcd creates itself) and find out who could put it in {shown.parent}"
    )


@contextmanager
def open_state_dir(directory: Path) -> Iterator[int]:
    """A descriptor of the checked state directory, created 0700 if missing, for the block.
    Refuses with `InsecureStateError` (unless overridden); other failures are `OSError`s for
    the caller to word."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = _open_checked(directory)
    try:
        yield fd
    finally:
        os.close(fd)


def _open_checked(directory: Path) -> int:
    findings, _ = path_findings(directory)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        # The directory itself is checked on its descriptor: what gcd uses is what it checked.
        status = os.fstat(fd)
        findings += filter(
            None,
            [
                owner_finding(str(directory), status, running_user(), or_run_as_owner=True),
                mode_finding(str(directory), status, sticky_ok=False),
            ],
        )
        enforce(findings, f"the state directory {directory}", DIRECTORY_WHY, InsecureStateError)
    except BaseException:
        os.close(fd)
        raise
    return fd


def ensure_state_dir(directory: Path) -> None:
    """Create and check the state directory up front (the daemon does, before its first cycle,
    so that a refused directory stops it at start instead of failing every cycle)."""
    try:
        with open_state_dir(directory):
            pass
    except OSError as exc:
        raise StateError(
            f"cannot use the state directory {directory}: {exc.strerror}; check its "
            "permissions or choose another with --state-dir"
        ) from exc


def open_regular(dir_fd: int, name: str, flags: int, shown: Path) -> int:
    """`name` in the state directory, opened with `flags` without following a link.
    `InsecureStateError` when it is anything but a regular file with one link; other failures
    (`FileNotFoundError` without O_CREAT) are `OSError`s."""
    try:
        fd = os.open(
            name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o600, dir_fd=dir_fd
        )
    except OSError as exc:
        # ELOOP: a symlink; EISDIR: a directory opened for writing; ENXIO: a socket.
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        kind = _kind(os.lstat(name, dir_fd=dir_fd).st_mode)  # only to word the refusal
        raise _refusal(shown, f"is {kind}") from None
    try:
        _refuse_unless_own_regular(os.fstat(fd), shown)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _refuse_unless_own_regular(status: os.stat_result, shown: Path) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise _refusal(shown, f"is {_kind(status.st_mode)}")
    if status.st_nlink > 1:
        raise _refusal(
            shown,
            f"has {status.st_nlink} hard links, so it is also a file under another name that "
            "gcd would read or overwrite",
        )


def lstat_regular(dir_fd: int, name: str, shown: Path) -> os.stat_result | None:
    """The lstat of `name` in the state directory, None when it is missing; refused like
    `open_regular` when it is anything but a regular file with one link. Nothing is opened."""
    try:
        status = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    _refuse_unless_own_regular(status, shown)
    return status


def check_private_file(fd: int, shown: Path) -> None:
    """Refuse (unless overridden) a state file that others could write."""
    check_private_status(os.fstat(fd), shown)


def check_private_status(status: os.stat_result, shown: Path) -> None:
    """`check_private_file` on a stat result."""
    findings = [
        owner_finding(str(shown), status, running_user()),
        mode_finding(str(shown), status, sticky_ok=False),
    ]
    enforce([f for f in findings if f], f"the state file {shown}", FILE_WHY, InsecureStateError)
