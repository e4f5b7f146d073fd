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
from typing import IO, Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.domain import spreadsheets as sheets
from herald.errors import Conflict, InvalidRequest, UnsupportedMediaType, ValidationFailed
from herald.services.messages.plans import SUPPORTED_CHANNELS
from herald.services.tasks.listing import find_task
from herald.services.tasks.settings import destination_columns, task_channels
from herald.services.templates.rendering import variables_in
from herald.services.templates.resource import load_template
from herald.store import tasks as store
from herald.store.messages import Delivery
from herald.store.tasks import TaskRow

EXAMPLES = {
    "phone": "+14155552671",
    "email": "ann@example.com",
    "messengerUserId": "123456789",
}


def joined_csv(parts: Sequence[tuple[str | None, IO[bytes]]]) -> IO[bytes]:
    """Several CSV files with one header as one file: the header once, then every row.

    TWIN's bulk upload may repeat its file part, one send made of several files. A file
    whose first line differs, or one that is not CSV, is refused rather than mixed in.
    """
    joined: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115
    header: bytes | None = None
    for name, source in parts:
        first = source.readline()
        try:
            fmt = sheets.file_format(name, first)
        except sheets.SpreadsheetProblem as e:
            joined.close()
            raise UnsupportedMediaType(
                e.message, code=e.code, details={"accepted": list(sheets.FORMATS)}
            ) from e
        if fmt != "csv":
            joined.close()
            raise ValidationFailed(
                f"{name!r} is not CSV; several files are joined into one send only when all "
                "are CSV with the same header. Send a workbook on its own.",
                code="files_not_joinable",
            )
        line = first.removeprefix(b"\xef\xbb\xbf").rstrip(b"\r\n")
        if header is None:
            header = line
            joined.write(first if first.endswith(b"\n") else first + b"\n")
        elif line != header:
            joined.close()
            raise ValidationFailed(
                f"{name!r} has other columns than the first file ({line[:200]!r} against "
                f"{header[:200]!r}); files are joined into one send only when their headers "
                "are the same.",
                code="files_not_joinable",
            )
        last = b"\n"
        while chunk := source.read(1024 * 1024):
            joined.write(chunk)
            last = chunk[-1:]
        if last != b"\n":
            joined.write(b"\n")
    joined.seek(0)
    return joined


def sample_columns(channels: dict[str, dict[str, Any]]) -> list[str]:
    """The destination columns the channels need, then every variable their content uses."""
    columns = destination_columns(channels)
    return columns + [v for v in variables_in(channels) if v not in columns]


def sample_file(columns: Sequence[str], fmt: str) -> bytes:
    """A file with the columns and one row of examples."""
    example = [EXAMPLES.get(c, f"example {c}") for c in columns]
    return sheets.table_bytes(fmt, columns, [example])


async def template_sample(
    session: AsyncSession,
    project_id: str,
    template_id: str,
    channels: Sequence[str] | None,
    fmt: str,
) -> bytes:
    """A file with the columns for sending the template on ``channels`` (default: every
    channel it has)."""
    snapshot = await load_template(session, project_id, template_id)
    keys = [k.lower() for k in channels or ()] or [
        k for k in snapshot.channels if k in SUPPORTED_CHANNELS
    ]
    unknown = [k for k in keys if k not in SUPPORTED_CHANNELS]
    if unknown or not keys:
        what = f"Channel {unknown[0]!r}" if unknown else "None of the template's channels"
        raise InvalidRequest(
            f"{what} cannot be sent from a spreadsheet; use: {', '.join(SUPPORTED_CHANNELS)}.",
            code="unsupported_channel",
        )
    return sample_file(sample_columns({k: dict(snapshot.channels.get(k, {})) for k in keys}), fmt)


async def task_sample(session: AsyncSession, project_id: str, task_id: str, fmt: str) -> bytes:
    """A file with the columns the task needs."""
    task = await find_task(session, project_id, task_id)
    return sample_file(sample_columns(await task_channels(session, task)), fmt)


async def report(
    session: AsyncSession, project_id: str, task_id: str, *, limit: int, offset: int
) -> dict[str, Any]:
    """Rejected rows: row number, column, code and a sentence."""
    task = await find_task(session, project_id, task_id)
    count, rows = await store.rejected_rows(session, task_id, limit=limit, offset=offset)
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
    "channel",
    "errorCode",
    "errorMessage",
    "segments",
    "price",
    "priceUnit",
]
PAGE = 2000
_SUCCESS = ("delivered", "read")
_UNUSED = ("pending", "skipped")


def _outcome(deliveries: Sequence[Delivery]) -> Delivery | None:
    """The channel that speaks for a cascade: the one that delivered, else the last tried."""
    if not deliveries:
        return None
    for d in deliveries:
        if d.status in _SUCCESS:
            return d
    tried = [d for d in deliveries if d.status not in _UNUSED]
    return max(tried or deliveries[:1], key=lambda d: d.step)


def _result_values(
    kind: str, columns: list[str], row: TaskRow, status: str | None, delivery: Delivery | None
) -> list[Any]:
    values: list[Any] = [row.row_number, *(row.raw.get(c, "") for c in columns)]
    if kind == "report":
        where = f"{row.error_column}: " if row.error_column else ""
        return [*values, f"{where}{row.error}"]
    if row.error is not None:
        return [*values, "", "rejected", "", row.error_code, row.error, "", "", ""]
    d = delivery
    return [
        *values,
        row.message_id,
        status,
        d.channel if d else None,
        d.error_code if d else None,
        d.error_message if d else None,
        d.num_segments if d else None,
        d.price if d else None,
        d.price_unit if d else None,
    ]


async def _page(
    session: AsyncSession, task_id: str, kind: str, after: int
) -> list[tuple[TaskRow, str | None, Delivery | None]]:
    """One page of rows, each with its message's status and the delivery that speaks for it."""
    page = await store.rows_after(
        session, task_id, after, limit=PAGE, rejected_only=kind == "report"
    )
    ids = [row.message_id for row, _ in page if row.message_id]
    by_message: dict[str, list[Delivery]] = {}
    if ids and kind == "results":
        # Rows are paged first and their deliveries fetched apart: a message has one
        # delivery per channel of its cascade, and a page must not split a message.
        for d in await store.deliveries_of(session, ids):
            by_message.setdefault(d.message_id, []).append(d)
    return [
        (row, status, _outcome(by_message.get(row.message_id or "", []))) for row, status in page
    ]


async def export(
    sessions: async_sessionmaker[AsyncSession],
    project_id: str,
    task_id: str,
    *,
    kind: Literal["report", "results"],
    fmt: str,
) -> tuple[Path, str]:
    """Write the report (rejected rows with an ``error`` column) or the per-row results to a
    temporary file, page by page so memory stays flat. Returns the path and a file name."""
    async with sessions() as session:
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
            async with sessions() as session:
                page = await _page(session, task_id, kind, after)
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
        self._book: sheets.XlsxWriter | None = None
        if fmt == "xlsx":
            self._book = sheets.XlsxWriter(header)
        else:
            self._file = path.open("w", encoding="utf-8-sig", newline="")
            self._csv = csv.writer(self._file)
            self._csv.writerow(header)

    def write(self, rows: list[list[Any]]) -> None:
        for row in rows:
            if self._book is not None:
                self._book.append(row)
            else:
                self._csv.writerow([sheets.escape_formula(v) for v in row])

    def close(self) -> None:
        if self._book is not None:
            self._book.save(self._path)
        else:
            self._file.close()

    def abort(self) -> None:
        if self._book is None:
            self._file.close()


async def result_format(session: AsyncSession, project_id: str, task_id: str) -> str:
    """The format results come in by default: the uploaded file's, or XLSX for a workbook
    Herald reads but does not write (XLS, ODS)."""
    task = await find_task(session, project_id, task_id)
    fmt = task.file_format or "csv"
    return fmt if fmt in sheets.OUTPUT_FORMATS else "xlsx"


async def bulk_results(
    sessions: async_sessionmaker[AsyncSession], project_id: str, task_id: str, fmt: str | None
) -> tuple[Path, str, str]:
    """The results file of a bulk send once its file is read: path, file name and format."""
    async with sessions() as session:
        task = await find_task(session, project_id, task_id)
        if task.status in ("draft", "importing"):
            # An answer now would be a file of the rows read so far, which TWIN's SDK cannot
            # tell from a finished one.
            raise Conflict(
                "The file is still being read; ask again in a few seconds.",
                code="results_not_ready",
                details={"status": task.status, "rowsRead": task.rows_read},
            )
        chosen = fmt or await result_format(session, project_id, task_id)
    path, name = await export(sessions, project_id, task_id, kind="results", fmt=chosen)
    return path, name, chosen
