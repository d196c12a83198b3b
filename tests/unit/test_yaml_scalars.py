"""A policy means what it says: plain scalars are read by YAML 1.2 core-schema rules, and
whatever YAML 1.1 reads differently (`NO`, `0755`, `1:30`, `on:`) is refused at its position
with the fix, never coerced. Label keys and values are text."""

from __future__ import annotations

import pytest

from gcd.config.loader import parse_policy
from gcd.core.policy import Policy
from gcd.errors import PolicyError

# The issue's policy, as filed: it passed `gcd check` and kept the wrong images.
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
    - label: {country: 'NO'}
    - label: {mode: "0755"}
    - label: {"on": "yes"}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "p.yaml")
    return [str(p) for p in caught.value.problems]


def labels_of(policy: Policy) -> list[dict[str, str]]:
    assert policy.images is not None
    return [dict(rule.labels) for rule in policy.images.keep]


def label_policy(value: str, key: str = "k") -> str:
    return f"images:\n  keep:\n    - label:\n        {key}: {value}\n"


def count_policy(value: str) -> str:
    return f"images:\n  keep:\n    - newest: {value}\n"


# --- the issue's four label rules -----------------------------------------------------------


def test_the_issues_label_rules_are_each_refused_at_their_position_with_the_quote() -> None:
    assert problems(ISSUE_POLICY) == [
        'p.yaml:5:24: images.keep[0].label.release: a label value is text: quote it: "1.10" '
        "(YAML reads 1.10 as the number 1.1)",
        'p.yaml:6:24: images.keep[1].label.country: a label value is text: quote it: "NO" '
        "(YAML 1.1 reads NO as the boolean false, YAML 1.2 as text)",
        'p.yaml:7:21: images.keep[2].label.mode: a label value is text: quote it: "0755" '
        "(YAML 1.1 reads 0755 as the octal number 493, YAML 1.2 as the number 755)",
        'p.yaml:8:15: images.keep[3].label.on: keys are text: quote it: "on" '
        "(YAML 1.1 reads on as the boolean true, YAML 1.2 as text)",
    ]


def test_the_issues_rules_quoted_mean_exactly_their_text() -> None:
    policy = parse_policy(QUOTED_POLICY, "p.yaml")
    assert labels_of(policy) == [
        {"release": "1.10"},
        {"country": "NO"},
        {"mode": "0755"},
        {"on": "yes"},
    ]


# --- label values are text, never coerced ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("true", "YAML reads true as the boolean true"),
        ("False", "YAML reads False as the boolean false"),
        ("3", "YAML reads 3 as the number 3"),
        ("-1.50", "YAML reads -1.50 as the number -1.5"),
        (".inf", "YAML reads .inf as the number infinity"),
        ("0x1F", "YAML reads 0x1F as the hexadecimal number 31"),
        ("1_000", "YAML 1.1 reads 1_000 as the number 1000, YAML 1.2 as text"),
        ("1:30", "YAML 1.1 reads 1:30 as the base-60 number 90, YAML 1.2 as text"),
        ("0o17", "YAML 1.1 reads 0o17 as text, YAML 1.2 as the octal number 15"),
        ("1e3", "YAML 1.1 reads 1e3 as text, YAML 1.2 as the number 1000.0"),
        ("2001-12-14", "YAML 1.1 reads 2001-12-14 as a date, YAML 1.2 as text"),
        ("yes", "YAML 1.1 reads yes as the boolean true, YAML 1.2 as text"),
        ("y", "YAML 1.1 reads y as the boolean true, YAML 1.2 as text"),
        ("Off", "YAML 1.1 reads Off as the boolean false, YAML 1.2 as text"),
    ],
)
def test_a_label_value_that_yaml_reads_as_anything_but_text_is_refused(
    value: str, why: str
) -> None:
    assert problems(label_policy(value)) == [
        f'p.yaml:4:12: images.keep[0].label.k: a label value is text: quote it: "{value}" ({why})'
    ]


def test_an_unquoted_true_label_is_refused_not_turned_into_text() -> None:
    (problem,) = problems("images:\n  keep:\n    - label: {gc.keep: true}\n")
    assert problem.startswith(
        'p.yaml:3:24: images.keep[0].label.gc.keep: a label value is text: quote it: "true"'
    )


@pytest.mark.parametrize("value", ["", "~", "null", "NULL"])
def test_a_label_without_a_value_says_how_to_match_any_value(value: str) -> None:
    (problem,) = problems(label_policy(value))
    line, column = ("4:11", "") if value == "" else ("4:12", f', or quote it: "{value}"')
    assert problem == (
        f'p.yaml:{line}: images.keep[0].label.k: a label value is text: write "*" for any '
        f"value{column}"
    )


def test_a_label_value_that_is_a_list_is_refused() -> None:
    assert problems(label_policy("[a, b]")) == [
        'p.yaml:4:12: images.keep[0].label.k: a label value is text, got ["a", "b"]'
    ]


YAML11_BOOLEANS = [
    *("y", "Y", "n", "N"),
    *("yes", "Yes", "YES", "no", "No", "NO"),
    *("on", "On", "ON", "off", "Off", "OFF"),
]

AMBIGUOUS = [
    *YAML11_BOOLEANS,
    *("0755", "-0755", "00", "08", "0x10", "0o17", "0b101", "1_000", "1.5_0", "-.5", "1e3"),
    *("1:30", "1:30.5", "190:20:30"),
    *("2001-12-14", "2001-12-14T21:59:43Z", "2001-12-14t21:59:43.10-05:00", "2001-1-2 3:04:05"),
    *("<<", "="),
]


@pytest.mark.parametrize("text", AMBIGUOUS)
@pytest.mark.parametrize("style", ["double", "single", "block"])
def test_quoted_forms_of_every_refused_scalar_mean_exactly_the_text(text: str, style: str) -> None:
    written = {
        "double": f'"{text}"',
        "single": f"'{text}'",
        "block": f"|-\n          {text}",
    }[style]
    assert labels_of(parse_policy(label_policy(written), "p.yaml")) == [{"k": text}]


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_an_explicit_str_tag_also_means_the_text(text: str) -> None:
    assert labels_of(parse_policy(label_policy(f"!!str {text}"), "p.yaml")) == [{"k": text}]


# --- ambiguous scalars are refused wherever they stand --------------------------------------


def test_yaml11_booleans_outside_labels_say_what_each_version_reads() -> None:
    assert problems("schedule:\n  disk: {path: NO}\n") == [
        "p.yaml:2:16: schedule.disk.path: NO is the boolean false in YAML 1.1 and text in "
        'YAML 1.2: quote it ("NO") for the text, or write false'
    ]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "0755",
            "0755 is the octal number 493 in YAML 1.1 and the number 755 in YAML 1.2: write the "
            'number in plain decimal, or quote it ("0755") for the text',
        ),
        (
            "0x10",
            "0x10 is the hexadecimal number 16 in YAML 1.1 and 1.2: write the number in plain "
            'decimal, or quote it ("0x10") for the text',
        ),
        (
            "1:30",
            '1:30 is the base-60 number 90 in YAML 1.1 and text in YAML 1.2: quote it ("1:30")',
        ),
        (
            "1_000",
            "1_000 is the number 1000 in YAML 1.1 and text in YAML 1.2: write the number in "
            'plain decimal, or quote it ("1_000") for the text',
        ),
        (
            "0b11",
            "0b11 is the binary number 3 in YAML 1.1 and text in YAML 1.2: write the number in "
            'plain decimal, or quote it ("0b11") for the text',
        ),
        (
            "0o10",
            "0o10 is text in YAML 1.1 and the octal number 8 in YAML 1.2: write the number in "
            'plain decimal, or quote it ("0o10") for the text',
        ),
        (
            "yes",
            'yes is the boolean true in YAML 1.1 and text in YAML 1.2: quote it ("yes") for the '
            "text, or write true",
        ),
        (
            "2001-12-14",
            '2001-12-14 is a date in YAML 1.1 and text in YAML 1.2: quote it ("2001-12-14")',
        ),
    ],
)
def test_a_count_that_yaml_versions_read_differently_is_refused(value: str, message: str) -> None:
    assert problems(count_policy(value)) == [f"p.yaml:3:15: images.keep[0].newest: {message}"]


@pytest.mark.parametrize("value", ["10.0", '"10"', "'10'", "true", "1.5", "+.inf", "-3", "0"])
def test_a_count_is_a_plain_decimal_whole_number_from_1(value: str) -> None:
    (problem,) = problems(count_policy(value))
    assert problem == (
        f"p.yaml:3:15: images.keep[0].newest: expected a whole number from 1 to "
        f"1000000, got {value}"
        if not value.startswith(("'", '"'))
        else "p.yaml:3:15: images.keep[0].newest: expected a whole number from 1 to "
        '1000000, got "10"'
    )


def test_max_deletions_per_run_in_octal_is_refused() -> None:
    assert problems("safety:\n  max_deletions_per_run: 0755\n") == [
        "p.yaml:2:26: safety.max_deletions_per_run: 0755 is the octal number 493 in YAML 1.1 "
        'and the number 755 in YAML 1.2: write the number in plain decimal, or quote it ("0755") '
        "for the text"
    ]


@pytest.mark.parametrize(
    "value",
    [
        "2001-12-14",
        "2001-12-14T21:59:43Z",
        "2001-12-14t21:59:43.10-05:00",
        "2001-12-14 21:59:43.10 -5",
    ],
)
def test_timestamps_are_refused(value: str) -> None:
    (problem,) = problems(f"schedule:\n  disk:\n    path: {value}\n")
    assert problem.startswith(f"p.yaml:3:11: schedule.disk.path: {value} is ")
    assert "in YAML 1.1 and text in YAML 1.2" in problem
    assert problem.endswith(f'quote it ("{value}")')


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    text = (
        "safety:\n"
        "  max_deletions_per_run: 0x10\n"
        "  min_age: soon\n"
        "images:\n"
        "  keep:\n"
        "    - newest: 1:30\n"
        "    - label: {a: yes, b: 1}\n"
    )
    assert [p.split(": ", 2)[:2] for p in problems(text)] == [
        ["p.yaml:2:26", "safety.max_deletions_per_run"],
        ["p.yaml:3:12", "safety.min_age"],
        ["p.yaml:6:15", "images.keep[0].newest"],
        ["p.yaml:7:18", "images.keep[1].label.a"],
        ["p.yaml:7:26", "images.keep[1].label.b"],
    ]


# --- mapping keys are text ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("on", "YAML 1.1 reads on as the boolean true, YAML 1.2 as text"),
        ("yes", "YAML 1.1 reads yes as the boolean true, YAML 1.2 as text"),
        ("1.10", "YAML reads 1.10 as the number 1.1"),
        ("true", "YAML reads true as the boolean true"),
        ("null", "YAML reads null as no value"),
        ("2001-12-14", "YAML 1.1 reads 2001-12-14 as a date, YAML 1.2 as text"),
        ("<<", "YAML 1.1 reads << as a merge key, YAML 1.2 as text"),
    ],
)
def test_a_key_that_yaml_reads_as_anything_but_text_is_refused(key: str, why: str) -> None:
    assert problems(label_policy("x", key=key)) == [
        f'p.yaml:4:9: images.keep[0].label.{key}: keys are text: quote it: "{key}" ({why})'
    ]


def test_a_quoted_key_is_its_text() -> None:
    policy = parse_policy(label_policy("x", key='"1.10"'), "p.yaml")
    assert labels_of(policy) == [{"1.10": "x"}]


def test_a_bad_top_level_key_is_one_problem_not_two() -> None:
    assert problems("version: 1\non: 1\n") == [
        'p.yaml:2:1: on: keys are text: quote it: "on" (YAML 1.1 reads on as the boolean true, '
        "YAML 1.2 as text)"
    ]


def test_a_key_that_is_a_collection_is_refused() -> None:
    assert problems("images:\n  keep:\n    - label: {[a, b]: c}\n") == [
        "p.yaml:3:15: images.keep[0].label: keys are text, not a list or mapping"
    ]


def test_a_quoted_and_a_plain_key_of_one_text_are_duplicates() -> None:
    assert problems("images:\n  keep:\n    - label: {'a': p, a: q}\n") == [
        "p.yaml:3:23: images.keep[0].label.a: duplicate key"
    ]


# --- tags -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("!!int 5", "!!int"),
        ("!!float 5", "!!float"),
        ("!!bool yes", "!!bool"),
        ("!!python/name:os.system ''", "!!python/name:os.system"),
        ("!!binary aGVsbG8=", "!!binary"),
        ("!foo 5", "!foo"),
        ("!<tag:example.com,2026:x> 5", "!<tag:example.com,2026:x>"),
    ],
)
def test_a_tag_other_than_str_is_refused(value: str, shown: str) -> None:
    assert problems(count_policy(value)) == [
        f"p.yaml:3:15: images.keep[0].newest: unsupported tag {shown}: remove it"
    ]


def test_a_tag_on_a_collection_is_refused() -> None:
    # Without the tag, `{a, b}` is a mapping with null values: those are problems too.
    assert problems("images:\n  keep:\n    - label: !!set {a, b}\n") == [
        "p.yaml:3:14: images.keep[0].label: unsupported tag !!set: remove it",
        'p.yaml:3:22: images.keep[0].label.a: a label value is text: write "*" for any value',
        'p.yaml:3:25: images.keep[0].label.b: a label value is text: write "*" for any value',
    ]
    policy = parse_policy("images: !!map\n  keep: !!seq\n    - newest: 2\n", "p.yaml")
    assert policy.images is not None
    assert policy.images.keep[0].newest == 2


def test_a_python_tag_is_never_constructed() -> None:
    # SafeLoader would refuse it too; the point is that gcd names it and carries on.
    text = "images:\n  keep:\n    - label: {a: !!python/object/apply:os.system ['true']}\n"
    assert problems(text) == [
        "p.yaml:3:18: images.keep[0].label.a: unsupported tag "
        "!!python/object/apply:os.system: remove it"
    ]


def test_the_non_specific_tag_leaves_quoted_text_alone() -> None:
    # PyYAML resolves `! "5"` like a plain 5; the quotes are what the operator wrote.
    assert labels_of(parse_policy(label_policy('! "0755"'), "p.yaml")) == [{"k": "0755"}]
    assert parse_policy(count_policy("! 5"), "p.yaml").images is not None


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("schedule:\n  disk: {path: 2001-02-30}\n", "schedule.disk.path"),
        ("images:\n  keep:\n    - newest: 0000-00-00\n", "images.keep[0].newest"),
        (f"images:\n  keep:\n    - newest: {'9' * 5000}\n", "images.keep[0].newest"),
    ],
)
def test_a_scalar_yaml_11_cannot_even_construct_is_a_problem_not_a_crash(
    text: str, field: str
) -> None:
    (problem,) = problems(text)
    assert f": {field}: " in problem


def test_version_is_the_number_1_not_true() -> None:
    assert problems("version: true\n") == ["p.yaml:1:10: version: expected 1, got true"]
    assert problems("version: 1.0\n") == ["p.yaml:1:10: version: expected 1, got 1.0"]
