"""The shipped units under a real systemd, booted with systemd-nspawn (see nspawn.py).

The first run builds the cached root (debootstrap, ~1-2 min) and venv layer (~15 s); after
that a boot takes about a second. The host engine is a private dockerd started here, its socket
directory bound into the container; the units run verbatim, gcd installed in /opt/gcd and linked
as /usr/local/bin/gcd (README.md, deploy/systemd). Test-only changes are drop-ins.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.system import host_engine, nspawn
from tests.system.host_engine import HostEngine
from tests.system.nspawn import Container, wait_for

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        (reason := nspawn.unavailable_reason() or host_engine.unavailable_reason()) is not None,
        reason=reason or "",
    ),
]

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
PROBE = f"{nspawn.REPO_MOUNT}/tests/system/probe_service.py"
POLICY = """\
version: 1
safety: {{min_age: 1h}}
images:
  keep:
    - label: {{gc.keep: "true"}}
schedule:
  every: {every}
"""


@pytest.fixture(scope="module")
def engine() -> Iterator[HostEngine]:
    with host_engine.private_engine() as started:
        yield started


@pytest.fixture
def host(engine: HostEngine, gcd_wheel: Path) -> Iterator[Container]:
    """A booted container with gcd installed, the shipped units in place and the engine bound."""
    with nspawn.booted(REPO, engine.socket_dir, engine.socket_gid) as container:
        container.install_gcd(gcd_wheel)
        container.run("ln", "-s", nspawn.GCD, "/usr/local/bin/gcd")
        for unit in UNITS.glob("gcd*.*"):
            if unit.suffix in (".service", ".timer"):
                container.write_file(f"/etc/systemd/system/{unit.name}", unit.read_text())
        container.systemctl("daemon-reload")
        yield container


def drop_in(container: Container, unit: str, body: str) -> None:
    container.write_file(f"/etc/systemd/system/{unit}.d/test.conf", f"[Service]\n{body}")
    container.systemctl("daemon-reload")


def events(container: Container, unit: str) -> list[dict[str, Any]]:
    found = []
    for line in container.journal(unit):
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def wait_for_event(container: Container, unit: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        return next((e for e in events(container, unit) if e.get("event") == name), None)

    return wait_for(f"{name!r} in the journal of {unit}", probe, timeout=60)


def start(container: Container, unit: str) -> None:
    result = container.systemctl("start", unit, check=False)
    if result.returncode != 0:
        log = "\n".join(container.journal(unit)[-40:])
        pytest.fail(f"systemctl start {unit} failed: {result.stderr}\n{log}")


def wait_for_restart(container: Container, unit: str) -> None:
    def restarted() -> bool | None:
        return True if int(container.show(unit, "NRestarts")) >= 1 else None

    wait_for(f"{unit} to be restarted", restarted, timeout=60)

    def active() -> bool | None:
        return True if container.show(unit, "ActiveState") == "active" else None

    wait_for(f"{unit} to be active again", active, timeout=60)


def test_the_container_boots_and_runs_the_installed_gcd(gcd_wheel: Path) -> None:
    with nspawn.booted(REPO) as container:
        container.install_gcd(gcd_wheel)
        assert container.run("systemctl", "is-system-running").stdout.strip() == "running"
        assert "usage: gcd" in container.run(nspawn.GCD, "--help").stdout


def test_the_shipped_sandbox_lets_gcd_reach_the_engine_and_serve_metrics(
    host: Container,
) -> None:
    """A stand-in process (probe_service.py) does what the daemon needs, under gcd.service."""
    drop_in(host, "gcd.service", f"ExecStart=\nExecStart={nspawn.VENV}/bin/python {PROBE}\n")
    start(host, "gcd.service")
    assert host.show("gcd.service", "ActiveState") == "active"
    assert host.show("gcd.service", "StatusText") == "probe ready"
    imports = wait_for_event(host, "gcd.service", "probe_imports")
    assert imports["uid"] != 0
    assert wait_for_event(host, "gcd.service", "probe_engine")["version"]
    assert wait_for_event(host, "gcd.service", "probe_metrics")["scraped"] is True
    state = wait_for_event(host, "gcd.service", "probe_state_written")
    assert (state["path"], state["mode"]) == ("/var/lib/gcd/probe.json", "0o600")

    host.systemctl("reload", "gcd.service")
    wait_for_event(host, "gcd.service", "probe_reloaded")
    assert host.show("gcd.service", "ActiveState") == "active"

    host.systemctl("stop", "gcd.service")
    wait_for_event(host, "gcd.service", "probe_stopped")
    assert host.show("gcd.service", "Result") == "success"


def test_the_watchdog_restarts_a_process_that_stops_pinging(host: Container) -> None:
    drop_in(
        host,
        "gcd.service",
        f"ExecStart=\nExecStart={nspawn.VENV}/bin/python {PROBE}\n"
        "Environment=PROBE_WEDGE=1\nWatchdogSec=2\nRestartSec=1\n",
    )
    start(host, "gcd.service")
    wait_for_restart(host, "gcd.service")
    assert any("Watchdog timeout" in line for line in host.journal("gcd.service"))


def test_the_timer_schedules_the_one_shot_run(host: Container) -> None:
    host.systemctl("enable", "--now", "gcd.timer")
    assert host.show("gcd.timer", "ActiveState") == "active"
    assert host.show("gcd.timer", "Triggers") == "gcd-run.service"
    assert host.show("gcd.timer", "NextElapseUSecRealtime")


def gcd_on_the_host(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gcd", *args], capture_output=True, text=True, check=False
    )


@pytest.fixture
def gcd_daemon() -> None:
    """Skips (before booting anything) while this checkout's gcd has no daemon command."""
    if gcd_on_the_host("daemon", "--help").returncode != 0:
        pytest.skip("gcd daemon not available yet")


@pytest.fixture
def gcd_plan() -> None:
    if gcd_on_the_host("plan", "--help").returncode != 0:
        pytest.skip("gcd plan does not run in this checkout")


@pytest.fixture
def gcd_textfile() -> None:
    if "--textfile" not in gcd_on_the_host("run", "--help").stdout:
        pytest.skip("gcd run --textfile not available yet")


@pytest.mark.usefixtures("gcd_daemon")
def test_gcd_daemon_runs_under_the_shipped_unit(host: Container) -> None:
    host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="1h"))
    start(host, "gcd.service")  # returns once the daemon has sent READY=1
    assert host.show("gcd.service", "ActiveState") == "active"
    wait_for_event(host, "gcd.service", "daemon_ready")

    host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="30m"))
    host.systemctl("reload", "gcd.service")
    wait_for_event(host, "gcd.service", "policy_reloaded")
    assert host.show("gcd.service", "ActiveState") == "active"

    drop_in(
        host,
        "gcd.service",
        "Environment=GCD_TEST_WEDGE_AFTER_READY=1\nWatchdogSec=2\nRestartSec=1\n",
    )
    host.systemctl("restart", "gcd.service")
    wait_for_restart(host, "gcd.service")
    assert any("Watchdog timeout" in line for line in host.journal("gcd.service"))


@pytest.mark.usefixtures("gcd_textfile")
def test_gcd_run_once_under_the_shipped_one_shot_unit(host: Container) -> None:
    host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="1h"))
    textfiles = "/var/lib/prometheus/node-exporter"
    host.run("install", "-d", "-m", "2775", "-g", "docker", textfiles)
    drop_in(host, "gcd-run.service", "Environment=GCD_FIRST_SCRAPE_WAIT=0\n")  # no scraper here
    start(host, "gcd-run.service")
    assert host.show("gcd-run.service", "Result") == "success"
    assert "gcd_" in host.run("sh", "-c", f"cat {textfiles}/*.prom").stdout
    modes = host.run("sh", "-c", f"stat -c %A {textfiles}/*.prom").stdout.split()
    assert all(mode[7] == "r" for mode in modes), "node_exporter must be able to read the textfile"


@pytest.mark.usefixtures("gcd_plan")
def test_the_readme_first_plan_runs_as_the_services_user(host: Container) -> None:
    """deploy/systemd/README.md step 4: the state it writes belongs to the services' user."""
    host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="1h"))
    host.run(
        *("systemd-run", "--quiet", "--pipe", "--wait", "--collect"),
        *("-p", "DynamicUser=yes", "-p", "User=gcd", "-p", "SupplementaryGroups=docker"),
        *("-p", "StateDirectory=gcd", "/usr/local/bin/gcd", "plan"),
        *("--policy", "/etc/gcd/policy.yaml"),
    )
    owners = host.run("find", "/var/lib/private/gcd", "-printf", "%u %p\n").stdout.splitlines()
    assert owners
    assert not [line for line in owners if line.startswith("root ")]
    # The same README: a plain `gcd plan` as root is then refused, not mixed into that state.
    as_root = host.run(
        "/usr/local/bin/gcd", "plan", "--policy", "/etc/gcd/policy.yaml", check=False
    )
    assert as_root.returncode == 1, as_root.stderr
    assert "refusing the state directory /var/lib/gcd" in as_root.stderr
    assert "or run gcd as" in as_root.stderr


@pytest.mark.usefixtures("gcd_daemon")
def test_the_shipped_daemon_refuses_a_policy_that_others_could_write(host: Container) -> None:
    """The shipped units run without the override: the state directory systemd creates (the
    dynamic user's, 0700, behind the /var/lib/gcd link) and a root-owned 0644 policy pass the
    checks; a world-writable policy stops the start, and a reload keeps the running policy."""
    host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="1h"), mode=0o666)
    assert host.systemctl("start", "gcd.service", check=False).returncode != 0
    assert host.show("gcd.service", "ExecMainStatus") == "2"
    journal = host.journal("gcd.service")
    assert any("chmod go-w /etc/gcd/policy.yaml" in line for line in journal), journal[-20:]
    host.systemctl("stop", "gcd.service")

    host.run("chmod", "0644", "/etc/gcd/policy.yaml")
    start(host, "gcd.service")
    wait_for_event(host, "gcd.service", "daemon_ready")
    host.run("chmod", "0666", "/etc/gcd/policy.yaml")
    host.systemctl("reload", "gcd.service")
    failed = wait_for_event(host, "gcd.service", "policy_reload_failed")
    assert "chmod go-w /etc/gcd/policy.yaml" in failed["error"]
    assert host.show("gcd.service", "ActiveState") == "active"
