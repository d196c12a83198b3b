"""Who may write the policy and the state (issue 8, part 3), through the `gcd` command.

The engine address points at a socket that does not exist: a command that gets past the
checks stops at the engine (exit 3), one that is refused never gets there.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from gcd.cli import main
from gcd.config.trusted import load_trusted_policy, policy_findings
from gcd.errors import ExitCode, PolicyError, StateError
from gcd.host.lock import LOCK_FILE, hold_lock
from gcd.host.state import State

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
POLICY = "version: 1\nimages:\n  keep:\n    - reference: ['**']\n"
OVERRIDE_ENV = "GCD_ALLOW_INSECURE_PERMISSIONS"


@pytest.fixture(autouse=True)
def _no_override_from_outside(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OVERRIDE_ENV, raising=False)


def gcd(tmp_path: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """Run `gcd` in-process; the exit code and everything it wrote to stderr."""
    capsys.readouterr()
    code = main(
        [
            "--host",
            f"unix://{tmp_path}/no-engine.sock",
            "--state-dir",
            str(tmp_path / "state"),
            "--log-format",
            "json",
            *args,
        ]
    )
    return code, capsys.readouterr().err


def policy_in(directory: Path, mode: int = 0o644) -> Path:
    directory.mkdir(exist_ok=True)
    path = directory / "policy.yaml"
    path.write_text(POLICY)
    path.chmod(mode)
    return path


def events(stderr: str, name: str) -> list[dict[str, object]]:
    lines = (json.loads(line) for line in stderr.splitlines() if line.startswith("{"))
    return [event for event in lines if event.get("event") == name]


def test_a_private_root_owned_setup_gets_past_the_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc")
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.ENGINE_UNREACHABLE, err
    assert not events(err, "insecure_permissions_allowed")


@pytest.mark.parametrize("command", [["plan"], ["run", "--once"]])
def test_a_world_writable_policy_is_refused_with_the_chmod(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    policy = policy_in(tmp_path / "etc", 0o666)
    code, err = gcd(tmp_path, capsys, *command, "--policy", str(policy))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err
    assert str(policy) in err
    assert "mode 0666" in err
    assert f"chmod go-w {policy}" in err


def test_a_group_writable_policy_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc", 0o664)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err
    assert "writable by its group" in err


@needs_root
def test_a_policy_owned_by_another_user_is_refused_with_the_chown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc")
    os.chown(policy, 65534, 65534)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err
    assert "uid 65534" in err
    assert f"chown root: {policy}" in err


def test_a_policy_in_a_group_writable_directory_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Whoever can write the directory can replace the file, even with a link to another
    root-owned file that passes every check on the file itself."""
    policy = policy_in(tmp_path / "etc")
    policy.parent.chmod(0o775)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err
    assert f"chmod go-w {policy.parent}" in err


def test_a_link_in_a_world_writable_directory_cannot_stand_for_the_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    (shared / "policy.yaml").symlink_to(policy)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(shared / "policy.yaml"))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err
    assert f"chmod go-w {shared}" in err


def test_a_root_owned_policy_in_a_sticky_world_writable_directory_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like /tmp: others may add files there, but not rename or replace a root-owned one."""
    directory = tmp_path / "tmp"
    policy = policy_in(directory)
    directory.chmod(0o1777)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.ENGINE_UNREACHABLE, err


def test_a_world_writable_state_directory_stops_a_plan_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc")
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state").chmod(0o777)
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.SOME_FAILED, err
    assert f"chmod go-w {tmp_path / 'state'}" in err


@pytest.mark.parametrize("command", ["check", "test-pattern"])
def test_commands_that_delete_nothing_warn_but_still_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    policy = policy_in(tmp_path / "etc", 0o666)
    args = [str(policy), "alpine:3"] if command == "test-pattern" else [str(policy)]
    code, err = gcd(tmp_path, capsys, command, *args)
    assert code == ExitCode.OK, err
    assert "warning" in err
    assert f"chmod go-w {policy}" in err


def test_the_override_option_proceeds_and_warns_each_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc", 0o666)
    (tmp_path / "state").mkdir(mode=0o700)
    (tmp_path / "state").chmod(0o777)
    code, err = gcd(
        tmp_path, capsys, "--allow-insecure-permissions", "plan", "--policy", str(policy)
    )
    assert code == ExitCode.ENGINE_UNREACHABLE, err
    warned = {str(e["path"]) for e in events(err, "insecure_permissions_allowed")}
    assert warned == {str(policy), str(tmp_path / "state")}
    # The override is per invocation: the next command without it is refused again.
    code, err = gcd(tmp_path, capsys, "plan", "--policy", str(policy))
    assert code == ExitCode.BAD_POLICY_OR_USAGE, err


def test_the_override_environment_variable_proceeds_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = policy_in(tmp_path / "etc", 0o666)
    monkeypatch.setenv(OVERRIDE_ENV, "1")
    code, err = gcd(tmp_path, capsys, "run", "--once", "--policy", str(policy))
    assert code == ExitCode.ENGINE_UNREACHABLE, err
    assert [e["path"] for e in events(err, "insecure_permissions_allowed")] == [str(policy)]


def test_the_override_covers_the_state_directory_for_library_callers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    state.chmod(0o777)
    monkeypatch.setenv(OVERRIDE_ENV, "1")
    with capture_logs() as logs:
        State(state).save()
        with hold_lock(state):
            pass
    warned = [e for e in logs if e["event"] == "insecure_permissions_allowed"]
    assert len(warned) == 2
    assert all(e["path"] == str(state) and "chmod go-w" in str(e["fix"]) for e in warned)


def test_the_override_never_lets_the_lock_follow_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = policy_in(tmp_path / "etc")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    precious = tmp_path / "precious"
    precious.write_text("someone else's file\n")
    (state / LOCK_FILE).symlink_to(precious)
    code, err = gcd(
        tmp_path, capsys, "--allow-insecure-permissions", "run", "--once", "--policy", str(policy)
    )
    assert precious.read_text() == "someone else's file\n"
    assert code == ExitCode.SOME_FAILED, err
    assert "symbolic link" in err
    with pytest.raises(StateError, match="symbolic link"), hold_lock(state):
        pass


def test_a_relative_link_is_resolved_through_dotdot_like_the_kernel_does(tmp_path: Path) -> None:
    """`etc/policy.yaml -> ../shared/real.yaml`: the check follows the link to where the open
    will land, and the directory there is writable by others."""
    shared = tmp_path / "shared"
    real = policy_in(shared)
    shared.chmod(0o777)
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "policy.yaml").symlink_to(Path("..") / "shared" / real.name)
    assert [f.path for f in policy_findings(tmp_path / "etc" / "policy.yaml")] == [str(shared)]


def test_a_link_loop_or_a_missing_policy_is_left_to_the_loader(tmp_path: Path) -> None:
    (tmp_path / "a").symlink_to("b")
    (tmp_path / "b").symlink_to("a")
    assert policy_findings(tmp_path / "a") == []
    assert policy_findings(tmp_path / "missing" / "policy.yaml") == []
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_trusted_policy(tmp_path / "a")
