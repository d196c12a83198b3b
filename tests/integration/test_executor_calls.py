"""What a run costs the engine (issue 16), counted by the proxy in front of it: at most two
requests per deleted single-tag or dangling image (the re-inspect, the delete), the same
number whatever the number of containers on the host, and every request of a `gcd run
--once` over kept-alive connections: one, and one per concurrent image deletion."""

from __future__ import annotations

import json
from pathlib import Path

import docker
import pytest

from gcd.engine.client import Engine
from gcd.engine.executor import execute
from gcd.engine.outcomes import OutcomeStatus
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.proxy import EngineProxy
from tests.integration.test_executor import plan_now

pytestmark = pytest.mark.core

POLICY = (
    "version: 1\n"
    "safety: {min_age: 0s, max_delete_fraction: 1}\n"
    "images: {keep: [], dangling: {keep_within: 0s}}\n"
)


def _containers(api: docker.APIClient, image_id: str, count: int) -> None:
    for _ in range(count):
        api.create_container(
            image_id, command=["true"], host_config=api.create_host_config(network_mode="none")
        )


def _requests_of_a_run(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path, seed: str
) -> tuple[list[tuple[str, str]], list[str]]:
    """Load four single-tag, two dangling and one two-tag image, plan, then return what
    executing the plan sent (planning is not counted) and the ids of the six images of at
    most one tag."""
    specs = [image(layer(4_000, f"{seed}-{n}"), tags=(f"calls/{seed}:{n}",)) for n in range(4)]
    specs += [image(layer(4_000, f"{seed}-dangling-{n}")) for n in range(2)]
    specs.append(image(layer(4_000, f"{seed}-multi"), tags=(f"calls/{seed}:a", f"calls/{seed}:b")))
    ids = load(api, *specs)
    with EngineProxy(clean_engine.socket) as proxy:
        engine = Engine(proxy.host)
        plan = plan_now(engine, tmp_path)
        assert {d.key.id for d in plan.deletions} == set(ids)
        before = len(proxy.requests)
        report = execute(plan, engine)
        engine.close()
        sent = proxy.requests[before:]
    assert report.count(OutcomeStatus.REMOVED) == len(ids), report.outcomes
    return sent, ids[:6]


def test_a_deleted_image_costs_at_most_two_requests_whatever_the_number_of_containers(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    (keeper,) = load(api, image(runnable_layer(), layer(1_000, "keeper"), tags=("calls/keep:1",)))
    _containers(api, keeper, 2)
    few, _ = _requests_of_a_run(clean_engine, api, tmp_path, "few")
    _containers(api, keeper, 40)
    many, singles = _requests_of_a_run(clean_engine, api, tmp_path, "many")
    assert len(few) == len(many), (few, many)
    for image_id in singles:  # six images of at most one tag: an inspect and a delete each
        assert [method for method, path in many if image_id in path] == ["GET", "DELETE"], many
    rest = [(m, p) for m, p in many if not any(i in p for i in singles)]
    lists = [p for _, p in rest if p.split("?")[0].endswith("/containers/json")]
    # The two-tag image: its inspect, its containers (Docker: of that image only), its forced
    # delete (Podman: an untag, then a delete); then the run's orphan check after settle.
    assert len(lists) == 2, rest
    assert len(rest) <= 5, rest
    if not any("libpod" in p for _, p in rest):
        assert "ancestor" in lists[0], lists[0]
        assert len(rest) == 4, rest


def test_a_run_once_sends_every_request_over_a_few_kept_alive_connections(
    clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path
) -> None:
    load(api, *(image(layer(4_000, f"one-{n}"), tags=(f"one/conn:{n}",)) for n in range(5)))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    policy.chmod(0o600)
    with EngineProxy(clean_engine.socket) as proxy:
        done = gcd(proxy.host, tmp_path / "state", "run", "--once", "--policy", str(policy))
        sent, connections = len(proxy.requests), proxy.connections
    assert done.returncode == 0, done.stderr[-3000:]
    assert sent > 10  # the snapshot's lists, the per-image inspects and deletes
    # One kept-alive connection, and one more per image deletion run beside another.
    assert connections <= Engine.removal_workers, f"{connections} connections for {sent} requests"
    state = json.dumps(sorted(p.name for p in (tmp_path / "state").iterdir()))
    assert "state.db" in state
