"""Day one on a real engine: local age starts at the engine's record of an image's arrival
(`gcd.engine.arrivals`; docs/ages.md has the observed facts), `safety.unknown_age` decides
what no record covers, and the first plan says how many had none."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.core.ages import AgeStart, UnknownAge
from gcd.core.evaluate import evaluate
from gcd.core.kinds.images import ImagePolicy
from gcd.core.policy import Policy
from gcd.core.records import Image, Snapshot
from gcd.core.rules import RuleId
from gcd.core.safety import Safety
from gcd.engine.client import Engine
from gcd.engine.layers import LayerStore
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer

CREATED = datetime(2020, 1, 1, tzinfo=UTC)
SLACK = timedelta(seconds=1)
"""File times are the kernel's coarse clock: a few milliseconds behind `datetime.now`."""
POLICY = Policy(
    safety=Safety(min_age=timedelta(hours=1), max_delete_fraction=1.0), images=ImagePolicy()
)


def by_id(snapshot: Snapshot, image_id: str) -> Image:
    return next(i for i in snapshot.images if i.id == image_id)


@pytest.mark.core
def test_a_loaded_image_s_age_starts_at_its_arrival_on_the_first_plan(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    (loaded,) = load(api, image(layer(10, "arrive-1"), tags=("arrive/loaded:1",), created=CREATED))
    after = datetime.now(UTC)
    later = after + timedelta(hours=2)  # the first plan, two hours after the load
    snapshot = take_snapshot(engine, State.load(tmp_path), later, LayerStore())
    found = by_id(snapshot, loaded)
    (decision,) = (d for d in evaluate(snapshot, POLICY, later).decisions if d.key.id == loaded)
    if clean_engine.name == "podman-5":
        # Podman's API keeps no arrival time (`LastTagTime` is 0001-01-01), and gcd does not
        # read Podman's storage: first seen, as before.
        assert (found.age_from, found.seen_at) == (AgeStart.FIRST_SEEN, later)
        assert decision.rule is RuleId.MIN_AGE
        return
    # The image store's file (graphdriver, as root) or the image record (containerd store).
    assert found.age_from is AgeStart.ARRIVAL
    assert before - SLACK <= found.seen_at <= after + SLACK
    assert decision.rule is RuleId.UNKEPT  # day one acts: two hours old, nothing keeps it


def _build(api: docker.APIClient, tag: str) -> str:
    """A classic build on top of the busybox image: one RUN step."""
    dockerfile = b"FROM arrive/base:1\nRUN echo built > /built\n"
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        entry = tarfile.TarInfo("Dockerfile")
        entry.size = len(dockerfile)
        tar.addfile(entry, io.BytesIO(dockerfile))
    context.seek(0)
    for _ in api.build(fileobj=context, custom_context=True, tag=tag, network_mode="none"):
        pass
    return str(api.inspect_image(tag)["Id"])


def test_load_build_and_tag_on_disk_and_through_the_api(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    """20.10, as root and as the unprivileged units run (the data root out of reach: the same
    code path as `LayerStore` finding it unreadable)."""
    (base,) = load(api, image(runnable_layer(), tags=("arrive/base:1",), created=CREATED))
    built = _build(api, "arrive/built:1")
    tagged_at = datetime.now(UTC)
    api.tag("arrive/base:1", "arrive/base", "2")
    now = datetime.now(UTC) + timedelta(minutes=5)

    as_root = take_snapshot(engine, State.load(tmp_path / "root"), now, LayerStore())
    assert {by_id(as_root, i).age_from for i in (base, built)} == {AgeStart.ARRIVAL}
    assert by_id(as_root, base).seen_at >= tagged_at - SLACK  # its last tag is the later time

    api_only = LayerStore(use_disk=False)
    plain = take_snapshot(engine, State.load(tmp_path / "api"), now, api_only)
    assert by_id(plain, built).age_from is AgeStart.TAGGED  # `build -t` sets LastTagTime
    assert by_id(plain, base).age_from is AgeStart.TAGGED  # so does `docker tag`
    api.remove_image("arrive/base:2")  # a loaded, never tagged image has no record at all
    (loaded,) = load(api, image(layer(10, "arrive-2"), tags=("arrive/only:1",), created=CREATED))
    first_seen = take_snapshot(engine, State.load(tmp_path / "api2"), now, api_only)
    assert (by_id(first_seen, loaded).age_from, by_id(first_seen, loaded).seen_at) == (
        AgeStart.FIRST_SEEN,
        now,
    )
    created = take_snapshot(
        engine, State.load(tmp_path / "api3"), now, api_only, unknown_age=UnknownAge.CREATED
    )
    assert (by_id(created, loaded).age_from, by_id(created, loaded).seen_at) == (
        AgeStart.CREATED,
        CREATED,
    )


def test_the_first_plan_says_how_many_images_have_no_arrival_record(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    load(api, image(layer(10, "arrive-3"), tags=("arrive/three:1",), created=CREATED))
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nimages:\n  keep: []\n")
    # As root the data root is read: every image has a record, and the summary is null.
    planned = gcd(
        clean_engine.host, tmp_path / "s", "plan", "--policy", str(policy), "--output", "json"
    )
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["unrecorded_ages"] is None
