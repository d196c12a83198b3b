"""On a real engine, keep patterns that can never match are refused before anything is deleted,
and `gcd plan` warns of those that match no current image (issue 11: `t/app`, `.*`, `T/App:*`
and `regex:` were accepted and the plan deleted 5 of 5 images with no warning)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import docker
import pytest

from gcd.core.references import parse_reference
from gcd.errors import ExitCode
from tests.figures import Figure, record
from tests.integration.gcd_command import gcd
from tests.integration.harness import PrivateEngine
from tests.integration.images import image, layer, load
from tests.integration.state_seed import engine_state

OLD = datetime(2026, 1, 1, tzinfo=UTC)
TAGS = tuple(f"t/app:{n}" for n in range(1, 6))
NEVER = {"t/app": "4:19", "T/App:*": "5:19", ".*": "6:19", "regex:": "7:19"}


@pytest.fixture
def five(clean_engine: PrivateEngine, api: docker.APIClient, tmp_path: Path) -> Path:
    """Five images of t/app, seen long ago; returns the state directory that says so."""
    specs = [image(layer(500, f"never-{tag}"), tags=(tag,), created=OLD) for tag in TAGS]
    state_dir = tmp_path / "state"
    state = engine_state(api, state_dir)
    for image_id in load(api, *specs):
        state.mark_seen(image_id, OLD)
    state.save()
    return state_dir


def present(api: docker.APIClient) -> set[str]:
    return {parse_reference(t).familiar for i in api.images() for t in i.get("RepoTags") or ()}


@pytest.mark.core
def test_patterns_that_can_never_match_are_refused_and_nothing_is_deleted(
    clean_engine: PrivateEngine, five: Path, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "safety: {min_age: 1s, max_delete_fraction: 1}\nimages:\n  keep:\n"
        + "".join(f'    - reference: ["{pattern}"]\n' for pattern in NEVER)
    )
    for command in (("check", str(policy)), ("run", "--once", "--policy", str(policy))):
        result = gcd(clean_engine.host, five, *command)
        assert result.returncode == ExitCode.BAD_POLICY_OR_USAGE, result.stderr
        for where in NEVER.values():
            assert f"{policy}:{where}: " in result.stderr
        assert "can never match" in result.stderr
    gone = set(TAGS) - present(api)  # an independent look at the engine
    assert gone == set()
    record(
        Figure(
            area="bad policy",
            scenario="never-matching keep patterns, gcd run",
            at_risk=len(TAGS),
            wrongly_removed=len(gone),
            inputs=len(NEVER),
        )
    )


@pytest.mark.core
def test_plan_warns_of_a_keep_pattern_that_matches_no_current_image(
    clean_engine: PrivateEngine, five: Path, api: docker.APIClient, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "safety: {min_age: 1s, max_delete_fraction: 1}\nimages:\n  keep:\n"
        '    - reference: ["t/ap:*"]\n'  # the typo: valid, matches none of the five
        '    - reference: ["t/app:5"]\n'
    )
    result = gcd(clean_engine.host, five, "--log-format", "json", "plan", "--policy", str(policy))
    assert result.returncode == ExitCode.OK, result.stderr
    assert (
        f"gcd: warning: {policy}:4:19: images.keep[0].reference[0]: 't/ap:*' matches no image "
        "on the engine now"
    ) in result.stderr
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    (warning,) = [e for e in events if e["event"] == "keep_pattern_matches_nothing"]
    assert (warning["line"], warning["column"], warning["pattern"]) == (4, 19, "t/ap:*")
    assert "t/app:5" not in result.stderr  # the pattern that matches is not warned of
    assert present(api) == set(TAGS)  # a plan deletes nothing
