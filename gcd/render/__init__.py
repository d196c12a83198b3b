"""Plans and run reports for people: rich tables. JSON for scripts is in `gcd.documents`;
the plan table is in `gcd.render.plan_table`, `gcd explain`'s story in `gcd.render.story`.

Every row names its kind and the object as `docker` would show it: an image by its tags, a
container, volume or network by its name (an anonymous volume as `<anonymous>`), a build-cache
record by its description. The summary counts each kind, in the order the plan lists them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import IO

from rich.console import Console
from rich.table import Table

from gcd.core.kind import Key, Kind
from gcd.core.kinds.images import image_of
from gcd.core.plan import Decision
from gcd.core.records import BuildCacheRecord, Volume
from gcd.core.units import format_bytes
from gcd.engine.outcomes import OutcomeStatus, Report

_PLURALS = {
    Kind.IMAGE: "images",
    Kind.CONTAINER: "containers",
    Kind.VOLUME: "volumes",
    Kind.BUILD_CACHE: "build-cache records",
    Kind.NETWORK: "networks",
}
_SINGULARS = {
    Kind.IMAGE: "image",
    Kind.CONTAINER: "container",
    Kind.VOLUME: "volume",
    Kind.BUILD_CACHE: "build-cache record",
    Kind.NETWORK: "network",
}
ANONYMOUS = "<anonymous>"
NO_NAME = "<none>"


def names(decision: Decision) -> list[str]:
    """What the NAME column shows: an image's tags (its digests are in the JSON), an anonymous
    volume as `<anonymous>`, a build-cache record by its description (else its type)."""
    subject = decision.subject
    if decision.key.kind is Kind.IMAGE:
        return [ref.familiar for ref in image_of(decision).tags] or [NO_NAME]
    if isinstance(subject, Volume) and subject.anonymous:
        return [ANONYMOUS]
    if isinstance(subject, BuildCacheRecord):
        return [subject.description or subject.type or NO_NAME]
    return list(subject.names) or [NO_NAME]


def count_kinds(keys: Iterable[Key]) -> str:
    """`3 containers, 12 images, 1 volume`: each kind in the order it first appears."""
    counts = Counter(key.kind for key in keys)
    return ", ".join(
        f"{counts[kind]} {(_SINGULARS if counts[kind] == 1 else _PLURALS)[kind]}" for kind in counts
    )


def _statuses_per_kind(report: Report) -> list[str]:
    """`2 containers: 2 removed`, `5 images: 4 removed, 1 conflict`: per kind, in order."""
    parts = []
    for kind in dict.fromkeys(o.key.kind for o in report.outcomes):
        statuses = Counter(o.status for o in report.outcomes if o.key.kind is kind)
        counted = ", ".join(f"{statuses[s]} {s.value}" for s in OutcomeStatus if statuses[s])
        parts.append(
            f"{count_kinds(o.key for o in report.outcomes if o.key.kind is kind)}: {counted}"
        )
    return parts


def _console(out: IO[str]) -> Console:
    return Console(file=out, width=None if out.isatty() else 200, soft_wrap=False)


def write_run_table(report: Report, freed_bytes: int, out: IO[str]) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("KIND", "NAME", "ID", "RULE", "OUTCOME", "FREED", "DETAIL"):
        table.add_column(column, justify="right" if column == "FREED" else "left", no_wrap=True)
    for outcome in report.outcomes:
        table.add_row(
            outcome.key.kind.value,
            "\n".join(outcome.references)
            or (ANONYMOUS if outcome.key.kind is Kind.VOLUME else NO_NAME),
            outcome.key.short,
            outcome.rule.value,
            outcome.status.value,
            format_bytes(outcome.freed_bytes) if outcome.freed_bytes else "",
            outcome.detail,
        )
    console = _console(out)
    console.print(table)
    console.print(
        f"freed {format_bytes(freed_bytes)} ({freed_bytes} bytes); "
        + ("; ".join(_statuses_per_kind(report)) or "nothing to do"),
        highlight=False,
    )
    if report.aborted:
        console.print(f"ABORTED: {report.aborted}", highlight=False)
    if report.time_up:
        console.print(f"TIME UP: {report.time_up}", highlight=False)


# At the end: the plan table uses the helpers above (`names`, `count_kinds`, `_console`).
from gcd.render.plan_table import write_plan_table  # noqa: E402

__all__ = ["ANONYMOUS", "NO_NAME", "count_kinds", "names", "write_plan_table", "write_run_table"]
