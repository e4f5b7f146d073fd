"""The calling project's own settings, and TWIN's bandwidth endpoints over its rate cap."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import Field, StrictFloat

from herald.api.deps import HeraldDep, ProjectId
from herald.api.responses import API, JSON_BODY, errors
from herald.errors import ValidationFailed
from herald.schemas.messages import WireModel
from herald.schemas.out.project import BandwidthList, ProjectOut
from herald.services import projects as service
from herald.store.projects import Project

# Alike across route modules (duplicates): the decorator with its responses, a session and
# one service call. FastAPI reads each signature; the logic differs.
router = APIRouter(prefix="/api/v1", tags=["project"])


class ProjectSettingsIn(WireModel):
    default_timezone: str | None = Field(default=None, alias="defaultTimezone")
    rate_limit: StrictFloat | None = Field(default=None, alias="rateLimit")
    # Where status callbacks go for a message that names no callbackUrl; null removes it.
    callback_url: str | None = Field(default=None, alias="callbackUrl", max_length=2000)
    # TWIN provider name → Herald provider; checked by the service, which names the problem.
    provider_aliases: dict[str, str] | None = Field(default=None, alias="providerAliases")


class BandwidthItem(WireModel):
    bandwidth: StrictFloat | None = None
    channel: str | None = None
    provider: str | None = None


class BandwidthIn(WireModel):
    bandwidth_list: list[BandwidthItem] = Field(alias="bandwidthList")


def project_out(project: Project, default_zone: str) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "defaultTimezone": project.default_timezone or default_zone,
        "rateLimit": project.rate_limit,
        "callbackUrl": project.callback_url,
        "providerAliases": project.provider_aliases or {},
        "createdAt": project.created_at.isoformat(),
    }


@router.get(
    "/project", summary="This project's settings", response_model=ProjectOut, responses=errors(API)
)
async def get_project(herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        found = await service.get_project(session, project)
    return project_out(found, herald.settings.default_timezone)


@router.patch(
    "/project",
    summary="Change the default time zone, the rate cap or the provider aliases",
    response_model=ProjectOut,
    responses=errors(API, JSON_BODY),
)
async def patch_project(
    payload: ProjectSettingsIn, herald: HeraldDep, project: ProjectId
) -> dict[str, Any]:
    # Only the fields sent change: a null sent clears one, a field left out stays.
    sent = {name: getattr(payload, name) for name in payload.model_fields_set}
    async with herald.sessions() as session, session.begin():
        updated = await service.update_settings(
            session, project, urls=herald.settings.url_policy, **sent
        )
        return project_out(updated, herald.settings.default_timezone)


@router.get(
    "/bandwidth",
    summary="TWIN bandwidth list: the project's rate cap",
    response_model=BandwidthList,
    responses=errors(API),
)
async def get_bandwidth(herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session:
        found = await service.get_project(session, project)
    items = []
    if found.rate_limit is not None:
        items.append(
            {
                "companyId": 0,
                "channel": None,
                "provider": None,
                "bandwidth": f"{found.rate_limit:.2f}",
            }
        )
    return {"count": len(items), "items": items}


@router.put(
    "/bandwidth/{company_id}",
    status_code=204,
    summary="TWIN bandwidth update: set the rate cap",
    responses=errors(API, JSON_BODY),
)
async def put_bandwidth(
    company_id: str, payload: BandwidthIn, herald: HeraldDep, project: ProjectId
) -> Response:
    """``companyId`` is accepted for TWIN compatibility; the API key decides the project."""
    for item in payload.bandwidth_list:
        if item.channel or item.provider:
            raise ValidationFailed(
                "Per-channel or per-provider bandwidth is set on each sender ('rateLimit' in "
                "POST /api/v1/senders); here only the project-wide cap can be set.",
                code="unsupported_field",
            )
    rate = payload.bandwidth_list[-1].bandwidth if payload.bandwidth_list else None
    async with herald.sessions() as session, session.begin():
        await service.update_settings(session, project, rate_limit=rate)
    return Response(status_code=204)
