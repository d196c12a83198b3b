"""Kills (docs/reliability.md): dockerd SIGKILLed in the middle of a run and restarted, and
gcd itself SIGKILLed at random moments of its runs and of a daemon. Afterwards an independent
look at the engine (the docker SDK) and at the state (SQLite's own integrity check, the rows
read directly) shows that nothing a rule or guard kept is gone, nothing recorded was lost or
moved, no temp file was left behind, and the next run completes what was planned.

Each test starts its own private engine (a few seconds), which it may kill: the suite's
session engine is never touched."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from gcd.engine.client import Engine
from tests.figures import Figure, record
from tests.integration.daemon_process import DaemonProcess, wait_until
from tests.integration.engines import DEFAULT_ENGINE, engine_for, selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.proxy import EngineProxy, deleting
from tests.integration.reliability import (
    STATE_FILES,
    backdate,
    first_sightings,
    gcd_command,
    has_traceback,
    image_ids,
    integrity,
    kill_engine,
    leftovers,
    run_gcd,
    short,
)

POLICY = (
    "version: 1\n"
    "safety: {min_age: 1h, max_delete_fraction: 1}\n"
    "images:\n"
    "  keep:\n"
    "    - reference: ['keep/**']\n"
    "schedule:\n"
    "  every: 2s\n"
)
JUNK = 40
KEPT = 8


@pytest.fixture
def private() -> Iterator[PrivateEngine]:
    """A private engine of this test's own, which the test may SIGKILL."""
    if selected_engine() != DEFAULT_ENGINE:
        pytest.skip("the kill tests run on the suite's default engine (Debian's docker.io)")
    with engine_for(selected_engine()) as engine:
        yield engine


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def client(private: PrivateEngine) -> docker.APIClient:
    return docker.APIClient(base_url=private.host, version="auto", timeout=60)


def seed(api: docker.APIClient, state_dir: Path) -> tuple[set[str], set[str], str]:
    """JUNK unkept images and KEPT kept ones (keep/**), all old, and one old unkept image a
    stopped container uses (kept by the in-use guard). Returns (junk, kept, container)."""
    junk = load(
        api, *(image(layer(2_000, f"k-junk-{n}"), tags=(f"junk/a:{n}",)) for n in range(JUNK))
    )
    kept = load(
        api, *(image(layer(2_000, f"k-keep-{n}"), tags=(f"keep/a:{n}",)) for n in range(KEPT))
    )
    (used,) = load(api, image(runnable_layer(), layer(2_000, "k-used"), tags=("junk/used:1",)))
    created = api.create_container(
        used, command=["true"], host_config=api.create_host_config(network_mode="none")
    )
    backdate(api, state_dir, [*junk, *kept, used])
    return set(junk), {*kept, used}, str(created["Id"])


def kill_on_delete(proxy: EngineProxy, private: PrivateEngine, nth: int) -> list[float]:
    """SIGKILL dockerd a random 0–30 ms after gcd's `nth` image DELETE reaches the proxy, so
    that the kill lands while that request or one of the next is in the engine."""
    seen: list[float] = []
    rng = random.Random(nth)

    def on_delete(_method: str, _path: str) -> None:
        seen.append(time.monotonic())
        if len(seen) == nth:
            threading.Timer(rng.uniform(0, 0.03), kill_engine, (private,)).start()

    proxy.before(deleting, on_delete, times=None)
    return seen


def test_dockerd_killed_mid_run_loses_nothing_kept_and_the_next_run_completes(
    private: PrivateEngine, policy: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    api = client(private)
    junk, kept, container = seed(api, state_dir)
    api.close()
    with EngineProxy(private.socket) as proxy:
        kill_on_delete(proxy, private, nth=10)
        first = run_gcd(proxy.host, state_dir, "run", "--once", "--policy", str(policy))
    assert first.code == 3, first.stderr[-2000:]
    assert not has_traceback(first.stderr), first.stderr[-3000:]
    assert "unreachable" in first.stderr
    assert integrity(state_dir) == "ok"

    private.start()
    api = client(private)
    present = image_ids(api)
    assert kept <= present, "a kept image is gone after dockerd was killed"
    assert api.inspect_container(container)["Image"] in present
    # When the 10th DELETE reached the proxy, at most `removal_workers` deletions (it and the
    # ones started beside it) were still in flight: every earlier one was done.
    at_least = 10 - Engine.removal_workers
    assert at_least <= JUNK - len(junk & present) < JUNK, "the kill did not land part way"

    second = run_gcd(private.host, state_dir, "run", "--once", "--policy", str(policy))
    assert second.code == 0, second.stderr[-2000:]
    assert not has_traceback(second.stderr)
    present = image_ids(api)
    api.close()
    assert not junk & present, "the run after the restart did not complete the plan"
    assert kept <= present
    both = first.removed_images + second.removed_images
    assert len(both) == len(set(both)), "an image was reported removed twice"
    assert set(both) <= {short(i) for i in junk}
    assert integrity(state_dir) == "ok"
    record(
        Figure(
            area="kills",
            scenario="dockerd SIGKILLed mid-run (one-shot), restarted",
            at_risk=len(kept),
            wrongly_removed=len(kept - present),
            faults=1,
            removed=len(junk),
        )
    )


def engine_up(url: str) -> float | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("gcd_engine_up "):
            return float(line.split()[1])
    return None


def test_the_daemon_survives_dockerd_killed_mid_cycle_and_a_later_cycle_completes(
    private: PrivateEngine, policy: Path, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    api = client(private)
    junk, kept, container = seed(api, state_dir)
    api.close()
    with EngineProxy(private.socket) as proxy:
        kill_on_delete(proxy, private, nth=10)
        with DaemonProcess(proxy.host, policy, state_dir) as daemon:
            url = daemon.wait_for("metrics_serving")["url"]
            daemon.wait_for("cycle_failed", timeout=90)
            assert daemon.process.poll() is None, "the daemon died with the engine"
            wait_until(lambda: engine_up(url) == 0, 30, "gcd_engine_up 0 while dockerd is down")
            private.start()
            wait_until(lambda: engine_up(url) == 1, 60, "gcd_engine_up 1 once dockerd is back")
            daemon.wait_for("run_finished", where=lambda e: e.get("removed", 0) > 0, timeout=60)
            api = client(private)
            wait_until(lambda: not junk & image_ids(api), 60, "the plan completed")
            assert daemon.process.poll() is None
        code = daemon.process.returncode
        raw = "".join(daemon.raw)
    present = image_ids(api)
    assert api.inspect_container(container)["Image"] in present
    api.close()
    assert code == 0
    assert not has_traceback(raw), raw[-3000:]
    assert kept <= present
    removed = [str(e["image"]) for e in daemon.named("image_removed")]
    assert len(removed) == len(set(removed)), "an image was reported removed twice"
    assert integrity(state_dir) == "ok"
    record(
        Figure(
            area="kills",
            scenario="dockerd SIGKILLed mid-cycle (daemon), restarted",
            at_risk=len(kept),
            wrongly_removed=len(kept - present),
            faults=1,
            removed=len(junk),
        )
    )


KILL_BUDGET_SECONDS = 30.0


def kill_at(
    process: subprocess.Popen[bytes], state_dir: Path, after: float, *, on_write: bool
) -> bool:
    """SIGKILL `process` `after` seconds from now or, `on_write`, the moment state.db or its
    WAL changes on disk (a commit in progress: SQLite writes the WAL frames, then syncs);
    False if it exited first."""
    deadline = time.monotonic() + (60.0 if on_write else after)
    files = [state_dir / "state.db", state_dir / "state.db-wal"]

    def stamp() -> list[tuple[int, int] | None]:
        found: list[tuple[int, int] | None] = []
        for path in files:
            try:
                status = path.stat()
                found.append((status.st_size, status.st_mtime_ns))
            except FileNotFoundError:
                found.append(None)
        return found

    first = stamp()
    while process.poll() is None and time.monotonic() < deadline:
        if on_write and stamp() != first:
            break
        time.sleep(0.001 if on_write else 0.01)
    if process.poll() is not None:
        return False
    process.send_signal(signal.SIGKILL)
    return True


DAEMON_KILLS = 4


def test_gcd_sigkilled_at_random_moments_never_damages_or_loses_the_state(
    private: PrivateEngine, policy: Path, tmp_path: Path
) -> None:
    """Each round loads three young images (new first sightings to write) and one old unkept
    one (a deletion, and a row to forget), starts `gcd run --once` (some with --textfile) or
    `gcd plan`, and SIGKILLs it at a random moment of its usual lifetime. After every kill the
    state must pass SQLite's integrity check and every first sighting recorded before must be
    there unchanged, unless its image left the engine. Then a few daemons are killed the same
    way, between and during their cycles and last-use flushes."""
    state_dir = tmp_path / "state"
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    api = client(private)
    (kept,) = load(api, image(runnable_layer(), layer(2_000, "s-keep"), tags=("keep/s:1",)))
    backdate(api, state_dir, [kept])
    rng = random.Random(11)
    base = ("--policy", str(policy))
    timed = run_gcd(private.host, state_dir, "run", "--once", *base)
    assert timed.code == 0, timed.stderr
    lifetime = 0.0
    for _ in range(3):  # a run's usual length on this machine, to aim the kills
        begin = time.monotonic()
        run_gcd(private.host, state_dir, "plan", *base)
        lifetime = max(lifetime, time.monotonic() - begin)
    kills = rounds = on_write = 0
    deadline = time.monotonic() + KILL_BUDGET_SECONDS
    while time.monotonic() < deadline:
        rounds += 1
        young = [
            image(layer(500, f"s-{rounds}-{n}"), tags=(f"young/s{rounds}:{n}",)) for n in range(3)
        ]
        (old, *_) = load(
            api, image(layer(500, f"s-old-{rounds}"), tags=(f"junk/s:{rounds}",)), *young
        )
        backdate(api, state_dir, [old])
        before = first_sightings(state_dir)
        command = rng.choice(
            [
                ("run", "--once", *base),
                ("run", "--once", "--textfile", str(textfile), *base),
                ("plan", *base),
            ]
        )
        process = subprocess.Popen(
            gcd_command(private.host, state_dir, *command),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        targeted = rounds % 2 == 0
        if kill_at(process, state_dir, rng.uniform(0.1, lifetime), on_write=targeted):
            kills += 1
            on_write += targeted
        process.wait(30)
        assert process.stderr is not None
        assert not has_traceback(process.stderr.read().decode(errors="replace"))
        assert integrity(state_dir) == "ok"
        after = first_sightings(state_dir)
        present = image_ids(api)
        for key, when in before.items():
            if key in after:
                assert after[key] == when, f"the first sighting of {key[3][:19]} moved"
            else:
                assert key[3] not in present, f"the first sighting of {key[3][:19]} was lost"
    assert kills >= 10, f"only {kills} of {rounds} rounds were killed: the test proved little"
    assert on_write >= 4, f"only {on_write} kills landed on a state write"

    daemon_kills = 0
    for n in range(DAEMON_KILLS):
        (old,) = load(api, image(layer(500, f"d-old-{n}"), tags=(f"junk/d:{n}",)))
        backdate(api, state_dir, [old])
        before = first_sightings(state_dir)
        with DaemonProcess(private.host, policy, state_dir) as daemon:
            daemon.wait_for("daemon_ready")
            # Containers created and started make the daemon record and flush last uses.
            for m in range(2):
                api.start(api.create_container(kept, command=["true"], name=f"use-{n}-{m}"))
            time.sleep(rng.uniform(0.0, 2.5))  # within or between cycles (every 2 s)
            daemon.process.send_signal(signal.SIGKILL)
            daemon.process.wait(30)
            daemon_kills += 1
        assert not has_traceback("".join(daemon.raw))
        assert integrity(state_dir) == "ok"
        after = first_sightings(state_dir)
        present = image_ids(api)
        for key, when in before.items():
            assert after.get(key, when) == when
            assert key in after or key[3] not in present

    # A kill between a textfile's write and its rename leaves a temp file (its window is a
    # few ms, so the rounds above rarely hit it): one such file, as a killed writer leaves it.
    stale = textfile / ".gcd.prom.0123456789abcdef"
    stale.write_text("# half a scrape\n")
    final = run_gcd(private.host, state_dir, "run", "--once", "--textfile", str(textfile), *base)
    assert final.code == 0, final.stderr[-2000:]
    assert leftovers(textfile, ["gcd.prom"]) == []
    assert leftovers(state_dir, STATE_FILES) == []
    assert integrity(state_dir) == "ok"
    present = image_ids(api)
    assert kept in present
    assert not [i for i in api.images() if any(t.startswith("junk/") for t in i["RepoTags"] or ())]
    api.close()
    record(
        Figure(
            area="kills",
            scenario="gcd SIGKILLed at random moments and on state writes (runs, plans, daemons)",
            at_risk=len(before),
            wrongly_removed=0 if kept in present else 1,
            faults=kills + daemon_kills,
            removed=rounds + DAEMON_KILLS,
        )
    )
