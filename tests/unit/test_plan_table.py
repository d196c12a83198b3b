"""The plan table: grouped by repository and newest first, one line per row at any width
it fits, plain on a pipe, shared layers as rows so the FREES column adds up; JSON keeps the
whole detail and the last use."""

from __future__ import annotations

import io
import re

import pytest

from gcd.core.evaluate import evaluate
from gcd.documents import plan_document
from gcd.render import write_plan_table
from gcd.render.plan_table import grouped, repository_of
from tests.unit.builders import NOW, days, image, policy, snapshot
from tests.unit.sample_plans import sample_plan


@pytest.fixture(autouse=True)
def no_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pipe, as a script or the journal has it: no COLUMNS."""
    monkeypatch.delenv("COLUMNS", raising=False)


def render(plan: object, width: int | None = None) -> list[str]:
    out = io.StringIO()
    write_plan_table(plan, out, width)  # type: ignore[arg-type]
    return out.getvalue().splitlines()


def rows(lines: list[str]) -> list[list[str]]:
    body = lines[2 : next(i for i, line in enumerate(lines) if line.startswith("RULE "))]
    return [re.split(r"\s{2,}", line) for line in body if line]


def test_images_are_grouped_by_repository_and_newest_first() -> None:
    plan = sample_plan(30)
    groups = grouped(plan)
    images = [g for g in groups if g[0].key.kind.value == "image"]
    names = [repository_of(g[0]) for g in images]
    assert names == sorted(n for n in names if n) + ([""] if "" in names else [])
    for group in images:
        assert len({repository_of(d) for d in group}) == 1
        ages = [d.age for d in group]
        assert ages == sorted(ages)
    svc0 = next(g for g in images if repository_of(g[0]) == "reg.example.com/team/svc0")
    releases = [n for d in svc0 for n in d.subject.names if ":1." in n]
    assert releases == [f"reg.example.com/team/svc0:1.{k}" for k in range(7, -1, -1)]


def test_one_line_per_image_with_all_its_tags_and_the_whole_detail_on_a_pipe() -> None:
    plan = sample_plan(30)
    lines = render(plan)
    table = rows(lines)
    assert len(table) == len(plan.decisions) + len(plan.shared)
    latest = next(r for r in table if "svc0:latest" in r[1])
    assert latest[1] == "reg.example.com/team/svc0:1.7, reg.example.com/team/svc0:latest"
    details = {d.detail for d in plan.decisions}
    assert details <= {r[-1] for r in table}
    assert all(line == line.rstrip() and "\x1b" not in line for line in lines)


def test_at_a_fixed_width_every_row_is_one_line_and_the_detail_is_shortened_last() -> None:
    plan = sample_plan(30)
    wide = render(plan, 400)
    assert wide == render(plan)  # wide enough: nothing shortened
    narrow = render(plan, 150)
    assert len(narrow) == len(wide)
    header = narrow[0]
    assert all(len(line) <= 150 for line in narrow[: narrow.index("", 2) + 1])
    assert header.split() == [
        "KIND", "NAME", "ID", "AGE", "LAST", "USE", "SIZE", "FREES", "ACTION", "RULE", "DETAIL"
    ]  # fmt: skip
    assert any(line.endswith("…") for line in narrow)


def test_shared_layers_are_rows_and_frees_add_up_to_the_total() -> None:
    base = ("base-a", "base-b")
    a = image("ci/tool:a", age=days(20), layers=(*base, "a"))
    b = image("ci/tool:b", age=days(19), layers=(*base, "b"))
    plan = evaluate(snapshot(a, b), policy(), NOW)
    assert [g.freed_bytes for g in plan.shared] == [200]
    assert sum(d.freed_bytes for d in plan.deletions) + 200 == plan.freed_bytes == 400
    table = rows(render(plan))
    shared = [r for r in table if r[1] == "<shared layers>"]
    assert len(shared) == 1
    assert "2 layer(s) of 2 deleted images" in shared[0][-1]
    lines = render(plan)
    assert (
        "(200 B by the deleted objects alone, 200 B in layers several of them share" in (lines[-1])
    )
    summary = plan_document(plan)["summary"]
    assert summary["shared"] == [{"users": [b.id, a.id], "units": 2, "freed_bytes": 200}] or (
        summary["shared"] == [{"users": [a.id, b.id], "units": 2, "freed_bytes": 200}]
    )


def test_last_use_is_a_column_and_a_field_and_never_used_says_so() -> None:
    from dataclasses import replace  # noqa: PLC0415

    used = replace(image("app:1", age=days(9)), last_used=NOW - days(2))
    never = image("app:2", age=days(9))
    plan = evaluate(snapshot(used, never), policy(), NOW)
    table = {r[1]: r for r in rows(render(plan))}
    assert table["app:1"][4] == "2d ago"
    assert table["app:2"][4] == "never"
    decisions = {d["names"][0]: d for d in plan_document(plan)["decisions"]}
    assert decisions["app:1"]["image"]["last_used"] == (NOW - days(2)).isoformat()
    assert decisions["app:2"]["image"]["last_used"] is None
    assert "last_used" not in plan_document(plan, 1)["decisions"][0]


def test_a_large_plan_renders_every_row() -> None:
    plan = sample_plan(300)
    assert len(rows(render(plan))) == len(plan.decisions) + min(len(plan.shared), 12) + (
        len(plan.shared) > 12
    )


def test_images_without_an_arrival_record_are_counted_under_the_table() -> None:
    from dataclasses import replace  # noqa: PLC0415

    from gcd.core.ages import AgeStart  # noqa: PLC0415

    new = replace(image("app:1", age=days(0)), age_from=AgeStart.FIRST_SEEN)
    plan = evaluate(snapshot(new), policy(), NOW)
    assert plan.unrecorded is not None
    assert render(plan)[-1] == f"AGES: {plan.unrecorded.describe()}"


def test_columns_fits_a_pipe_as_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = sample_plan(30)
    monkeypatch.setenv("COLUMNS", "150")
    assert render(plan) == render(plan, 150)
