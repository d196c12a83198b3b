"""Body of `scripts/demo`: see that script."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import docker

from gcd.core.units import format_bytes
from tests.integration.harness import PrivateEngine
from tests.integration.sample_host import seed

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "policy.example.yaml"


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def gcd(host: str, state_dir: Path, *args: str) -> int:
    command = [
        sys.executable,
        "-m",
        "gcd",
        "--host",
        host,
        "--state-dir",
        str(state_dir),
        "--log-format",
        "console",
        *args,
    ]
    print("$ gcd " + " ".join(args), flush=True)
    return subprocess.run(command, check=False, env={**os.environ, "COLUMNS": "200"}).returncode


def layers_size(api: docker.APIClient) -> int:
    return int(api.df()["LayersSize"])


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="gcd-demo-") as scratch, PrivateEngine() as engine:
        state_dir = Path(scratch) / "state"
        api = docker.APIClient(base_url=engine.host, version="auto")
        banner(f"private dockerd at {engine.host}; seeding a sample build host")
        host = seed(api, state_dir)
        for sample in host.images:
            names = ", ".join(sample.spec.tags) or "<dangling>"
            print(f"  {names:55} seen {sample.seen_days_ago:>5g} d ago  {sample.why}")
        banner(f"gcd plan with {POLICY.name} (nothing is deleted)")
        gcd(engine.host, state_dir, "plan", "--policy", str(POLICY))
        before = layers_size(api)
        banner("gcd run --once")
        code = gcd(engine.host, state_dir, "run", "--once", "--policy", str(POLICY))
        after = layers_size(api)
        banner("what Docker itself says")
        print(
            f"  /system/df LayersSize: {format_bytes(before)} -> {format_bytes(after)}: "
            f"freed {before - after} bytes ({format_bytes(before - after)})"
        )
        remaining = sorted(t for i in api.images() for t in i.get("RepoTags") or [])
        print(f"  {len(api.images())} images remain: " + ", ".join(remaining))
        api.close()
        banner("stopping the private engine")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
