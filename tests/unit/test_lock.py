"""The host-wide lock, with real second processes (flock is per open file, per process)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from gcd.errors import ExitCode, LockHeldError, StateError
from gcd.host.lock import LOCK_FILE, hold_lock

ROOT = Path(__file__).resolve().parents[2]

# Takes the lock; when told to hold it, says "held" and waits for a line on stdin.
TAKE = """
import sys
from pathlib import Path
from gcd.errors import LockHeldError
from gcd.host.lock import hold_lock
try:
    with hold_lock(Path(sys.argv[1])):
        if sys.argv[2] == "hold":
            print("held", flush=True)
            sys.stdin.readline()
except LockHeldError as exc:
    print(exc, file=sys.stderr)
    sys.exit(exc.exit_code)
"""


def take(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", TAKE, str(directory), "release"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )


@contextmanager
def held_elsewhere(directory: Path) -> Iterator[subprocess.Popen[str]]:
    child = subprocess.Popen(
        [sys.executable, "-c", TAKE, str(directory), "hold"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "held"  # blocks until it holds the lock
        yield child
    finally:
        child.stdin.close()
        child.wait(timeout=60)


def test_a_second_process_cannot_take_the_lock_while_it_is_held(tmp_path: Path) -> None:
    with hold_lock(tmp_path) as path:
        second = take(tmp_path)
    assert second.returncode == ExitCode.LOCKED
    assert str(path) in second.stderr
    assert f"pid {os.getpid()}" in second.stderr


def test_the_lock_is_free_again_once_released(tmp_path: Path) -> None:
    with hold_lock(tmp_path):
        pass
    assert take(tmp_path).returncode == 0
    with hold_lock(tmp_path):
        pass


def test_the_error_names_the_lock_file_and_the_holding_process(tmp_path: Path) -> None:
    with (
        held_elsewhere(tmp_path) as child,
        pytest.raises(LockHeldError) as raised,
        hold_lock(tmp_path),
    ):
        pass
    message = str(raised.value)
    assert f"pid {child.pid}" in message
    assert str(tmp_path / LOCK_FILE) in message
    assert raised.value.exit_code is ExitCode.LOCKED


def test_the_lock_is_released_when_its_holder_exits(tmp_path: Path) -> None:
    with held_elsewhere(tmp_path):
        assert take(tmp_path).returncode == ExitCode.LOCKED
    with hold_lock(tmp_path):
        pass


def test_the_holder_pid_is_cleared_on_release(tmp_path: Path) -> None:
    with hold_lock(tmp_path) as path:
        assert path.read_text() == f"{os.getpid()}\n"
    assert path.read_text() == ""


def test_a_missing_state_directory_is_created_private(tmp_path: Path) -> None:
    directory = tmp_path / "state" / "gcd"
    with hold_lock(directory):
        assert directory.is_dir()
    assert directory.stat().st_mode & 0o777 == 0o700


def test_an_unusable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StateError, match="--state-dir"), hold_lock(blocker / "gcd"):
        pass


# -- what the lock file may be (issue 8, part 3) ----------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


def private_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def lock_refusal(directory: Path) -> str:
    """The StateError's message when `hold_lock` refuses, or "" when it took the lock."""
    try:
        with hold_lock(directory):
            return ""
    except StateError as exc:
        return str(exc)


def test_a_symlinked_lock_is_refused_and_its_target_survives(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    precious = tmp_path / "precious"
    precious.write_text("someone else's file\n")
    (state / LOCK_FILE).symlink_to(precious)
    message = lock_refusal(state)
    assert precious.read_text() == "someone else's file\n"
    assert "symbolic link" in message
    assert str(state / LOCK_FILE) in message
    assert "remove it" in message


def test_a_hard_linked_lock_is_refused_and_the_other_name_survives(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    precious = tmp_path / "precious"
    precious.write_text("someone else's file\n")
    os.link(precious, state / LOCK_FILE)
    message = lock_refusal(state)
    assert precious.read_text() == "someone else's file\n"
    assert "2 hard links" in message
    assert str(state / LOCK_FILE) in message


def test_a_fifo_as_the_lock_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    os.mkfifo(state / LOCK_FILE)
    message = lock_refusal(state)
    assert "is a FIFO" in message
    assert "must be a regular file" in message


def test_a_directory_as_the_lock_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    (state / LOCK_FILE).mkdir()
    message = lock_refusal(state)
    assert "is a directory" in message
    assert "must be a regular file" in message


def test_a_world_writable_state_directory_is_refused_with_the_chmod(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    state.chmod(0o777)
    message = lock_refusal(state)
    assert "mode 0777" in message
    assert f"chmod go-w {state}" in message
    assert not (state / LOCK_FILE).exists()


@needs_root
def test_a_state_directory_owned_by_another_user_is_refused_with_the_chown(
    tmp_path: Path,
) -> None:
    state = private_state(tmp_path)
    os.chown(state, 65534, 65534)
    message = lock_refusal(state)
    assert "uid 65534" in message
    assert f"chown root: {state}" in message
