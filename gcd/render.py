"""Plans and run reports for people: rich tables. JSON for scripts is in `gcd.documents`."""

from __future__ import annotations

from typing import IO

from rich.console import Console
from rich.table import Table

from gcd.core.kind import Kind
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision, Plan
from gcd.core.units import format_bytes, format_duration
from gcd.engine.outcomes import OutcomeStatus, Report


def _names(decision: Decision) -> list[str]:
    """What the REFERENCE column shows: an image's tags (its digests are in the JSON)."""
    if decision.key.kind is Kind.IMAGE:
        return [ref.familiar for ref in image_of(decision).tags] or ["<none>"]
    return list(decision.subject.names) or ["<none>"]


def _console(out: IO[str]) -> Console:
    return Console(file=out, width=None if out.isatty() else 200, soft_wrap=False)


def write_plan_table(plan: Plan, out: IO[str]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("REFERENCE", "ID", "AGE", "SIZE", "FREES", "DECISION", "RULE", "DETAIL"):
        if column in {"AGE", "SIZE", "FREES"}:
            table.add_column(column, justify="right", no_wrap=True)
        else:
            table.add_column(column, no_wrap=column != "DETAIL")
    for decision in plan.decisions:
        table.add_row(
            "\n".join(_names(decision)),
            decision.key.short,
            format_duration(decision.age),
            format_bytes(decision.subject.size_bytes),
            format_bytes(decision.freed_bytes) if decision.deletes else "",
            "delete" if decision.deletes else "keep",
            decision.rule.value,
            decision.detail,
        )
    console = _console(out)
    console.print(table)
    console.print(
        f"{len(plan.decisions)} images: {len(plan.deletions)} to delete, {len(plan.kept)} kept; "
        f"frees {format_bytes(plan.freed_bytes)} of {format_bytes(plan.total_bytes)}",
        highlight=False,
    )
    if plan.refusal:
        console.print(f"REFUSED: {plan.refusal}", highlight=False)


def write_run_table(report: Report, freed_bytes: int, out: IO[str]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("REFERENCE", "ID", "RULE", "OUTCOME", "FREED", "DETAIL"):
        table.add_column(column, justify="right" if column == "FREED" else "left", no_wrap=True)
    for outcome in report.outcomes:
        table.add_row(
            "\n".join(outcome.references) or "<none>",
            outcome.key.short,
            outcome.rule.value,
            outcome.status.value,
            format_bytes(outcome.freed_bytes) if outcome.freed_bytes else "",
            outcome.detail,
        )
    console = _console(out)
    console.print(table)
    counts = ", ".join(
        f"{report.count(status)} {status.value}" for status in OutcomeStatus if report.count(status)
    )
    console.print(
        f"freed {format_bytes(freed_bytes)} ({freed_bytes} bytes); {counts or 'nothing to do'}",
        highlight=False,
    )
    if report.aborted:
        console.print(f"ABORTED: {report.aborted}", highlight=False)
