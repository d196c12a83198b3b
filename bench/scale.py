"""gcd at build-farm scale against the references of issue 16, in one run.

For each `--sizes` entry, starts a private Docker 26.1 engine (bench.engine), crafts a build
host on it offline (bench.craft: N images on shared bases with one to three tags, 120
containers created from some of them, and 500 old victims per deletion round), then times,
interleaved and `--repeat` times, each figure against its reference on the same engine:

1. delete the same 500 images: `gcd run --once` vs `docker image prune -a -f --filter
   until=720h` (both as processes; the victims are loaded again before each arm); and gcd
   until its last `image_removed` (its log's timestamp), when the space is back, before the
   orphan check's settle and the exit;
2. API calls per deleted image: `gcd run --once` and `gcd plan` through bench.proxy's
   counting proxy; the run's calls beyond the plan's, per deleted image, by kind of call;
3. warm plan in process (`plan_once`) vs the two raw list calls, as root and with the layer
   store out of reach (the unprivileged units' path): bench.inproc;
4. warm `gcd plan` process vs `docker images` + `docker ps -a` processes;
5. first sight (`gcd plan` on an empty state directory), layer store out of reach, vs the
   same two CLI processes; its requests and connections counted through the proxy;
6. daemon RSS: a real `gcd daemon` at rest (after its first cycles, `every: 1s`), and the
   daemon's cycles driven back to back `--cycles` times (bench.cycles);
7. start-up, once: `gcd --help`, `gcd check` and bare `python -c pass` (bench.startup).

"Out of reach" runs the process in a private mount namespace where a tmpfs hides the
engine's `<data-root>/image`, as it is for a user without read access (the engine itself is
not affected). Prints medians, ranges and ratios; asserts no absolute number.

    python -m bench.scale [--sizes 1000,5000] [--repeat 5] [--cycles 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import startup
from bench.craft import Host, build_host, call, load
from bench.engine import PrivateEngine, bench_engine, socket_path
from bench.processes import (
    ENGINE_TIMEOUTS,
    TIMEOUTS,
    children_cpu,
    env,
    figure,
    gcd,
    hidden_store,
    last_removal,
    machine,
    process_cpu,
    timed,
    timed_with_stderr,
)
from bench.proxy import CountingProxy

DOCKER = os.environ.get("GCD_BENCH_DOCKER", "docker")
VICTIMS = 500
CONTAINERS = 120
POLICY = """\
version: 1
safety:
  min_age: 0s
  max_deletions_per_run: 100000
  max_delete_fraction: 0.95
  quiet_for: 0s
images:
  keep:
    - reference: ["bench/keep/**"]
  dangling:
    keep_within: 0s
schedule:
  every: {every}
  jitter: 0s
"""


class Bench:
    def __init__(self, engine: PrivateEngine, host: Host, scratch: Path, repeat: int) -> None:
        self.engine = engine
        self.host = host
        self.scratch = scratch
        self.repeat = repeat
        self.state = scratch / "state"
        self.policy = scratch / "policy.yaml"
        self.policy.write_text(POLICY.format(every="1s"))
        self.policy.chmod(0o644)
        self.lines: list[str] = []
        self.until_last = 0.0
        """`gcd_run`'s seconds from start to its last `image_removed`."""

    def say(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def images(self) -> int:
        return len(call(self.engine.host, "GET", "/images/json?all=1"))

    def common(self, host: str | None = None, state: Path | None = None) -> list[str]:
        return [
            "--host",
            host or self.engine.host,
            "--state-dir",
            str(state or self.state),
            "--log-format",
            "json",
            "--log-level",
            "warning",
        ]

    def gcd_run(self, host: str | None = None) -> tuple[float, int]:
        """The run's seconds and removed images; `self.until_last` is set to the seconds from
        its start to its last `image_removed` (logged at info)."""
        command = ["run", "--once", "--policy", str(self.policy), "-o", "json"]
        elapsed, out, err, wall = timed_with_stderr(
            gcd(*command, *self.common(host), "--log-level", "info")
        )
        document = json.loads(out)
        by_status = document["result"]["by_kind"].get("image", {}).get("by_status", {})
        removed = int(by_status.get("removed", 0))
        self.until_last = last_removal(err, wall) if removed else elapsed
        return elapsed, removed

    def prune(self) -> tuple[float, int]:
        before = self.images()
        elapsed, _ = timed(
            [DOCKER, "-H", self.engine.host, "image", "prune", "-a", "-f", "--filter", "until=720h"]
        )
        return elapsed, before - self.images()

    def deletion(self) -> None:
        ours: list[float] = []
        theirs: list[float] = []
        until_last: list[float] = []
        arms: list[tuple[list[float], Callable[[], tuple[float, int]]]] = [
            (ours, self.gcd_run),
            (theirs, self.prune),
        ]
        for n in range(self.repeat):
            for times, arm in arms if n % 2 == 0 else arms[::-1]:
                load(self.engine.host, self.host.victims)
                elapsed, removed = arm()
                if removed != len(self.host.victims):
                    raise RuntimeError(f"{arm.__name__} removed {removed}, not all victims")
                times.append(removed / elapsed)
                if arm == self.gcd_run:
                    until_last.append(removed / self.until_last)
        label = f"delete {len(self.host.victims)}: images/s (≥ 1× is faster)"
        self.say(figure(label, ours, theirs, "/s"))
        # The space is back at the last removal: before the orphan sweep's settle and exit.
        self.say(figure("  until the last removal: images/s", until_last, theirs, "/s"))

    def calls(self) -> None:
        with CountingProxy(socket_path(self.engine.host), self.scratch / "proxy.sock") as proxy:
            load(self.engine.host, self.host.victims)
            timed(gcd("plan", "--policy", str(self.policy), "-o", "json", *self.common(proxy.host)))
            planned, _ = proxy.take()
            _, removed = self.gcd_run(proxy.host)
            ran, connections = proxy.take()
        extra = ran - planned
        per = sum(extra.values()) / removed
        detail = ", ".join(f"{k} {v / removed:.2f}" for k, v in extra.most_common(6))
        self.say(
            f"  API calls per deleted image: {per:.2f} (run {sum(ran.values())} calls on "
            f"{connections} connections, plan {sum(planned.values())}; beyond the plan: {detail})"
        )

    def cli_lists(self) -> float:
        started = time.perf_counter()
        timed([DOCKER, "-H", self.engine.host, "images"])
        timed([DOCKER, "-H", self.engine.host, "ps", "-a"])
        return time.perf_counter() - started

    def plans(self) -> None:
        plan = gcd("plan", "--policy", str(self.policy), "-o", "json", *self.common())
        timed(plan)  # warm: every image seen
        ours: list[float] = []
        theirs: list[float] = []
        for _ in range(self.repeat):
            theirs.append(self.cli_lists())
            ours.append(timed(plan)[0])
        self.say(figure("warm `gcd plan` process / 2 CLI lists", ours, theirs))
        for label, wrap in (("root", list), ("store out of reach", self._hide)):
            command = [
                sys.executable,
                "-m",
                "bench.inproc",
                "--host",
                self.engine.host,
                "--policy",
                str(self.policy),
                "--state-dir",
                str(self.state),
                "--repeat",
                str(self.repeat),
            ]
            _, out = timed(wrap(command))
            result = json.loads(out.splitlines()[-1])
            self.say(
                figure(f"warm plan in process, {label} / raw lists", result["gcd"], result["raw"])
            )

    def _hide(self, command: list[str]) -> list[str]:
        return hidden_store(self.engine, command)

    def first_sight(self) -> None:
        ours: list[float] = []
        theirs: list[float] = []
        gcd_cpu: list[float] = []
        engine_cpu: list[float] = []
        for n in range(self.repeat):
            theirs.append(self.cli_lists())
            fresh = Path(tempfile.mkdtemp(prefix=f"first-{n}-", dir=self.scratch))
            fresh.chmod(0o700)
            plan = gcd(
                "plan", "--policy", str(self.policy), "-o", "json", *self.common(state=fresh)
            )
            children, engine = children_cpu(), self.engine_cpu()
            ours.append(timed(self._hide(plan))[0])
            gcd_cpu.append(children_cpu() - children)
            engine_cpu.append(self.engine_cpu() - engine)
        self.say(figure("first sight, store out of reach / 2 CLI lists", ours, theirs))
        # Whose time it is: the gcd process's CPU (with its unshare wrapper) and dockerd's.
        self.say(
            f"  first sight CPU: gcd {statistics.median(gcd_cpu):.3f}s, "
            f"engine {statistics.median(engine_cpu):.3f}s (medians)"
        )
        fresh = Path(tempfile.mkdtemp(prefix="first-counted-", dir=self.scratch))
        fresh.chmod(0o700)
        with CountingProxy(socket_path(self.engine.host), self.scratch / "proxy.sock") as proxy:
            plan = gcd(
                "plan", "--policy", str(self.policy), "-o", "json",
                *self.common(proxy.host, fresh),
            )  # fmt: skip
            timed(self._hide(plan))
            counts, connections = proxy.take()
        per_image = ", ".join(f"{counts[k]} {k}" for k in sorted(counts) if "{id}" in k)
        self.say(
            f"  first sight: {sum(counts.values())} requests on {connections} connections"
            f" ({per_image})"
        )

    def engine_cpu(self) -> float:
        """dockerd's CPU seconds so far (user + system), from /proc."""
        return process_cpu(int(self.engine.pid_file.read_text().strip()))

    def memory(self, cycles: int, rest_cycles: int = 5) -> None:
        self.daemon_at_rest(rest_cycles)
        command = [
            sys.executable, "-m", "bench.cycles", "--host", self.engine.host,
            "--policy", str(self.policy), "--state-dir", str(self.state),
            "--cycles", str(cycles), "--every", str(max(cycles // 10, 1)),
        ]  # fmt: skip
        _, out = timed(command)
        samples = [json.loads(line) for line in out.splitlines()]
        rss = [s["rss_kib"] / 1024 for s in samples if "rss_kib" in s]
        done = samples[-1]
        self.say(
            f"  daemon cycles back to back: {done['done']} in {done['seconds']} s; RSS MiB after "
            f"cycle 1 {rss[0]:.1f}, steady (median of the later samples) "
            f"{statistics.median(rss[1:] or rss):.1f}, range {min(rss):.1f}–{max(rss):.1f}, "
            f"last {rss[-1]:.1f}"
        )

    def daemon_at_rest(self, cycles: int) -> None:
        """A real `gcd daemon` (`every: 1s`): its RSS after each of its first cycles."""
        command = gcd(
            "daemon", "--policy", str(self.policy), "--metrics-address", "127.0.0.1:0",
            *self.common(),
        )  # fmt: skip
        command[command.index("--log-level") + 1] = "info"
        process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env()
        )
        samples: list[float] = []
        try:
            assert process.stderr is not None
            for line in process.stderr:
                if '"cycle_finished"' in line:
                    status = Path(f"/proc/{process.pid}/status").read_text()
                    kib = next(
                        int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS:")
                    )
                    samples.append(kib / 1024)
                    if len(samples) == cycles:
                        break
                elif '"daemon_start_failed"' in line or '"cycle_failed"' in line:
                    raise RuntimeError(f"gcd daemon: {line}")
        finally:
            process.terminate()
            process.wait(30)
        self.say(
            "  `gcd daemon` at rest (every: 1s): RSS MiB after cycles 1–5: "
            + ", ".join(f"{s:.1f}" for s in samples)
        )


MEASURES = ("deletion", "calls", "plans", "first_sight", "memory")


def run_size(
    images: int,
    *,
    repeat: int,
    cycles: int,
    victims: int = VICTIMS,
    containers: int = CONTAINERS,
    rest_cycles: int = 5,
    timeouts: str | None = None,
    only: Sequence[str] = MEASURES,
) -> list[str]:
    TIMEOUTS.clear()
    if timeouts is not None:
        TIMEOUTS[ENGINE_TIMEOUTS] = timeouts
    with bench_engine() as engine, tempfile.TemporaryDirectory(prefix="gcd-bench-") as scratch:
        root = Path(scratch)
        root.chmod(0o755)
        started = time.perf_counter()
        host = build_host(engine.host, images, containers, victims)
        bench = Bench(engine, host, root, repeat)
        bench.say(
            f"{images} images ({bench.images()} listed), {containers} containers; "
            f"crafted in {time.perf_counter() - started:.0f} s"
        )
        for measure in only:
            if measure == "memory":
                if cycles:
                    bench.memory(cycles, rest_cycles)
            else:
                getattr(bench, measure)()
        return bench.lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000", help="image counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cycles", type=int, default=200, help="daemon cycles (0: skip)")
    parser.add_argument("--startup-runs", type=int, default=20)
    parser.add_argument(
        "--only",
        default=",".join(MEASURES),
        help=f"measures per size, comma-separated, of {', '.join(MEASURES)}",
    )
    args = parser.parse_args(argv)
    only = [m for m in args.only.split(",") if m]
    unknown = sorted(set(only) - set(MEASURES))
    if unknown:
        known = ", ".join(MEASURES)
        parser.error(f"--only: unknown measure(s) {', '.join(unknown)}; known: {known}")
    # A SIGTERM unwinds like Ctrl-C, so the private engine is stopped and its folder removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(f"gcd bench: {machine()}", flush=True)
    if args.startup_runs:
        for line in startup.measure(args.startup_runs):
            print(line, flush=True)
    for size in (int(s) for s in args.sizes.split(",")):
        run_size(size, repeat=args.repeat, cycles=args.cycles, only=only)


if __name__ == "__main__":
    main()
