"""`safety.pace` and `safety.max_cycle_duration` on the real engine, through `gcd run --once`:
the measured removal rate stays within the pace, and a cycle over its time budget stops at
an object boundary (every image is either gone or still there with all its tags), reports
the rest as left for the next cycle, and the next cycle finishes the work."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import docker

from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load

COUNT = 12
PACE = 4.0


def _images(api: docker.APIClient) -> list[str]:
    specs = [image(layer(1024, f"pace-{n}"), tags=(f"pace/app{n}:1",)) for n in range(COUNT)]
    return load(api, *specs)


def _policy(tmp_path: Path, safety: str) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"version: 1\nsafety: {{min_age: 0s, max_delete_fraction: 1, {safety}}}\nimages: {{}}\n"
    )
    policy.chmod(0o600)
    return policy


def _run(host: PrivateEngine, tmp_path: Path, safety: str) -> tuple[dict[str, Any], list[Any]]:
    policy = _policy(tmp_path, safety)
    done = gcd(
        host.host,
        tmp_path / "state",
        "--log-format",
        "json",
        "run",
        "--once",
        "--policy",
        str(policy),
        "-o",
        "json",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    events = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return json.loads(done.stdout), events


def test_pace_bounds_the_measured_removal_rate(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    _images(api)
    document, events = _run(clean_engine, tmp_path, f"pace: {{images: {PACE:g}}}")
    assert document["result"]["by_status"]["removed"] == COUNT
    stamps = sorted(
        datetime.fromisoformat(e["timestamp"]) for e in events if e["event"] == "image_removed"
    )
    assert len(stamps) == COUNT
    span = (stamps[-1] - stamps[0]).total_seconds()
    # 11 gaps of at least 1/4 s each: 2.75 s; generous bounds for a loaded CI machine.
    rate = (COUNT - 1) / span
    assert rate <= PACE * 1.2, f"{rate:.2f} removals/s over {span:.2f} s"
    assert not api.images(name="pace/*")


def test_a_cycle_over_its_time_budget_stops_at_an_object_boundary(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    _images(api)
    # The budget counts from the cycle's start, its snapshot included: measure what a
    # snapshot and plan take on this engine (Podman lists slowly; the first plan of a state
    # also fetches layers, so the second is timed) and leave 2 s to remove in, at 1 per s.
    policy = str(_policy(tmp_path, "pace: 1"))
    for _ in range(2):
        started = time.monotonic()
        planned = gcd(clean_engine.host, tmp_path / "state", "plan", "--policy", policy)
        assert planned.returncode == 0, planned.stderr[-3000:]
    budget = math.ceil(time.monotonic() - started) + 2
    document, events = _run(clean_engine, tmp_path, f"pace: 1, max_cycle_duration: {budget}s")
    statuses = [o["status"] for o in document["outcomes"]]
    removed = statuses.count("removed")
    assert 1 <= removed < COUNT, statuses
    assert set(statuses) == {"removed", "not_attempted"}
    # removals come first and stop at one point: no object is half-done
    assert statuses == ["removed"] * removed + ["not_attempted"] * (COUNT - removed)
    left = (
        f"cycle time budget of {budget}s (safety.max_cycle_duration) used up; "
        "left for the next cycle"
    )
    assert {o["detail"] for o in document["outcomes"] if o["status"] == "not_attempted"} == {left}
    assert document["result"]["time_up"] == left
    [up] = [e for e in events if e["event"] == "cycle_time_up"]
    assert up["left_for_next"] == COUNT - removed
    [summary] = [e for e in events if e["event"] == "run_finished"]
    assert (summary["time_up"], summary["left_for_next"]) == (left, COUNT - removed)
    present = {  # Podman spells the names in full
        i["Id"]: {t.removeprefix("docker.io/") for t in i["RepoTags"] or ()} for i in api.images()
    }
    for outcome in document["outcomes"]:
        if outcome["status"] == "removed":
            assert outcome["id"] not in present
        else:  # untouched: still there with its tag
            assert present[outcome["id"]] == {r for r in outcome["references"] if "@" not in r}
    assert len(present) == COUNT - removed
    # The next cycle, with no budget, finishes what was left.
    after, _ = _run(clean_engine, tmp_path, "pace: 20")
    assert after["result"]["by_status"]["removed"] == COUNT - removed
    assert after["result"]["time_up"] is None
    assert not api.images(name="pace/*")
