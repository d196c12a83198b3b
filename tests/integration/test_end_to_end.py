"""The `gcd` command end to end on the sample build host, with policy.example.yaml."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import docker
import pytest

from gcd.core.references import parse_reference
from gcd.core.rules import RuleId
from gcd.errors import ExitCode
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.sample_host import SampleHost, seed

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policy.example.yaml"


def as_json(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


@pytest.fixture
def sample(clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path) -> SampleHost:
    return seed(api, tmp_path / "state")


def layers_size(api: docker.APIClient) -> int:
    return int(api.df()["LayersSize"])


@pytest.mark.core
def test_the_example_policy_decides_every_sample_image_by_the_expected_rule(
    clean_engine: PrivateEngine, sample: SampleHost, tmp_path: Path
) -> None:
    document = as_json(
        gcd(clean_engine.host, tmp_path / "state", "plan", "--policy", str(EXAMPLE), "-o", "json")
    )
    # The example policy collects images only: the other kinds are listed, and kept.
    images = [d for d in document["decisions"] if d["kind"] == "image"]
    decided = {d["id"]: d["rule"] for d in images}
    expected = {image_id: s.expected.value for image_id, s in sample.ids.items()}
    assert all(d["action"] == "keep" for d in document["decisions"] if d["kind"] != "image")
    assert decided == expected
    assert document["summary"]["delete"] == sum(
        1 for s in sample.images if RuleId(s.expected).deletes
    )


def test_format_1_is_still_there_for_one_release_and_decides_the_same(
    clean_engine: PrivateEngine, sample: SampleHost, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    latest = as_json(gcd(clean_engine.host, state, "plan", "--policy", str(EXAMPLE), "-o", "json"))
    first = as_json(
        gcd(
            clean_engine.host,
            state,
            "plan",
            "--policy",
            str(EXAMPLE),
            "-o",
            "json",
            "--format-version",
            "1",
        )
    )
    assert (latest["format"], latest["document"], first["format"], first["kind"]) == (
        2,
        "plan",
        1,
        "plan",
    )
    assert {d["id"]: d["rule"] for d in first["decisions"]} == {
        d["id"]: d["rule"] for d in latest["decisions"] if d["kind"] == "image"
    }
    assert first["summary"]["images"] == latest["summary"]["by_kind"]["image"]["objects"]


def test_plan_deletes_nothing(
    clean_engine: PrivateEngine, sample: SampleHost, api: docker.APIClient, tmp_path: Path
) -> None:
    before = sorted(i["Id"] for i in api.images())
    table = gcd(clean_engine.host, tmp_path / "state", "plan", "--policy", str(EXAMPLE))
    assert table.returncode == 0, table.stderr
    assert "delete.unkept" in table.stdout
    assert "keep.in_use" in table.stdout
    assert sorted(i["Id"] for i in api.images()) == before


@pytest.mark.core
def test_run_once_frees_exactly_what_the_plan_predicted(
    clean_engine: PrivateEngine, sample: SampleHost, api: docker.APIClient, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    plan = as_json(gcd(clean_engine.host, state, "plan", "--policy", str(EXAMPLE), "-o", "json"))
    before = layers_size(api)
    run = as_json(
        gcd(clean_engine.host, state, "run", "--once", "--policy", str(EXAMPLE), "-o", "json")
    )
    after = layers_size(api)
    freed = before - after
    assert run["result"]["by_status"]["removed"] == plan["summary"]["delete"]
    assert run["result"]["freed_bytes"] == plan["summary"]["freed_bytes"]
    assert freed > 0
    assert abs(run["result"]["freed_bytes"] - freed) <= freed * 0.01

    remaining = {i["Id"] for i in api.images()}
    for image_id, sample_image in sample.ids.items():
        assert (image_id in remaining) is not RuleId(sample_image.expected).deletes, sample_image
    # The image only a stopped container uses keeps all its tags, and both containers live.
    tags = api.inspect_image("ci/migrate:old")["RepoTags"]
    assert [parse_reference(tag).familiar for tag in tags] == ["ci/migrate:old"]
    assert {c["Id"] for c in api.containers(all=True)} == {sample.running, sample.stopped}


@pytest.mark.core
def test_a_second_run_has_nothing_left_to_do(
    clean_engine: PrivateEngine, sample: SampleHost, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    first = gcd(clean_engine.host, state, "run", "--once", "--policy", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    second = as_json(
        gcd(clean_engine.host, state, "run", "--once", "--policy", str(EXAMPLE), "-o", "json")
    )
    assert second["outcomes"] == []
    assert second["result"]["freed_bytes"] == 0


def test_run_logs_one_event_per_removal_and_one_summary(
    clean_engine: PrivateEngine, sample: SampleHost, tmp_path: Path
) -> None:
    result = gcd(
        clean_engine.host,
        tmp_path / "state",
        "--log-format",
        "json",
        "run",
        "--once",
        "--policy",
        str(EXAMPLE),
    )
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    removed = [e for e in events if e["event"] == "image_removed"]
    assert len(removed) == sum(1 for s in sample.images if RuleId(s.expected).deletes)
    assert all(e["rule"].startswith("delete.") for e in removed)
    assert [e["event"] for e in events].count("run_finished") == 1


BAD_POLICIES = {
    "unknown key": ("version: 1\nimages:\n  kep: []\n", "3:3", "images.kep"),
    "bad duration": ("version: 1\nsafety:\n  min_age: soon\n", "3:12", "safety.min_age"),
    "bad pattern": (
        "version: 1\nimages:\n  keep:\n    - reference: ['regex:(']\n",
        "4:19",
        "images.keep[0].reference",
    ),
    "syntax": ("version: 1\nimages: [\n", "", ""),
}


@pytest.mark.parametrize("case", sorted(BAD_POLICIES))
def test_a_bad_policy_is_reported_with_its_position_and_deletes_nothing(
    case: str,
    clean_engine: PrivateEngine,
    sample: SampleHost,
    api: docker.APIClient,
    tmp_path: Path,
) -> None:
    text, position, field = BAD_POLICIES[case]
    policy = tmp_path / "bad.yaml"
    policy.write_text(text)
    before = sorted(i["Id"] for i in api.images())
    for command in (("check", str(policy)), ("run", "--once", "--policy", str(policy))):
        result = gcd(clean_engine.host, tmp_path / "state", *command)
        assert result.returncode == ExitCode.BAD_POLICY_OR_USAGE, result.stderr
        assert f"{policy}:{position}" in result.stderr
        assert field in result.stderr
    assert sorted(i["Id"] for i in api.images()) == before


def test_an_unreachable_engine_has_its_own_exit_code(tmp_path: Path) -> None:
    result = gcd(
        f"unix://{tmp_path}/none.sock", tmp_path / "state", "plan", "--policy", str(EXAMPLE)
    )
    assert result.returncode == ExitCode.ENGINE_UNREACHABLE
    assert "cannot reach the Docker engine" in result.stderr


def test_a_refused_run_deletes_nothing_and_exits_4(
    clean_engine: PrivateEngine, sample: SampleHost, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "strict.yaml"
    policy.write_text("version: 1\nsafety:\n  max_delete_fraction: 0.1\nimages:\n  keep: []\n")
    before = sorted(i["Id"] for i in api.images())
    result = gcd(clean_engine.host, tmp_path / "state", "run", "--once", "--policy", str(policy))
    assert result.returncode == ExitCode.RUN_REFUSED
    assert "max_delete_fraction" in result.stderr
    assert sorted(i["Id"] for i in api.images()) == before


def test_test_pattern_answers_offline(tmp_path: Path) -> None:
    result = gcd(
        "unix:///nonexistent",
        tmp_path / "state",
        "test-pattern",
        str(EXAMPLE),
        "alpine:3.19",
        "docker.io/library/debian:12",
        "registry.example.com/team/app:v7",
        "Not/Valid",
    )
    lines = result.stdout.splitlines()
    assert lines[0].startswith("alpine:3.19: kept by images.keep[1] reference")
    assert "(keep.reference)" in lines[1]
    assert "kept only by" in lines[2]
    assert "images.keep[2]" in lines[2]
    assert "keep.newest" in lines[2]
    assert "error" in lines[3]
    assert result.returncode == ExitCode.BAD_POLICY_OR_USAGE


def test_max_deletions_per_run_leaves_the_rest_for_the_next_run(
    clean_engine: PrivateEngine, sample: SampleHost, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "limited.yaml"
    policy.write_text(
        EXAMPLE.read_text().replace("max_deletions_per_run: 500", "max_deletions_per_run: 2")
    )
    state = tmp_path / "state"
    run = as_json(
        gcd(clean_engine.host, state, "run", "--once", "--policy", str(policy), "-o", "json")
    )
    deletable = sum(1 for s in sample.images if RuleId(s.expected).deletes)
    assert run["result"]["by_status"]["removed"] == 2
    assert run["summary"]["by_rule"]["keep.run_limit"] == deletable - 2
    remaining = {i["Id"] for i in api.images()}
    assert len(remaining) == len(sample.images) - 2
    deferred = [d["id"] for d in run["decisions"] if d["rule"] == "keep.run_limit"]
    assert all(image_id in remaining for image_id in deferred)
