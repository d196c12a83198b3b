"""gcd.yaml_scalars on its own and against PyYAML: what it says YAML 1.1 reads is what a YAML
1.1 loader reads, and whatever gcd accepts is the same value in YAML 1.1 and 1.2."""

from __future__ import annotations

import math
import re

import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from gcd.config.loader import parse_policy
from gcd.config.scalars import quoted, read_plain
from gcd.errors import PolicyError
from tests.unit.test_yaml_scalars import (
    AMBIGUOUS,
    YAML11_BOOLEANS,
    count_policy,
    label_policy,
    labels_of,
)

# --- properties -----------------------------------------------------------------------------


def yaml_double_quoted(text: str) -> str:
    """Printable ASCII as itself, everything else as a \\U escape, which YAML always allows."""
    return (
        '"'
        + "".join(c if " " <= c <= "~" and c not in '"\\' else f"\\U{ord(c):08x}" for c in text)
        + '"'
    )


@given(st.text(max_size=40))
def test_any_double_quoted_label_value_is_exactly_its_text(text: str) -> None:
    policy = parse_policy(label_policy(yaml_double_quoted(text)), "p.yaml")
    assert labels_of(policy) == [{"k": text}]


@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40))
def test_any_single_quoted_label_value_is_exactly_its_text(text: str) -> None:
    # Single quotes fold leading and trailing spaces only across lines; on one line they stay.
    policy = parse_policy(label_policy("'" + text.replace("'", "''") + "'"), "p.yaml")
    assert labels_of(policy) == [{"k": text}]


def plain_node(text: str) -> bool:
    """Whether `v: TEXT` holds a plain scalar of exactly this text (not a comment, an
    indicator or a syntax error)."""
    try:
        node = yaml.compose(f"v: {text}\n", Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return False
    if not isinstance(node, yaml.MappingNode):
        return False
    ((_, value),) = node.value
    return isinstance(value, yaml.ScalarNode) and value.style is None and value.value == text


# The YAML 1.2 core schema (spec 1.2.2, 10.3.2): what is not text there.
YAML12_NOT_TEXT = re.compile(
    r"null|Null|NULL|~|true|True|TRUE|false|False|FALSE|[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+"
    r"|[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?|[-+]?(\.inf|\.Inf|\.INF)"
    r"|\.nan|\.NaN|\.NAN|"
)

PLAINISH = st.one_of(
    st.from_regex(r"\A[-+]?[0-9._:xobeE]{1,8}\Z"),
    st.from_regex(r"\A[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}:[0-9]{2})?\Z"),
    st.sampled_from([*YAML11_BOOLEANS, "true", "NULL", "~", ".inf", ".NaN", "<<", "=", "x"]),
)


@given(PLAINISH)
@example("0x_")  # PyYAML itself crashes on it (found by Hypothesis)
def test_an_accepted_plain_label_value_is_text_in_yaml_11_and_12(text: str) -> None:
    if not plain_node(text):
        return
    try:
        policy = parse_policy(label_policy(text), "p.yaml")
    except PolicyError:
        return
    assert labels_of(policy) == [{"k": text}]
    assert yaml.safe_load(f"v: {text}\n") == {"v": text}  # YAML 1.1
    assert YAML12_NOT_TEXT.fullmatch(text) is None  # YAML 1.2


@given(PLAINISH)
@example("0x_")  # PyYAML itself crashes on it (found by Hypothesis)
def test_an_accepted_plain_count_is_the_same_number_in_yaml_11_and_12(text: str) -> None:
    try:
        policy = parse_policy(count_policy(text), "p.yaml")
    except PolicyError:
        return
    assert policy.images is not None
    newest = policy.images.keep[0].newest
    read = yaml.safe_load(f"v: {text}\n")["v"]  # YAML 1.1
    assert type(read) is int
    assert read == newest
    assert re.fullmatch(r"[-+]?[0-9]+", text) is not None  # YAML 1.2 decimal int
    assert int(text) == newest


# --- the reader itself (gcd.yaml_scalars) ---------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        *(("", None), ("~", None), ("null", None), ("Null", None), ("NULL", None)),
        *(("true", True), ("True", True), ("TRUE", True), ("false", False), ("FALSE", False)),
        *(("0", 0), ("-0", 0), ("+5", 5), ("42", 42), ("-17", -17)),
        *(("1.5", 1.5), ("1.", 1.0), (".5", 0.5), ("-1.25", -1.25), ("1.0e+3", 1000.0)),
        *((".inf", math.inf), ("-.Inf", -math.inf), ("+.INF", math.inf)),
        *(("x", "x"), ("alpine:3.19", "alpine:3.19"), ("90%", "90%"), ("30s", "30s")),
        *(("0 * * * *", "0 * * * *"), ("/var/lib/docker", "/var/lib/docker"), ("nO", "nO")),
    ],
)
def test_what_both_versions_read_alike_is_taken(text: str, value: object) -> None:
    plain = read_plain(text)
    assert not plain.refused
    assert plain.value == value
    assert type(plain.value) is type(value)


def test_nan_is_nan_in_both_versions() -> None:
    plain = read_plain(".nan")
    assert not plain.refused
    assert isinstance(plain.value, float)
    assert math.isnan(plain.value)


@pytest.mark.parametrize("text", AMBIGUOUS)
def test_what_the_versions_read_differently_is_refused(text: str) -> None:
    assert read_plain(text).refused


@given(PLAINISH)
@example("0x_")  # PyYAML itself crashes on it (found by Hypothesis)
def test_the_yaml_11_reading_in_messages_is_what_pyyaml_reads(text: str) -> None:
    """The messages say what YAML 1.1 reads: PyYAML (a YAML 1.1 loader) must agree, except for
    y/n, which the YAML 1.1 type repository makes booleans and PyYAML leaves as text."""
    if not plain_node(text):
        return
    reading = read_plain(text).yaml11
    if reading.kind in {"date", "timestamp", "merge", "value"}:
        return  # PyYAML makes a date, or refuses: gcd never uses the value, only says what
    try:
        read = yaml.safe_load(f"v: {text}\n")["v"]
    except ValueError:
        # PyYAML's own constructor crashes on a few texts its resolver calls numbers (`0x_`:
        # int("", 16)): there is no reading of its to compare with. gcd refuses them anyway.
        assert read_plain(text).refused
        return
    if text in {"y", "Y", "n", "N"}:
        assert (reading.value, read) == (text in {"y", "Y"}, text)
        return
    assert type(reading.value) is type(read)
    if isinstance(read, float) and math.isnan(read):
        assert isinstance(reading.value, float)
        assert math.isnan(reading.value)
    else:
        assert reading.value == read


def test_messages_quote_the_text_as_yaml_double_quotes_it() -> None:
    text = 'say "hi"\\ \t — ok'
    assert yaml.safe_load(quoted(text)) == text
