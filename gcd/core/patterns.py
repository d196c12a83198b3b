"""Reference patterns: globs on full normalised references, or anchored RE2 regexes."""

from __future__ import annotations

from collections.abc import Callable
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


def _compile(text: str, glob_to_regex: Callable[[str], str]) -> Any:
    """`regex:…` as written, anything else as a glob, anchored at both ends; an invalid one
    is a `PatternError` naming the pattern, never a silent non-match."""
    if not text:
        raise PatternError("empty pattern")
    is_regex = text.startswith(REGEX_PREFIX)
    source = text[len(REGEX_PREFIX) :] if is_regex else glob_to_regex(text)
    try:
        return re2.compile(f"^(?:{source})$", _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        raise PatternError(f"invalid pattern {text!r}: {reason}") from None


@dataclass(frozen=True, slots=True)
class Pattern:
    """One pattern as written in the policy, compiled once."""

    text: str
    _compiled: Any = field(compare=False, repr=False, default=None)

    @classmethod
    def compile(cls, text: str) -> Pattern:
        return cls(text, _compile(text, lambda glob: _glob_to_regex(_normalise_glob(glob))))

    def matches(self, reference: Reference) -> bool:
        return self._compiled.match(str(reference)) is not None


def _name_glob_to_regex(glob: str) -> str:
    return "".join(
        ".*" if char == "*" else "." if char == "?" else re2.escape(char) for char in glob
    )


@dataclass(frozen=True, slots=True)
class NamePattern:
    """A pattern on plain names (containers, volumes): a glob where `*` is any run of
    characters and `?` one, or an anchored RE2 regex after `regex:`."""

    text: str
    _compiled: Any = field(compare=False, repr=False, default=None)

    @classmethod
    def compile(cls, text: str) -> NamePattern:
        return cls(text, _compile(text, _name_glob_to_regex))

    @property
    def literal_characters(self) -> int:
        """How many characters of a glob are not wildcards (a regex counts as none): an
        opt-in by name must name something, not match everything."""
        if self.text.startswith(REGEX_PREFIX):
            return 0
        return sum(1 for char in self.text if char not in "*?")

    def matches(self, name: str) -> bool:
        return self._compiled.match(name) is not None
