"""Docker down when gcd starts, under the real systemd (nspawn) and a real Prometheus.

Before, the daemon waited for the engine before READY=1: the shipped unit (Type=notify,
TimeoutStartSec=120, Restart=on-failure, RestartSec=10) was restarted about every 130 s while
Docker stayed down, and each restart reset the `for:` of GcdDown and GcdEngineUnreachable
and gcd_start_time_seconds, so the host that most needed an alert never got one. Now the
daemon is ready without the engine: the unit is active at once and stays so, the probe sets
gcd_engine_up 0, GcdEngineUnreachable fires and, once the engine is started, the missed
cycle runs and the alert resolves.
"""

from __future__ import annotations

import grp
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.integration.harness import PrivateEngine
from tests.system import host_engine, monitoring, nspawn
from tests.system.monitoring import FAST_FOR_SECONDS, wait_until
from tests.system.test_systemd_unit import POLICY, UNITS, drop_in, start, wait_for_event

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        (
            reason := nspawn.unavailable_reason()
            or host_engine.unavailable_reason()
            or monitoring.missing_binaries()
        )
        is not None,
        reason=reason or "",
    ),
]

REPO = Path(__file__).resolve().parents[2]
PROBE_SECONDS = 15.0
SLACK = 20.0


def test_the_shipped_unit_is_ready_without_docker_and_the_alert_fires(gcd_wheel: Path) -> None:
    socket_dir = Path(tempfile.mkdtemp(prefix="gcd-no-engine-", dir="/tmp"))  # no engine yet
    socket_dir.chmod(0o755)
    port = monitoring.free_port()
    instance = f"127.0.0.1:{port}"
    rules = monitoring.fast_rules(monitoring.RULES.read_text())
    docker_gid = grp.getgrnam("docker").gr_gid  # dockerd gives its sockets this group
    try:
        with (
            monitoring.monitoring([instance], [], rules) as prom,
            nspawn.booted(REPO, socket_dir, docker_gid) as host,
        ):
            host.install_gcd(gcd_wheel)
            host.run("ln", "-s", nspawn.GCD, "/usr/local/bin/gcd")
            host.write_file("/etc/systemd/system/gcd.service", (UNITS / "gcd.service").read_text())
            host.write_file("/etc/gcd/policy.yaml", POLICY.format(every="1h"))
            drop_in(  # the shipped ExecStart, on a port of this test's own
                host,
                "gcd.service",
                "ExecStart=\nExecStart=/usr/local/bin/gcd daemon --policy /etc/gcd/policy.yaml "
                f"--state-dir /var/lib/gcd --metrics-address {instance}\n",
            )
            start(host, "gcd.service")  # returns at READY=1: without an engine, at once
            assert host.show("gcd.service", "ActiveState") == "active"
            prom.wait_firing(
                "GcdEngineUnreachable", instance, PROBE_SECONDS + FAST_FOR_SECONDS + SLACK
            )
            assert host.show("gcd.service", "NRestarts") == "0"
            assert prom.alert_state("GcdDown", instance) is None
            starts = prom.query(f'changes(gcd_start_time_seconds{{instance="{instance}"}}[1h])')
            assert [r["value"][1] for r in starts] == ["0"], starts
            assert wait_for_event(host, "gcd.service", "cycle_failed")["result"] == "failure"

            extra = ("--host", f"unix://{socket_dir}/docker.sock")
            with PrivateEngine(extra_args=extra):
                prom.wait_resolved("GcdEngineUnreachable", instance, PROBE_SECONDS + SLACK)
                wait_for_event(host, "gcd.service", "engine_back")
                succeeded = f'gcd_cycles_total{{instance="{instance}", result="success"}} > 0'
                wait_until(
                    "the missed cycle, run once the engine is back",
                    lambda: prom.query(succeeded),
                    60,
                )
                assert host.show("gcd.service", "NRestarts") == "0"
    finally:
        shutil.rmtree(socket_dir, ignore_errors=True)
