"""`gcd --help`, `check` and `test-pattern` start without the engine (docker, requests),
metrics (prometheus_client) and scheduler (apscheduler) stacks, nor structlog (imported by
the first command that logs: gcd.logs), nor rich's traceback or asyncio that structlog would
import (gcd/__init__.py): each command runs in a fresh interpreter, which then lists what it
imported. A regression guard, not a timing test; the
timings are in bench/RESULTS.md (`python -m bench.startup`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HEAVY = (
    "docker",
    "requests",
    "urllib3",
    "prometheus_client",
    "apscheduler",
    "rich",
    "asyncio",
    "structlog",
)
PROBE = """
import contextlib, io, json, sys
from gcd.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    status = main(sys.argv[1:])
print(json.dumps(sorted({name.partition(".")[0] for name in sys.modules})))
"""


def imported_by(*argv: str) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


@pytest.mark.parametrize(
    "argv",
    [
        ("--help",),
        ("check", "policy.example.yaml"),
        ("test-pattern", "policy.example.yaml", "registry.example.com/app:1"),
        ("test-pattern", "policy.example.yaml", "--container", "old-job", "--image", "app:1"),
    ],
)
def test_commands_that_do_not_talk_to_the_engine_leave_its_stacks_unimported(
    argv: tuple[str, ...],
) -> None:
    modules = imported_by(*argv)
    assert "gcd" in modules  # the probe ran gcd, and listed what it imported
    assert not modules & set(HEAVY), sorted(modules & set(HEAVY))


def test_the_probe_sees_the_stacks_a_command_that_talks_to_the_engine_imports() -> None:
    # `gcd plan` on an address nothing listens on: it imports the engine stack, then fails.
    modules = imported_by("plan", "--policy", "policy.example.yaml", "--host", "tcp://127.0.0.1:9")
    assert {"docker", "requests", "structlog"} <= modules
    assert not modules & {"rich", "asyncio"}  # structlog came in lean


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


FIRST_RECORD = """
import logging, sys
from gcd.logs import configure_logging
configure_logging("json", "info")
assert "structlog" not in sys.modules, "configure_logging imported structlog"
logging.getLogger("lib").warning("from %s", "stdlib")
import structlog
structlog.get_logger("gcd.test").info("after", n=1)
logging.getLogger("gcd.quiet").debug("below the level")
"""


def test_a_stdlib_record_before_structlog_imports_it_and_renders_as_gcd_lines() -> None:
    result = run_python(FIRST_RECORD)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stderr.splitlines()]  # every line is JSON
    assert [line["event"] for line in lines] == ["from stdlib", "after"]
    assert lines[0]["logger"] == "lib"
    assert all(line["timestamp"].endswith("Z") for line in lines)


def test_a_crash_before_structlog_is_imported_is_one_json_line() -> None:
    code = (
        'from gcd.logs import configure_logging\nconfigure_logging("json")\nraise ValueError("x")'
    )
    result = run_python(code)
    (line,) = (json.loads(text) for text in result.stderr.splitlines())
    assert (line["event"], line["error_type"], line["level"]) == (
        "crashed",
        "ValueError",
        "critical",
    )


LOAD = """
import sys
from pathlib import Path
from gcd.logs import configure_logging
configure_logging("json", "info")
from gcd.config.loader import load_policy
load_policy(Path("policy.example.yaml"))
print("importlib.metadata" in sys.modules, "structlog" in sys.modules)
import gcd.daemon, gcd.jobs, structlog
structlog.get_logger("gcd.test").info("after", n=1)
print("asyncio" in sys.modules)
from apscheduler.util import iscoroutinefunction_partial
async def job():
    return 42
print(iscoroutinefunction_partial(job), iscoroutinefunction_partial(print))
import asyncio, structlog.stdlib
print(asyncio.run(job()), structlog.stdlib.asyncio.get_running_loop.__name__)
import rich.table
print(rich.table.Table.__name__)
"""


@pytest.mark.parametrize(("disabled", "imported"), [(None, "False"), ("", "True")])
def test_the_lean_imports_leave_out_what_is_unused_and_work_when_it_is_used(
    disabled: str | None, imported: str
) -> None:
    """pydantic imports importlib.metadata only if plugins are enabled (gcd disables them
    unless the environment says otherwise); the policy loads without structlog, whose
    pending set-up applies when the daemon's modules import it; the daemon's APScheduler
    leaves asyncio out, and asyncio, structlog's async parts and rich still work after."""
    env = {k: v for k, v in os.environ.items() if k != "PYDANTIC_DISABLE_PLUGINS"}
    if disabled is not None:
        env["PYDANTIC_DISABLE_PLUGINS"] = disabled
    result = subprocess.run(
        [sys.executable, "-c", LOAD],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    expected = [imported, "False", "False", "True", "False", "42", "get_running_loop", "Table"]
    assert result.stdout.split() == expected, result.stderr
    (line,) = (json.loads(text) for text in result.stderr.splitlines())  # JSON: set up
    assert (line["event"], line["n"], line["level"]) == ("after", 1, "info")
