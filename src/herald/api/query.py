"""Query-string helpers for TWIN's list filters."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Query
from starlette.requests import Request

from herald.schemas.messages import id_list

# Past any real list; a larger number would not even fit the databases' integers (a 500).
MAX_OFFSET = 1_000_000_000
Offset = Annotated[
    int, Query(ge=0, le=MAX_OFFSET, description="Rows to skip (a cursor pages faster).")
]


def twin_list(request: Request, name: str) -> list[str]:
    """Every value of a list filter, however the client spelled it.

    TWIN's PHP SDK builds queries with ``http_build_query``, so an array arrives as
    ``name[0]=a&name[1]=b``; other clients send ``name=a,b`` or repeat ``name=a&name=b``.
    """
    indexed = re.compile(rf"{re.escape(name)}\[\d*\]")
    values = [
        value
        for key, value in request.query_params.multi_items()
        if key == name or indexed.fullmatch(key)
    ]
    return [item for value in values for item in id_list(value)]
