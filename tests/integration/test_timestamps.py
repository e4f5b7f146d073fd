"""UTCDateTime on SQLite: what is written reads back equal, aware and in UTC."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.store.base import UTCDateTime
from herald.store.db import create_engine

STAMPS = Table(
    "stamps", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'stamps.db'}")
    async with engine.begin() as conn:
        await conn.run_sync(STAMPS.metadata.create_all)
    yield engine
    await engine.dispose()


async def test_written_times_read_back_equal_and_in_utc(engine: AsyncEngine) -> None:
    paris = timezone(timedelta(hours=1))
    written = [
        datetime(2026, 12, 3, 9, 30, 15, 123456, tzinfo=UTC),
        datetime(2026, 12, 3, 10, 30, 15, tzinfo=paris),  # another offset: stored as UTC
        datetime(2026, 12, 3, 9, 30, tzinfo=UTC),  # no fraction of a second
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(STAMPS), [{"id": i, "at": at} for i, at in enumerate(written)])
        stored = list(await conn.scalars(text("SELECT at FROM stamps ORDER BY id")))
        read = list(await conn.scalars(select(STAMPS.c.at).order_by(STAMPS.c.id)))
    # SQLite's own DATETIME text, so its comparisons and date functions still work on it.
    assert stored[:2] == ["2026-12-03 09:30:15.123456", "2026-12-03 09:30:15.000000"]
    assert read == written
    assert all(at.tzinfo is UTC for at in read)


async def test_text_written_outside_herald_reads_as_utc(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO stamps (id, at) VALUES (1, '2026-12-03 09:30:00'), "
                "(2, '2026-12-03T11:30:00+02:00')"
            )
        )
        read = list(await conn.scalars(select(STAMPS.c.at).order_by(STAMPS.c.id)))
    assert read == [datetime(2026, 12, 3, 9, 30, tzinfo=UTC)] * 2
    assert all(at.tzinfo is UTC for at in read)


async def test_a_naive_time_is_refused(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        with pytest.raises(Exception, match="naive datetime"):
            await conn.execute(insert(STAMPS), [{"id": 1, "at": datetime(2026, 12, 3, 9, 30)}])
