"""Send tasks: a spreadsheet of recipients turned into messages, and one row per file row.

``TaskRow`` is keyed on (task, row number): an import that restarts after a crash skips every
row already stored, so no row is lost or sent twice. A row either points at its message or
carries the reason it was rejected.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


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
