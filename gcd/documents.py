"""Plans and run reports for scripts: `--output json`, in format 2 (every kind) or, with
`--format-version 1`, the images-only format 1 of earlier releases. Fields are only ever
added within a format number."""

from __future__ import annotations

import json
from collections import Counter
from typing import IO, Any

from gcd.core.kind import Kind
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision, Plan
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report

FORMATS = (1, 2)
LATEST_FORMAT = 2


def _image_fields(decision: Decision) -> dict[str, Any]:
    image = image_of(decision)
    return {
        "references": [str(ref) for ref in image.tags],
        "digests": [str(ref) for ref in image.digests],
        "seen_at": image.seen_at.isoformat(),
        "created": image.created.isoformat() if image.created else None,
    }


def decision_record(decision: Decision, version: int = LATEST_FORMAT) -> dict[str, Any]:
    """Format 1 has the image's fields at the top; format 2 adds `kind` and keeps each
    kind's own fields under its name."""
    common = {
        "id": decision.key.id,
        "action": "delete" if decision.deletes else "keep",
        "rule": decision.rule.value,
        "detail": decision.detail,
        "age_seconds": int(decision.age.total_seconds()),
        "size_bytes": decision.subject.size_bytes,
        "freed_bytes": decision.freed_bytes,
    }
    kind = decision.key.kind
    if version == 1:
        fields = _image_fields(decision)
        return {
            "id": common["id"],
            "references": fields["references"],
            "digests": fields["digests"],
            **{k: common[k] for k in ("action", "rule", "detail", "age_seconds")},
            "seen_at": fields["seen_at"],
            "created": fields["created"],
            "size_bytes": common["size_bytes"],
            "freed_bytes": common["freed_bytes"],
        }
    specific = {Kind.IMAGE.value: _image_fields(decision)} if kind is Kind.IMAGE else {}
    return {"kind": kind.value, **common, "names": list(decision.subject.names), **specific}


def _summary(decisions: tuple[Decision, ...]) -> dict[str, Any]:
    deleting = [d for d in decisions if d.deletes]
    rules = Counter(d.rule.value for d in decisions)
    return {
        "delete": len(deleting),
        "keep": len(decisions) - len(deleting),
        "by_rule": {rule: rules[rule] for rule in sorted(rules)},
    }


def plan_summary(plan: Plan, version: int = LATEST_FORMAT) -> dict[str, Any]:
    if version == 1:
        return {
            "images": len(plan.decisions),
            "delete": len(plan.deletions),
            "keep": len(plan.kept),
            "freed_bytes": plan.freed_bytes,
            "total_bytes": plan.total_bytes,
            "by_rule": {rule.value: count for rule, count in plan.count_by_rule().items()},
        }
    by_kind = {
        kind.value: {"objects": len(of_kind), **_summary(of_kind)}
        for kind in Kind
        if (of_kind := tuple(d for d in plan.decisions if d.key.kind is kind))
    }
    return {
        "objects": len(plan.decisions),
        **_summary(plan.decisions),
        "freed_bytes": plan.freed_bytes,
        "total_bytes": plan.total_bytes,
        "by_kind": by_kind,
    }


def plan_document(plan: Plan, version: int = LATEST_FORMAT) -> dict[str, Any]:
    head: dict[str, Any] = {"format": version}
    head["kind" if version == 1 else "document"] = "plan"
    head |= {"created_at": plan.created_at.isoformat(), "refusal": plan.refusal}
    if version >= 2:
        head |= {"pressure": plan.pressure, "shortfall": plan.shortfall}
    return {
        **head,
        "summary": plan_summary(plan, version),
        "decisions": [decision_record(d, version) for d in plan.decisions],
    }


def outcome_record(outcome: Outcome, version: int = LATEST_FORMAT) -> dict[str, Any]:
    record = {
        "id": outcome.key.id,
        "references": list(outcome.references),
        "rule": outcome.rule.value,
        "status": outcome.status.value,
        "detail": outcome.detail,
        "freed_bytes": outcome.freed_bytes,
    }
    return record if version == 1 else {"kind": outcome.key.kind.value, **record}


def _by_status(outcomes: tuple[Outcome, ...]) -> dict[str, int]:
    counts = Counter(o.status for o in outcomes)
    return {status.value: counts[status] for status in OutcomeStatus}


def run_document(
    plan: Plan, report: Report, freed_bytes: int, version: int = LATEST_FORMAT
) -> dict[str, Any]:
    document = plan_document(plan, version)
    document["kind" if version == 1 else "document"] = "run"
    document["outcomes"] = [outcome_record(o, version) for o in report.outcomes]
    result: dict[str, Any] = {
        "aborted": report.aborted,
        "freed_bytes": freed_bytes,
        "by_status": _by_status(report.outcomes),
    }
    if version >= 2:
        result["by_kind"] = {
            kind.value: {"by_status": _by_status(of_kind)}
            for kind in Kind
            if (of_kind := tuple(o for o in report.outcomes if o.key.kind is kind))
        }
    document["result"] = result
    return document


def write_json(document: dict[str, Any], out: IO[str]) -> None:
    json.dump(document, out, indent=2)
    out.write("\n")
