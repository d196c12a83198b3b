"""`gcd daemon` as a subprocess against the suite's own engine."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.core.references import parse_reference
from tests.integration.daemon_process import DaemonProcess, wait_until
from tests.integration.engines import engine_for, selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)


def write_policy(path: Path, body: str, schedule: str = "every: 1s") -> Path:
    path.write_text(
        "version: 1\n"
        "safety: {min_age: 1h, max_delete_fraction: 1}\n"
        f"{body}\n"
        f"schedule:\n  {schedule}\n"
    )
    return path


def exists(api: docker.APIClient, name: str) -> bool:
    try:
        api.inspect_image(name)
    except docker.errors.NotFound:
        return False
    except docker.errors.APIError as exc:
        # Podman answers 500 "image not known" for an image removed while it inspects it.
        if "image not known" in str(exc.explanation):
            return False
        raise
    return True


def backdate(api: docker.APIClient, state_dir: Path, *ids: str, when: datetime = OLD) -> None:
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, when)
    state.save()


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    return tmp_path / "policy.yaml"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


def test_a_cycle_fires_on_a_short_schedule(
    clean_engine: PrivateEngine, api: docker.APIClient, policy_file: Path, state_dir: Path
) -> None:
    ids = load(
        api,
        image(layer(1000, "d1"), tags=("scratch/app:1",), created=OLD),
        image(layer(1000, "d2"), tags=("keep/app:1",), created=OLD),
    )
    backdate(api, state_dir, *ids)
    write_policy(policy_file, 'images:\n  keep:\n    - reference: ["keep/**"]')
    with DaemonProcess(clean_engine.host, policy_file, state_dir) as daemon:
        daemon.wait_for("daemon_ready")
        wait_until(lambda: not exists(api, "scratch/app:1"), what="scratch/app:1 removed")
        finished = daemon.wait_for("run_finished", where=lambda e: e.get("removed") == 1)
        assert finished["trigger"] == "schedule"
        assert exists(api, "keep/app:1")
    assert daemon.process.returncode == 0


def test_sighup_keeps_a_broken_policy_out_and_applies_a_good_one(
    clean_engine: PrivateEngine, api: docker.APIClient, policy_file: Path, state_dir: Path
) -> None:
    ids = load(api, image(layer(1000, "h1"), tags=("team/app:1",), created=OLD))
    backdate(api, state_dir, *ids)
    write_policy(policy_file, 'images:\n  keep:\n    - reference: ["**"]')
    with DaemonProcess(clean_engine.host, policy_file, state_dir) as daemon:
        daemon.wait_for("run_finished")
        policy_file.write_text("version: 1\nimages:\n  kep: []\n")
        daemon.signal(signal.SIGHUP)
        failed = daemon.wait_for("policy_reload_failed")
        assert "kep" in failed["error"]
        runs = len(daemon.named("run_finished"))
        daemon.wait_for("run_finished", count=runs + 2)
        assert exists(api, "team/app:1"), "the running policy must stay in force"

        write_policy(policy_file, "images:\n  keep: []")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("policy_reloaded")
        wait_until(lambda: not exists(api, "team/app:1"), what="the new policy applied")
    assert daemon.process.returncode == 0


def test_sigterm_during_a_cycle_finishes_the_current_image_and_exits_0(
    clean_engine: PrivateEngine, api: docker.APIClient, policy_file: Path, state_dir: Path
) -> None:
    specs = [
        image(layer(2000, f"t{n}"), tags=(f"bulk/app:{n}", f"bulk/other:{n}"), created=OLD)
        for n in range(40)
    ]
    ids = load(api, *specs)
    backdate(api, state_dir, *ids)
    write_policy(policy_file, "images:\n  keep: []", schedule="every: 1h")
    daemon = DaemonProcess(clean_engine.host, policy_file, state_dir)
    daemon.wait_for("image_removed")
    daemon.signal(signal.SIGTERM)
    assert daemon.stop(timeout=30) == 0
    assert daemon.named("daemon_stopped")
    # No half-finished removal: every image is either gone or still has both its tags.
    remaining = {
        i["Id"]: {parse_reference(t).familiar for t in i["RepoTags"] or []} for i in api.images()
    }
    for n, image_id in enumerate(ids):
        if image_id in remaining:
            assert remaining[image_id] == {f"bulk/app:{n}", f"bulk/other:{n}"}
    assert len(remaining) < len(ids)


@pytest.mark.core
def test_last_use_is_recorded_from_events_and_survives_a_restart(
    clean_engine: PrivateEngine, api: docker.APIClient, policy_file: Path, state_dir: Path
) -> None:
    used, idle = load(
        api,
        image(runnable_layer(), layer(100, "u"), tags=("use/app:1",), created=OLD),
        image(layer(100, "i"), tags=("use/idle:1",), created=OLD),
    )
    backdate(api, state_dir, used, idle, when=datetime.now(UTC) - timedelta(days=30))
    write_policy(policy_file, "images:\n  keep:\n    - reference: ['**']", schedule="every: 1h")
    with DaemonProcess(clean_engine.host, policy_file, state_dir) as daemon:
        daemon.wait_for("run_finished")
        started = datetime.now(UTC) - timedelta(seconds=2)
        container = api.create_container("use/app:1", command=["true"], network_disabled=True)
        api.start(container)
        daemon.wait_for("image_used", where=lambda e: used[7:19] == e.get("image"))
    last_used = engine_state(api, state_dir).last_used(used)
    assert last_used is not None
    assert last_used >= started
    api.remove_container(container)

    write_policy(policy_file, "images:\n  keep:\n    - used_within: 1d", schedule="every: 1h")
    with DaemonProcess(clean_engine.host, policy_file, state_dir) as daemon:
        daemon.wait_for("run_finished")
        wait_until(lambda: not exists(api, "use/idle:1"), what="the idle image removed")
        assert exists(api, "use/app:1"), "last use from before the restart keeps it"


def test_the_daemon_keeps_running_while_the_engine_is_unreachable(
    tmp_path: Path, policy_file: Path, state_dir: Path
) -> None:
    write_policy(policy_file, "images:\n  keep: []")
    host = f"unix://{tmp_path}/nothing-here.sock"
    with DaemonProcess(host, policy_file, state_dir) as daemon:
        # Ready all the same (systemd would restart a daemon that never is), the engine said down
        daemon.wait_for("daemon_ready")
        daemon.wait_for("engine_unreachable")
        daemon.wait_for("cycle_failed", where=lambda e: e.get("result") == "failure")
        assert daemon.process.poll() is None
    assert daemon.process.returncode == 0


@pytest.mark.core
def test_the_event_stream_reconnects_after_the_engine_restarts(
    tmp_path: Path, policy_file: Path, state_dir: Path
) -> None:
    write_policy(policy_file, "images:\n  keep:\n    - reference: ['**']", schedule="every: 1h")
    with engine_for(selected_engine()) as private:
        api = docker.APIClient(base_url=private.host, version="auto")
        (used,) = load(api, image(runnable_layer(), layer(10, "rc"), tags=("rc/app:1",)))
        with DaemonProcess(private.host, policy_file, state_dir) as daemon:
            daemon.wait_for("run_finished")
            private.stop_engine()
            daemon.wait_for("events_unavailable")
            private.start()
            container = api.create_container("rc/app:1", command=["true"])
            api.start(container)
            daemon.wait_for("image_used", where=lambda e: used[7:19] == e.get("image"))
        api.close()


def test_sighup_keeps_the_running_policy_when_the_file_becomes_world_writable(
    clean_engine: PrivateEngine, api: docker.APIClient, policy_file: Path, state_dir: Path
) -> None:
    ids = load(api, image(layer(1000, "w1"), tags=("team/app:1",), created=OLD))
    backdate(api, state_dir, *ids)
    write_policy(policy_file, 'images:\n  keep:\n    - reference: ["**"]')
    with DaemonProcess(clean_engine.host, policy_file, state_dir) as daemon:
        daemon.wait_for("run_finished")
        # A valid policy that would delete the image, in a file anyone may now rewrite.
        write_policy(policy_file, "images:\n  keep: []")
        policy_file.chmod(0o666)
        daemon.signal(signal.SIGHUP)
        failed = daemon.wait_for("policy_reload_failed")
        assert f"chmod go-w {policy_file}" in failed["error"]
        runs = len(daemon.named("run_finished"))
        daemon.wait_for("run_finished", count=runs + 2)
        assert exists(api, "team/app:1"), "the running policy must stay in force"

        policy_file.chmod(0o644)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("policy_reloaded")
        wait_until(lambda: not exists(api, "team/app:1"), what="the new policy applied")
    assert daemon.process.returncode == 0


@pytest.mark.parametrize(("insecure", "code"), [("policy", 2), ("state", 1)])
def test_the_daemon_refuses_to_start_on_a_world_writable_policy_or_state(
    tmp_path: Path, policy_file: Path, state_dir: Path, insecure: str, code: int
) -> None:
    write_policy(policy_file, "images:\n  keep: []")
    state_dir.mkdir(mode=0o700)
    target = policy_file if insecure == "policy" else state_dir
    target.chmod(0o777)
    daemon = DaemonProcess(f"unix://{tmp_path}/nothing-here.sock", policy_file, state_dir)
    try:
        returncode = daemon.process.wait(timeout=30)
    finally:
        daemon.stop()
    assert returncode == code
    assert f"chmod go-w {target}" in "".join(daemon.raw)
    assert not daemon.named("daemon_ready")
