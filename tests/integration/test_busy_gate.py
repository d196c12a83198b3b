"""The busy gate on the real engine (`gcd.core.busy`): a real classic build (the docker CLI
first on PATH has no buildx: `docker build` is the classic builder) and a real BuildKit
build (`DOCKER_BUILDKIT=1 /usr/bin/docker build`) run while `gcd run --once` starts with a
policy that would delete the build's base image, an unrelated image and the build cache:
both builds finish, the cycle defers (`keep.busy` in the JSON run output); at the critical
watermark the cycle proceeds.

Podman's compatible API has no BuildKit and builds through buildah, whose containers the
API does not list: the gate sees nothing there (skipped)."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.config.loader import load_policy
from gcd.cycle import run_once
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from gcd.host.disk import measure
from tests.integration.builds import (
    BUILD_TIMEOUT_SECONDS,
    build_command,
    build_env,
    context,
    no_buildkit,
)
from tests.integration.builds import build as buildkit_build
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer

CLASSIC_CLI = "/usr/local/bin/docker"
POLICY = (
    "version: 1\n"
    "safety: {min_age: 0s, max_delete_fraction: 1, quiet_for: 10m}\n"
    "images: {dangling: {keep_within: 0s}}\n"
    "build_cache: {unused_for: 0s}\n"
)
QUICK_DOCKERFILE = "FROM scratch\nCOPY busybox /bin/busybox\nCOPY token /token\n"
"""An earlier build, whose cache records are stale for `unused_for: 0s`."""
CLASSIC_DOCKERFILE = "FROM gate/base:1\nRUN sleep 4\nRUN echo step > /step\nRUN sleep 1\n"
BUILDKIT_DOCKERFILE = (
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    "COPY token /token\n"
    'RUN ["/bin/busybox", "sleep", "5"]\n'
    'RUN ["/bin/busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=50"]\n'
)


def _skip_podman(engine: Engine) -> None:
    if engine.podman:
        pytest.skip("Podman builds through buildah: no BuildKit records, no listed steps")


def _write_policy(tmp_path: Path, text: str = POLICY) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    path.chmod(0o600)
    return path


def _run(host: PrivateEngine, tmp_path: Path, policy: Path) -> dict[str, Any]:
    done = gcd(
        host.host, tmp_path / "state", "run", "--once", "--policy", str(policy), "-o", "json"
    )
    assert done.returncode == 0, done.stderr[-3000:]
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def _rules(document: dict[str, Any], kind: str) -> dict[str, str]:
    """Each object's rule by each of its names (the containerd store lists digests too)."""
    return {
        name: d["rule"]
        for d in document["decisions"]
        if d["kind"] == kind
        for name in d["names"] or [d["id"]]
    }


def _wait_for(what: str, found: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, f"{what} did not happen within {timeout:g} s"
        time.sleep(0.1)


@contextmanager
def _running(
    command: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=BUILD_TIMEOUT_SECONDS)


def _finished(process: subprocess.Popen[str]) -> None:
    output, _ = process.communicate(timeout=BUILD_TIMEOUT_SECONDS)
    assert process.returncode == 0, output[-3000:]


def _step_running(api: docker.APIClient) -> bool:
    return any(c["Image"].startswith("sha256:") for c in api.containers(all=True))


def _buildkit_in_use(api: docker.APIClient) -> bool:
    return any(r.get("InUse") for r in api.df().get("BuildCache") or ())


@pytest.mark.core
def test_a_classic_build_defers_image_deletions_and_finishes(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    _skip_podman(engine)
    load(api, image(runnable_layer(), tags=("gate/base:1",)))
    load(api, image(layer(2048, "gate-junk"), tags=("gate/junk:1",)))
    folder = tmp_path / "classic"
    folder.mkdir()
    (folder / "Dockerfile").write_text(CLASSIC_DOCKERFILE)
    command = [CLASSIC_CLI, "-H", clean_engine.host, "build", "--network", "none"]
    with _running([*command, "-t", "gate/app:1", str(folder)]) as build:
        _wait_for("a classic build step", lambda: _step_running(api))
        document = _run(clean_engine, tmp_path, _write_policy(tmp_path))
        _finished(build)
    images = _rules(document, "image")
    # The base is in use by the running step; between steps only the gate holds it.
    assert images["gate/base:1"] in ("keep.in_use", "keep.busy")
    assert images["gate/junk:1"] == "keep.busy"
    assert "a classic build is running (step container" in document["busy"]
    assert document["outcomes"] == [] or all(o["kind"] != "image" for o in document["outcomes"])
    assert api.inspect_image("gate/app:1")["Id"]
    # Once the build is over the gate opens: the next cycle deletes what waited.
    after = _run(clean_engine, tmp_path, _write_policy(tmp_path))
    assert after["busy"] is None
    assert not api.images(name="gate/junk")


def test_a_buildkit_build_defers_image_and_cache_deletions_and_finishes(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    _skip_podman(engine)
    reason = no_buildkit(engine)
    if reason:
        pytest.skip(reason)
    load(api, image(layer(2048, "gate-junk"), tags=("gate/junk:1",)))
    buildkit_build(clean_engine, context(tmp_path, QUICK_DOCKERFILE), "gate/old:1")
    folder = context(tmp_path, BUILDKIT_DOCKERFILE)
    with _running(build_command(clean_engine, folder, "gate/new:1"), build_env()) as build:
        _wait_for("a BuildKit record in use", lambda: _buildkit_in_use(api))
        document = _run(clean_engine, tmp_path, _write_policy(tmp_path))
        _finished(build)
    assert _rules(document, "image")["gate/junk:1"] == "keep.busy"
    cache = [(d["names"], d["rule"]) for d in document["decisions"] if d["kind"] == "build_cache"]
    rules = {rule for _, rule in cache}
    assert "keep.busy" in rules, cache  # the earlier build's records, stale
    assert rules <= {"keep.busy", "keep.in_use", "keep.shared"}, cache
    assert "a BuildKit build is running" in document["busy"]
    assert document["outcomes"] == []
    assert api.inspect_image("gate/new:1")["Id"]


def test_at_the_critical_watermark_the_cycle_proceeds_during_a_build(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    """The disk holding the engine's data, really measured, with watermarks set below its
    usage: the cycle deletes the unrelated image while the build runs."""
    _skip_podman(engine)
    load(api, image(runnable_layer(), tags=("gate/base:1",)))
    load(api, image(layer(2048, "gate-junk"), tags=("gate/junk:1",)))
    used = measure(clean_engine.data_root)
    ratio = used.used_bytes / used.total_bytes
    assert ratio > 0.04, f"the test needs a disk at least 4% used, found {ratio:.1%}"
    high, low, critical = ratio * 0.5, ratio * 0.25, ratio * 0.75
    folder = tmp_path / "classic"
    folder.mkdir()
    (folder / "Dockerfile").write_text(CLASSIC_DOCKERFILE)
    policy = load_policy(_write_policy(tmp_path))
    command = [CLASSIC_CLI, "-H", clean_engine.host, "build", "--network", "none"]
    with _running([*command, "-t", "gate/app:1", str(folder)]) as build:
        _wait_for("a classic build step", lambda: _step_running(api))
        pressure = measure(clean_engine.data_root).pressure(high, low, critical)
        assert pressure.critical_reached
        result = run_once(engine, policy, tmp_path / "state", pressure=pressure)
        build.communicate(timeout=BUILD_TIMEOUT_SECONDS)  # it may fail: the disk is "full"
    assert result.plan.busy is not None
    assert result.plan.busy.endswith("not deferred: the disk is at the critical watermark")
    removed = {
        name
        for o in result.report.outcomes
        if o.status is OutcomeStatus.REMOVED
        for name in o.references
    }
    assert "gate/junk:1" in removed
    assert all(d.rule.value != "keep.busy" for d in result.plan.decisions)
