"""Real disk pressure: the engine's data root on a small loop-mounted ext4 filesystem."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.host.disk import measure
from tests.integration.daemon_process import DaemonProcess
from tests.integration.engines import engine_for, selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.loop_disk import loop_filesystem
from tests.integration.state_seed import engine_state

MiB = 2**20
NEVER = "0 0 1 1 *"  # cron: only the disk check triggers cycles in these tests


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("mkfs.ext4 is missing (e2fsprogs)")
    with loop_filesystem(tmp_path, "600M") as mount:
        yield mount


@pytest.fixture
def pressured_engine(small_disk: Path) -> Iterator[PrivateEngine]:
    with engine_for(selected_engine(), small_disk / "docker") as private:
        yield private


def write_policy(path: Path, high: float, low: float) -> Path:
    path.write_text(
        "version: 1\n"
        "safety: {min_age: 1h, max_delete_fraction: 1}\n"
        "images:\n"
        "  keep:\n"
        "    - reference: ['pinned/**']\n"
        "    - newest: 100\n"
        f"schedule:\n  cron: '{NEVER}'\n"
        f"  disk: {{high: {high:.4f}, low: {low:.4f}, check_every: 1s}}\n"
    )
    return path


@pytest.mark.core
def test_pressure_evicts_least_recently_used_soft_keeps_until_below_low(
    pressured_engine: PrivateEngine, small_disk: Path, tmp_path: Path
) -> None:
    api = docker.APIClient(base_url=pressured_engine.host, version="auto", timeout=120)
    specs = [image(layer(30 * MiB, "pinned"), tags=("pinned/base:1",))] + [
        image(layer(30 * MiB, f"soft-{n}"), tags=(f"team/app:{n}",)) for n in range(7)
    ]
    ids = [load(api, spec)[0] for spec in specs]  # one at a time: a load stages its tarball
    now = datetime.now(UTC)
    state = engine_state(api, tmp_path / "state")
    for position, image_id in enumerate(ids):
        state.mark_seen(image_id, now - timedelta(days=30))
        # The pinned image is the least recently used of all; then app:0, app:1, ...
        state.mark_used(image_id, now - timedelta(days=20 - position))
    state.save()
    usage = measure(small_disk).pressure(0, 0)
    high, low = usage.bytes_ratio - 0.05, usage.bytes_ratio - 0.25
    policy = write_policy(tmp_path / "policy.yaml", high, low)

    with DaemonProcess(pressured_engine.host, policy, tmp_path / "state") as daemon:
        finished = daemon.wait_for("run_finished", where=lambda e: e["trigger"] == "pressure")
    assert finished["removed"] >= 1
    remaining = {i["Id"] for i in api.images()}
    assert ids[0] in remaining, "a pinned image never yields"
    evicted = [i for i in ids[1:] if i not in remaining]
    assert evicted == ids[1 : 1 + len(evicted)], "least recently used first"
    assert measure(small_disk).pressure(high, low).bytes_ratio < low
    api.close()


def test_with_only_hard_keeps_left_it_says_so_and_backs_off(
    pressured_engine: PrivateEngine, small_disk: Path, tmp_path: Path
) -> None:
    api = docker.APIClient(base_url=pressured_engine.host, version="auto", timeout=120)
    ids = [
        load(api, image(layer(40 * MiB, f"pin-{n}"), tags=(f"pinned/base:{n}",)))[0]
        for n in range(4)
    ]
    state = engine_state(api, tmp_path / "state")
    for image_id in ids:
        state.mark_seen(image_id, datetime.now(UTC) - timedelta(days=30))
    state.save()
    ratio = measure(small_disk).pressure(0, 0).bytes_ratio
    policy = write_policy(tmp_path / "policy.yaml", ratio - 0.05, ratio - 0.2)

    with DaemonProcess(pressured_engine.host, policy, tmp_path / "state") as daemon:
        daemon.wait_for("pressure_unresolved")
        daemon.wait_for("disk_checked", count=3, where=lambda e: e["backing_off"] is True)
        pressure_runs = daemon.named("run_finished")
    assert len(pressure_runs) == 1, "backs off instead of looping"
    assert {i["Id"] for i in api.images()} == set(ids)
    api.close()
