"""Containers, volumes and networks made on the suite's engine for the kinds' tests, and what
the engine says of them afterwards. Free of pytest, like the harness.

Containers run without network unless given one (the engines run with `--bridge=none`).
On Podman a container that *ran* on a user network cannot be removed afterwards (the suite's
Podman has no aardvark-dns: "netavark: remove aardvark entries"), so tests attach only
never-started containers to networks there."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import docker


def make_container(
    api: docker.APIClient,
    image: str,
    command: str,
    *,
    name: str,
    start: bool = True,
    binds: dict[str, Mapping[str, str]] | None = None,
    anonymous: tuple[str, ...] = (),
    labels: dict[str, str] | None = None,
    restart: str | None = None,
    network: str = "none",
) -> str:
    """A container of `image` running `sh -c command`; started and waited for (it must exit)
    unless `start` is false."""
    host_config = api.create_host_config(
        network_mode=network,
        binds=binds,
        restart_policy={"Name": restart} if restart else None,
    )
    created = api.create_container(
        image,
        command=["sh", "-c", command],
        name=name,
        labels=labels,
        volumes=[*anonymous, *(b["bind"] for b in (binds or {}).values())] or None,
        host_config=host_config,
    )
    container_id = str(created["Id"])
    if start:
        api.start(container_id)
        api.wait(container_id, timeout=60)
    return container_id


def container_names(api: docker.APIClient) -> set[str]:
    return {str(c["Names"][0]).lstrip("/") for c in api.containers(all=True)}


def volume_names(api: docker.APIClient) -> set[str]:
    return {str(v["Name"]) for v in api.volumes().get("Volumes") or ()}


def anonymous_volume_of(api: docker.APIClient, container_id: str, target: str = "/anon") -> str:
    """The name of the volume the engine made for the container's `target`."""
    mounts: list[dict[str, Any]] = api.inspect_container(container_id)["Mounts"]
    (found,) = (m["Name"] for m in mounts if m.get("Destination") == target)
    return str(found)


def make_network(api: docker.APIClient, made: list[str], stem: str) -> str:
    """A user network `stem-<random>`, its name appended to `made` for the cleanup."""
    name = f"{stem}-{secrets.token_hex(3)}"
    # A plain bridge network works on an engine started with --bridge=none and
    # --iptables=false (Docker 20.10 and 26; Podman's default driver is its bridge).
    api.create_network(name, driver="bridge", labels={"gcd.test": "1"})
    made.append(name)
    return name


def remove_all(api: docker.APIClient, networks: Iterable[str] = ()) -> None:
    """Every container (running ones killed first: Podman's forced remove waits 10 s for
    PID 1) and volume of the engine, and the user networks named."""
    for listed in api.containers(all=True):
        if listed["State"] == "running":
            with contextlib.suppress(docker.errors.APIError):  # it may have exited since
                api.kill(listed["Id"])
        api.remove_container(listed["Id"], force=True)
    for name in volume_names(api):
        api.remove_volume(name)
    for name in networks:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(name)
