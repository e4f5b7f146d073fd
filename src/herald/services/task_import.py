"""Importing a send task's file: rows streamed from the stored file into messages.

A batch of rows is one transaction: its messages (made by ``create_messages``), its
``TaskRow``s and the task's counters. The task row is locked first and the last stored row
number checked, so two processes never import the same rows, and a restarted import skips
every row already stored: nothing is lost or sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
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
from herald.channels.email import validate_email_address
from herald.domain import spreadsheets as sheets
from herald.domain.phones import InvalidPhone
from herald.errors import NotFound, ValidationFailed
from herald.schemas.messages import CreateMessagesIn, Scalar
from herald.services.accepting import CreationPolicy, create_messages
from herald.services.tasks import (
    DEST_PATH,
    IMPORTING,
    TASK_ROWS,
    destination_columns,
    settings_path,
    task_channels,
    task_file,
)
from herald.store.db import is_postgres
from herald.store.tasks import Task, TaskRow

log = logging.getLogger("herald.tasks")

BATCH_SIZE = 1000  # create_messages' most destinations per message


# How the report names what a row lacks, per destination column.
_ADDRESS_NAMES = {
    "phone": "phone number",
    "email": "e-mail address",
    "messengerUserId": "chat id (messengerUserId)",
}


@dataclass(slots=True)
class _Row:
    number: int
    cells: dict[str, str]
    # The row's addresses by destination column (phone in E.164, e-mail checked).
    addresses: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Scalar] = field(default_factory=dict)
    message_id: str | None = None
    # Whether the row's keys went into the task's seen set (a duplicate's did not).
    claimed: bool = False
    error: str | None = None
    error_code: str | None = None
    error_column: str | None = None

    def reject(self, message: str, code: str, column: str | None) -> None:
        self.error, self.error_code, self.error_column = message, code, column

    @property
    def keys(self) -> list[str]:
        """What makes this row's person a duplicate of another's (one key per address)."""
        return [_key(column, value) for column, value in self.addresses.items()]


def _key(column: str, value: str) -> str:
    # Domains are case-insensitive and people type addresses in any case; phones are E.164,
    # chat ids exact. The three kinds cannot collide (+digits, x@y, ids without @ or +).
    return value.lower() if column == "email" else value


def destination_of(keys: Sequence[str]) -> str:
    """The keys as stored on the task row, so a resumed import still finds duplicates."""
    stored = ""
    for key in keys:
        # The column holds 200 characters: an address too long to fit is left out (only a
        # duplicate of it after a restart would go unnoticed).
        candidate = f"{stored} {key}" if stored else key
        if len(candidate) <= 200:
            stored = candidate
    return stored


class TaskFailed(Exception):
    """The import cannot go on: the file or the task's settings, not a row, are at fault."""

    def __init__(self, message: str, code: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.details = message, code, details or {}


class _Stopped(Exception):
    """The task was cancelled, deleted or taken over by another importer."""


def _address(column: str, raw: str, region: str | None) -> str:
    """A cell's address, normalised; raises ValueError (InvalidPhone for phones)."""
    if column == "phone":
        if raw.startswith("+"):
            # Already international: create_messages parses and checks it anyway, and
            # parsing is the costliest step of an import, so only the key is made here.
            return "+" + "".join(ch for ch in raw if ch.isdigit())
        return sheets.normalise_phone(raw, region)
    if column == "email":
        return validate_email_address(raw)
    return raw


def _prepare(
    cells: dict[str, str],
    number: int,
    region: str | None,
    seen: set[str],
    columns: Sequence[str],
) -> _Row:
    """A row checked the cheap way: its addresses read and none seen before in this task.

    ``columns`` are the destination columns of the task's channels; a row needs at least
    one of them, as a message's destination needs an address for one of its channels.
    """
    row = _Row(number, cells)
    row.variables = {
        k: v for k, v in cells.items() if k not in sheets.DESTINATION_COLUMNS and v != ""
    }
    for column in columns:
        raw = cells.get(column, "").strip()
        if not raw:
            continue
        try:
            row.addresses[column] = _address(column, raw, region)
        except InvalidPhone as e:
            row.reject(f"{e}.", "invalid_phone", column)
            return row
        except ValueError as e:
            row.reject(str(e), "invalid_email", column)
            return row
    if not row.addresses:
        if list(columns) == ["phone"]:
            row.reject("The phone number is missing.", "missing_phone", "phone")
        else:
            names = " or ".join(_ADDRESS_NAMES.get(c, c) for c in columns)
            row.reject(
                f"The row has no {names}.",
                "missing_address",
                columns[0] if len(columns) == 1 else None,
            )
        return row
    for column, key in zip(row.addresses, row.keys, strict=True):
        if key in seen:
            row.reject(
                f"{row.addresses[column]} already appears in an earlier row of this task.",
                "duplicate_destination",
                column,
            )
            return row
    seen.update(row.keys)
    row.claimed = True
    return row


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
    rows: list[_Row],
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


def _take(stream: Iterator[sheets.Row], n: int) -> list[sheets.Row]:
    out: list[sheets.Row] = []
    for row in stream:
        out.append(row)
        if len(out) >= n:
            break
    return out


class _Chunks:
    """The file's data rows in batches, skipping rows already stored.

    The next batch is read in a thread while the current one is being stored: parsing a
    sheet is CPU work, and the database's part of storing a batch (SQLite's C code, or
    PostgreSQL's own process) runs without holding the GIL, so the two overlap.
    """

    def __init__(self, stream: Iterator[sheets.Row], skip_through: int) -> None:
        self._stream = stream
        self._skip_through = skip_through
        self._ahead: asyncio.Future[list[sheets.Row]] | None = None

    def _read(self) -> asyncio.Future[list[sheets.Row]]:
        return asyncio.ensure_future(asyncio.to_thread(_take, self._stream, BATCH_SIZE))

    async def next(self) -> list[sheets.Row]:
        """The next batch of rows not stored yet; empty at the end of the file."""
        while True:
            chunk = await (self._ahead or self._read())
            self._ahead = self._read() if chunk else None
            if not chunk:
                return []
            fresh = [r for r in chunk if r.number > self._skip_through]
            if fresh:
                return fresh

    async def aclose(self) -> None:
        # The thread cannot be interrupted; wait for it so nothing reads the file after.
        if self._ahead is not None:
            with contextlib.suppress(Exception):
                await self._ahead
            self._ahead = None


async def _open(
    path: Path, fmt: str, skip_through: int, columns: Sequence[str]
) -> tuple[list[str], _Chunks]:
    header, stream = await asyncio.to_thread(sheets.read_rows, path, fmt)
    missing = [c for c in columns if c not in header]
    if missing:
        names = " and ".join(f"'{c}'" for c in missing)
        raise TaskFailed(
            f"The file has no {names} column{'s' if len(missing) > 1 else ''}, which the "
            "task's channels need; download the task's sample file to see the columns it "
            "needs.",
            "missing_column",
            {"columns": header, "missing": missing},
        )
    return header, _Chunks(stream, skip_through)


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
    herald: Herald, task: Task, path: Path, policy: CreationPolicy, columns: list[str]
) -> bool:
    """``reject_all``: a pass over the whole file storing nothing; rejected rows if any."""
    header, chunks = await _open(path, task.file_format or "csv", 0, columns)
    seen: set[str] = set()
    rejected: list[_Row] = []
    read = 0
    region = task.default_region
    try:
        while chunk := await chunks.next():
            rows = [_prepare(r.cells, r.number, region, seen, columns) for r in chunk]
            read += len(rows)
            async with herald.sessions() as session:
                await session.begin()
                try:
                    now = herald.clock.now()
                    await _create(session, task, rows, now=now, policy=policy, held=True)
                finally:
                    await session.rollback()
            rejected.extend(r for r in rows if r.error is not None)
    finally:
        await chunks.aclose()
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
            key
            for d in await session.scalars(
                select(TaskRow.destination).where(
                    TaskRow.task_id == task_id, TaskRow.destination.is_not(None)
                )
            )
            for key in (d or "").split()
        }
        try:
            columns = destination_columns(await task_channels(session, task))
        except NotFound as e:
            gone: NotFound | None = e
        else:
            gone = None
    if gone is not None:
        await _fail(herald, task_id, f"templateId: {gone.message}", gone.code)
        return
    policy = CreationPolicy.from_settings(herald.settings)
    path = task_file(herald.settings, task)
    region = task.default_region
    try:
        if not path.exists():
            raise TaskFailed("The uploaded file is gone from the data directory.", "file_missing")
        if (
            task.policy == "reject_all"
            and last == 0
            and not await _validate_all(herald, task, path, policy, columns)
        ):
            return
        header, chunks = await _open(path, task.file_format or "csv", last, columns)
        try:
            async with herald.sessions() as session, session.begin():
                await session.execute(update(Task).where(Task.id == task_id).values(columns=header))
            while chunk := await chunks.next():
                rows = [_prepare(r.cells, r.number, region, seen, columns) for r in chunk]
                now = herald.clock.now()
                async with herald.sessions() as session, session.begin():
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
                herald.work_available.set()
        finally:
            await chunks.aclose()
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
