"""What one snapshot costs on a host with many containers and volumes.

Starts a private dockerd, loads one tiny crafted image (busybox), and creates N containers
from it through the API from a few threads: a share of them started with `--network none`
and a command that exits (`true`, or writing a small file into their volume), the rest only
created; and V volumes, half of them mounted by a container. Then times, in the same run:

- the reference: `GET /containers/json?all=1`, the one call gcd always needs;
- `GET /volumes`, `GET /containers/json?all=1&size=1` (the other way to get `SizeRw`) and
  `GET /system/df`, each alone;
- every container inspected, one at a time and `INSPECT_THREADS` at a time;
- a cold snapshot (`take_snapshot` with an empty inspect cache: one inspect per stopped
  container, as in every one-shot `gcd plan`) and a warm one (the cache filled, as in a
  daemon's later cycles).

Prints medians and their ratio to the reference; no absolute number is asserted anywhere.

    .venv/bin/python -m bench.snapshot_kinds [--containers 1000] [--volumes 200] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker

from bench.craft import image, load, runnable_layer
from bench.engine import bench_engine
from bench.timing import median_of
from gcd.config.loader import parse_policy
from gcd.core.budget import Pressure
from gcd.core.evaluate import evaluate
from gcd.engine.client import Engine
from gcd.engine.kinds.containers import INSPECT_THREADS, DetailsCache
from gcd.engine.layers import LayerStore
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from gcd.logs import configure_logging

TAG = "bench/run:1"
POLICY = """\
version: 1
images:
  keep: [{reference: ["bench/**"]}]
containers:
  keep: [{name: ["keep-*"]}]
  remove_exited_after: 2d
volumes:
  anonymous_unused_for: 7d
  named: ["bench-*"]
  named_unused_for: 14d
build_cache: {unused_for: 7d}
networks: {unused_for: 1d}
"""
THREADS = 6


class Clients:
    """One API client per thread: the SDK's session is not shared across threads."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._local = threading.local()
        self._all: list[docker.APIClient] = []
        self._lock = threading.Lock()

    def get(self) -> docker.APIClient:
        client: docker.APIClient | None = getattr(self._local, "client", None)
        if client is None:
            client = docker.APIClient(base_url=self.host, version="auto", timeout=300)
            self._local.client = client
            with self._lock:
                self._all.append(client)
        return client

    def close(self) -> None:
        for client in self._all:
            client.close()


def _container(clients: Clients, number: int, volume: str | None, start: bool) -> None:
    api = clients.get()
    command = "head -c 4096 /dev/zero > /data/f" if volume else "true"
    host_config = api.create_host_config(
        network_mode="none",
        binds={volume: {"bind": "/data", "mode": "rw"}} if volume else None,
    )
    created = api.create_container(
        TAG,
        command=["sh", "-c", command],
        name=f"bench-{number}",
        labels={"bench": "snapshot_kinds"},
        volumes=["/data"] if volume else None,
        host_config=host_config,
    )
    if start:
        api.start(created["Id"])
        api.wait(created["Id"], timeout=300)


def populate(clients: Clients, containers: int, volumes: int) -> None:
    """`containers` containers, 60 % of them run to exit; `volumes` volumes, the first half
    mounted (and written to) by one started container each."""
    load(clients.host, [image(runnable_layer(), tags=(TAG,), created=datetime.now(UTC))])
    names = [f"bench-vol-{n}" for n in range(volumes)]
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(lambda name: clients.get().create_volume(name), names))
        mounted = names[: volumes // 2]
        jobs: Iterable[Any] = pool.map(
            lambda n: _container(
                clients,
                n,
                mounted[n] if n < len(mounted) else None,
                start=n < len(mounted) or n % 5 < 3,
            ),
            range(containers),
        )
        list(jobs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--volumes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    configure_logging("console", "warning")
    with tempfile.TemporaryDirectory() as scratch, bench_engine() as private:
        clients = Clients(private.host)
        started = time.perf_counter()
        populate(clients, args.containers, args.volumes)
        setup = time.perf_counter() - started
        api = clients.get()
        engine = Engine(private.host)
        state_dir = Path(scratch) / "state"
        store = LayerStore()

        def snapshot(details: DetailsCache) -> None:
            take_snapshot(engine, State.load(state_dir), datetime.now(UTC), store, details=details)

        reference = median_of(args.repeat, lambda: api.containers(all=True))
        volumes = median_of(args.repeat, api.volumes)
        sized = median_of(args.repeat, lambda: api.containers(all=True, size=True))
        df = median_of(args.repeat, api.df)
        ids = [str(c["Id"]) for c in api.containers(all=True)]
        serial = median_of(args.repeat, lambda: [engine.inspect_container(i) for i in ids])

        def threaded() -> None:
            with ThreadPoolExecutor(INSPECT_THREADS) as pool:
                list(pool.map(engine.inspect_container, ids))

        parallel = median_of(args.repeat, threaded)
        cold = median_of(args.repeat, lambda: snapshot(DetailsCache()))
        warm_cache = DetailsCache()
        snapshot(warm_cache)
        warm = median_of(args.repeat, lambda: snapshot(warm_cache))
        taken = take_snapshot(
            engine, State.load(state_dir), datetime.now(UTC), store, details=warm_cache
        )
        policy = parse_policy(POLICY, "bench.yaml")
        later = datetime.now(UTC) + timedelta(days=30)
        decide = median_of(args.repeat, lambda: evaluate(taken, policy, later))
        full = Pressure(99, 100, 1, 100, high=0.8, low=0.01, critical=0.95)
        under_pressure = median_of(args.repeat, lambda: evaluate(taken, policy, later, full))
        listed = api.containers(all=True)
        stopped = sum(c["State"] != "running" for c in listed)
        print(f"engine: Docker {api.version()['Version']} (API {engine.api_version})")
        print(
            f"containers: {len(listed)} ({stopped} not running), "
            f"volumes: {len(api.volumes()['Volumes'])}; set up in {setup:.0f} s"
        )
        rows = [
            ("GET /containers/json?all=1 (reference)", reference),
            ("GET /volumes", volumes),
            ("GET /containers/json?all=1&size=1", sized),
            ("GET /system/df", df),
            ("every container inspected, one at a time", serial),
            (f"every container inspected, {INSPECT_THREADS} at a time", parallel),
            ("snapshot, cold (one inspect each)", cold),
            ("snapshot, warm (inspects cached)", warm),
            ("evaluate, every kind", decide),
            ("evaluate, every kind, disk full (all soft keeps)", under_pressure),
            ("plan, cold: snapshot + evaluate", cold + decide),
            ("plan, warm: snapshot + evaluate", warm + decide),
        ]
        for label, seconds in rows:
            print(f"{label:<42} {seconds * 1000:9.1f} ms  {seconds / reference:7.1f}x")
        clients.close()
        engine.close()


if __name__ == "__main__":
    main()
