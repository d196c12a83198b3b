"""`--output json`: format 2 names the kind of every decision and outcome and summarises per
kind; format 1 (`--format-version 1`) is exactly the images-only document of gcd 0.1."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from gcd.arguments import build_parser
from gcd.core.evaluate import evaluate
from gcd.core.kind import Key, Kind
from gcd.core.rules import RuleId
from gcd.documents import plan_document, run_document, write_json
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.formats import LATEST_FORMAT
from tests.unit.builders import NOW, days, image, policy, rule, snapshot

OLD = image("app:1", "app:latest", age=days(30), digests=("app@sha256:" + "b" * 64,))
PINNED = image("alpine:3.19", age=days(30))
DANGLING = image(seed="dangling", age=days(30))
PLAN = evaluate(snapshot(OLD, PINNED, DANGLING), policy(rule(references=("alpine:*",))), NOW)
REPORT = Report(
    (
        Outcome(OLD.key, OLD.names, RuleId.UNKEPT, OutcomeStatus.REMOVED, "deleted by id", 100),
        Outcome(DANGLING.key, (), RuleId.DANGLING, OutcomeStatus.CONFLICT, "409"),
    )
)


def roundtrip(document: dict[str, Any]) -> dict[str, Any]:
    out = io.StringIO()
    write_json(document, out)
    parsed: dict[str, Any] = json.loads(out.getvalue())
    return parsed


class TestFormat2:
    def test_every_decision_names_its_kind_and_keeps_the_images_fields_under_image(self) -> None:
        document = plan_document(PLAN)
        assert (document["format"], document["document"]) == (2, "plan")
        old = next(d for d in document["decisions"] if d["id"] == OLD.id)
        assert old["kind"] == "image"
        assert old["names"] == ["app:1", "app:latest", "app@sha256:" + "b" * 64]
        assert old["image"]["references"] == [
            "docker.io/library/app:1",
            "docker.io/library/app:latest",
        ]
        assert old["image"]["digests"] == ["docker.io/library/app@sha256:" + "b" * 64]
        assert (old["action"], old["rule"]) == ("delete", "delete.unkept")

    def test_the_summary_is_per_kind_and_in_total(self) -> None:
        summary = plan_document(PLAN)["summary"]
        assert summary["objects"] == 3
        assert (summary["delete"], summary["keep"]) == (2, 1)
        assert summary["by_kind"] == {
            "image": {
                "objects": 3,
                "delete": 2,
                "keep": 1,
                "by_rule": {"delete.dangling": 1, "delete.unkept": 1, "keep.reference": 1},
            }
        }
        assert summary["freed_bytes"] == PLAN.freed_bytes

    def test_a_run_names_the_kind_of_every_outcome_and_counts_statuses_per_kind(self) -> None:
        document = roundtrip(run_document(PLAN, REPORT, 100))
        assert document["document"] == "run"
        assert [o["kind"] for o in document["outcomes"]] == ["image", "image"]
        result = document["result"]
        assert result["by_status"]["removed"] == 1
        assert result["by_kind"]["image"]["by_status"]["conflict"] == 1
        assert document["pressure"] is None
        assert document["shortfall"] is False


class TestFormat1:
    def test_a_plan_has_exactly_the_fields_of_format_1(self) -> None:
        document = plan_document(PLAN, 1)
        assert list(document) == ["format", "kind", "created_at", "refusal", "summary", "decisions"]
        assert (document["format"], document["kind"]) == (1, "plan")
        assert list(document["summary"]) == [
            "images",
            "delete",
            "keep",
            "freed_bytes",
            "total_bytes",
            "by_rule",
        ]
        old = next(d for d in document["decisions"] if d["id"] == OLD.id)
        assert list(old) == [
            "id",
            "references",
            "digests",
            "action",
            "rule",
            "detail",
            "age_seconds",
            "seen_at",
            "created",
            "size_bytes",
            "freed_bytes",
        ]
        assert "kind" not in old

    def test_a_run_has_exactly_the_fields_of_format_1(self) -> None:
        document = roundtrip(run_document(PLAN, REPORT, 100, 1))
        assert document["kind"] == "run"
        assert list(document["outcomes"][0]) == [
            "id",
            "references",
            "rule",
            "status",
            "detail",
            "freed_bytes",
        ]
        assert list(document["result"]) == ["aborted", "freed_bytes", "by_status"]


@pytest.mark.parametrize("command", [["plan"], ["run", "--once"]])
def test_the_format_version_option_defaults_to_the_latest_and_takes_1(command: list[str]) -> None:
    assert build_parser().parse_args(command).format_version == LATEST_FORMAT == 2
    assert build_parser().parse_args([*command, "--format-version", "1"]).format_version == 1
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--format-version", "3"])


def test_an_outcome_key_is_the_kind_and_the_full_id() -> None:
    assert REPORT.outcomes[0].key == Key(Kind.IMAGE, OLD.id)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_is_indented_on_a_terminal_and_one_line_to_a_pipe_the_same_document() -> None:
    document = run_document(PLAN, REPORT, 100)
    terminal, pipe = _Terminal(), io.StringIO()
    write_json(document, terminal)
    write_json(document, pipe)
    assert terminal.getvalue().startswith('{\n  "format": 2,')
    assert pipe.getvalue().count("\n") == 1
    assert pipe.getvalue().endswith("}\n")
    assert json.loads(terminal.getvalue()) == json.loads(pipe.getvalue()) == document
