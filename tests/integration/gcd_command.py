"""`gcd` as an operator runs it: a subprocess of this interpreter, on a given engine and state
directory, its output captured. Free of pytest, like the harness."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def gcd(host: str, state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gcd", "--host", host, "--state-dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
