"""The Debian package and container image, built once per test session (scripts/package,
scripts/image), and the lintian run over the package.

Build inputs are cached: the wheels of gcd's dependencies (and of setuptools, which builds gcd)
in CACHE_DIR/package-wheels-<key>, so a build needs no network; the nspawn root of nspawn.py
is the image's base. Each session builds two packages side by side, <version>+test1 and
<version>+test2, to test an upgrade from one to the other.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.system import host_engine, nspawn

REPO = Path(__file__).resolve().parents[2]
BUILD_TOOLS = ("dpkg-buildpackage", "dh", "dh_virtualenv", "lintian", "dpkg-deb")
BUILD_REQUIRES = ("setuptools>=68",)


class BuildError(RuntimeError):
    """A package or image build failed; the message carries the tool's output."""


def unavailable_reason() -> str | None:
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if missing:
        return f"missing {', '.join(missing)}: run scripts/bootstrap"
    return nspawn.unavailable_reason()


def needs_package_and_engine() -> pytest.MarkDecorator:
    """Skip unless the package can be built here and the host engine can run."""
    reason = unavailable_reason() or host_engine.unavailable_reason()
    return pytest.mark.skipif(reason is not None, reason=reason or "")


def _check(
    argv: Sequence[str | Path], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, check=False, env=env
    )
    if result.returncode != 0:
        raise BuildError(
            f"{' '.join(map(str, argv))} exited {result.returncode}:\n"
            f"{result.stdout[-4000:]}{result.stderr[-4000:]}"
        )
    return result


def wheels() -> Path:
    """The cached wheels a package build installs from (built with `pip wheel` on first use)."""
    requirements = [*nspawn.dependencies(REPO), *BUILD_REQUIRES]
    key = hashlib.sha256(json.dumps(requirements).encode()).hexdigest()[:16]
    with nspawn._cache_lock() as root:
        target = root / f"package-wheels-{key}"
        if not target.is_dir():
            building = Path(tempfile.mkdtemp(prefix="package-wheels.tmp-", dir=root))
            _check([sys.executable, "-m", "pip", "wheel", "-q", "-w", building, *requirements])
            building.rename(target)
        return target


@dataclass(frozen=True)
class Packages:
    old: Path
    new: Path
    lintian: subprocess.Popen[str] | None = None  # over `new`, started by the session

    @staticmethod
    def version(deb: Path) -> str:
        return _check(["dpkg-deb", "-f", deb, "Version"]).stdout.strip()


def build_packages(out: Path) -> Packages:
    """<version>+test1 and +test2, built side by side by the documented script."""
    found = wheels()

    def build(suffix: str) -> Path:
        argv: list[str | Path] = [REPO / "scripts" / "package", "--suffix", suffix]
        argv += ["--out", out, "--wheels", found]
        return Path(_check(argv).stdout.splitlines()[-1])

    with ThreadPoolExecutor(max_workers=2) as pool:
        old, new = pool.map(build, ("+test1", "+test2"))
    return Packages(old, new)


def start_lintian(deb: Path) -> subprocess.Popen[str]:
    """lintian over the .deb, with the overrides the package ships (debian/gcd.lintian-overrides)
    applied: errors and warnings fail it; every tag is reported, info ones (an unused
    override among them) too. Started in the background as soon as the package is built: it
    takes ~20-70 s, which then overlap the boots of the other tests."""
    return subprocess.Popen(
        [
            "lintian",
            "--display-info",
            "--fail-on",
            "error,warning",
            "--tag-display-limit",
            "0",
            deb,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def build_image(deb: Path, docker_host: str) -> tuple[str, str]:
    """gcd:<version> from `deb` over the cached nspawn root, imported into `docker_host`."""
    env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
    argv: list[str | Path] = [REPO / "scripts" / "image", "--deb", deb]
    argv += ["--base", nspawn.base_root()]
    tag, image_id = _check(argv, env={**env, "DOCKER_HOST": docker_host}).stdout.split()[-2:]
    return tag, image_id
