"""`gcd daemon` as a real subprocess, with its JSON log events collected for assertions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

Event = dict[str, Any]


class DaemonProcess:
    def __init__(
        self,
        host: str,
        policy: Path,
        state_dir: Path,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        command = [
            sys.executable,
            "-m",
            "gcd",
            "--host",
            host,
            "--state-dir",
            str(state_dir),
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "daemon",
            "--policy",
            str(policy),
            *extra,
        ]
        if "--first-scrape-wait" not in extra:
            command += ["--first-scrape-wait", "0"]  # nothing scrapes these: no first-cycle wait
        if "--metrics-address" not in extra:
            command += ["--metrics-address", "127.0.0.1:0"]  # a free port: tests run in parallel
        self.events: list[Event] = []
        self.raw: list[str] = []
        self._lock = threading.Lock()
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._lock:
                self.raw.append(line)
                try:
                    parsed = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(parsed, dict):
                    self.events.append(parsed)

    def named(self, name: str) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]

    def wait_for(
        self,
        name: str,
        *,
        count: int = 1,
        where: Callable[[Event], bool] = lambda _e: True,
        timeout: float = 60.0,
    ) -> Event:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            matching = [e for e in self.named(name) if where(e)]
            if len(matching) >= count:
                return matching[count - 1]
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(
            f"no {count}x {name!r} within {timeout}s (exit {self.process.poll()}); log:\n"
            + "".join(self.raw[-40:])
        )

    def signal(self, signum: signal.Signals) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
