"""A plain column layout for long tables: one line per row, never wrapped.

rich measures every cell of every row several times (11 s for a 5,000-image plan); this
lays out in one pass. Columns are as wide as their widest cell; when a width is given (a
terminal's) and the lines do not fit, the shrinkable columns give way, last one first, cut
with `…`: first those with a soft floor down to it, then each down to its hard floor.
Groups of rows are separated by a blank line; a styled row (on a terminal) is wrapped in its
ANSI colour.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

GAP = "  "
ELLIPSIS = "…"
RULE = "─"
_STYLES = {"red": "\x1b[31m", "bold": "\x1b[1m", "dim": "\x1b[2m"}
_RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    right: bool = False
    shrink_to: int | None = None
    """None: never shortened; else the narrowest it may become on a narrow terminal."""
    gives_first_to: int | None = None
    """Shortened to this first, before any column is shortened to its `shrink_to`."""


@dataclass(frozen=True, slots=True)
class Row:
    cells: tuple[str, ...]
    style: str | None = None


@dataclass
class Grid:
    columns: Sequence[Column]
    groups: list[list[Row]] = field(default_factory=list)

    def group(self) -> None:
        """Rows added from here on are a new group."""
        if not self.groups or self.groups[-1]:
            self.groups.append([])

    def add(self, *cells: str, style: str | None = None) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        if not self.groups:
            self.groups.append([])
        self.groups[-1].append(Row(tuple(cells), style))

    def widths(self, width: int | None) -> list[int]:
        natural = [len(c.header) for c in self.columns]
        for rows in self.groups:
            for row in rows:
                for index, cell in enumerate(row.cells):
                    natural[index] = max(natural[index], len(cell))
        if width is None:
            return natural
        over = sum(natural) + len(GAP) * (len(natural) - 1) - width
        floors = ([c.gives_first_to for c in self.columns], [c.shrink_to for c in self.columns])
        for floor_of in floors:
            for index in reversed(range(len(self.columns))):
                floor = floor_of[index]
                if over <= 0:
                    return natural
                if floor is None or natural[index] <= floor:
                    continue
                given = min(over, natural[index] - floor)
                natural[index] -= given
                over -= given
        return natural

    def lines(self, width: int | None = None, *, styled: bool = False) -> list[str]:
        widths = self.widths(width)

        def line(cells: Sequence[str]) -> str:
            parts = []
            for cell, column, size in zip(cells, self.columns, widths, strict=True):
                text = cell if len(cell) <= size else cell[: max(size - 1, 0)] + ELLIPSIS
                parts.append(text.rjust(size) if column.right else text.ljust(size))
            return GAP.join(parts).rstrip()

        def paint(text: str, style: str | None) -> str:
            return f"{_STYLES[style]}{text}{_RESET}" if styled and style else text

        head = line([c.header for c in self.columns])
        out = [paint(head, "bold"), RULE * (sum(widths) + len(GAP) * (len(widths) - 1))]
        for number, rows in enumerate(g for g in self.groups if g):
            if number:
                out.append("")
            out.extend(paint(line(row.cells), row.style) for row in rows)
        return out
