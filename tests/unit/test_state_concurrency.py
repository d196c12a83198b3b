"""Several real OS processes write the state at once, with no lock between them (as `gcd plan`,
`gcd run --once` and the daemon do): no update may be lost and no first sighting may move.

The workers are started with multiprocessing's `spawn` (fresh interpreters, no shared memory
or inherited SQLite handles) and released together by an event; each reports what it proposed
and what it read in a JSON file."""

from __future__ import annotations

import json
import multiprocessing
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gcd.host.state import State
from gcd.host.state_db import Scope

T0 = datetime(2026, 3, 1, tzinfo=UTC)
SCOPE = Scope("engine", "graphdriver/overlay2 /var/lib/docker")
OBJECTS = 3000
WORKERS = 4
ROUNDS = 8
TIMEOUT = 120


def image(n: int) -> str:
    return f"sha256:{n:064x}"


def micros(when: datetime | None) -> int | None:
    return None if when is None else (when - T0) // timedelta(microseconds=1)


def _writer(directory: str, worker: int, start: Any, report: str) -> None:
    """Rounds of: load, read every first sighting, propose one of its own (unique to this
    worker and round) and a random last use for a random two thirds of the objects, save."""
    rng = random.Random(worker)
    seen_read: dict[str, list[int]] = {}
    seen_proposed: dict[str, list[int]] = {}
    used_proposed: dict[str, int] = {}
    start.wait()
    for round_ in range(ROUNDS):
        state = State.load(Path(directory), SCOPE)
        for n in rng.sample(range(OBJECTS), 2 * OBJECTS // 3):
            object_id = image(n)
            already = micros(state.first_seen(object_id))
            if already is not None:
                seen_read.setdefault(object_id, []).append(already)
            proposal = T0 + timedelta(seconds=1 + worker * ROUNDS + round_)
            seen_proposed.setdefault(object_id, []).append(micros(proposal) or 0)
            state.mark_seen(object_id, proposal)
            used = T0 + timedelta(microseconds=rng.randrange(10**12))
            used_proposed[object_id] = max(used_proposed.get(object_id, 0), micros(used) or 0)
            state.mark_used(object_id, used)
        state.save()
    Path(report).write_text(json.dumps([seen_read, seen_proposed, used_proposed]))


def _planner(directory: str, start: Any, report: str) -> None:
    """Like `plan_once` each cycle: load, first sightings of what the engine lists (new images
    arrive every cycle; the `gone/` ones were deleted after cycle 0), uses of what runs,
    forget what is gone, save."""
    start.wait()
    for cycle in range(ROUNDS * 3):
        state = State.load(Path(directory), SCOPE)
        listed = [image(n) for n in range(OBJECTS // 2 + cycle * 20)]
        if cycle == 0:
            listed += [f"gone/{n}" for n in range(100)]
        for object_id in listed:
            state.mark_seen(object_id, T0 + timedelta(hours=cycle))
        for object_id in listed[:10]:
            state.mark_used(object_id, T0 + timedelta(hours=cycle))
        state.forget_missing(listed)
        state.save()
    Path(report).write_text("done")


def _flusher(directory: str, start: Any, report: str) -> None:
    """Like the daemon's `flush_uses`: small batches of last uses, often."""
    rng = random.Random(99)
    latest: dict[str, int] = {}
    start.wait()
    for batch in range(ROUNDS * 20):
        state = State.load(Path(directory), SCOPE)
        for n in rng.sample(range(OBJECTS // 2), 50):
            when = T0 + timedelta(days=30, seconds=batch)
            state.mark_used(image(n), when)
            latest[image(n)] = micros(when) or 0
        state.save()
    Path(report).write_text(json.dumps(latest))


def run_together(*targets: tuple[Any, tuple[Any, ...]]) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=t, args=(*args[:-1], start, args[-1])) for t, args in targets
    ]
    for process in processes:
        process.start()
    start.set()
    for process in processes:
        process.join(TIMEOUT)
    assert [p.exitcode for p in processes] == [0] * len(processes)


def test_concurrent_writers_lose_no_update_and_never_move_a_first_sighting(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "state"  # created by whichever worker comes first
    reports = [tmp_path / f"worker-{n}.json" for n in range(WORKERS)]
    run_together(*((_writer, (str(directory), n, str(reports[n]))) for n in range(WORKERS)))
    final = State.load(directory, SCOPE)
    read: dict[str, set[int]] = {}
    proposed: dict[str, set[int]] = {}
    used: dict[str, int] = {}
    for report in reports:
        seen_read, seen_proposed, used_proposed = json.loads(report.read_text())
        for object_id, values in seen_read.items():
            read.setdefault(object_id, set()).update(values)
        for object_id, values in seen_proposed.items():
            proposed.setdefault(object_id, set()).update(values)
        for object_id, value in used_proposed.items():
            used[object_id] = max(used.get(object_id, 0), value)
    assert len(proposed) == OBJECTS
    moved = {
        object_id: (values, micros(final.first_seen(object_id)))
        for object_id, values in read.items()
        if values != {micros(final.first_seen(object_id))}
    }
    assert moved == {}, "a first sighting read by one worker changed later"
    assert all(micros(final.first_seen(i)) in proposed[i] for i in proposed)
    lost = {
        i: (v, micros(final.last_used(i)))
        for i, v in used.items()
        if micros(final.last_used(i)) != v
    }
    assert lost == {}, "a last use was lost"
    contended = sum(len(values) > 1 for values in proposed.values())
    assert contended > OBJECTS // 2  # the workers really did race for the same rows


def test_a_plan_and_the_daemons_flush_at_once_keep_both_updates(tmp_path: Path) -> None:
    """The bug of state.json: `gcd plan` rewrote the file without the host lock while the
    daemon flushed last uses into it, and the last writer dropped the other's updates."""
    directory = tmp_path / "state"
    flushed = tmp_path / "flusher.json"
    run_together(
        (_planner, (str(directory), str(tmp_path / "planner"))),
        (_flusher, (str(directory), str(flushed))),
    )
    final = State.load(directory, SCOPE)
    latest = json.loads(flushed.read_text())
    assert len(latest) > 100
    assert {i: micros(final.last_used(i)) for i in latest} == latest
    for n in range(OBJECTS // 2 + (ROUNDS * 3 - 1) * 20):
        assert final.first_seen(image(n)) is not None, image(n)
    assert final.first_seen(image(0)) == T0  # the planner's first cycle, never moved
    assert all(final.first_seen(f"gone/{n}") is None for n in range(100))


def _migrator(directory: str, start: Any, report: str) -> None:
    start.wait()
    state = State.load(Path(directory), SCOPE)
    Path(report).write_text(json.dumps(micros(state.first_seen(image(1)))))


def test_processes_that_migrate_state_json_at_once_import_it_once(tmp_path: Path) -> None:
    directory = tmp_path / "state"
    directory.mkdir(mode=0o700)
    images = {
        image(n): {"first_seen": (T0 + timedelta(seconds=n)).isoformat()} for n in range(2000)
    }
    (directory / "state.json").write_text(json.dumps({"format": 1, "images": images}))
    (directory / "state.json").chmod(0o600)
    reports = [tmp_path / f"migrator-{n}.json" for n in range(WORKERS)]
    run_together(*((_migrator, (str(directory), str(reports[n]))) for n in range(WORKERS)))
    assert {json.loads(r.read_text()) for r in reports} == {1_000_000}
    assert not (directory / "state.json").exists()
    assert (directory / "state.json.migrated").is_file()
    final = State.load(directory, SCOPE)
    assert all(final.first_seen(image(n)) == T0 + timedelta(seconds=n) for n in range(2000))
