"""Containers and volumes on the suite's own engine: what the snapshot reads of them (exit and
creation times, restart policy, labels, mounts, `SizeRw`, anonymous and named volumes with
their bytes) and how the executor removes them, never with force: plans are made by hand from
the snapshot, so these tests hold whatever the core's judges decide. Races between plan and
removal run through the proxy (`tests/integration/proxy.py`) or between the two calls."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.core.plan import Decision, Plan
from gcd.core.records import Container, ContainerState, Snapshot, Volume
from gcd.core.references import parse_reference
from gcd.core.rules import RuleId
from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.outcomes import OutcomeStatus, Report
from gcd.engine.snapshot import take_snapshot
from gcd.host.state import State
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, load, runnable_layer
from tests.integration.objects import (
    anonymous_volume_of,
    make_container,
    remove_all,
    volume_names,
)
from tests.integration.objects import container_names as names
from tests.integration.proxy import EngineProxy

pytestmark = pytest.mark.core

SLACK = timedelta(seconds=5)
"""Between this machine's clock and the engine's own stamps (the same clock, rounded)."""
SECOND_START_RUNS = "test -e /started && exec sleep 100000; touch /started"
"""Exits at once the first time; runs (sleeps) from the second start on."""
_DOCKER_20_RUNNING = (
    "You cannot remove a running container {id}. Stop the container before attempting "
    "removal or force remove"
)
_DOCKER_26_RUNNING = (
    'cannot remove container "/{name}": container is running: stop the container before '
    "removing or force remove"
)
RUNNING_CONTAINER_REFUSAL = {
    "docker-20.10": _DOCKER_20_RUNNING,
    "docker-26": _DOCKER_26_RUNNING,
    "docker-26-containerd": _DOCKER_26_RUNNING,
    "podman-5": (  # a 500, which gcd reads as the conflict it is
        "cannot remove container {id} as it is running - running or paused containers cannot "
        "be removed without force: container state improper"
    ),
}
"""`DELETE /containers/{id}` of a running container, without force (engine-facts.md §1.2)."""
_DOCKER_IN_USE = "remove {name}: volume is in use - [{id}]"
VOLUME_IN_USE_REFUSAL = {
    "docker-20.10": _DOCKER_IN_USE,
    "docker-26": _DOCKER_IN_USE,
    "docker-26-containerd": _DOCKER_IN_USE,
    "podman-5": (
        "volume {name} is being used by the following container(s): {id}: volume is being used"
    ),
}
"""`DELETE /volumes/{name}` of a volume a container mounts, without force (§1.3)."""


@pytest.fixture
def clean(clean_engine: PrivateEngine, api: docker.APIClient) -> Iterator[PrivateEngine]:
    """The engine without containers, images or volumes, before and after."""
    remove_all(api)
    yield clean_engine
    remove_all(api)


@pytest.fixture
def runnable(api: docker.APIClient, clean: PrivateEngine) -> str:
    (image_id,) = load(api, image(runnable_layer(), tags=("cv/run:1",)))
    return image_id


def make(api: docker.APIClient, command: str, **options: Any) -> str:
    """A container of `cv/run:1` (`make_container`)."""
    return make_container(api, "cv/run:1", command, **options)


def snap(engine: Engine, tmp_path: Path) -> Snapshot:
    return take_snapshot(engine, State.load(tmp_path / "state"), datetime.now(UTC))


def container(snapshot: Snapshot, name: str) -> Container:
    (found,) = (c for c in snapshot.containers if c.name == name)
    return found


def volume(snapshot: Snapshot, name: str) -> Volume:
    (found,) = (v for v in snapshot.volumes if v.name == name)
    return found


def plan_of(*subjects: Container | Volume) -> Plan:
    """Delete `subjects` in this order (containers before volumes, as evaluate orders them)."""
    decisions = tuple(
        Decision(s, RuleId.EXITED if isinstance(s, Container) else RuleId.UNUSED, "", timedelta())
        for s in subjects
    )
    return Plan(datetime.now(UTC), decisions, 0, 0)


def status(report: Report) -> OutcomeStatus:
    (outcome,) = report.outcomes
    return outcome.status


def test_exited_and_never_started_containers_are_read_with_their_details(
    runnable: str, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    before = datetime.now(UTC) - SLACK
    make(
        api,
        "head -c 50000 /dev/zero > /written; head -c 70000 /dev/zero > /data/f",
        name="job",
        binds={"cv-named": {"bind": "/data", "mode": "rw"}},
        anonymous=("/anon",),
        labels={"team": "ci"},
        restart="on-failure",  # exits 0: not restarted
    )
    make(api, "true", name="never", start=False)
    after = datetime.now(UTC) + SLACK
    snapshot = snap(engine, tmp_path)

    job = container(snapshot, "job")
    assert job.state is ContainerState.EXITED
    assert job.details_known
    assert parse_reference(job.image).familiar == "cv/run:1"  # Podman: docker.io/cv/run:1
    assert job.image_id == runnable
    assert job.labels["team"] == "ci"
    assert job.restart_policy == "on-failure"
    assert job.started_at is not None
    assert job.finished_at is not None
    # Both within the test; not ordered: for a process that exits at once, 20.10 was seen
    # stamping FinishedAt a millisecond before StartedAt.
    assert before <= job.started_at <= after
    assert before <= job.finished_at <= after
    assert job.created is not None
    assert before - timedelta(seconds=1) <= job.created <= job.started_at
    assert job.size_rw_bytes >= 50_000
    assert snapshot.unit_sizes[f"container:{job.id}"] == job.size_rw_bytes
    anonymous = anonymous_volume_of(api, job.id)
    assert set(job.volumes) == {"cv-named", anonymous}

    never = container(snapshot, "never")
    assert never.state is ContainerState.CREATED
    assert (never.started_at, never.finished_at, never.details_known) == (None, None, True)
    assert never.stopped_at == never.created
    assert never.restart_policy == "no"

    named, unnamed = volume(snapshot, "cv-named"), volume(snapshot, anonymous)
    assert (named.anonymous, unnamed.anonymous) == (False, True)
    assert named.size_bytes >= 70_000
    assert snapshot.unit_sizes["volume:cv-named"] == named.size_bytes
    assert named.driver == "local"
    assert named.created is not None
    assert before - timedelta(seconds=1) <= named.created <= after
    assert named.last_used == snapshot.taken_at  # a stopped container mounts it


def test_an_exited_container_is_removed_and_its_anonymous_volume_stays(
    runnable: str, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    job_id = make(api, "true", name="job", anonymous=("/anon",))
    anonymous = anonymous_volume_of(api, job_id)
    report = execute(plan_of(container(snap(engine, tmp_path), "job")), engine)
    assert status(report) is OutcomeStatus.REMOVED
    assert "job" not in names(api)
    assert anonymous in volume_names(api)
    # Now no container mounts it: the next plan may remove it.
    report = execute(plan_of(volume(snap(engine, tmp_path), anonymous)), engine)
    assert status(report) is OutcomeStatus.REMOVED
    assert anonymous not in volume_names(api)


def test_a_container_restarted_between_plan_and_removal_is_left_alone(
    runnable: str, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    job_id = make(api, "true", name="job")
    planned = plan_of(container(snap(engine, tmp_path), "job"))
    api.start(job_id)
    api.wait(job_id, timeout=60)
    report = execute(planned, engine)
    assert status(report) is OutcomeStatus.SKIPPED_CHANGED
    assert "started again since the plan" in report.outcomes[0].detail
    assert "job" in names(api)
    # The next plan sees the new start: removable again, with its real exit time.
    fresh = container(snap(engine, tmp_path), "job")
    assert fresh.started_at != planned.decisions[0].subject.started_at  # type: ignore[attr-defined]
    assert status(execute(plan_of(fresh), engine)) is OutcomeStatus.REMOVED


def test_a_running_container_is_skipped_and_one_started_at_the_last_moment_refuses(
    runnable: str,
    api: docker.APIClient,
    engine: Engine,
    clean: PrivateEngine,
    tmp_path: Path,
) -> None:
    job_id = make(api, SECOND_START_RUNS, name="job")
    planned = plan_of(container(snap(engine, tmp_path), "job"))
    api.start(job_id)
    assert status(execute(planned, engine)) is OutcomeStatus.SKIPPED_IN_USE
    api.kill(job_id)
    api.wait(job_id, timeout=60)
    again = plan_of(container(snap(engine, tmp_path), "job"))
    with EngineProxy(clean.socket) as proxy:
        proxy.before(
            lambda method, path: method == "DELETE" and "/containers/" in path,
            lambda _m, _p: api.start(job_id),
        )
        report = execute(again, Engine(proxy.host))
    assert status(report) is OutcomeStatus.CONFLICT
    assert api.inspect_container(job_id)["State"]["Running"]
    deletes = [p for m, p in proxy.requests if m == "DELETE"]
    assert len(deletes) == 1  # never retried
    assert "force=False" in deletes[0]
    assert "v=False" in deletes[0]
    expected = RUNNING_CONTAINER_REFUSAL[clean.name].format(id=job_id, name="job")
    assert report.outcomes[0].detail == expected


def test_a_volume_a_stopped_container_mounts_is_in_use_and_an_unmounted_one_goes(
    runnable: str, api: docker.APIClient, engine: Engine, tmp_path: Path
) -> None:
    make(api, "true", name="holder", binds={"cv-held": {"bind": "/data", "mode": "rw"}})
    api.create_volume("cv-idle")
    snapshot = snap(engine, tmp_path)
    assert volume(snapshot, "cv-idle").last_used is None
    report = execute(plan_of(volume(snapshot, "cv-held"), volume(snapshot, "cv-idle")), engine)
    assert [o.status for o in report.outcomes] == [
        OutcomeStatus.SKIPPED_IN_USE,
        OutcomeStatus.REMOVED,
    ]
    assert report.outcomes[0].detail.startswith("now mounted by holder (")
    assert volume_names(api) == {"cv-held"}


def test_a_container_created_at_the_last_moment_makes_the_volume_removal_refuse(
    runnable: str,
    api: docker.APIClient,
    engine: Engine,
    clean: PrivateEngine,
    tmp_path: Path,
) -> None:
    api.create_volume("cv-late")
    planned = plan_of(volume(snap(engine, tmp_path), "cv-late"))
    late: list[str] = []
    with EngineProxy(clean.socket) as proxy:
        proxy.before(
            lambda method, path: method == "DELETE" and "/volumes/" in path,
            lambda _m, _p: late.append(
                make(api, "true", name="late", start=False, binds={"cv-late": {"bind": "/d"}})
            ),
        )
        report = execute(planned, Engine(proxy.host))
    assert status(report) is OutcomeStatus.CONFLICT
    assert "cv-late" in volume_names(api)
    expected = VOLUME_IN_USE_REFUSAL[clean.name].format(id=late[0], name="cv-late")
    assert report.outcomes[0].detail == expected


def test_one_snapshot_asks_for_disk_usage_once_and_only_for_what_it_needs(
    runnable: str, api: docker.APIClient, clean: PrivateEngine, tmp_path: Path
) -> None:
    make(api, "true", name="job", anonymous=("/anon",))
    with EngineProxy(clean.socket) as proxy:
        engine = Engine(proxy.host)
        snapshot = snap(engine, tmp_path)
        version = engine.api_version
    assert container(snapshot, "job").details_known
    (df,) = [path for method, path in proxy.requests if method == "GET" and "/system/df" in path]
    if tuple(int(p) for p in version.split(".")) >= (1, 42):
        assert df.endswith("/system/df?type=container&type=volume&type=build-cache")
    else:  # 20.10 and Podman have no `type`: the whole answer, as before
        assert df.endswith("/system/df")
