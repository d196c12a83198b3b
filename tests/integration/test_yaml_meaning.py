"""On a real engine, a label rule keeps the image whose label it spells (issue 8, part 1).

YAML 1.1 read `release: 1.10` as the float 1.1, `NO` as false, `0755` as 493 and the key `on`
as true: gcd then kept the wrong images and deleted the ones the rules were written for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from gcd.core.references import parse_reference
from gcd.errors import ExitCode
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)  # well past `min_age: 1s`

# The issue's policy, as filed.
ISSUE_POLICY = """\
version: 1
safety: {min_age: 1s, max_delete_fraction: 1}
images:
  keep:
    - label: {release: 1.10}    # read as the float 1.1 -> "1.1"
    - label: {country: NO}      # read as false -> "false"
    - label: {mode: 0755}       # read as octal -> "493"
    - label: {on: "yes"}        # the KEY becomes True -> "True"
"""
QUOTED_POLICY = """\
version: 1
safety: {min_age: 1s, max_delete_fraction: 1}
images:
  keep:
    - label: {release: "1.10"}
    - label: {country: "NO"}
    - label: {mode: "0755"}
    - label: {"on": "yes"}
"""

LABELLED = {
    "labelled/release:1.10": {"release": "1.10"},
    "labelled/country:no": {"country": "NO"},
    "labelled/mode:0755": {"mode": "0755"},
    "labelled/on:yes": {"on": "yes"},
}
DECOY = ("labelled/release:1.1", {"release": "1.1"})  # what YAML 1.1 made of `release: 1.10`


@pytest.fixture
def labelled(clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path) -> Path:
    """The five images, seen long ago; returns the state directory that says so."""
    specs = [
        image(layer(1000, f"yaml-{tag}"), tags=(tag,), created=OLD, labels=labels)
        for tag, labels in [*LABELLED.items(), DECOY]
    ]
    state_dir = tmp_path / "state"
    state = engine_state(api, state_dir)
    for image_id in load(api, *specs):
        state.mark_seen(image_id, OLD)
    state.save()
    return state_dir


def present(api: docker.APIClient) -> set[str]:
    """The familiar tags on the engine (Podman qualifies them: docker.io/labelled/...)."""
    return {parse_reference(t).familiar for i in api.images() for t in i.get("RepoTags") or ()}


@pytest.mark.core
def test_the_issues_unquoted_policy_is_refused_and_deletes_nothing(
    clean_engine: PrivateEngine, labelled: Path, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "issue.yaml"
    policy.write_text(ISSUE_POLICY)
    for command in (("check", str(policy)), ("run", "--once", "--policy", str(policy))):
        result = gcd(clean_engine.host, labelled, *command)
        assert result.returncode == ExitCode.BAD_POLICY_OR_USAGE, (result.stdout, result.stderr)
        for where in ("5:24", "6:24", "7:21", "8:15"):
            assert f"{policy}:{where}: " in result.stderr
    assert present(api) == {*LABELLED, DECOY[0]}


@pytest.mark.core
def test_the_quoted_policy_keeps_exactly_the_labelled_images(
    clean_engine: PrivateEngine, labelled: Path, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "quoted.yaml"
    policy.write_text(QUOTED_POLICY)
    check = gcd(clean_engine.host, labelled, "check", str(policy))
    assert check.returncode == ExitCode.OK, check.stderr
    run = gcd(clean_engine.host, labelled, "run", "--once", "--policy", str(policy))
    assert run.returncode == ExitCode.OK, run.stderr
    assert present(api) == set(LABELLED)
