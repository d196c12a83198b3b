"""Every file of the bad-policy corpus (`tests/data/bad-policies/`), and the generated ones too
large to keep in the repository, sent to a running daemon on SIGHUP: each reload fails with
one `policy_reload_failed` event and the running policy stays — the daemon neither dies nor
grows, every stderr line stays JSON, and a good policy afterwards is taken and cycles on."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import docker

from tests.figures import Figure, record
from tests.integration.daemon_process import DaemonProcess
from tests.integration.harness import PrivateEngine
from tests.integration.test_daemon_faults import (
    DOOMED,
    KEPT,
    non_json,
    seed,
    write_policy,
    wrongly_removed,
)
from tests.unit.test_policy_corpus import FILES, _generated

RSS_LIMIT_KIB = 400 * 1024
"""The daemon's resident memory after all the reloads: a bomb that got through would grow it
by gigabytes; a Python daemon with its libraries sits near 60 MiB."""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def _swap_in(policy: Path, source: Path) -> None:
    """Put `source` where the daemon reads its policy, as an operator's editor would: the FIFO,
    the device and the directory as what they are (a link would be followed to them)."""
    if policy.is_symlink() or policy.is_file() or policy.is_fifo():
        policy.unlink()
    elif policy.is_dir():
        policy.rmdir()
    if source.is_fifo():
        os.mkfifo(policy, 0o644)
    elif source.is_dir():
        policy.mkdir(mode=0o755)
    elif not source.is_file():
        policy.symlink_to(source)
    else:
        policy.write_bytes(source.read_bytes())
        policy.chmod(0o644)


def test_sighup_with_each_bad_policy_keeps_the_running_one(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    seed(api, state_dir)
    policy = write_policy(tmp_path / "policy.yaml", schedule="every: 1h")
    generated = tmp_path / "generated"
    generated.mkdir()
    sources = [*FILES, *_generated(generated)]
    with DaemonProcess(clean_engine.host, policy, state_dir) as daemon:
        daemon.wait_for("cycle_finished")
        for number, source in enumerate(sources, start=1):
            _swap_in(policy, source)
            daemon.signal(signal.SIGHUP)
            daemon.wait_for("policy_reload_failed", count=number, timeout=30)
            assert daemon.process.poll() is None, source.name
        rss = _rss_kib(daemon.process.pid)
        write_policy(_fresh(policy), schedule="every: 1s")
        daemon.signal(signal.SIGHUP)
        daemon.wait_for("policy_reloaded", timeout=30)
        daemon.wait_for("cycle_finished", count=2, timeout=30)
    assert daemon.process.returncode == 0
    assert not daemon.named("policy_reloaded")[:-1]  # only the good one was taken
    assert rss < RSS_LIMIT_KIB, f"{rss} KiB"
    assert non_json(daemon) == []
    assert wrongly_removed(api) == 0
    record(
        Figure(
            area="bad policy",
            scenario="the corpus on SIGHUP to a running daemon",
            at_risk=len(KEPT),
            wrongly_removed=wrongly_removed(api),
            inputs=len(sources),
            removed=len(DOOMED),
        )
    )


def _fresh(policy: Path) -> Path:
    if policy.is_dir():
        policy.rmdir()
    elif policy.exists() or policy.is_symlink():
        policy.unlink()
    return policy
