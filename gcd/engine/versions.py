"""Which Engine API version gcd speaks with an engine, and whether it is Podman's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gcd.errors import EngineError

__all__ = [
    "DF_TYPES_SINCE",
    "MAX_API_VERSION",
    "MIN_API_VERSION",
    "is_podman",
    "negotiate_api_version",
    "version_key",
]

MAX_API_VERSION = "1.45"
"""The newest Engine API version gcd speaks (Docker 26.1). A newer engine is asked in this
version, as the Docker CLI negotiates: API 1.52 drops `df` and event fields gcd reads."""
MIN_API_VERSION = "1.41"
"""Docker 20.10 and Podman 5's compatible API."""
DF_TYPES_SINCE = "1.42"
"""`GET /system/df?type=…` computes only the parts asked for (Docker 23)."""


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


def negotiate_api_version(server: Mapping[str, Any]) -> str:
    """The API version to speak with an engine whose `GET /version` is `server`: its own
    version, capped at `MAX_API_VERSION`; an engine older than `MIN_API_VERSION` is refused."""
    offered = str(server.get("ApiVersion") or "")
    if not offered:
        raise EngineError("GET /version gave no ApiVersion: is this a Docker-compatible engine?")
    if version_key(offered) < version_key(MIN_API_VERSION):
        raise EngineError(
            f"the engine speaks Engine API {offered}; gcd needs {MIN_API_VERSION} or newer "
            "(Docker 20.10, Podman 4)"
        )
    return min(offered, MAX_API_VERSION, key=version_key)


def is_podman(server: Mapping[str, Any]) -> bool:
    """`GET /version` of Podman's service names a component "Podman Engine"."""
    components = server.get("Components")
    return isinstance(components, list) and any(
        isinstance(c, dict) and c.get("Name") == "Podman Engine" for c in components
    )
