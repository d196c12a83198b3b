"""The Engine API requests of networks and of the build cache, mixed into `Engine`."""

from __future__ import annotations

import re
from typing import Any

from gcd.engine.answers import Shape, check
from gcd.engine.api import RemoveResult, RemoveStatus
from gcd.engine.calls import EngineCalls
from gcd.engine.timeouts import Wait
from gcd.engine.versions import version_key

__all__ = ["NetworkAndCacheCalls"]

_NETWORK_IN_USE = ("has active endpoints", "network is being used")
"""Refusals to remove a network something uses: Docker's 403 (20.10, 26) for a running
endpoint, Podman 5's 500 for any container attached."""
_BUILD_CACHE_ID = re.compile(r"[A-Za-z0-9]{8,128}")
"""A BuildKit record id (25 base-36 characters today): nothing a regular expression reads."""


class NetworkAndCacheCalls(EngineCalls):
    """`GET /networks`, `GET`/`DELETE /networks/{id}`, the build cache's `GET /system/df`
    and `POST /build/prune`; `Engine` provides `client` and `api_version`."""

    @property
    def api_version(self) -> str:
        raise NotImplementedError

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
        if version_key(self.api_version) < version_key("1.42"):
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
