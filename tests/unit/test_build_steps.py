"""Which containers the snapshot marks as classic-build steps (`gcd.engine.builds`), on the
fake engine, which lists and inspects them as the real engine does (seen on 20.10 and 26.1:
`Config.Image` an image id, health check `NONE` for `RUN`, `#(nop)` for `COPY`)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from structlog.testing import capture_logs

from gcd.core.records import Snapshot
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.unit.fake_engine import FakeEngine, server_error

QUIET = timedelta(minutes=10)
BASE = "sha256:" + "ab" * 32


def rig() -> FakeEngine:
    engine = FakeEngine()
    engine.add_image("base:1", image_id=BASE)
    return engine


def take(
    engine: FakeEngine, tmp_path: Path, quiet_for: timedelta = QUIET, *, details: bool = True
) -> Snapshot:
    """`details`: inspect stopped containers, as a policy with a `containers:` section does."""
    state = State.load(tmp_path)
    now = engine.clock + timedelta(seconds=30)
    return take_snapshot(engine, state, now, inspect_containers=details, quiet_for=quiet_for)


def steps(snapshot: Snapshot) -> set[str]:
    return {c.name for c in snapshot.containers if c.build_step}


def test_a_run_step_is_recognised_by_its_health_check_off(tmp_path: Path) -> None:
    engine = rig()
    run = engine.create_container(BASE, "run-step", "running", image=BASE)
    run.health_test = ["NONE"]
    plain = engine.create_container(BASE, "by-id", "running", image=BASE)  # docker run <id>
    assert steps(take(engine, tmp_path)) == {"run-step"}
    assert {args[0] for args in engine.sent("inspect_container")} >= {run.id, plain.id}


def test_a_copy_step_is_recognised_by_its_nop_command_without_an_inspect(
    tmp_path: Path,
) -> None:
    engine = rig()
    copy = engine.create_container(BASE, "copy-step", image=BASE)
    copy.command = "/bin/sh -c #(nop) COPY file:0123 in / "
    snapshot = take(engine, tmp_path, details=False)  # an images-only policy
    assert steps(snapshot) == {"copy-step"}
    assert (copy.id,) not in engine.sent("inspect_container")


def test_containers_of_a_reference_or_older_than_quiet_for_are_never_inspected(
    tmp_path: Path,
) -> None:
    engine = rig()
    by_name = engine.create_container(BASE, "by-name", "running", image="base:1")
    by_name.health_test = ["NONE"]
    old = engine.create_container(BASE, "old-step", "running", image=BASE)
    old.health_test = ["NONE"]
    old.created -= timedelta(minutes=20)
    snapshot = take(engine, tmp_path)
    assert steps(snapshot) == set()
    assert engine.sent("inspect_container") == []  # both are running: no details inspect


def test_quiet_for_zero_marks_nothing(tmp_path: Path) -> None:
    engine = rig()
    engine.create_container(BASE, "run-step", "running", image=BASE).health_test = ["NONE"]
    assert steps(take(engine, tmp_path, timedelta(0))) == set()


def test_an_inspect_that_fails_counts_as_a_step(tmp_path: Path) -> None:
    engine = rig()
    made = engine.create_container(BASE, "unknown", "running", image=BASE)
    engine.fail("inspect_container", server_error(), arg=made.id)
    with capture_logs() as logs:
        snapshot = take(engine, tmp_path)
    assert steps(snapshot) == {"unknown"}
    assert [e["event"] for e in logs if e["event"] == "build_step_inspect_failed"] == [
        "build_step_inspect_failed"
    ]
