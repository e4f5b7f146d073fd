"""Request dependencies: the shared Herald graph and the calling project."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import Depends, Header, Request

from herald.bootstrap import Herald
from herald.errors import Unauthorized
from herald.services.projects import authenticate


async def get_herald(request: Request) -> Herald:
    # async on purpose: FastAPI runs plain-def dependencies in a worker thread, a thread hop
    # on every request.
    herald: Herald = request.app.state.herald
    return herald


HeraldDep = Annotated[Herald, Depends(get_herald)]

# api key -> (project id, checked at); keys cannot change, only projects be deleted.
_AUTH_CACHE: dict[str, tuple[str, float]] = {}
_AUTH_TTL = 60.0


async def project_id(
    herald: HeraldDep, authorization: Annotated[str | None, Header()] = None
) -> str:
    """The project whose ``Authorization: Bearer <apiKey>`` came with the request."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "Send your API key as 'Authorization: Bearer <apiKey>'.", code="missing_api_key"
        )
    key = authorization[7:].strip()
    cached = _AUTH_CACHE.get(key)
    if cached and time.monotonic() - cached[1] < _AUTH_TTL:
        return cached[0]
    async with herald.sessions() as session:
        project = await authenticate(session, key)
    if len(_AUTH_CACHE) > 10_000:
        _AUTH_CACHE.clear()
    _AUTH_CACHE[key] = (project.id, time.monotonic())
    return project.id


ProjectId = Annotated[str, Depends(project_id)]
