"""Reading a send task's file in a process of its own.

Parsing a sheet (openpyxl's XML, the csv module) and checking each row's phone number are
the costliest CPU steps of an import. In the serving process they would share one core, and
the GIL, with storing the messages; in a reader process they run beside it. The reader
streams checked rows in batches over a pipe whose small buffer keeps it about one batch
ahead, so memory stays flat however large the file.

Run as ``python -m herald.services.tasks.reader '<json arguments>'``; it writes
length-prefixed pickled frames to stdout: ``("header", columns)``, then ``("rows", rows,
phone checks)`` per batch, then ``("end",)``, or ``("problem", message, code)`` when the
file cannot be read.
"""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import resource
import signal
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from herald.domain import phones
from herald.domain import spreadsheets as sheets
from herald.services.tasks.rows import ImportRow, check_row

_LENGTH = struct.Struct("!I")
# calamine holds a workbook's first sheet whole, sized by its cells' range: a tiny ODS or XLSX
# can ask for gigabytes (repeated rows, one far-away cell). The reader may use this much
# address space and no more; past it the reader dies and the import fails, Herald stays up.
READER_MEMORY_LIMIT = 2 << 30


class ReaderFailed(Exception):
    """The reader process ended without finishing the file (killed, or a bug in it)."""

    def __init__(self, message: str, returncode: int | None = None) -> None:
        super().__init__(message)
        self.returncode = returncode

    @property
    def stopped(self) -> bool:
        """Killed from outside (Ctrl-C, a shutdown, the OOM killer), not ended by the file."""
        return self.returncode is not None and -self.returncode in (
            signal.SIGINT,
            signal.SIGTERM,
            signal.SIGKILL,
        )


def _phone_checks(rows: list[ImportRow]) -> dict[tuple[str, str | None], phones.PhoneCheck]:
    # Keyed as the message path asks: the row's phone address, without a default region.
    return {
        (phone, None): phones.check(phone)
        for row in rows
        if row.error is None and (phone := row.addresses.get("phone"))
    }


def _read(args: dict[str, Any]) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (READER_MEMORY_LIMIT, READER_MEMORY_LIMIT))
    out = sys.stdout.buffer

    def send(*frame: Any) -> None:
        data = pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(data)) + data)
        out.flush()

    skip_through: int = args["skipThrough"]
    region: str | None = args["region"]
    columns: list[str] = args["columns"]
    batch_size: int = args["batchSize"]
    try:
        header, stream = sheets.read_rows(Path(args["path"]), args["format"])
        send("header", header)
        names = sheets.variable_names(header, args["variables"])
        batch: list[ImportRow] = []
        for row in stream:
            if row.number <= skip_through:
                continue
            batch.append(check_row(row.cells, row.number, region, columns, names))
            if len(batch) >= batch_size:
                send("rows", batch, _phone_checks(batch))
                batch = []
        if batch:
            send("rows", batch, _phone_checks(batch))
        send("end")
    except sheets.SpreadsheetProblem as e:
        send("problem", e.message, e.code)
    except BrokenPipeError:
        # The importer stopped listening (cancelled, or its process died). Point stdout at
        # /dev/null so flushing at exit does not fail a second time.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class SheetReader:
    """The parent's end: batches of checked rows from the reader process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._done = False

    @classmethod
    async def open(
        cls,
        path: Path,
        fmt: str,
        *,
        skip_through: int,
        region: str | None,
        columns: Sequence[str],
        batch_size: int,
        variables: Sequence[str] = (),
    ) -> tuple[list[str], SheetReader]:
        """Start reading ``path``: its header, and the reader for the rows after it.

        Rows numbered ``skip_through`` or less (stored by an earlier run) are skipped.
        ``variables`` are the template's, which columns fill whatever their letter case.
        """
        args = {
            "path": str(path),
            "format": fmt,
            "skipThrough": skip_through,
            "region": region,
            "columns": list(columns),
            "variables": list(variables),
            "batchSize": batch_size,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # not the working directory first on sys.path: nothing there may shadow us
            "-m",
            "herald.services.tasks.reader",
            json.dumps(args),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
        )
        reader = cls(process)
        try:
            frame = await reader._frame()
            if frame[0] != "header":
                reader._raise_for(frame)
        except BaseException:
            await reader.aclose()
            raise
        header: list[str] = frame[1]
        return header, reader

    async def next(self) -> list[ImportRow]:
        """The next batch of rows; empty at the end of the file."""
        if self._done:
            return []
        frame = await self._frame()
        if frame[0] == "rows":
            phones.remember(frame[2])
            rows: list[ImportRow] = frame[1]
            return rows
        if frame[0] == "end":
            self._done = True
            return []
        self._raise_for(frame)

    def _raise_for(self, frame: tuple[Any, ...]) -> NoReturn:
        self._done = True
        if frame[0] == "problem":
            raise sheets.SpreadsheetProblem(frame[1], frame[2])
        raise ReaderFailed(f"unexpected frame {frame[0]!r} from the file reader")

    async def _frame(self) -> tuple[Any, ...]:
        stdout = self._process.stdout
        assert stdout is not None
        try:
            (length,) = _LENGTH.unpack(await stdout.readexactly(_LENGTH.size))
            frame: tuple[Any, ...] = pickle.loads(await stdout.readexactly(length))
        except asyncio.IncompleteReadError:
            code = await self._process.wait()
            raise ReaderFailed(
                f"the file reader (pid {self._process.pid}) exited with code {code} before "
                "the end of the file; its error, if any, is in Herald's log",
                code,
            ) from None
        return frame

    async def aclose(self) -> None:
        """Stop the reader process, finished or not."""
        if self._process.returncode is None:
            self._process.kill()
        if self._process.stdout is not None:
            # Read to the end: a pipe paused on a full buffer is never closed otherwise, and
            # leaks (a ResourceWarning) when an import is stopped in the middle of a file.
            await self._process.stdout.read()
        await self._process.wait()


if __name__ == "__main__":
    _read(json.loads(sys.argv[1]))
