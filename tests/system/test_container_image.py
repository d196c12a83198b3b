"""The container image gcd:<version> (scripts/image), built from the session's Debian package
over the cached nspawn root and imported into the suite's private engine, then run against
that engine with its socket mounted: as the image's own non-root user, in the socket's group
(--group-add), the state on a volume. gcd keeps the image it runs from (the in-use guard),
even under a policy that would otherwise delete it.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.integration import images
from tests.system import debian_package, host_engine
from tests.system.debian_package import Packages
from tests.system.host_engine import HostEngine
from tests.system.nspawn import wait_for

pytestmark = [pytest.mark.system, debian_package.needs_package_and_engine()]

# No keep rule at all, no minimum age, dangling images at once: only the guards keep
# anything, so the image gcd runs from stays by the in-use guard alone.
GREEDY = """\
version: 1
safety: {min_age: 0s, max_delete_fraction: 1}
images: {dangling: {keep_within: 0s}}
schedule: {every: 1h, jitter: 0s}
"""
# Well under what `docker images` shows for it today (about 150 MB): an image that grows
# past this has picked up something it should not carry.
MAX_IMAGE_BYTES = 200_000_000


@dataclass(frozen=True)
class Built:
    engine: HostEngine
    api: docker.APIClient
    tag: str
    image_id: str


@pytest.fixture(scope="module")
def built(packages: Packages) -> Iterator[Built]:
    with host_engine.private_engine() as engine:
        host = f"unix://{engine.socket}"
        tag, image_id = debian_package.build_image(packages.new, host)
        yield Built(engine, docker.APIClient(base_url=host, version="auto"), tag, image_id)


def docker_run(built: Built, policy: Path, *args: str, detach: bool = False) -> str:
    """`docker run` of the image as an operator would, against the suite's engine."""
    argv = ["docker", "--host", f"unix://{built.engine.socket}", "run"]
    argv += ["-d"] if detach else ["--rm"]
    argv += ["--network", "none", "--group-add", str(built.engine.socket_gid)]
    argv += ["-v", f"{built.engine.socket}:/var/run/docker.sock"]
    argv += ["-v", f"{policy}:/etc/gcd/policy.yaml:ro", "-v", "gcd-state:/var/lib/gcd"]
    result = subprocess.run(
        [*argv, built.tag, *args], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def greedy_policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(GREEDY)
    path.chmod(0o644)
    return path


def dangling_image(api: docker.APIClient, seed: str) -> str:
    """An image left dangling: loaded under a tag, then another loaded over it."""
    (old,) = images.load(api, images.image(images.layer(64, seed), tags=(f"junk/{seed}:1",)))
    images.load(api, images.image(images.layer(64, f"{seed}-new"), tags=(f"junk/{seed}:1",)))
    return old


def test_the_image_is_small_and_runs_as_a_non_root_user(built: Built) -> None:
    shown = built.api.inspect_image(built.tag)
    config = shown["Config"]
    assert config["User"] == "gcd"
    assert config["Entrypoint"] == ["/usr/bin/gcd"]
    assert config["Cmd"][0] == "daemon"
    assert "/var/lib/gcd" in (config["Volumes"] or {})
    assert config["Labels"]["org.opencontainers.image.version"].endswith("+test2")
    assert shown["Size"] < MAX_IMAGE_BYTES, shown["Size"]


def test_plan_in_the_container_keeps_the_image_it_runs_from(built: Built, tmp_path: Path) -> None:
    dangling = dangling_image(built.api, "plan")
    document = json.loads(
        docker_run(
            built,
            greedy_policy(tmp_path),
            "plan",
            "--policy",
            "/etc/gcd/policy.yaml",
            "--output",
            "json",
        )
    )
    decisions = {d["id"]: d for d in document["decisions"] if d["kind"] == "image"}
    assert decisions[built.image_id]["action"] == "keep"
    assert decisions[built.image_id]["rule"] == "keep.in_use"
    assert decisions[dangling]["action"] == "delete"


def test_a_daemon_cycle_in_the_container_removes_garbage_but_not_its_image(
    built: Built, tmp_path: Path
) -> None:
    dangling = dangling_image(built.api, "daemon")
    # The image's command, but that the first cycle does not wait (up to 60 s) for a first
    # scrape of /metrics: no Prometheus reaches a container without a network.
    command = ["daemon", "--policy", "/etc/gcd/policy.yaml", "--state-dir", "/var/lib/gcd"]
    command += ["--metrics-address", "0.0.0.0:9795", "--first-scrape-wait", "0"]
    assert built.api.inspect_image(built.tag)["Config"]["Cmd"] == command[:-2]
    container = docker_run(built, greedy_policy(tmp_path), *command, detach=True).strip()
    try:

        def finished() -> dict[str, Any] | None:
            lines = built.api.logs(container).decode().splitlines()
            return next((json.loads(x) for x in lines if '"cycle_finished"' in x), None)

        first = wait_for("the container's first cycle to finish", finished, timeout=120)
        logs = built.api.logs(container).decode()
        assert first["removed"] >= 1, logs[-2000:]
        assert not built.api.images(all=True, filters={"dangling": True}), logs[-2000:]
        assert built.api.inspect_image(built.image_id)["Id"] == built.image_id
        assert dangling not in {image["Id"] for image in built.api.images(all=True)}
        state = built.api.inspect_container(container)["State"]
        assert state["Running"], logs[-2000:]
    finally:
        built.api.stop(container, timeout=30)
        assert built.api.inspect_container(container)["State"]["ExitCode"] == 0
        built.api.remove_container(container)
