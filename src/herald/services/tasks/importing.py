"""Importing a send task's file: rows streamed from the stored file into messages.

A batch of rows is one transaction: its messages (made by ``create_messages``), its
``TaskRow``s and the task's counters. The task row is locked first and the last stored row
number checked, so two processes never import the same rows, and a restarted import skips
every row already stored: nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain import spreadsheets as sheets
from herald.errors import NotFound, ValidationFailed
from herald.schemas.messages import CreateMessagesIn
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.tasks.context import TaskContext, task_file
from herald.services.tasks.listing import find_task
from herald.services.tasks.reader import ReaderFailed, SheetReader
from herald.services.tasks.rows import ImportRow, claim, destination_of
from herald.services.tasks.settings import (
    DEST_PATH,
    destination_columns,
    settings_path,
    task_channels,
)
from herald.services.templates.rendering import variables_in
from herald.store import tasks as store
from herald.store.tasks import IMPORTING, Task, settle_tasks

log = logging.getLogger("herald.tasks")

BATCH_SIZE = 1000  # create_messages' most destinations per message


class TaskFailed(Exception):
    """The import cannot go on: the file or the task's settings, not a row, are at fault."""

    def __init__(self, message: str, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details or {}


class _Stopped(Exception):
    """The task was cancelled, deleted or taken over by another importer."""


@dataclass(frozen=True, slots=True)
class _Needs:
    """What the task's channels need from the file's columns."""

    destinations: list[str]
    # Every variable the content uses: a column fills one whatever its letter case.
    variables: list[str]
    # Variables with no default in the template and none in the task's settings: a file
    # without their column could only have every row rejected.
    required: list[str]

    @classmethod
    def of(cls, channels: dict[str, dict[str, Any]], settings: dict[str, Any]) -> _Needs:
        given = settings.get("variables") or {}
        return cls(
            destination_columns(channels),
            variables_in(channels),
            [v for v in variables_in(channels, required=True) if v not in given],
        )


def _column_of(code: str, message: str, path: str) -> str | None:
    if code == "missing_variables" and ":" in message:
        return message.split(":", 1)[1].strip().rstrip(".")
    field_name = path.rsplit("]", 1)[-1].lstrip(".")
    if field_name in sheets.DESTINATION_COLUMNS:
        return field_name
    if code in ("invalid_phone", "missing_phone"):
        return "phone"
    return None


async def _create(
    session: AsyncSession,
    task: Task,
    rows: list[ImportRow],
    *,
    now: datetime,
    policy: CreationPolicy,
    held: bool,
) -> None:
    """Messages for the good rows; rows ``create_messages`` refuses are rejected, the rest kept.

    ``create_messages`` stores nothing when it refuses, so the batch is retried without the
    refused rows in the same transaction.
    """
    good = [r for r in rows if r.error is None]
    while good:
        request = CreateMessagesIn.model_validate(
            {
                "taskId": task.id,
                "messages": [
                    {
                        **task.settings,
                        "groupId": task.settings.get("groupId") or task.id,
                        "templateId": task.template_id,
                        "destinations": [
                            {**r.addresses, "variables": r.variables or None} for r in good
                        ],
                    }
                ],
            }
        )
        try:
            results = await create_messages(
                session, task.project_id, request, now=now, policy=policy, held=held
            )
        except ValidationFailed as e:
            refused: set[int] = set()
            for item in e.details.get("errors", []):
                match = DEST_PATH.match(item["path"])
                if match is None:
                    raise TaskFailed(
                        f"{settings_path(item['path'])}: {item['message']}",
                        item["code"],
                        {"errors": e.details.get("errors", [])},
                    ) from e
                index = int(match.group(1))
                refused.add(index)
                good[index].reject(
                    item["message"],
                    item["code"],
                    _column_of(item["code"], item["message"], item["path"]),
                )
            good = [r for i, r in enumerate(good) if i not in refused]
            continue
        for row, result in zip(good, results, strict=True):
            row.message_id = result["id"]
        return


async def _open(
    path: Path, fmt: str, skip_through: int, needs: _Needs, region: str | None
) -> tuple[list[str], SheetReader]:
    header, reader = await SheetReader.open(
        path,
        fmt,
        skip_through=skip_through,
        region=region,
        columns=needs.destinations,
        variables=needs.variables,
        batch_size=BATCH_SIZE,
    )
    for missing, who in (
        ([c for c in needs.destinations if c not in header], "the task's channels need"),
        (sheets.missing_columns(header, needs.required), "the template needs"),
    ):
        if missing:
            await reader.aclose()
            names = " and ".join(f"'{c}'" for c in missing)
            raise TaskFailed(
                f"The file has no {names} column{'s' if len(missing) > 1 else ''}, which "
                f"{who}; nothing was read. Add "
                f"{'it' if len(missing) == 1 else 'them'} (letter case does not matter) or "
                "download the task's sample file to see the columns it needs.",
                "missing_column",
                {"columns": header, "missing": missing},
            )
    return header, reader


async def _lock_for_batch(session: AsyncSession, task_id: str, expected_last: int) -> Task:
    """The task row, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises)."""
    task = await store.load_task(session, task_id, lock=True)
    if task is None or task.status not in IMPORTING:
        raise _Stopped
    if await store.last_row_number(session, task_id) != expected_last:
        raise _Stopped  # another process is importing this task
    return task


async def _store_rows(session: AsyncSession, task: Task, rows: list[ImportRow]) -> None:
    await store.insert_rows(
        session,
        [
            {
                "task_id": task.id,
                "row_number": r.number,
                "message_id": r.message_id,
                "destination": destination_of(r.keys) if r.error is None else None,
                "error_column": r.error_column,
                "error_code": r.error_code,
                "error": r.error,
                "raw": r.cells,
            }
            for r in rows
        ],
    )


async def _validate_all(
    ctx: TaskContext, task: Task, path: Path, policy: CreationPolicy, needs: _Needs
) -> bool:
    """``reject_all``: a pass over the whole file storing nothing; rejected rows if any."""
    header, reader = await _open(path, task.file_format or "csv", 0, needs, task.default_region)
    seen: set[str] = set()
    rejected: list[ImportRow] = []
    read = 0
    try:
        while rows := await reader.next():
            for row in rows:
                claim(row, seen)
            read += len(rows)
            async with ctx.sessions() as session:
                await session.begin()
                try:
                    now = ctx.clock.now()
                    await _create(session, task, rows, now=now, policy=policy, held=True)
                finally:
                    await session.rollback()
            rejected.extend(r for r in rows if r.error is not None)
    finally:
        await reader.aclose()
    if not rejected:
        return True
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        locked = await _lock_for_batch(session, task.id, 0)
        for start in range(0, len(rejected), BATCH_SIZE):
            await _store_rows(session, locked, rejected[start : start + BATCH_SIZE])
        locked.columns = header
        locked.rows_read = read
        locked.rows_rejected = len(rejected)
        locked.status = "failed"
        locked.error_code = "rows_rejected"
        locked.error = (
            f"{len(rejected)} of {read} rows are not valid and the task rejects the whole file "
            "when any row is bad; nothing was sent. See the task's report."
        )
        locked.finished_at = locked.updated_at = now
    return False


async def run_import(ctx: TaskContext, task_id: str) -> None:
    """Import (or resume importing) a task's file; returns when done, failed or stopped."""
    async with ctx.sessions() as session:
        task = await store.load_task(session, task_id)
        if task is None or task.imported_at is not None or task.status not in IMPORTING:
            return
        last = await store.last_row_number(session, task_id)
        seen = {key for d in await store.stored_destinations(session, task_id) for key in d.split()}
        try:
            needs = _Needs.of(await task_channels(session, task), task.settings)
        except NotFound as e:
            gone: NotFound | None = e
        else:
            gone = None
    if gone is not None:
        await _fail(ctx, task_id, f"templateId: {gone.message}", gone.code)
        return
    policy = CreationPolicy.from_settings(ctx.settings)
    path = task_file(ctx.settings, task)
    region = task.default_region
    try:
        if not path.exists():
            raise TaskFailed("The uploaded file is gone from the data directory.", "file_missing")
        if (
            task.policy == "reject_all"
            and last == 0
            and not await _validate_all(ctx, task, path, policy, needs)
        ):
            return
        header, reader = await _open(path, task.file_format or "csv", last, needs, region)
        try:
            async with ctx.sessions() as session, session.begin():
                await store.set_columns(session, task_id, header)
            while rows := await reader.next():
                for row in rows:
                    claim(row, seen)
                now = ctx.clock.now()
                async with ctx.sessions() as session, session.begin():
                    locked = await _lock_for_batch(session, task_id, last)
                    # Until the task is started its messages wait without a due time.
                    held = locked.status != "running"
                    await _create(session, locked, rows, now=now, policy=policy, held=held)
                    await _store_rows(session, locked, rows)
                    accepted = sum(1 for r in rows if r.message_id)
                    locked.rows_read += len(rows)
                    locked.rows_accepted += accepted
                    locked.rows_rejected += len(rows) - accepted
                    locked.updated_at = now
                last = rows[-1].number
                for r in rows:
                    if r.error is not None and r.claimed:
                        # Refused after its addresses were taken: later rows may use them.
                        seen.difference_update(r.keys)
                ctx.work_available.set()
        finally:
            await reader.aclose()
        async with ctx.sessions() as session, session.begin():
            locked = await _lock_for_batch(session, task_id, last)
            now = ctx.clock.now()
            locked.imported_at = locked.updated_at = now
            if locked.status == "importing":
                locked.status = "ready"
            # Its messages may all have ended while the last rows were being read.
            await settle_tasks(session, [(locked.project_id, task_id)])
    except TaskFailed as e:
        await _fail(ctx, task_id, e.message, e.code)
    except sheets.SpreadsheetProblem as e:
        await _fail(ctx, task_id, e.message, e.code)
    except ReaderFailed as e:
        if e.stopped:
            raise  # the import resumes on the next start
        # A reader that died of this file would die again on every retry.
        log.error("task %s: %s", task_id, e)
        await _fail(
            ctx,
            task_id,
            "The file could not be read to its end (it asks for more memory than Herald "
            "allows a file reader, or is broken); save it again as CSV or XLSX.",
            "unreadable_file",
        )
    except (_Stopped, IntegrityError):
        return


async def _fail(ctx: TaskContext, task_id: str, message: str, code: str) -> None:
    now = ctx.clock.now()
    async with ctx.sessions() as session, session.begin():
        await store.fail_import(session, task_id, message, code, now)


class TaskImports:
    """The imports running in this process, so shutdown can stop them cleanly.

    Each batch is its own transaction: cancelling an import between (or inside) batches
    leaves a state the next start-up resumes from.
    """

    def __init__(self, ctx: TaskContext) -> None:
        self.context = ctx
        self._running: dict[str, asyncio.Task[None]] = {}

    def start(self, task_id: str) -> asyncio.Task[None]:
        """Import the task's file in the background (the running import, if there is one)."""
        running = self._running.get(task_id)
        if running is None or running.done():
            running = asyncio.create_task(self._run(task_id), name=f"task-import-{task_id}")
            self._running[task_id] = running
        return running

    async def _run(self, task_id: str) -> None:
        try:
            await run_import(self.context, task_id)
        except Exception:
            log.exception("import of task %s stopped; it resumes on the next start", task_id)
        finally:
            self._running.pop(task_id, None)

    async def resume_pending(self) -> list[str]:
        """Start the imports a previous process left unfinished."""
        async with self.context.sessions() as session:
            ids = await store.unfinished_imports(session)
        for task_id in ids:
            self.start(task_id)
        return ids

    async def aclose(self) -> None:
        """Stop every import; each resumes from its last stored batch on the next start."""
        running = list(self._running.values())
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def import_now(ctx: TaskContext, imports: TaskImports | None, task_id: str) -> None:
    """Run the import to its end (``async=false``), through the runner when there is one."""
    if imports is None:
        await run_import(ctx, task_id)
    else:
        await asyncio.shield(imports.start(task_id))


async def import_outcome(session: AsyncSession, project_id: str, task_id: str) -> None:
    """After a synchronous import: a task the import failed is the request's error."""
    task = await find_task(session, project_id, task_id)
    if task.status == "failed" and task.error:
        raise ValidationFailed(
            task.error,
            code=task.error_code or "import_failed",
            details={"taskId": task.id, "rowsRejected": task.rows_rejected},
        )
