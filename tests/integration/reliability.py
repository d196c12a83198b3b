"""What the kill, concurrency and race-load tests share: a private engine that can be
SIGKILLed and restarted, `gcd` subprocesses whose JSON log is parsed, and independent checks of
the state directory (SQLite's own integrity check, first sightings, leftover temp files).
Free of pytest, like the harness."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import docker

from tests.integration.harness import PrivateEngine
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)
Event = dict[str, Any]


def kill_engine(private: PrivateEngine) -> None:
    """SIGKILL the engine's dockerd (never by name: by the pid of its own pid file) and reap
    it; its data stays for `private.start()`."""
    pid = private.pid()
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process = private._process  # the harness's own child: reaped here, not by stop_engine
    if process is not None:
        process.wait(30)
    private._process = None
    _forget_dead_containerd(private)


def _forget_dead_containerd(private: PrivateEngine) -> None:
    """dockerd's own containerd dies with it (parent-death signal), but on a machine whose PID
    1 does not reap orphans it stays a zombie, and a restarted dockerd that finds its pid in
    `containerd.pid` takes it for alive and waits for its socket in vain ("timeout waiting for
    containerd to start"). Under systemd the zombie is reaped; here its pid file is removed
    once the process is dead, as a reaped pid would be."""
    pid_file = private.dir / "exec" / "containerd" / "containerd.pid"
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if not _alive(pid):
        pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X")


def gcd_command(host: str, state_dir: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gcd",
        "--host",
        host,
        "--state-dir",
        str(state_dir),
        "--log-format",
        "json",
        *args,
    ]


@dataclass(frozen=True)
class Finished:
    code: int
    stdout: str
    stderr: str

    @property
    def events(self) -> list[Event]:
        return parse_events(self.stderr)

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]

    @property
    def removed_images(self) -> list[str]:
        """Short ids (12 hex) of the `image_removed` events, in order."""
        return [str(e["image"]) for e in self.named("image_removed")]


def run_gcd(host: str, state_dir: Path, *args: str, timeout: float = 120) -> Finished:
    done = subprocess.run(
        gcd_command(host, state_dir, *args),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    return Finished(done.returncode, done.stdout, done.stderr)


def parse_events(text: str) -> list[Event]:
    events = []
    for line in text.splitlines():
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            events.append(parsed)
    return events


def has_traceback(text: str) -> bool:
    return "Traceback (most recent call last)" in text


def backdate(api: docker.APIClient, state_dir: Path, ids: Iterable[str]) -> None:
    """Record `ids` as first seen long ago, as gcd itself would have on an old host."""
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, OLD)
    state.save()


def short(image_id: str) -> str:
    return image_id.removeprefix("sha256:")[:12]


def image_ids(api: docker.APIClient) -> set[str]:
    """The engine's image ids. The containerd store answers a listing 404 ("content digest …
    not found") while another client deletes an image: asked again, as gcd does."""
    for _ in range(5):
        try:
            return {str(i["Id"]) for i in api.images(all=True)}
        except docker.errors.NotFound:
            time.sleep(0.2)
    return {str(i["Id"]) for i in api.images(all=True)}


def integrity(state_dir: Path) -> str:
    """SQLite's full `integrity_check` of state.db, read-only and apart from gcd's code."""
    uri = f"file:{state_dir / 'state.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)


def first_sightings(state_dir: Path) -> dict[tuple[str, ...], int]:
    """Every recorded first sighting, by (engine, store, kind, object id), read directly."""
    uri = f"file:{state_dir / 'state.db'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as conn:
        rows = conn.execute(
            "SELECT engine_id, store, kind, object_id, first_seen_us FROM objects "
            "WHERE first_seen_us IS NOT NULL"
        ).fetchall()
    return {tuple(str(v) for v in row[:4]): int(row[4]) for row in rows}


def leftovers(directory: Path, expected: Iterable[str]) -> list[str]:
    """Entries of `directory` beyond the `expected` names (temp files, stray journals)."""
    if not directory.is_dir():
        return []
    return sorted(set(os.listdir(directory)) - set(expected))


STATE_FILES = ("gcd.lock", "state.db", "state.db-wal", "state.db-shm")
