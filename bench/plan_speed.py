"""How much gcd's planning costs over the Docker list calls it cannot avoid.

Loads N crafted images (sharing layers, as build hosts do) into a private dockerd, then times,
in the same run: the raw list calls (`GET /images/json`, `GET /containers/json?all=1`), a cold
`plan_once` (first sight of every image), a warm `plan_once`, and `evaluate` alone. Prints the
ratios to the raw list time; no absolute number is asserted anywhere.

    .venv/bin/python -m bench.plan_speed [--images 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker

from bench.craft import ImageSpec, image, layer, load
from bench.engine import bench_engine
from bench.timing import median_of
from gcd.config.loader import load_policy
from gcd.core.evaluate import evaluate
from gcd.cycle import plan_once
from gcd.engine.client import Engine
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from gcd.logs import configure_logging

ROOT = Path(__file__).resolve().parent.parent


def crafted(count: int) -> list[ImageSpec]:
    now = datetime.now(UTC)
    base = layer(4096, "bench-base")
    return [
        image(
            base,
            layer(1024, f"bench-{n}"),
            tags=(f"registry.example.com/team/svc{n % 50}:b{n}",),
            created=now - timedelta(hours=n),
        )
        for n in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    configure_logging("console", "warning")
    policy = load_policy(ROOT / "policy.example.yaml")
    with tempfile.TemporaryDirectory() as scratch, bench_engine() as private:
        api = docker.APIClient(base_url=private.host, version="auto")
        specs = crafted(args.images)
        load(private.host, specs)
        engine = Engine(private.host)

        def raw_lists() -> None:
            api.images()
            api.containers(all=True)

        raw = median_of(args.repeat, raw_lists)
        state_dir = Path(scratch) / "state"
        started = time.perf_counter()
        plan_once(engine, policy, state_dir)
        cold = time.perf_counter() - started
        warm = median_of(args.repeat, lambda: plan_once(engine, policy, state_dir))
        snapshot = take_snapshot(engine, State.load(state_dir), datetime.now(UTC))
        now = datetime.now(UTC)
        pure = median_of(args.repeat, lambda: evaluate(snapshot, policy, now))
        print(f"images: {args.images}")
        print(f"raw list calls (reference):      {raw * 1000:8.1f} ms   1.00x")
        print(f"gcd plan, warm (state known):    {warm * 1000:8.1f} ms   {warm / raw:5.2f}x")
        print(f"gcd plan, cold (first sight):    {cold * 1000:8.1f} ms   {cold / raw:5.2f}x")
        print(f"evaluate alone (pure core):      {pure * 1000:8.1f} ms   {pure / raw:5.2f}x")
        api.close()


if __name__ == "__main__":
    main()
