"""SQLite for the async engine, run on the event loop's thread instead of a thread per call.

aiosqlite runs every call on a thread of its own and hands the answer back to the loop.
On the machines we measure on, one such hand-off costs 130-230 µs of CPU, and SQLAlchemy's
aiosqlite adapter makes three or four per statement (cursor, execute, fetchall, close),
while the statement itself takes 2-50 µs. That hand-off was most of the SMS pipeline's CPU.

So statements run where they are called. Only what may take long goes to a worker thread:
committing a transaction that wrote (an fsync, slow on some disks) and waiting for the write
lock while another process holds it. In-process writers never meet on the lock: the engine
keeps one connection (see ``db.create_engine``), so they queue in the pool instead.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.util.concurrency import await_, in_greenlet

T = TypeVar("T")

# SQLITE_BUSY and SQLITE_LOCKED: another connection holds a lock we need.
LOCK_ERRORS = frozenset({5, 6})
MAX_LOCK_POLL = 0.005  # seconds between tries while another process holds the lock


async def _no_wait() -> None:
    pass


def _is_lock_error(error: sqlite3.OperationalError) -> bool:
    return getattr(error, "sqlite_errorcode", None) in LOCK_ERRORS


class InlineSQLiteCursor:
    """sqlite3's cursor, its rows read at once (as SQLAlchemy's async adapters do).

    A statement that meets another process's lock waits for it on a worker thread.
    """

    server_side = False

    def __init__(self, connection: InlineSQLiteConnection) -> None:
        self._connection = connection
        self._cursor = connection.raw.cursor()
        self._rows: deque[Any] = deque()
        self.description: Any = None

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def lastrowid(self) -> int | None:
        rowid: int | None = self._cursor.lastrowid
        return rowid

    @property
    def arraysize(self) -> int:
        return int(self._cursor.arraysize)

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    def execute(self, operation: str, parameters: Any = None) -> InlineSQLiteCursor:
        params = () if parameters is None else parameters

        def statement() -> None:
            self._cursor.execute(operation, params)
            self.description = self._cursor.description
            self._rows = deque(self._cursor.fetchall() if self.description else ())

        self._connection.run(statement)
        return self

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> InlineSQLiteCursor:
        self._connection.run(lambda: self._cursor.executemany(operation, seq_of_parameters))
        self.description = None
        self._rows = deque()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self._cursor.arraysize if size is None else size
        rows = self._rows
        return [rows.popleft() for _ in range(min(n, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's async results; the rows are already read, nothing to do."""

    def setinputsizes(self, *sizes: Any) -> None:
        pass

    def setoutputsize(self, *args: Any) -> None:
        pass


class InlineSQLiteConnection(AdaptedConnection):
    """What SQLAlchemy's aiosqlite dialect expects of a connection, without the thread."""

    __slots__ = ("_patience", "_raw", "_settled_changes")

    def __init__(self, connection: sqlite3.Connection, patience: float) -> None:
        self._connection = connection  # type: ignore[assignment]  # what driver_connection gives
        self._raw = connection
        self._patience = patience
        self._settled_changes = connection.total_changes

    @property
    def raw(self) -> sqlite3.Connection:
        return self._raw

    @property
    def isolation_level(self) -> str | None:
        level: str | None = self._raw.isolation_level
        return level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._raw.isolation_level = value  # type: ignore[assignment]  # SQLAlchemy passes any

    def create_function(self, *args: Any, **kw: Any) -> None:
        self._raw.create_function(*args, **kw)

    def cursor(self, server_side: bool = False) -> InlineSQLiteCursor:
        return InlineSQLiteCursor(self)

    def execute(self, operation: str, parameters: Any = None) -> InlineSQLiteCursor:
        return self.cursor().execute(operation, parameters)

    def run(self, statement: Callable[[], T]) -> T:
        """Run a statement here; if another process holds the lock, wait for it on a thread."""
        try:
            result = statement()
        except sqlite3.OperationalError as e:
            if not _is_lock_error(e):
                raise
        else:
            if in_greenlet():
                # SQLAlchemy's async engine refuses a driver that never awaits (it takes it
                # for a sync driver by mistake); an await that is already done costs ~1 µs.
                await_(_no_wait())
            return result
        # A statement refused for a lock changed nothing, so running it again is safe.
        return self._off_loop(lambda: self._with_patience(statement))

    def _with_patience(self, statement: Callable[[], T]) -> T:
        # Polled, not SQLite's busy_timeout: its handler sleeps in steps growing to 100 ms,
        # so a writer process would sit idle long after a short transaction elsewhere ended.
        deadline = time.monotonic() + self._patience
        pause = 0.0005
        while True:
            try:
                return statement()
            except sqlite3.OperationalError as e:
                if not _is_lock_error(e) or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, MAX_LOCK_POLL)

    def _off_loop(self, work: Callable[[], T]) -> T:
        if not in_greenlet():
            return work()  # called from plain sync code: nothing else to keep running
        return await_(asyncio.to_thread(work))

    def commit(self) -> None:
        wrote = self._raw.total_changes != self._settled_changes
        if wrote:
            # The fsync of a commit is the one step that can take milliseconds.
            self._off_loop(lambda: self.run(self._raw.commit))
        else:
            self.run(self._raw.commit)
        self._settled_changes = self._raw.total_changes

    def rollback(self) -> None:
        self._raw.rollback()
        self._settled_changes = self._raw.total_changes

    def close(self) -> None:
        self._raw.close()

    def terminate(self) -> None:
        self._raw.close()


class InlineSQLite(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to ``create_async_engine(..., module=...)``.

    Keeps aiosqlite's names (its exceptions are sqlite3's) so the dialect's error handling
    is unchanged; only the connection differs.
    """

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)

    def connect(self, *args: Any, **kw: Any) -> InlineSQLiteConnection:  # type: ignore[override]
        patience = float(kw.pop("timeout", 30.0))
        # No busy waiting on the loop's thread: a locked database raises at once and
        # InlineSQLiteConnection.run waits for it on a worker thread.
        kw["check_same_thread"] = False
        connect: Callable[..., sqlite3.Connection] = sqlite3.connect  # the dialect's own args
        connection = connect(*args, timeout=0, **kw)
        return InlineSQLiteConnection(connection, patience)
