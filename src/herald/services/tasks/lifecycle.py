"""Send tasks: a CSV or XLSX file of recipients and variables, turned into messages in bulk.

Life of a task::

    draft ──upload──▶ importing ──▶ ready ──start──▶ running ⇄ paused
                          │                            │
                          └──────(bulk: start at once)─┘──▶ done
    any of them ──cancel──▶ cancelled;  a file or settings problem ──▶ failed

Rows become messages through ``create_messages`` (the one way messages are made), a batch per
transaction together with their ``TaskRow``s and the task's counters (``importing``). The
import streams the stored file and skips rows already stored, so it can stop anywhere and
resume without losing or repeating a row. Until a task is started its messages are held:
their deliveries have no ``next_attempt_at``, which is also how pause works. The dispatcher
knows nothing of tasks. Here: the changes of a task's life; ``settings`` checks what a task
gives its messages, ``listing`` reads tasks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import Settings
from herald.domain import spreadsheets as sheets
from herald.domain.statuses import Status
from herald.errors import Conflict, UnsupportedMediaType
from herald.schemas.messages import CancelMessagesIn
from herald.services.messages.accepting import CreationPolicy
from herald.services.messages.reading import cancel_messages
from herald.services.tasks.context import TaskContext, task_dir
from herald.services.tasks.listing import find_task
from herald.services.tasks.settings import (
    CreateTaskIn,
    UpdateTaskIn,
    check_region,
    check_settings,
    settings_dict,
    with_row_text,
    without_row_text,
)
from herald.store import tasks as store
from herald.store.base import new_id
from herald.store.tasks import Task, settle_tasks

ENDED = ("cancelled", "done", "failed")


# --------------------------------------------------------------------------- create / update


async def create_task(
    session: AsyncSession,
    project_id: str,
    request: CreateTaskIn,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> Task:
    """A draft task, its settings checked as a message would be."""
    region = check_region(request.default_region)
    data = with_row_text(
        request.template_id, settings_dict(request.settings, request.allowed_time_ranges)
    )
    await check_settings(session, project_id, request.template_id, data, now=now, policy=policy)
    # Each column given by name, as every model's constructor call is (templates' too).
    task = Task(
        project_id=project_id,
        name=request.name,
        status="draft",
        template_id=request.template_id,
        settings=data,
        policy=request.policy,
        default_region=region,
        rows_read=0,
        rows_accepted=0,
        rows_rejected=0,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    return task


async def new_task(ctx: TaskContext, project_id: str, request: CreateTaskIn) -> Task:
    """:func:`create_task` in a transaction of its own, under the process's creation policy."""
    async with ctx.sessions() as session, session.begin():
        return await create_task(
            session,
            project_id,
            request,
            now=ctx.clock.now(),
            policy=CreationPolicy.from_settings(ctx.settings),
        )


async def update_task(
    session: AsyncSession,
    project_id: str,
    task_id: str,
    request: UpdateTaskIn,
    *,
    now: datetime,
    policy: CreationPolicy,
) -> None:
    """Rename any time; change what messages will be like only before the file is imported."""
    task = await find_task(session, project_id, task_id, lock=True)
    changes_messages = request.model_fields_set - {"name"}
    if changes_messages and task.status != "draft":
        raise Conflict(
            f"The task is {task.status}; only its name can change once a file is uploaded.",
            code="task_not_editable",
        )
    if request.name is not None:
        task.name = request.name
    if changes_messages:
        template_id = (
            request.template_id if "template_id" in request.model_fields_set else task.template_id
        )
        if request.settings is not None:
            data = request.settings.model_dump(by_alias=True, exclude_none=True)
        else:
            data = without_row_text(task.settings)
        if request.allowed_time_ranges is not None:
            data["allowedTimeRanges"] = request.allowed_time_ranges
        data = with_row_text(template_id, data)
        await check_settings(session, project_id, template_id, data, now=now, policy=policy)
        task.template_id = template_id
        task.settings = data
        if request.policy is not None:
            task.policy = request.policy
        if "default_region" in request.model_fields_set:
            task.default_region = check_region(request.default_region)
    task.updated_at = now


# --------------------------------------------------------------------------- upload


def _save(source: IO[bytes], target: Path) -> bytes:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    with partial.open("wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    with target.open("rb") as f:
        return f.read(8192)


async def attach_file(
    ctx: TaskContext,
    project_id: str,
    task_id: str,
    source: IO[bytes],
    file_name: str | None,
    *,
    start: bool = False,
) -> None:
    """Store the uploaded file beside the task and mark the task for import.

    The file is written and synced to disk before the task says ``importing``, so a
    crash right after leaves either a draft or an importable task.
    """
    async with ctx.sessions() as session:
        task = await find_task(session, project_id, task_id)
    if task.status != "draft":
        raise Conflict(
            f"The task is {task.status} and already has a file; create a new task "
            "for another file.",
            code="task_has_file",
        )
    staging = task_dir(ctx.settings, task_id) / f"incoming-{new_id()}"
    head = await asyncio.to_thread(_save, source, staging)
    try:
        fmt = sheets.file_format(file_name, head)
    except sheets.SpreadsheetProblem as e:
        staging.unlink(missing_ok=True)
        raise UnsupportedMediaType(
            e.message, code=e.code, details={"accepted": list(sheets.FORMATS)}
        ) from e
    target = task_dir(ctx.settings, task_id) / f"upload.{fmt}"
    staging.replace(target)
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        task = await find_task(session, project_id, task_id, lock=True)
        if task.status != "draft":
            raise Conflict(
                f"The task is {task.status} and already has a file.", code="task_has_file"
            )
        task.file_name = (file_name or f"upload.{fmt}")[:255]
        task.file_format = fmt
        task.status = "running" if start else "importing"
        if start:
            task.started_at = now
        task.updated_at = now


# --------------------------------------------------------------------------- control
# Start, pause and resume share a shape (lock, already there?, allowed?, change) but not
# their rules or sentences: each is kept whole rather than split across a table.


async def start_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Let the task's messages go (TWIN ``POST startedTasks/{id}``)."""
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "running":
        return
    if task.status not in ("importing", "ready"):
        raise Conflict(
            f"The task is {task.status}; only an imported (or importing) task can be started"
            + (" — upload its file first." if task.status == "draft" else "."),
            code="task_not_startable",
        )
    task.status = "running"
    task.started_at = task.updated_at = now
    await store.release_held(session, project_id, task_id, now)
    await settle_tasks(session, [(project_id, task_id)])  # nothing left to send: done now


async def pause_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Hold every message of the task not yet handed to a provider.

    A task without a file (TWIN's SDK creates one with only a name and sends messages with
    its ``taskId``) can be paused too: its messages wait until it is resumed.
    """
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "paused":
        return
    if task.status != "running" and not (task.status == "draft" and task.file_format is None):
        raise Conflict(
            f"The task is {task.status}; only a running task, or one without a file yet, "
            "can be paused.",
            code="task_not_running",
        )
    task.status = "paused"
    task.updated_at = now
    await store.hold_deliveries(session, project_id, task_id)


async def resume_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Let a paused task's messages go again (TWIN ``DELETE pausedTasks/{id}``)."""
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status == "running":
        return
    if task.status != "paused":
        raise Conflict(
            f"The task is {task.status}; only a paused task can be resumed.",
            code="task_not_paused",
        )
    # A task paused before it had a file goes back to taking one.
    task.status = "running" if task.started_at else "draft"
    task.updated_at = now
    await store.release_held(session, project_id, task_id, now)
    await settle_tasks(session, [(project_id, task_id)])


_CHANGES = {"start": start_task, "pause": pause_task, "resume": resume_task}


async def change_state(
    ctx: TaskContext, project_id: str, task_id: str, change: Literal["start", "pause", "resume"]
) -> None:
    """Start, pause or resume the task in a transaction of its own; after a start or a
    resume, wake the dispatcher: held messages are due."""
    async with ctx.sessions() as session, session.begin():
        await _CHANGES[change](session, project_id, task_id, now=ctx.clock.now())
    if change != "pause":
        ctx.work_available.set()


async def cancel_task(
    session: AsyncSession, project_id: str, task_id: str, *, now: datetime
) -> int:
    """Cancel every message not yet sent; sent ones are untouched. Returns how many."""
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status in ENDED:
        raise Conflict(f"The task is already {task.status}.", code="task_ended")
    await store.mark_cancelled(session, task_id, now)
    results = await cancel_messages(session, project_id, CancelMessagesIn(task_id=task_id), now=now)
    return sum(1 for r in results if r["error"] is None and r["status"] == Status.CANCELLED)


async def delete_task(
    session: AsyncSession, settings: Settings, project_id: str, task_id: str, *, now: datetime
) -> None:
    """Cancel what is not sent yet, then forget the task, its rows and its file.

    The messages stay, like any message's history.
    """
    task = await find_task(session, project_id, task_id, lock=True)
    if task.status not in ENDED:
        await cancel_messages(session, project_id, CancelMessagesIn(task_id=task_id), now=now)
    await store.forget_task(session, task_id)
    await asyncio.to_thread(shutil.rmtree, task_dir(settings, task_id), True)
