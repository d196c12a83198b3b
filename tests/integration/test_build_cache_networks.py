"""Build cache and networks on the real engine: real BuildKit cache made by
`DOCKER_BUILDKIT=1 /usr/bin/docker build --network none` (engine-facts.md §1.4; the 20.10
CLI drives the engine's built-in BuildKit without buildx), read with `read_build_cache`,
pruned record by record through the executor; user networks with stopped, never-started and
running containers attached, removed or kept by `NetworkRemoval`.

Podman's compatible API has no BuildKit: the docker CLI's BuildKit session is not served
("failed to dial gRPC: unable to upgrade to h2c, received 404") and `GET /system/df` lists no
build cache. There the build cache tests are skipped and one test
checks that gcd reads "no build cache" from it."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import docker
import pytest

from gcd.core.plan import Decision, Plan
from gcd.core.records import BuildCacheRecord, Container, ContainerState, Network
from gcd.core.rules import RuleId
from gcd.engine.api import RemoveStatus
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.identity import engine_scope
from gcd.engine.kinds.build_cache import read_build_cache
from gcd.engine.kinds.networks import attached_networks, read_networks
from gcd.engine.outcomes import Outcome, OutcomeStatus
from gcd.host.state import State
from tests.integration.builds import (
    BUILD_TIMEOUT_SECONDS,
    DOCKERFILE,
    build,
    build_command,
    build_env,
    context,
    no_buildkit,
)
from tests.integration.harness import PrivateEngine
from tests.integration.images import BUSYBOX, image, load, runnable_layer
from tests.integration.objects import make_network

pytestmark = pytest.mark.core


def now() -> datetime:
    return datetime.now(UTC)


def plan_of(*subjects: BuildCacheRecord | Network) -> Plan:
    decisions = tuple(
        Decision(s, RuleId.UNUSED, "unused", timedelta(days=8), s.size_bytes) for s in subjects
    )
    return Plan(now(), decisions, sum(d.freed_bytes for d in decisions), 0)


def run(engine: Engine, *subjects: BuildCacheRecord | Network) -> list[Outcome]:
    return list(execute(plan_of(*subjects), engine).outcomes)


# -- build cache -------------------------------------------------------------------------


@pytest.fixture
def buildkit(engine_host: PrivateEngine, engine: Engine) -> PrivateEngine:
    reason = no_buildkit(engine)
    if reason is not None:
        pytest.skip(reason)
    return engine_host


def cache(engine: Engine) -> dict[str, BuildCacheRecord]:
    return {r.id: r for r in read_build_cache(engine.system_df())}


def built_unshared(
    host: PrivateEngine, engine: Engine, api: docker.APIClient, tmp_path: Path
) -> dict[str, BuildCacheRecord]:
    """A build's new records, its image deleted so that none is shared with an image."""
    before = set(cache(engine))
    tag = f"bc-{secrets.token_hex(3)}:1"
    build(host, context(tmp_path, DOCKERFILE), tag)
    api.remove_image(tag)
    records = {i: r for i, r in cache(engine).items() if i not in before}
    assert records, "the build made no build cache records"
    return records


def test_reads_real_records_and_prunes_one_with_the_engines_bytes(
    buildkit: PrivateEngine, engine: Engine, api: docker.APIClient, tmp_path: Path
) -> None:
    records = built_unshared(buildkit, engine, api, tmp_path)
    assert {r.type for r in records.values()} >= {"regular", "source.local"}
    assert not any(r.in_use or r.shared for r in records.values())
    # The context record (source.local, the busybox): nobody's parent, the largest.
    leaves = [r for r in records.values() if not any(r.id in o.parents for o in records.values())]
    doomed = max((r for r in leaves if r.type == "source.local"), key=lambda r: r.size_bytes)
    assert doomed.size_bytes > BUSYBOX.stat().st_size // 2
    # The id is anchored: its first 12 characters (as `docker system df -v` shows) select
    # nothing, where BuildKit's bare `id~=` would match the record.
    assert engine.prune_build_cache_record(doomed.id[:12]).deleted == ()
    total_before = sum(r.size_bytes for r in cache(engine).values())
    (outcome,) = run(engine, doomed)
    after = cache(engine)
    assert outcome.status is OutcomeStatus.REMOVED, outcome.detail
    assert doomed.id not in after
    assert set(records) - {doomed.id} <= set(after), "another record went too"
    # The engine's SpaceReclaimed, which is what the listing's sizes say went.
    assert (
        outcome.freed_bytes
        == doomed.size_bytes
        == total_before - sum(r.size_bytes for r in after.values())
    )


def test_a_parent_is_kept_while_its_child_exists_then_both_go(
    buildkit: PrivateEngine, engine: Engine, api: docker.APIClient, tmp_path: Path
) -> None:
    records = built_unshared(buildkit, engine, api, tmp_path)
    # The RUN step's record: a child (of the COPY before it) and nobody's parent.
    child = next(
        r
        for r in records.values()
        if r.parents and not any(r.id in o.parents for o in records.values())
    )
    (parent_id,) = child.parents
    parent = records.get(parent_id) or cache(engine)[parent_id]
    (outcome,) = run(engine, parent)
    assert (outcome.status, outcome.freed_bytes) == (OutcomeStatus.CONFLICT, 0)
    if engine.build_cache_records() is not None:
        assert f"still the parent of {child.id}" in outcome.detail
    assert {parent.id, child.id} <= set(cache(engine))
    outcomes = run(engine, child, parent)
    assert [o.status for o in outcomes] == [OutcomeStatus.REMOVED] * 2, outcomes
    assert [o.freed_bytes for o in outcomes] == [child.size_bytes, parent.size_bytes]
    assert not {parent.id, child.id} & set(cache(engine))


def test_a_record_an_image_shares_is_refused_by_the_engine_itself(
    buildkit: PrivateEngine, engine: Engine, tmp_path: Path
) -> None:
    before = set(cache(engine))
    build(buildkit, context(tmp_path, DOCKERFILE), f"bc-kept-{secrets.token_hex(3)}:1")
    shared = [r for i, r in cache(engine).items() if i not in before and r.shared]
    assert shared, "the image shares none of its build's records"
    leaf = next(r for r in shared if not any(r.id in o.parents for o in cache(engine).values()))
    # Sent with all=false, BuildKit checks "shared" in the prune request itself.
    result = engine.prune_build_cache_record(leaf.id)
    assert (result.status, result.deleted, result.reclaimed_bytes) == (RemoveStatus.REMOVED, (), 0)
    (outcome,) = run(engine, leaf)
    assert (
        outcome.status is OutcomeStatus.SKIPPED_CHANGED
        if engine.build_cache_records() is not None
        else OutcomeStatus.CONFLICT
    )
    assert leaf.id in cache(engine)


@dataclass
class SlowBuild:
    process: subprocess.Popen[str]
    running: threading.Event
    """Set once the CLI reports the `RUN` step started: the records below it are then
    committed and held until the build ends."""


@pytest.fixture
def slow_build(buildkit: PrivateEngine, tmp_path: Path) -> Iterator[SlowBuild]:
    """A build whose `RUN` sleeps until the test ends (its CLI killed, BuildKit cancels)."""
    folder = context(
        tmp_path,
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY token /token\n"
        'RUN ["/bin/busybox", "sleep", "120"]\n',
    )
    process = subprocess.Popen(
        [*build_command(buildkit, folder, "slow:1"), "--progress", "plain"],
        env=build_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    running = threading.Event()

    def watch() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            if "[3/3] RUN" in line:
                running.set()

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    try:
        yield SlowBuild(process, running)
    finally:
        process.kill()
        process.wait(30)
        reader.join(30)


def test_a_record_a_running_build_holds_is_not_deleted(
    slow_build: SlowBuild, engine: Engine
) -> None:
    assert slow_build.running.wait(BUILD_TIMEOUT_SECONDS), "the RUN step never started"
    deadline = time.monotonic() + BUILD_TIMEOUT_SECONDS
    held: list[BuildCacheRecord] = []
    while not held and time.monotonic() < deadline:
        # The step's base (the COPY before it), held while it sleeps.
        held = [r for r in cache(engine).values() if r.in_use and r.type == "regular"]
        if not held:
            time.sleep(0.2)
    assert held, "no record became InUse during the build"
    outcomes = run(engine, *held)
    expected = OutcomeStatus.SKIPPED_IN_USE if engine.build_cache_records() is not None else None
    for record, outcome in zip(held, outcomes, strict=True):
        assert outcome.freed_bytes == 0
        # 1.41: no cheap re-read, the engine itself refuses: a conflict naming the reasons.
        assert outcome.status in ((expected,) if expected else (OutcomeStatus.CONFLICT,))
        assert record.id in cache(engine)
    assert slow_build.process.poll() is None, "the build ended during the test"


def test_the_engine_prune_deletes_nothing_for_an_unknown_id(
    buildkit: PrivateEngine, engine: Engine
) -> None:
    result = engine.prune_build_cache_record("0" * 25)
    assert (result.status, result.deleted, result.reclaimed_bytes) == (
        RemoveStatus.REMOVED,
        (),
        0,
    )


def test_podman_has_no_build_cache_and_gcd_reads_none(engine: Engine) -> None:
    if not engine.podman:
        pytest.skip("Podman only")
    assert read_build_cache(engine.system_df()) == ()
    assert engine.build_cache_records() in (None, [])


# -- networks ----------------------------------------------------------------------------


def containers(engine: Engine) -> tuple[Container, ...]:
    """The engine's containers, with their attachments (as the snapshot will make them)."""
    return tuple(
        Container(
            id=raw["Id"],
            name=str(raw["Names"][0]).lstrip("/"),
            image_id=str(raw.get("ImageID") or ""),
            state=ContainerState.CREATED,
            networks=attached_networks(raw),
        )
        for raw in engine.list_containers()
    )


@pytest.fixture
def networks(api: docker.APIClient) -> Iterator[list[str]]:
    """Names of the networks a test makes; removed (with their containers) afterwards."""
    made: list[str] = []
    yield made
    for container in api.containers(all=True):
        attached = (container.get("NetworkSettings") or {}).get("Networks") or {}
        if set(attached) & set(made):
            api.remove_container(container["Id"], force=True)
    for name in made:
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_network(name)


@pytest.fixture
def runnable(api: docker.APIClient) -> str:
    (image_id,) = load(api, image(runnable_layer(), tags=("gcd-test/net:1",)))
    return image_id


def test_used_and_unused_networks_and_the_builtin_ones(
    engine: Engine,
    api: docker.APIClient,
    networks: list[str],
    runnable: str,
    tmp_path: Path,
) -> None:
    never_started = make_network(api, networks, "gcd-created")
    exited = make_network(api, networks, "gcd-exited")
    unused = make_network(api, networks, "gcd-unused")
    api.create_container(
        runnable, ["/bin/true"], host_config=api.create_host_config(network_mode=never_started)
    )
    ran = api.create_container(
        runnable, ["/bin/true"], host_config=api.create_host_config(network_mode=exited)
    )
    api.start(ran)
    assert api.wait(ran, timeout=60)["StatusCode"] == 0

    state = State(tmp_path)
    state.bind(engine_scope(engine, engine.info()))
    taken = now()
    found = {n.name: n for n in read_networks(engine, state, containers(engine), taken)}
    assert (found[never_started].last_used, found[exited].last_used) == (taken, taken)
    assert found[unused].last_used is None
    builtin = {name for name, n in found.items() if n.is_builtin}
    # --bridge=none: Docker has no `bridge` network; Podman lists its `podman` as `bridge`.
    expected = {"bridge"} if engine.podman else {"host", "none"}
    assert builtin == expected
    assert set(found) == builtin | {never_started, exited, unused}

    outcomes = run(engine, found[never_started], found[exited], found[unused])
    assert [o.status for o in outcomes] == [
        OutcomeStatus.SKIPPED_IN_USE,
        OutcomeStatus.SKIPPED_IN_USE,
        OutcomeStatus.REMOVED,
    ], outcomes
    left = {n["Name"] for n in api.networks()}
    assert {never_started, exited} <= left
    assert unused not in left

    outcomes = run(engine, *(found[name] for name in sorted(builtin)))
    assert {o.status for o in outcomes} == {OutcomeStatus.SKIPPED_CHANGED}
    assert builtin <= {n["Name"] for n in api.networks()}


def test_the_engine_itself_removes_a_network_only_stopped_containers_use(
    engine: Engine, api: docker.APIClient, networks: list[str], runnable: str
) -> None:
    """Why gcd's guard reads the container list: the engine checks running endpoints only."""
    name = make_network(api, networks, "gcd-stopped")
    api.create_container(
        runnable, ["/bin/true"], host_config=api.create_host_config(network_mode=name)
    )
    result = engine.remove_network(name)
    if engine.podman:  # Podman refuses while any container is attached
        assert result.status is RemoveStatus.CONFLICT, result
    else:
        assert result.status is RemoveStatus.REMOVED, result
        networks.remove(name)


def test_a_running_container_is_the_engines_conflict(
    engine: Engine, api: docker.APIClient, networks: list[str], runnable: str, tmp_path: Path
) -> None:
    if engine.podman:
        pytest.skip(
            "the suite's Podman has no aardvark-dns: a container that ran on a Podman network "
            "cannot be removed afterwards (netavark: remove aardvark entries)"
        )
    name = make_network(api, networks, "gcd-running")
    running = api.create_container(
        runnable, ["/bin/sleep", "600"], host_config=api.create_host_config(network_mode=name)
    )
    api.start(running)
    result = engine.remove_network(name)
    assert result.status is RemoveStatus.CONFLICT, result
    if not engine.podman:
        assert "has active endpoints" in result.message
    inspected = engine.inspect_network(name)
    assert inspected is not None
    (network,) = (n for n in read_networks_of(engine, tmp_path) if n.name == name)
    (outcome,) = run(engine, network)
    assert outcome.status is OutcomeStatus.SKIPPED_IN_USE
    api.kill(running)


def read_networks_of(engine: Engine, folder: Path) -> tuple[Network, ...]:
    state = State(folder)
    state.bind(engine_scope(engine, engine.info()))
    return read_networks(engine, state, containers(engine), now())


def test_gone_network_is_none_and_already_gone(
    engine: Engine, api: docker.APIClient, networks: list[str], tmp_path: Path
) -> None:
    name = make_network(api, networks, "gcd-gone")
    (network,) = (n for n in read_networks_of(engine, tmp_path) if n.name == name)
    api.remove_network(name)
    networks.remove(name)
    assert engine.inspect_network(network.id) is None
    (outcome,) = run(engine, network)
    assert outcome.status is OutcomeStatus.ALREADY_GONE
    assert engine.remove_network(network.id).status is RemoveStatus.NOT_FOUND
