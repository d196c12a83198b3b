"""Scraping the live daemon, and the textfile of timer mode, against the suite's engine."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.daemon_process import DaemonProcess
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = (
    "version: 1\n"
    "safety: {min_age: 1h, max_delete_fraction: 1}\n"
    "images:\n"
    "  keep:\n"
    "    - reference: ['pinned/**']\n"
    "  dangling: {keep_within: 1h}\n"
    "schedule:\n"
    "  every: 1h\n"
)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def total(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        value
        for (metric, metric_labels), value in found.items()
        if metric == name and all((k, v) in metric_labels for k, v in labels.items())
    )


def scrape_after_first_cycle(url: str, timeout: float = 60.0) -> str:
    """The daemon records a cycle's metrics after `run_finished` (and after `GET /system/df`,
    slow on the containerd store): scrape until they are there."""
    deadline = time.monotonic() + timeout
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            scrape: str = response.read().decode()
        if total(samples(scrape), "gcd_cycles_total") >= 1 or time.monotonic() > deadline:
            return scrape
        time.sleep(0.1)


def seed(api: docker.APIClient, state_dir: Path) -> list[str]:
    base = layer(200_000, "metrics-base")
    ids = load(
        api,
        image(base, layer(10_000, "m-pin"), tags=("pinned/base:1",)),
        image(base, layer(30_000, "m-a"), tags=("team/a:1", "team/a:latest", "other/a:1")),
        image(base, layer(50_000, "m-b"), tags=("team/b:1",)),
        image(layer(70_000, "m-c"), tags=("team/c:1",)),
        image(base, layer(5_000, "m-dangling")),
    )
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, OLD)
    state.save()
    return ids


@pytest.mark.core
def test_counters_move_by_exactly_what_the_cycle_did(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    before = api.df()["LayersSize"]
    with DaemonProcess(clean_engine.host, policy, state_dir) as daemon:
        url = daemon.wait_for("metrics_serving")["url"]
        finished = daemon.wait_for("run_finished")
        scrape = scrape_after_first_cycle(url)
    freed = before - api.df()["LayersSize"]
    found = samples(scrape)

    assert finished["removed"] == 4
    assert freed > 0
    reclaimed = total(found, "gcd_reclaimed_bytes_total", kind="image")
    assert abs(reclaimed - freed) <= freed * 0.01
    assert reclaimed == finished["freed_bytes"]
    assert total(found, "gcd_reclaimed_bytes_total", rule="delete.dangling") > 0
    assert total(found, "gcd_removals_total", outcome="removed") == 4
    assert total(found, "gcd_cycles_total", trigger="schedule", result="success") == 1
    assert total(found, "gcd_cycles_total") == 1
    assert total(found, "gcd_engine_up") == 1
    assert total(found, "gcd_kept", rule="keep.reference") == 1
    assert total(found, "gcd_reclaimable_bytes", kind="image") == 0
    digest = hashlib.sha256(policy.read_bytes()).hexdigest()
    assert total(found, "gcd_policy_info", sha256=digest) == 1
    assert total(found, "gcd_last_success_timestamp_seconds") > 0
    # What is left of the images' layers after the cycle, by gcd's accounting from the
    # cycle's one df (no second one): on overlay2 the engine's own `LayersSize`; on the
    # containerd store `LayersSize` also counts container snapshots and differs.
    left = total(found, "gcd_docker_usage_bytes", kind="image")
    if clean_engine.name == "docker-26-containerd":
        assert 0 < left <= api.df()["LayersSize"]
    else:
        assert left == api.df()["LayersSize"]

    if shutil.which("promtool"):
        lint = subprocess.run(
            ["promtool", "check", "metrics"],
            input=scrape,
            capture_output=True,
            text=True,
            check=False,
        )
        assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_textfile_of_timer_mode_parses_and_counters_carry_over(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    seed(api, state_dir)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)

    def run_once() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        command = [sys.executable, "-m", "gcd", "run", "--once", "--host", clean_engine.host]
        command += ["--state-dir", str(state_dir), "--policy", str(policy)]
        command += ["--textfile", str(textfiles)]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        written = textfiles / "gcd.prom"
        assert written.stat().st_mode & 0o777 == 0o644
        return samples(written.read_text())

    first = run_once()
    assert total(first, "gcd_removals_total", outcome="removed") == 4
    assert total(first, "gcd_cycles_total", trigger="once", result="success") == 1
    load(api, image(layer(1_000, "m-late"), tags=("team/late:1",)))
    state = engine_state(api, state_dir)
    state.mark_seen(api.inspect_image("team/late:1")["Id"], OLD)
    state.save()
    second = run_once()
    assert total(second, "gcd_removals_total", outcome="removed") == 5
    assert total(second, "gcd_cycles_total", trigger="once", result="success") == 2
    assert total(second, "gcd_reclaimed_bytes_total") > total(first, "gcd_reclaimed_bytes_total")
    assert sorted(f for f in textfiles.iterdir()) == [textfiles / "gcd.prom"]
