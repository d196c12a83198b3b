"""Policy files: the example loads as documented; every kind of mistake is located exactly."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from gcd.config.loader import load_policy, parse_policy
from gcd.core.rules import RuleId
from gcd.errors import PolicyError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "policy.example.yaml"


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
    assert [r.index for r in rules] == [0, 1, 2, 3, 4]
    assert rules[0].labels == {"gc.keep": "true"}
    assert [p.text for p in rules[1].references] == ["alpine:*", "debian:*", "**/base/*:*"]
    assert [p.text for p in rules[2].references] == ["registry.example.com/**:v*"]
    assert rules[2].newest == 10
    assert rules[3].newest == 2
    assert rules[3].references == ()
    assert rules[4].younger_than == timedelta(days=7)
    assert policy.source == str(EXAMPLE)
    assert policy.images.dangling.keep_within == timedelta(hours=1)
    assert policy.schedule.every == timedelta(minutes=30)
    assert policy.schedule.jitter == timedelta(minutes=2)
    assert policy.schedule.disk is not None
    assert (policy.schedule.disk.high, policy.schedule.disk.low) == (0.85, 0.70)


@pytest.mark.parametrize("text", ["", "# nothing\n", "{}\n", "version: 1\n", "images:\n"])
def test_an_empty_policy_touches_no_image(text: str) -> None:
    policy = parse_policy(text, "p.yaml")
    assert policy.images is None
    assert policy.safety.min_age == timedelta(hours=1)


def test_unknown_keys_get_a_suggestion_from_their_own_level() -> None:
    assert problems("version: 1\nimages:\n  kep: []\n") == [
        "p.yaml:3:3: images.kep: unknown key; did you mean `keep`?"
    ]
    assert problems("safty: {}\n") == ["p.yaml:1:1: safty: unknown key; did you mean `safety`?"]


def test_a_nested_unknown_key_is_located_at_the_key() -> None:
    text = "version: 1\nimages:\n  keep:\n    - label: {a: b}\n      newst: 3\n"
    assert problems(text) == [
        "p.yaml:5:7: images.keep[0].newst: unknown key; did you mean `newest`?"
    ]


def test_an_unknown_key_with_no_close_match_lists_the_known_keys() -> None:
    assert problems("images:\n  dangling: {ttl: 1h}\n") == [
        "p.yaml:2:14: images.dangling.ttl: unknown key; known keys: keep_within"
    ]


def test_wrong_types_say_what_was_expected_and_found() -> None:
    text = "safety: 3\nimages:\n  keep:\n    - label: [gc.keep]\n    - reference: {a: b}\n"
    assert problems(text) == [
        "p.yaml:1:9: safety: expected a mapping, got 3",
        'p.yaml:4:14: images.keep[0].label: expected a mapping of key: value, got ["gc.keep"]',
        'p.yaml:5:18: images.keep[1].reference: expected a list, got {"a": "b"}',
    ]


@pytest.mark.parametrize("value", ["ten", "0", "-3", "1.5", "true", "[1]"])
def test_newest_is_a_whole_number_from_1(value: str) -> None:
    (problem,) = problems(f"images:\n  keep:\n    - newest: {value}\n")
    shown = '"ten"' if value == "ten" else value
    assert (
        problem == f"p.yaml:3:15: images.keep[0].newest: expected a whole number from 1 to "
        f"1000000, got {shown}"
    )


def test_bad_durations_are_located() -> None:
    assert problems("images:\n  dangling:\n    keep_within: 3 days\n") == [
        "p.yaml:3:18: images.dangling.keep_within: expected a duration such as 30s, 15m, 1h, "
        '7d or 2w, got "3 days"'
    ]


def test_all_problems_are_reported_at_once_in_file_order() -> None:
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
        "  dangling: {keep_within: 1h, keep_within: 2h}\n"
    )
    assert problems(text) == [
        "p.yaml:3:12: safety.min_age: expected a duration such as 30s, 15m, 1h, 7d or 2w, "
        'got "soon"',
        "p.yaml:4:24: safety.max_delete_fraction: expected a share above 0 and at most 1 "
        '(100%), got "150%"',
        'p.yaml:7:15: images.keep[0].newest: expected a whole number from 1 to 1000000, got "ten"',
        "p.yaml:8:15: images.keep[1].newest: expected a whole number from 1 to 1000000, got 0",
        "p.yaml:9:7: images.keep[2]: a keep rule needs at least one of label, reference, "
        "newest, younger_than, used_within, compose",
        "p.yaml:10:31: images.dangling.keep_within: duplicate key",
    ]


def test_an_invalid_pattern_is_an_error_not_a_silent_non_match() -> None:
    (problem,) = problems("images:\n  keep:\n    - reference: ['ok:*', 'regex:(']\n")
    assert problem.startswith("p.yaml:3:27: images.keep[0].reference[1]: invalid pattern")
    (problem,) = problems("images:\n  keep:\n    - reference: ''\n")
    assert problem == "p.yaml:3:18: images.keep[0].reference[0]: empty pattern"


@pytest.mark.parametrize(
    ("rule", "column", "field", "expected"),
    [
        ("label: {}", 14, "label", "at least one `key: value`"),
        ("reference: []", 18, "reference", "at least one pattern"),
    ],
)
def test_an_empty_condition_is_refused_because_it_would_keep_everything(
    rule: str, column: int, field: str, expected: str
) -> None:
    (problem,) = problems(f"images:\n  keep:\n    - {rule}\n")
    assert problem.startswith(f"p.yaml:3:{column}: images.keep[0].{field}: expected {expected}")


def test_a_reference_may_be_one_string_and_patterns_keep_their_order() -> None:
    text = "images:\n  keep:\n    - reference: 'regex:alpine:3\\.[0-9]+'\n    - newest: 1\n"
    policy = parse_policy(text, "p.yaml")
    assert policy.images is not None
    (rule, second) = policy.images.keep
    assert [p.text for p in rule.references] == ["regex:alpine:3\\.[0-9]+"]
    assert (rule.index, second.index) == (0, 1)


def test_a_delete_fraction_may_be_a_percentage() -> None:
    policy = parse_policy("safety: {max_delete_fraction: 25%}\n", "p.yaml")
    assert policy.safety.max_delete_fraction == 0.25


@pytest.mark.parametrize("value", ["0", "0%", "1.5", "true", "lots"])
def test_a_delete_fraction_outside_0_to_1_is_refused(value: str) -> None:
    (problem,) = problems(f"safety:\n  max_delete_fraction: {value}\n")
    assert problem.startswith("p.yaml:2:24: safety.max_delete_fraction: expected a share")


def test_a_wrong_version_is_named() -> None:
    assert problems("version: 2\n") == ["p.yaml:1:10: version: expected 1, got 2"]


def test_yaml_syntax_errors_have_a_position() -> None:
    assert problems("version: 1\nimages: {keep: [}\n") == [
        "p.yaml:2:17: invalid YAML: while parsing a flow node: did not find expected node content"
    ]
    assert problems("version: 1\n  safety: {}\n") == [
        "p.yaml:2:9: invalid YAML: mapping values are not allowed in this context"
    ]


def test_characters_yaml_forbids_have_a_position() -> None:
    assert problems("version: 1\nimages:\x00\n") == [
        "p.yaml:2:8: invalid YAML: unacceptable character #x0000: control characters are not "
        "allowed"
    ]


def test_a_recursive_alias_is_an_error_not_a_crash() -> None:
    # One problem, not also "expected a mapping, got null" for the alias that was cut.
    assert problems("images:\n  keep: &k [*k]\n") == [
        "p.yaml:2:9: images.keep[0]: a YAML alias refers to the collection that contains it",
    ]


def test_the_top_level_must_be_a_mapping() -> None:
    assert problems("- version: 1\n") == [
        "p.yaml:1:1: expected a mapping of settings (version, safety, images, containers, "
        "volumes, build_cache, networks, schedule) at the top, "
        'got [{"version": 1}]'
    ]


def test_duplicate_keys_are_errors() -> None:
    (problem,) = problems("version: 1\nsafety:\n  min_age: 1h\n  min_age: 2h\n")
    assert problem == "p.yaml:4:3: safety.min_age: duplicate key"


def test_a_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:1:1: cannot read the policy: No such file or directory"
    ]


def test_a_file_that_is_not_utf8_is_located(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(
        "version: 1\nimages:\n  keep:\n    - label: {owner: J\u00fcrgen}\n".encode("latin-1")
    )
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:4:23: not UTF-8 text (byte 0xfc); save the policy as UTF-8"
    ]


def test_a_file_is_named_in_its_problems_and_may_start_with_a_bom(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("\ufeffversion: 1\nimages: {}\n", encoding="utf-8")
    policy = load_policy(path)
    assert policy.images is not None
    assert policy.images.keep == ()
    path.write_text("version: 1\nimages:\n  keep:\n    - newest: ten\n", encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    assert str(caught.value) == (
        f'{path}:4:15: images.keep[0].newest: expected a whole number from 1 to 1000000, got "ten"'
    )


def test_schedule_takes_every_or_cron_not_both() -> None:
    (problem,) = problems("schedule:\n  every: 1h\n  cron: '0 * * * *'\n")
    assert "either every or cron" in problem
    (problem,) = problems("schedule:\n  cron: 'not a cron'\n")
    assert problem.startswith("p.yaml:2:9: schedule.cron: expected a crontab line")


def test_watermarks_must_be_ordered() -> None:
    (problem,) = problems("schedule:\n  disk: {high: 70%, low: 80%}\n")
    assert problem == "p.yaml:2:9: schedule.disk: low (80%) must be below high (70%)"


def readme_policy() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Policy reference", 1)[1]
    match = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def test_the_readme_policy_example_is_valid() -> None:
    policy = parse_policy(readme_policy(), "README.md")
    assert policy.images is not None
    assert policy.images.keep[0].labels == {"gc.keep": "true"}
    assert policy.safety.max_deletions_per_run == 500
    assert policy.safety.max_delete_fraction == 0.9


@pytest.mark.parametrize(
    ("value", "fraction"),
    [("0.9", 0.9), ('"90%"', 0.9), ("85%", 0.85), ("1", 1.0), (".5", 0.5), ("1.", 1.0)],
)
def test_fractions_still_read_as_written(value: str, fraction: float) -> None:
    policy = parse_policy(f"safety: {{max_delete_fraction: {value}}}\n", "p.yaml")
    assert policy.safety.max_delete_fraction == fraction


def test_durations_counts_cron_and_paths_still_work() -> None:
    text = (
        "version: 1\n"
        "safety: {min_age: 30s, max_deletions_per_run: 1000}\n"
        "images:\n"
        "  keep:\n"
        "    - {newest: 3, younger_than: 1h}\n"
        "    - reference: alpine:3.19\n"
        "  dangling: {keep_within: 2w}\n"
        "schedule:\n"
        "  cron: '0 * * * *'\n"
        "  disk: {path: /var/lib/docker, high: 85%, low: 0.7}\n"
    )
    policy = parse_policy(text, "p.yaml")
    assert policy.safety.max_deletions_per_run == 1000
    assert policy.images is not None
    assert policy.images.keep[0].newest == 3
    assert [p.text for p in policy.images.keep[1].references] == ["alpine:3.19"]
    assert policy.schedule.cron == "0 * * * *"
    assert policy.schedule.disk is not None
    assert policy.schedule.disk.path == "/var/lib/docker"


@pytest.mark.parametrize("text", ["images:\n", "images: ~\n", "images: null\n", "images: Null\n"])
def test_a_null_images_section_still_means_no_images_section(text: str) -> None:
    assert parse_policy(text, "p.yaml").images is None
