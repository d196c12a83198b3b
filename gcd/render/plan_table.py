"""The plan as a table people can scan (`gcd plan`).

Rows are grouped: images by repository (the repository of their first tag; dangling images
last), each group's images newest first by local age, so releases read in order; then each
other kind, newest first. One row per object: its tags on one line, the detail never wrapped
(on a pipe nothing is cut either: the table takes the width it needs; on a narrow terminal the
detail is shortened with `…`, and the JSON has it whole). On a terminal deleted rows are red
and kept rows plain; on a pipe there are no styles at all.

The layers that several deleted images share (a base deleted with the images built on it, a
classic-build parent the engine removes quietly with its last child) go with none of them
alone: they are rows of their own (`<shared layers>`), so the FREES column adds up to the
plan's total. Last, a summary per rule: count, the sum of their sizes, and what they free.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import IO

from gcd.core.kind import Key, Kind
from gcd.core.plan import Decision, Plan
from gcd.core.records import BuildCacheRecord, Container, Image, Network, Volume
from gcd.core.rules import RuleId
from gcd.core.shared import SharedUnits
from gcd.core.units import format_bytes, format_duration
from gcd.render import NO_NAME, count_kinds, names
from gcd.render.grid import Column, Grid

SHARED_NAME = "<shared layers>"
SHARED_ROWS = 12
"""At most this many groups of shared layers get a row each; the rest share one row."""
DELETE_STYLE = "red"
COLUMNS = (
    "KIND",
    "NAME",
    "ID",
    "AGE",
    "LAST USE",
    "SIZE",
    "FREES",
    "ACTION",
    "RULE",
    "DETAIL",
)
_RIGHT = frozenset({"AGE", "LAST USE", "SIZE", "FREES"})


def last_used(decision: Decision) -> datetime | None:
    """When the object was last used, as gcd knows it; None: never seen in use."""
    subject = decision.subject
    if isinstance(subject, Image | Volume | Network | BuildCacheRecord):
        return subject.last_used
    if isinstance(subject, Container):
        return subject.finished_at
    return None


def last_use_text(decision: Decision, now: datetime) -> str:
    """`never`, `running`, `now` (within the minute), else `3d ago`."""
    subject = decision.subject
    if isinstance(subject, Container) and subject.is_active:
        return subject.state.value
    when = last_used(decision)
    if when is None:
        return "never"
    idle = now - when
    return "now" if idle.total_seconds() < 60 else f"{format_duration(idle)} ago"


def repository_of(decision: Decision) -> str:
    """An image's group: its first tag's repository, as `docker images` shows it."""
    subject = decision.subject
    if isinstance(subject, Image) and subject.tags:
        return replace(subject.tags[0], tag=None, digest=None).familiar
    return ""


def _newest_first(decision: Decision) -> tuple[float, float, str]:
    subject = decision.subject
    created = subject.created if isinstance(subject, Image) else None
    return (
        decision.age.total_seconds(),
        -(created.timestamp() if created else float("-inf")),
        decision.key.id,
    )


def grouped(plan: Plan) -> list[list[Decision]]:
    """The plan's decisions as the table shows them: images by repository (dangling ones
    last), then each other kind; each group newest first."""
    groups: dict[tuple[int, int, tuple[str | int, ...], str], list[Decision]] = defaultdict(list)
    kinds = list(Kind)
    for decision in plan.decisions:
        repository = repository_of(decision)
        place = (kinds.index(decision.key.kind), not repository, _natural(repository), repository)
        groups[place].append(decision)
    return [sorted(groups[key], key=_newest_first) for key in sorted(groups)]


def _natural(text: str) -> tuple[str | int, ...]:
    """`svc9` before `svc10`: digit runs compare as numbers (text and numbers alternate, text
    first, so the parts always compare like with like)."""
    return tuple(
        int(part) if index % 2 else part for index, part in enumerate(re.split(r"(\d+)", text))
    )


@dataclass(frozen=True, slots=True)
class SharedRow:
    name: str
    freed_bytes: int
    detail: str


def shared_rows(plan: Plan, limit: int = SHARED_ROWS) -> list[SharedRow]:
    """A row per group of shared layers (largest first), the rest together in one."""
    by_key = {d.key: d for d in plan.decisions}

    def who(users: Sequence[Key]) -> str:
        shown = [", ".join(names(by_key[k])) if k in by_key else k.short for k in users[:4]]
        more = f" and {len(users) - 4} more" if len(users) > 4 else ""
        return "; ".join(shown) + more

    rows = [
        SharedRow(
            SHARED_NAME,
            group.freed_bytes,
            f"{group.units} layer(s) of {len(group.users)} deleted images, freed with the "
            f"last of them: {who(group.users)}",
        )
        for group in plan.shared[:limit]
    ]
    rest: tuple[SharedUnits, ...] = plan.shared[limit:]
    if rest:
        rows.append(
            SharedRow(
                SHARED_NAME,
                sum(g.freed_bytes for g in rest),
                f"{sum(g.units for g in rest)} more layer(s) in {len(rest)} more groups of "
                "deleted images",
            )
        )
    return rows


COLUMN_LAYOUT = tuple(
    Column(
        name,
        right=name in _RIGHT,
        shrink_to={"NAME": 24, "DETAIL": 20}.get(name),
        gives_first_to=48 if name == "NAME" else None,  # a long list of tags goes first
    )
    for name in COLUMNS
)


def _cells(decision: Decision, now: datetime) -> tuple[str, ...]:
    return (
        decision.key.kind.value,
        ", ".join(names(decision)) or NO_NAME,
        decision.key.short,
        format_duration(decision.age),
        last_use_text(decision, now),
        format_bytes(decision.subject.size_bytes),
        format_bytes(decision.freed_bytes) if decision.deletes else "",
        "delete" if decision.deletes else "keep",
        decision.rule.value,
        decision.detail,
    )


def plan_grid(plan: Plan) -> Grid:
    grid = Grid(COLUMN_LAYOUT)
    for group in grouped(plan):
        grid.group()
        for decision in group:
            grid.add(
                *_cells(decision, plan.created_at),
                style=DELETE_STYLE if decision.deletes else None,
            )
    grid.group()
    for row in shared_rows(plan):
        grid.add(
            Kind.IMAGE.value,
            row.name,
            "",
            "",
            "",
            "",
            format_bytes(row.freed_bytes),
            "delete",
            "",
            row.detail,
            style=DELETE_STYLE,
        )
    return grid


def rule_grid(plan: Plan) -> Grid:
    """Per rule, in the order of `RuleId`: how many, their sizes summed, what they free."""
    grid = Grid(
        [
            Column("RULE"),
            Column("ACTION"),
            Column("COUNT", right=True),
            Column("SIZE", right=True),
            Column("FREES", right=True),
        ]
    )
    by_rule: dict[RuleId, list[Decision]] = defaultdict(list)
    for decision in plan.decisions:
        by_rule[decision.rule].append(decision)
    for rule in RuleId:
        if rule not in by_rule:
            continue
        decisions = by_rule[rule]
        grid.add(
            rule.value,
            "delete" if rule.deletes else "keep",
            str(len(decisions)),
            format_bytes(sum(d.subject.size_bytes for d in decisions)),
            format_bytes(sum(d.freed_bytes for d in decisions)) if rule.deletes else "",
            style=DELETE_STYLE if rule.deletes else None,
        )
    if plan.shared:
        grid.add(
            SHARED_NAME,
            "delete",
            "",
            "",
            format_bytes(sum(g.freed_bytes for g in plan.shared)),
            style=DELETE_STYLE,
        )
    return grid


def totals_line(plan: Plan) -> str:
    counted = count_kinds(d.key for d in plan.decisions) or "0 objects"
    line = (
        f"{counted}: {len(plan.deletions)} to delete, {len(plan.kept)} kept; "
        f"frees {format_bytes(plan.freed_bytes)} of {format_bytes(plan.total_bytes)}"
    )
    shared = sum(g.freed_bytes for g in plan.shared)
    if shared:
        alone = sum(d.freed_bytes for d in plan.deletions)
        line += (
            f" ({format_bytes(alone)} by the deleted objects alone, {format_bytes(shared)} in "
            f"layers several of them share: the {SHARED_NAME} rows)"
        )
    return line


def _styled(out: IO[str]) -> bool:
    return out.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def write_plan_table(plan: Plan, out: IO[str], width: int | None = None) -> None:
    """On a terminal: fitted to its width, deleted rows red. On a pipe: plain, as wide as the
    rows need (fitted to `COLUMNS` when that is set). `width`: fitted to that, plain (tests)."""
    styled = width is None and _styled(out)
    if width is None and out.isatty():
        width = shutil.get_terminal_size().columns
    elif width is None and os.environ.get("COLUMNS", "").isdigit():
        width = int(os.environ["COLUMNS"])  # asked for on a pipe: fitted, as on a terminal
    lines = plan_grid(plan).lines(width, styled=styled)
    lines += ["", *rule_grid(plan).lines(styled=styled), totals_line(plan)]
    if plan.refusal:
        lines.append(f"REFUSED: {plan.refusal}")
    if plan.busy:
        lines.append(f"BUSY: {plan.busy}")
    if plan.unrecorded:
        lines.append(f"AGES: {plan.unrecorded.describe()}")
    out.writelines(line + "\n" for line in lines)
