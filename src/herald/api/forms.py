"""Multipart forms hold text Herald can store (see :mod:`herald.schemas.text`).

A form's text fields are plain strings, not a request model, so the model's check does not
see them; file parts are checked row by row as they are imported.
"""

from __future__ import annotations

from starlette.requests import Request

from herald.schemas.text import NUL, nul_refused


async def storable_form(request: Request) -> None:
    """Refuse a form whose field names or text values hold a NUL character."""
    # FastAPI has parsed the form before it solves dependencies; this reads its cached copy.
    form = await request.form()
    for name, value in form.multi_items():
        if NUL in name or (isinstance(value, str) and NUL in value):
            raise nul_refused(name.replace(NUL, "\\u0000"))
