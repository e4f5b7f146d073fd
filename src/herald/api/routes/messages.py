"""``/api/v1/messages``: TWIN-compatible send, read, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import Response

from herald.api.deps import HeraldDep, ProjectId
from herald.api.query import (
    Fields,
    ListFilter,
    Offset,
    Page,
    Sort,
    TwinTimezone,
    first_row,
    list_filter,
    list_sort,
    list_zone,
    only_fields,
    query_time,
    twin_list,
)
from herald.api.responses import API, JSON_BODY, body, errors, json_response
from herald.schemas.messages import CancelMessagesIn, CreateMessagesIn
from herald.schemas.out.callbacks import CallbackList
from herald.schemas.out.messages import (
    BatchResult,
    GroupOut,
    MessageDetail,
    MessageItem,
    MessageList,
)
from herald.services import projects
from herald.services.messages import callback_log as client_callbacks
from herald.services.messages import idempotency
from herald.services.messages import reading as service
from herald.store.messages import MessageFilter

# Alike across route modules (duplicates): the decorator with its responses, a session and
# one service call, TWIN's paging parameters. FastAPI reads each signature; the logic differs.
router = APIRouter(prefix="/api/v1/messages", tags=["messages"])


@router.post(
    "",
    status_code=201,
    summary="Send messages (TWIN create batch)",
    response_model=None,
    responses={
        **body(list[BatchResult], 201, "One result per created message (TWIN's bare array)."),
        **errors(API, JSON_BODY, 409),
    },
)
async def create_messages(
    payload: CreateMessagesIn,
    herald: HeraldDep,
    project: ProjectId,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Accept messages; answers TWIN's bare array of results, one per created message."""
    answer = await idempotency.create_messages(
        herald.sessions, herald.clock, herald.settings, project, payload, idempotency_key
    )
    herald.work_available.set()
    return Response(
        answer.body,
        status_code=answer.status_code,
        media_type="application/json",
        headers={"Idempotent-Replayed": "true"} if answer.replayed else None,
    )


@router.get(
    "",
    summary="List messages (TWIN list / get)",
    response_model=None,
    responses={**body(MessageList), **errors(API)},
)
async def list_messages(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    id: ListFilter = None,
    status: ListFilter = None,
    phone: str | None = None,
    group_id: Annotated[list[str] | None, list_filter("groupId")] = None,
    flow_id: Annotated[list[str] | None, list_filter("flowId")] = None,
    task_id: Annotated[list[str] | None, list_filter("taskId")] = None,
    bulk_id: Annotated[list[str] | None, list_filter("bulkId")] = None,
    channel: str | None = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
    page: Page = None,
    cursor: str | None = None,
    without_count: Annotated[bool, Query(alias="withoutCount")] = False,
    without_items: Annotated[bool, Query(alias="withoutItems")] = False,
    sort: Sort = None,
    fields: Fields = None,
    timezone: TwinTimezone = None,
) -> Response:
    """Newest first unless ``sort`` says otherwise, each with its status history. Filters
    take a comma-separated list, repeated parameters or PHP's ``name[0]=…``; ``flowId`` is the
    same as ``groupId``. ``from``/``to`` without an offset are read in ``timezone`` (hours),
    else in the project's zone; ``fields`` keeps only those keys of each item."""
    order = list_sort(sort, service.SORT_KEYS)
    async with herald.sessions() as session:
        found = await projects.get_project(session, project)
    zone = list_zone(timezone, found.default_timezone or herald.settings.default_timezone)
    f = MessageFilter(
        ids=twin_list(request, "id"),
        statuses=twin_list(request, "status"),
        phone=_plus_restored(phone),
        group_ids=twin_list(request, "groupId") + twin_list(request, "flowId"),
        task_ids=twin_list(request, "taskId"),
        bulk_ids=twin_list(request, "bulkId"),
        channel=channel,
        created_from=query_time(from_, "from", zone),
        created_to=query_time(to, "to", zone),
    )
    async with herald.sessions() as session:
        listed = await service.list_messages(
            session,
            project,
            f,
            limit=limit,
            cursor=cursor,
            offset=first_row(offset, page, limit),
            with_count=not without_count,
            with_items=not without_items,
            sort=order,
        )
    return json_response(only_fields(listed, twin_list(request, "fields"), _ITEM_KEYS))


_ITEM_KEYS = frozenset(field.alias or name for name, field in MessageItem.model_fields.items())


def _plus_restored(phone: str | None) -> str | None:
    """A phone filter whose unencoded ``+`` arrived as a space (``?phone=+1415…``)."""
    if phone and phone.startswith(" ") and phone.strip().isdigit():
        return "+" + phone.strip()
    return phone


@router.get(
    "/{message_id}",
    summary="One message with its history and attempts",
    response_model=None,
    responses={**body(MessageDetail), **errors(API, 404)},
)
async def get_message(message_id: str, herald: HeraldDep, project: ProjectId) -> Response:
    async with herald.sessions() as session:
        return json_response(await service.get_message(session, project, message_id))


@router.get(
    "/{message_id}/callbacks",
    summary="The status callbacks sent for a message, with every delivery attempt",
    response_model=CallbackList,
    responses=errors(API, 404),
)
async def list_callbacks(message_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await client_callbacks.callback_log(session, project, message_id)


@router.delete(
    "",
    summary="Cancel messages not yet final (TWIN cancel)",
    response_model=list[BatchResult],
    responses=errors(API, JSON_BODY),
)
async def cancel_messages(
    payload: CancelMessagesIn, herald: HeraldDep, project: ProjectId
) -> list[dict[str, Any]]:
    """TWIN's bare array, one element per message found; one already final carries an
    ``error`` instead of failing the whole request."""
    async with herald.sessions() as session, session.begin():
        return await service.cancel_messages(session, project, payload, now=herald.clock.now())


@router.delete(
    "/{message_id}",
    summary="Cancel one message not yet final",
    response_model=BatchResult,
    responses=errors(API, 404, 409),
)
async def cancel_message(message_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    """Channels not yet with a provider are cancelled; 409 only for a message already final."""
    async with herald.sessions() as session, session.begin():
        return await service.cancel_message(session, project, message_id, now=herald.clock.now())


groups_router = APIRouter(prefix="/api/v1/groups", tags=["messages"])


@groups_router.get(
    "/{group_id}",
    summary="A group's overall status (delivered when any member is)",
    response_model=GroupOut,
    responses=errors(API, 404),
)
async def get_group(group_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await service.get_group(session, project, group_id)
