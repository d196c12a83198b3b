"""Reference patterns: globs on full normalised references, or anchored RE2 regexes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import re2

from gcd.core.references import DEFAULT_REGISTRY, Reference, is_registry
from gcd.errors import PatternError

REGEX_PREFIX = "regex:"
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the error is reported to the user, not to stderr by RE2


def _normalise_glob(glob: str) -> str:
    """Give a glob the same defaults as a reference: `alpine:*` → `docker.io/library/alpine:*`."""
    first, sep, _rest = glob.partition("/")
    if first.startswith("**"):
        return glob
    if sep and is_registry(first):
        return glob
    if not sep:
        return f"{DEFAULT_REGISTRY}/library/{glob}"
    return f"{DEFAULT_REGISTRY}/{glob}"


def _glob_to_regex(glob: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        else:
            out.append(re2.escape(char))
        i += 1
    return "".join(out)


@dataclass(frozen=True, slots=True)
class Pattern:
    """One pattern as written in the policy, compiled once."""

    text: str
    _compiled: Any = field(compare=False, repr=False, default=None)

    @classmethod
    def compile(cls, text: str) -> Pattern:
        if not text:
            raise PatternError("empty pattern")
        if text.startswith(REGEX_PREFIX):
            source = text[len(REGEX_PREFIX) :]
        else:
            source = _glob_to_regex(_normalise_glob(text))
        try:
            compiled = re2.compile(f"^(?:{source})$", _OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else exc
            if isinstance(reason, bytes):
                reason = reason.decode(errors="replace")
            raise PatternError(f"invalid pattern {text!r}: {reason}") from None
        return cls(text, compiled)

    def matches(self, reference: Reference) -> bool:
        return self._compiled.match(str(reference)) is not None
