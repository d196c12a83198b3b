"""What gcd asks of an engine: the interface the executor, the snapshot, the layer sources and
the usage tracker are written against.

`gcd.engine.client.Engine` is the implementation that talks to a real engine through the
docker SDK; `tests/unit/fake_engine.py` is an in-memory one for unit tests. Methods return the
Engine API's parsed JSON (records are made in `snapshot.py`); a removal is answered with a
`RemoveResult`, never raised, except that an unreachable engine raises
`EngineUnreachableError` from any call. Other failures of the non-removal calls raise
`EngineError`. No I/O and no docker import here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from gcd.engine.timeouts import Timeouts

PODMAN_CONFLICTS = (
    "please force removal",
    "container state improper",
)
"""Podman 5 answers 500, not 409, to a delete by id of an image with several tags, and to a
delete of a running container without force ("… cannot be removed without force: container
state improper")."""


class RemoveStatus(StrEnum):
    REMOVED = "removed"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION_LOST = "connection_lost"
    """The connection broke after the request was sent, before the answer (a reset): the
    engine may have carried it out, so the kind re-inspects, as after a timeout."""


@dataclass(frozen=True, slots=True)
class RemoveResult:
    status: RemoveStatus
    message: str = ""
    untagged: tuple[str, ...] = ()
    """The references the engine says it removed (`Untagged` items, the engine's spelling)."""
    deleted: tuple[str, ...] = ()
    """The image and layer ids the engine says it deleted (`Deleted` items); for a build
    cache prune, the record ids (`CachesDeleted`)."""
    reclaimed_bytes: int | None = None
    """A prune's `SpaceReclaimed`: the engine's own count of bytes freed."""


def refused(status_code: int, message: str) -> RemoveResult:
    """An engine's error answer to a removal, classified: 404 is `NOT_FOUND`, 409 (and
    Podman's 500 "please force removal") a `CONFLICT`, anything else a `SERVER_ERROR`."""
    if status_code == 404:
        return RemoveResult(RemoveStatus.NOT_FOUND, message)
    podman_conflict = status_code == 500 and any(m in message for m in PODMAN_CONFLICTS)
    if status_code == 409 or podman_conflict:
        return RemoveResult(RemoveStatus.CONFLICT, message)
    return RemoveResult(RemoveStatus.SERVER_ERROR, message)


class EngineApi(Protocol):
    """A Docker-compatible engine, as gcd's engine-facing modules use it."""

    timeouts: Timeouts
    """Its bounds per kind of request, and the settle time of the orphan check."""

    @property
    def host(self) -> str:
        """Where the engine listens (`unix:///…`, `tcp://…`): the layer store reads the
        engine's databases only when it is local."""
        ...

    @property
    def podman(self) -> bool:
        """The engine is Podman's Docker-compatible service (its `force` removes containers)."""
        ...

    def info(self) -> dict[str, Any]:
        """`GET /info`."""
        ...

    def list_images(self) -> list[dict[str, Any]]:
        """`GET /images/json?all=0`: top-level images."""
        ...

    def list_containers(
        self, *, sizes: bool = False, of_image: str | None = None
    ) -> list[dict[str, Any]]:
        """`GET /containers/json?all=1`: containers in every state, without sizes unless
        `sizes` (`SizeRw`; as costly as the containers' part of `GET /system/df`). With
        `of_image` (a full id; Docker only, Podman's filter misses some) only the containers
        of that image or of its child images (`filters={"ancestor": [id]}`)."""
        ...

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        """`GET /images/{id}/json`, or None when the image does not exist."""
        ...

    def image_history(self, image: str) -> list[dict[str, Any]] | None:
        """`GET /images/{id}/history`, newest entry first, or None when the image does not
        exist."""
        ...

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        """`GET /containers/{id}/json`, or None when the container does not exist."""
        ...

    def remove_image(self, name: str, *, force: bool = False) -> RemoveResult:
        """`DELETE /images/{name}`, classified, with the engine's answer. `force` only by
        full id and never on Podman, whose force removes the containers of the image."""
        ...

    def untag_image_by_id(self, image_id: str, repository: str, tag: str) -> RemoveResult:
        """Podman only: remove the name `repository:tag` from the image `image_id` and from
        nothing else; `NOT_FOUND` when the name is not on that image."""
        ...

    def list_volumes(self) -> list[dict[str, Any]]:
        """`GET /volumes`: the `Volumes` list (never None)."""
        ...

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        """`GET /volumes/{name}`, or None when the volume does not exist."""
        ...

    def list_networks(self) -> list[dict[str, Any]]:
        """`GET /networks`."""
        ...

    def inspect_network(self, network_id: str) -> dict[str, Any] | None:
        """`GET /networks/{id}` (with its `Containers`), or None when it does not exist."""
        ...

    def system_df(self, *, images: bool = True) -> dict[str, Any]:
        """`GET /system/df`; from API 1.42 restricted to containers, volumes and build cache,
        plus the images' part (`LayersSize`, shared sizes) with `images`; API 1.41 always
        answers everything. Expensive: it walks every container layer and volume; at most
        once per cycle."""
        ...

    def remove_container(self, container_id: str) -> RemoveResult:
        """`DELETE /containers/{id}?v=0&force=0`: never force, never its volumes."""
        ...

    def remove_volume(self, name: str) -> RemoveResult:
        """`DELETE /volumes/{name}` without force; 409 when in use."""
        ...

    def remove_network(self, network_id: str) -> RemoveResult:
        """`DELETE /networks/{id}`; 403/409 when it has endpoints (a `CONFLICT`)."""
        ...

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        """`GET /system/df?type=build-cache`'s `BuildCache` list (API 1.42+), cheap beside a
        full `system_df`; None when the API version has no such call (1.41)."""
        ...

    def prune_build_cache_record(self, record_id: str, *, keep_shared: bool = True) -> RemoveResult:
        """`POST /build/prune` for the one record with this full id: `deleted` is the
        engine's `CachesDeleted`, `reclaimed_bytes` its `SpaceReclaimed`. `keep_shared`
        (`all=false`): the engine itself skips the record if an image shares its data, and
        always skips the `internal` and `frontend` types; False (`all=true`) for those."""
        ...

    def events(self, since: int | None = None, **filters: list[str]) -> Iterator[dict[str, Any]]:
        """`GET /events` as decoded dicts; the stream may end at any time (reconnect)."""
        ...
