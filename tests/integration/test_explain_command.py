"""`gcd explain` on a real engine: the story of a loaded image as text and JSON, and exit 2
with a clear message for an image the engine does not have."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
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
    assert "no pattern matches app:1" in text
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
