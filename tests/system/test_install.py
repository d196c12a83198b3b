"""The README's install routes, on a fresh Debian 12: a bare `pip install` is refused
(externally-managed-environment), a venv and Debian's pipx both install gcd from a clone, and
the installed `gcd` runs (`--version`, `gcd check policy.example.yaml`).

The root is the cached debootstrapped bookworm with a cached layer of Debian's pipx
(install_rig.py); gcd's dependencies and its build backend come from cached wheels, so a run
downloads nothing once the caches exist (about 20 s a run; the first builds the pipx layer).
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


@pytest.fixture(scope="module")
def wheels() -> Path:
    return install_rig.build_wheels(REPO)


def _check(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, (
        f"exit {done.returncode}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    )
    return str(done.stdout).splitlines()


def test_the_venv_route(wheels: Path) -> None:
    script = f"""set -e
python3 -m venv /opt/gcd
/opt/gcd/bin/pip install -q {install_rig.SOURCE}
ln -s /opt/gcd/bin/gcd /usr/local/bin/gcd
{RUN_GCD}"""
    with install_rig.fresh_debian(REPO, wheels) as root:
        lines = _check(install_rig.run_in(root, script, wheels))
    assert lines[-2:] == [f"gcd {__version__}", f"{install_rig.SOURCE}/policy.example.yaml: ok"]


def test_bare_pip_is_refused_and_the_pipx_route_works(wheels: Path) -> None:
    script = f"""set -e
if python3 -m pip install {install_rig.SOURCE} 2>/tmp/pip.err; then
    echo "bare pip install succeeded"; exit 10
fi
grep -q externally-managed-environment /tmp/pip.err && echo refused
PIPX_HOME={install_rig.PIPX_HOME} PIPX_BIN_DIR={install_rig.PIPX_BIN_DIR} \\
    pipx install {install_rig.SOURCE} >/dev/null
{RUN_GCD}"""
    with install_rig.fresh_debian(REPO, wheels) as root:
        lines = _check(install_rig.run_in(root, script, wheels))
    assert lines[0] == "refused"
    assert lines[-2:] == [f"gcd {__version__}", f"{install_rig.SOURCE}/policy.example.yaml: ok"]
