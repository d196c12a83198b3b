"""How the bench runs the processes it measures (gcd, the docker CLI) and reads their time,
CPU and memory; and the one-line figure it prints per measure."""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from bench.engine import PrivateEngine

ROOT = Path(__file__).resolve().parent.parent

ENGINE_TIMEOUTS = "GCD_ENGINE_TIMEOUTS"
TIMEOUTS: dict[str, str] = {}
"""gcd's engine timeouts for the processes the bench starts (run_size's `timeouts`): the real
defaults unless a caller (the smoke test) shortens them."""


def env() -> dict[str, str]:
    """The bench's processes: no other engine's address, no inherited timeouts."""
    dropped = ("GCD_ENGINE_TIMEOUTS", "PYTHONDONTWRITEBYTECODE")
    values = {
        k: v for k, v in os.environ.items() if not k.startswith("DOCKER_") and k not in dropped
    }
    values["PYTHONPATH"] = str(ROOT)
    values.update(TIMEOUTS)
    return values


def hidden_store(engine: PrivateEngine, command: list[str]) -> list[str]:
    """`command` in a private mount namespace where the engine's image store is hidden."""
    image_dir = engine.data_root / "image"
    script = f'mount -t tmpfs none "{image_dir}" && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", *command]


def timed(command: Sequence[str]) -> tuple[float, str]:
    elapsed, out, _, _ = timed_with_stderr(command)
    return elapsed, out


def timed_with_stderr(command: Sequence[str]) -> tuple[float, str, str, float]:
    """`timed`, with the process's stderr and the wall time (`time.time()`) it started at."""
    wall = time.time()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env(), check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in (0,):
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return elapsed, done.stdout, done.stderr, wall


def last_removal(stderr: str, wall: float) -> float:
    """Seconds from `wall` to the last `image_removed` event in gcd's JSON log (its
    `timestamp`: ISO, UTC): when the space of the last image was back."""
    stamps = []
    for line in stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "image_removed":
            stamps.append(datetime.fromisoformat(str(event["timestamp"])).timestamp())
    if not stamps:
        raise RuntimeError("gcd logged no image_removed event")
    return max(stamps) - wall


def gcd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gcd", *args]


def figure(name: str, ours: list[float], reference: list[float], unit: str = "s") -> str:
    """`name: gcd median [range] vs reference median [range] = ratio`."""
    a, b = statistics.median(ours), statistics.median(reference)
    return (
        f"  {name:<44} gcd {a:8.3f}{unit} [{min(ours):.3f}–{max(ours):.3f}]"
        f"   ref {b:8.3f}{unit} [{min(reference):.3f}–{max(reference):.3f}]"
        f"   ratio {a / b:5.2f}×"
    )


def children_cpu() -> float:
    """CPU seconds of this process's waited-for children (user + system)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return next(int(x.split()[1]) for x in status if x.startswith("VmRSS:")) / 1024


def machine() -> str:
    cpus = os.cpu_count()
    memory = next(
        line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )  # fmt: skip
    load = Path("/proc/loadavg").read_text().split()[:3]
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    return (
        f"{cpus} CPUs, {int(memory) // 1024} MiB, load {' '.join(load)}; Python "
        f"{sys.version.split()[0]}; gcd at {commit or '?'}"
    )
