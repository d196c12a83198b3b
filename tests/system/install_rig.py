"""A fresh Debian bookworm to install gcd into as the README says (tests/system/test_install.py).

The cached debootstrapped root of `nspawn.py` (minbase, python3, python3-venv) is the lower
layer; one more cached layer, `pipx-<key>`, adds Debian's own `pipx` and `python3-pip` (the
pip a bare `pip install` would use; apt-get from the host's mirror, once, its package lists
and downloaded .debs removed). Each run mounts a fresh overlay over them, so nothing a test
installs is ever seen by another test or session, and runs its commands with `systemd-nspawn
--pipe` under a machine name of its own: no boot is needed to install. Every pip inside
installs from cached wheels only (`PIP_NO_INDEX`, `PIP_FIND_LINKS`): the README's commands run
verbatim and download nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tests.system import nspawn

PIPX_HOME = "/opt/pipx"
PIPX_BIN_DIR = "/usr/local/bin"
PIPX_RECIPE = (
    "apt-get update && apt-get install -y --no-install-recommends pipx python3-pip"
    " && apt-get clean && rm -rf /var/lib/apt/lists/*"
)
SOURCE = "/var/tmp/gcd-src"
WHEELS = "/wheels"


def _nspawn(merged: Path, *argv: str) -> list[str]:
    name = f"gcdinst-{os.getpid()}-{secrets.token_hex(3)}"
    command = ["systemd-nspawn", "-q", "--register=no", "--keep-unit", "--pipe"]
    command += ["-M", name, "-D", str(merged)]
    return [*command, "--setenv=DEBIAN_FRONTEND=noninteractive", *argv]


def _offline(argv: list[str], wheels: Path) -> list[str]:
    """Every pip inside (a venv's, pipx's own) installs from `wheels` only, bound at WHEELS."""
    at = argv.index("/bin/sh")
    options = [f"--bind-ro={wheels}:{WHEELS}", "--setenv=PIP_NO_INDEX=1"]
    return [*argv[:at], *options, f"--setenv=PIP_FIND_LINKS={WHEELS}", *argv[at:]]


SHARED_LIBS = (
    f"python3 -m venv --clear {PIPX_HOME}/shared && {PIPX_HOME}/shared/bin/python -m pip"
    " --disable-pip-version-check install -q --force-reinstall --upgrade pip setuptools wheel"
)
"""What pipx 1.1 does on its first install (its shared pip), done once in the layer: it costs
two thirds of an install on a loaded machine. pipx renews it, from the wheels, after 30 days."""


def pipx_layer(wheels: Path) -> Path:
    """The cached layer with Debian's pipx and pip over the base root, and pipx's shared
    libraries made from `wheels`; built once."""
    base = nspawn.base_root()
    recipe = f"{nspawn.RECIPE}\n{PIPX_RECIPE}\n{SHARED_LIBS}\n{wheels.name}"
    key = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    with nspawn._cache_lock() as root:
        layer = root / f"pipx-{key}"
        if layer.is_dir():
            return layer
        work = Path(tempfile.mkdtemp(prefix="pipx.tmp-", dir=root))
        try:
            with nspawn._overlay([base], work) as merged:
                nspawn._run(_nspawn(merged, "/bin/sh", "-c", PIPX_RECIPE))
                nspawn._run(_offline(_nspawn(merged, "/bin/sh", "-c", SHARED_LIBS), wheels))
            (work / "upper").rename(layer)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return layer


def copy_source(repo: Path, target: Path) -> None:
    """What a clone holds that an install reads (the project file, README, package), and the
    example policy."""
    target.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE", "policy.example.yaml"):
        if (repo / name).is_file():
            shutil.copy2(repo / name, target / name)
    shutil.copytree(repo / "gcd", target / "gcd", ignore=shutil.ignore_patterns("__pycache__"))


@contextlib.contextmanager
def fresh_debian(repo: Path, wheels: Path) -> Iterator[Path]:
    """A throwaway overlay over the cached layers, with a copy of gcd's source at SOURCE."""
    layers = [pipx_layer(wheels), nspawn.base_root()]
    work = Path(tempfile.mkdtemp(prefix="gcd-install-"))
    try:
        with nspawn._overlay(layers, work) as merged:
            copy_source(repo, merged / SOURCE.lstrip("/"))
            yield merged
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install_each(
    repo: Path, wheels: Path, scripts: dict[str, str], timeout: float = 600
) -> dict[str, subprocess.CompletedProcess[str]]:
    """Each script in a fresh root of its own, all at once (pip's work is CPU-bound and the
    routes are independent: side by side they take the time of the slowest)."""
    with contextlib.ExitStack() as stack:
        roots = {name: stack.enter_context(fresh_debian(repo, wheels)) for name in scripts}
        started = {
            name: subprocess.Popen(
                _offline(_nspawn(roots[name], "/bin/sh", "-c", script), wheels),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for name, script in scripts.items()
        }
        done = {}
        for name, process in started.items():
            try:
                out, err = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            done[name] = subprocess.CompletedProcess(process.args, process.returncode, out, err)
        return done


def build_wheels(repo: Path) -> Path:
    """gcd's dependency wheels plus the build backend (setuptools, wheel) and pip (pipx
    upgrades its shared pip on first use), cached: an install from the source tree builds gcd
    with them and downloads nothing."""
    deps = nspawn.dependency_wheels(repo)
    backend = ["setuptools>=68", "wheel", "pip"]
    key = hashlib.sha256(f"{deps.name}\n{backend}".encode()).hexdigest()[:16]
    with nspawn._cache_lock() as root:
        merged = root / f"install-wheels-{key}"
        if merged.is_dir():
            return merged
        building = Path(tempfile.mkdtemp(prefix="install-wheels.tmp-", dir=root))
        for wheel in deps.iterdir():
            shutil.copy2(wheel, building / wheel.name)
        nspawn._pip_wheel(["-w", building, *backend])
        building.rename(merged)
        return merged
