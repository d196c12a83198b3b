"""The delete fraction per kind, through `gcd run --once` on the suite's own engine: the one
stopped container of a host is 100% of its containers, which refuses the whole run (nothing of
any kind is deleted, exit code 4, the message names `containers.max_delete_fraction`), and the
containers section's own limit lets the same run through."""

from __future__ import annotations

import json
import time
from pathlib import Path

import docker
import pytest

from gcd.errors import ExitCode
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer

pytestmark = pytest.mark.core

POLICY = """\
version: 1
safety: {{min_age: 1s}}
images:
  keep:
    - reference: ["sk/run:*"]
containers:
  remove_exited_after: 1s
{own}"""
"""Images: the spare two of three go (67%, within 90%). Containers: the one exited goes."""


def write_policy(path: Path, own: str = "") -> Path:
    path.write_text(POLICY.format(own=own))
    return path


def planned_rules(host: str, state: Path, policy: Path) -> dict[str, str]:
    """`gcd plan` exits 4 too for a plan a run would refuse."""
    result = gcd(host, state, "plan", "--policy", str(policy), "-o", "json")
    assert result.returncode in (ExitCode.OK, ExitCode.RUN_REFUSED), result.stderr
    return {d["id"]: d["rule"] for d in json.loads(result.stdout)["decisions"]}


@pytest.fixture
def one_stopped(clean_engine: PrivateEngine, api: docker.APIClient) -> tuple[str, str, list[str]]:
    """One exited container of `sk/run:1` and two spare images, all past `min_age: 1s` and the
    container past `remove_exited_after: 1s` (waited for, with a deadline)."""
    runnable, *spares = load(
        api,
        image(runnable_layer(), tags=("sk/run:1",)),
        image(layer(4096, "spare-a"), tags=("sk/spare-a:1",)),
        image(layer(4096, "spare-b"), tags=("sk/spare-b:1",)),
    )
    created = api.create_container(
        "sk/run:1", ["true"], name="job", host_config=api.create_host_config(network_mode="none")
    )
    api.start(created["Id"])
    api.wait(created["Id"], timeout=60)
    return str(created["Id"]), runnable, spares


def test_one_stopped_container_of_one_refuses_the_run_until_its_section_allows_it(
    clean_engine: PrivateEngine,
    api: docker.APIClient,
    one_stopped: tuple[str, str, list[str]],
    tmp_path: Path,
) -> None:
    job, runnable, spares = one_stopped
    state, host = tmp_path / "state", clean_engine.host
    strict = write_policy(tmp_path / "strict.yaml")
    # Until the images are 1s old in gcd's state (first seen by the first plan) and the
    # container has been stopped for 1s, the plan keeps them: wait for both, with a deadline.
    deadline = time.monotonic() + 30
    while True:
        rules = planned_rules(host, state, strict)
        if rules[job] == "delete.exited" and all(rules[s] == "delete.unkept" for s in spares):
            break
        assert time.monotonic() < deadline, rules
        time.sleep(0.2)
    before = ({c["Id"] for c in api.containers(all=True)}, {i["Id"] for i in api.images()})

    refused = gcd(host, state, "run", "--once", "--policy", str(strict))

    assert refused.returncode == ExitCode.RUN_REFUSED, refused.stderr
    # Only the containers are named: the images (2 of 3) are within the limit.
    assert refused.stderr.splitlines()[-1] == (
        "gcd: the plan deletes 1 of 1 containers (100%), more than "
        "safety.max_delete_fraction=0.9 allows; nothing was deleted. Check the policy with "
        "`gcd plan`; if this is meant, raise the limit for that kind alone in its section: "
        "`containers.max_delete_fraction: 1`"
    )
    after = ({c["Id"] for c in api.containers(all=True)}, {i["Id"] for i in api.images()})
    assert after == before, "a refused run deletes nothing, of any kind"

    allowed = write_policy(tmp_path / "allowed.yaml", "  max_delete_fraction: 1\n")
    run = gcd(host, state, "run", "--once", "--policy", str(allowed), "-o", "json")

    assert run.returncode == ExitCode.OK, run.stderr
    assert json.loads(run.stdout)["result"]["by_status"]["removed"] == 3
    assert job not in {c["Id"] for c in api.containers(all=True)}
    assert {i["Id"] for i in api.images()} == {runnable}
