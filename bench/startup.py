"""Start-up of the commands that do not talk to the engine, against bare Python: `python -c
pass`, `gcd --help`, `gcd check policy.example.yaml` and `gcd test-pattern`, each a fresh
process with the same interpreter, interleaved round-robin `runs` times (hyperfine's way,
without needing hyperfine). Bytecode is compiled first, as an installed package has it.

    python -m bench.startup [--runs 20]
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policy.example.yaml"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "gcd --help": [sys.executable, "-m", "gcd", "--help"],
    "gcd check": [sys.executable, "-m", "gcd", "check", str(POLICY)],
    "gcd test-pattern": [sys.executable, "-m", "gcd", "test-pattern", str(POLICY), "app:1"],
}


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one process: the CPU time (user + system, from wait4)
    is what a loaded machine does not inflate much; the wall time is what a user waits."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {process.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def measure(runs: int) -> list[str]:
    compileall.compile_dir(ROOT / "gcd", quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    walls: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpus: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for round_ in range(runs + 1):  # the first round warms the page cache
        for name, command in COMMANDS.items():
            wall, cpu = _run(command, env)
            if round_:
                walls[name].append(wall)
                cpus[name].append(cpu)
    bare_wall = statistics.median(walls["python -c pass"])
    bare_cpu = statistics.median(cpus["python -c pass"])
    lines = [f"start-up, ms (median [range] of {runs}; wall, then CPU = user + system):"]
    for name in COMMANDS:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        lines.append(
            f"  {name:<18} wall {wall * 1000:6.1f} [{min(walls[name]) * 1000:.0f}–"
            f"{max(walls[name]) * 1000:.0f}] {wall / bare_wall:4.1f}×   CPU {cpu * 1000:6.1f} "
            f"[{min(cpus[name]) * 1000:.0f}–{max(cpus[name]) * 1000:.0f}] {cpu / bare_cpu:4.1f}×"
            f"   CPU over bare {(cpu - bare_cpu) * 1000:6.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    for line in measure(parser.parse_args().runs):
        print(line)


if __name__ == "__main__":
    main()
