"""The suite's private dockerd (tests/integration/harness.py), with a socket a container can bind.

A container must bind the socket's *directory* (a bound socket file goes stale when dockerd
restarts), and the harness keeps its socket beside the data root, exec root and logs. So the
engine gets a second `--host` socket, alone in its own directory; dockerd gives every unix
socket the group `docker`, whose gid the container's `docker` group must carry.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.integration.harness import DOCKERD, PrivateEngine


@dataclass(frozen=True)
class HostEngine:
    socket_dir: Path

    @property
    def socket(self) -> Path:
        return self.socket_dir / "docker.sock"

    @property
    def socket_gid(self) -> int:
        return self.socket.stat().st_gid


def unavailable_reason() -> str | None:
    if not Path(DOCKERD).exists():
        return f"{DOCKERD} is missing: run scripts/bootstrap (apt-get install docker.io)"
    return None


@contextmanager
def private_engine() -> Iterator[HostEngine]:
    socket_dir = Path(tempfile.mkdtemp(prefix="gcd-engine-sock-", dir="/tmp"))
    try:
        socket_dir.chmod(0o755)
        extra = ("--host", f"unix://{socket_dir}/docker.sock")
        with PrivateEngine(extra_args=extra):
            yield HostEngine(socket_dir)
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
