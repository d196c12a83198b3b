"""A private dockerd on the host whose socket directory a container can bind.

The socket sits alone in its own directory (`<dir>/sock/docker.sock`) so that binding the
directory into a container exposes nothing else and survives a dockerd restart; dockerd gives
it the group `docker`, whose gid the container's `docker` group must carry. Stopped by the pid
in its pid file, never by name: other engines may run beside it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.system.nspawn import RigError, wait_for


@dataclass(frozen=True)
class HostEngine:
    root: Path

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def socket(self) -> Path:
        return self.socket_dir / "docker.sock"

    @property
    def socket_gid(self) -> int:
        return self.socket.stat().st_gid

    def answers(self) -> bool:
        """True once `GET /_ping` answers 200 on the socket."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
                conn.settimeout(5)
                conn.connect(str(self.socket))
                conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return conn.recv(64).startswith(b"HTTP/1.0 200")
        except OSError:
            return False


def unavailable_reason() -> str | None:
    if shutil.which("dockerd") is None:
        return "dockerd is not installed: apt-get install -y docker.io"
    return None


@contextlib.contextmanager
def private_engine() -> Iterator[HostEngine]:
    engine = HostEngine(Path(tempfile.mkdtemp(prefix="gcd-engine-")))
    engine.socket_dir.mkdir()
    pidfile = engine.root / "dockerd.pid"
    argv = [
        "dockerd",
        f"--data-root={engine.root}/data",
        f"--exec-root={engine.root}/exec",
        f"--host=unix://{engine.socket}",
        f"--pidfile={pidfile}",
        "--iptables=false",
        "--ip6tables=false",
        "--bridge=none",
    ]
    with (engine.root / "dockerd.log").open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:

        def up() -> bool | None:
            if process.poll() is not None:
                text = (engine.root / "dockerd.log").read_text()[-3000:]
                raise RigError(f"dockerd exited {process.returncode}:\n{text}")
            return True if engine.answers() else None

        wait_for("the private dockerd to answer", up, timeout=60)
        yield engine
    finally:
        with contextlib.suppress(FileNotFoundError, ValueError, ProcessLookupError):
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(engine.root, ignore_errors=True)
