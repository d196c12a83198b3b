"""Every kind end to end on the real engine: a policy file with every section → `plan_once` /
`run_once` (or the `gcd` command) → the plan's decisions (rule ids and details) and the
engine's state afterwards. The engine-level pieces (reading, removing, races) are tested in
test_containers_volumes.py and test_build_cache_networks.py; here they are composed.

Here: containers, images and volumes; build cache, networks and the `gcd` command are in
test_kinds_cache_networks_command.py, with the same policy (kinds_host.py).

Objects cannot be made days apart in a quick test, so the runs are made at `now`s in the
future (`plan_once`/`run_once` take `now`): a first plan at the real time records what gcd
first saw, as a daemon would; later runs at `+1d`, `+3d`, `+20d` find the same objects that
much older. The `gcd` command has no `now`: its test uses the same policy with 1-second
durations and waits (bounded) until the objects are older than that."""

from __future__ import annotations

import re

import pytest

from gcd.core.kind import Kind
from gcd.core.rules import RuleId
from gcd.engine.outcomes import OutcomeStatus
from tests.integration.gcd_command import gcd
from tests.integration.images import image, layer, load, runnable_layer
from tests.integration.kinds_host import (
    BASE,
    SLEEP,
    STAY,
    Host,
    decided,
    df_bytes,
    host,
    made_networks,
    of_kind,
    removed,
)
from tests.integration.objects import (
    anonymous_volume_of,
    container_names,
    volume_names,
)

__all__ = ["host", "made_networks"]  # fixtures

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
    # A pattern names it, but its data is a tmpfs mount, not the engine's: never removed.
    host.api.create_volume("ci-cache-tmpfs", driver_opts={"type": "tmpfs", "device": "tmpfs"})
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
        "ci-cache-tmpfs": (RuleId.EXTERNAL, "driver options: its data is not the engine's to free"),
    }
    assert removed(first, Kind.CONTAINER) == {"job-vol"}
    assert not removed(first, Kind.VOLUME)
    everything = {
        "ci-cache-held",
        held,
        released,
        "ci-cache-idle",
        "data-idle",
        "ci-cache-pinned",
        "ci-cache-tmpfs",
    }
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
        "ci-cache-tmpfs": RuleId.EXTERNAL,
    }
    assert removed(later, Kind.VOLUME) == {released, "ci-cache-idle"}
    assert volume_names(host.api) == everything - {released, "ci-cache-idle"}
    assert later.freed_bytes == sizes[released] + sizes["ci-cache-idle"]
