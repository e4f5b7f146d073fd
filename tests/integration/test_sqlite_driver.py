"""The inline SQLite driver: statements on the loop's thread, lock waits off it."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from herald.store.db import create_engine, read_snapshot, session_factory
from herald.store.sqlite_driver import InlineSQLite


async def _make_table(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)"))
    await engine.dispose()


async def test_rows_commit_and_rollback(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}"
    await _make_table(url)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO items (name) VALUES (:name)"), [{"name": f"n{i}"} for i in range(5)]
        )
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT name FROM items ORDER BY id"))
        assert result.fetchone() == ("n0",)
        assert result.fetchmany(2) == [("n1",), ("n2",)]
        assert result.fetchall() == [("n3",), ("n4",)]
        await conn.execute(text("DELETE FROM items"))
        await conn.rollback()
    await engine.dispose()
    # Committed for real: another connection, outside Herald, sees exactly the five rows.
    with sqlite3.connect(tmp_path / "db.sqlite") as plain:
        assert plain.execute("SELECT count(*) FROM items").fetchone() == (5,)


async def test_waiting_for_another_writer_leaves_the_loop_running(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    await _make_table(url)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('theirs')")
    ticks = 0

    async def tick() -> None:
        # Only the loop releases the other writer, after ten turns of its own: if waiting
        # blocked the loop, that would never happen and the insert below would fail after
        # 30 s. (Releasing on a timer instead let a long pause before the insert, a garbage
        # collection late in the suite, use up the timer so that the insert never waited.)
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1
            if ticks == 10:
                other.commit()

    ticker = asyncio.create_task(tick())
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO items (name) VALUES ('ours')"))
    finally:
        ticker.cancel()
        await engine.dispose()
        other.close()
    assert ticks >= 10
    with sqlite3.connect(path) as plain:
        names = [r[0] for r in plain.execute("SELECT name FROM items ORDER BY id")]
    assert names == ["theirs", "ours"]


async def test_a_lock_held_past_the_timeout_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    await _make_table(url)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    engine = create_async_engine(url, module=InlineSQLite(), connect_args={"timeout": 0.2})
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with engine.begin() as conn:
                await conn.execute(text("INSERT INTO items (name) VALUES ('ours')"))
    finally:
        await engine.dispose()
        other.rollback()
        other.close()


async def test_a_read_snapshot_does_not_wait_for_another_writer(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite"
    url = f"sqlite+aiosqlite:///{path}"
    await _make_table(url)
    with sqlite3.connect(path) as plain:
        plain.execute("INSERT INTO items (name) VALUES ('committed')")
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('not yet')")
    engine = create_engine(url)
    try:
        # The writer never lets go during the read: a reader that took the write lock would
        # wait here until the timeout.
        async with asyncio.timeout(10), session_factory(engine)() as session:
            await read_snapshot(session)
            names = (await session.execute(text("SELECT name FROM items"))).scalars().all()
    finally:
        await engine.dispose()
        other.rollback()
        other.close()
    assert names == ["committed"]
