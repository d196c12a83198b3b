"""Every kind end to end on the real engine: a policy file with every section → `plan_once` /
`run_once` (or the `gcd` command) → the plan's decisions (rule ids and details) and the
engine's state afterwards. The engine-level pieces (reading, removing, races) are tested in
test_containers_volumes.py and test_build_cache_networks.py; here they are composed.

Objects cannot be made days apart in a quick test, so the runs are made at `now`s in the
future (`plan_once`/`run_once` take `now`): a first plan at the real time records what gcd
first saw, as a daemon would; later runs at `+1d`, `+3d`, `+20d` find the same objects that
much older. The `gcd` command has no `now`: its test uses the same policy with 1-second
durations and waits (bounded) until the objects are older than that.

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

import docker
import pytest

from gcd.config.loader import load_policy
from gcd.core.kind import Kind
from gcd.core.plan import Decision, Plan
from gcd.core.policy import Policy
from gcd.core.references import parse_reference
from gcd.core.rules import RuleId
from gcd.cycle import RunResult, plan_once, run_once
from gcd.engine.client import Engine
from gcd.engine.outcomes import OutcomeStatus
from tests.integration.builds import DOCKERFILE, build, context, no_buildkit
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.objects import (
    anonymous_volume_of,
    container_names,
    make_container,
    make_network,
    remove_all,
    volume_names,
)

POLICY = """\
version: 1
safety: {min_age: 1s, max_delete_fraction: 1}
images:
  keep:
    - reference: ["e2e/base:*"]
containers:
  keep:
    - label: {gc.keep: "true"}
    - name: ["db-*"]
    - image: ["e2e/pinned:*"]
  remove_exited_after: 2d
  remove_services_named: ["ci-svc-*"]
volumes:
  keep:
    - label: {gc.keep: "true"}
  anonymous_unused_for: 7d
  named: ["ci-cache-*"]
  named_unused_for: 14d
build_cache:
  unused_for: 7d
  max_size: 20GB
networks:
  unused_for: 1d
"""
BASE = "e2e/base:1"
"""busybox; kept by `images.keep[0]`: every container below runs it unless said otherwise."""
STAY = {"gc.keep": "true"}
"""The label `containers.keep[0]` and `volumes.keep[0]` keep by."""
SLEEP = "exec sleep 100000"


class Host:
    """The test's engine, policy file and state directory; `t0` is the real time of the
    first plan, which every later `now` counts from."""

    def __init__(
        self,
        engine: PrivateEngine,
        api: docker.APIClient,
        facade: Engine,
        policy_file: Path,
        state_dir: Path,
    ) -> None:
        self.engine, self.api, self.facade = engine, api, facade
        self.policy_file, self.state_dir = policy_file, state_dir
        self._t0: datetime | None = None

    @property
    def t0(self) -> datetime:
        assert self._t0 is not None, "first_plan() first: it starts the clock"
        return self._t0

    @property
    def policy(self) -> Policy:
        return load_policy(self.policy_file)

    def first_plan(self) -> Plan:
        """At the real time, after every object is made: gcd's first sightings of images,
        volumes and networks, and the time later runs count from."""
        self._t0 = datetime.now(UTC)
        return plan_once(self.facade, self.policy, self.state_dir, now=self._t0).plan

    def plan(self, days: float) -> Plan:
        moment = self.t0 + timedelta(days=days)
        return plan_once(self.facade, self.policy, self.state_dir, now=moment).plan

    def run(self, days: float) -> RunResult:
        moment = self.t0 + timedelta(days=days)
        return run_once(self.facade, self.policy, self.state_dir, now=moment)

    def container(self, name: str, command: str = "true", **options: Any) -> str:
        return make_container(self.api, options.pop("image", BASE), command, name=name, **options)

    def stopped_service(self, name: str, **options: Any) -> str:
        """A service stopped by hand (`docker stop`): its restart policy does not restart it."""
        container_id = self.container(name, SLEEP, start=False, restart="unless-stopped", **options)
        self.api.start(container_id)
        self.api.stop(container_id, timeout=0)
        self.api.wait(container_id, timeout=60)
        return container_id


@pytest.fixture
def made_networks() -> list[str]:
    return []


@pytest.fixture
def host(
    clean_engine: PrivateEngine, api: docker.APIClient, made_networks: list[str], tmp_path: Path
) -> Iterator[Host]:
    """The engine with `e2e/base:1` alone (no containers, volumes, test networks), before and
    after; the policy above in a file, as `gcd check` and the command read it."""
    remove_all(api, made_networks)
    load(api, image(runnable_layer(), tags=(BASE,)))
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(POLICY)
    facade = Engine(clean_engine.host)
    yield Host(clean_engine, api, facade, policy_file, tmp_path / "state")
    facade.close()
    remove_all(api, made_networks)


def of_kind(plan: Plan, kind: Kind) -> dict[str, Decision]:
    """The plan's decisions of `kind`, by name (anonymous volumes by their generated name)."""
    return {(d.subject.names or (d.key.id,))[0]: d for d in plan.decisions if d.key.kind is kind}


def decided(plan: Plan, kind: Kind) -> dict[str, tuple[RuleId, str]]:
    return {name: (d.rule, d.detail) for name, d in of_kind(plan, kind).items()}


def removed(result: RunResult, kind: Kind) -> set[str]:
    by_id = {d.key: (d.subject.names or (d.key.id,))[0] for d in result.plan.decisions}
    return {
        by_id[o.key]
        for o in result.report.outcomes
        if o.key.kind is kind and o.status is OutcomeStatus.REMOVED
    }


SERVICE_NOT_NAMED = "a service; containers.remove_services_named does not name it"


@pytest.mark.core
def test_containers_go_by_exit_time_unless_a_keep_rule_or_a_service_holds(host: Host) -> None:
    load(host.api, image(runnable_layer(), layer(64 * 1024, "pinned"), tags=("e2e/pinned:1",)))
    host.container("job-exited")
    host.container("job-never", start=False)
    host.container("keep-labelled", labels=STAY)
    host.container("db-main")
    host.container("pinned", image="e2e/pinned:1")
    host.stopped_service("web")
    host.container("shop-app", labels={"com.docker.compose.project": "shop"})
    host.stopped_service("ci-svc-db")
    sleeper = host.container("sleeper", SLEEP, start=False)
    host.api.start(sleeper)
    started = host.api.inspect_container(sleeper)["State"]["StartedAt"]
    host.first_plan()

    kept = {
        "keep-labelled": (RuleId.LABEL, "containers.keep[0] label gc.keep=true"),
        "db-main": (RuleId.NAME, "containers.keep[1] name db-*"),
        "pinned": (RuleId.IMAGE, "containers.keep[2] image e2e/pinned:*"),
        "web": (RuleId.SERVICE, f"restart policy unless-stopped: {SERVICE_NOT_NAMED}"),
        "shop-app": (RuleId.SERVICE, f"Compose project shop: {SERVICE_NOT_NAMED}"),
        "sleeper": (RuleId.ACTIVE, "running"),
    }
    young = decided(host.plan(days=1), Kind.CONTAINER)
    assert young == {
        **kept,
        "job-exited": (RuleId.EXITED_WITHIN, "exited 1d ago; remove_exited_after 2d"),
        "job-never": (
            RuleId.EXITED_WITHIN,
            "created 1d ago, never started; remove_exited_after 2d",
        ),
        "ci-svc-db": (RuleId.EXITED_WITHIN, "exited 1d ago; remove_exited_after 2d"),
    }

    result = host.run(days=3)

    assert decided(result.plan, Kind.CONTAINER) == {
        **kept,
        "job-exited": (RuleId.EXITED, "exited 3d ago; remove_exited_after 2d"),
        "job-never": (RuleId.EXITED, "created 3d ago, never started; remove_exited_after 2d"),
        "ci-svc-db": (RuleId.EXITED, "exited 3d ago; remove_exited_after 2d"),
    }
    assert removed(result, Kind.CONTAINER) == {"job-exited", "job-never", "ci-svc-db"}
    assert not result.report.failed
    assert container_names(host.api) == set(kept)
    running = host.api.inspect_container(sleeper)["State"]
    assert (running["Running"], running["StartedAt"]) == (True, started), "never touched"

    # `gcd test-pattern` on the same file says what the plan decided, offline.
    for name, options in {
        "db-main": ("--image", BASE),
        "pinned": ("--image", "e2e/pinned:1"),
        "ci-svc-db": ("--image", BASE, "--restart-policy", "unless-stopped"),
    }.items():
        said = gcd(
            "unix:///nonexistent",
            host.state_dir,
            "test-pattern",
            str(host.policy_file),
            "--container",
            name,
            *options,
        )
        assert said.returncode == 0, said.stderr
        assert answered_rule(said.stdout) == of_kind(result.plan, Kind.CONTAINER)[name].rule
        assert said.stdout.startswith(f"container {name}: ")


def answered_rule(said: str) -> RuleId:
    """The rule `gcd test-pattern` answers with: the rule that keeps (`kept by …`, before the
    conditional rules said `earlier`), else the one after `otherwise`."""
    answer = said.partition("; otherwise ")[2] or said.partition("; earlier, ")[0]
    (first, *_) = re.findall(r"\((keep\.\w+|delete\.\w+)\)", answer)
    return RuleId(first)


def df_bytes(api: docker.APIClient) -> dict[str, Any]:
    """What the engine's own `GET /system/df` says each kind holds."""
    df = api.df()
    return {
        "layers": int(df.get("LayersSize") or 0),
        "containers": {c["Id"]: int(c.get("SizeRw") or 0) for c in df.get("Containers") or ()},
        "volumes": {
            v["Name"]: int((v.get("UsageData") or {}).get("Size") or 0)
            for v in df.get("Volumes") or ()
        },
        "build_cache": {
            r["ID"]: int(r.get("Size") or 0) for r in df.get("BuildCache") or () if not r["Shared"]
        },
    }


@pytest.mark.core
def test_a_container_and_the_image_it_alone_used_go_in_one_run_both_counted(
    host: Host,
) -> None:
    load(host.api, image(runnable_layer(), layer(300 * 1024, "app"), tags=("e2e/app:1",)))
    unloaded = df_bytes(host.api)["layers"]
    job = host.container("job-app", "head -c 100000 /dev/zero > /written", image="e2e/app:1")
    # The containerd store counts containers' snapshots in LayersSize too (docs/engines.md);
    # a graphdriver engine and Podman do not: 0 there.
    container_in_layers = df_bytes(host.api)["layers"] - unloaded
    app_id = host.api.inspect_image("e2e/app:1")["Id"]
    host.first_plan()
    assert of_kind(host.plan(days=3), Kind.IMAGE)["e2e/app:1"].rule is RuleId.UNKEPT
    before = df_bytes(host.api)

    result = host.run(days=3)

    after = df_bytes(host.api)
    container = of_kind(result.plan, Kind.CONTAINER)["job-app"]
    app = of_kind(result.plan, Kind.IMAGE)["e2e/app:1"]
    assert (container.rule, app.rule) == (RuleId.EXITED, RuleId.UNKEPT)
    assert app.detail.endswith("; released by container job-app (exited), removed first")
    assert of_kind(result.plan, Kind.IMAGE)[BASE].rule is RuleId.REFERENCE
    assert [d.key for d in result.plan.deletions] == [container.key, app.key], "container first"
    statuses = [(o.key, o.status) for o in result.report.outcomes]
    assert statuses == [(container.key, OutcomeStatus.REMOVED), (app.key, OutcomeStatus.REMOVED)]
    assert "job-app" not in container_names(host.api)
    assert app_id not in {i["Id"] for i in host.api.images()}
    # Both counted: the container's writable layer (the engine's SizeRw) and the image's own
    # layers (the engine's LayersSize drop; the busybox layer stays with e2e/base:1).
    assert container.freed_bytes == before["containers"][job] >= 100_000
    layers_freed = before["layers"] - after["layers"] - container_in_layers
    assert layers_freed >= 300 * 1024
    assert abs(app.freed_bytes - layers_freed) <= layers_freed * 0.01
    assert result.freed_bytes == container.freed_bytes + app.freed_bytes == result.plan.freed_bytes


@pytest.mark.core
def test_volumes_in_use_released_named_and_anonymous(host: Host) -> None:
    holder = host.container(
        "holder", labels=STAY, binds={"ci-cache-held": {"bind": "/data"}}, anonymous=("/anon",)
    )
    job = host.container("job-vol", "head -c 50000 /dev/zero > /anon/f", anonymous=("/anon",))
    held, released = anonymous_volume_of(host.api, holder), anonymous_volume_of(host.api, job)
    host.api.create_volume("ci-cache-idle")
    host.api.create_volume("data-idle")
    host.api.create_volume("ci-cache-pinned", labels=STAY)
    host.first_plan()

    first = host.run(days=3)

    assert decided(first.plan, Kind.VOLUME) == {
        "ci-cache-held": (RuleId.IN_USE, "mounted by container holder (exited)"),
        held: (RuleId.IN_USE, "mounted by container holder (exited)"),
        released: (
            RuleId.UNUSED_WITHIN,
            "mounted by container job-vol (exited), removed first; volumes.anonymous_unused_for 1w",
        ),
        "ci-cache-idle": (RuleId.UNUSED_WITHIN, "unused for 3d; volumes.named_unused_for 2w"),
        "data-idle": (RuleId.NAMED, "named; no volumes.named pattern names it"),
        "ci-cache-pinned": (RuleId.LABEL, "volumes.keep[0] label gc.keep=true"),
    }
    assert removed(first, Kind.CONTAINER) == {"job-vol"}
    assert not removed(first, Kind.VOLUME)
    everything = {"ci-cache-held", held, released, "ci-cache-idle", "data-idle", "ci-cache-pinned"}
    assert volume_names(host.api) == everything, "the container went without its volume"
    sizes = df_bytes(host.api)["volumes"]
    assert sizes[released] >= 50_000

    # Last used at +3d, when its container went: unused for 17 days at +20d.
    later = host.run(days=20)

    volumes = decided(later.plan, Kind.VOLUME)
    assert volumes[released] == (
        RuleId.UNUSED,
        "unused for 2w; volumes.anonymous_unused_for 1w",  # 17 days,
    )
    assert volumes["ci-cache-idle"] == (
        RuleId.UNUSED,
        "unused for 2w; volumes.named_unused_for 2w",  # 20 days,
    )
    assert {n: r for n, (r, _) in volumes.items() if not r.deletes} == {
        "ci-cache-held": RuleId.IN_USE,
        held: RuleId.IN_USE,
        "data-idle": RuleId.NAMED,
        "ci-cache-pinned": RuleId.LABEL,
    }
    assert removed(later, Kind.VOLUME) == {released, "ci-cache-idle"}
    assert volume_names(host.api) == everything - {released, "ci-cache-idle"}
    assert later.freed_bytes == sizes[released] + sizes["ci-cache-idle"]


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
    assert by_name["volume", anonymous]["volume"] == {
        "name": anonymous,
        "anonymous": True,
        "driver": "local",
    }
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
    rows = [[cell.strip() for cell in re.split("[┃│]", line)] for line in table.stdout.splitlines()]
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
