"""Tables the CLI lists things in."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def listing(*headers: str, **options: Any) -> Table:
    """A table whose first column, an id people copy into the next command, never wraps.

    On a narrow terminal (or piped, where Rich assumes 80 columns) the other columns give
    way instead: a UUID broken over two lines cannot be copied or grepped.
    """
    table = Table(**options)
    first, *rest = headers
    table.add_column(first, no_wrap=True, min_width=36)
    for header in rest:
        table.add_column(header)
    return table
