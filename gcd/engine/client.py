"""A typed facade over `docker.APIClient`: one method per request gcd makes.

How each request is sent, bounded, translated into gcd's own outcomes and errors, and its
answer checked, is `calls.py`; with `transport.py` these are the only modules that import
docker.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions

from gcd.engine.answers import Shape, check
from gcd.engine.api import RemoveResult, RemoveStatus
from gcd.engine.calls import CheckedEvents, EngineCalls, unreachable
from gcd.engine.hosts import parse_host
from gcd.engine.timeouts import Timeouts, Wait
from gcd.engine.transport import SdkClient, Strikes, is_no_answer, waiting
from gcd.errors import (
    EngineError,
)

__all__ = [
    "MAX_API_VERSION",
    "MIN_API_VERSION",
    "Engine",
    "RemoveResult",
    "RemoveStatus",
    "is_podman",
    "negotiate_api_version",
]

MAX_API_VERSION = "1.45"
"""The newest Engine API version gcd speaks (Docker 26.1). A newer engine is asked in this
version, as the Docker CLI negotiates: API 1.52 drops `df` and event fields gcd reads."""
MIN_API_VERSION = "1.41"
"""Docker 20.10 and Podman 5's compatible API."""
DF_TYPES_SINCE = "1.42"
"""`GET /system/df?type=…` computes only the parts asked for (Docker 23)."""


_NETWORK_IN_USE = ("has active endpoints", "network is being used")
"""Refusals to remove a network something uses: Docker's 403 (20.10, 26) for a running
endpoint, Podman 5's 500 for any container attached."""
_BUILD_CACHE_ID = re.compile(r"[A-Za-z0-9]{8,128}")
"""A BuildKit record id (25 base-36 characters today): nothing a regular expression reads."""


def _version_key(version: str) -> tuple[int, ...]:
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
    if _version_key(offered) < _version_key(MIN_API_VERSION):
        raise EngineError(
            f"the engine speaks Engine API {offered}; gcd needs {MIN_API_VERSION} or newer "
            "(Docker 20.10, Podman 4)"
        )
    return min(offered, MAX_API_VERSION, key=_version_key)


def _full_id(name: str) -> bool:
    return name.startswith("sha256:") and len(name) == 71


def is_podman(server: Mapping[str, Any]) -> bool:
    """`GET /version` of Podman's service names a component "Podman Engine"."""
    components = server.get("Components")
    return isinstance(components, list) and any(
        isinstance(c, dict) and c.get("Name") == "Podman Engine" for c in components
    )


class Engine(EngineCalls):
    """A Docker engine, implementing `gcd.engine.api.EngineApi`. Methods return parsed JSON
    of the Engine API, checked against its shape (`answers.py`); records are made in
    `snapshot.py`. The client is created lazily: constructing an Engine checks the address
    (`hosts.parse_host`, a `UsageError` for a malformed one) and never connects.

    Each request is bounded by its kind's timeout (`timeouts.py`, `GCD_ENGINE_TIMEOUTS`), and
    unanswered ones are strikes: at `give_up_after` in a row of one kind every call raises
    `EngineDownError` without a request, until `new_run` or an answered `ping`."""

    removal_workers = 4
    """Image deletions the executor keeps in flight at once (engine-facts §7)."""

    def __init__(self, host: str | None = None, timeouts: Timeouts | None = None) -> None:
        self.host = parse_host(host, os.environ.get("DOCKER_HOST"))
        self.timeouts = Timeouts.from_environment() if timeouts is None else timeouts
        self._strikes = Strikes(self.timeouts)
        self._client: SdkClient | None = None
        self._podman = False

    @property
    def client(self) -> docker.APIClient:
        """The SDK client, created on first use in the negotiated API version."""
        if self._client is None:
            self._strikes.check()
            default = int(self.timeouts.read) or 1  # the pool's; each request sets its own
            try:
                client = SdkClient(base_url=self.host, version=MAX_API_VERSION, timeout=default)
                try:
                    with waiting(self.timeouts.seconds(Wait.PROBE)):
                        server = check("GET /version", Shape.VERSION, client.version(False))
                    client.speak(negotiate_api_version(server))
                except BaseException:
                    client.close()
                    raise
                self._podman = is_podman(server)
                self._client = client
            except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
                if isinstance(exc, requests.exceptions.RequestException) and is_no_answer(exc):
                    raise self._strikes.missed("GET /version", exc, self.timeouts.probe) from exc
                raise unreachable(self.host, exc) from exc
        return self._client

    def new_run(self) -> None:
        """Forget the strikes of an earlier run: a daemon's next cycle tries the engine
        afresh."""
        self._strikes.clear()

    @property
    def down(self) -> str | None:
        """Why gcd gave up on the engine in this run, or None."""
        return self._strikes.down

    @property
    def podman(self) -> bool:
        """The engine is Podman's Docker-compatible service (its `force` removes containers)."""
        _ = self.client
        return self._podman

    @property
    def api_version(self) -> str:
        """The Engine API version spoken with this engine (negotiated on first use)."""
        return str(self.client.api_version)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET /info", Wait.PROBE, Shape.INFO, self.client.info)
        return result

    def version(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "GET /version", Wait.PROBE, Shape.VERSION, self.client.version
        )
        return result

    def ping(self) -> bool:
        """`GET /_ping`, sent even when gcd gave up on the engine: an answer clears the
        strikes (the engine is back)."""
        self._strikes.clear()
        return bool(self._call("GET /_ping", Wait.PROBE, None, self.client.ping))

    def list_images(self) -> list[dict[str, Any]]:
        """`GET /images/json?all=0`: top-level images, one call whatever their number."""
        result: list[dict[str, Any]] = self._call(
            "GET /images/json", Wait.READ, Shape.IMAGES, lambda: self.client.images(all=False)
        )
        return result

    def list_containers(
        self, *, sizes: bool = False, of_image: str | None = None
    ) -> list[dict[str, Any]]:
        """`GET /containers/json?all=1`: containers in every state, without sizes unless
        `sizes` (`size=1` walks every writable layer, as `GET /system/df` does); with
        `of_image` (a full id) only those of that image and its children (`ancestor`)."""
        filters = {"ancestor": of_image} if of_image else None
        result: list[dict[str, Any]] = self._call(
            "GET /containers/json",
            Wait.DISK_USAGE if sizes else Wait.READ,
            Shape.CONTAINERS,
            lambda: self.client.containers(all=True, size=sizes, filters=filters),
        )
        return result

    def system_df(self, *, images: bool = True) -> dict[str, Any]:
        """`GET /system/df`: expensive (walks every container layer and volume); never per
        tick, at most once per snapshot. From API 1.42 only the parts asked for are
        computed: containers, volumes and build cache, and the images' shared sizes and
        `LayersSize` only with `images`. API 1.41 (20.10, Podman) has no `type` and always
        computes everything (engine-facts.md §1.5)."""
        if _version_key(self.api_version) < _version_key(DF_TYPES_SINCE):
            result: dict[str, Any] = self._call(
                "GET /system/df", Wait.DISK_USAGE, Shape.DISK_USAGE, self.client.df
            )
            return result
        types = [*(["image"] if images else []), "container", "volume", "build-cache"]
        # The SDK's df() takes no parameters; its request helpers still bring the socket
        # adapter, the version prefix and the error mapping.
        client: Any = self.client
        return dict(
            self._call(
                "GET /system/df",
                Wait.DISK_USAGE,
                Shape.DISK_USAGE,
                lambda: client._result(
                    client._get(client._url("/system/df"), params={"type": types}), True
                ),
            )
        )

    def inspect_image(self, image: str) -> dict[str, Any] | None:
        """`GET /images/{id}/json`, or None when the image does not exist."""
        result: dict[str, Any] | None = self._call_or_none(
            "GET /images/{id}/json",
            f"GET /images/{image}/json",
            Shape.IMAGE,
            lambda: self.client.inspect_image(image),
        )
        return result

    def image_history(self, image: str) -> list[dict[str, Any]] | None:
        """`GET /images/{id}/history`, newest entry first, or None when the image does not
        exist. On a graphdriver engine each non-empty entry's `Size` is that layer's size."""
        result: list[dict[str, Any]] | None = self._call_or_none(
            "GET /images/{id}/history",
            f"GET /images/{image}/history",
            Shape.HISTORY,
            lambda: self.client.history(image),
        )
        return result

    def inspect_container(self, container: str) -> dict[str, Any] | None:
        """`GET /containers/{id}/json`, or None when the container does not exist."""
        result: dict[str, Any] | None = self._call_or_none(
            "GET /containers/{id}/json",
            f"GET /containers/{container}/json",
            Shape.CONTAINER,
            lambda: self.client.inspect_container(container),
        )
        return result

    def list_volumes(self) -> list[dict[str, Any]]:
        """`GET /volumes`: the `Volumes` list (the engine sends null for none)."""
        answer: dict[str, Any] = self._call(
            "GET /volumes", Wait.READ, Shape.VOLUMES, self.client.volumes
        )
        return list(answer.get("Volumes") or [])

    def inspect_volume(self, name: str) -> dict[str, Any] | None:
        """`GET /volumes/{name}`, or None when the volume does not exist."""
        result: dict[str, Any] | None = self._call_or_none(
            "GET /volumes/{name}",
            f"GET /volumes/{name}",
            Shape.VOLUME,
            lambda: self.client.inspect_volume(name),
        )
        return result

    def create_container(
        self, image_id: str, *, name: str, labels: Mapping[str, str], command: list[str] | None
    ) -> dict[str, Any]:
        """`POST /containers/create`, never started (`gcd hold`): no network (`none`), the
        image's own command unless `command` (an image without Cmd or Entrypoint needs one
        for the engine to accept the container; creating never runs it)."""
        client = self.client
        result: dict[str, Any] = self._call(
            "POST /containers/create",
            Wait.REMOVE,
            Shape.CREATED,
            lambda: client.create_container(
                image_id,
                command=command,
                name=name,
                labels=dict(labels),
                host_config=client.create_host_config(network_mode="none"),
            ),
        )
        return result

    def remove_container(self, container_id: str) -> RemoveResult:
        """`DELETE /containers/{id}?v=0&force=0`, classified like `remove_image`: a running
        container is a 409 (`CONFLICT`), never killed; its volumes stay, anonymous ones too,
        for the `volumes` section to judge (engine-facts.md §1.2)."""
        return self._removal(
            "DELETE /containers/{id}",
            lambda: self.client.remove_container(container_id, v=False, link=False, force=False),
        )

    def remove_volume(self, name: str) -> RemoveResult:
        """`DELETE /volumes/{name}` without force: a volume a container mounts, in any state,
        is a 409 "volume is in use" (`CONFLICT`). Never `POST /volumes/prune`, whose meaning
        changes with the API version (engine-facts.md §1.3)."""
        return self._removal(
            "DELETE /volumes/{name}", lambda: self.client.remove_volume(name, force=False)
        )

    def remove_image(self, name: str, *, force: bool = False) -> RemoveResult:
        """`DELETE /images/{name}`, classified, never raised (except when the engine is
        unreachable, which ends the run), with the engine's answer: what it untagged and
        deleted.

        `force` only by full id, and never on Podman, whose force removes the containers of
        the image: on Docker it lifts only the soft conflicts (other tags, stopped containers);
        a running container or a child image still refuses (engine-facts.md §1.1)."""
        if force and (not _full_id(name) or self.podman):
            raise ValueError(f"force is only for a full image id on Docker, not {name!r}")
        return self._removal(
            "DELETE /images/{id}",
            lambda: self.client.remove_image(name, force=force, noprune=False),
            shape=Shape.DELETED,
        )

    def untag_image_by_id(self, image_id: str, repository: str, tag: str) -> RemoveResult:
        """Podman only: `POST /libpod/images/{id}/untag?repo=&tag=` removes the name from
        *that* image and nothing else (a name that moved to another image is "not known" to
        this one). Docker has no such call. Both parameters are always sent: without them
        Podman removes every name."""
        if not (_full_id(image_id) and repository and tag):
            raise ValueError(f"untag needs a full id, a repository and a tag: {image_id!r}")
        # The SDK has no call for Podman's own API; its request helpers still bring the
        # socket adapter, the negotiated version prefix and the error mapping.
        client: Any = self.client

        def untag() -> None:
            url = client._url("/libpod/images/{0}/untag", image_id)
            client._raise_for_status(client._post(url, params={"repo": repository, "tag": tag}))

        result = self._removal("POST /libpod/images/{id}/untag", untag)
        if result.status is RemoveStatus.SERVER_ERROR and "tag not known" in result.message:
            return RemoveResult(RemoveStatus.NOT_FOUND, result.message)
        if result.status is RemoveStatus.REMOVED:
            return RemoveResult(RemoveStatus.REMOVED, untagged=(f"{repository}:{tag}",))
        return result

    def events(self, since: int | None = None, **filters: list[str]) -> Iterator[dict[str, Any]]:
        """`GET /events` as decoded dicts; ends silently when dockerd stops (reconnect)."""
        stream: Iterator[Any] = self._call(
            "GET /events",
            Wait.READ,
            None,
            lambda: self.client.events(since=since, filters=filters or None, decode=True),
        )
        return CheckedEvents(stream)

    # -- networks and build cache ------------------------------------------------------------

    def list_networks(self) -> list[dict[str, Any]]:
        """`GET /networks`. Its `Containers` is empty on Docker (only an inspect fills it)."""
        result: list[dict[str, Any]] = self._call(
            "GET /networks", Wait.READ, Shape.NETWORKS, self.client.networks
        )
        return result

    def inspect_network(self, network_id: str) -> dict[str, Any] | None:
        """`GET /networks/{id}` with its `Containers` (running endpoints only), or None when
        the network does not exist."""
        result: dict[str, Any] | None = self._call_or_none(
            "GET /networks/{id}",
            f"GET /networks/{network_id}",
            Shape.NETWORK,
            lambda: self.client.inspect_network(network_id),
        )
        return result

    def remove_network(self, network_id: str) -> RemoveResult:
        """`DELETE /networks/{id}`. A network in use is refused with 403 on Docker 20.10/26
        ("has active endpoints"), 500 on Podman 5 ("network is being used"), 409 elsewhere:
        each a `CONFLICT`. Docker checks running endpoints only: it removes a network a
        stopped container is attached to, which then cannot start, so the caller guards that
        itself."""
        result = self._removal(
            "DELETE /networks/{id}", lambda: self.client.remove_network(network_id)
        )
        in_use = any(text in result.message for text in _NETWORK_IN_USE)
        if result.status is RemoveStatus.SERVER_ERROR and in_use:
            return RemoveResult(RemoveStatus.CONFLICT, result.message)
        return result

    def build_cache_records(self) -> list[dict[str, Any]] | None:
        """`GET /system/df?type=build-cache`'s `BuildCache` (API 1.42+): the build cache
        alone, without walking container layers and volumes. None on API 1.41, where only a
        full `GET /system/df` lists it (engine-facts.md §1.5)."""
        if _version_key(self.api_version) < _version_key("1.42"):
            return None
        client: Any = self.client

        def read() -> Any:
            url = client._url("/system/df")
            return client._result(client._get(url, params={"type": "build-cache"}), True)

        body = self._call(
            "GET /system/df?type=build-cache", Wait.DISK_USAGE, Shape.DISK_USAGE, read
        )
        return list(body.get("BuildCache") or ())

    def prune_build_cache_record(self, record_id: str, *, keep_shared: bool = True) -> RemoveResult:
        """`POST /build/prune` for exactly one record, by its full id.

        BuildKit turns the `id` filter into a regular-expression match (`id~=<value>`), so the
        id is checked to be a plain full id and anchored (`^id$`, accepted by 20.10 and 26).
        BuildKit itself never prunes a record a build holds, nor one another record still
        references as its parent: it then deletes nothing.

        `keep_shared` sends `all=false`: BuildKit then also skips a record whose data an
        image shares, checked by the engine in this very request, and it skips the `internal`
        and `frontend` types whatever their state. `keep_shared=False` sends `all=true`, so
        that a record of those two types matches and only the id filter selects; the caller
        has to have checked that the record is not shared.

        No size parameter (`keep-storage` before API 1.48, `reserved-space`,
        `max-used-space`, `min-free-space` after): each is a limit the prune stops at, and a
        prune of one chosen record must not stop early, so the engine's defaults (no limit)
        are what is meant on every version; the budget is gcd's, record by record.

        `deleted` is the engine's `CachesDeleted`, `reclaimed_bytes` its `SpaceReclaimed`.
        A concurrent prune (any client's) is a 409 "a prune operation is already running":
        a `CONFLICT`."""
        if not _BUILD_CACHE_ID.fullmatch(record_id):
            raise ValueError(f"not a full build cache record id: {record_id!r}")
        # docker 7.2's `prune_builds` sends any filters and `all`, with the SDK's socket,
        # version prefix and error mapping; its type stubs know only `dangling` and `until`.
        client: Any = self.client
        answer: dict[str, Any] = {}

        def prune() -> None:
            filters = {"id": [f"^{record_id}$"]}
            body = check(
                "POST /build/prune",
                Shape.PRUNED,
                client.prune_builds(filters=filters, all=not keep_shared),
            )
            answer.update(body or {})

        result = self._removal("POST /build/prune", prune, wait=Wait.PRUNE)
        if result.status is not RemoveStatus.REMOVED:
            return result
        deleted = tuple(str(i) for i in answer.get("CachesDeleted") or () if i)
        reclaimed = answer.get("SpaceReclaimed")
        return RemoveResult(
            RemoveStatus.REMOVED,
            deleted=deleted,
            reclaimed_bytes=int(reclaimed) if isinstance(reclaimed, int) else 0,
        )
