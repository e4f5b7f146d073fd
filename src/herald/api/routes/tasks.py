"""Send tasks (TWIN's ``tasks``, ``startedTasks``, ``pausedTasks``) and ``messages/bulk``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.background import BackgroundTask

from herald.api.deps import HeraldDep, ProjectId
from herald.api.forms import storable_form
from herald.api.query import (
    Fields,
    ListFilter,
    Offset,
    Page,
    TwinTimezone,
    first_row,
    list_sort,
    list_zone,
    query_time,
    twin_list,
)
from herald.api.responses import API, JSON_BODY, UPLOAD, Responses, body, downloads, errors
from herald.api.twin_lists import listed_response, sort_query
from herald.bootstrap import Herald
from herald.schemas.messages import id_list
from herald.schemas.out.base import IdOut
from herald.schemas.out.tasks import TaskItem, TaskList, TaskReport, TaskState, TaskStatus
from herald.services import projects
from herald.services.messages.accepting import CreationPolicy
from herald.services.tasks import files, listing, uploads
from herald.services.tasks import lifecycle as service
from herald.services.tasks.context import TaskContext
from herald.services.tasks.importing import TaskImports
from herald.services.tasks.settings import CreateTaskIn, UpdateTaskIn, bulk_settings

router = APIRouter(prefix="/api/v1", tags=["tasks"])

MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
SHEETS = ("text/csv", MEDIA["xlsx"])
# Start, pause, resume and cancel answer the task's new status.
STATE: dict[str, Any] = {
    "response_model": TaskState,
    "response_model_exclude_unset": True,
    "responses": errors(API, 404, 409),
}
# An upload asked to be async is answered at once, with the task's id.
ACCEPTED: Responses = {202: {"model": IdOut, "description": "async: the import goes on."}}


def _context(herald: Herald) -> TaskContext:
    return TaskContext(herald.sessions, herald.settings, herald.clock, herald.work_available)


def _imports(request: Request) -> TaskImports | None:
    imports: TaskImports | None = getattr(request.app.state, "task_imports", None)
    return imports


def _truthy(value: str | None) -> bool:
    # TWIN's SDK sends async as "1" (true) or "" (false).
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _download(content: bytes, name: str, fmt: str) -> Response:
    return Response(
        content,
        media_type=MEDIA[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _file(path: Path, name: str, fmt: str) -> FileResponse:
    return FileResponse(
        path,
        media_type=MEDIA[fmt],
        filename=name,
        content_disposition_type="attachment",
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


# --------------------------------------------------------------------------- tasks


@router.post(
    "/tasks",
    status_code=201,
    summary="Create a send task (TWIN create task)",
    response_model=IdOut,
    responses=errors(API, JSON_BODY, 404),
)
async def create_task(
    payload: CreateTaskIn, herald: HeraldDep, project: ProjectId
) -> dict[str, str]:
    return {"id": (await service.new_task(_context(herald), project, payload)).id}


@router.get(
    "/tasks",
    summary="List send tasks (TWIN list)",
    response_model=None,
    responses={**body(TaskList), **errors(API)},
)
async def list_tasks(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    name: str | None = None,
    status: ListFilter = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    offset: Offset = 0,
    page: Page = None,
    timezone: TwinTimezone = None,
    sort: Annotated[str | None, sort_query(listing.SORT_KEYS)] = None,
    fields: Fields = None,
) -> Response:
    """``from``/``to`` without an offset are read in ``timezone`` (hours), else the project's;
    ``fields`` keeps only those keys of each item."""
    # Its parameters are TWIN's list parameters, which every list route declares the same
    # way: FastAPI reads them from each signature.
    order = list_sort(sort, listing.SORT_KEYS)
    async with herald.sessions() as session:
        found = await projects.get_project(session, project)
    zone = list_zone(timezone, found.default_timezone or herald.settings.default_timezone)
    async with herald.sessions() as session:
        listed = await listing.list_tasks(
            session,
            project,
            name=name,
            statuses=twin_list(request, "status"),
            created_from=query_time(from_, "from", zone),
            created_to=query_time(to, "to", zone),
            limit=limit,
            offset=first_row(offset, page, limit),
            sort=order,
        )
    return listed_response(request, listed, TaskList)


@router.get(
    "/tasks/{task_id}",
    summary="One send task with its progress",
    response_model=TaskItem,
    responses=errors(API, 404),
)
async def get_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        return await listing.get_task(session, project, task_id, now=herald.clock.now())


@router.put(
    "/tasks/{task_id}",
    summary="Update a send task (TWIN update)",
    response_model=IdOut,
    responses=errors(API, JSON_BODY, 404, 409),
)
async def update_task(
    task_id: str, payload: UpdateTaskIn, herald: HeraldDep, project: ProjectId
) -> dict[str, str]:
    async with herald.sessions() as session, session.begin():
        await service.update_task(
            session,
            project,
            task_id,
            payload,
            now=herald.clock.now(),
            policy=CreationPolicy.from_settings(herald.settings),
        )
    return {"id": task_id}


@router.post(
    "/tasks/{task_id}",
    status_code=202,
    summary="Upload the task's file (TWIN add)",
    dependencies=[Depends(storable_form)],
    responses={
        **ACCEPTED,
        200: {"model": TaskItem, "description": "Not async: the task, its file imported."},
        **errors(API, UPLOAD, 404, 409),
    },
)
async def upload(
    task_id: str,
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    messages: Annotated[UploadFile, File(description="The CSV, XLSX, XLS or ODS file.")],
    async_form: Annotated[str | None, Form(alias="async")] = None,
    async_query: Annotated[str | None, Query(alias="async")] = None,
) -> JSONResponse:
    """``async`` true: answers 202 at once; else answers 200 when the import is done."""
    item = await uploads.upload(
        _context(herald),
        _imports(request),
        project,
        task_id,
        messages.file,
        messages.filename,
        run_async=_truthy(async_form if async_form is not None else async_query),
    )
    if item is None:
        return JSONResponse({"id": task_id}, status_code=202)
    return JSONResponse(item, status_code=200)


@router.get(
    "/tasks/{task_id}/statuses",
    summary="Task status, counts, rate and ETA",
    response_model=TaskStatus,
    responses=errors(API, 404),
)
# Alike in shape to get_task: FastAPI wants a function per route, each one service call.
async def task_status(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        return await listing.task_status(session, project, task_id, now=herald.clock.now())


@router.post("/startedTasks/{task_id}", summary="Start sending (TWIN start)", **STATE)
async def start_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, str]:
    await service.change_state(_context(herald), project, task_id, "start")
    return {"id": task_id, "status": "running"}


@router.post("/pausedTasks/{task_id}", summary="Pause sending (TWIN pause)", **STATE)
async def pause_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, str]:
    await service.change_state(_context(herald), project, task_id, "pause")
    return {"id": task_id, "status": "paused"}


@router.delete("/pausedTasks/{task_id}", summary="Resume sending (TWIN resume)", **STATE)
async def resume_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, str]:
    await service.change_state(_context(herald), project, task_id, "resume")
    return {"id": task_id, "status": "running"}


@router.post("/tasks/{task_id}/cancel", summary="Cancel every message not yet sent", **STATE)
async def cancel_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, Any]:
    async with herald.sessions() as session, session.begin():
        cancelled = await service.cancel_task(session, project, task_id, now=herald.clock.now())
    return {"id": task_id, "status": "cancelled", "cancelledMessageCount": cancelled}


@router.delete(
    "/tasks/{task_id}",
    summary="Delete a task (unsent messages are cancelled)",
    response_model=IdOut,
    responses=errors(API, 404, 409),
)
async def delete_task(task_id: str, herald: HeraldDep, project: ProjectId) -> dict[str, str]:
    async with herald.sessions() as session, session.begin():
        await service.delete_task(
            session, herald.settings, project, task_id, now=herald.clock.now()
        )
    return {"id": task_id}


# --------------------------------------------------------------------------- files

SampleFormat = Annotated[Literal["csv", "xlsx"], Query(alias="format")]


@router.get(
    "/tasks/{task_id}/sample",
    summary="A sample file with the columns the task needs",
    response_class=Response,
    responses={**downloads(*SHEETS), **errors(API, 404)},
)
async def task_sample(
    task_id: str, herald: HeraldDep, project: ProjectId, fmt: SampleFormat = "csv"
) -> Response:
    async with herald.sessions() as session:
        content = await files.task_sample(session, project, task_id, fmt)
    return _download(content, f"task-sample.{fmt}", fmt)


@router.get(
    "/templates/{template_id}/sample",
    summary="A sample file with the template's columns",
    response_class=Response,
    responses={**downloads(*SHEETS), **errors(API, 404)},
)
async def template_sample(
    template_id: str,
    herald: HeraldDep,
    project: ProjectId,
    fmt: SampleFormat = "csv",
    channels: str | None = None,
) -> Response:
    async with herald.sessions() as session:
        content = await files.template_sample(
            session, project, template_id, id_list(channels) or None, fmt
        )
    return _download(content, f"template-sample.{fmt}", fmt)


@router.get(
    "/tasks/{task_id}/report",
    summary="Rejected rows (JSON, CSV or XLSX)",
    response_class=Response,
    responses={
        200: {
            "model": TaskReport,
            "description": "JSON, or the rejected rows as a file (format=csv or xlsx).",
            "content": downloads(*SHEETS)[200]["content"],
        },
        **errors(API, 404),
    },
)
async def report(
    task_id: str,
    herald: HeraldDep,
    project: ProjectId,
    fmt: Annotated[Literal["json", "csv", "xlsx"], Query(alias="format")] = "json",
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    offset: Offset = 0,
) -> Response:
    if fmt == "json":
        async with herald.sessions() as session:
            body = await files.report(session, project, task_id, limit=limit, offset=offset)
        return JSONResponse(body)
    path, name = await files.export(herald.sessions, project, task_id, kind="report", fmt=fmt)
    return _file(path, name, fmt)


@router.get(
    "/tasks/{task_id}/results",
    summary="Per-row outcome (CSV or XLSX)",
    response_class=Response,
    responses={**downloads(*SHEETS), **errors(API, 404, 409)},
)
async def results(
    task_id: str, herald: HeraldDep, project: ProjectId, fmt: SampleFormat = "csv"
) -> FileResponse:
    path, name = await files.export(herald.sessions, project, task_id, kind="results", fmt=fmt)
    return _file(path, name, fmt)


# --------------------------------------------------------------------------- messages/bulk


@router.post(
    "/messages/bulk",
    summary="Send from a CSV/XLSX file (TWIN create bulk)",
    dependencies=[Depends(storable_form)],
    response_class=Response,
    responses={**downloads(*SHEETS), **ACCEPTED, **errors(API, UPLOAD, 404)},
)
async def bulk(
    request: Request,
    herald: HeraldDep,
    project: ProjectId,
    messages: Annotated[list[UploadFile], File(description="The CSV, XLSX, XLS or ODS file.")],
    async_form: Annotated[str | None, Form(alias="async")] = None,
    template_id: Annotated[str | None, Form(alias="templateId")] = None,
    policy: Annotated[Literal["reject_all", "send_valid"], Form()] = "send_valid",
    default_region: Annotated[str | None, Form(alias="defaultRegion")] = None,
    settings: Annotated[str | None, Form(description="Task settings as JSON.")] = None,
    name: Annotated[str | None, Form()] = None,
) -> Response:
    """A task made, filled and started in one call. ``async=1`` answers ``{"id"}`` at once;
    otherwise the answer is the results file once every row is imported."""
    payload = CreateTaskIn(
        name=(name or messages[0].filename or "bulk")[:200],
        template_id=template_id or None,
        settings=bulk_settings(settings),
        policy=policy,
        default_region=default_region or None,
    )
    task_id, results_file = await uploads.bulk_send(
        _context(herald),
        _imports(request),
        project,
        payload,
        [(part.filename, part.file) for part in messages],
        run_async=_truthy(async_form),
    )
    if results_file is None:
        return JSONResponse({"id": task_id}, status_code=202)
    return _file(*results_file)


@router.get(
    "/messages/bulk/{task_id}",
    summary="The results file of a bulk send",
    response_class=Response,
    responses={**downloads(*SHEETS), **errors(API, 404, 409)},
)
async def bulk_result(
    task_id: str,
    herald: HeraldDep,
    project: ProjectId,
    fmt: Annotated[Literal["csv", "xlsx"] | None, Query(alias="format")] = None,
) -> FileResponse:
    return _file(*await files.bulk_results(herald.sessions, project, task_id, fmt))
