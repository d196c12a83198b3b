"""Build cache, networks and the `gcd` command end to end on the real engine, with the
policy of `kinds_host.py` (every section); test_kinds_end_to_end.py has containers, images
and volumes, and says how the tests make objects days old.

Podman: no BuildKit (the build-cache test is skipped, tests/integration/builds.py says why),
its default network is listed as `bridge` (Docker with `--bridge=none` has only `host` and
`none`), and containers on its user networks are never started (objects.py says why)."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gcd.core.kind import Kind
from gcd.core.references import parse_reference
from gcd.core.rules import RuleId
from gcd.cycle import RunResult
from gcd.engine.outcomes import OutcomeStatus
from tests.integration.builds import DOCKERFILE, build, context, no_buildkit
from tests.integration.gcd_command import gcd
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.kinds_host import (
    BASE,
    POLICY,
    SLEEP,
    STAY,
    Host,
    decided,
    df_bytes,
    host,
    made_networks,
    removed,
)
from tests.integration.objects import (
    anonymous_volume_of,
    container_names,
    make_network,
    volume_names,
)

__all__ = ["host", "made_networks"]  # fixtures


@pytest.fixture
def buildkit_host(host: Host) -> Iterator[Host]:
    """The host with no build cache, before and after (other tests' records would count in
    `max_size`)."""
    reason = no_buildkit(host.facade)
    if reason is not None:
        pytest.skip(reason)
    host.api.prune_builds(all=True)
    yield host
    host.api.prune_builds(all=True)


@pytest.mark.core
def test_build_cache_is_trimmed_to_max_size_then_by_age_with_the_engines_bytes(
    buildkit_host: Host, tmp_path: Path
) -> None:
    host, api = buildkit_host, buildkit_host.api
    build(host.engine, context(tmp_path, DOCKERFILE), "e2e-gone:1")
    api.remove_image("e2e-gone:1")  # its records are nobody's layers now
    build(host.engine, context(tmp_path, DOCKERFILE), "e2e/base:built")  # kept: shared
    before = df_bytes(api)["build_cache"]
    shared = {r["ID"] for r in api.df()["BuildCache"] if r["Shared"]}
    assert shared, "the kept image shares none of its build's records"
    limit = sum(before.values()) // 2
    text = POLICY.replace("max_size: 20GB", f"max_size: {limit}B")
    host.policy_file.write_text(text)
    host.first_plan()

    trimmed = host.run(days=1 / 24)  # an hour later: nothing is 7 days unused yet

    cache = {d.key.id: d for d in trimmed.plan.decisions if d.key.kind is Kind.BUILD_CACHE}
    assert {i for i, d in cache.items() if d.rule is RuleId.SHARED} == shared
    going = {i for i, d in cache.items() if d.deletes}
    assert going, f"nothing trimmed to {limit} bytes"
    assert {cache[i].rule for i in going} == {RuleId.OVER_SIZE}
    assert all(cache[i].detail.startswith("cache ") for i in going)
    assert {d.rule for i, d in cache.items() if i not in going | shared} <= {RuleId.UNUSED_WITHIN}
    _freed_as_the_engine_says(trimmed, before, df_bytes(api)["build_cache"], going)
    assert sum(df_bytes(api)["build_cache"].values()) <= limit

    left = df_bytes(api)["build_cache"]
    aged = host.run(days=8)

    rules = {d.key.id: d.rule for d in aged.plan.decisions if d.key.kind is Kind.BUILD_CACHE}
    assert {i for i, r in rules.items() if r.deletes} == set(left)
    assert {rules[i] for i in left} == {RuleId.UNUSED}
    _freed_as_the_engine_says(aged, left, df_bytes(api)["build_cache"], set(left))
    assert shared <= {r["ID"] for r in api.df()["BuildCache"]}, "shared records stay"


def _freed_as_the_engine_says(
    result: RunResult, before: dict[str, int], after: dict[str, int], going: set[str]
) -> None:
    outcomes = [o for o in result.report.outcomes if o.key.kind is Kind.BUILD_CACHE]
    assert {o.key.id for o in outcomes if o.status is OutcomeStatus.REMOVED} == going
    assert not set(after) & going
    reclaimed = sum(o.freed_bytes for o in outcomes)  # the engine's SpaceReclaimed
    assert reclaimed > 0
    assert result.freed_bytes == reclaimed == sum(before.values()) - sum(after.values())


@pytest.mark.core
def test_networks_unused_attached_released_and_the_engines_own(
    host: Host, made_networks: list[str]
) -> None:
    podman = host.facade.podman
    unused = make_network(host.api, made_networks, "e2e-unused")
    held = make_network(host.api, made_networks, "e2e-held")
    freed = make_network(host.api, made_networks, "e2e-freed")
    # Podman: a container that ran on its network cannot be removed (objects.py).
    host.container("net-holder", labels=STAY, network=held, start=not podman)
    host.container("net-job", network=freed, start=not podman)
    state = "created" if podman else "exited"
    builtin = {n["Name"] for n in host.api.networks()} - set(made_networks)
    assert builtin == ({"bridge"} if podman else {"host", "none"})
    policy_text = POLICY.replace("unused_for: 1d", "unused_for: 1s")
    host.policy_file.write_text(policy_text)
    host.first_plan()

    first = host.run(days=3)

    networks = decided(first.plan, Kind.NETWORK)
    assert {n: networks[n] for n in (unused, held, freed)} == {
        unused: (RuleId.UNUSED, "unused for 3d; unused_for 1s"),
        held: (RuleId.IN_USE, f"attached: container net-holder ({state})"),
        freed: (
            RuleId.UNUSED_WITHIN,
            f"attached to container net-job ({state}), removed first; unused_for 1s",
        ),
    }
    assert {n: r for n, (r, _) in networks.items() if n in builtin} == dict.fromkeys(
        builtin, RuleId.BUILTIN
    )
    assert removed(first, Kind.CONTAINER) == {"net-job"}
    assert removed(first, Kind.NETWORK) == {unused}
    left = {n["Name"] for n in host.api.networks()}
    assert left == builtin | {held, freed}

    second = host.run(days=3 + 1 / 24)

    assert decided(second.plan, Kind.NETWORK)[freed][0] is RuleId.UNUSED
    assert removed(second, Kind.NETWORK) == {freed}
    assert {n["Name"] for n in host.api.networks()} == builtin | {held}


def wait_until(moment: datetime) -> None:
    """The clock only goes forward: poll until it passes `moment` (a few seconds at most)."""
    deadline = time.monotonic() + 30
    while datetime.now(UTC) < moment:
        assert time.monotonic() < deadline, f"the clock did not reach {moment}"
        time.sleep(0.05)


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = json.loads(done.stdout)
    return document


@pytest.mark.core
def test_the_gcd_command_plans_and_runs_every_kind(host: Host, made_networks: list[str]) -> None:
    """`gcd check`, `gcd plan` (table and JSON format 2) and `gcd run --once -o json`, with
    the policy's durations at one second: no `now` on the command line."""
    text = re.sub(r"(remove_exited_after|unused_for|named_unused_for): \w+", r"\1: 1s", POLICY)
    host.policy_file.write_text(text)
    checked = gcd(host.engine.host, host.state_dir, "check", str(host.policy_file))
    assert checked.returncode == 0, checked.stderr
    load(host.api, image(runnable_layer(), layer(100 * 1024, "tool"), tags=("e2e/tool:1",)))
    host.container("job")
    host.container("keep-labelled", labels=STAY)
    sleeper = host.container("sleeper", SLEEP, start=False)
    host.api.start(sleeper)
    orphan = host.container("orphaner", anonymous=("/anon",))
    anonymous = anonymous_volume_of(host.api, orphan)
    host.api.remove_container(orphan)
    host.api.create_volume("data-idle")
    unused = make_network(host.api, made_networks, "e2e-unused")
    host.first_plan()
    wait_until(datetime.now(UTC) + timedelta(seconds=1.5))

    table = gcd(host.engine.host, host.state_dir, "plan", "--policy", str(host.policy_file))
    plan = as_json(
        gcd(
            host.engine.host,
            host.state_dir,
            "plan",
            "--policy",
            str(host.policy_file),
            "-o",
            "json",
        )
    )
    run = as_json(
        gcd(
            host.engine.host,
            host.state_dir,
            "run",
            "--once",
            "--policy",
            str(host.policy_file),
            "-o",
            "json",
        )
    )

    assert (plan["format"], plan["document"], run["document"]) == (2, "plan", "run")
    expected = {
        ("container", "job"): "delete.exited",
        ("container", "keep-labelled"): "keep.label",
        ("container", "sleeper"): "keep.active",
        ("image", "e2e/tool:1"): "delete.unkept",
        ("image", BASE): "keep.in_use",
        ("volume", anonymous): "delete.unused",
        ("volume", "data-idle"): "keep.named",
        ("network", unused): "delete.unused",
    }
    by_name = {(d["kind"], (d["names"] or [d["id"]])[0]): d for d in plan["decisions"]}
    assert {k: by_name[k]["rule"] for k in expected if k in by_name} == expected
    # Each kind's own fields, under its name.
    job = by_name["container", "job"]["container"]
    assert (job["name"], job["state"], job["restart_policy"]) == ("job", "exited", "no")
    assert parse_reference(job["image"]).familiar == BASE
    assert job["finished_at"] is not None
    volume = dict(by_name["volume", anonymous]["volume"])
    assert "last_used" in volume  # format 2 added it; its value is gcd's own sighting
    volume.pop("last_used")
    assert volume == {"name": anonymous, "anonymous": True, "driver": "local"}
    assert by_name["network", unused]["network"]["driver"] == "bridge"
    tool = by_name["image", "e2e/tool:1"]["image"]["references"]
    assert [parse_reference(r).familiar for r in tool] == ["e2e/tool:1"]
    others = [d for d in plan["decisions"] if d["kind"] == "network" and d["names"] != [unused]]
    assert others, "the engine's own networks are listed"
    assert {d["rule"] for d in others} == {"keep.builtin"}
    assert plan["summary"]["by_kind"]["container"] == {
        "objects": 3,
        "delete": 1,
        "keep": 2,
        "by_rule": {"delete.exited": 1, "keep.active": 1, "keep.label": 1},
    }
    # The table: a KIND column first, one row per decision.
    assert table.returncode == 0, table.stderr
    # Columns are two or more spaces apart (gcd.render.grid); cells have single spaces at most.
    rows = [re.split(r"\s{2,}", line.strip()) for line in table.stdout.splitlines()]
    assert rows[0][:2] == ["KIND", "NAME"]
    for (kind, name), rule in expected.items():
        shown = "<anonymous>" if name == anonymous else name
        assert [kind, shown] in [row[:2] for row in rows if rule in row], table.stdout

    outcomes = {(o["kind"], o["id"]): o["status"] for o in run["outcomes"]}
    deleting = {(d["kind"], d["id"]) for d in plan["decisions"] if d["action"] == "delete"}
    assert set(outcomes) == deleting
    assert set(outcomes.values()) == {"removed"}
    assert run["result"]["freed_bytes"] == plan["summary"]["freed_bytes"] >= 100 * 1024
    assert run["result"]["by_kind"]["container"]["by_status"]["removed"] == 1
    assert container_names(host.api) == {"keep-labelled", "sleeper"}
    assert volume_names(host.api) == {"data-idle"}
    assert "e2e/tool:1" not in {t for i in host.api.images() for t in i["RepoTags"] or ()}
    assert unused not in {n["Name"] for n in host.api.networks()}
    assert host.api.inspect_container(sleeper)["State"]["Running"]
