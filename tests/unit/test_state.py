from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gcd.errors import StateError
from gcd.host.state import State

T0 = datetime(2026, 3, 1, tzinfo=UTC)
ID = "sha256:" + "a" * 64


def test_first_seen_survives_a_reload_and_never_moves(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.mark_seen(ID, T0 + timedelta(days=1))
    state.save()
    assert State.load(tmp_path).first_seen(ID) == T0


def test_last_used_only_moves_forward(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_used(ID, T0)
    state.mark_used(ID, T0 - timedelta(hours=1))
    state.save()
    assert State.load(tmp_path).last_used(ID) == T0


def test_a_missing_file_is_an_empty_state(tmp_path: Path) -> None:
    assert State.load(tmp_path / "new").first_seen(ID) is None


def test_images_that_are_gone_are_forgotten(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.forget_missing([])
    assert state.first_seen(ID) is None


def test_a_corrupt_file_says_what_to_do(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="move it aside"):
        State.load(tmp_path)


def test_the_write_is_atomic_and_leaves_no_temp_files(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.mark_seen(ID, T0)
    state.save()
    state.save()
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_an_unwritable_directory_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="--state-dir"):
        State.load(blocker / "sub").save()


def test_layers_are_cached_across_a_reload(tmp_path: Path) -> None:
    state = State.load(tmp_path)
    state.record_layers(ID, [("sha256:" + "1" * 64, 10), ("sha256:" + "2" * 64, 0)])
    state.save()
    assert State.load(tmp_path).layers(ID) == (
        ("sha256:" + "1" * 64, 10),
        ("sha256:" + "2" * 64, 0),
    )


def test_a_malformed_layer_record_is_a_cache_miss(tmp_path: Path) -> None:
    document = {"format": 1, "images": {ID: {"layers": [["k", "ten"]]}}}
    (tmp_path / "state.json").write_text(json.dumps(document))
    state = State.load(tmp_path)
    assert state.layers(ID) is None
    assert state.layers("sha256:" + "f" * 64) is None


def test_naive_times_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="aware"):
        State.load(tmp_path).mark_seen(ID, datetime(2026, 1, 1))


# -- who may write the state (issue 8, part 3) ------------------------------------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")
DOCUMENT = json.dumps({"format": 1, "images": {ID: {"first_seen": T0.isoformat()}}})


def private_state(tmp_path: Path) -> Path:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    return state


def test_a_symlinked_state_file_is_refused_and_its_target_survives(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(DOCUMENT)
    (state / "state.json").symlink_to(elsewhere)
    with pytest.raises(StateError, match="symbolic link") as raised:
        State.load(state)
    assert str(state / "state.json") in str(raised.value)
    assert "remove it" in str(raised.value)
    assert elsewhere.read_text() == DOCUMENT


def test_a_save_replaces_a_symlinked_state_file_and_never_writes_through_it(
    tmp_path: Path,
) -> None:
    state = private_state(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text("someone else's file\n")
    (state / "state.json").symlink_to(elsewhere)
    State(state).save()
    assert elsewhere.read_text() == "someone else's file\n"
    assert not (state / "state.json").is_symlink()
    assert State.load(state).first_seen(ID) is None


def test_a_hard_linked_state_file_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text(DOCUMENT)
    os.link(elsewhere, state / "state.json")
    with pytest.raises(StateError, match="2 hard links"):
        State.load(state)


def test_a_world_writable_state_directory_is_refused_on_read_and_write(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    state.chmod(0o777)
    for action in (lambda: State.load(state), lambda: State(state).save()):
        with pytest.raises(StateError) as raised:
            action()
        assert "mode 0777" in str(raised.value)
        assert f"chmod go-w {state}" in str(raised.value)
    assert os.listdir(state) == []


def test_a_world_writable_state_file_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    (state / "state.json").write_text(DOCUMENT)
    (state / "state.json").chmod(0o666)
    with pytest.raises(StateError, match=f"chmod go-w {state / 'state.json'}"):
        State.load(state)


@needs_root
def test_a_state_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    state = private_state(tmp_path)
    os.chown(state, 65534, 65534)
    with pytest.raises(StateError, match=f"chown root: {state}") as raised:
        State.load(state)
    assert "uid 65534" in str(raised.value)


def test_a_state_directory_below_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    """Whoever can write the parent can swap the state directory for a link to another
    directory, where gcd would then replace a file named state.json."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(StateError, match=f"chmod go-w {shared}"):
        State(shared / "gcd").save()


def test_a_state_directory_below_a_sticky_world_writable_directory_is_accepted(
    tmp_path: Path,
) -> None:
    """Like /tmp: the sticky bit keeps others from renaming what they do not own."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    shared.chmod(0o1777)
    state = State(shared / "gcd")
    state.mark_seen(ID, T0)
    state.save()
    assert State.load(shared / "gcd").first_seen(ID) == T0


def test_a_state_directory_reached_through_a_trusted_symlink_is_accepted(tmp_path: Path) -> None:
    """DynamicUser= with StateDirectory= makes /var/lib/gcd a link to /var/lib/private/gcd."""
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "gcd").mkdir(mode=0o700)
    (tmp_path / "gcd").symlink_to("private/gcd")
    state = State(tmp_path / "gcd")
    state.mark_seen(ID, T0)
    state.save()
    assert (private / "gcd" / "state.json").is_file()
    assert State.load(tmp_path / "gcd").first_seen(ID) == T0


def test_a_private_state_directory_is_accepted_and_the_file_stays_private(
    tmp_path: Path,
) -> None:
    state = private_state(tmp_path)
    saved = State(state)
    saved.mark_seen(ID, T0)
    saved.save()
    assert (state / "state.json").stat().st_mode & 0o777 == 0o600
    assert State.load(state).first_seen(ID) == T0


def test_the_save_fsyncs_the_file_and_then_the_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rename is durable only once the directory itself is synced."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    State(private_state(tmp_path)).save()
    assert synced == ["file", "directory"]
