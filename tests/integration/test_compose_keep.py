"""On a real engine, `images.keep[i].compose` keeps what Compose files name with no container
(a stack down between deploys), a build-only service's default image too; a broken file keeps
every named image and is reported (issue 12, Compose)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gcd.core.references import parse_reference
from gcd.errors import ExitCode
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)
NAMED = ("shop/web:1", "stacka-api:latest", "stackb/db:2")
"""`image: shop/web:${TAG:-1}`, stacka's build-only `api` (Compose v2's name), stackb's db."""
UNDECLARED = ("shop/web:0", "other/junk:1")


@pytest.fixture
def stacks(clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path) -> Path:
    """The five images, seen long ago, no container; two stacks' files. The state dir."""
    specs = [image(layer(400, f"compose-{t}"), tags=(t,), created=OLD) for t in NAMED + UNDECLARED]
    state_dir = tmp_path / "state"
    state = engine_state(api, state_dir)
    for image_id in load(api, *specs):
        state.mark_seen(image_id, OLD)
    state.save()
    (tmp_path / "srv" / "stacka").mkdir(parents=True)
    (tmp_path / "srv" / "stackb").mkdir()
    (tmp_path / "srv" / "stacka" / "compose.yaml").write_text(
        "services:\n"
        "  web:\n    image: shop/web:${TAG:-1}\n    profiles: [prod]\n"
        "  api:\n    build: ./api\n"
    )
    (tmp_path / "srv" / "stackb" / "compose.yaml").write_text(
        "services:\n  db:\n    image: stackb/db:${DB}\n"
    )
    (tmp_path / "srv" / "stackb" / ".env").write_text("DB=2\n")
    return state_dir


def policy_for(tmp_path: Path) -> Path:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "safety: {min_age: 1s, max_delete_fraction: 1}\nimages:\n  keep:\n"
        f'    - compose: ["{tmp_path}/srv/*/compose.yaml", "{tmp_path}/typo/*/compose.yml"]\n'
    )
    return policy


def present(api: docker.APIClient) -> set[str]:
    return {parse_reference(t).familiar for i in api.images() for t in i.get("RepoTags") or ()}


def metrics(path: Path) -> dict[tuple[str, str], float]:
    return {
        (sample.name, sample.labels.get("state", "")): sample.value
        for family in text_string_to_metric_families(path.read_text())
        for sample in family.samples
        if sample.name.startswith("gcd_compose")
    }


@pytest.mark.core
def test_images_compose_files_name_survive_without_containers_and_the_rest_go(
    clean_engine: PrivateEngine, stacks: Path, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = policy_for(tmp_path)
    assert api.containers(all=True) == []
    plan = gcd(clean_engine.host, stacks, "plan", "--policy", str(policy), "--output", "json")
    assert plan.returncode == ExitCode.OK, plan.stderr
    rules = {
        parse_reference(d["names"][0]).familiar: (d["rule"], d["detail"])
        for d in json.loads(plan.stdout)["decisions"]
        if d["kind"] == "image"
    }
    assert {ref for ref, (rule, _) in rules.items() if rule == "keep.compose"} == set(NAMED)
    assert rules["stacka-api:latest"][1].endswith(
        f"named by service api in {tmp_path}/srv/stacka/compose.yaml"
    )
    assert "matches no file now" in plan.stderr  # the typo'd glob, warned of
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    run = gcd(
        clean_engine.host, stacks, "run", "--once", "--policy", str(policy),
        "--textfile", str(textfile),
    )  # fmt: skip
    assert run.returncode == ExitCode.OK, run.stderr
    assert present(api) == set(NAMED)  # an independent look at the engine
    found = metrics(textfile / "gcd.prom")
    assert found[("gcd_compose_files", "ok")] == 2
    assert found[("gcd_compose_files", "failed")] == 0
    assert found[("gcd_compose_globs_unmatched", "")] == 1


@pytest.mark.parametrize("breakage", ["invalid YAML", "FIFO", "unset variable"])
def test_a_broken_compose_file_keeps_every_named_image_and_is_reported(
    clean_engine: PrivateEngine,
    stacks: Path,
    api: docker.APIClient,
    tmp_path: Path,
    breakage: str,
) -> None:
    broken = tmp_path / "srv" / "stacka" / "compose.yaml"
    if breakage == "invalid YAML":
        broken.write_text("services:\n  web: [image: shop/web:1\n")
    elif breakage == "FIFO":  # root reads any mode; a FIFO it must not block on
        broken.unlink()
        os.mkfifo(broken)
    else:  # a service whose image gcd cannot determine: any image it could be
        broken.write_text("services:\n  web:\n    image: ${IMAGE}\n")
    policy = policy_for(tmp_path)
    plan = gcd(clean_engine.host, stacks, "--log-format", "json", "plan", "--policy", str(policy))
    assert plan.returncode == ExitCode.OK, plan.stderr
    events = [json.loads(line) for line in plan.stderr.splitlines() if line.startswith("{")]
    (event,) = [e for e in events if e["event"] == "compose_file_unreadable"]
    assert event["path"] == str(broken)
    assert f"gcd: warning: images.keep[0].compose: {broken}: " in plan.stderr
    textfile = tmp_path / "textfile"
    textfile.mkdir()
    run = gcd(
        clean_engine.host, stacks, "run", "--once", "--policy", str(policy),
        "--textfile", str(textfile),
    )  # fmt: skip
    assert run.returncode == ExitCode.OK, run.stderr
    assert present(api) == set(NAMED + UNDECLARED)  # nothing named is deleted
    found = metrics(textfile / "gcd.prom")
    assert found[("gcd_compose_files", "failed")] == 1
    assert found[("gcd_compose_files", "ok")] == 1
