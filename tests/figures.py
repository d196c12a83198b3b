"""The reliability figures of a test run (`docs/reliability.md`): each reliability test
records what it put at risk and what happened, and `scripts/reliability_report.py` turns the
records of one run into the table the document shows.

Records are JSON lines appended to the file `GCD_RELIABILITY_FIGURES` names (`scripts/test`
sets it); without it they are kept in memory only, so a test run by hand records nothing."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, replace
from pathlib import Path

FIGURES_ENV = "GCD_RELIABILITY_FIGURES"
_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class Figure:
    area: str
    """The class of attack: "bad policy", "engine faults", "kills", "race load", …"""
    scenario: str
    """What this test did, in a few words."""
    at_risk: int = 0
    """Objects a rule or guard kept that the scenario could have removed."""
    wrongly_removed: int = 0
    """Of those, how many were gone afterwards (the claim: always zero)."""
    faults: int = 0
    """Faults injected (engine faults, kills, races) and survived."""
    inputs: int = 0
    """Bad inputs tried (policies, engine answers, command lines)."""
    removed: int = 0
    """Objects gcd removed during the scenario (deliberately, by policy)."""
    engine: str = ""
    """The engine of the run (`GCD_TEST_ENGINE`; empty: Debian's docker.io, or none)."""


def record(figure: Figure) -> None:
    target = os.environ.get(FIGURES_ENV)
    if not target:
        return
    if not figure.engine:
        figure = replace(figure, engine=os.environ.get("GCD_TEST_ENGINE", ""))
    line = json.dumps(asdict(figure), sort_keys=True)
    with _lock, Path(target).open("a", encoding="utf-8") as out:
        out.write(line + "\n")


def read(path: Path) -> list[Figure]:
    figures = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            figures.append(Figure(**json.loads(line)))
    return figures
