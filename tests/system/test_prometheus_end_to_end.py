"""gcd under a real Prometheus 2.42, Alertmanager 0.25 (webhook receiver in monitoring.py) and
node_exporter 1.5: real daemons and timer-mode textfiles on private engines, each shipped
alert caused for real and seen firing and resolved through the HTTP APIs, with a test copy
of the rules whose `for:` and windows are short (monitoring.fast_rules).

The hosts, all at once (the conditions run side by side):
- main: a daemon on engine 1, whose data root is a loop-mounted ext4 filled above the high
  watermark with a plain file gcd may not delete (GcdDiskPressureUnresolved), and a policy
  with a broken Compose file (GcdComposeFileUnreadable); the dashboard's daemon host;
- timer: `gcd run --once --textfile` every 2 s on engine 1 (the dashboard's timer host; the
  disk pressure alert for a timer host); stale: a textfile of a timer that stopped 4 h ago
  (GcdTimerStale, the dashboard's down table);
- refuse: a daemon whose one cycle (`every: 1h`) is refused by max_delete_fraction: the
  first cycle after a start must count for GcdSafetyAbort; then killed (GcdDown) and started
  again, its first cycle counts again;
- failing: a daemon whose DELETEs answer 500 through a proxy (GcdRemovalErrorsRising);
- sick: a daemon whose engine answers 500 to everything: gcd_engine_up stays 1 (an answer
  is an answer) while its cycles fail (GcdNoSuccessfulCycle), until the fault is lifted;
- lost: a daemon (`every: 1h`) on engine 2, which is stopped between cycles: the 15 s probe
  sets gcd_engine_up 0 (GcdEngineUnreachable) and 1 again when it is started.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import docker
import pytest

from gcd.host.disk import measure
from tests.integration.daemon_process import DaemonProcess
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.loop_disk import loop_filesystem
from tests.integration.proxy import EngineProxy, Fault
from tests.system import monitoring
from tests.system.monitoring import FAST_FOR_SECONDS, Stack, wait_until

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or monitoring.missing_binaries() is not None or not shutil.which("mkfs.ext4"),
    reason=monitoring.missing_binaries() or "needs root (loop mount, dockerd) and mkfs.ext4",
)

MiB = 2**20
PROBE_SECONDS = 15.0  # DaemonSettings.probe_every_seconds: the documented probe period
SLACK = 20.0  # scrape, evaluation, a loaded machine
KEEP_ALL = "images:\n  keep:\n    - reference: ['**']\n"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def policy(path: Path, body: str, schedule: str, fraction: str = "1") -> Path:
    return write(
        path,
        f"version: 1\nsafety: {{min_age: 0s, max_delete_fraction: {fraction}}}\n{body}"
        f"schedule:\n{schedule}",
    )


def timer_run(host: str, policy_path: Path, state: Path, textfiles: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "gcd", "--host", host, "--state-dir", str(state), "--log-format",
         "json", "run", "--once", "--policy", str(policy_path), "--textfile", str(textfiles),
         "--first-scrape-wait", "3"],
        capture_output=True, check=False, timeout=120,
    )  # fmt: skip


@pytest.fixture
def loop_disk(tmp_path: Path) -> Iterator[Path]:
    with loop_filesystem(tmp_path, "300M") as mount:
        yield mount


class Hosts:
    """The daemons and timers of the test, their ports and what the scenarios act on."""

    def __init__(self, tmp: Path, disk: Path, stack: ExitStack) -> None:
        self.tmp = tmp
        self.stack = stack
        self.ports = {
            n: monitoring.free_port() for n in ("main", "refuse", "failing", "sick", "lost")
        }
        self.node_ports = {n: monitoring.free_port() for n in ("timer", "stale")}
        self.textfiles = {n: tmp / f"textfile-{n}" for n in self.node_ports}
        for directory in self.textfiles.values():
            directory.mkdir()
        self.disk = disk
        self.daemons: dict[str, DaemonProcess] = {}
        self.args: dict[str, tuple[str, Path]] = {}

    def instance(self, name: str) -> str:
        port = self.ports.get(name) or self.node_ports[name]
        return f"127.0.0.1:{port}"

    def start(self, name: str, host: str, policy_path: Path) -> DaemonProcess:
        self.args[name] = (host, policy_path)
        daemon = DaemonProcess(
            host, policy_path, self.tmp / f"state-{name}",
            "--metrics-address", self.instance(name), "--first-scrape-wait", "30",
        )  # fmt: skip
        self.daemons[name] = daemon
        self.stack.callback(daemon.stop)
        return daemon

    def restart(self, name: str) -> DaemonProcess:
        return self.start(name, *self.args[name])


def fires_and_resolves(
    prom: Stack, alert: str, instance: str, fire_within: float, cause_end: Callable[[], object]
) -> dict[str, float]:
    fired = prom.wait_firing(alert, instance, fire_within)
    cause_end()
    resolved = prom.wait_resolved(alert, instance, 90)
    return {f"{alert} fired": round(fired, 1), f"{alert} resolved": round(resolved, 1)}


def test_the_stack_alerts_on_real_conditions_and_every_query_has_data(
    tmp_path: Path, loop_disk: Path
) -> None:
    began = time.time()
    with ExitStack() as stack:
        one = stack.enter_context(PrivateEngine(loop_disk / "docker"))
        two = stack.enter_context(PrivateEngine())
        hosts = Hosts(tmp_path, loop_disk, stack)
        api = docker.APIClient(base_url=one.host, version="auto", timeout=120)
        stack.callback(api.close)
        # min_age 0s: any image is old enough. `failing` may delete only fail/*, `refuse`
        # would delete them all (refused), `main` and the timers keep them all.
        for n in range(4):
            load(api, image(layer(4096, f"team-{n}"), tags=(f"team/app:{n}",)))
            load(api, image(layer(4096, f"fail-{n}"), tags=(f"fail/app:{n}",)))

        # main: above high with a file gcd may not delete; a broken Compose file.
        usage = measure(loop_disk).pressure(0, 0)
        high = usage.bytes_ratio + 0.10
        filler = loop_disk / "filler"
        subprocess.run(
            ["fallocate", "-l", str(int(usage.total_bytes * 0.2)), str(filler)], check=True
        )
        compose = write(tmp_path / "stack/compose.yaml", "services:\n  web: [image: x\n")
        disk = f"  disk: {{high: {high:.4f}, low: {high - 0.05:.4f}, check_every: 1s}}\n"
        main_policy = policy(
            tmp_path / "main.yaml",
            KEEP_ALL + f"    - compose: ['{compose}']\n",
            "  every: 3s\n" + disk,
        )
        timer_policy = policy(tmp_path / "timer.yaml", KEEP_ALL, "  every: 1h\n" + disk)
        failing = stack.enter_context(EngineProxy(one.socket))
        deletes = failing.fault(lambda m, _p: m == "DELETE", Fault.answer(500))
        sick = stack.enter_context(EngineProxy(one.socket))
        everything = sick.fault(lambda _m, _p: True, Fault.answer(500))

        rules = monitoring.fast_rules(monitoring.RULES.read_text())
        nodes = [
            (hosts.node_ports["timer"], hosts.textfiles["timer"], True),
            (hosts.node_ports["stale"], hosts.textfiles["stale"], False),
        ]
        targets = [hosts.instance(n) for n in hosts.ports]
        prom = stack.enter_context(monitoring.monitoring(targets, nodes, rules))

        hosts.start("main", one.host, main_policy)
        hosts.start(
            "refuse",
            one.host,
            policy(tmp_path / "refuse.yaml", "images: {}\n", "  every: 1h\n", "0.01"),
        )
        hosts.start(
            "failing",
            failing.host,
            policy(
                tmp_path / "failing.yaml",
                "images:\n  keep:\n    - reference: ['team/**']\n",
                "  every: 2s\n",
            ),
        )
        hosts.start("sick", sick.host, policy(tmp_path / "sick.yaml", KEEP_ALL, "  every: 3s\n"))
        hosts.start("lost", two.host, policy(tmp_path / "lost.yaml", KEEP_ALL, "  every: 1h\n"))
        timer_state, stale_state = tmp_path / "state-timer", tmp_path / "state-stale"
        timer_run(one.host, timer_policy, stale_state, hosts.textfiles["stale"])
        four_hours_ago = time.time() - 4 * 3600
        os.utime(hosts.textfiles["stale"] / "gcd.prom", (four_hours_ago, four_hours_ago))

        stop_timer = stack.enter_context(_repeating(
            lambda: timer_run(one.host, timer_policy, timer_state, hosts.textfiles["timer"]), 2.0
        ))  # fmt: skip

        def disk_pressure() -> dict[str, float]:
            measured = {}
            prom.wait_firing("GcdDiskPressureUnresolved", hosts.instance("timer"), 60 + SLACK)
            measured.update(
                fires_and_resolves(
                    prom, "GcdDiskPressureUnresolved", hosts.instance("main"), 15 + SLACK,
                    filler.unlink,
                )
            )  # fmt: skip
            prom.wait_resolved("GcdDiskPressureUnresolved", hosts.instance("timer"), 60)
            return measured

        def compose_file() -> dict[str, float]:
            return fires_and_resolves(
                prom, "GcdComposeFileUnreadable", hosts.instance("main"), 10 + SLACK,
                lambda: compose.write_text("services:\n  web:\n    image: team/app:0\n"),
            )  # fmt: skip

        def refused_then_killed() -> dict[str, float]:
            measured = fires_and_resolves(
                prom, "GcdSafetyAbort", hosts.instance("refuse"), 30 + SLACK, lambda: None
            )
            hosts.daemons["refuse"].process.kill()
            measured["GcdDown fired"] = prom.wait_firing(
                "GcdDown", hosts.instance("refuse"), FAST_FOR_SECONDS + SLACK
            )
            down_at = time.time()
            hosts.restart("refuse")
            measured["GcdDown resolved"] = prom.wait_resolved(
                "GcdDown", hosts.instance("refuse"), 60
            )
            # The first cycle after the restart counts, as the first after the first start did.
            measured["GcdSafetyAbort after restart"] = prom.wait_firing(
                "GcdSafetyAbort", hosts.instance("refuse"), 30 + SLACK
            )
            aborts = f'gcd_safety_aborts_total{{instance="{hosts.instance("refuse")}"}}'

            def zero_then_one() -> list[float] | None:
                values = prom.values(aborts, down_at, time.time())
                return values if 0.0 in values and values[-1] == 1.0 else None

            wait_until("the restarted daemon's 0, then its 1", zero_then_one, 30)
            measured["down at"] = down_at
            return measured

        def failing_removals() -> dict[str, float]:
            return fires_and_resolves(
                prom, "GcdRemovalErrorsRising", hosts.instance("failing"), 16 + SLACK, deletes.lift
            )

        def sick_engine() -> dict[str, float]:
            instance = hosts.instance("sick")
            fired = prom.wait_firing("GcdNoSuccessfulCycle", instance, 20 + SLACK)
            # A probe or two and several cycles on an engine answering 500: still reachable.
            lowest = prom.query(f'min_over_time(gcd_engine_up{{instance="{instance}"}}[20s])')
            assert [r["value"][1] for r in lowest] == ["1"], lowest
            sick_at = time.time()
            assert prom.alert_state("GcdEngineUnreachable", instance) is None
            everything.lift()
            resolved = prom.wait_resolved("GcdNoSuccessfulCycle", instance, 60)
            return {"GcdNoSuccessfulCycle fired": fired, "GcdNoSuccessfulCycle resolved": resolved,
                    "sick at": sick_at}  # fmt: skip

        def lost_engine() -> dict[str, float]:
            instance = hosts.instance("lost")
            succeeded = f'gcd_cycles_total{{instance="{instance}", result="success"}} > 0'
            wait_until("the lost host's first cycle", lambda: prom.query(succeeded), 60)
            two.stop_engine()
            fired = prom.wait_firing(
                "GcdEngineUnreachable", instance, PROBE_SECONDS + FAST_FOR_SECONDS + SLACK
            )
            stopped_at = time.time()
            two.start()
            resolved = prom.wait_resolved("GcdEngineUnreachable", instance, PROBE_SECONDS + SLACK)
            return {"GcdEngineUnreachable fired": fired, "GcdEngineUnreachable resolved": resolved,
                    "engine down at": stopped_at}  # fmt: skip

        def stale_timer() -> dict[str, float]:
            fired = prom.wait_firing("GcdTimerStale", hosts.instance("stale"), 10 + SLACK)
            stale_at = time.time()
            timer_run(one.host, timer_policy, stale_state, hosts.textfiles["stale"])
            resolved = prom.wait_resolved("GcdTimerStale", hosts.instance("stale"), 30)
            return {
                "GcdTimerStale fired": fired,
                "GcdTimerStale resolved": resolved,
                "stale at": stale_at,
            }

        scenarios = [disk_pressure, compose_file, refused_then_killed, failing_removals,
                     sick_engine, lost_engine, stale_timer]  # fmt: skip
        with ThreadPoolExecutor(len(scenarios)) as pool:
            results = {s.__name__: pool.submit(s) for s in scenarios}
            measured = {name: future.result() for name, future in results.items()}
        print(measured)

        check_series(prom, hosts)
        check_dashboard(prom, hosts, measured)
        stop_timer()
        # The timer host's first run was counted: its first sample is the zeros it wrote.
        first = prom.values(
            f'sum(gcd_cycles_total{{instance="{hosts.instance("timer")}"}})', began, time.time()
        )
        assert first[0] == 0.0, first[:5]
    print(f"end to end: {time.time() - began:.0f} s")


def check_series(prom: Stack, hosts: Hosts) -> None:
    for host in ("main", "timer"):
        instance = hosts.instance(host)
        exported = {
            r["metric"]["__name__"]
            for r in prom.query(f'{{instance="{instance}", __name__=~"gcd_.*|process_.*"}}')
        }
        for name, kind in monitoring.documented_series().items():
            if host == "timer" and name.startswith("process_"):
                continue  # a timer run's process has exited: the daemon's only
            assert monitoring.exposed_name(name, kind) in exported, f"{name} missing on {host}"
        assert not [n for n in exported if n.endswith("_created")], exported
    ratio = prom.query(f'gcd_filesystem_used_ratio{{instance="{hosts.instance("main")}"}}')
    # The loop mount, or dockerd's bind mount of its data root on it (the kernel's answer for
    # the data root, which node_exporter lists too).
    assert all(r["metric"]["mountpoint"].startswith(str(hosts.disk)) for r in ratio), ratio
    assert all(r["metric"]["device"].startswith("/dev/loop") for r in ratio), ratio
    # ... so that it joins node_exporter's view of the same filesystem.
    joined = prom.query(
        'gcd_filesystem_used_ratio{resource="bytes"} * on (mountpoint, device) group_left() '
        "(node_filesystem_size_bytes > 0) > 0"
    )
    assert joined, "gcd_filesystem_used_ratio does not join node_filesystem_size_bytes"


def check_dashboard(prom: Stack, hosts: Hosts, measured: dict[str, dict[str, float]]) -> None:
    """Every query returns data for the daemon host and the timer host; the queries that list
    only hosts in trouble, at a moment their trouble was there."""
    at = {  # the first key an expression contains picks the moment
        "gcd_engine_up == 0": measured["lost_engine"]["engine down at"],
        "up == 0": measured["refused_then_killed"]["down at"],
        'result!="success"': measured["sick_engine"]["sick at"],
        "node_textfile_mtime_seconds": measured["stale_timer"]["stale at"],
    }
    empty = []
    for title, expr in monitoring.dashboard_queries():
        moment = next((t for key, t in at.items() if key in expr), None)
        targets = ("main", "timer") if "$instance" in expr else ("main",)
        for host in targets:
            query = monitoring.for_host(expr, hosts.instance(host))
            if not prom.query(query, at=moment):
                empty.append(f"{title}: {query} (for {host})")
    assert not empty, "dashboard queries without data:\n" + "\n".join(empty)


@contextmanager
def _repeating(action: Callable[[], None], every: float) -> Iterator[Callable[[], None]]:
    """`action` every `every` s on a thread; the context's value stops it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            action()
            stop.wait(every)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()

    def halt() -> None:
        stop.set()
        thread.join(150)

    try:
        yield halt
    finally:
        halt()
