"""Plans and run reports for scripts: `--output json`, in format 2 (every kind) or, with
`--format-version 1`, the images-only format 1 of earlier releases. Fields are only ever
added within a format number.

Format 1 promised a document about images; a script reading it would take a container's or a
volume's decision for an image's. So format 1 leaves the other kinds out entirely: their
decisions, their outcomes and their bytes (every other kind's storage units are its own, never
an image layer, so the images' figures are the totals less theirs)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from gcd.core.kind import Kind
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision, Plan
from gcd.core.records import BuildCacheRecord, Container, Network, Volume
from gcd.core.rules import RuleId
from gcd.engine.outcomes import Outcome, OutcomeStatus, Report
from gcd.formats import LATEST_FORMAT

if TYPE_CHECKING:  # `gcd --help` reads FORMATS without the policy loader
    from gcd.config.sites import Unmatched
    from gcd.config.stacks import ComposeWarning


def _image_fields(decision: Decision) -> dict[str, Any]:
    image = image_of(decision)
    return {
        "references": [str(ref) for ref in image.tags],
        "digests": [str(ref) for ref in image.digests],
        "seen_at": image.seen_at.isoformat(),
        "created": image.created.isoformat() if image.created else None,
        "last_used": _when(image.last_used),
        "age_from": image.age_from.value,
    }


def _unrecorded(plan: Plan) -> dict[str, Any] | None:
    """Images first seen without an arrival record (`gcd.core.ages`), or None."""
    found = plan.unrecorded
    if found is None:
        return None
    return {
        "images": found.count,
        "start": found.start.value,
        "eligible_from": _when(found.eligible_from),
        "message": found.describe(),
    }


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _kind_fields(decision: Decision) -> dict[str, Any]:
    """The fields only the decision's kind has, for format 2 (under the kind's name)."""
    subject = decision.subject
    if decision.key.kind is Kind.IMAGE:
        return _image_fields(decision)
    if isinstance(subject, Container):
        return {
            "name": subject.name,
            "image": subject.image,
            "state": subject.state.value,
            "finished_at": _when(subject.finished_at),
            "restart_policy": subject.restart_policy,
        }
    if isinstance(subject, Volume):
        return {
            "name": subject.name,
            "anonymous": subject.anonymous,
            "driver": subject.driver,
            "last_used": _when(subject.last_used),
        }
    if isinstance(subject, BuildCacheRecord):
        return {
            "type": subject.type,
            "description": subject.description,
            "shared": subject.shared,
            "in_use": subject.in_use,
            "last_used": _when(subject.last_used),
        }
    if isinstance(subject, Network):
        return {
            "name": subject.name,
            "driver": subject.driver,
            "scope": subject.scope,
            "last_used": _when(subject.last_used),
        }
    raise TypeError(f"no document fields for {decision.key.kind.value} {type(subject).__name__}")


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
            "created": fields["created"],  # not `last_used`: format 1 keeps exactly its fields
            "size_bytes": common["size_bytes"],
            "freed_bytes": common["freed_bytes"],
        }
    return {
        "kind": kind.value,
        **common,
        "names": list(decision.subject.names),
        kind.value: _kind_fields(decision),
    }


def _summary(decisions: tuple[Decision, ...]) -> dict[str, Any]:
    deleting = [d for d in decisions if d.deletes]
    rules = Counter(d.rule.value for d in decisions)
    return {
        "delete": len(deleting),
        "keep": len(decisions) - len(deleting),
        "by_rule": {rule: rules[rule] for rule in sorted(rules)},
    }


def _images(decisions: tuple[Decision, ...]) -> tuple[Decision, ...]:
    return tuple(d for d in decisions if d.key.kind is Kind.IMAGE)


def _others(decisions: tuple[Decision, ...]) -> tuple[Decision, ...]:
    return tuple(d for d in decisions if d.key.kind is not Kind.IMAGE)


def plan_summary(plan: Plan, version: int = LATEST_FORMAT) -> dict[str, Any]:
    if version == 1:
        images, others = _images(plan.decisions), _others(plan.decisions)
        rules = Counter(d.rule for d in images)
        return {
            "images": len(images),
            "delete": sum(1 for d in images if d.deletes),
            "keep": sum(1 for d in images if not d.deletes),
            "freed_bytes": plan.freed_bytes - sum(d.freed_bytes for d in others if d.deletes),
            "total_bytes": plan.total_bytes - sum(d.subject.size_bytes for d in others),
            "by_rule": {rule.value: rules[rule] for rule in RuleId if rules[rule]},
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
        "shared": [
            {
                "users": [key.id for key in group.users],
                "units": group.units,
                "freed_bytes": group.freed_bytes,
            }
            for group in plan.shared
        ],
    }


def plan_document(
    plan: Plan,
    version: int = LATEST_FORMAT,
    warnings: Sequence[Unmatched | ComposeWarning] = (),
) -> dict[str, Any]:
    """`warnings`: the keep patterns that match no current object (`gcd.config.sites`), so
    that a script reading the plan sees a probable typo as the operator on a terminal does;
    and the compose files that failed or globs that matched none (`gcd.config.stacks`)."""
    head: dict[str, Any] = {"format": version}
    head["kind" if version == 1 else "document"] = "plan"
    head |= {"created_at": plan.created_at.isoformat(), "refusal": plan.refusal}
    if version >= 2:
        head |= {"pressure": plan.pressure, "shortfall": plan.shortfall, "busy": plan.busy}
        head["unrecorded_ages"] = _unrecorded(plan)
    document = {
        **head,
        "summary": plan_summary(plan, version),
        "decisions": [
            decision_record(d, version)
            for d in (_images(plan.decisions) if version == 1 else plan.decisions)
        ],
    }
    if version == 1:  # format 1 keeps exactly its fields: scripts may check them
        return document
    return document | {
        "warnings": [
            {
                "file": w.file,
                "line": w.line,
                "column": w.column,
                "field": w.field,
                "pattern": w.pattern,
                "kind": w.kind,
                "message": str(w),
            }
            for w in warnings
        ],
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
    outcomes = report.outcomes
    if version == 1:
        others = tuple(o for o in outcomes if o.key.kind is not Kind.IMAGE)
        outcomes = tuple(o for o in outcomes if o.key.kind is Kind.IMAGE)
        freed_bytes -= sum(o.freed_bytes for o in others if o.status is OutcomeStatus.REMOVED)
    document["outcomes"] = [outcome_record(o, version) for o in outcomes]
    result: dict[str, Any] = {
        "aborted": report.aborted,
        "freed_bytes": freed_bytes,
        "by_status": _by_status(outcomes),
    }
    if version >= 2:
        result["time_up"] = report.time_up
        result["by_kind"] = {
            kind.value: {"by_status": _by_status(of_kind)}
            for kind in Kind
            if (of_kind := tuple(o for o in report.outcomes if o.key.kind is kind))
        }
    document["result"] = result
    return document


def write_json(document: dict[str, Any], out: IO[str]) -> None:
    """Indented for a terminal; one line for a pipe or a file, which the standard library's C
    encoder writes (`indent` runs its pure-Python encoder: 25 ms against 4 ms for the 1,100
    decisions of a 1,000-image plan). The same document either way; `jq .` indents it."""
    if out.isatty():
        json.dump(document, out, indent=2)
    else:
        out.write(json.dumps(document))
    out.write("\n")
