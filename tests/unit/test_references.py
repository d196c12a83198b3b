from __future__ import annotations

import pytest

from gcd.core.patterns import Pattern
from gcd.core.references import InvalidReferenceError, is_registry, parse_reference
from gcd.errors import PatternError

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("text", "full"),
    [
        ("alpine", "docker.io/library/alpine"),
        ("alpine:3.19", "docker.io/library/alpine:3.19"),
        ("library/alpine:3.19", "docker.io/library/alpine:3.19"),
        ("docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19"),
        ("index.docker.io/library/alpine:3.19", "docker.io/library/alpine:3.19"),
        ("team/app:1", "docker.io/team/app:1"),
        ("registry.local:5000/team/app:1", "registry.local:5000/team/app:1"),
        ("localhost/app", "localhost/app"),
        ("localhost:5000/app:v2", "localhost:5000/app:v2"),
        (f"app@{DIGEST}", f"docker.io/library/app@{DIGEST}"),
        (f"reg:5000/app:1@{DIGEST}", f"reg:5000/app:1@{DIGEST}"),
    ],
)
def test_references_are_normalised(text: str, full: str) -> None:
    assert str(parse_reference(text)) == full


def test_the_familiar_form_drops_docker_defaults() -> None:
    assert parse_reference("docker.io/library/alpine:3").familiar == "alpine:3"
    assert parse_reference("reg:5000/app:1").familiar == "reg:5000/app:1"


def test_a_port_is_not_a_tag() -> None:
    ref = parse_reference("reg:5000/app")
    assert (ref.registry, ref.path, ref.tag) == ("reg:5000", "app", None)


@pytest.mark.parametrize("text", ["", "App:1", "app:", "a//b", "app@sha256:xyz", " app"])
def test_invalid_references_are_rejected(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize(
    ("pattern", "reference", "matches"),
    [
        ("alpine:*", "alpine:3.19", True),
        ("alpine:*", "docker.io/library/alpine:edge", True),
        ("alpine:*", "team/alpine:3", False),
        ("app:?", "app:1", True),
        ("app:?", "app:10", False),
        ("team/*:*", "team/sub/app:1", False),
        ("team/**:*", "team/sub/app:1", True),
        ("**/base/*:*", "reg:5000/x/base/py:3", True),
        ("**/base/*:*", "base/py:3", True),
        ("registry.example.com/**:v*", "registry.example.com/a/b:v1", True),
        ("registry.example.com/**:v*", "registry.example.com/a/b:main", False),
        ("regex:.*:v[0-9]+", "app:v12", True),
        ("regex:v[0-9]+", "app:v12", False),
    ],
)
def test_patterns_match_full_references(pattern: str, reference: str, matches: bool) -> None:
    assert Pattern.compile(pattern).matches(parse_reference(reference)) is matches


@pytest.mark.parametrize("pattern", ["", "regex:(unclosed", "regex:a{1000000}"])
def test_invalid_patterns_raise(pattern: str) -> None:
    with pytest.raises(PatternError):
        Pattern.compile(pattern)


def test_regex_runs_in_linear_time_on_pathological_input() -> None:
    # Catastrophic for a backtracking engine; RE2 answers at once.
    pattern = Pattern.compile("regex:(a+)+$b")
    assert not pattern.matches(parse_reference("a" * 60 + ":1"))


class TestRegistryRule:
    @pytest.mark.parametrize("component", ["registry.example.com", "host:5000", "localhost"])
    def test_a_dot_a_port_or_localhost_names_a_registry(self, component: str) -> None:
        assert is_registry(component)

    @pytest.mark.parametrize("component", ["library", "team", "my-user"])
    def test_anything_else_is_a_docker_hub_path(self, component: str) -> None:
        assert not is_registry(component)
