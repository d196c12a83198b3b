"""Who may change what gcd acts on: the policy (config/trusted.py) and the state directory
(statedir.py).

gcd runs as root or as a member of the docker group (root-equivalent) and deletes what the
policy does not keep. A policy means what it says only if nobody but root and gcd's own user
can change it, and the state directory is safe to write only if nobody else can plant links in
it or edit the first-seen times that decide local age. So a path gcd acts on is refused unless

- every entry the kernel passes through to resolve it (`/`, each directory below, each symlink
  on the way) is owned by root or the running user, and no directory on the way is writable by
  its group or others unless it is sticky;
- the policy file, or the state directory, itself is owned by root or the running user and
  not writable by its group or others (for the state directory the sticky bit does not help).

Why every directory on the way and not just the file: whoever can write a directory can
replace anything below it, for instance swap the policy for a symlink to another root-owned
file (an old policy, the example that keeps nothing), which no check on the file itself would
notice; one writable level anywhere above is as good as a writable parent. A sticky directory
such as /tmp is the exception: others may add entries there, but not rename or remove the ones
they do not own, so a root-owned entry in it stays put.

The checks use lstat and the open follows by path afterwards. That is no race an attacker can
use: the checks establish that only root and gcd's user can change any entry on the way, so
nobody else can swap one between the check and the open.

The override (`--allow-insecure-permissions`, `GCD_ALLOW_INSECURE_PERMISSIONS=1`) turns each
refusal here into a warning, logged every time gcd would have refused; it is for test fixtures
and for operators who share these paths on purpose. It never lets the lock or the state file be
a link or anything but a regular file (statedir.py): gcd creates those itself, and no setup
needs one to be a link.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from gcd.errors import GcdError

OVERRIDE_OPTION = "--allow-insecure-permissions"
OVERRIDE_ENV = "GCD_ALLOW_INSECURE_PERMISSIONS"
MAX_SYMLINKS = 40  # the kernel's own limit; beyond it the open fails with ELOOP anyway


@dataclass(slots=True)
class _Override:
    """Process-wide, like the logging set-up: the state is opened deep inside a cycle
    (cycle.py, state.py, lock.py), and threading a flag through every call for a test switch
    would widen each signature on the way."""

    allowed: bool = False


_override = _Override()


def allow_insecure_permissions(allowed: bool) -> None:
    """Set per invocation by the CLI from its `--allow-insecure-permissions` option."""
    _override.allowed = allowed


def insecure_permissions_allowed() -> bool:
    return _override.allowed or os.environ.get(OVERRIDE_ENV, "") not in ("", "0")


@dataclass(frozen=True, slots=True)
class Finding:
    """One entry others could change, and the command that fixes it."""

    path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.path} {self.problem}; fix: {self.fix}"


def _user(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name}, uid {uid}"
    except KeyError:
        return f"uid {uid}"


def running_user() -> str:
    """The running user as `chown` takes it: a name if it has one, else the uid."""
    uid = os.geteuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def owner_finding(
    path: str, status: os.stat_result, owner_fix: str, *, or_run_as_owner: bool = False
) -> Finding | None:
    """`or_run_as_owner`: the fix may also be running gcd as the owner (a state directory that
    systemd made for the services' dynamic user, and root runs gcd on it by hand)."""
    if status.st_uid in (0, os.geteuid()):
        return None
    link = "-h " if stat.S_ISLNK(status.st_mode) else ""
    fix = f"chown {link}{owner_fix}: {path}"
    if or_run_as_owner:
        fix += f", or run gcd as {_user(status.st_uid)}"
    return Finding(
        path,
        f"is owned by {_user(status.st_uid)}, neither root nor the user gcd runs as "
        f"({_user(os.geteuid())})",
        fix,
    )


def mode_finding(path: str, status: os.stat_result, *, sticky_ok: bool) -> Finding | None:
    mode = status.st_mode
    group, others = bool(mode & stat.S_IWGRP), bool(mode & stat.S_IWOTH)
    if not (group or others) or (sticky_ok and mode & stat.S_ISVTX):
        return None
    writers = "its group and others" if group and others else "its group" if group else "others"
    return Finding(
        path,
        f"is writable by {writers} (mode {stat.S_IMODE(mode):04o}, owner {_user(status.st_uid)})",
        f"chmod go-w {path}",
    )


def path_findings(path: Path) -> tuple[list[Finding], os.stat_result | None]:
    """What is wrong with the entries the kernel passes through to resolve `path` (directories
    and symlinks; not the entry it resolves to), and that entry's lstat: None when it is
    missing or cannot be looked up, for the open that follows to report."""
    pending = deque(os.path.join(os.getcwd(), path).split("/"))
    current, current_status = "/", os.lstat("/")
    passed: dict[str, os.stat_result] = {}
    links = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":  # `current` is physical (no links in it), so its parent is too
            current = os.path.dirname(current)
            current_status = os.lstat(current)
            continue
        passed.setdefault(current, current_status)
        candidate = os.path.join(current, part)
        try:
            status = os.lstat(candidate)
        except OSError:
            return _passed_findings(passed), None
        if stat.S_ISLNK(status.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                return _passed_findings(passed), None
            passed.setdefault(candidate, status)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current, current_status = "/", os.lstat("/")
            pending.extendleft(reversed(target.split("/")))
            continue
        current, current_status = candidate, status
    return _passed_findings(passed), current_status


def _passed_findings(passed: dict[str, os.stat_result]) -> list[Finding]:
    findings: list[Finding] = []
    for path, status in passed.items():
        findings += filter(None, [owner_finding(path, status, "root")])
        if not stat.S_ISLNK(status.st_mode):  # a link's own mode is always 0777 and unused
            findings += filter(None, [mode_finding(path, status, sticky_ok=True)])
    return findings


def enforce(findings: list[Finding], subject: str, why: str, error: type[GcdError]) -> None:
    """Refuse `subject` with `error` naming every finding, or under the override log each as a
    warning (`insecure_permissions_allowed`) and carry on."""
    if not findings:
        return
    if insecure_permissions_allowed():
        import structlog  # noqa: PLC0415 (not imported by commands that never log: gcd.logs)

        log = structlog.get_logger("gcd.permissions")
        for finding in findings:
            log.warning(
                "insecure_permissions_allowed",
                subject=subject,
                path=finding.path,
                problem=finding.problem,
                fix=finding.fix,
            )
        return
    raise error(
        f"refusing {subject}, because {why}: "
        + "; ".join(str(finding) for finding in findings)
        + f" (or, if you know why, override with {OVERRIDE_OPTION} or {OVERRIDE_ENV}=1)"
    )
