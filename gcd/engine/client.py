"""A typed facade over `docker.APIClient`: one method per request gcd makes (those of
networks and the build cache in `network_cache_calls.py`; the API version in `versions.py`).

How each request is sent, bounded, translated into gcd's own outcomes and errors, and its
answer checked, is `calls.py`; with `transport.py` these are the only modules that import
docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import docker
import docker.errors
import requests.exceptions

from gcd.engine.answers import Shape, check
from gcd.engine.api import RemoveResult, RemoveStatus
from gcd.engine.calls import CheckedEvents, unreachable
from gcd.engine.hosts import parse_host
from gcd.engine.network_cache_calls import NetworkAndCacheCalls
from gcd.engine.timeouts import Timeouts, Wait
from gcd.engine.transport import SdkClient, Strikes, is_no_answer, waiting
from gcd.engine.versions import (
    DF_TYPES_SINCE,
    MAX_API_VERSION,
    MIN_API_VERSION,
    is_podman,
    negotiate_api_version,
    version_key,
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


def _full_id(name: str) -> bool:
    return name.startswith("sha256:") and len(name) == 71


class Engine(NetworkAndCacheCalls):
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
        if version_key(self.api_version) < version_key(DF_TYPES_SINCE):
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
