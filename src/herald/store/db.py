"""Engine and session factory for SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from herald.store.sqlite_driver import InlineSQLite


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def create_engine(url: str, *, pool_size: int = 20) -> AsyncEngine:
    """An async engine tuned for Herald's workload on either database."""
    if is_sqlite(url):
        # SQLite has one writer at a time. Within a process, waiting for the one connection in
        # the pool's asyncio queue is far cheaper than colliding on the file lock.
        engine = create_async_engine(
            url,
            connect_args={"timeout": 30},
            pool_size=1,
            max_overflow=0,
            pool_timeout=60,
            # Statements run on the loop's thread: see sqlite_driver for the measurements.
            module=InlineSQLite(),
            json_deserializer=_json_loads,
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _json_loads(text: str) -> Any:
    # A JSON column holding None stores the text "null"; most optional ones do.
    return None if text == "null" else json.loads(text)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We issue BEGIN ourselves (below), so the driver must not.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside the one writer; FULL keeps a commit on disk even if
        # the machine (not just the process) dies right after we answered 201.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def on_begin(conn: Any) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY
        # (busy_timeout does not apply) when another process wrote in between; taking the
        # write lock up front makes every writer wait its turn instead. Sent to the driver
        # directly (it still waits out another process's lock): through SQLAlchemy's
        # statement machinery it cost ~40 µs of CPU per transaction.
        reader = conn.get_execution_options().get(_READS_ONLY, False)
        conn.connection.dbapi_connection.execute("BEGIN" if reader else "BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgres(session: AsyncSession) -> bool:
    """Whether row locks (FOR UPDATE [SKIP LOCKED]) are available and needed."""
    return session.get_bind().dialect.name == "postgresql"


# Execution option: the transaction only reads, so on SQLite it need not take the write lock.
_READS_ONLY = "herald_reads_only"


async def read_snapshot(session: AsyncSession) -> None:
    """Make the reads that follow see one consistent state, without waiting for writers.

    PostgreSQL's default (READ COMMITTED) gives each statement its own snapshot, so a view
    built from several queries (a message, then its deliveries) could mix states from before
    and after a concurrent commit: a message still "sent" beside its delivered channel.
    SQLite reads one snapshot per transaction already; a deferred BEGIN (instead of the
    writers' BEGIN IMMEDIATE) lets it read while another process writes. Call before the
    session's first query, in a session that only reads: a write in it could fail at once.
    """
    if is_postgres(session):
        await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    else:
        await session.connection(execution_options={_READS_ONLY: True})
