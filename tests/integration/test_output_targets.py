"""`gcd run --once` checks where its results go before its first deletion: a missing or
unwritable `--textfile DIR` (exit 2) or state directory (exit 1) deletes nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import docker

from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)
POLICY = "version: 1\nsafety: {max_delete_fraction: 1}\nimages:\n  keep: []\n"


def _images(api: docker.APIClient) -> set[str]:
    return {str(i["Id"]) for i in api.images()}


def test_a_bad_output_target_is_found_before_anything_is_deleted(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    state_dir = tmp_path / "state"
    ids = load(api, image(layer(10, "out-1"), tags=("out/a:1",)), image(layer(10, "out-2")))
    state = engine_state(api, state_dir)
    for image_id in ids:
        state.mark_seen(image_id, OLD)  # old enough: the policy deletes both
    state.save()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    run = ("run", "--once", "--policy", str(policy))

    for target in (tmp_path / "missing", a_file):
        failed = gcd(clean_engine.host, state_dir, *run, "--textfile", str(target))
        assert failed.returncode == 2, failed.stderr
        assert f"cannot write metrics to {target}" in failed.stderr
        assert "nothing was deleted" in failed.stderr
        assert "--collector.textfile.directory" in failed.stderr
        assert set(ids) <= _images(api)
    assert not (tmp_path / "missing").exists()  # the check creates nothing either

    unusable = gcd(clean_engine.host, a_file, *run)  # the state directory is a file
    assert unusable.returncode == 1, unusable.stderr
    assert "--state-dir" in unusable.stderr
    assert set(ids) <= _images(api)

    textfiles = tmp_path / "textfile"
    textfiles.mkdir()
    done = gcd(clean_engine.host, state_dir, *run, "--textfile", str(textfiles))
    assert done.returncode == 0, done.stderr
    assert not set(ids) & _images(api)
    assert [p.name for p in textfiles.iterdir()] == ["gcd.prom"]  # the check left nothing
