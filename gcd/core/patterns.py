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


def _cut(text: str, limit: int = 80) -> str:
    """A bounded excerpt for messages: RE2 quotes the whole expression in its reason."""
    return text if len(text) <= limit else f"{text[:limit]}…({len(text)} characters)"


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
        raise PatternError(f"invalid pattern {_cut(text)!r}: {_cut(str(reason), 120)}") from None


MEMO_LIMIT = 16_384
"""Answers a pattern remembers per generation: a plan asks the same few thousand references
every cycle, and one RE2 match through its Python binding costs ~10 µs. Two generations
(`_Memo`) so tags that left the host are forgotten: at most 2 × this many per pattern."""


@dataclass(slots=True)
class _Memo:
    """Recent answers, and the generation before (`Pattern.matches` reads both): a hit in
    the old one moves to the recent one; a full recent generation becomes the old one, and
    the old one is dropped."""

    recent: dict[Reference, bool] = field(default_factory=dict)
    old: dict[Reference, bool] = field(default_factory=dict)

    def put(self, reference: Reference, answer: bool) -> None:
        if len(self.recent) >= MEMO_LIMIT:
            self.old, self.recent = self.recent, {}
        self.recent[reference] = answer


@dataclass(frozen=True, slots=True)
class Pattern:
    """One pattern as written in the policy, compiled once."""

    text: str
    _compiled: Any = field(compare=False, repr=False, default=None)
    _memo: _Memo = field(compare=False, repr=False, default_factory=_Memo)

    @classmethod
    def compile(cls, text: str) -> Pattern:
        return cls(text, _compile(text, lambda glob: _glob_to_regex(_normalise_glob(glob))))

    def matches(self, reference: Reference) -> bool:
        memo = self._memo
        known = memo.recent.get(reference)
        if known is None:
            known = memo.old.get(reference)
            if known is None:
                known = self._compiled.match(str(reference)) is not None
            memo.put(reference, known)
        return known


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


# What can appear in a normalised reference (Docker's grammar: registry host and port, a
# lower-case path, a tag of word characters, dots and dashes, a digest) and in the name of a
# container or volume (`[a-zA-Z0-9][a-zA-Z0-9_.-]*`, Docker's and Podman's rule). A glob with a
# literal character outside these can never match, and neither can a path component or tag
# that starts with a dot or a dash.
_REFERENCE_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:@+"
)
_NAME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_WILDCARDS = frozenset("*?")


def _foreign(glob: str, allowed: frozenset[str], what: str) -> str | None:
    bad = sorted({char for char in glob if char not in allowed and char not in _WILDCARDS})
    if not bad:
        return None
    shown = " ".join(repr(char) for char in bad[:5])
    regexish = any(char in "^$\\()[]{}|" for char in bad)
    hint = (
        "; it looks like a regular expression: write it as regex:…" if regexish else "; remove them"
    )
    return f"no {what} contains {shown}{hint}"


def _looks_like_regex(segment: str) -> str:
    if segment.startswith(".*") or segment.startswith(".+"):
        return (
            f"{segment[:2]} is regular-expression syntax: in a glob * alone is any run of "
            "characters; write * (or regex:… for a regular expression)"
        )
    return f"no path component or tag starts with {segment[0]!r}"


def _reference_never_matches(glob: str) -> str | None:
    foreign = _foreign(glob, _REFERENCE_CHARACTERS, "image reference")
    if foreign is not None:
        return foreign
    name, at, _digest = glob.partition("@")
    last = name.rsplit("/", 1)[-1]
    if not at and not (set(last) & {":", "*", "?"}):
        return (
            "a reference always has a tag or a digest and this pattern names neither; "
            f"write {glob}:* for any tag"
        )
    head, sep, tag = name.rpartition(":")
    if not sep or "/" in tag:  # that colon was a registry port
        head, tag = name, ""
    for segment in (*head.split("/"), tag):
        if segment[:1] in {".", "-"}:
            return _looks_like_regex(segment)
    first, slash, rest = head.partition("/")
    if glob.startswith("**"):
        path = head.rsplit("/", 1)[-1]  # `**` may stand for the registry: judge the last part
    elif slash and is_registry(first):
        path = rest
    else:
        path = head
    if path != path.lower():
        fixed = glob.replace(path, path.lower(), 1)
        return f"repository names are lower case in Docker references; write {fixed}"
    return None


def _name_never_matches(glob: str) -> str | None:
    foreign = _foreign(glob, _NAME_CHARACTERS, "container or volume name")
    if foreign is not None:
        return foreign
    if glob[0] in "._-":
        if glob.startswith((".*", ".+")):
            return _looks_like_regex(glob)
        return f"container and volume names start with a letter or digit, not {glob[0]!r}"
    return None


def never_matches(text: str, *, reference: bool) -> str | None:
    """Why a valid pattern can match no reference (`reference=True`) or no container or volume
    name that can exist, with the fix; None when it can match something. Only what is certain
    is said: a regex is judged only when empty."""
    if text.startswith(REGEX_PREFIX):
        if not text[len(REGEX_PREFIX) :].strip():
            what = "reference" if reference else "name"
            return f"an empty regex matches only the empty text, and no {what} is empty"
        return None
    if not text:
        return None  # refused by compile
    return _reference_never_matches(text) if reference else _name_never_matches(text)
