"""Send tasks: a spreadsheet of recipients turned into messages, and one row per file row.

``TaskRow`` is keyed on (task, row number): an import that restarts after a crash skips every
row already stored, so no row is lost or sent twice. A row either points at its message or
carries the reason it was rejected.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.domain.statuses import Status, is_final
from herald.store.base import Base, UTCDateTime, new_id, utcnow
from herald.store.db import is_postgres
from herald.store.messages import Message


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index(None, "project_id", "created_at"), Index(None, "status"))

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
