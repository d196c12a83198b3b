"""One line per package of gcd from the coverage data `scripts/test` collects with the unit
tests: statements and branches covered, as coverage.py counts them in its own table.

    .venv/bin/python -m scripts.coverage_summary [DATA_FILE]
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import coverage

ROOT = Path(__file__).resolve().parent.parent


def packages() -> list[tuple[str, list[str], list[str]]]:
    """(label, include patterns, omit patterns): each subpackage, then the top-level modules."""
    names = sorted(p.name for p in (ROOT / "gcd").iterdir() if (p / "__init__.py").is_file())
    rows: list[tuple[str, list[str], list[str]]] = [
        (f"gcd/{name}", [f"gcd/{name}/*"], []) for name in names
    ]
    rows.append(("gcd/*.py", ["gcd/*"], [f"gcd/{name}/*" for name in names]))
    return rows


def main(argv: list[str]) -> int:
    data = coverage.Coverage(data_file=argv[0] if argv else ".coverage")
    data.load()
    print("coverage by package (statements and branches, unit tests):")
    for label, include, omit in packages():
        try:
            percent = data.report(include=include, omit=omit, file=io.StringIO())
        except coverage.exceptions.NoDataError:
            continue
        print(f"  {label:<14} {percent:5.1f} %")
    print(f"  {'gcd':<14} {data.report(file=io.StringIO()):5.1f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
