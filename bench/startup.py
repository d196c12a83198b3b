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


def measure(runs: int) -> list[str]:
    compileall.compile_dir(ROOT / "gcd", quiet=1)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(ROOT)
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(runs + 1):  # the first round warms the page cache
        for name, command in COMMANDS.items():
            started = time.perf_counter()
            subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True)
            times[name].append(time.perf_counter() - started)
    bare = statistics.median(times["python -c pass"][1:])
    lines = [f"start-up (ms; median [range] of {runs}; × bare python):"]
    for name, values in times.items():
        kept = values[1:]
        median = statistics.median(kept)
        lines.append(
            f"  {name:<20} {median * 1000:7.1f} [{min(kept) * 1000:.1f}–{max(kept) * 1000:.1f}]"
            f"   {median / bare:5.1f}×   over bare {(median - bare) * 1000:6.1f}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    for line in measure(parser.parse_args().runs):
        print(line)


if __name__ == "__main__":
    main()
