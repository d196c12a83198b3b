"""A private Docker 26.1 engine for the benchmarks: its own socket, data root and pid file,
stopped by its own pid, never by name; it never touches another engine.

The binaries are those `scripts/engines docker-26` unpacks (Debian trixie's docker.io 26.1 and
containerd 1.7, beside the system's runc), as the integration matrix uses them.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

ENGINES_DIR = Path(os.environ.get("GCD_ENGINES_DIR", "/var/cache/gcd-tests/engines"))
DOCKER_26 = ENGINES_DIR / "docker-26"
START_TIMEOUT_SECONDS = 90.0


class EngineStartError(RuntimeError):
    pass


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


class PrivateEngine:
    """`with PrivateEngine() as engine: engine.host` is a fresh dockerd 26.1, stopped at exit."""

    def __init__(self, root: Path = DOCKER_26) -> None:
        self.install = root
        self.token = secrets.token_hex(4)
        self.dir = Path(tempfile.mkdtemp(prefix=f"gcd-bench-{self.token}-", dir="/tmp"))
        self.data_root = self.dir / "data"
        self.socket = self.dir / "docker.sock"
        self.pid_file = self.dir / "dockerd.pid"
        self.log_file = self.dir / "dockerd.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def dockerd(self) -> Path:
        return self.install / "usr/sbin/dockerd"

    def start(self) -> Self:
        if os.geteuid() != 0:
            raise EngineStartError("the benchmarks start their own dockerd: run them as root")
        if not (self.install / ".installed").is_file():
            raise EngineStartError(
                f"{self.install} is missing: run `scripts/engines docker-26` (as root) first"
            )
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env["PATH"] = f"{self.install / 'usr/bin'}:{env.get('PATH', '')}"
        command = [
            str(self.dockerd),
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.dir / "exec"),
            "--host",
            self.host,
            "--pidfile",
            str(self.pid_file),
            "--iptables=false",
            "--ip6tables=false",
            "--bridge=none",
            "--storage-driver=overlay2",
            "--containerd-namespace",
            f"gcd-bench-{self.token}",
            "--containerd-plugins-namespace",
            f"gcd-bench-{self.token}-plugins",
        ]
        with self.log_file.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        self._wait_until_ready()
        return self

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            if self.socket.exists():
                with contextlib.suppress(OSError, http.client.HTTPException):
                    connection = UnixConnection(str(self.socket), timeout=5)
                    connection.request("GET", "/_ping")
                    if connection.getresponse().status == 200:
                        connection.close()
                        return
            time.sleep(0.1)
        tail = self.log_file.read_text(errors="replace").splitlines()[-30:]
        self.stop()
        raise EngineStartError(f"{self.dockerd} did not come up; its log:\n" + "\n".join(tail))

    def stop(self) -> None:
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._process.pid, signal.SIGTERM)
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
            self._process = None
        for mount in _mounts_under(self.dir):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _mounts_under(root: Path) -> list[str]:
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    prefix = str(root.resolve())
    points = [line.split()[1] for line in lines if len(line.split()) > 1]
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)
