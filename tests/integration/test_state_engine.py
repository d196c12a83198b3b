"""The SQLite state against real engines and real gcd processes: the scope each engine gets,
a store switch, the migration of state.json through `gcd plan`, and `gcd plan` writing the
state while the daemon cycles and flushes last uses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.engine.client import Engine
from gcd.engine.identity import engine_scope
from tests.integration.daemon_process import DaemonProcess
from tests.integration.engines import ENGINES_DIR, engine_for, selected_engine
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.state_seed import engine_state, scope_of

OLD = datetime.now(UTC) - timedelta(days=30)
KEEP_YOUNG = (
    "version: 1\nsafety: {min_age: 1h, max_delete_fraction: 1}\n"
    "images:\n  keep:\n    - younger_than: 7d\n"
)


def plan(host: str, state_dir: Path, policy: Path) -> dict[str, Any]:
    result = gcd(host, state_dir, "plan", "--policy", str(policy), "-o", "json")
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def ages(document: dict[str, Any]) -> dict[str, int]:
    return {d["id"]: int(d["age_seconds"]) for d in document["decisions"]}


@pytest.mark.core
def test_the_scope_is_the_same_on_every_call_and_after_a_restart() -> None:
    """Podman answers a new random `ID` to every `GET /info`: keyed by it, every cycle would
    start all ages afresh."""
    with engine_for(selected_engine()) as private:
        first = engine_scope(Engine(private.host))
        assert engine_scope(Engine(private.host)) == first
        private.stop_engine()
        private.start()
        assert engine_scope(Engine(private.host)) == first
        assert str(private.data_root) in first.store


@pytest.mark.core
def test_a_plan_migrates_state_json_and_keeps_its_ages(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    (old,) = load(api, image(layer(100, "mig"), tags=("mig/app:1",)))
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    legacy = state_dir / "state.json"
    legacy.write_text(json.dumps({"format": 1, "images": {old: {"first_seen": OLD.isoformat()}}}))
    legacy.chmod(0o600)
    policy = tmp_path / "policy.yaml"
    policy.write_text(KEEP_YOUNG)
    document = plan(clean_engine.host, state_dir, policy)
    assert ages(document)[old] >= timedelta(days=30).total_seconds() - 60
    assert [d["rule"] for d in document["decisions"] if d["kind"] == "image"] == ["delete.unkept"]
    assert not legacy.exists()
    assert (state_dir / "state.json.migrated").is_file()
    assert engine_state(api, state_dir).first_seen(old) == OLD
    assert ages(plan(clean_engine.host, state_dir, policy))[old] >= ages(document)[old]


@pytest.mark.core
def test_gcd_plan_writes_the_state_while_the_daemon_cycles_and_flushes(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """No host lock for `gcd plan`: it never waits for or fails on the daemon's cycles, and
    the first sightings it writes and the last uses the daemon writes are all kept."""
    (used,) = load(api, image(runnable_layer(), layer(10, "pd-u"), tags=("pd/used:1",)))
    state_dir = tmp_path / "state"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nsafety: {min_age: 1h}\nimages:\n  keep:\n    - reference: ['**']\n"
        "schedule:\n  every: 1s\n"
    )
    arrived: list[str] = []
    with DaemonProcess(clean_engine.host, policy, state_dir) as daemon:
        daemon.wait_for("run_finished")
        container = api.create_container("pd/used:1", command=["true"], network_disabled=True)
        api.start(container)
        for n in range(4):
            arrived += load(api, image(layer(10, f"pd-{n}"), tags=(f"pd/new:{n}",)))
            plan(clean_engine.host, state_dir, policy)
        daemon.wait_for("image_used", where=lambda e: used[7:19] == e.get("image"))
        daemon.wait_for("run_finished", count=len(daemon.named("run_finished")) + 2)
        assert daemon.stop() == 0  # SIGTERM: the last uses are flushed on the way out
    state = engine_state(api, state_dir)
    assert state.last_used(used) is not None
    assert all(state.first_seen(image_id) is not None for image_id in arrived)
    api.remove_container(container)


def test_a_switch_to_the_containerd_store_and_back_keeps_each_stores_ages(
    tmp_path: Path,
) -> None:
    """One data root, first the overlay2 graphdriver, then the containerd store, then overlay2
    again: the containerd store's images start afresh, and its cycles do not forget the
    overlay2 rows, which count again after the switch back."""
    if not (ENGINES_DIR / "docker-26" / ".installed").is_file():
        pytest.skip("docker-26 is not installed: scripts/engines docker-26")
    data_root, state_dir = tmp_path / "data", tmp_path / "state"
    policy = tmp_path / "policy.yaml"
    policy.write_text(KEEP_YOUNG)
    spec = image(layer(100, "switch"), tags=("switch/app:1",))
    scopes = []
    for name in ("docker-26", "docker-26-containerd", "docker-26"):
        with engine_for(name, data_root) as private:
            api = docker.APIClient(base_url=private.host, version="auto", timeout=120)
            scopes.append(scope_of(api))
            (image_id,) = load(api, spec)
            if len(scopes) == 1:
                state = engine_state(api, state_dir)
                state.mark_seen(image_id, OLD)
                state.save()
            seen = ages(plan(private.host, state_dir, policy))[image_id]
            api.close()
        old_enough = seen >= timedelta(days=30).total_seconds() - 60
        assert old_enough == (name == "docker-26"), (name, seen)
    assert scopes[0] == scopes[2] != scopes[1]
    assert scopes[1].store.startswith("containerd/")
