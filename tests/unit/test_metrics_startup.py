"""What issue 14 fixed on the daemon's and the timer's side of Prometheus: the first cycle
waits for a scrape, the engine down at start does not hold readiness back, the timer run
measures the disk, and the filesystem series carry node_exporter's mount labels."""

from __future__ import annotations

import socket
import threading
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from prometheus_client import Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from gcd.core.policy import DiskWatermarks, Schedule
from gcd.engine.client import Engine
from gcd.host.mounts import Mount, mount_of, parse_mountinfo
from gcd.jobs import build_triggers
from gcd.metrics.registry import daemon_registry, run_registry
from gcd.metrics.server import MetricsServer
from gcd.startgate import StartGate
from gcd.timer import TextfileRun, run_with_textfile
from tests.unit.daemon_support import HttpEngine, Rig, policy
from tests.unit.fake_engine import FakeEngine, unreachable

MOUNTINFO = (
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
    "30 22 7:0 / /var/lib/docker rw,relatime shared:9 - ext4 /dev/loop0 rw\n"
    "31 22 0:5 / /srv/my\\040disk rw - tmpfs tmp\\040fs rw\n"
)


def test_mount_of_takes_the_longest_mount_point_and_unescapes() -> None:
    assert parse_mountinfo(MOUNTINFO)[2] == Mount("/srv/my disk", "tmp fs")
    assert mount_of(Path("/var/lib/docker/overlay2"), MOUNTINFO) == Mount(
        "/var/lib/docker", "/dev/loop0"
    )
    assert mount_of(Path("/var/lib/dockerx"), MOUNTINFO) == Mount("/", "/dev/sda1")
    assert mount_of(Path("/")) is not None  # this machine's own mountinfo parses


def test_the_gate_opens_at_the_first_scrape_or_at_its_deadline() -> None:
    stop, scraped = threading.Event(), threading.Event()
    gate = StartGate(scraped, 3600, stop)
    assert not gate.is_open()
    scraped.set()
    assert gate.is_open()
    assert gate.wait()
    assert StartGate(threading.Event(), 0.05, stop).wait()  # nobody scrapes: it runs anyway
    assert StartGate(None, 3600, stop).is_open()  # no metrics served: nothing to wait for
    stop.set()
    assert not StartGate(threading.Event(), 3600, stop).wait()


def test_the_daemon_registry_has_process_metrics_and_no_created_samples() -> None:
    registry = daemon_registry()
    Counter("gcd_x", "x", registry=registry).inc()
    text = generate_latest(registry).decode()
    assert "process_resident_memory_bytes" in text
    assert "process_open_fds" in text
    assert "_created" not in text


def test_a_cycle_that_lost_the_engine_runs_again_when_the_probe_finds_it(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    rig.daemon._apply_schedule(build_triggers(rig.daemon.policy), first=True)
    rig.daemon.scheduler.start(paused=True)
    answering = None
    try:
        rig.engine.fail("list_images", unreachable())
        rig.daemon.run_cycle("schedule")
        assert rig.daemon.engine_lost.is_set()
        rig.daemon.probe_job()  # nothing answers at the fake engine's socket yet
        assert rig.daemon.engine_lost.is_set()
        answering = HttpEngine(tmp_path / "docker.sock", status=200)
        rig.daemon.probe_job()
        assert not rig.daemon.engine_lost.is_set()
        job = rig.daemon.scheduler.get_job("cycle")
        assert job is not None
        assert job.next_run_time is not None
        assert job.next_run_time - datetime.now(UTC) < timedelta(seconds=5)  # not next year
    finally:
        rig.daemon.scheduler.shutdown(wait=False)
        if answering is not None:
            answering.close()


def test_the_first_scheduled_cycle_waits_for_the_gate(tmp_path: Path) -> None:
    scraped = threading.Event()
    rig = Rig(tmp_path, first_scrape_wait_seconds=3600.0)
    rig.daemon.gate = StartGate(scraped, 3600, rig.daemon.stop_event)
    ran = threading.Thread(target=rig.daemon.scheduled_cycle)
    ran.start()
    ran.join(0.3)
    assert ran.is_alive()
    assert rig.sample("gcd_cycles_total", trigger="schedule", result="success") == 0
    rig.daemon.check_disk()  # the pressure check does not run before the gate either
    scraped.set()
    ran.join(10)
    assert rig.sample("gcd_cycles_total", trigger="schedule", result="success") == 1


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    families = text_string_to_metric_families(path.read_text())
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


def test_a_timer_run_measures_the_disk_and_writes_its_zeros_first(tmp_path: Path) -> None:
    engine = FakeEngine(data_root=tmp_path)
    engine.add_image("app", "team/app:1", created=datetime(2026, 1, 1, tzinfo=UTC))
    watched = replace(
        policy(),
        schedule=Schedule(every=timedelta(hours=1), disk=DiskWatermarks(high=0.0, low=0.0)),
    )
    (tmp_path / "policy.yaml").write_text("version: 1\n")
    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    (tmp_path / "state").mkdir(mode=0o700)
    seen: list[float] = []

    def before_the_run(seconds: float) -> None:
        first = _samples(textfiles / "gcd.prom")
        seen.append(first[("gcd_cycles_total", (("result", "success"), ("trigger", "once")))])
        seen.append(seconds)

    run = TextfileRun(tmp_path / "policy.yaml", tmp_path / "state", textfiles, 30.0)
    run_with_textfile(run, cast(Engine, engine), watched, sleep=before_the_run)
    assert seen == [0.0, 30.0]
    after = _samples(textfiles / "gcd.prom")
    assert after[("gcd_cycles_total", (("result", "success"), ("trigger", "once")))] == 1
    assert after[("gcd_disk_pressure", ())] == 1  # above a high of 0: a real evaluation
    ratios = [key for key in after if key[0] == "gcd_filesystem_used_ratio"]
    assert {dict(labels)["resource"] for _, labels in ratios} == {"bytes", "inodes"}
    assert all(dict(labels)["mountpoint"] for _, labels in ratios)
    assert ("gcd_docker_usage_bytes", (("kind", "image"),)) in after
    seen.clear()
    run_with_textfile(run, cast(Engine, engine), watched, sleep=before_the_run)
    assert seen == []  # a file is there: later runs do not wait


def test_an_address_without_host_serves_ipv6_and_ipv4() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    with MetricsServer(run_registry(), ":0") as server:
        for host in ("127.0.0.1", "::1"):
            with urllib.request.urlopen(
                f"http://{'[::1]' if ':' in host else host}:{server.port}/metrics", timeout=10
            ) as answer:
                assert answer.status == 200
        assert server.scraped.is_set()
