"""Importing a send task's file: rows streamed from the stored file into messages.

A batch of rows is one transaction: its messages (made by ``create_messages``), its
``TaskRow``s and the task's counters. The task row is locked first and the last stored row
number checked, so two processes never import the same rows, and a restarted import skips
every row already stored: nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.bootstrap import Herald
from herald.domain import spreadsheets as sheets
from herald.domain.phones import InvalidPhone
from herald.errors import ValidationFailed
from herald.schemas.messages import CreateMessagesIn, Scalar
from herald.services.accepting import CreationPolicy, create_messages
from herald.services.tasks import (
    DEST_PATH,
    HELD,
    IMPORTING,
    TASK_ROWS,
    settings_path,
    task_file,
)
from herald.store.db import is_postgres
from herald.store.messages import Delivery
from herald.store.tasks import Task, TaskRow

log = logging.getLogger("herald.tasks")

BATCH_SIZE = 1000  # create_messages' most destinations per message


@dataclass(slots=True)
class _Row:
    number: int
    cells: dict[str, str]
    phone: str | None = None
    variables: dict[str, Scalar] = field(default_factory=dict)
    message_id: str | None = None
    error: str | None = None
    error_code: str | None = None
    error_column: str | None = None

    def reject(self, message: str, code: str, column: str | None) -> None:
        self.error, self.error_code, self.error_column = message, code, column


class TaskFailed(Exception):
    """The import cannot go on: the file or the task's settings, not a row, are at fault."""

    def __init__(self, message: str, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details or {}


class _Stopped(Exception):
    """The task was cancelled, deleted or taken over by another importer."""


def _prepare(cells: dict[str, str], number: int, region: str | None, seen: set[str]) -> _Row:
    """A row checked the cheap way: its phone parsed and not seen before in this task."""
    row = _Row(number, cells)
    raw_phone = cells.get("phone", "")
    row.variables = {k: v for k, v in cells.items() if k not in ("phone", "email") and v != ""}
    if not raw_phone:
        row.reject("The phone number is missing.", "missing_phone", "phone")
        return row
    if raw_phone.startswith("+"):
        # Already international: create_messages parses and checks it anyway, and parsing
        # is the costliest step of an import, so only the duplicate key is made here.
        row.phone = "+" + "".join(ch for ch in raw_phone if ch.isdigit())
    else:
        try:
            row.phone = sheets.normalise_phone(raw_phone, region)
        except InvalidPhone as e:
            row.reject(f"{e}.", "invalid_phone", "phone")
            return row
    if row.phone in seen:
        row.reject(
            f"{row.phone} already appears in an earlier row of this task.",
            "duplicate_destination",
            "phone",
        )
        return row
    seen.add(row.phone)
    return row


def _column_of(code: str, message: str) -> str | None:
    if code == "missing_variables" and ":" in message:
        return message.split(":", 1)[1].strip().rstrip(".")
    if code in ("invalid_phone", "missing_phone"):
        return "phone"
    return None


async def _create(
    session: AsyncSession, task: Task, rows: list[_Row], *, now: datetime, policy: CreationPolicy
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
                            {"phone": r.phone, "variables": r.variables or None} for r in good
                        ],
                    }
                ],
            }
        )
        try:
            results = await create_messages(
                session, task.project_id, request, now=now, policy=policy
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
                    item["message"], item["code"], _column_of(item["code"], item["message"])
                )
            good = [r for i, r in enumerate(good) if i not in refused]
            continue
        for row, result in zip(good, results, strict=True):
            row.message_id = result["id"]
        return


def _take(stream: Iterator[sheets.Row], n: int) -> list[sheets.Row]:
    out: list[sheets.Row] = []
    for row in stream:
        out.append(row)
        if len(out) >= n:
            break
    return out


async def _batches(path: Path, fmt: str, skip_through: int) -> tuple[list[str], Any]:
    header, stream = await asyncio.to_thread(sheets.read_rows, path, fmt)
    if "phone" not in header:
        raise TaskFailed(
            "The file has no 'phone' column; download the task's sample file to see the "
            "columns it needs.",
            "missing_column",
            {"columns": header},
        )

    async def gen() -> Any:
        while True:
            chunk = await asyncio.to_thread(_take, stream, BATCH_SIZE)
            if not chunk:
                return
            fresh = [r for r in chunk if r.number > skip_through]
            if fresh:
                yield fresh

    return header, gen()


async def _lock_for_batch(session: AsyncSession, task_id: str, expected_last: int) -> Task:
    """The task row, locked (PostgreSQL; SQLite's BEGIN IMMEDIATE already serialises)."""
    query = select(Task).where(Task.id == task_id)
    if is_postgres(session):
        query = query.with_for_update()
    task = await session.scalar(query)
    if task is None or task.status not in (*IMPORTING,):
        raise _Stopped
    last = await session.scalar(
        select(func.max(TaskRow.row_number)).where(TaskRow.task_id == task_id)
    )
    if (last or 0) != expected_last:
        raise _Stopped  # another process is importing this task
    return task


async def _store_rows(session: AsyncSession, task: Task, rows: list[_Row]) -> None:
    # A Core insert: the ORM's bulk path costs more per row than the row itself.
    await session.execute(
        insert(TASK_ROWS),
        [
            {
                "task_id": task.id,
                "row_number": r.number,
                "message_id": r.message_id,
                "destination": r.phone if r.error is None else None,
                "error_column": r.error_column,
                "error_code": r.error_code,
                "error": r.error,
                "raw": r.cells,
            }
            for r in rows
        ],
    )


async def _hold(session: AsyncSession, message_ids: Sequence[str]) -> None:
    await session.execute(
        update(Delivery)
        .where(Delivery.message_id.in_(message_ids), Delivery.status.in_(HELD))
        .values(next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


async def _validate_all(herald: Herald, task: Task, path: Path, policy: CreationPolicy) -> bool:
    """``reject_all``: a pass over the whole file storing nothing; rejected rows if any."""
    header, batches = await _batches(path, task.file_format or "csv", 0)
    seen: set[str] = set()
    rejected: list[_Row] = []
    read = 0
    async for chunk in batches:
        rows = [_prepare(r.cells, r.number, task.default_region, seen) for r in chunk]
        read += len(rows)
        async with herald.sessions() as session:
            await session.begin()
            try:
                await _create(session, task, rows, now=herald.clock.now(), policy=policy)
            finally:
                await session.rollback()
        rejected.extend(r for r in rows if r.error is not None)
    if not rejected:
        return True
    now = herald.clock.now()
    async with herald.sessions() as session, session.begin():
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


async def run_import(herald: Herald, task_id: str) -> None:
    """Import (or resume importing) a task's file; returns when done, failed or stopped."""
    async with herald.sessions() as session:
        task = await session.get(Task, task_id)
        if task is None or task.imported_at is not None or task.status not in IMPORTING:
            return
        last = (
            await session.scalar(
                select(func.max(TaskRow.row_number)).where(TaskRow.task_id == task_id)
            )
            or 0
        )
        seen = {
            d
            for d in await session.scalars(
                select(TaskRow.destination).where(
                    TaskRow.task_id == task_id, TaskRow.destination.is_not(None)
                )
            )
            if d
        }
    policy = CreationPolicy.from_settings(herald.settings)
    path = task_file(herald.settings, task)
    try:
        if not path.exists():
            raise TaskFailed("The uploaded file is gone from the data directory.", "file_missing")
        if (
            task.policy == "reject_all"
            and last == 0
            and not await _validate_all(herald, task, path, policy)
        ):
            return
        header, batches = await _batches(path, task.file_format or "csv", last)
        async with herald.sessions() as session, session.begin():
            await session.execute(update(Task).where(Task.id == task_id).values(columns=header))
        async for chunk in batches:
            rows = [_prepare(r.cells, r.number, task.default_region, seen) for r in chunk]
            now = herald.clock.now()
            async with herald.sessions() as session, session.begin():
                locked = await _lock_for_batch(session, task_id, last)
                await _create(session, locked, rows, now=now, policy=policy)
                await _store_rows(session, locked, rows)
                accepted = [r.message_id for r in rows if r.message_id]
                if accepted and locked.status != "running":
                    await _hold(session, accepted)
                locked.rows_read += len(rows)
                locked.rows_accepted += len(accepted)
                locked.rows_rejected += len(rows) - len(accepted)
                locked.updated_at = now
            last = rows[-1].number
            for r in rows:
                if r.error is not None and r.phone:
                    seen.discard(r.phone)  # refused later: a later row may use the number
            herald.work_available.set()
        async with herald.sessions() as session, session.begin():
            locked = await _lock_for_batch(session, task_id, last)
            now = herald.clock.now()
            locked.imported_at = locked.updated_at = now
            if locked.status == "importing":
                locked.status = "ready"
    except TaskFailed as e:
        await _fail(herald, task_id, e.message, e.code)
    except sheets.SpreadsheetProblem as e:
        await _fail(herald, task_id, e.message, e.code)
    except (_Stopped, IntegrityError):
        return


async def _fail(herald: Herald, task_id: str, message: str, code: str) -> None:
    now = herald.clock.now()
    async with herald.sessions() as session, session.begin():
        await session.execute(
            update(Task)
            .where(Task.id == task_id, Task.status.in_(IMPORTING))
            .values(
                status="failed", error=message, error_code=code, finished_at=now, updated_at=now
            )
        )


class TaskImports:
    """The imports running in this process, so shutdown can stop them cleanly.

    Each batch is its own transaction: cancelling an import between (or inside) batches
    leaves a state the next start-up resumes from.
    """

    def __init__(self, herald: Herald) -> None:
        self._herald = herald
        self._running: dict[str, asyncio.Task[None]] = {}

    def start(self, task_id: str) -> asyncio.Task[None]:
        running = self._running.get(task_id)
        if running is None or running.done():
            running = asyncio.create_task(self._run(task_id), name=f"task-import-{task_id}")
            self._running[task_id] = running
        return running

    async def _run(self, task_id: str) -> None:
        try:
            await run_import(self._herald, task_id)
        except Exception:
            log.exception("import of task %s stopped; it resumes on the next start", task_id)
        finally:
            self._running.pop(task_id, None)

    async def resume_pending(self) -> list[str]:
        """Start the imports a previous process left unfinished."""
        async with self._herald.sessions() as session:
            ids = list(
                await session.scalars(
                    select(Task.id).where(
                        Task.imported_at.is_(None),
                        Task.file_format.is_not(None),
                        Task.status.in_(IMPORTING),
                    )
                )
            )
        for task_id in ids:
            self.start(task_id)
        return ids

    async def aclose(self) -> None:
        running = list(self._running.values())
        for t in running:
            t.cancel()
        await asyncio.gather(*running, return_exceptions=True)


async def import_now(herald: Herald, imports: TaskImports | None, task_id: str) -> None:
    """Run the import to its end (``async=false``), through the runner when there is one."""
    if imports is None:
        await run_import(herald, task_id)
    else:
        await asyncio.shield(imports.start(task_id))
