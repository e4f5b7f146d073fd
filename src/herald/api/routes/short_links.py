"""Short links: TWIN's ``GET /api/v1/shortLinks`` and the ``GET /{code}`` redirect."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.convertors import Convertor, register_url_convertor
from starlette.responses import Response
from starlette.routing import Route

from herald.api.deps import HeraldDep, ProjectId
from herald.api.errors import error_response
from herald.api.query import Fields, Offset, Page, first_row, list_filter, list_sort, twin_list
from herald.api.responses import API, body, errors
from herald.api.twin_lists import listed_response, sort_query
from herald.bootstrap import Herald
from herald.domain.links import CODE_PATTERN, to_ascii_url
from herald.errors import HeraldError
from herald.schemas.out.short_links import ShortLinkList
from herald.services import link_clicks
from herald.services import short_links as service

# Alike across route modules (duplicates): the decorator with its responses, a session and
# one service call, TWIN's paging parameters. FastAPI reads each signature; the logic differs.
router = APIRouter(prefix="/api/v1/shortLinks", tags=["short links"])


@router.get(
    "",
    summary="List short links with their clicks (TWIN)",
    response_model=None,
    responses={**body(ShortLinkList), **errors(API)},
)
async def list_short_links(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    message_id: Annotated[list[str] | None, list_filter("messageId")] = None,
    task_id: Annotated[list[str] | None, list_filter("taskId")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
    page: Page = None,
    sort: Annotated[str | None, sort_query(service.SORT_KEYS)] = None,
    fields: Fields = None,
) -> Response:
    """Newest first unless ``sort`` says otherwise. ``messageId`` and ``taskId`` filter:
    comma-separated, repeated or ``[i]``; ``fields`` keeps only those keys of each item."""
    order = list_sort(sort, service.SORT_KEYS)
    async with herald.sessions() as session:
        listed = await service.list_short_links(
            session,
            project,
            twin_list(request, "messageId"),
            twin_list(request, "taskId"),
            limit,
            first_row(offset, page, limit),
            base_url=service.short_link_base(herald.settings),
            sort=order,
        )
    # A link of no message leaves messageId out (TWIN's SDK reads a string, never null).
    return listed_response(request, listed, ShortLinkList, exclude_unset=True)


class _CodeConvertor(Convertor[str]):
    regex = CODE_PATTERN

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("shortcode", _CodeConvertor())


def _recorder(request: Request, herald: Herald) -> link_clicks.ClickRecorder:
    # One per app (and so per event loop), made on the first click.
    recorder: link_clicks.ClickRecorder | None = getattr(request.app.state, "click_recorder", None)
    if recorder is None:
        recorder = link_clicks.ClickRecorder(herald.sessions, herald.clock)
        request.app.state.click_recorder = recorder
    return recorder


async def follow(request: Request) -> Response:
    """302 to the link's target once the click is committed; HEAD answers without counting.

    A plain Starlette endpoint (no dependency injection, no body parsing), and clicks that
    arrive together share one transaction: this is the path every recipient's tap takes.
    """
    herald: Herald = request.app.state.herald
    code: str = request.path_params["code"]
    try:
        if request.method == "HEAD":
            async with herald.sessions() as session:
                url = await link_clicks.target_of(session, code, herald.clock.now())
        else:
            url = await _recorder(request, herald).click(code, request.headers.get("user-agent"))
    except HeraldError as e:
        return error_response(e.status_code, e.message, e.code, e.details)
    return Response(
        status_code=302, headers={"Location": to_ascii_url(url), "Cache-Control": "no-store"}
    )


#: Added to the app after every other route: a 7-16 character path such as ``/healthz``
#: also looks like a code, and the first matching route wins.
redirect_route = Route("/{code:shortcode}", follow, methods=["GET"], include_in_schema=False)
