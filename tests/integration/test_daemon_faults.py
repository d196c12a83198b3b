"""`gcd daemon` behind the fault-injecting proxy: garbled answers, 500s, resets and hangs. The
daemon survives each (every stderr line stays JSON, each failed cycle is one counted event),
SIGTERM is honoured within seconds whatever the engine does, gcd_engine_up says whether the
engine is reachable, a bad schedule or a FIFO on SIGHUP changes nothing, and once the fault
is lifted a cycle finishes and removes what the policy says, and nothing it keeps."""

from __future__ import annotations

import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from tests.figures import Figure, record
from tests.integration.daemon_process import DaemonProcess, wait_until
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.proxy import EngineProxy, Fault
from tests.integration.state_seed import engine_state
from tests.integration.test_daemon_metrics import samples, total

AREA = "daemon faults"
OLD = datetime(2026, 1, 1, tzinfo=UTC)
KEPT = ("keep/app:1", "keep/app:2")
DOOMED = ("scratch/app:1", "scratch/app:2", "scratch/app:3")


def write_policy(path: Path, schedule: str = "every: 1s", fraction: str = "1") -> Path:
    path.write_text(
        "version: 1\n"
        f"safety: {{min_age: 1h, max_delete_fraction: {fraction}}}\n"
        'images:\n  keep:\n    - reference: ["keep/**"]\n'
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


def seed(api: docker.APIClient, state_dir: Path) -> None:
    """Two kept images and three the policy removes, all old enough."""
    names = (*KEPT, *DOOMED)
    ids = load(
        api,
        *(image(layer(2000, f"fault-{n}"), tags=(name,)) for n, name in enumerate(names)),
    )
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, OLD)
    state.save()


def wrongly_removed(api: docker.APIClient) -> int:
    """Independently of gcd's log: the kept images that are gone from the engine."""
    return sum(not exists(api, name) for name in KEPT)


def non_json(daemon: DaemonProcess) -> list[str]:
    bad = []
    for line in daemon.raw:
        try:
            if not isinstance(json.loads(line), dict):
                bad.append(line)
        except json.JSONDecodeError:
            bad.append(line)
    return bad


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return samples(response.read().decode())


def metric(url: str, name: str, **labels: str) -> float:
    return total(scrape(url), name, **labels)


def every_request(_method: str, path: str) -> bool:
    return "/events" not in path  # the event stream has its own reconnect test


def listing(method: str, path: str) -> bool:
    return method == "GET" and "/images/json" in path


@pytest.fixture
def proxy(clean_engine: PrivateEngine) -> Iterator[EngineProxy]:
    with EngineProxy(clean_engine.socket) as running:
        yield running


@pytest.mark.core
def test_garbled_answers_fail_cycles_as_json_events_and_a_later_cycle_removes(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    """On main these escaped the cycle: APScheduler tracebacks, no event, no count."""
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml")
    bodies = ('{"message": "x"}', "null", '[{"Size": "big"}]', "[1]", '{"Id": 1}')
    with DaemonProcess(proxy.host, policy, state_dir) as daemon:
        url = daemon.wait_for("metrics_serving")["url"]
        daemon.wait_for("daemon_ready")
        faults = [proxy.fault(listing, Fault.garble(body), times=1) for body in bodies]
        # The first cycle may have run before the faults: wait for the removals to come
        # from a cycle after all of them.
        wait_until(lambda: all(f.hits == 1 for f in faults), 30, "every garbled answer sent")
        failed = daemon.wait_for("cycle_failed", count=len(bodies) - 1, timeout=30)
        finished = daemon.wait_for(
            "cycle_finished",
            where=lambda e: e["removed"] >= 1 or not any(exists(api, n) for n in DOOMED),
            timeout=30,
        )
        wait_until(lambda: not any(exists(api, n) for n in DOOMED), 30, "the doomed removed")
        failures = metric(url, "gcd_cycles_total", result="failure")
    code = daemon.stop()
    assert code == 0
    assert failed["result"] in {"crash", "failure"}
    assert finished["removed"] >= 1
    assert failures >= len(bodies) - 1
    assert non_json(daemon) == []
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area=AREA,
            scenario="garbled /images/json answers, then the fault lifts",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            faults=len(bodies),
            inputs=len(bodies),
            removed=len(DOOMED),
        )
    )


def test_http_500s_fail_cycles_but_the_engine_stays_up_and_cycles_recover(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    """On main gcd_engine_up went to 0 on a 500: an engine error, not unreachability."""
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml")
    with DaemonProcess(proxy.host, policy, state_dir) as daemon:
        url = daemon.wait_for("metrics_serving")["url"]
        daemon.wait_for("daemon_ready")
        fault = proxy.fault(every_request, Fault.answer(500, '{"message": "injected"}'))
        seen = len(daemon.named("cycle_failed"))
        daemon.wait_for("cycle_failed", count=seen + 3, timeout=30)
        assert metric(url, "gcd_engine_up") == 1
        assert metric(url, "gcd_cycles_total", result="failure") >= 3
        fault.lift()
        wait_until(lambda: not any(exists(api, n) for n in DOOMED), 30, "the doomed removed")
        daemon.wait_for("cycle_finished", timeout=30)
        assert metric(url, "gcd_engine_up") == 1
    assert daemon.process.returncode == 0
    assert non_json(daemon) == []
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area=AREA,
            scenario="HTTP 500 on every request for 3+ cycles, then lifted",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            faults=fault.hits,
            removed=len(DOOMED),
        )
    )


def test_engine_up_follows_reachability_between_cycles_even_when_cycles_are_refused(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    """On main a refused cycle never set 1: after an outage the metric stayed 0. Here the
    only cycle runs at start (and is refused); the probe alone moves the metric."""
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml", schedule="every: 1h", fraction="0.1")
    with DaemonProcess(proxy.host, policy, state_dir) as daemon:
        url = daemon.wait_for("metrics_serving")["url"]
        daemon.wait_for("cycle_failed", where=lambda e: e["result"] == "refused")
        wait_until(lambda: metric(url, "gcd_engine_up") == 1, 10, "up after a refusal")
        reset = proxy.fault(every_request, Fault.reset())
        wait_until(lambda: metric(url, "gcd_engine_up") == 0, 25, "down while reset")
        reset.lift()
        wait_until(lambda: metric(url, "gcd_engine_up") == 1, 25, "up once lifted")
        assert metric(url, "gcd_cycles_total") == 1
    assert daemon.process.returncode == 0
    assert all(exists(api, n) for n in (*KEPT, *DOOMED))
    record(
        Figure(
            area=AREA,
            scenario="connection resets between refused cycles: engine_up 0, then 1",
            at_risk=len(KEPT) + len(DOOMED),
            wrongly_removed=sum(not exists(api, n) for n in (*KEPT, *DOOMED)),
            faults=reset.hits,
        )
    )


@pytest.mark.core
def test_sigterm_during_a_hung_delete_exits_within_seconds_and_a_new_daemon_recovers(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    """On main SIGTERM waited for the hung request: up to 60 s, beyond TimeoutStopSec=30."""
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml")
    hang = proxy.fault(lambda m, p: m == "DELETE", Fault.hang())
    daemon = DaemonProcess(proxy.host, policy, state_dir)
    try:
        wait_until(lambda: hang.hits >= 1, 30, "a DELETE held by the proxy")
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.process.wait(15)
        took = time.monotonic() - started
    finally:
        daemon.stop()
    assert code == 0
    assert took < 10
    assert daemon.named("daemon_stopped")
    assert daemon.named("cycle_abandoned")
    assert non_json(daemon) == []
    hang.lift()  # the held DELETE reaches the engine now, or not: the next run re-plans
    with DaemonProcess(proxy.host, policy, state_dir) as again:
        wait_until(lambda: not any(exists(api, n) for n in DOOMED), 30, "the doomed removed")
        again.wait_for("cycle_finished", timeout=30)
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area=AREA,
            scenario="SIGTERM during a hung DELETE: exit 0 within 10 s; a new daemon recovers",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            faults=hang.hits,
            removed=len(DOOMED),
        )
    )


def test_a_hung_listing_stalls_one_cycle_and_the_next_removes_once_it_is_lifted(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml")
    hang = proxy.fault(lambda m, p: m == "GET" and "/containers/json" in p, Fault.hang())
    with DaemonProcess(proxy.host, policy, state_dir) as daemon:
        wait_until(lambda: hang.hits >= 1, 30, "a listing held by the proxy")
        # The schedule goes on meanwhile and APScheduler says why it skips: as JSON.
        wait_until(
            lambda: any("maximum number of running" in str(e["event"]) for e in daemon.events),
            10,
            "a skipped run logged",
        )
        assert all(exists(api, n) for n in DOOMED)
        hang.lift()
        wait_until(lambda: not any(exists(api, n) for n in DOOMED), 30, "the doomed removed")
        daemon.wait_for("cycle_finished", where=lambda e: e["removed"] >= 1, timeout=30)
    assert daemon.process.returncode == 0
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area=AREA,
            scenario="GET /containers/json hung for seconds, then lifted",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            faults=hang.hits,
            removed=len(DOOMED),
        )
    )


def test_a_fifo_or_an_unschedulable_policy_on_sighup_keeps_the_running_one(
    proxy: EngineProxy, api: docker.APIClient, tmp_path: Path
) -> None:
    """On main a FIFO blocked the main thread (SIGTERM ignored) and a huge `every` killed
    the daemon on SIGHUP. The policy file is swapped for each, SIGHUP sent, and the daemon
    goes on with its running policy; SIGTERM still ends it within seconds."""
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml", schedule="every: 1h")
    with DaemonProcess(proxy.host, policy, state_dir) as daemon:
        daemon.wait_for("cycle_finished")
        write_policy(policy, schedule="every: 999999999d")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("policy_reload_failed", timeout=15)
        policy.unlink()
        os.mkfifo(policy, 0o644)
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("policy_reload_failed", count=2, timeout=20)
        assert daemon.process.poll() is None
        daemon.signal(signal.SIGHUP)  # a reload under way when SIGTERM comes
        started = time.monotonic()
        daemon.signal(signal.SIGTERM)
        code = daemon.process.wait(15)
        took = time.monotonic() - started
    assert code == 0
    assert took < 10
    assert not daemon.named("policy_reloaded")
    assert non_json(daemon) == []
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area=AREA,
            scenario="SIGHUP with an unschedulable policy, then with a FIFO; SIGTERM mid-reload",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            inputs=2,
            removed=len(DOOMED),
        )
    )


def test_an_unschedulable_policy_at_start_is_exit_2_before_ready(
    proxy: EngineProxy, tmp_path: Path
) -> None:
    policy = write_policy(tmp_path / "policy.yaml", schedule="every: 999999999d")
    daemon = DaemonProcess(proxy.host, policy, tmp_path / "state")
    try:
        code = daemon.process.wait(30)
    finally:
        daemon.stop()
    assert code == 2
    assert not daemon.named("daemon_ready")
    record(Figure(area=AREA, scenario="an unschedulable `every` at start: exit 2", inputs=1))
