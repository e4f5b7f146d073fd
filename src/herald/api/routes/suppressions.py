"""Opt-out suppressions: the pairs (sender, person) Herald must not text.

People opt out by replying STOP to a bot (see :mod:`herald.services.bots.inbound`) or by
blocking a Telegram bot; a client can add and remove pairs here too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import Field

from herald.api.deps import HeraldDep, ProjectId
from herald.api.query import Offset
from herald.api.responses import API, JSON_BODY, errors
from herald.schemas.messages import WireModel
from herald.schemas.out.bots import SuppressionList, SuppressionOut
from herald.services.delivery import suppressions as service
from herald.store.bots import Suppression

# Routes share one shape with every resource's (parse, one service call, render).
router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"])


class SuppressionIn(WireModel):
    # A channel's name (sms, whatsapp...), stored lowercased in a 20-character column that
    # PostgreSQL, unlike SQLite, holds to its width.
    channel: str = Field(default="sms", pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,19}$")
    from_: str = Field(alias="from", min_length=1, max_length=200)
    to: str = Field(min_length=1, max_length=200)


def suppression_out(s: Suppression) -> dict[str, Any]:
    """A suppression on the wire (a row to a dict, like every resource's ``*_out``)."""
    return {
        "id": s.id,
        "channel": s.channel,
        "from": s.from_address,
        "to": s.to_address,
        "source": s.source,
        "createdAt": s.created_at.isoformat(),
    }


@router.get(
    "",
    summary="List opt-out suppressions",
    response_model=SuppressionList,
    responses=errors(API),
)
async def list_suppressions(
    herald: HeraldDep,
    project: ProjectId,
    channel: str | None = None,
    to: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    async with herald.sessions() as session:
        items = await service.list_suppressions(
            session,
            project,
            channel=channel,
            to_address=to,
            from_address=from_,
            limit=limit,
            offset=offset,
        )
    return {"count": len(items), "items": [suppression_out(s) for s in items]}


@router.post(
    "",
    status_code=201,
    summary="Suppress a pair",
    response_model=SuppressionOut,
    responses=errors(API, JSON_BODY),
)
async def add_suppression(
    payload: SuppressionIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        added = await service.add_suppression(
            session, project, payload.channel, payload.from_, payload.to, at=herald.clock.now()
        )
        return suppression_out(added)


@router.delete(
    "/{suppression_id}",
    status_code=204,
    summary="Remove a suppression",
    responses=errors(API, 404),
)
async def remove_suppression(
    suppression_id: str, herald: HeraldDep, project: ProjectId
) -> Response:
    async with herald.sessions() as session, session.begin():
        await service.remove_suppression(session, project, suppression_id)
    return Response(status_code=204)
