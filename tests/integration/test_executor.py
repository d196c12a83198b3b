"""The executor on the suite's own engine: races between plan and execution, made
deterministic with a proxy in front of the engine (`tests/integration/proxy.py`) that changes
the engine right before a chosen request of gcd's: the re-inspect of a planned image (before
its checks), or the request that deletes it (the moment after them)."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest
from structlog.testing import capture_logs

from gcd.core.evaluate import evaluate
from gcd.core.kinds.images import DanglingPolicy, ImagePolicy
from gcd.core.plan import Plan
from gcd.core.policy import Policy
from gcd.core.references import parse_reference
from gcd.core.safety import Safety
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.engine.snapshot import take_snapshot
from gcd.errors import RunRefusedError
from gcd.host.state import State
from tests.integration import images
from tests.integration.engines import Traits, engine_for, selected_engine
from tests.integration.harness import PrivateEngine
from tests.integration.images import (
    ImageSpec,
    archive,
    image,
    layer,
    load,
    runnable_layer,
)
from tests.integration.proxy import EngineProxy, Match, deleting

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
    return {o.key.id: o.status for o in report.outcomes}


def reinspect(image_id: str | None = None) -> Match:
    """The executor's first request for a planned image (`image_id`, or any): `GET
    /images/sha256:…/json`, the re-inspect before its checks. Planning is done before a hook
    is registered, so the snapshot's own inspects never match."""

    def match(method: str, path: str) -> bool:
        route = path.split("?", maxsplit=1)[0]
        wanted = f"/images/{image_id}/json" if image_id else "/json"
        return method == "GET" and "/images/sha256:" in route and route.endswith(wanted)

    return match


def spec(seed: str, *tags: str, runnable: bool = False) -> ImageSpec:
    layers = (runnable_layer(),) if runnable else ()
    return image(*layers, layer(20_000, seed), tags=tags)


def test_an_unused_single_tag_image_is_deleted_by_id(
    clean_engine: PrivateEngine, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    (doomed,) = load(api, spec("x-single", "x/app:1"))
    plan = plan_now(engine, tmp_path)
    assert [d.key.id for d in plan.deletions] == [doomed]
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
    traits: Traits,
    tmp_path: Path,
) -> None:
    (target,) = load(api, spec("x-used", "x/used:1", runnable=True))
    containers: list[str] = []
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(
            reinspect(target), lambda *_: containers.append(stopped_container(api, target))
        )
        report = execute(plan, engine)
        engine.close()
    (outcome,) = report.outcomes
    # No container list for a single-tag image: the delete without force is the check, and
    # the engine refuses it (409, engine-facts §1.1 T6).
    assert outcome.status is OutcomeStatus.CONFLICT, outcome.detail
    assert "in use" in outcome.detail or "being used" in outcome.detail, outcome.detail
    assert tags_of(api, target) == {"x/used:1"}
    assert api.inspect_container(containers[0])["Image"] == target
    assert not any("force=True" in path for _, path in proxy.requests)


def test_a_tag_moved_to_a_new_image_leaves_the_new_image_alone(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    traits: Traits,
    tmp_path: Path,
) -> None:
    (old,) = load(api, spec("x-old", "x/app:latest"))
    rebuilt: list[str] = []
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(
            reinspect(old), lambda *_: rebuilt.extend(load(api, spec("x-new", "x/app:latest")))
        )
        report = execute(plan, engine)
        engine.close()
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
    traits: Traits,
    tmp_path: Path,
) -> None:
    (target,) = load(api, spec("x-retag", "x/retag:1"))

    def retag(*_: str) -> None:
        api.tag(target, "x/retag", "1")

    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(reinspect(target), retag)
        report = execute(plan, engine)
        engine.close()
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


def multi_tag_delete(method: str, path: str) -> bool:
    """The request that removes a planned multi-tag image's names: Docker's forced delete by
    id, Podman's first untag from the id — and, before the fix, the untag by name."""
    return deleting(method, path) or (
        method == "POST" and path.split("?", maxsplit=1)[0].endswith("/untag")
    )


def removes_names(method: str, path: str) -> bool:
    """A request that removes names of a multi-tag image: by name, forced, or an untag."""
    by_name = deleting(method, path) and "/images/sha256:" not in path
    forced = deleting(method, path) and "force=True" in path
    return by_name or forced or (multi_tag_delete(method, path) and method == "POST")


def test_a_name_moved_to_a_new_image_in_the_last_moment_leaves_the_new_image_whole(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """The race of the untag by name: right before gcd's request that removes the planned
    image's names, a CI job loads a new image under one of them. Before the fix gcd then sent
    `DELETE /images/x/mv:sha-1`, and the engine deleted the new image (its only name)."""
    (planned,) = load(api, spec("x-mv-old", "x/mv:main", "x/mv:sha-1"))
    new: list[str] = []
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(
            multi_tag_delete, lambda *_: new.extend(load(api, spec("x-mv-new", "x/mv:sha-1")))
        )
        report = execute(plan, engine)
        podman = engine.podman
        engine.close()
    assert len(new) == 1, "the hook ran once"
    assert tags_of(api, new[0]) == {"x/mv:sha-1"}  # the new image, whole
    (outcome,) = report.outcomes
    if podman:  # the untag from the planned id finds the name gone from it
        assert outcome.status is OutcomeStatus.SKIPPED_CHANGED, outcome.detail
        assert tags_of(api, planned) == {"x/mv:main"}
        return
    assert outcome.status is OutcomeStatus.REMOVED, outcome.detail
    assert not present(api, planned)
    assert not any(path.endswith("/images/x/mv:sha-1") for _, path in proxy.requests)


def test_a_tag_put_on_the_planned_image_in_the_last_moment_is_reported(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """What is left of the window on Docker: a name given to the planned image between the
    last check and the forced delete goes with it, and gcd says so as an error."""
    (planned,) = load(api, spec("x-late", "x/late:1", "x/late:2"))
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)

        def promote(*_: str) -> None:
            api.tag(planned, "x/promoted", "prod")

        proxy.before(multi_tag_delete, promote)
        with capture_logs() as logs:
            report = execute(plan, engine)
        podman = engine.podman
        engine.close()
    (outcome,) = report.outcomes
    if podman:  # untag from the id, then the delete without force meets the new name
        assert outcome.status is OutcomeStatus.CONFLICT, outcome.detail
        assert "x/promoted:prod" in tags_of(api, planned)
        return
    assert outcome.status is OutcomeStatus.REMOVED
    assert "also untagged x/promoted:prod" in outcome.detail
    assert not present(api, planned)
    (event,) = [e for e in logs if e["event"] == "image_removed_with_unplanned_references"]
    assert event["log_level"] == "error"
    assert event["references"] == ["x/promoted:prod"]


def test_a_container_created_from_the_planned_image_in_the_last_moment_is_reported(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """The other half of the window (engine-facts §1.1 T7): a stopped container created
    between the last check and the forced delete. The engine deletes the image; the container
    keeps its own layers and still runs; gcd logs it. Podman, never forced, refuses."""
    (planned,) = load(api, spec("x-ctr", "x/ctr:1", "x/ctr:2", runnable=True))
    containers: list[str] = []
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(
            multi_tag_delete, lambda *_: containers.append(stopped_container(api, planned))
        )
        with capture_logs() as logs:
            report = execute(plan, engine)
        podman = engine.podman
        engine.close()
    (outcome,) = report.outcomes
    if podman:
        assert outcome.status is OutcomeStatus.CONFLICT, outcome.detail
        assert len(tags_of(api, planned)) == 1  # the extra name went, never the last one
        return
    assert outcome.status is OutcomeStatus.REMOVED, outcome.detail
    assert [o.image_id for o in report.orphans] == [planned]  # the run's last list
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "image_removed_under_container"
    ]
    api.start(containers[0])
    assert api.wait(containers[0], timeout=60)["StatusCode"] == 0


def test_an_image_deleted_by_someone_else_is_already_gone(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    (target,) = load(api, spec("x-gone", "x/gone:1"))
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        proxy.before(reinspect(target), lambda *_: api.remove_image(target))
        report = execute(plan, engine)
        engine.close()
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


def touched(proxy: EngineProxy, ids: list[str], since: int = 0) -> list[str]:
    """The ids among `ids` that a request through `proxy` named, from its `since`th request
    on (the plan's own reads left out: without a layer database they name every image), in
    plan order."""
    return [i for i in ids if any(i in path for _, path in proxy.requests[since:])]


def test_a_stop_request_finishes_the_deletions_in_flight_and_starts_no_more(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    """A stop starts no further deletion; the ones in flight finish: the image in progress,
    and at most `removal_workers - 1` started beside it."""
    count = 3 * Engine.removal_workers
    load(api, *(spec(f"x-s{n}", f"x/s:{n}") for n in range(count)))
    stop = threading.Event()
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        planned = len(proxy.requests)
        proxy.before(reinspect(), lambda *_: stop.set(), times=None)
        report = execute(plan, engine, stop=stop)
        engine.close()
        ids = [d.key.id for d in plan.deletions]
        sent_for = touched(proxy, ids, since=planned)
    removed = report.count(OutcomeStatus.REMOVED)
    assert 1 <= removed <= Engine.removal_workers, [o.status for o in report.outcomes]
    assert [o.status for o in report.outcomes] == [OutcomeStatus.REMOVED] * removed + [
        OutcomeStatus.NOT_ATTEMPTED
    ] * (count - removed)
    assert report.aborted is None
    assert sent_for == ids[:removed]  # nothing was sent for an image not attempted
    assert not any(present(api, i) for i in ids[:removed])
    assert all(present(api, i) for i in ids[removed:])


def test_an_engine_that_stops_mid_run_aborts_cleanly(tmp_path: Path) -> None:
    """The engine stops during the second image's re-inspect: the deletions in flight end
    (removed, or failed when their request was lost), and the run is aborted."""
    count = 3 * Engine.removal_workers
    with engine_for(selected_engine()) as private:
        client = docker.APIClient(base_url=private.host, version="auto", timeout=60)
        load(client, *(spec(f"x-a{n}", f"x/a:{n}") for n in range(count)))
        client.close()
        calls: list[str] = []

        def stop_engine_before_the_second(_method: str, path: str) -> None:
            calls.append(path)
            if len(calls) == 2:
                private.stop_engine()

        with EngineProxy(private.socket) as proxy:
            engine = Engine(proxy.host)
            plan = plan_now(engine, tmp_path)
            proxy.before(reinspect(), stop_engine_before_the_second, times=None)
            report = execute(plan, engine)
            engine.close()
    got = [o.status for o in report.outcomes]
    inspected = set(calls)
    ids = [d.key.id for d in plan.deletions]
    finished = sum(1 for g in got if g is not OutcomeStatus.NOT_ATTEMPTED)
    # At most `removal_workers` deletions are started at once, and a further one only when
    # one in flight finished (removed, or failed on an answer the stopping engine still gave);
    # once the executor learnt that the engine was gone, none. An image whose re-inspect met
    # the stopped engine is `not_attempted` (nothing was sent for it); one whose delete was
    # in flight is `failed`. Each attempted image was re-inspected first.
    assert 2 <= len(inspected) <= Engine.removal_workers + finished, (sorted(inspected), got)
    for image_id, status in zip(ids, got, strict=True):
        if status is not OutcomeStatus.NOT_ATTEMPTED:
            assert any(image_id in path for path in inspected), (image_id, status)
    assert got[-1] is OutcomeStatus.NOT_ATTEMPTED, got
    assert got.count(OutcomeStatus.NOT_ATTEMPTED) >= len(got) - len(inspected), got
    assert report.aborted is not None
    assert "unreachable" in report.aborted


MOVING = ("main", "latest", "pr-1", "pr-2")


def removed_multi_tag(outcomes: list[Outcome]) -> list[Outcome]:
    return [o for o in outcomes if o.status is OutcomeStatus.REMOVED and len(o.references) > 1]


def test_moving_tags_under_load_never_cost_an_image_or_a_name_gcd_did_not_plan(
    clean_engine: PrivateEngine, api: docker.APIClient, traits: Traits, tmp_path: Path
) -> None:
    """A CI loop loads new images under moving tags (`main`, `latest`, `pr-N`) while gcd
    plans and deletes everything unused, again and again; the proxy holds each request that
    removes names of a multi-tag image for 100 ms, as a busy engine would, so that moves land
    in those windows. Afterwards every image that is gone
    was removed by gcd and logged, and every moving name is still on the image it was last
    loaded with, unless gcd removed that image. Before the fix: new images lost, see README."""
    if traits.load_drops_replaced:
        pytest.skip("this engine deletes an image itself when a load takes its last name")
    loaded: list[str] = []
    owner: dict[str, str] = {}
    stop = threading.Event()
    failures: list[BaseException] = []

    def ci_loop() -> None:
        n = 0
        try:
            while not stop.is_set() and n < 2_000:
                n += 1
                moving = [f"x/mv:{MOVING[n % 4]}", f"x/mv:{MOVING[(n * 7 + 1) % 4]}"]
                tags = moving[:1] if n % 3 == 0 else [*dict.fromkeys(moving), f"x/mv:sha-{n}"]
                new = spec(f"x-load-{n}", *tags)
                for _ in api.load_image(archive(new)):  # gcd may delete it at once: no inspect
                    pass
                loaded.append(images.image_id(new))
                owner.update({tag: images.image_id(new) for tag in tags if "x/mv:sha-" not in tag})
                stop.wait(0.1)  # a pace at which gcd meets images that still hold moving names
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    outcomes: list[Outcome] = []
    with EngineProxy(clean_engine.socket, delay_seconds=0.1, delay=removes_names) as proxy:
        engine = Engine(proxy.host)
        mover = threading.Thread(target=ci_loop)
        with capture_logs() as logs:
            mover.start()
            # 20 s, or up to 60 s on a loaded machine until the run has proved something.
            start = time.monotonic()
            try:
                while not failures and (
                    time.monotonic() < start + 20
                    or (time.monotonic() < start + 60 and len(removed_multi_tag(outcomes)) < 20)
                ):
                    outcomes.extend(execute(plan_now(engine, tmp_path), engine).outcomes)
            finally:
                stop.set()
                mover.join(timeout=120)
        engine.close()
    assert not failures, failures
    removed = {o.key.id for o in outcomes if o.status is OutcomeStatus.REMOVED}
    multi = removed_multi_tag(outcomes)
    assert len(multi) >= 20, f"only {len(multi)} multi-tag images removed: the test proved nothing"
    present = {i["Id"] for i in api.images(all=True)}
    assert set(loaded) - present <= removed, "an image gcd did not remove is gone"
    logged = {e["image"] for e in logs if e["event"] == "image_removed"}
    assert {i.removeprefix("sha256:")[:12] for i in removed} == logged
    # Names only ever move to new images here, so none can be on a planned one by surprise.
    assert not [e for e in logs if e["log_level"] == "error"]
    for tag, holder in owner.items():
        if holder not in removed:
            assert tag in tags_of(api, holder), f"{tag} was taken from {holder[:19]}"
