"""Send tasks (the seed's *Notifications → Send tasks*): the list, a new task, its sample
file, the upload, the validation report, Create, the live progress, pause, resume, cancel,
and the results file.

Every step calls the services ``api/routes/tasks.py`` calls (``services.tasks``): the pages
hold no rule of their own. The page of one task shows the step the task is at; while it
changes by itself (importing, sending) its progress part is polled by htmx every 2 s, and
the whole page reloads once the task's status changes (``HX-Refresh``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile

from herald.cabinet.readers import Reader, allowed, herald_of, posted
from herald.cabinet.rendering import N_, page, render, translate
from herald.cabinet.security import HEADERS
from herald.errors import HeraldError, NotFound
from herald.services.tasks import files, listing, uploads
from herald.services.tasks import lifecycle as service
from herald.services.tasks.context import TaskContext
from herald.services.tasks.importing import TaskImports
from herald.services.tasks.settings import CreateTaskIn
from herald.services.templates.resource import list_templates

router = APIRouter(include_in_schema=False)

# Every role sees tasks; changing one takes the "tasks" action (operators and admins).
Viewing = Annotated[Reader, Depends(allowed("view"))]
Managing = Annotated[Reader, Depends(allowed("tasks"))]
Changing = Annotated[Reader, Depends(posted("tasks"))]

PAGE_SIZE = 25
# Bad rows shown on the page; the whole report is a download.
REPORT_ROWS = 100
# Templates the new-task form offers (the newest first).
TEMPLATE_CHOICES = 200
# The file part of the upload form.
FILE_FIELD = "file"
# Statuses whose page changes by itself: its progress part is polled.
LIVE = frozenset({"importing", "running", "paused"})
STARTED = frozenset({"running", "paused", "done", "cancelled"})
ENDED = frozenset(service.ENDED)
MEDIA = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
Format = Annotated[Literal["csv", "xlsx"], Query(alias="format")]

TASK_STATUS_LABELS = {
    "draft": N_("Waiting for its file"),
    "importing": N_("Reading the file"),
    "ready": N_("Checked, not started"),
    "running": N_("Sending"),
    "paused": N_("Paused"),
    "done": N_("Done"),
    "cancelled": N_("Cancelled"),
    "failed": N_("Stopped by a problem"),
}

# A bad row's reason in the reader's language (the service's sentence is English; English
# readers get that sentence itself, which names the value).
ROW_REASONS = {
    "invalid_phone": N_("The phone number is not valid; write it with its country code."),
    "missing_phone": N_("The phone number is missing."),
    "invalid_email": N_("The e-mail address is not valid."),
    "missing_address": N_("The row has no address for any of the task's channels."),
    "duplicate_destination": N_("This recipient already appears in an earlier row."),
    "missing_variables": N_("A value the template needs is empty."),
}

# Why a task failed, or why a step was refused, in the reader's language.
TASK_PROBLEMS = {
    "missing_column": N_(
        "The file lacks a column the task needs; nothing was read. Download the sample file "
        "to see the columns."
    ),
    "empty_file": N_("The file is empty."),
    "invalid_csv": N_("The file cannot be read as CSV; save it again as CSV or XLSX."),
    "invalid_xlsx": N_("The workbook cannot be read; save it again as XLSX or CSV."),
    "invalid_character": N_("The file holds characters Herald cannot store."),
    "unreadable_file": N_("The file could not be read to its end; save it again as CSV or XLSX."),
    "unsupported_file": N_("This is not a spreadsheet; upload a CSV, XLSX, XLS or ODS file."),
    "rows_rejected": N_(
        "Some rows are not valid and the task rejects the whole file when any row is bad; "
        "nothing was sent."
    ),
    "file_missing": N_("The uploaded file is gone from the server; create the task again."),
    "template_not_found": N_("The task's template no longer exists."),
    "task_has_file": N_("The task already has a file; create a new task for another file."),
    "task_not_startable": N_("Only a checked task can be created; its status has changed."),
    "task_not_running": N_("Only a task that is sending can be paused."),
    "task_not_paused": N_("Only a paused task can be resumed."),
    "task_ended": N_("The task has already ended."),
    "content_too_large": N_(
        "The file is larger than this Herald takes; split it into smaller files."
    ),
    "no_file": N_("Choose a file to upload."),
    "name_missing": N_("Give the task a name."),
    "invalid_region": N_("The default region is two letters, such as US or RU."),
}
UNKNOWN_PROBLEM = N_("This did not work: %(detail)s")


def _context(request: Request) -> TaskContext:
    # The same wiring as the API's routes (api/routes/tasks.py): one Herald, one context.
    herald = herald_of(request)
    return TaskContext(herald.sessions, herald.settings, herald.clock, herald.work_available)


def _imports(request: Request) -> TaskImports | None:
    imports: TaskImports | None = getattr(request.app.state, "task_imports", None)
    return imports


def problem_text(who: Reader, code: str | None, message: str) -> str:
    """A refusal or a failure in the reader's language: the English sentence for English
    readers, a translated one (by its code) for the others."""
    if who.language == "en" and message:
        return message
    known = TASK_PROBLEMS.get(code or "")
    if known:
        return translate(who.language, known)
    return translate(who.language, UNKNOWN_PROBLEM, detail=message)


def row_reason(who: Reader, code: str | None, message: str | None) -> str:
    """Why a row was refused, in the reader's language."""
    if who.language == "en" and message:
        return message
    known = ROW_REASONS.get(code or "")
    return translate(who.language, known) if known else (message or "—")


def task_status_label(who: Reader, status: str) -> str:
    """A task's status as the reader's language names it."""
    return translate(who.language, TASK_STATUS_LABELS.get(status, status))


def _task_helpers(who: Reader) -> dict[str, Any]:
    return {
        "task_status_label": lambda status: task_status_label(who, status),
        "row_reason": lambda code, message: row_reason(who, code, message),
        "problem_text": lambda code, message: problem_text(who, code, message),
        "LIVE": LIVE,
        "STARTED": STARTED,
        "ENDED": ENDED,
    }


# --------------------------------------------------------------------------- the list


@router.get("/tasks", response_class=HTMLResponse)
async def tasks_page(
    request: Request, who: Viewing, page_number: Annotated[int, Query(alias="page", ge=1)] = 1
) -> HTMLResponse:
    """Every task of the project, newest first, with its status and counts."""
    async with herald_of(request).sessions() as session:
        listed = await listing.list_tasks(
            session, who.project_id, limit=PAGE_SIZE, offset=(page_number - 1) * PAGE_SIZE
        )
    pages = max(1, -(-listed["count"] // PAGE_SIZE))
    return page(
        request,
        who,
        "tasks/list.html",
        items=listed["items"],
        count=listed["count"],
        page_number=page_number,
        pages=pages,
        **_task_helpers(who),
    )


# --------------------------------------------------------------------------- a new task


async def _templates(request: Request, who: Reader) -> list[dict[str, Any]]:
    async with herald_of(request).sessions() as session:
        listed = await list_templates(session, who.project_id, limit=TEMPLATE_CHOICES)
    return [{"id": t["id"], "name": t["name"]} for t in listed["items"]]


async def _new_form(
    request: Request,
    who: Reader,
    *,
    status_code: int = 200,
    values: dict[str, str] | None = None,
    problem: str | None = None,
) -> HTMLResponse:
    return page(
        request,
        who,
        "tasks/new.html",
        status_code=status_code,
        templates=await _templates(request, who),
        values=values or {"policy": "send_valid"},
        problem=problem,
        **_task_helpers(who),
    )


@router.get("/tasks/new", response_class=HTMLResponse)
async def new_task_page(request: Request, who: Managing) -> HTMLResponse:
    """Step 1: the task's name and its type of notification (a template)."""
    return await _new_form(
        request,
        who,
        values={"policy": "send_valid", "template": request.query_params.get("template", "")},
    )


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


@router.post("/tasks/new")
async def create_task(request: Request, who: Changing) -> Response:
    """Make the draft task (``lifecycle.new_task``, as ``POST /api/v1/tasks``), then go to
    its page for the sample file and the upload."""
    form = await request.form()
    values = {k: _text(form.get(k)) for k in ("name", "template", "policy", "region")}
    try:
        payload = CreateTaskIn.model_validate(
            {
                "name": values["name"],
                "templateId": values["template"] or None,
                "policy": values["policy"] or "send_valid",
                "defaultRegion": values["region"] or None,
            }
        )
    except ValidationError as e:
        if values["name"]:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            text = problem_text(who, None, f"{where}: {first['msg']}")
        else:
            text = translate(who.language, TASK_PROBLEMS["name_missing"])
        return await _new_form(request, who, status_code=422, values=values, problem=text)
    try:
        task = await service.new_task(_context(request), who.project_id, payload)
    except HeraldError as e:
        text = problem_text(who, e.code, e.message)
        return await _new_form(request, who, status_code=e.status_code, values=values, problem=text)
    return RedirectResponse(f"/tasks/{task.id}", status_code=303)


# --------------------------------------------------------------------------- one task


async def _state(request: Request, who: Reader, task_id: str) -> dict[str, Any]:
    """The task, its counts, rate and ETA, and the first bad rows (``listing``, ``files``)."""
    herald = herald_of(request)
    now = herald.clock.now()
    async with herald.sessions() as session, session.begin():
        task = await listing.get_task(session, who.project_id, task_id, now=now)
        progress = await listing.task_status(session, who.project_id, task_id, now=now)
        report = await files.report(session, who.project_id, task_id, limit=REPORT_ROWS, offset=0)
        named = (
            await list_templates(session, who.project_id, ids=[task["templateId"]], limit=1)
            if task["templateId"]
            else None
        )
    template_name = named["items"][0]["name"] if named and named["items"] else None
    return {"task": task, "progress": progress, "report": report, "template_name": template_name}


def _missing(request: Request, who: Reader) -> HTMLResponse:
    return page(request, who, "tasks/missing.html", status_code=404)


async def _task_page(
    request: Request,
    who: Reader,
    task_id: str,
    *,
    status_code: int = 200,
    notice: str | None = None,
) -> HTMLResponse:
    try:
        state = await _state(request, who, task_id)
    except NotFound:
        return _missing(request, who)
    return page(
        request,
        who,
        "tasks/detail.html",
        status_code=status_code,
        notice=notice,
        upload_limit=herald_of(request).settings.max_upload_bytes,
        **state,
        **_task_helpers(who),
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, who: Viewing, task_id: str) -> HTMLResponse:
    """One task at the step it is at: sample and upload, the report and Create, progress."""
    return await _task_page(request, who, task_id)


@router.get("/tasks/{task_id}/progress", response_class=HTMLResponse)
async def task_progress(request: Request, who: Viewing, task_id: str, shown: str = "") -> Response:
    """The progress part of the page (htmx polls it); once the status differs from the one
    the page shows, the page reloads to show the next step."""
    try:
        state = await _state(request, who, task_id)
    except NotFound:
        return Response(status_code=204, headers={"HX-Refresh": "true"})
    if state["task"]["status"] != shown:
        return Response(status_code=204, headers={**HEADERS, "HX-Refresh": "true"})
    body = render(request, who, "tasks/_progress.html", **state, **_task_helpers(who))
    return HTMLResponse(body, headers=HEADERS)


# --------------------------------------------------------------------------- files


def _download(content: bytes, name: str, fmt: str) -> Response:
    return Response(
        content,
        media_type=MEDIA[fmt],
        headers={**HEADERS, "Content-Disposition": f'attachment; filename="{name}"'},
    )


# Alike api/routes/tasks.py's: a page's response carries the cabinet's headers, and the
# cabinet imports no API route.
def _file(path: Path, name: str, fmt: str) -> FileResponse:
    return FileResponse(
        path,
        media_type=MEDIA[fmt],
        filename=name,
        content_disposition_type="attachment",
        headers=HEADERS,
        background=BackgroundTask(path.unlink, missing_ok=True),
    )


@router.get("/tasks/{task_id}/sample", response_model=None)
async def sample(request: Request, who: Viewing, task_id: str, fmt: Format = "csv") -> Response:
    """Step 2: the file to fill in, with the columns the task needs (``files.task_sample``)."""
    try:
        async with herald_of(request).sessions() as session:
            content = await files.task_sample(session, who.project_id, task_id, fmt)
    except NotFound:
        return _missing(request, who)
    return _download(content, f"task-sample.{fmt}", fmt)


@router.get("/tasks/{task_id}/report", response_model=None)
async def report_file(
    request: Request, who: Viewing, task_id: str, fmt: Format = "csv"
) -> Response:
    """Every bad row with its reason, as a file (``files.export``, kind ``report``)."""
    return await _export(request, who, task_id, "report", fmt)


@router.get("/tasks/{task_id}/results", response_model=None)
async def results_file(
    request: Request, who: Viewing, task_id: str, fmt: Format = "csv"
) -> Response:
    """Every row with its message's outcome, as a file (``files.export``, kind ``results``)."""
    return await _export(request, who, task_id, "results", fmt)


async def _export(
    request: Request, who: Reader, task_id: str, kind: Literal["report", "results"], fmt: str
) -> Response:
    try:
        path, name = await files.export(
            herald_of(request).sessions, who.project_id, task_id, kind=kind, fmt=fmt
        )
    except NotFound:
        return _missing(request, who)
    return _file(path, name, fmt)


# --------------------------------------------------------------------------- the upload


def _wants_fragment(request: Request) -> bool:
    # The page's script uploads with XMLHttpRequest (for its progress bar) and says so.
    return request.headers.get("x-requested-with") == "XMLHttpRequest"


@router.post("/tasks/{task_id}/file")
async def upload_file(request: Request, who: Changing, task_id: str) -> Response:
    """Step 3: the filled file, streamed to disk, then read in the background
    (``uploads.upload``, as ``POST /api/v1/tasks/{id}`` with ``async``).

    The form is read only here, after the session and the role were checked, so nobody
    signed out can make Herald store a file. A script's upload is answered with the address
    to go to (or the problem, as a fragment); a plain form's with a redirect.
    """
    form = await request.form(max_files=1, max_fields=8)
    try:
        part = form.get(FILE_FIELD)
        if not isinstance(part, UploadFile) or not part.filename:
            code, message = "no_file", translate("en", TASK_PROBLEMS["no_file"])
            status = 422
        else:
            try:
                await uploads.upload(
                    _context(request),
                    _imports(request),
                    who.project_id,
                    task_id,
                    part.file,
                    part.filename,
                    run_async=True,
                )
            except NotFound:
                return _missing(request, who)
            except HeraldError as e:
                code, message, status = e.code, e.message, e.status_code
            else:
                target = f"/tasks/{task_id}"
                if _wants_fragment(request):
                    return Response(target, media_type="text/plain", headers=HEADERS)
                return RedirectResponse(target, status_code=303)
    finally:
        await form.close()
    text = problem_text(who, code, message)
    if _wants_fragment(request):
        fragment = render(request, who, "tasks/_problem.html", problem=text)
        return HTMLResponse(fragment, status_code=status, headers=HEADERS)
    return await _task_page(request, who, task_id, status_code=status, notice=text)


# --------------------------------------------------------------------------- control


async def _cancel(ctx: TaskContext, project_id: str, task_id: str) -> None:
    async with ctx.sessions() as session, session.begin():
        await service.cancel_task(session, project_id, task_id, now=ctx.clock.now())


async def _control(
    request: Request,
    who: Reader,
    task_id: str,
    change: Literal["start", "pause", "resume", "cancel"],
) -> Response:
    """Change the task as the API's route does, then show it; a refusal (the task moved on
    meanwhile) is shown on its page."""
    ctx = _context(request)
    try:
        if change == "cancel":
            await _cancel(ctx, who.project_id, task_id)
        else:
            await service.change_state(ctx, who.project_id, task_id, change)
    except NotFound:
        return _missing(request, who)
    except HeraldError as e:
        notice = problem_text(who, e.code, e.message)
        return await _task_page(request, who, task_id, status_code=e.status_code, notice=notice)
    return RedirectResponse(f"/tasks/{task_id}", status_code=303)


@router.post("/tasks/{task_id}/start")
async def start(request: Request, who: Changing, task_id: str) -> Response:
    """Step 5, **Create**: the checked task's messages go (as ``POST startedTasks/{id}``)."""
    return await _control(request, who, task_id, "start")


@router.post("/tasks/{task_id}/pause")
async def pause(request: Request, who: Changing, task_id: str) -> Response:
    """Hold what is not yet with a provider (as ``POST pausedTasks/{id}``)."""
    return await _control(request, who, task_id, "pause")


@router.post("/tasks/{task_id}/resume")
async def resume(request: Request, who: Changing, task_id: str) -> Response:
    """Let a paused task go on (as ``DELETE pausedTasks/{id}``)."""
    return await _control(request, who, task_id, "resume")


@router.post("/tasks/{task_id}/cancel")
async def cancel(request: Request, who: Changing, task_id: str) -> Response:
    """Cancel every message not yet sent (as ``POST tasks/{id}/cancel``)."""
    return await _control(request, who, task_id, "cancel")
