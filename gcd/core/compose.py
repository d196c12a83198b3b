"""What the Compose files of an `images.keep[i].compose` rule name, as the core judges it. Pure.

The files are read in the shell (`gcd.config.stacks`, once per cycle); the core receives the
outcome as values: each service's image as an exact reference when gcd could work it out, or
as a *shape* when it could not (a variable with no value: `registry.example.com/app:${TAG}`
keeps every tag of that repository), and each file that could not be read as a shape that
matches every reference (fail closed: gcd cannot tell what a broken file names, so it keeps
every image that has a name, tagged or pinned by digest).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import re2

from gcd.core.references import Reference

_OPTIONS = re2.Options()


@dataclass(frozen=True, slots=True)
class ComposeName:
    """An image one service of one file names, or all a broken file could name."""

    file: str
    service: str | None
    """None: the whole file (it could not be read)."""
    reference: Reference | None = None
    """Exact, when gcd could work it out."""
    shape: tuple[str, ...] = ()
    """Otherwise the known text between the unknown parts: ("registry/app:", "") is
    `registry/app:*`; ("", "") matches any reference."""
    why: str | None = None
    """Why the name is not exact: which variable has no value, why the file failed."""

    def matches(self, reference: Reference) -> bool:
        if self.reference is not None:
            return _same(self.reference, reference)
        compiled = _compiled(self.shape)
        return any(compiled.match(form) for form in _forms(reference))

    def describe(self) -> str:
        where = self.file if self.service is None else f"service {self.service} in {self.file}"
        if self.reference is not None:
            return f"named by {where}"
        if self.service is None:
            return f"{self.file} cannot be read ({self.why}): kept as any image it could name"
        text = "*".join(self.shape)
        return f"{where} names {text} ({self.why}): kept as any image that could be"


ANY = ("", "")
"""The shape of a name that could be any reference."""


@functools.lru_cache(maxsize=1024)
def _compiled(shape: tuple[str, ...]) -> Any:
    return re2.compile("^(?:" + ".*".join(re2.escape(part) for part in shape) + ")$", _OPTIONS)


def _same(named: Reference, reference: Reference) -> bool:
    """`image: app:1@sha256:…` is the digest; `image: app` is `app:latest`."""
    if named.repository != reference.repository:
        return False
    if named.digest is not None:
        return reference.digest == named.digest
    return reference.tag == (named.tag or "latest")


def _forms(reference: Reference) -> tuple[str, ...]:
    """How a Compose file may spell the reference: in full or familiar, `:latest` or not."""
    forms = {str(reference), reference.familiar}
    if reference.tag == "latest" and reference.digest is None:
        forms |= {form.removesuffix(":latest") for form in tuple(forms)}
    return tuple(sorted(forms))


@dataclass(frozen=True, slots=True)
class ComposeFailure:
    """A file (or a glob) that gcd could not read as Compose, and why."""

    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class ComposeImages:
    """One compose rule's globs, resolved at one moment."""

    names: tuple[ComposeName, ...] = ()
    files: tuple[str, ...] = ()
    """The files read whole."""
    failures: tuple[ComposeFailure, ...] = ()
    """The files that failed: each also has a whole-file name in `names`."""
    unmatched_globs: tuple[str, ...] = ()
    """Globs that matched no file: not fail-closed (nothing to read), but warned about."""

    def naming(self, reference: Reference) -> ComposeName | None:
        """The first name that matches: exact names first, so the detail is the precise one."""
        ordered = sorted(self.names, key=lambda n: n.reference is None)
        return next((name for name in ordered if name.matches(reference)), None)


UNRESOLVED = ComposeImages(
    names=(
        ComposeName("(compose files not read)", None, shape=ANY, why="not read in this evaluation"),
    ),
    failures=(ComposeFailure("(compose files not read)", "not read in this evaluation"),),
)
"""A compose rule evaluated without its files read: keeps every named image (fail closed)."""
