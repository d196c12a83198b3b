"""The executor on the suite's own engine: races between plan and execution, made
deterministic with the executor's test seams (`before_delete`, `before_untag`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from structlog.testing import capture_logs

from gcd.engine import Engine
from gcd.errors import RunRefusedError
from gcd.executor import Outcome, OutcomeStatus, Report, execute
from gcd.model import parse_reference
from gcd.plan import Decision, Plan
from gcd.policy import evaluate
from gcd.rules import DanglingPolicy, ImagePolicy, Policy, Safety
from gcd.snapshot import take_snapshot
from gcd.state import State
from tests.integration.engines import Traits, engine_for, selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import ImageSpec, image, layer, load, runnable_layer

pytestmark = pytest.mark.core  # conflicts, re-tags and replaced tags differ per engine

DELETE_UNUSED = Policy(
    safety=Safety(min_age=timedelta(0), max_delete_fraction=1.0),
    images=ImagePolicy(keep=(), dangling=DanglingPolicy(keep_within=timedelta(0))),
)
"""Every image no container uses is planned for deletion."""


def plan_now(engine: Engine, state_dir: Path, policy: Policy = DELETE_UNUSED) -> Plan:
    now = datetime.now(UTC)
    return evaluate(take_snapshot(engine, State.load(state_dir), now), policy, now)


def present(api: docker.APIClient, name: str) -> bool:
    try:
        api.inspect_image(name)
    except docker.errors.NotFound:
        return False
    return True


def tags_of(api: docker.APIClient, image_id: str) -> set[str]:
    """Familiar names: Podman lists `docker.io/x/app:1` where Docker lists `x/app:1`."""
    return {parse_reference(t).familiar for t in api.inspect_image(image_id)["RepoTags"] or ()}


def layers_size(api: docker.APIClient) -> int:
    return int(api.df()["LayersSize"])


def stopped_container(api: docker.APIClient, image_id: str) -> str:
    """A container of `image_id` that ran `true` and exited."""
    created = api.create_container(
        image_id, command=["true"], host_config=api.create_host_config(network_mode="none")
    )
    api.start(created["Id"])
    api.wait(created["Id"], timeout=60)
    return str(created["Id"])


def statuses(report: Report) -> dict[str, OutcomeStatus]:
    return {o.image_id: o.status for o in report.outcomes}


def on_untag(number: int, action: Callable[[str], None]) -> Callable[[Decision, str], None]:
    """A `before_untag` hook: `action(tag)` right before the `number`-th untag (from 1)."""
    calls: list[str] = []

    def hook(_: Decision, tag: str) -> None:
        calls.append(tag)
        if len(calls) == number:
            action(parse_reference(tag).familiar)

    return hook


def spec(seed: str, *tags: str, runnable: bool = False) -> ImageSpec:
    layers = (runnable_layer(),) if runnable else ()
    return image(*layers, layer(20_000, seed), tags=tags)


def test_an_unused_single_tag_image_is_deleted_by_id(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    (doomed,) = load(api, spec("x-single", "x/app:1"))
    plan = plan_now(engine, tmp_path)
    assert [d.image.id for d in plan.deletions] == [doomed]
    seen: list[Outcome] = []
    before = layers_size(api)
    with capture_logs() as logs:
        report = execute(plan, engine, on_outcome=seen.append)
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.REMOVED
    # The tag, then on the containerd store and Podman the image's own digest reference.
    assert outcome.references[0] == "x/app:1"
    assert all(ref.startswith("x/app@sha256:") for ref in outcome.references[1:])
    assert outcome.freed_bytes == plan.deletions[0].freed_bytes == before - layers_size(api)
    assert seen == [outcome]
    assert report.aborted is None
    assert not present(api, doomed)
    assert [(e["event"], e["image"], e["status"]) for e in logs] == [
        ("image_removed", doomed.removeprefix("sha256:")[:12], "removed")
    ]
    assert logs[0]["rule"] == "delete.unkept"
    assert logs[0]["freed_bytes"] == outcome.freed_bytes


def test_a_container_created_after_the_plan_keeps_its_image_and_nothing_is_forced(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    engine: Engine,
    traits: Traits,
    tmp_path: Path,
) -> None:
    (target,) = load(api, spec("x-used", "x/used:1", runnable=True))
    plan = plan_now(engine, tmp_path)
    containers: list[str] = []
    report = execute(
        plan, engine, before_delete=lambda _: containers.append(stopped_container(api, target))
    )
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.SKIPPED_IN_USE
    assert any(state in outcome.detail for state in traits.exited_states), outcome.detail
    assert tags_of(api, target) == {"x/used:1"}
    assert api.inspect_container(containers[0])["Image"] == target


def test_a_tag_moved_to_a_new_image_leaves_the_new_image_alone(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    engine: Engine,
    traits: Traits,
    tmp_path: Path,
) -> None:
    (old,) = load(api, spec("x-old", "x/app:latest"))
    plan = plan_now(engine, tmp_path)
    rebuilt: list[str] = []
    report = execute(
        plan,
        engine,
        before_delete=lambda _: rebuilt.extend(load(api, spec("x-new", "x/app:latest"))),
    )
    assert tags_of(api, rebuilt[0]) == {"x/app:latest"}
    if traits.load_drops_replaced:  # the containerd store deleted the old image itself
        assert statuses(report) == {old: OutcomeStatus.ALREADY_GONE}
        assert not present(api, old)
        return
    assert statuses(report) == {old: OutcomeStatus.SKIPPED_CHANGED}
    assert present(api, old)  # now dangling; the next run re-plans it
    assert tags_of(api, old) == set()


def test_an_image_tagged_again_after_the_plan_is_skipped(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    engine: Engine,
    traits: Traits,
    tmp_path: Path,
) -> None:
    (target,) = load(api, spec("x-retag", "x/retag:1"))
    plan = plan_now(engine, tmp_path)

    def retag(_: Decision) -> None:
        api.tag(target, "x/retag", "1")

    report = execute(plan, engine, before_delete=retag)
    (outcome,) = report.outcomes
    if not traits.retag_stamps_time:
        # Re-tagging with a tag it already has leaves no trace in the image's record on the
        # containerd store and on Podman: the planned image is deleted as planned.
        assert outcome.status is OutcomeStatus.REMOVED
        return
    assert outcome.status is OutcomeStatus.SKIPPED_CHANGED
    assert "tagged again" in outcome.detail
    assert present(api, target)


def test_a_multi_tag_image_over_two_repositories_is_removed_completely(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    tags = ("x/multi:1", "x/multi:2", "localhost:5000/x/other:1")
    (multi,) = load(api, spec("x-multi", *tags))
    plan = plan_now(engine, tmp_path)
    before = layers_size(api)
    report = execute(plan, engine)
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.REMOVED, outcome.detail
    assert outcome.freed_bytes == before - layers_size(api) > 0
    assert not present(api, multi)
    assert not any(present(api, tag) for tag in tags)


def test_a_multi_tag_image_whose_extra_tag_moved_midway_is_left_consistent(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    (multi,) = load(api, spec("x-mid", "x/mid:1", "x/mid:2", "x/mid-other:1"))
    plan = plan_now(engine, tmp_path)
    moved: dict[str, str] = {}

    def move(tag: str) -> None:
        (moved[tag],) = load(api, spec("x-mid-new", tag))

    report = execute(plan, engine, before_untag=on_untag(2, move))
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.SKIPPED_CHANGED
    ((tag, new),) = moved.items()
    assert tag in outcome.detail
    # The moved tag names the new image, which is intact; the planned image keeps a name.
    assert api.inspect_image(tag)["Id"] == new
    assert tags_of(api, new) == {tag}
    assert len(tags_of(api, multi)) == 1  # one tag was untagged before the move, one remains
    assert tags_of(api, multi) < {"x/mid:1", "x/mid:2", "x/mid-other:1"} - {tag}


def test_a_container_created_while_untagging_stops_the_delete_and_the_image_keeps_a_name(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    tags = ("x/race:1", "x/race:2", "x/race:3")
    (multi,) = load(api, spec("x-race", *tags, runnable=True))
    plan = plan_now(engine, tmp_path)
    containers: list[str] = []
    hook = on_untag(2, lambda _: containers.append(stopped_container(api, multi)))
    report = execute(plan, engine, before_untag=hook)
    (outcome,) = report.outcomes
    assert outcome.status is OutcomeStatus.CONFLICT  # the engine's 409, never forced
    assert "container" in outcome.detail  # "stopped container …"; Podman: "in use by a container"
    assert len(tags_of(api, multi)) == 1  # extra tags gone, never the last one
    assert api.inspect_container(containers[0])["Image"] == multi


def test_an_image_deleted_by_someone_else_is_already_gone(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    (target,) = load(api, spec("x-gone", "x/gone:1"))
    plan = plan_now(engine, tmp_path)
    report = execute(plan, engine, before_delete=lambda d: api.remove_image(d.image.id))
    assert statuses(report) == {target: OutcomeStatus.ALREADY_GONE}
    assert report.failed == ()


def test_a_refused_plan_deletes_nothing(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    ids = load(api, spec("x-r1", "x/r:1"), spec("x-r2", "x/r:2"))
    cautious = replace(DELETE_UNUSED, safety=Safety(min_age=timedelta(0), max_delete_fraction=0.5))
    plan = plan_now(engine, tmp_path, cautious)
    assert plan.refusal is not None
    with pytest.raises(RunRefusedError):
        execute(plan, engine)
    assert all(present(api, i) for i in ids)


def test_a_stop_request_finishes_the_current_image_and_attempts_no_more(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    load(api, spec("x-s1", "x/s:1"), spec("x-s2", "x/s:2"), spec("x-s3", "x/s:3"))
    plan = plan_now(engine, tmp_path)
    stop = threading.Event()
    report = execute(plan, engine, stop=stop, before_delete=lambda _: stop.set())
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.REMOVED,
        OutcomeStatus.NOT_ATTEMPTED,
        OutcomeStatus.NOT_ATTEMPTED,
    ]
    assert report.aborted is None
    first, *rest = plan.deletions
    assert not present(api, first.image.id)
    assert all(present(api, d.image.id) for d in rest)


def test_an_engine_that_stops_mid_run_aborts_cleanly(tmp_path: Path) -> None:
    with engine_for(selected_engine()) as private:
        client = docker.APIClient(base_url=private.host, version="auto", timeout=60)
        load(client, spec("x-a1", "x/a:1"), spec("x-a2", "x/a:2"), spec("x-a3", "x/a:3"))
        client.close()
        engine = Engine(private.host)
        plan = plan_now(engine, tmp_path)
        calls: list[Decision] = []

        def stop_engine_before_the_second(decision: Decision) -> None:
            calls.append(decision)
            if len(calls) == 2:
                private.stop_engine()

        report = execute(plan, engine, before_delete=stop_engine_before_the_second)
        engine.close()
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.REMOVED,
        OutcomeStatus.NOT_ATTEMPTED,
        OutcomeStatus.NOT_ATTEMPTED,
    ]
    assert report.aborted is not None
    assert "unreachable" in report.aborted
    assert len(calls) == 2  # nothing was tried after the engine was gone
