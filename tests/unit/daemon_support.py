"""Shared by the daemon's unit tests: a Daemon on the fake engine, a tiny HTTP engine on a
unix socket for the reachability probe, and the process-wide hooks a test must put back."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import cast

import structlog
from prometheus_client import CollectorRegistry

from gcd.core.policy import Policy, Schedule
from gcd.daemon import Daemon, DaemonSettings
from gcd.engine.client import Engine
from gcd.host.statedir import ensure_state_dir
from gcd.metrics.definitions import Metrics
from gcd.metrics.observer import MetricsObserver
from tests.unit import builders
from tests.unit.fake_engine import FakeEngine

NEVER = Schedule(every=None, cron="0 0 1 1 *")
"""Once a year: the scheduler runs, but no cycle starts by itself during a test."""


def policy(
    schedule: Schedule = NEVER, source: str = "policy.yaml", **rules: float | timedelta
) -> Policy:
    return replace(builders.policy(**rules), schedule=schedule, source=source)  # type: ignore[arg-type]


class Rig:
    def __init__(
        self,
        tmp_path: Path,
        running: Policy | None = None,
        *,
        load: Callable[[Path], Policy] | None = None,
        **settings: float,
    ) -> None:
        state_dir = tmp_path / "state"
        ensure_state_dir(state_dir)
        (tmp_path / "policy.yaml").write_text("version: 1\n")  # its digest is a metric
        self.engine = FakeEngine(data_root=tmp_path)
        self.engine.close = lambda: None  # type: ignore[attr-defined]  # no connection to close
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.daemon = Daemon(
            DaemonSettings(tmp_path / "policy.yaml", state_dir, **settings),  # type: ignore[arg-type]
            running or policy(),
            MetricsObserver(self.metrics),
            engine=cast(Engine, self.engine),
            load_policy=load or (lambda _path: policy(source="reloaded.yaml")),
        )

    def sample(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)

    def close(self) -> None:
        if self.daemon.scheduler.running:
            self.daemon.scheduler.shutdown(wait=False)


class HttpEngine:
    """Answers every request on a unix socket with `status`, or, with `silent`, accepts the
    connection and never answers."""

    def __init__(self, path: Path, status: int = 200, *, silent: bool = False) -> None:
        self.path = path
        self.status = status
        self.silent = silent
        self.requests = 0
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(path))
        self._listener.listen(8)
        self._closing = threading.Event()
        self._held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def host(self) -> str:
        return f"unix://{self.path}"

    def _serve(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.requests += 1
            conn.recv(4096)
            if self.silent:
                self._held.append(conn)
                continue
            head = f"HTTP/1.1 {self.status} X\r\nContent-Length: 2\r\nConnection: close"
            conn.sendall(f"{head}\r\n\r\nOK".encode())
            conn.close()

    def close(self) -> None:
        self._closing.set()
        self._listener.close()
        for conn in self._held:
            conn.close()


@contextlib.contextmanager
def process_hooks() -> Iterator[None]:
    """Put back what configure_logging and Daemon.run change for the whole process."""
    config = structlog.get_config()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    hooks = (threading.excepthook, sys.excepthook)
    signals = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    try:
        yield
    finally:
        structlog.configure(**config)
        root.handlers[:] = handlers
        root.setLevel(level)
        threading.excepthook, sys.excepthook = hooks
        for signum, handler in signals.items():
            signal.signal(signum, handler)


def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll with a deadline (never a bare sleep)."""
    done = threading.Event()
    waited = 0.0
    while not predicate():
        if waited > timeout:
            raise AssertionError(f"not within {timeout}s: {predicate}")
        done.wait(0.02)
        waited += 0.02


EVERY_SECOND = Schedule(every=timedelta(seconds=1))
