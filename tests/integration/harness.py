"""A private dockerd for tests and the demo: its own socket, data root and pid file.

It never touches another engine: it is stopped by the pid in its own pid file, never by name.
Free of pytest so that `scripts/demo` and `bench/` can use it too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import docker
import requests

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
START_TIMEOUT_SECONDS = 60.0


class EngineStartError(RuntimeError):
    pass


class PrivateEngine:
    """`with PrivateEngine() as engine: engine.host` is a fresh engine, stopped at exit."""

    def __init__(
        self,
        data_root: Path | None = None,
        *,
        dockerd: str = DOCKERD,
        extra_args: tuple[str, ...] = (),
        path_prefix: str | None = None,
        name: str = "docker-20.10",
    ) -> None:
        self.name = name  # the kind of engine (tests/integration/engines.py)
        self.token = secrets.token_hex(4)
        self.dir = Path(tempfile.mkdtemp(prefix=f"gcd-engine-{self.token}-", dir="/tmp"))
        self.data_root = data_root or self.dir / "data"
        self.socket = self.dir / "docker.sock"
        self.pid_file = self.dir / "dockerd.pid"
        self.log_file = self.dir / "dockerd.log"
        self.dockerd = dockerd
        self.extra_args = extra_args
        self.path_prefix = path_prefix
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self) -> Self:
        if not Path(self.dockerd).exists():
            raise EngineStartError(
                f"{self.dockerd} is missing: run scripts/bootstrap (apt-get install docker.io)"
            )
        env = dict(os.environ)
        if self.path_prefix:
            env["PATH"] = f"{self.path_prefix}:{env.get('PATH', '')}"
        env.pop("DOCKER_HOST", None)
        command = [
            self.dockerd,
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
            "--containerd-namespace",
            f"gcd-{self.token}",
            "--containerd-plugins-namespace",
            f"gcd-{self.token}-plugins",
            *self.extra_args,
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
                try:
                    client = docker.APIClient(base_url=self.host, version="auto", timeout=5)
                    client.ping()
                    client.close()
                    return
                except (docker.errors.DockerException, requests.exceptions.RequestException):
                    pass
            time.sleep(0.1)
        tail = self.log_tail()  # before stop() removes the folder with the log
        self.stop()
        raise EngineStartError(f"{self.dockerd} did not come up; its log:\n{tail}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return self._process.pid if self._process and self._process.poll() is None else None

    def stop_engine(self, timeout: float = 30.0) -> None:
        """Stop dockerd but keep its data, so that it can be started again."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait()
        self._process = None

    def stop(self) -> None:
        self.stop_engine()
        # dockerd leaves overlay and shm mounts under its roots when killed hard.
        for root in (self.dir, self.data_root):
            for mount in _mounts_under(root):
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
