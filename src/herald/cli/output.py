"""Where the CLI writes: its consoles, and the tables it lists things in."""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text


def _width(stream: TextIO) -> int | None:
    # Piped into grep, a file, a log or another program, Rich assumes 80 columns and wraps
    # or squeezes to fit, breaking paths and cutting values short; a terminal (or COLUMNS)
    # keeps its own width.
    if stream.isatty() or "COLUMNS" in os.environ:
        return None
    return 400


console = Console(width=_width(sys.stdout))
err = Console(stderr=True, width=_width(sys.stderr))


class PlainTable(Table):
    """A table whose text cells are shown as given, never read as Rich markup.

    Cells hold what people named things: "acme[/bold]" as markup would crash the output
    (after a project was created, before its API key was shown).
    """

    def add_row(self, *cells: RenderableType | None, **options: Any) -> None:
        super().add_row(
            *(Text(cell) if isinstance(cell, str) else cell for cell in cells), **options
        )


def listing(*headers: str, **options: Any) -> Table:
    """A table whose first column, an id people copy into the next command, never wraps.

    On a narrow terminal the other columns give way instead: a UUID broken over two lines
    cannot be copied.
    """
    table = PlainTable(**options)
    first, *rest = headers
    table.add_column(first, no_wrap=True, min_width=36)
    for header in rest:
        table.add_column(header)
    return table
