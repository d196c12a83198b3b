"""The warm plan in process, run as a child of bench.scale (so that it can run with the
engine's layer store hidden, as gcd's unprivileged units see it): `plan_once` on a state
directory that knows every image, interleaved with the two raw list calls gcd cannot avoid
(`GET /images/json`, `GET /containers/json?all=1`, through docker-py's kept-alive session).

Prints one JSON object: {"raw": [seconds…], "gcd": [seconds…], "gcd_cpu": [seconds…]}
(`gcd_cpu`: the process's CPU time of each plan, which a loaded machine inflates less).
`--profile N` then profiles N more plans (cProfile, to stderr, by own and cumulative time).

    python -m bench.inproc --host unix://… --policy FILE --state-dir DIR --repeat 5
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import docker

from gcd.config.loader import load_policy
from gcd.cycle import plan_once
from gcd.engine.client import Engine
from gcd.logs import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="profile N plans")
    args = parser.parse_args()
    configure_logging("json", "error")
    policy = load_policy(args.policy)
    api = docker.APIClient(base_url=args.host, version="auto", timeout=600)
    engine = Engine(args.host)
    plan_once(engine, policy, args.state_dir)  # every image seen, every cache filled
    raw: list[float] = []
    ours: list[float] = []
    cpu: list[float] = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        api.images(all=False)
        api.containers(all=True)
        raw.append(time.perf_counter() - started)
        started, used = time.perf_counter(), time.process_time()
        plan_once(engine, policy, args.state_dir)
        ours.append(time.perf_counter() - started)
        cpu.append(time.process_time() - used)
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.profile):
            plan_once(engine, policy, args.state_dir)
        profile.disable()
        for order in ("tottime", "cumtime"):
            pstats.Stats(profile, stream=sys.stderr).sort_stats(order).print_stats(40)
    api.close()
    print(json.dumps({"raw": raw, "gcd": ours, "gcd_cpu": cpu}))


if __name__ == "__main__":
    main()
