"""``/api/v1/templates``: TWIN-compatible template CRUD, versions and preview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field, StrictBool, StrictInt

from herald.api.deps import CallerUserId, HeraldDep, ProjectId
from herald.api.query import Fields, ListFilter, Offset, Page, first_row, list_sort, twin_list
from herald.api.responses import API, JSON_BODY, body, errors
from herald.api.twin_lists import listed_response, sort_query
from herald.schemas.messages import Scalar, WireModel
from herald.schemas.out.base import IdOut
from herald.schemas.out.templates import Preview, TemplateList, TemplateOut, VersionList
from herald.services.templates import preview
from herald.services.templates import resource as service

router = APIRouter(prefix="/api/v1/templates", tags=["templates"])
# Routes here and in every resource share one shape on purpose: documented, a session, one call.


class TemplateIn(WireModel):
    """TWIN's template body. On update, fields left out keep their current value."""

    name: str | None = None
    # Checked by the service, which names each problem's path and gives it a precise code.
    channels: Any = None
    allowed_time_ranges: Any = Field(default=None, alias="allowedTimeRanges")
    # TWIN's admin override; a Herald API key already names its project.
    company_id: str | StrictInt | None = Field(default=None, alias="companyId")

    def fields(self) -> service.TemplateFields:
        return service.TemplateFields(self.name, self.channels, self.allowed_time_ranges)


class _PreviewOptionsIn(WireModel):
    variables: dict[str, Scalar] | None = None
    use_short_links: StrictBool = Field(default=False, alias="useShortLinks")
    from_: str | None = Field(default=None, alias="from")
    smart_encoding: StrictBool | None = Field(default=None, alias="smartEncoding")


class PreviewIn(_PreviewOptionsIn):
    """Preview a stored template; ``channels`` picks which of its channels (default: all)."""

    channels: list[str] | None = None

    def options(self) -> preview.PreviewOptions:
        return preview.PreviewOptions(
            self.variables or {},
            self.channels,
            self.use_short_links,
            self.from_,
            self.smart_encoding,
        )


class AdHocPreviewIn(_PreviewOptionsIn):
    """Preview content that is not stored: ``channels`` as in a template body."""

    channels: dict[str, Any]

    def options(self) -> preview.PreviewOptions:
        return preview.PreviewOptions(
            self.variables or {}, None, self.use_short_links, self.from_, self.smart_encoding
        )


Limit = Annotated[int, Query(ge=1, le=1000)]


@router.post(
    "",
    status_code=201,
    summary="Create a template (TWIN)",
    response_model=IdOut,
    responses=errors(API, JSON_BODY),
)
async def create_template(
    payload: TemplateIn, herald: HeraldDep, project: ProjectId, user: CallerUserId
) -> dict[str, str]:
    """Every content field is compile-checked: a syntax error is a 422 with line and column."""
    async with herald.sessions() as session, session.begin():
        template = await service.create_template(
            session, project, payload.fields(), now=herald.clock.now(), created_by=user
        )
    return {"id": template.id}


@router.get(
    "",
    summary="List templates (TWIN)",
    response_model=None,
    responses={**body(TemplateList), **errors(API)},
)
async def list_templates(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    name: str | None = None,
    id: ListFilter = None,
    limit: Limit = 50,
    offset: Offset = 0,
    page: Page = None,
    sort: Annotated[str | None, sort_query(service.SORT_KEYS)] = None,
    fields: Fields = None,
) -> Response:
    """Newest first unless ``sort`` says otherwise. ``id`` filters by id: comma-separated,
    repeated, or ``id[0]=…``; ``fields`` keeps only those keys of each item."""
    order = list_sort(sort, service.SORT_KEYS)
    async with herald.sessions() as session:
        listed = await service.list_templates(
            session,
            project,
            name=name,
            ids=twin_list(request, "id"),
            limit=limit,
            offset=first_row(offset, page, limit),
            sort=order,
        )
    return listed_response(request, listed, TemplateList)


@router.post(
    "/preview",
    summary="Preview content without storing a template",
    response_model=Preview,
    responses=errors(API, JSON_BODY),
)
async def preview_content(
    payload: AdHocPreviewIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await preview.preview_content(
            session, project, payload.channels, payload.options(), herald.settings
        )


@router.get(
    "/{template_id}",
    summary="One template (TWIN), optionally an older version",
    response_model=TemplateOut,
    responses=errors(API, 404),
)
async def get_template(
    template_id: str,
    herald: HeraldDep,
    project: ProjectId,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await service.get_template(session, project, template_id, version=version)


@router.get(
    "/{template_id}/versions",
    summary="A template's versions, newest first",
    response_model=VersionList,
    responses=errors(API, 404),
)
async def list_versions(template_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        return await service.list_versions(session, project, template_id)


@router.put(
    "/{template_id}",
    summary="Update a template (TWIN); stores a new version",
    response_model=TemplateOut,
    responses=errors(API, JSON_BODY, 404),
)
async def update_template(
    template_id: str,
    payload: TemplateIn,
    herald: HeraldDep,
    project: ProjectId,
    user: CallerUserId,
) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        return await service.update_template(
            session, project, template_id, payload.fields(), now=herald.clock.now(), created_by=user
        )


@router.delete(
    "/{template_id}",
    status_code=204,
    summary="Delete a template (TWIN)",
    responses=errors(API, 404),
)
async def delete_template(template_id: str, herald: HeraldDep, project: ProjectId) -> Response:
    async with herald.sessions() as session, session.begin():
        await service.delete_template(session, project, template_id, now=herald.clock.now())
    return Response(status_code=204)


@router.post(
    "/{template_id}/preview",
    summary="Render a template per channel, with SMS costs",
    response_model=Preview,
    responses=errors(API, JSON_BODY, 404),
)
async def preview_template(
    template_id: str, payload: PreviewIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    """Nothing is stored: shortened links show a placeholder code of the real length."""
    async with herald.sessions() as session:
        return await preview.preview_template(
            session, project, template_id, payload.options(), herald.settings
        )
