"""Concurrency (docs/reliability.md): two gcd processes on one state directory at once. The
host-wide lock (`gcd.lock`, held for each run and each daemon cycle) lets one execute and
turns the other away (exit 5, or a `cycle_failed` event in the daemon), so nothing is removed
twice; `gcd plan`, which takes no lock, works beside a running cycle and changes nothing.

A proxy in front of the engine holds each image DELETE of the first process until the second
one is done (a deadline, not a guess at how long a process takes on a loaded machine), so that
its run is still executing then: gcd deletes several images at once, so a fixed delay per
delete no longer makes the runs overlap."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.figures import Figure, record
from tests.integration.daemon_process import DaemonProcess, wait_until
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.proxy import EngineProxy, deleting
from tests.integration.reliability import (
    backdate,
    gcd_command,
    has_traceback,
    image_ids,
    integrity,
    parse_events,
    run_gcd,
    short,
)

pytestmark = pytest.mark.core  # the lock and WAL readers are gcd's own: cheap on every engine

POLICY = (
    "version: 1\n"
    "safety: {min_age: 1h, max_delete_fraction: 1}\n"
    "images:\n"
    "  keep:\n"
    "    - reference: ['keep/**']\n"
    "schedule:\n"
    "  every: 1s\n"
)
JUNK = 16
DELETE_HOLD_SECONDS = 0.35


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


@pytest.fixture
def slow(clean_engine: PrivateEngine) -> Iterator[EngineProxy]:
    """The engine behind a proxy that holds every image DELETE for DELETE_HOLD_SECONDS."""
    with EngineProxy(
        clean_engine.socket, delay_seconds=DELETE_HOLD_SECONDS, delay=deleting
    ) as proxy:
        yield proxy


def seed(api: docker.APIClient, state_dir: Path) -> tuple[set[str], set[str]]:
    junk = load(
        api, *(image(layer(1_000, f"c-junk-{n}"), tags=(f"junk/c:{n}",)) for n in range(JUNK))
    )
    kept = load(api, *(image(layer(1_000, f"c-keep-{n}"), tags=(f"keep/c:{n}",)) for n in range(4)))
    backdate(api, state_dir, [*junk, *kept])
    return set(junk), set(kept)


def first_delete(proxy: EngineProxy) -> threading.Event:
    arrived = threading.Event()
    proxy.before(deleting, lambda _m, _p: arrived.set())
    return arrived


def held_deletes(proxy: EngineProxy) -> threading.Event:
    """Every image DELETE through `proxy` waits until the event is set (50 s at most)."""
    release = threading.Event()

    def hold(_method: str, _path: str) -> None:
        release.wait(50)

    proxy.before(deleting, hold, times=None)
    return release


def test_a_second_run_beside_a_running_one_is_turned_away_and_nothing_goes_twice(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    slow: EngineProxy,
    policy: Path,
    tmp_path: Path,
) -> None:
    state_dir = tmp_path / "state"
    junk, kept = seed(api, state_dir)
    arrived = first_delete(slow)
    # The first run's deletes wait until the other three have been turned away.
    others_done = held_deletes(slow)
    command = gcd_command(slow.host, state_dir, "run", "--once", "--policy", str(policy))
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert arrived.wait(60), "the first run never deleted"
    with ThreadPoolExecutor(3) as pool:  # three at once, while the first still deletes
        seconds = list(
            pool.map(
                lambda _n: run_gcd(
                    clean_engine.host, state_dir, "run", "--once", "--policy", str(policy)
                ),
                range(3),
            )
        )
    others_done.set()
    assert first.poll() is None, "the first run ended before the others: no overlap proven"
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err[-2000:]
    for second in seconds:
        assert second.code == 5, second.stderr[-2000:]
        assert "holds" in second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert second.removed_images == []
        assert not has_traceback(second.stderr)
    removed = [str(e["image"]) for e in parse_events(err) if e.get("event") == "image_removed"]
    assert sorted(removed) == sorted(short(i) for i in junk)
    present = image_ids(api)
    assert kept <= present
    assert not junk & present
    after = run_gcd(clean_engine.host, state_dir, "run", "--once", "--policy", str(policy))
    assert after.code == 0  # the lock was released
    assert after.removed_images == []
    assert integrity(state_dir) == "ok"
    record(
        Figure(
            area="concurrency",
            scenario="two `gcd run --once` on one state directory",
            at_risk=len(kept),
            wrongly_removed=len(kept - present),
            faults=len(seconds),
            removed=len(removed),
        )
    )


def test_a_daemon_and_a_one_shot_run_never_execute_at_once(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    slow: EngineProxy,
    policy: Path,
    tmp_path: Path,
) -> None:
    """Both orders: a run started during a daemon cycle exits 5; a daemon cycle that comes
    due while a run executes fails with the lock's message, and the daemon goes on."""
    state_dir = tmp_path / "state"
    junk, kept = seed(api, state_dir)
    arrived = first_delete(slow)
    release = held_deletes(slow)
    with DaemonProcess(slow.host, policy, state_dir) as daemon:
        assert arrived.wait(60), "the daemon never deleted"
        try:
            during = run_gcd(clean_engine.host, state_dir, "run", "--once", "--policy", str(policy))
        finally:
            release.set()
        daemon.wait_for("run_finished", where=lambda e: e.get("removed", 0) > 0, timeout=60)
        assert daemon.process.poll() is None
    daemon_removed = [str(e["image"]) for e in daemon.named("image_removed")]
    assert during.code == 5, during.stderr[-2000:]
    assert during.removed_images == []

    more, more_kept = reseed(api, state_dir)
    arrived = first_delete(slow)
    release = held_deletes(slow)
    command = gcd_command(slow.host, state_dir, "run", "--once", "--policy", str(policy))
    one_shot = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert arrived.wait(60), "the one-shot run never deleted"
    with DaemonProcess(clean_engine.host, policy, state_dir) as second_daemon:
        try:
            refused = second_daemon.wait_for(
                "cycle_failed", where=lambda e: "holds" in str(e.get("error")), timeout=60
            )
        finally:
            release.set()
        assert f"pid {one_shot.pid}" in refused["error"]
        _, err = one_shot.communicate(timeout=120)
        second_daemon.wait_for("run_finished", timeout=60)  # the next cycle gets the lock
        assert second_daemon.process.poll() is None
    one_shot_removed = [
        str(e["image"]) for e in parse_events(err) if e.get("event") == "image_removed"
    ]
    assert one_shot.returncode == 0, err[-2000:]
    everything = [
        *daemon_removed,
        *one_shot_removed,
        *map(str, (e["image"] for e in second_daemon.named("image_removed"))),
    ]
    assert len(everything) == len(set(everything)), "an image was removed twice"
    assert sorted(everything) == sorted(short(i) for i in junk | more)
    for text in ("".join(daemon.raw), "".join(second_daemon.raw), err):
        assert not has_traceback(text)
    present = image_ids(api)
    assert (kept | more_kept) <= present
    assert integrity(state_dir) == "ok"
    record(
        Figure(
            area="concurrency",
            scenario="a daemon and `gcd run --once`, both orders",
            at_risk=len(kept | more_kept),
            wrongly_removed=len((kept | more_kept) - present),
            faults=2,
            removed=len(everything),
        )
    )


def reseed(api: docker.APIClient, state_dir: Path) -> tuple[set[str], set[str]]:
    junk = load(
        api, *(image(layer(1_000, f"c-more-{n}"), tags=(f"junk/m:{n}",)) for n in range(JUNK))
    )
    kept = load(api, image(layer(1_000, "c-more-keep"), tags=("keep/m:1",)))
    backdate(api, state_dir, [*junk, *kept])
    return set(junk), set(kept)


def test_plan_beside_a_running_daemon_works_and_changes_nothing(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    slow: EngineProxy,
    policy: Path,
    tmp_path: Path,
) -> None:
    """`gcd plan` takes no lock (README, "The state": WAL readers never wait): it answers
    during a cycle and deletes nothing, so every image that went is in the daemon's log."""
    state_dir = tmp_path / "state"
    junk, kept = seed(api, state_dir)
    arrived = first_delete(slow)
    release = held_deletes(slow)
    plans = []
    with DaemonProcess(slow.host, policy, state_dir) as daemon:
        assert arrived.wait(60), "the daemon never deleted"
        try:
            for _ in range(3):
                plans.append(
                    run_gcd(
                        clean_engine.host, state_dir, "plan", "--policy", str(policy), "-o", "json"
                    )
                )
        finally:
            release.set()
        daemon.wait_for("run_finished", where=lambda e: e.get("removed", 0) > 0, timeout=60)
        wait_until(lambda: not junk & image_ids(api), 30, "the daemon's plan completed")
    for planned in plans:
        assert planned.code == 0, planned.stderr[-2000:]
        assert planned.removed_images == []
        assert not has_traceback(planned.stderr)
        actions = decisions(json.loads(planned.stdout))
        assert all(actions[i] == "keep" for i in kept if i in actions)
        assert {i for i, action in actions.items() if action == "delete"} <= junk
    first = decisions(json.loads(plans[0].stdout))
    assert {i for i, action in first.items() if action == "delete"}, "planned during no cycle"
    removed = [str(e["image"]) for e in daemon.named("image_removed")]
    assert sorted(removed) == sorted(short(i) for i in junk)  # the plans removed nothing
    present = image_ids(api)
    assert kept <= present
    assert integrity(state_dir) == "ok"
    record(
        Figure(
            area="concurrency",
            scenario="`gcd plan` beside a running daemon cycle",
            at_risk=len(kept),
            wrongly_removed=len(kept - present),
            faults=len(plans),
            removed=len(removed),
        )
    )


def decisions(document: Any) -> dict[str, str]:
    """Object id → "keep"/"delete" of every decision anywhere in a plan document."""
    found: dict[str, str] = {}
    if isinstance(document, dict):
        if "action" in document and "id" in document:
            found[str(document["id"])] = str(document["action"])
        for value in document.values():
            found.update(decisions(value))
    elif isinstance(document, list):
        for value in document:
            found.update(decisions(value))
    return found
