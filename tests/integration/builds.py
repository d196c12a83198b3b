"""Real BuildKit builds on the suite's engine, for the build-cache tests.

`DOCKER_BUILDKIT=1 /usr/bin/docker build --network none` (engine-facts.md §1.4): the `docker`
first on `PATH` has no buildx plugin and would use the classic builder, which makes no build
cache; Debian's 20.10 client at /usr/bin/docker drives the engine's built-in BuildKit without
it. `--network none`, as the suite's engines run with `--bridge=none`.

Podman's compatible API has no BuildKit: the docker CLI's BuildKit session is not served
("failed to dial gRPC: unable to upgrade to h2c, received 404") and `GET /system/df` lists no
build cache (`no_buildkit` says why a test cannot run). Free of pytest, like the harness.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from gcd.engine.client import Engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import BUSYBOX

DOCKER_20_CLI = Path("/usr/bin/docker")
BUILD_TIMEOUT_SECONDS = 120.0
PODMAN_HAS_NO_BUILDKIT = (
    "Podman's compatible API has no BuildKit: the CLI's build fails ('failed to dial "
    "gRPC: unable to upgrade to h2c, received 404') and df lists no build cache"
)

DOCKERFILE = (
    "FROM scratch\n"
    "COPY busybox /bin/busybox\n"
    "COPY token /token\n"
    'RUN ["/bin/busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=300"]\n'
)
"""Three steps, each a record: the busybox, a token (so that no test hits another's cache)
and 300 KiB written by a `RUN`."""


def no_buildkit(engine: Engine) -> str | None:
    """Why builds cannot make real build cache on `engine`, or None when they can."""
    if engine.podman:
        return PODMAN_HAS_NO_BUILDKIT
    if not DOCKER_20_CLI.is_file():
        return "/usr/bin/docker (Debian's docker.io 20.10 CLI) drives BuildKit here"
    return None


def context(tmp_path: Path, dockerfile: str) -> Path:
    """A build context in a new folder of `tmp_path`: busybox, a fresh token, `dockerfile`."""
    folder = tmp_path / secrets.token_hex(4)
    folder.mkdir()
    (folder / "busybox").write_bytes(BUSYBOX.read_bytes())
    (folder / "busybox").chmod(0o755)
    (folder / "token").write_text(secrets.token_hex(16))  # no cache hit across tests
    (folder / "Dockerfile").write_text(dockerfile)
    return folder


def build_command(host: PrivateEngine, folder: Path, tag: str) -> list[str]:
    return [
        str(DOCKER_20_CLI),
        "-H",
        host.host,
        "build",
        "--network",
        "none",
        "-t",
        tag,
        str(folder),
    ]


def build_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    env["DOCKER_BUILDKIT"] = "1"
    return env


def build(host: PrivateEngine, folder: Path, tag: str) -> None:
    done = subprocess.run(
        build_command(host, folder, tag),
        env=build_env(),
        check=False,
        capture_output=True,
        timeout=BUILD_TIMEOUT_SECONDS,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
