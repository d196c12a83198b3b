"""Which engine and image store gcd's state rows belong to (`gcd.host.state.Scope`).

From `GET /info`: `ID` names the engine (Docker 20.10 derives it from `/etc/docker/key.json`,
Docker 23 and later keep it in `<data root>/engine-id`); `Driver` and `DriverStatus` name the
store: the containerd image store reports `["driver-type", "io.containerd.snapshotter.v1"]`
and its snapshotter as the driver (`overlayfs`), a graphdriver its own name (`overlay2`).
The data root is part of the store too: a fresh data root is a fresh store, even under the
same engine ID. Podman's compatible API answers a new random `ID` on every call, so it is
keyed by its storage alone.

Examples: `Scope("G5RA:JQZA:…", "graphdriver/overlay2 /var/lib/docker")`,
`Scope("a9352c6d-…", "containerd/overlayfs /var/lib/docker")`,
`Scope("podman", "podman/overlay /var/lib/containers/storage")`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from gcd.engine.layers import is_containerd_store
from gcd.host.state import Scope


class _Engine(Protocol):
    """What this needs of an engine (`gcd.engine.client.Engine`, or any fake of it)."""

    @property
    def podman(self) -> bool: ...

    def info(self) -> dict[str, Any]: ...


def engine_scope(engine: _Engine, info: Mapping[str, Any] | None = None) -> Scope:
    """The scope of `engine`, from its `GET /info` (`info` when the caller has it already)."""
    answer = dict(engine.info() if info is None else info)
    driver = str(answer.get("Driver") or "unknown")
    root = str(answer.get("DockerRootDir") or "")
    if engine.podman:
        return Scope("podman", f"podman/{driver} {root}")
    family = "containerd" if is_containerd_store(answer) else "graphdriver"
    return Scope(str(answer.get("ID") or "unknown"), f"{family}/{driver} {root}")
