"""Policy files: the example loads as documented; every kind of mistake is located exactly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from gcd.config import load_policy, parse_policy
from gcd.errors import PolicyError
from gcd.rules import RuleId

EXAMPLE = Path(__file__).resolve().parents[2] / "policy.example.yaml"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_example_policy_loads_as_documented() -> None:
    policy = load_policy(EXAMPLE)
    assert policy.safety.min_age == timedelta(hours=1)
    assert policy.safety.max_deletions_per_run == 500
    assert policy.safety.max_delete_fraction == 0.9
    assert policy.images is not None
    rules = policy.images.keep
    assert [r.rule_id for r in rules] == [
        RuleId.LABEL,
        RuleId.REFERENCE,
        RuleId.NEWEST,
        RuleId.NEWEST,
        RuleId.YOUNGER_THAN,
    ]
    assert rules[0].labels == {"gc.keep": "true"}
    assert [p.text for p in rules[1].references] == ["alpine:*", "debian:*", "**/base/*:*"]
    assert rules[2].newest == 10
    assert rules[4].younger_than == timedelta(days=7)
    assert policy.images.dangling.keep_within == timedelta(hours=1)
    assert policy.schedule.every == timedelta(minutes=30)
    assert policy.schedule.jitter == timedelta(minutes=2)
    assert policy.schedule.disk is not None
    assert (policy.schedule.disk.high, policy.schedule.disk.low) == (0.85, 0.70)


@pytest.mark.parametrize("text", ["", "# nothing\n", "{}\n", "version: 1\n"])
def test_an_empty_policy_touches_no_image(text: str) -> None:
    assert parse_policy(text, "p.yaml").images is None


def test_unknown_keys_get_a_suggestion() -> None:
    assert problems("version: 1\nimages:\n  kep: []\n") == [
        "p.yaml:3:3: images.kep: unknown key; did you mean `keep`?"
    ]


def test_a_nested_unknown_key_is_located_at_the_key() -> None:
    text = "version: 1\nimages:\n  keep:\n    - label: {a: b}\n      newst: 3\n"
    assert problems(text) == [
        "p.yaml:5:7: images.keep[0].newst: unknown key; did you mean `newest`?"
    ]


def test_all_problems_are_reported_at_once() -> None:
    text = (
        "version: 1\n"
        "safety:\n"
        "  min_age: soon\n"
        "  max_delete_fraction: 150%\n"
        "images:\n"
        "  keep:\n"
        "    - newest: ten\n"
        "    - newest: 0\n"
        "    - {}\n"
    )
    assert problems(text) == [
        "p.yaml:3:12: safety.min_age: expected a duration such as 30s, 15m, 1h, 7d or 2w, "
        "got 'soon'",
        "p.yaml:4:24: safety.max_delete_fraction: expected a share above 0 and at most 1 "
        "(100%), got '150%'",
        "p.yaml:7:15: images.keep[0].newest: expected a whole number, got 'ten'",
        "p.yaml:8:15: images.keep[1].newest: expected a whole number ≥ 1, got 0",
        "p.yaml:9:7: images.keep[2]: a keep rule needs at least one of label, reference, "
        "newest, younger_than, used_within",
    ]


def test_an_invalid_pattern_is_an_error_not_a_silent_non_match() -> None:
    (problem,) = problems("images:\n  keep:\n    - reference: ['ok:*', 'regex:(']\n")
    assert problem.startswith("p.yaml:3:27: images.keep[0].reference[1]: invalid pattern")


def test_a_wrong_version_is_named() -> None:
    assert problems("version: 2\n") == ["p.yaml:1:10: version: expected 1, got 2"]


def test_yaml_syntax_errors_have_a_position() -> None:
    (problem,) = problems("version: 1\nimages: {keep: [}\n")
    assert problem.startswith("p.yaml:2:")
    assert "invalid YAML" in problem


def test_duplicate_keys_are_errors() -> None:
    (problem,) = problems("version: 1\nsafety:\n  min_age: 1h\n  min_age: 2h\n")
    assert problem == "p.yaml:4:3: safety.min_age: duplicate key"


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy"):
        load_policy(tmp_path / "absent.yaml")


def test_schedule_takes_every_or_cron_not_both() -> None:
    (problem,) = problems("schedule:\n  every: 1h\n  cron: '0 * * * *'\n")
    assert "either every or cron" in problem
    (problem,) = problems("schedule:\n  cron: 'not a cron'\n")
    assert problem.startswith("p.yaml:2:9: schedule.cron: expected a crontab line")


def test_watermarks_must_be_ordered() -> None:
    (problem,) = problems("schedule:\n  disk: {high: 70%, low: 80%}\n")
    assert problem == "p.yaml:2:9: schedule.disk: low (80%) must be below high (70%)"


def test_label_values_may_be_unquoted() -> None:
    policy = parse_policy("images:\n  keep:\n    - label: {gc.keep: true}\n", "p.yaml")
    assert policy.images is not None
    assert policy.images.keep[0].labels == {"gc.keep": "true"}
