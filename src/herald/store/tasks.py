"""Send tasks: a spreadsheet of recipients turned into messages, and one row per file row.

``TaskRow`` is keyed on (task, row number): an import that restarts after a crash skips every
row already stored, so no row is lost or sent twice. A row either points at its message or
carries the reason it was rejected.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    ColumnElement,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.domain.statuses import Status, is_final
from herald.store.base import Base, UTCDateTime, new_id, utcnow
from herald.store.db import is_postgres
from herald.store.messages import Delivery, Message


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index(None, "project_id", "created_at"), Index(None, "status"))

    # Columns alike in shape to the messages' (store.messages): each model names its own.
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    # draft | importing | ready | running | paused | cancelled | done | failed
    status: Mapped[str] = mapped_column(String(20))
    template_id: Mapped[str | None] = mapped_column(String(36))
    # The task-level message fields (channels, sendAt, allowedTimeRanges, ...), TWIN names.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    # reject_all | send_valid
    policy: Mapped[str] = mapped_column(String(20))
    default_region: Mapped[str | None] = mapped_column(String(2))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_format: Mapped[str | None] = mapped_column(String(10))
    columns: Mapped[list[str] | None] = mapped_column(JSON)
    rows_read: Mapped[int] = mapped_column(Integer, default=0)
    rows_accepted: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(50))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Set when every row of the file is stored; until then an import is (re)started for it.
    imported_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TaskRow(Base):
    __tablename__ = "task_rows"

    task_id: Mapped[str] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    row_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str | None] = mapped_column(String(36))
    # The normalised destination, so duplicates are found across a resumed import too.
    destination: Mapped[str | None] = mapped_column(String(200))
    error_column: Mapped[str | None] = mapped_column(String(200))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)


# Message statuses of work in progress: a task with a message in one of these is not done.
IN_PROGRESS = tuple(s.value for s in Status if not is_final(s))


async def settle_tasks(
    session: AsyncSession, tasks: Collection[tuple[str, str]] | None = None
) -> int:
    """Mark done each running, fully imported task (of ``(project, task)`` pairs, or any)
    none of whose messages is still in progress; returns how many.

    ``finishedAt`` is when its last message became final (or the import ended, if later).
    A task another transaction holds is skipped rather than waited for: its holder may be
    waiting on message rows this caller holds. Two transactions ending a task's last two
    messages at once each see the other's as still in progress; the dispatcher's periodic
    call catches both cases.
    """
    mine = (Message.project_id == Task.project_id) & (Message.task_id == Task.id)
    in_progress = select(Message.id).where(mine, Message.status.in_(IN_PROGRESS)).exists()
    last_final = (
        select(func.max(func.coalesce(Message.delivered_at, Message.status_at)))
        .where(mine)
        .scalar_subquery()
    )
    query = select(Task.id, Task.imported_at, last_final).where(
        Task.status == "running", Task.imported_at.is_not(None), ~in_progress
    )
    if tasks is not None:
        query = query.where(Task.id.in_({task_id for _, task_id in tasks}))
    if is_postgres(session):
        query = query.with_for_update(of=Task, skip_locked=True)
    done = (await session.execute(query)).all()
    for task_id, imported_at, last in done:
        finished = max(t for t in (imported_at, last) if t is not None)
        await session.execute(
            update(Task)
            .where(Task.id == task_id)
            .values(status="done", finished_at=finished, updated_at=finished)
            .execution_options(synchronize_session=False)
        )
    return len(done)


TASK_ROWS = cast(Table, TaskRow.__table__)
# Statuses in which the file is still being turned into messages (when imported_at is unset).
IMPORTING = ("importing", "running", "paused")
# Delivery statuses a task holds back (not started yet, or paused) by unsetting their due time.
HELD = (Status.QUEUED.value, Status.SCHEDULED.value)
# TWIN's sort keys for the task list, as columns.
SORT_KEYS = {"createdAt": Task.created_at, "status": Task.status}


# --------------------------------------------------------------------------- tasks


async def load_task(
    session: AsyncSession, task_id: str, *, project_id: str | None = None, lock: bool = False
) -> Task | None:
    """The task (of ``project_id`` if given); ``lock``: locked for change on PostgreSQL
    (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    query = select(Task).where(Task.id == task_id)
    if project_id is not None:
        query = query.where(Task.project_id == project_id)
    if lock and is_postgres(session):
        query = query.with_for_update()
    return await session.scalar(query)


async def find_tasks(
    session: AsyncSession,
    project_id: str,
    *,
    name: str | None,
    statuses: Sequence[str],
    created_from: datetime | None,
    created_to: datetime | None,
    limit: int,
    offset: int,
    sort: tuple[str, bool],
) -> tuple[int, list[Task]]:
    """How many of the project's tasks match, and one page of them in ``sort`` order."""
    query = select(Task).where(Task.project_id == project_id)
    if name:
        query = query.where(Task.name.contains(name))
    if statuses:
        query = query.where(Task.status.in_(statuses))
    if created_from:
        query = query.where(Task.created_at >= created_from)
    if created_to:
        query = query.where(Task.created_at < created_to)
    count = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = await session.scalars(query.order_by(*_task_order(sort)).limit(limit).offset(offset))
    return count, list(page)


def _task_order(sort: tuple[str, bool]) -> list[Any]:
    key, descending = sort
    column = SORT_KEYS[key]
    # Newest first within a status; the id keeps equal times in one order from page to page.
    return [column.desc() if descending else column.asc(), Task.created_at.desc(), Task.id.desc()]


async def message_counts(
    session: AsyncSession, project_id: str, task_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Per task, how many of its messages are in each status."""
    rows = await session.execute(
        select(Message.task_id, Message.status, func.count())
        .where(Message.project_id == project_id, Message.task_id.in_(task_ids))
        .group_by(Message.task_id, Message.status)
    )
    out: dict[str, dict[str, int]] = {}
    for task_id, status, count in rows:
        out.setdefault(task_id or "", {})[status] = count
    return out


async def sent_since(session: AsyncSession, project_id: str, task_id: str, since: datetime) -> int:
    """How many of the task's messages were handed to a provider since ``since``."""
    return (
        await session.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.project_id == project_id,
                Message.task_id == task_id,
                Message.sent_at >= since,
            )
        )
        or 0
    )


def _held_deliveries(project_id: str, task_id: str) -> list[ColumnElement[bool]]:
    return [
        Delivery.message_id.in_(
            select(Message.id).where(Message.project_id == project_id, Message.task_id == task_id)
        ),
        Delivery.status.in_(HELD),
    ]


async def release_held(session: AsyncSession, project_id: str, task_id: str, now: datetime) -> None:
    """Give held deliveries a due time again; the dispatcher re-applies allowed time ranges and
    validity when it claims them."""
    due = (
        select(func.coalesce(Message.send_at, literal(now, UTCDateTime())))
        .where(Message.id == Delivery.message_id)
        .scalar_subquery()
    )
    await session.execute(
        update(Delivery)
        .where(*_held_deliveries(project_id, task_id), Delivery.next_attempt_at.is_(None))
        .values(next_attempt_at=due)
        .execution_options(synchronize_session=False)
    )


async def hold_deliveries(session: AsyncSession, project_id: str, task_id: str) -> None:
    """Take the due time off every delivery of the task not yet handed to a provider."""
    await session.execute(
        update(Delivery)
        .where(*_held_deliveries(project_id, task_id))
        .values(next_attempt_at=None)
        .execution_options(synchronize_session=False)
    )


async def mark_cancelled(session: AsyncSession, task_id: str, now: datetime) -> None:
    """The task is cancelled as of ``now``."""
    await session.execute(
        update(Task)
        .where(Task.id == task_id)
        .values(status="cancelled", updated_at=now, finished_at=now)
    )


async def forget_task(session: AsyncSession, task_id: str) -> None:
    """Delete the task and its rows (its messages stay)."""
    await session.execute(delete(TaskRow).where(TaskRow.task_id == task_id))
    await session.execute(delete(Task).where(Task.id == task_id))


# --------------------------------------------------------------------------- importing


async def last_row_number(session: AsyncSession, task_id: str) -> int:
    """The number of the last file row stored for the task (0 for none)."""
    last = await session.scalar(
        select(func.max(TaskRow.row_number)).where(TaskRow.task_id == task_id)
    )
    return last or 0


async def stored_destinations(session: AsyncSession, task_id: str) -> list[str]:
    """The destination keys stored on the task's accepted rows (space-separated per row)."""
    found = await session.scalars(
        select(TaskRow.destination).where(
            TaskRow.task_id == task_id, TaskRow.destination.is_not(None)
        )
    )
    return [d or "" for d in found]


async def insert_rows(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Store task rows (dicts of ``task_rows`` columns)."""
    # A Core insert: the ORM's bulk path costs more per row than the row itself.
    await session.execute(insert(TASK_ROWS), list(rows))


async def set_columns(session: AsyncSession, task_id: str, columns: list[str]) -> None:
    """Remember the file's header on the task."""
    await session.execute(update(Task).where(Task.id == task_id).values(columns=columns))


async def fail_import(
    session: AsyncSession, task_id: str, message: str, code: str, now: datetime
) -> None:
    """Mark the task failed with ``message``, unless it has ended or is no longer importing."""
    await session.execute(
        update(Task)
        .where(Task.id == task_id, Task.status.in_(IMPORTING))
        .values(status="failed", error=message, error_code=code, finished_at=now, updated_at=now)
    )


async def unfinished_imports(session: AsyncSession) -> list[str]:
    """The ids of tasks whose file is stored but not every row of it yet."""
    ids = await session.scalars(
        select(Task.id).where(
            Task.imported_at.is_(None),
            Task.file_format.is_not(None),
            Task.status.in_(IMPORTING),
        )
    )
    return list(ids)


# --------------------------------------------------------------------------- files


async def rejected_rows(
    session: AsyncSession, task_id: str, *, limit: int, offset: int
) -> tuple[int, list[TaskRow]]:
    """How many of the task's rows were rejected, and one page of them in file order."""
    base = select(TaskRow).where(TaskRow.task_id == task_id, TaskRow.error.is_not(None))
    count = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = await session.scalars(base.order_by(TaskRow.row_number).limit(limit).offset(offset))
    return count, list(rows)


async def rows_after(
    session: AsyncSession, task_id: str, after: int, *, limit: int, rejected_only: bool
) -> list[tuple[TaskRow, str | None]]:
    """Up to ``limit`` rows after row number ``after``, each with its message's status."""
    query = (
        select(TaskRow, Message.status)
        .outerjoin(Message, Message.id == TaskRow.message_id)
        .where(TaskRow.task_id == task_id, TaskRow.row_number > after)
        .order_by(TaskRow.row_number)
        .limit(limit)
    )
    if rejected_only:
        query = query.where(TaskRow.error.is_not(None))
    return [(row, status) for row, status in (await session.execute(query)).all()]


async def deliveries_of(session: AsyncSession, message_ids: Sequence[str]) -> list[Delivery]:
    """The deliveries of the messages, in cascade order."""
    found = await session.scalars(
        select(Delivery).where(Delivery.message_id.in_(message_ids)).order_by(Delivery.step)
    )
    return list(found)
