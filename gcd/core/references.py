"""Image references as the Docker daemon parses them: `alpine:3.19` is
`docker.io/library/alpine:3.19`. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_REGISTRY = "docker.io"
_LEGACY_REGISTRIES = frozenset({"index.docker.io", "registry-1.docker.io"})
_DIGEST = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")


class InvalidReferenceError(ValueError):
    """Text that is not a Docker image reference."""


def is_registry(component: str) -> bool:
    """Whether the first path component names a registry (Docker's rule: a dot, a port or
    `localhost`), as opposed to a Docker Hub user."""
    return "." in component or ":" in component or component == "localhost"


@dataclass(frozen=True, slots=True, order=True)
class Reference:
    """A normalised image reference: `alpine:3.19` is `docker.io/library/alpine:3.19`."""

    registry: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Registry and path, the unit `newest` ranks within."""
        return f"{self.registry}/{self.path}"

    def __str__(self) -> str:
        text = self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def familiar(self) -> str:
        """The short form `docker images` shows: `alpine:3.19`, `reg:5000/app:1`."""
        text = str(self)
        if self.registry == DEFAULT_REGISTRY:
            text = text.removeprefix(f"{DEFAULT_REGISTRY}/").removeprefix("library/")
        return text


def split_registry(name: str) -> tuple[str, str]:
    """Split `host:5000/team/app` into registry and path, applying Docker's defaults."""
    first, sep, rest = name.partition("/")
    if sep and is_registry(first):
        registry, path = first, rest
    else:
        registry, path = DEFAULT_REGISTRY, name
    if registry in _LEGACY_REGISTRIES:
        registry = DEFAULT_REGISTRY
    if registry == DEFAULT_REGISTRY and "/" not in path:
        path = f"library/{path}"
    return registry, path


def parse_reference(text: str) -> Reference:
    """Parse `[registry[:port]/]path[:tag][@digest]` the way the Docker daemon does."""
    raw = text.strip()
    if not raw or raw != text or " " in raw:
        raise InvalidReferenceError(f"not an image reference: {text!r}")
    name, _, digest = raw.partition("@")
    if digest and not _DIGEST.match(digest):
        raise InvalidReferenceError(f"invalid digest in {text!r}")
    tag: str | None = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not _TAG.match(tag):
            raise InvalidReferenceError(f"invalid tag in {text!r}")
    if not name or name.endswith("/") or "//" in name:
        raise InvalidReferenceError(f"invalid repository name in {text!r}")
    registry, path = split_registry(name)
    if path != path.lower():
        raise InvalidReferenceError(f"repository names must be lowercase: {text!r}")
    return Reference(registry, path, tag, digest or None)
