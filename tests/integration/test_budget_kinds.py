"""One disk budget across kinds, on a real filesystem: the engine's data root on a small
loop-mounted ext4 (`test_disk_pressure.py` has the fixtures), with build cache, exited
containers, volumes and images all competing for the space."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import docker.errors
import pytest

from gcd.config.loader import parse_policy
from gcd.core.budget import Pressure
from gcd.core.kind import Kind
from gcd.core.policy import Policy
from gcd.core.rules import RuleId
from gcd.cycle import plan_once, run_once
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from gcd.host.disk import measure
from tests.integration.builds import DOCKER_20_CLI
from tests.integration.daemon_process import DaemonProcess
from tests.integration.engines import selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.state_seed import engine_state
from tests.integration.test_disk_pressure import pressured_engine, small_disk

__all__ = ["pressured_engine", "small_disk"]

MiB = 2**20

pytestmark = pytest.mark.skipif(
    selected_engine() != "docker-20.10", reason="BuildKit cache needs Docker 20.10's own CLI"
)


def wait_exited(api: docker.APIClient, container: str) -> None:
    deadline = time.monotonic() + 60
    while api.inspect_container(container)["State"]["Status"] != "exited":
        assert time.monotonic() < deadline, f"{container} did not exit"
        time.sleep(0.1)


def exited_with_bytes(api: docker.APIClient, name: str, mib: int) -> str:
    """A container that wrote `mib` MiB into its own writable layer and exited."""
    created = api.create_container(
        "base:1",
        ["/bin/busybox", "dd", "if=/dev/zero", "of=/big", "bs=1M", f"count={mib}"],
        name=name,
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(created["Id"])
    wait_exited(api, created["Id"])
    return str(created["Id"])


def orphan_volume_with_bytes(api: docker.APIClient, mib: int) -> str:
    """An anonymous volume holding `mib` MiB that no container references any more."""
    created = api.create_container(
        "base:1",
        ["/bin/busybox", "dd", "if=/dev/zero", "of=/data/big", "bs=1M", f"count={mib}"],
        volumes=["/data"],
        host_config=api.create_host_config(network_mode="none"),
    )
    api.start(created["Id"])
    wait_exited(api, created["Id"])
    (mount,) = [m for m in api.inspect_container(created["Id"])["Mounts"] if m["Type"] == "volume"]
    api.remove_container(created["Id"], v=False)
    return str(mount["Name"])


def cache_with_bytes(host: str, context: Path, mib: int) -> None:
    """Real BuildKit cache: a build whose `RUN` writes `mib` MiB, then its image removed, so
    that the record is not shared with any image."""
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM base:1\nRUN /bin/busybox dd if=/dev/zero of=/cache bs=1M count={mib}\n"
    )
    env = {**os.environ, "DOCKER_BUILDKIT": "1", "DOCKER_HOST": host}
    subprocess.run(
        [str(DOCKER_20_CLI), "build", "--network", "none", "-t", "built:1", str(context)],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run([str(DOCKER_20_CLI), "rmi", "built:1"], env=env, check=True, capture_output=True)


POLICY = """\
version: 1
safety: {{min_age: 1s, max_delete_fraction: 1}}
images:
  keep:
    - reference: ["base:*"]
    - newest: 100
containers:
  remove_exited_after: 7d
volumes:
  anonymous_unused_for: 7d
build_cache:
  unused_for: 7d
schedule:
  cron: "0 0 1 1 *"
  disk: {{high: {high:.4f}, low: {low:.4f}, check_every: 1s{critical}}}
"""


def policy_for(high: float, low: float, critical: float | None = None) -> str:
    extra = f", critical: {critical:.4f}" if critical is not None else ""
    return POLICY.format(high=high, low=low, critical=extra)


@pytest.fixture
def build_host(
    pressured_engine: PrivateEngine, tmp_path: Path
) -> Iterator[tuple[docker.APIClient, str, str]]:
    """Images (30 MiB each, soft-kept by `newest`), an exited container and an orphaned
    anonymous volume (40 MiB each) and a 40 MiB build-cache record, all soft-kept too."""
    if not DOCKER_20_CLI.exists():
        pytest.skip("/usr/bin/docker (Debian's docker.io client) is missing")
    api = docker.APIClient(base_url=pressured_engine.host, version="auto", timeout=120)
    load(api, image(runnable_layer(), tags=("base:1",)))
    for n in range(2):
        load(api, image(layer(30 * MiB, f"app-{n}"), tags=(f"team/app:{n}",)))
    container = exited_with_bytes(api, "job-1", 40)
    volume = orphan_volume_with_bytes(api, 40)
    cache_with_bytes(pressured_engine.host, tmp_path / "context", 40)
    seen(api, pressured_engine.host, tmp_path / "state")
    yield api, container, volume
    api.close()


def seen(api: docker.APIClient, host: str, state_dir: Path) -> None:
    """Images as if seen a month ago; everything else seen now, by a first plan."""
    state = engine_state(api, state_dir)
    for listed in api.images():
        state.mark_seen(listed["Id"], datetime.now(UTC) - timedelta(days=30))
    state.save()
    plan_once(Engine(host), Policy(), state_dir)


def later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=5)  # past min_age: 1s for what was just made


def test_one_budget_evicts_build_cache_then_containers_and_keeps_images_and_volumes(
    pressured_engine: PrivateEngine,
    small_disk: Path,
    build_host: tuple[docker.APIClient, str, str],
    tmp_path: Path,
) -> None:
    api, container, volume = build_host
    usage = measure(small_disk)
    # Freeing 60 MiB reaches low: the build cache (40 MiB) alone does not, with the exited
    # container (another 40 MiB) it does, so images and the volume stay.
    low = (usage.used_bytes - 60 * MiB) / usage.total_bytes
    high = usage.used_bytes / usage.total_bytes - 0.01
    policy = parse_policy(policy_for(high, low), "policy.yaml")
    pressure = usage.pressure(high, low, 0.999)

    result = run_once(
        Engine(pressured_engine.host), policy, tmp_path / "state", now=later(), pressure=pressure
    )

    evicted = {d.key.kind for d in result.plan.deletions if d.rule is RuleId.PRESSURE}
    assert evicted == {Kind.BUILD_CACHE, Kind.CONTAINER}
    assert all(o.status is OutcomeStatus.REMOVED for o in result.report.outcomes)
    assert container not in {c["Id"] for c in api.containers(all=True)}
    assert volume in {v["Name"] for v in api.volumes()["Volumes"]}
    assert {"team/app:0", "team/app:1"} <= {t for i in api.images() for t in i["RepoTags"] or ()}
    left = [r for r in api.df()["BuildCache"] if not r["Shared"] and r["Size"] > MiB]
    assert not left, "the 40 MiB record went first"
    assert measure(small_disk).pressure(high, low).bytes_ratio < low


def test_the_evictions_stop_once_the_measured_disk_is_below_low(
    pressured_engine: PrivateEngine,
    small_disk: Path,
    build_host: tuple[docker.APIClient, str, str],
    tmp_path: Path,
) -> None:
    """The projection asks for every soft keep; another process frees space meanwhile; the
    disk is measured after each kind, and what is no longer needed is not deleted."""
    api, _, volume = build_host
    filler = small_disk / "filler"
    subprocess.run(["fallocate", "-l", f"{120 * MiB}", str(filler)], check=True)
    usage = measure(small_disk)
    high = usage.used_bytes / usage.total_bytes - 0.01
    low = 0.01  # unreachable by prediction: everything soft is evicted in the plan
    policy = parse_policy(policy_for(high, low), "policy.yaml")
    pressure = usage.pressure(high, low, 0.999)
    measured: list[Pressure] = []

    def remeasure() -> Pressure:
        filler.unlink(missing_ok=True)  # someone else frees 120 MiB
        now = measure(small_disk).pressure(high, (usage.used_bytes - 100 * MiB) / usage.total_bytes)
        measured.append(now)
        return now

    result = run_once(
        Engine(pressured_engine.host),
        policy,
        tmp_path / "state",
        now=later(),
        pressure=pressure,
        remeasure=remeasure,
    )

    statuses = {(o.key.kind, o.status) for o in result.report.outcomes}
    assert (Kind.CONTAINER, OutcomeStatus.REMOVED) in statuses, "the first kind ran"
    skipped = [o for o in result.report.outcomes if o.status is OutcomeStatus.NOT_ATTEMPTED]
    assert skipped
    assert all(o.rule is RuleId.PRESSURE for o in skipped)
    assert all("below low" in o.detail for o in skipped)
    assert volume in {v["Name"] for v in api.volumes()["Volumes"]}, "volumes come last"
    assert len(measured) == 1


def fill(path: Path) -> None:
    """Fill the filesystem to the last block, as root (reserved blocks too): one large file,
    then small ones into whatever blocks are left, after a sync (delayed allocation)."""
    subprocess.run(
        ["dd", "if=/dev/zero", f"of={path / 'filler'}", "bs=1M"], capture_output=True, check=False
    )
    os.sync()
    for n in range(100_000):
        try:
            (path / f"filler-{n}").write_bytes(b"x" * 4096)
        except OSError:
            break
    os.sync()


def test_a_full_disk_frees_containers_and_cache_first_then_images(
    pressured_engine: PrivateEngine,
    small_disk: Path,
    build_host: tuple[docker.APIClient, str, str],
    tmp_path: Path,
) -> None:
    api, _, _ = build_host
    load(api, image(layer(5 * MiB, "probe"), tags=("probe:1",)))
    load(api, image(layer(5 * MiB, "old"), tags=("old/tool:1",)))
    seen(api, pressured_engine.host, tmp_path / "state")
    fill(small_disk)
    # The premise, on this engine: a full disk refuses image deletion (engine-facts §0.11).
    with pytest.raises(docker.errors.APIError) as refused:
        api.remove_image("probe:1")
    assert refused.value.status_code == 500
    assert "no space left" in str(refused.value).lower()
    usage = measure(small_disk)
    assert usage.used_bytes / usage.total_bytes > 0.99
    text = policy_for(0.9, 0.5, 0.98).replace(
        "    - newest: 100\n", '    - reference: ["team/**"]\n'
    )
    policy = parse_policy(text, "policy.yaml")

    result = run_once(
        Engine(pressured_engine.host),
        policy,
        tmp_path / "state",
        now=later(),
        pressure=usage.pressure(0.9, 0.5, 0.98),
    )

    kinds = [o.key.kind for o in result.report.outcomes if o.status is OutcomeStatus.REMOVED]
    assert kinds.index(Kind.CONTAINER) < kinds.index(Kind.IMAGE), "images after the others"
    assert Kind.BUILD_CACHE in kinds
    tags = {t for i in api.images() for t in i["RepoTags"] or ()}
    assert "old/tool:1" not in tags, "deleted once the other kinds made room"
    assert not result.report.failed


def test_the_daemon_measures_the_disk_after_each_kind_and_logs_the_relief(
    pressured_engine: PrivateEngine,
    small_disk: Path,
    build_host: tuple[docker.APIClient, str, str],
    tmp_path: Path,
) -> None:
    """The same budget through `gcd daemon`: its disk check triggers the cycle, and the
    statvfs it takes after each kind's deletions finds the disk below low (the
    `pressure_relieved` event comes only from that measurement)."""
    api, container, volume = build_host
    usage = measure(small_disk)
    low = (usage.used_bytes - 60 * MiB) / usage.total_bytes
    high = usage.used_bytes / usage.total_bytes - 0.01
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_for(high, low))
    policy.chmod(0o600)

    with DaemonProcess(pressured_engine.host, policy, tmp_path / "state") as daemon:
        finished = daemon.wait_for("run_finished", where=lambda e: e["trigger"] == "pressure")
        relieved = daemon.named("pressure_relieved")

    assert finished["removed"] >= 2
    # Which soft keeps yield depends on the moment (a cache record used within min_age stays);
    # the relief is logged once, after the kind whose deletions brought the disk below low.
    assert len(relieved) == 1
    assert relieved[0]["after_kind"] in {"container", "image", "build_cache"}
    assert container not in {c["Id"] for c in api.containers(all=True)}
    assert volume in {v["Name"] for v in api.volumes()["Volumes"]}
    assert measure(small_disk).pressure(high, low).bytes_ratio < low
