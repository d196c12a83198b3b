"""The error tree of gcd, each branch tied to a documented exit code.

GcdError
├── PolicyError            exit 2  the policy file is invalid (all problems at once)
├── InsecurePolicyError    exit 2  others could write the policy file or a directory above it
├── UsageError             exit 2  command-line misuse
│   └── UnknownImageError         gcd explain: no such image on the engine
├── WebConfigError         exit 2  the metrics web-config file (TLS, basic auth) is invalid
├── OutputError            exit 2  an output target (`--textfile DIR`) cannot be written: checked
│                                  before the first deletion, so nothing was deleted
├── EngineUnreachableError exit 3  the Docker engine cannot be reached
│   └── EngineNoAnswerError       a request timed out or lost its connection (a strike)
│       └── EngineDownError       strikes in a row: gcd gave up on the engine for this run
├── EngineError            exit 1  the engine answered something gcd cannot use
├── RunRefusedError        exit 4  the plan exceeds a safety limit; nothing was deleted
├── LockHeldError          exit 5  another gcd process is executing on this host
├── DiskError              exit 1  the watched filesystem cannot be measured (statvfs)
└── StateError             exit 1  the state directory cannot be read or written
    └── InsecureStateError exit 1  others could write it, or its lock or state file is a link
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    SOME_FAILED = 1
    BAD_POLICY_OR_USAGE = 2
    ENGINE_UNREACHABLE = 3
    RUN_REFUSED = 4
    LOCKED = 5


class GcdError(Exception):
    exit_code: ExitCode = ExitCode.SOME_FAILED


@dataclass(frozen=True, slots=True)
class PolicyProblem:
    """One problem in a policy file, located as precisely as the YAML allows."""

    file: str
    line: int
    column: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class PolicyError(GcdError):
    exit_code = ExitCode.BAD_POLICY_OR_USAGE

    def __init__(self, problems: list[PolicyProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class InsecurePolicyError(GcdError):
    """Someone besides root and gcd's own user could write the policy, or a directory through
    which its path is resolved: a policy means what it says only if only they can change it."""

    exit_code = ExitCode.BAD_POLICY_OR_USAGE


class PatternError(ValueError):
    """A glob or regex in a keep rule that cannot be compiled."""


class UsageError(GcdError):
    exit_code = ExitCode.BAD_POLICY_OR_USAGE


class UnknownImageError(UsageError):
    """`gcd explain` was given an image the engine does not have."""

    def __init__(self, given: str, images: int) -> None:
        super().__init__(
            f"no image {given!r} on the engine ({images} images): give a tag or digest "
            "reference (app:1, alpine@sha256:…) or an id or id prefix as docker images shows it"
        )


class WebConfigError(GcdError):
    """The web-config file for the metrics endpoint (TLS, basic auth) is invalid."""

    exit_code = ExitCode.BAD_POLICY_OR_USAGE


class OutputError(GcdError):
    """Where the run's results go cannot be written; found before anything was deleted."""

    exit_code = ExitCode.BAD_POLICY_OR_USAGE


class EngineUnreachableError(GcdError):
    exit_code = ExitCode.ENGINE_UNREACHABLE


class EngineNoAnswerError(EngineUnreachableError):
    """One request got no answer: it timed out, or its connection was lost before the answer
    (`gcd.engine.timeouts`). The snapshot ends on it; the executor counts it against the one
    object in progress and goes on, until the strikes make an `EngineDownError`."""

    def __init__(self, message: str, *, timed_out: bool) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class EngineDownError(EngineNoAnswerError):
    """Requests of one kind went unanswered `give_up_after` times in a row: the engine is
    marked down, no further request is sent in this run, the rest is `not_attempted`."""


class EngineError(GcdError):
    exit_code = ExitCode.SOME_FAILED


class RunRefusedError(GcdError):
    exit_code = ExitCode.RUN_REFUSED


class LockHeldError(GcdError):
    exit_code = ExitCode.LOCKED


class DiskError(GcdError):
    """The watched path (`schedule.disk.path`) cannot be measured."""

    exit_code = ExitCode.SOME_FAILED


class StateError(GcdError):
    exit_code = ExitCode.SOME_FAILED


class InsecureStateError(StateError):
    """The state directory could be written by others (who could plant links in it or rewrite
    the first-seen times that decide local age), or its lock or state file is not a regular
    file of its own (a symlink, hard link, FIFO or directory that gcd would write through)."""
