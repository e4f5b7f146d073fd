"""The files of send tasks: samples, the validation report and per-row results.

Reports and results are written page by page to a temporary file (CSV or XLSX in
openpyxl's write-only mode), so a task of any size downloads in flat memory.
"""

from __future__ import annotations

import asyncio
import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.bootstrap import Herald
from herald.domain import spreadsheets as sheets
from herald.errors import InvalidRequest
from herald.services.tasks import find_task
from herald.services.templates import load_template, variables_in
from herald.store.messages import Delivery, Message
from herald.store.tasks import TaskRow

# Where each channel's recipient comes from in a row.
DESTINATION_COLUMN = {"sms": "phone", "whatsapp": "phone", "viber": "phone", "email": "email"}
EXAMPLES = {"phone": "+14155552671", "email": "ann@example.com"}


def sample_columns(
    channels: dict[str, dict[str, Any]], wanted: Sequence[str] | None = None
) -> list[str]:
    """Destination columns for the channels, then every variable their content uses."""
    keys = [k.lower() for k in (wanted or channels.keys() or ["sms"])]
    unknown = [k for k in keys if k not in DESTINATION_COLUMN]
    if unknown:
        raise InvalidRequest(
            f"Channel {unknown[0]!r} has no spreadsheet column; use: "
            f"{', '.join(DESTINATION_COLUMN)}.",
            code="unsupported_channel",
        )
    columns: list[str] = []
    for key in keys:
        if DESTINATION_COLUMN[key] not in columns:
            columns.append(DESTINATION_COLUMN[key])
    return columns + [v for v in variables_in(channels) if v not in columns]


def sample_file(columns: Sequence[str], fmt: str) -> bytes:
    example = [EXAMPLES.get(c, f"example {c}") for c in columns]
    return sheets.table_bytes(fmt, columns, [example])


async def template_sample(
    session: AsyncSession, project_id: str, template_id: str, channels: Sequence[str] | None
) -> list[str]:
    snapshot = await load_template(session, project_id, template_id)
    return sample_columns(snapshot.channels, channels)


async def task_sample(session: AsyncSession, project_id: str, task_id: str) -> list[str]:
    task = await find_task(session, project_id, task_id)
    channels: dict[str, dict[str, Any]] = {}
    if task.template_id:
        snapshot = await load_template(session, project_id, task.template_id)
        channels = {k: dict(v) for k, v in snapshot.channels.items()}
    for key, content in task.settings.get("channels", {}).items():
        channels[key] = {**channels.get(key, {}), **content}
    return sample_columns(channels, [k for k in channels if k in DESTINATION_COLUMN] or ["sms"])


async def report(
    session: AsyncSession, project_id: str, task_id: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """Rejected rows: row number, column, code and a sentence."""
    task = await find_task(session, project_id, task_id)
    base = select(TaskRow).where(TaskRow.task_id == task_id, TaskRow.error.is_not(None))
    count = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    rows = await session.scalars(base.order_by(TaskRow.row_number).limit(limit).offset(offset))
    return {
        "count": count,
        "status": task.status,
        "rowsRead": task.rows_read,
        "rowsAccepted": task.rows_accepted,
        "rowsRejected": task.rows_rejected,
        "items": [
            {
                "row": r.row_number,
                "column": r.error_column,
                "code": r.error_code,
                "message": r.error,
                "values": r.raw,
            }
            for r in rows
        ],
    }


RESULT_COLUMNS = [
    "messageId",
    "status",
    "errorCode",
    "errorMessage",
    "segments",
    "price",
    "priceUnit",
]
PAGE = 2000


def _result_values(
    kind: str, columns: list[str], row: TaskRow, status: str | None, delivery: Delivery | None
) -> list[Any]:
    values: list[Any] = [row.row_number, *(row.raw.get(c, "") for c in columns)]
    if kind == "report":
        where = f"{row.error_column}: " if row.error_column else ""
        return [*values, f"{where}{row.error}"]
    if row.error is not None:
        return [*values, "", "rejected", row.error_code, row.error, "", "", ""]
    d = delivery
    return [
        *values,
        row.message_id,
        status,
        d.error_code if d else None,
        d.error_message if d else None,
        d.num_segments if d else None,
        d.price if d else None,
        d.price_unit if d else None,
    ]


async def export(
    herald: Herald, project_id: str, task_id: str, *, kind: Literal["report", "results"], fmt: str
) -> tuple[Path, str]:
    """Write the report (rejected rows with an ``error`` column) or the per-row results to a
    temporary file, page by page so memory stays flat. Returns the path and a file name."""
    async with herald.sessions() as session:
        task = await find_task(session, project_id, task_id)
    columns = list(task.columns or ["phone"])
    header = ["row", *columns, *(["error"] if kind == "report" else RESULT_COLUMNS)]
    handle, name = tempfile.mkstemp(suffix=f".{fmt}", prefix=f"herald-{kind}-")
    os.close(handle)
    path = Path(name)
    writer = await asyncio.to_thread(_TableWriter, path, fmt, header)
    try:
        after = 0
        while True:
            # A short read transaction per page: on SQLite every transaction takes the lock.
            async with herald.sessions() as session:
                query = (
                    select(TaskRow, Message.status, Delivery)
                    .outerjoin(Message, Message.id == TaskRow.message_id)
                    .outerjoin(Delivery, Delivery.message_id == Message.id)
                    .where(TaskRow.task_id == task_id, TaskRow.row_number > after)
                    .order_by(TaskRow.row_number)
                    .limit(PAGE)
                )
                if kind == "report":
                    query = query.where(TaskRow.error.is_not(None))
                page = (await session.execute(query)).all()
            if not page:
                break
            rows = [_result_values(kind, columns, r, s, d) for r, s, d in page]
            await asyncio.to_thread(writer.write, rows)
            after = page[-1][0].row_number
        await asyncio.to_thread(writer.close)
    except BaseException:
        writer.abort()
        await asyncio.to_thread(path.unlink, True)
        raise
    stem = Path(task.file_name or task.name).stem or "task"
    return path, f"{stem}-{kind}.{fmt}"


class _TableWriter:
    """A CSV or XLSX file written in appended pages (openpyxl's write-only mode)."""

    def __init__(self, path: Path, fmt: str, header: Sequence[str]) -> None:
        self._path, self._fmt = path, fmt
        self._csv: Any = None
        self._book: Any = None
        if fmt == "xlsx":
            from openpyxl import Workbook

            self._book = Workbook(write_only=True)
            self._sheet = self._book.create_sheet()
            self._sheet.append(list(header))
        else:
            self._file = path.open("w", encoding="utf-8-sig", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(header)

    def write(self, rows: list[list[Any]]) -> None:
        for row in rows:
            cells = [sheets.escape_formula(v) for v in row]
            if self._book is not None:
                self._sheet.append(cells)
            else:
                self._csv.writerow(cells)

    def close(self) -> None:
        if self._book is not None:
            self._book.save(self._path)
        else:
            self._file.close()

    def abort(self) -> None:
        if self._book is None:
            self._file.close()


async def result_format(session: AsyncSession, project_id: str, task_id: str) -> str:
    """The format results come in by default: the format of the uploaded file."""
    task = await find_task(session, project_id, task_id)
    return task.file_format or "csv"
