"""The benchmarks' engine: the integration matrix's private Docker 26.1 (its own socket, data
root and pid file, stopped by its own pid, never by name; it never touches another engine), on
overlay2, and a kept-alive HTTP/1.1 connection to a unix socket for the bench's own requests.

The binaries are those `scripts/engines docker-26` unpacks (Debian trixie's docker.io 26.1 and
containerd 1.7, beside the system's runc). The engine is `tests.integration.engines`' own, so
the bench and the tests start engines one way.
"""

from __future__ import annotations

import http.client
import os
import socket

from tests.integration.engines import ENGINES_DIR, engine_for
from tests.integration.harness import EngineStartError, PrivateEngine

DOCKER_26 = ENGINES_DIR / "docker-26"

__all__ = ["DOCKER_26", "PrivateEngine", "UnixConnection", "bench_engine", "socket_path"]


class UnixConnection(http.client.HTTPConnection):
    """HTTP/1.1 on a unix socket: kept alive across requests, as a client should."""

    def __init__(self, path: str, timeout: float = 300.0) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.path)
        self.sock = sock


def socket_path(host: str) -> str:
    return host.removeprefix("unix://")


def bench_engine() -> PrivateEngine:
    """An unstarted private Docker 26.1 on overlay2 (`with bench_engine() as engine:`)."""
    if os.geteuid() != 0:
        raise EngineStartError("the benchmarks start their own dockerd: run them as root")
    engine = engine_for("docker-26")
    engine.extra_args = ("--storage-driver=overlay2",)
    return engine
