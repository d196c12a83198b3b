"""The daemon's cycle boundary and gcd_engine_up, on the fake engine: whatever a cycle meets,
it ends in one structured event and a counted failure, and the engine's reachability is
what the metric says."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from gcd.errors import EngineError
from gcd.host.state import State
from gcd.host.state_db import Scope
from gcd.jobs import guarded
from gcd.logs import configure_logging
from gcd.metrics.server import MetricsServer
from gcd.probe import engine_reachable
from tests.unit.daemon_support import HttpEngine, Rig, policy, process_hooks
from tests.unit.fake_engine import server_error, unreachable


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def crash() -> list[dict[str, object]]:
    raise TypeError("string indices must be integers, not 'str'")


def test_an_unforeseen_exception_in_a_cycle_is_one_event_and_a_counted_failure(rig: Rig) -> None:
    rig.engine.list_images = crash  # type: ignore[method-assign]  # a garbled answer's effect
    with capture_logs() as logs:
        assert rig.daemon.run_cycle("schedule") is None
        assert rig.daemon.run_cycle("schedule") is None  # and the next cycle runs again
    failed = [e for e in logs if e["event"] == "cycle_failed"]
    assert len(failed) == 2
    assert failed[0]["result"] == "crash"
    assert failed[0]["error_type"] == "TypeError"
    assert "string indices" in failed[0]["error"]
    assert isinstance(failed[0]["exc_info"], TypeError)
    assert rig.sample("gcd_cycles_total", trigger="schedule", result="failure") == 2
    assert not rig.daemon.cycle_lock.locked()


def test_a_failing_job_is_logged_once_and_never_reaches_apscheduler(rig: Rig) -> None:
    def flush() -> None:
        raise RuntimeError("disk on fire")

    with capture_logs() as logs:
        guarded("flush", flush)()
    assert [(e["event"], e["job"], e["error_type"]) for e in logs] == [
        ("job_failed", "flush", "RuntimeError")
    ]


def test_engine_up_follows_the_probe_an_engine_error_leaves_it_and_unreachable_sets_0(
    rig: Rig, tmp_path: Path
) -> None:
    answering = HttpEngine(tmp_path / "docker.sock", status=500)  # the fake engine's host
    try:
        rig.engine.fail("list_images", server_error())
        rig.daemon.run_cycle("schedule")
        assert rig.sample("gcd_engine_up") == 1  # a 500 is an answer
        assert rig.sample("gcd_cycles_total", trigger="schedule", result="failure") == 1
        # The client calls some HTTP errors unreachable; the socket answers: the probe decides.
        rig.engine.fail("list_images", unreachable())
        rig.daemon.run_cycle("schedule")
        assert rig.sample("gcd_engine_up") == 1
        assert not rig.daemon.engine_lost.is_set()
    finally:
        answering.close()
    rig.engine.fail("list_images", unreachable())
    rig.daemon.run_cycle("schedule")  # now nothing answers at the socket either
    assert rig.sample("gcd_engine_up") == 0
    assert rig.daemon.engine_lost.is_set()
    assert rig.daemon.run_cycle("schedule") is not None
    assert rig.sample("gcd_engine_up") == 1


def test_a_refused_cycle_says_the_engine_is_up(tmp_path: Path) -> None:
    """A cycle refused by max_delete_fraction took a snapshot: the engine answered. (Before,
    only finished cycles set 1, and after an outage the metric stayed 0.)"""
    rig = Rig(tmp_path, policy(min_age=timedelta(0), max_fraction=0.01))
    for n in range(3):
        rig.engine.add_image(f"app-{n}", f"team/app:{n}", created=datetime(2026, 1, 1, tzinfo=UTC))
    rig.metrics.set_engine_up(False)
    with capture_logs() as logs:
        rig.daemon.run_cycle("schedule")
    assert [e["result"] for e in logs if e["event"] == "cycle_failed"] == ["refused"]
    assert rig.sample("gcd_engine_up") == 1
    assert rig.sample("gcd_cycles_total", trigger="schedule", result="refused") == 1
    assert rig.engine.sent("remove_image") == []


def test_the_probe_says_up_on_any_answer_and_down_without_one(tmp_path: Path) -> None:
    for status in (200, 500, 404):
        engine = HttpEngine(tmp_path / f"{status}.sock", status=status)
        assert engine_reachable(engine.host, 5.0) is True
        engine.close()
    assert engine_reachable(f"unix://{tmp_path}/nobody.sock", 5.0) is False
    silent = HttpEngine(tmp_path / "silent.sock", silent=True)
    try:
        assert engine_reachable(silent.host, 0.2) is False
    finally:
        silent.close()
    assert engine_reachable("ssh://user@host", 1.0) is None


def test_shutdown_abandons_a_cycle_stuck_in_a_request_and_still_writes_the_uses(
    tmp_path: Path,
) -> None:
    rig = Rig(tmp_path, stop_grace_seconds=0.2)
    entered, release = threading.Event(), threading.Event()

    def hang(*_args: object, **_kwargs: object) -> list[dict[str, object]]:
        entered.set()
        release.wait(30)
        raise EngineError("GET /images/json failed: read timed out")

    rig.engine.list_images = hang  # type: ignore[method-assign]
    stuck = threading.Thread(target=rig.daemon.run_cycle, args=("schedule",), daemon=True)
    stuck.start()
    try:
        assert entered.wait(10)
        scope = Scope("engine-1", "overlay2")
        used_at = datetime(2026, 6, 1, tzinfo=UTC)
        rig.daemon.uses.record(scope, "sha256:" + "a" * 64, used_at)
        with capture_logs() as logs:
            assert rig.daemon._shutdown() == 0
        events = [e["event"] for e in logs]
        assert events[-1] == "daemon_stopped"
        assert "cycle_abandoned" in events
        assert rig.daemon.stop_event.is_set()
        state = State.load(rig.daemon.settings.state_dir, scope)
        assert state.last_used("sha256:" + "a" * 64) == used_at
    finally:
        release.set()
        stuck.join(10)


def test_stdlib_logging_and_a_dying_thread_are_json_lines(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with process_hooks():
        configure_logging("json", "info")
        logging.getLogger("apscheduler.scheduler").info("Added job")  # quieted: not a line
        logging.getLogger("apscheduler.executors.default").error(
            "Job raised", exc_info=ValueError("x\ny")
        )
        logging.getLogger("urllib3.connectionpool").warning("Retrying %s", "GET /_ping")

        def die() -> None:
            raise OverflowError("date value out of range")

        thread = threading.Thread(target=die, name="APScheduler")
        thread.start()
        thread.join()
    lines = capsys.readouterr().err.splitlines()
    events = [json.loads(line) for line in lines]  # every line is JSON
    assert [e["event"] for e in events] == ["Job raised", "Retrying GET /_ping", "thread_crashed"]
    assert "ValueError" in events[0]["exception"]
    assert events[0]["logger"] == "apscheduler.executors.default"
    assert events[2]["thread"] == "APScheduler"
    assert "OverflowError" in events[2]["exception"]


class _BrokenCollector:
    def describe(self) -> list[object]:
        return []

    def collect(self) -> list[object]:
        raise RuntimeError("collector bug")


def test_a_failing_scrape_is_one_event_not_a_raw_traceback(
    capsys: pytest.CaptureFixture[str],
) -> None:
    registry = CollectorRegistry()
    registry.register(_BrokenCollector())  # type: ignore[arg-type]
    server = MetricsServer(registry, "127.0.0.1:0", None)
    server.start()
    try:
        with capture_logs() as logs, pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url, timeout=10)
    finally:
        server.stop()
    failed = [e for e in logs if e["event"] == "metrics_app_failed"]
    assert len(failed) == 1
    assert "RuntimeError: collector bug" in failed[0]["detail"]
    assert "Traceback" not in capsys.readouterr().err
