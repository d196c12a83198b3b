"""A build host crafted offline: docker-save tarballs of images with exact `created` dates,
shared layers and several tags, loaded with `POST /images/load`, and containers created (not
started) from some of them. Nothing is pulled or built. The images are those
tests/integration/images.py crafts (one format, one copy); loads and creates go through the
bench's own connections, several at a time.
"""

from __future__ import annotations

import json
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.engine import UnixConnection, socket_path
from tests.integration.images import ImageSpec, archive, image, image_id, layer, runnable_layer

__all__ = ["Host", "ImageSpec", "build_host", "call", "image", "layer", "load", "runnable_layer"]

LOAD_BATCH = 500


def call(host: str, method: str, path: str, body: bytes | None = None) -> Any:
    """One request on a fresh connection; the decoded JSON answer (None when empty)."""
    connection = UnixConnection(socket_path(host))
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    if response.status >= 400:
        raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
    return json.loads(data) if data.strip().startswith((b"{", b"[")) else None


def load(host: str, specs: list[ImageSpec]) -> None:
    """`POST /images/load` in batches; the stream's end is the load's end."""
    for start in range(0, len(specs), LOAD_BATCH):
        connection = UnixConnection(socket_path(host))
        try:
            connection.request(
                "POST",
                "/images/load?quiet=1",
                body=archive(*specs[start : start + LOAD_BATCH]),
                headers={"Content-Type": "application/x-tar"},
            )
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            connection.close()
        if response.status != 200 or '"error"' in text:
            raise RuntimeError(f"docker load failed: {response.status} {text[-300:]}")


@dataclass(frozen=True)
class Host:
    """What `build_host` made: the kept images (tagged `bench/keep/...`, recent), the
    containers created from some of them, and the victims a deletion round loads."""

    kept: list[ImageSpec]
    containers: int
    victims: list[ImageSpec]


def kept_images(count: int, now: datetime) -> list[ImageSpec]:
    """`count` images as a build farm leaves them: a few bases shared by many, one own
    layer each, one to three tags, created in the last hours (so `prune --filter until=`
    leaves them alone)."""
    bases = [layer(8192, f"base-{n}") for n in range(8)]
    tools = [layer(2048, f"tools-{n}") for n in range(40)]
    specs = []
    for n in range(count):
        repo = f"bench/keep/svc{n % 60}"
        tags = tuple(f"{repo}:{t}" for t in (f"b{n}", "latest", f"r{n // 3}")[: 1 + n % 3])
        # `latest` and `r…` move between images: later loads take them, older images keep b….
        own = layer(512, f"keep-{n}")
        specs.append(
            image(
                bases[n % 8],
                tools[n % 40],
                own,
                tags=tags,
                created=now - timedelta(minutes=count - n),
            )
        )
    return specs


def victim_images(count: int, now: datetime) -> list[ImageSpec]:
    """`count` old images sharing the kept images' bases: four of five with one tag, every
    fifth dangling (no tag). Both gcd's bench policy and `prune -a --filter until=720h` delete
    exactly these."""
    bases = [layer(8192, f"base-{n}") for n in range(8)]
    specs = []
    for n in range(count):
        tags = () if n % 5 == 4 else (f"bench/old/job{n % 40}:run{n}",)
        own = layer(768, f"old-{n}")
        specs.append(
            image(bases[n % 8], own, tags=tags, created=now - timedelta(days=60, minutes=n))
        )
    return specs


def create_containers(host: str, specs: list[ImageSpec], count: int) -> None:
    """`count` created (never started) containers, each from one of `specs`' images: in use,
    so gcd and `prune` keep those images; labels and names as CI leaves them."""

    def create(n: int) -> None:
        spec = specs[(n * 7) % len(specs)]
        body = json.dumps(
            {"Image": image_id(spec), "Cmd": ["sh"], "Labels": {"ci.job": str(n)}}
        ).encode()
        call(
            host, "POST", "/containers/create?" + urllib.parse.urlencode({"name": f"job-{n}"}), body
        )

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(create, range(count)))


def build_host(host: str, images: int, containers: int, victims: int) -> Host:
    now = datetime.now(UTC)
    kept = kept_images(images, now)
    load(host, kept)
    create_containers(host, kept, containers)
    return Host(kept, containers, victim_images(victims, now))
