"""Giving a task its file: an upload to a draft task, or a bulk send made in one call.

Either answers at once and imports in the background, or imports to the end first: the
upload then answers the task, the bulk send its results file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from herald.services.tasks import files
from herald.services.tasks.context import TaskContext
from herald.services.tasks.importing import TaskImports, import_now, import_outcome
from herald.services.tasks.lifecycle import attach_file, new_task
from herald.services.tasks.listing import get_task
from herald.services.tasks.settings import CreateTaskIn


async def upload(
    ctx: TaskContext,
    imports: TaskImports | None,
    project_id: str,
    task_id: str,
    source: IO[bytes],
    file_name: str | None,
    *,
    run_async: bool,
) -> dict[str, Any] | None:
    """Store the draft task's file and import it: in the background when ``run_async``
    (answers None), else to its end, answering the task."""
    await attach_file(ctx, project_id, task_id, source, file_name)
    if run_async and imports is not None:
        imports.start(task_id)
        return None
    await import_now(ctx, imports, task_id)
    async with ctx.sessions() as session:
        await import_outcome(session, project_id, task_id)
    async with ctx.sessions() as session, session.begin():
        return await get_task(session, project_id, task_id, now=ctx.clock.now())


async def bulk_send(
    ctx: TaskContext,
    imports: TaskImports | None,
    project_id: str,
    request: CreateTaskIn,
    parts: Sequence[tuple[str | None, IO[bytes]]],
    *,
    run_async: bool,
) -> tuple[str, tuple[Path, str, str] | None]:
    """A task made, given its file (several CSV parts joined) and started in one go.

    Returns its id and, unless ``run_async``, its results file (path, name, format) once
    every row is imported.
    """
    file_name, source = parts[0]
    if len(parts) > 1:
        source = await asyncio.to_thread(files.joined_csv, parts)
    try:
        task = await new_task(ctx, project_id, request)
        await attach_file(ctx, project_id, task.id, source, file_name, start=True)
    finally:
        if source is not parts[0][1]:
            source.close()
    if run_async and imports is not None:
        imports.start(task.id)
        return task.id, None
    await import_now(ctx, imports, task.id)
    ctx.work_available.set()
    async with ctx.sessions() as session:
        await import_outcome(session, project_id, task.id)
        fmt = await files.result_format(session, project_id, task.id)
    path, name = await files.export(ctx.sessions, project_id, task.id, kind="results", fmt=fmt)
    return task.id, (path, name, fmt)
