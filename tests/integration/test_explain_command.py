"""`gcd explain` on a real engine: the story of a loaded image as text and JSON, and exit 2
with a clear message for an image the engine does not have. And the plan's bytes adding up
when classic builds share parent images."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.engine.client import Engine
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import BUSYBOX, image, layer, load
from tests.integration.state_seed import engine_state

pytestmark = pytest.mark.integration

POLICY = """\
images:
  keep:
    - reference: ["app:2"]
"""


def test_gcd_explain_tells_an_images_story(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    base = layer(4096, "explain-base")
    old, new = load(
        api,
        image(base, layer(8192, "explain-1"), tags=("app:1",)),
        image(base, layer(2048, "explain-2"), tags=("app:2",)),
    )
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    state = engine_state(api, state_dir)
    for image_id in (old, new):  # seen two days ago: past safety.min_age
        state.mark_seen(image_id, datetime.now(UTC) - timedelta(days=2))
    state.save()
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)

    told = gcd(clean_engine.host, state_dir, "explain", "app:1", "--policy", str(policy))
    assert told.returncode == 0, told.stderr
    text = told.stdout
    assert f"image {old}" in text
    assert "tags:       app:1" in text
    assert "containers: none" in text
    assert "last use:   never" in text
    assert "keep.reference" in text
    assert "matches none of its names" in text
    assert "plan: delete (delete.unkept)" in text

    done = gcd(
        clean_engine.host, state_dir, "explain", old[7:19], "-o", "json", "--policy", str(policy)
    )
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["decision"]["id"] == old
    assert document["decision"]["rule"] == "delete.unkept"
    assert [s["rule"] for s in document["steps"]] == [
        "keep.in_use",
        "keep.created_in_future",
        "keep.min_age",
        "keep.reference",
        "delete.unkept",
    ]
    # Its own layer alone; the base stays with app:2.
    assert document["bytes"]["alone"] == document["bytes"]["with_plan"] > 0
    assert document["bytes"]["alone"] == document["decision"]["freed_bytes"]

    missing = gcd(clean_engine.host, state_dir, "explain", "nosuch:1", "--policy", str(policy))
    assert missing.returncode == 2
    assert "no image 'nosuch:1' on the engine (2 images)" in missing.stderr


CLASSIC = """\
FROM scratch
COPY busybox /bin/busybox
COPY token /token
RUN ["/bin/busybox", "dd", "if=/dev/zero", "of=/big", "bs=1024", "count=300"]
RUN ["/bin/busybox", "dd", "if=/dev/zero", "of=/{name}", "bs=1024", "count={kib}"]
"""


def _classic_build(api: docker.APIClient, folder: Path, name: str, kib: int) -> None:
    (folder / "Dockerfile").write_text(CLASSIC.format(name=name, kib=kib))
    for line in api.build(
        path=str(folder),
        tag=f"tool:{name}",
        network_mode="none",
        rm=True,
        forcerm=True,
        decode=True,
    ):
        assert "error" not in line, line


def test_classic_build_parents_are_shown_and_the_plans_bytes_add_up(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """Two classic builds share their first steps' untagged parent images: deleting both
    frees those layers with the last one. The plan shows them as a shared row, its rows add up
    to its total, and the run frees exactly that, parents included, by Docker's own count."""
    folder = tmp_path / "context"
    folder.mkdir()
    (folder / "busybox").write_bytes(BUSYBOX.read_bytes())
    (folder / "busybox").chmod(0o755)
    (folder / "token").write_text(secrets.token_hex(16))
    _classic_build(api, folder, "a", 100)
    _classic_build(api, folder, "b", 200)
    parents = [
        i
        for i in api.images(all=True)
        if not i.get("RepoTags") or i["RepoTags"] == ["<none>:<none>"]
    ]
    assert parents, "the classic builder left no parent images"
    # What keeps the executor from deleting the two beside each other (their parents' walks
    # would race): both are read as children of one chain.
    probe = take_snapshot(
        Engine(clean_engine.host), State.load(tmp_path / "probe"), datetime.now(UTC)
    )
    children = [i for i in probe.images if i.tags]
    assert len(children) == 2
    assert all(i.parent for i in children), children
    assert children[0].layers[0] == children[1].layers[0]
    state_dir = tmp_path / "state"
    state_dir.mkdir(mode=0o700)
    state = engine_state(api, state_dir)
    for listed in api.images():
        state.mark_seen(listed["Id"], datetime.now(UTC) - timedelta(days=2))
    state.save()
    policy = tmp_path / "policy.yaml"
    policy.write_text("safety: {max_delete_fraction: 1}\nimages:\n  keep: []\n")

    planned = gcd(clean_engine.host, state_dir, "plan", "-o", "json", "--policy", str(policy))
    assert planned.returncode == 0, planned.stderr
    document = json.loads(planned.stdout)
    summary = document["summary"]
    own = sum(d["freed_bytes"] for d in document["decisions"])
    shared = sum(g["freed_bytes"] for g in summary["shared"])
    assert shared > 300 * 1024, json.dumps(
        document, indent=1
    )  # the busybox and the 300 KiB step, under both images
    assert own + shared == summary["freed_bytes"]
    table = gcd(clean_engine.host, state_dir, "plan", "--policy", str(policy))
    assert "<shared layers>" in table.stdout
    assert "in layers several of them share" in table.stdout

    before = int(api.df()["LayersSize"])
    ran = gcd(clean_engine.host, state_dir, "run", "--once", "-o", "json", "--policy", str(policy))
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["result"]["freed_bytes"] == summary["freed_bytes"]
    assert api.images(all=True) == []  # the parents went with their children
    assert before - int(api.df()["LayersSize"]) == summary["freed_bytes"]
