"""Plans and run reports for people (rich tables) and for scripts (JSON, format 1)."""

from __future__ import annotations

import json
from typing import IO, Any

from rich.console import Console
from rich.table import Table

from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision, Plan
from gcd.core.units import format_bytes, format_duration
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report

JSON_FORMAT = 1


def _references(decision: Decision) -> list[str]:
    return [ref.familiar for ref in image_of(decision).tags] or ["<none>"]


def decision_record(decision: Decision) -> dict[str, Any]:
    image = image_of(decision)
    return {
        "id": image.id,
        "references": [str(ref) for ref in image.tags],
        "digests": [str(ref) for ref in image.digests],
        "action": "delete" if decision.deletes else "keep",
        "rule": decision.rule.value,
        "detail": decision.detail,
        "age_seconds": int(decision.age.total_seconds()),
        "seen_at": image.seen_at.isoformat(),
        "created": image.created.isoformat() if image.created else None,
        "size_bytes": image.size_bytes,
        "freed_bytes": decision.freed_bytes,
    }


def plan_summary(plan: Plan) -> dict[str, Any]:
    return {
        "images": len(plan.decisions),
        "delete": len(plan.deletions),
        "keep": len(plan.kept),
        "freed_bytes": plan.freed_bytes,
        "total_bytes": plan.total_bytes,
        "by_rule": {rule.value: count for rule, count in plan.count_by_rule().items()},
    }


def plan_document(plan: Plan) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT,
        "kind": "plan",
        "created_at": plan.created_at.isoformat(),
        "refusal": plan.refusal,
        "summary": plan_summary(plan),
        "decisions": [decision_record(d) for d in plan.decisions],
    }


def outcome_record(outcome: Outcome) -> dict[str, Any]:
    return {
        "id": outcome.key.id,
        "references": list(outcome.references),
        "rule": outcome.rule.value,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "freed_bytes": outcome.freed_bytes,
    }


def run_document(plan: Plan, report: Report, freed_bytes: int) -> dict[str, Any]:
    document = plan_document(plan)
    document["kind"] = "run"
    document["outcomes"] = [outcome_record(o) for o in report.outcomes]
    document["result"] = {
        "aborted": report.aborted,
        "freed_bytes": freed_bytes,
        "by_status": {status.value: report.count(status) for status in OutcomeStatus},
    }
    return document


def write_json(document: dict[str, Any], out: IO[str]) -> None:
    json.dump(document, out, indent=2)
    out.write("\n")


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
            "\n".join(_references(decision)),
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
