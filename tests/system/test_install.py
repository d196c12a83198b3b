"""The README's install routes, on a fresh Debian 12: a bare `pip install` is refused
(externally-managed-environment), a venv and Debian's pipx both install gcd from a clone, and
the installed `gcd` runs (`--version`, `gcd check policy.example.yaml`).

The root is the cached debootstrapped bookworm with a cached layer of Debian's pipx
(install_rig.py); gcd's dependencies and its build backend come from cached wheels, so a run
downloads nothing once the caches exist (the first run builds the layer and wheels, ~1 min).
The two routes run side by side, each in a fresh root: 68 s on the 2-core CI machine at a load
of 10, about 32 s of CPU in all.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gcd import __version__
from tests.system import install_rig, nspawn

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif((reason := nspawn.unavailable_reason()) is not None, reason=reason or ""),
]

REPO = Path(__file__).resolve().parents[2]
RUN_GCD = f"""
gcd --version
gcd check {install_rig.SOURCE}/policy.example.yaml
"""
VENV = f"""set -e
python3 -m venv /opt/gcd
/opt/gcd/bin/pip install -q {install_rig.SOURCE}
ln -s /opt/gcd/bin/gcd /usr/local/bin/gcd
{RUN_GCD}"""
PIPX = f"""set -e
if python3 -m pip install {install_rig.SOURCE} 2>/tmp/pip.err; then
    echo "bare pip install succeeded"; exit 10
fi
grep -q externally-managed-environment /tmp/pip.err && echo refused
PIPX_HOME={install_rig.PIPX_HOME} PIPX_BIN_DIR={install_rig.PIPX_BIN_DIR} \\
    pipx install {install_rig.SOURCE} >/dev/null
{RUN_GCD}"""
RAN = [f"gcd {__version__}", f"{install_rig.SOURCE}/policy.example.yaml: ok"]


@pytest.fixture(scope="module")
def installed() -> dict[str, subprocess.CompletedProcess[str]]:
    """Both routes, each in a fresh root, side by side."""
    wheels = install_rig.build_wheels(REPO)
    return install_rig.install_each(REPO, wheels, {"venv": VENV, "pipx": PIPX})


def _lines(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, (
        f"exit {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return done.stdout.splitlines()


def test_the_venv_route(installed: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert _lines(installed["venv"])[-2:] == RAN


def test_bare_pip_is_refused_and_the_pipx_route_works(
    installed: dict[str, subprocess.CompletedProcess[str]],
) -> None:
    lines = _lines(installed["pipx"])
    assert lines[0] == "refused"
    assert lines[-2:] == RAN
