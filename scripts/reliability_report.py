"""The reliability table of one test run: `python -m scripts.reliability_report FILE`, where
FILE holds the JSON lines the reliability tests recorded (`tests/figures.py`). Prints one row
per area and engine (unit-test scenarios, which need no engine, count under the default
engine's row), and exits 1 if any scenario removed an object it should have kept."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

from tests.figures import Figure, read


def table(figures: list[Figure]) -> str:
    rows: dict[tuple[str, str], list[Figure]] = defaultdict(list)
    for figure in figures:
        rows[figure.area, figure.engine or "docker.io 20.10 or offline"].append(figure)
    lines = [
        "| area | engine | scenarios | objects at risk | wrongly removed | faults survived "
        "| bad inputs tried | removed by policy |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for (area, engine), group in sorted(rows.items()):
        lines.append(
            f"| {area} | {engine} | {len(group)} | {sum(f.at_risk for f in group)} "
            f"| {sum(f.wrongly_removed for f in group)} | {sum(f.faults for f in group)} "
            f"| {sum(f.inputs for f in group)} | {sum(f.removed for f in group)} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m scripts.reliability_report FIGURES.jsonl", file=sys.stderr)
        return 2
    path = Path(argv[0])
    if not path.is_file():
        print(f"{path}: no reliability figures recorded", file=sys.stderr)
        return 1
    figures = read(path)
    print(table(figures))
    wrong = sum(f.wrongly_removed for f in figures)
    if wrong:
        print(f"{wrong} kept objects were removed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
