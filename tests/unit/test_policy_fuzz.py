"""The policy loader fed thousands of generated documents (Hypothesis): documents built from
the schema's own keys with hostile values, mutations of `policy.example.yaml`, fragments of YAML
syntax, and raw bytes. Each either loads or raises a PolicyError whose every problem has a line
and column ≥ 1; nothing else may escape (a traceback in `gcd check`, a dead daemon on SIGHUP)."""

from __future__ import annotations

import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from gcd.config.loader import load_policy, parse_policy
from gcd.config.schema import PolicyModel
from gcd.errors import PolicyError
from tests.figures import Figure, record

EXAMPLE = Path(__file__).parent.parent.parent / "policy.example.yaml"


def fuzz(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.function_scoped_fixture,
        ],
    )


_tried = [0]


@pytest.fixture(scope="module", autouse=True)
def _figure() -> Iterator[None]:
    """One figure for the module: the documents actually run, counted by the tests."""
    yield
    record(Figure(area="bad policy", scenario="fuzzed documents", inputs=_tried[0]))


def check(text: str) -> None:
    """The property: a Policy, or a PolicyError placed at line and column ≥ 1."""
    _tried[0] += 1
    try:
        parse_policy(text, "p.yaml")
    except PolicyError as exc:
        _placed(exc)


def _placed(exc: PolicyError) -> None:
    assert exc.problems
    for problem in exc.problems:
        assert problem.line >= 1, problem
        assert problem.column >= 1, problem
        assert len(str(problem)) < 1600, problem


def _model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (`ImagesModel | None`, `list[KeepRuleModel]`)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in typing.get_args(annotation):
        found = _model(argument)
        if found is not None:
            return found
    return None


def _keys(model: type[BaseModel]) -> dict[str, type[BaseModel] | None]:
    return {name: _model(field.annotation) for name, field in model.model_fields.items()}


SCALARS = st.sampled_from(
    [
        "1", "0", "-1", "1000000", "1000001", "9" * 400, "1.5", "0.9", "90%", "1e400%",
        ".nan", ".inf", "-.inf", "true", "no", "on", "~", "null", "", "0x10", "0755", "1:30",
        "1_000", "2001-12-14", "0s", "1s", "7d", "2w", "36500d", "36501d", "99999999999d",
        "366d", "367d", "1d", "25h", "500MB", "20GiB", "1024PiB", "9999PiB", "0B", "alpine:*",
        "t/app", "T/App:*", ".*", "regex:", "regex:(", "regex:.*", "**/base/*:*", "ci-svc-*",
        "*", "a", "0 * * * *", "0 0 30 2 *", "*/0 * * * *", "<<", "=", "'quoted'", '"1.10"',
        "!!str 10", "!!int 10", "!foo x", "&a x", "*a", "|\n  block", "\t", "\x00",
    ]
)  # fmt: skip


def _value(model: type[BaseModel] | None, depth: int) -> st.SearchStrategy[Any]:
    scalar = SCALARS | st.integers() | st.text(max_size=12)
    if model is None or depth > 4:
        return scalar | st.lists(scalar, max_size=3)
    mapping = _section(model, depth + 1)
    return mapping | st.lists(mapping, max_size=3) | scalar


def _deferred(model: type[BaseModel] | None, depth: int) -> st.SearchStrategy[Any]:
    return st.deferred(lambda: _value(model, depth))


def _section(model: type[BaseModel], depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """A mapping of the model's own keys, each with a value for that key (or a hostile one),
    sometimes with a key the schema does not know."""
    keys = _keys(model)
    optional: dict[str, st.SearchStrategy[Any]] = {
        key: _deferred(sub, depth) for key, sub in keys.items()
    }
    known = st.fixed_dictionaries({}, optional=optional)
    extra = st.dictionaries(st.sampled_from(["unknown", "keep", "<<", "on"]), SCALARS, max_size=1)
    return st.builds(lambda a, b: {**a, **b}, known, extra)


def _render(document: dict[str, Any], flow: bool) -> str:
    """YAML text for a generated tree; strings like `!!int 10` are written unquoted when
    `flow` is False, so that they are read as the syntax they spell."""
    text = yaml.safe_dump(document, default_flow_style=flow, allow_unicode=True, width=1000)
    return text if flow else text.replace("'", "")


@fuzz(450)
@given(st.builds(_render, _section(PolicyModel, 0), st.booleans()))
def test_documents_from_the_schema_s_keys(text: str) -> None:
    check(text)


EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
EXAMPLE_LINES = EXAMPLE_TEXT.splitlines(keepends=True)
SYNTAX = "[]{}:,&*!|>-#'\"?%@`\t\n \\<=~.0123456789abcxyzT/"


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    lines = list(EXAMPLE_LINES)
    for _ in range(draw(st.integers(1, 6))):
        operation = draw(
            st.sampled_from(["insert", "delete", "replace", "duplicate", "swap", "amplify"])
        )
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        position = draw(st.integers(0, len(line)))
        if operation == "insert":
            lines[index] = line[:position] + draw(st.text(SYNTAX, max_size=6)) + line[position:]
        elif operation == "delete":
            lines[index] = line[:position] + line[position + draw(st.integers(1, 8)) :]
        elif operation == "replace":
            lines[index] = line[:position] + draw(SCALARS) + "\n"
        elif operation == "amplify":  # what only size breaks: nesting, digits, aliases
            unit = draw(st.sampled_from(["[", "{a: ", "9", "- ", "*a, ", "&a ", "x"]))
            lines[index] = line[:position] + unit * draw(st.integers(100, 5000)) + line[position:]
        elif operation == "duplicate":
            lines.insert(index, line)
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[index], lines[other] = lines[other], lines[index]
    return "".join(lines)


@fuzz(400)
@given(_mutated())
def test_mutations_of_the_example_policy(text: str) -> None:
    check(text)


@fuzz(300)
@given(st.text(SYNTAX, max_size=80) | st.text(max_size=40))
def test_fragments_of_yaml_syntax(text: str) -> None:
    check(text)


@fuzz(150)
@given(st.binary(max_size=200) | st.builds(bytes.__add__, st.just(b"\xef\xbb\xbf"), st.binary()))
def test_raw_bytes_through_the_file_loader(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    path = tmp_path_factory.getbasetemp() / "fuzzed.yaml"
    path.write_bytes(data)
    _tried[0] += 1
    try:
        load_policy(path)
    except PolicyError as exc:
        _placed(exc)
