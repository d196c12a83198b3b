"""The shipped unit files, checked offline by systemd's own tools (no boot, no engine)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(
        shutil.which("systemd-analyze") is None,
        reason="systemd-analyze is missing: apt-get install -y systemd",
    ),
]

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVICES = ("gcd.service", "gcd-run.service")
ALL_UNITS = (*SERVICES, "gcd.timer")
SHIPPED_GCD = "/usr/local/bin/gcd"
MAX_EXPOSURE = 2.0


def gcd_entry_point(tmp_path: Path) -> Path:
    """An executable that exists, to stand where the units name /usr/local/bin/gcd.

    `systemd-analyze verify` fails a unit whose ExecStart binary does not exist ("Command ...
    is not executable"), and /usr/local/bin/gcd is where a host install puts gcd, not where
    this checkout has it. The gcd script of the running virtualenv is used when it exists;
    otherwise a shim that runs `python -m gcd`. Only the path changes (checked below): every
    other line verified is the shipped one.
    """
    installed = Path(sys.executable).parent / "gcd"
    if installed.is_file():
        return installed
    shim = tmp_path / "bin" / "gcd"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m gcd "$@"\n')
    shim.chmod(0o755)
    return shim


def stage(tmp_path: Path) -> Path:
    entry = gcd_entry_point(tmp_path)
    staged = tmp_path / "units"
    staged.mkdir()
    for name in ALL_UNITS:
        shipped = (UNITS / name).read_text()
        copy = shipped.replace(SHIPPED_GCD, str(entry))
        assert copy.replace(str(entry), SHIPPED_GCD) == shipped
        (staged / name).write_text(copy)
    return staged


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    staged = stage(tmp_path)
    result = subprocess.run(
        ["systemd-analyze", "verify", *(str(staged / name) for name in ALL_UNITS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def exposure(unit: Path) -> tuple[float, str]:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, f"no exposure level in:\n{result.stdout}{result.stderr}"
    exposed = "\n".join(line for line in result.stdout.splitlines() if line.startswith("✗"))
    return float(found.group(1)), exposed


@pytest.mark.parametrize("name", SERVICES)
def test_services_are_sandboxed_to_an_exposure_of_at_most_2(name: str) -> None:
    level, exposed = exposure(UNITS / name)
    assert level <= MAX_EXPOSURE, f"{name}: exposure {level}, still open:\n{exposed}"


def settings(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_one_shot_can_write_the_textfile_directory_it_is_given() -> None:
    service = settings("gcd-run.service")
    assignments = [word for line in service["Environment"] for word in line.split()]
    environment = dict(word.split("=", 1) for word in assignments)
    writable = [path.lstrip("-") for path in service["ReadWritePaths"]]
    assert environment["GCD_TEXTFILE_DIR"] in writable
    assert "--textfile ${GCD_TEXTFILE_DIR}" in service["ExecStart"][0]


def test_the_timer_starts_the_one_shot_service() -> None:
    assert settings("gcd.timer")["Unit"] == ["gcd-run.service"]
