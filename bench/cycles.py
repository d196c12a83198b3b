"""The daemon's cycles back to back, for its memory: builds the daemon as `gcd daemon` does
(policy, engine, metrics registry and observer, the events tracker) and calls its cycle
(`Daemon.run_cycle`, what the scheduler calls) `--cycles` times without waiting between
them, so 1,000 cycles take minutes instead of the 1,000 s an `every: 1s` schedule would.
Prints a JSON line {"cycle": n, "rss_kib": …} after the first cycle and every `--every`
cycles, then {"done": …}. With `--tracemalloc`, the 15 biggest allocation sites still held
after the last cycle (by line) are printed too.

    python -m bench.cycles --host unix://… --policy FILE --state-dir DIR --cycles 1000
"""

from __future__ import annotations

import argparse
import json
import time
import tracemalloc
from pathlib import Path

from prometheus_client import CollectorRegistry

from gcd import daemon as daemon_module
from gcd.config.trusted import load_trusted_policy
from gcd.daemon import Daemon, DaemonSettings
from gcd.engine.client import Engine
from gcd.logs import configure_logging
from gcd.metrics.definitions import Metrics
from gcd.metrics.observer import MetricsObserver


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--policy", type=Path, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--cycles", type=int, default=1000)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--tracemalloc", action="store_true")
    parser.add_argument(
        "--keep-garbage",
        action="store_true",
        help="skip the daemon's release of memory after each cycle (gcd.host.memory): the "
        "before of that change, in the same run",
    )
    args = parser.parse_args()
    if args.keep_garbage:
        setattr(daemon_module, "release_memory", lambda: None)  # noqa: B010
    configure_logging("json", "error")
    if args.tracemalloc:
        tracemalloc.start(8)
    policy = load_trusted_policy(args.policy)
    settings = DaemonSettings(policy_path=args.policy, state_dir=args.state_dir, host=args.host)
    daemon = Daemon(
        settings,
        policy,
        observer=MetricsObserver(Metrics(CollectorRegistry())),
        engine=Engine(args.host),
    )
    daemon.tracker.start()
    started = time.monotonic()
    for n in range(1, args.cycles + 1):
        if daemon.run_cycle("schedule") is None:
            raise SystemExit(f"cycle {n} failed: {daemon.last_status}")
        if n == 1 or n % args.every == 0 or n == args.cycles:
            print(json.dumps({"cycle": n, "rss_kib": rss_kib()}), flush=True)
    elapsed = time.monotonic() - started
    if args.tracemalloc:
        snapshot = tracemalloc.take_snapshot()
        for stat in snapshot.statistics("lineno")[:15]:
            print(json.dumps({"site": str(stat.traceback[0]), "kib": stat.size // 1024}))
    daemon.stop_event.set()
    daemon.tracker.stop()
    print(json.dumps({"done": args.cycles, "seconds": round(elapsed, 1)}), flush=True)


if __name__ == "__main__":
    main()
