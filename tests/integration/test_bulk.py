"""Bulk writes (store/bulk.py) store exactly what SQLAlchemy's own executemany stores."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from herald.store.base import UTCDateTime
from herald.store.bulk import insert_many, update_many
from herald.store.db import create_engine

AT = datetime(2026, 12, 3, 10, 30, 15, 123456, tzinfo=UTC)

metadata = MetaData()
THINGS = Table(
    "bulk_things",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(50), nullable=False),
    Column("at", UTCDateTime()),
    Column("data", JSON),
    Column("flag", Boolean, nullable=False),
    Column("count", Integer, nullable=False, default=7),
)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        await conn.run_sync(metadata.drop_all)
    await engine.dispose()


def _thing(i: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "id": f"t{i}",
        "name": f"thing {i}",
        "at": AT + timedelta(minutes=i),
        "data": {"n": i, "tags": ["a", "ü"]} if i % 2 else None,
        "flag": bool(i % 2),
        "count": i,
    }
    return {**row, **overrides}


async def _all(engine: AsyncEngine) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(select(THINGS).order_by(THINGS.c.id))
        return [dict(row._mapping) for row in result]


async def test_inserted_rows_read_back_as_sqlalchemy_writes_them(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, [_thing(i) for i in range(1, 5)])
    ours = await _all(engine)
    async with engine.begin() as conn:
        await conn.execute(THINGS.delete())
        await conn.execute(insert(THINGS), [_thing(i) for i in range(1, 5)])
    assert ours == await _all(engine)
    assert ours[0] == _thing(1)
    assert ours[1]["data"] is None and ours[1]["at"] == AT + timedelta(minutes=2)


async def test_a_row_without_a_python_default_gets_the_default(engine: AsyncEngine) -> None:
    rows = [{k: v for k, v in _thing(i).items() if k != "count"} for i in (1, 2)]
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, rows)
    assert [r["count"] for r in await _all(engine)] == [7, 7]


async def test_updates_set_only_the_given_columns_of_each_row(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, [_thing(i) for i in range(1, 4)])
        await update_many(
            conn,
            THINGS,
            [
                {"_id": "t1", "name": "one", "data": {"x": 1}},
                {"_id": "t3", "name": "three", "data": None},
            ],
        )
        later = AT + timedelta(days=1)
        await update_many(conn, THINGS, [{"_id": "t2", "at": later, "flag": True}])
        await update_many(conn, THINGS, [])
    rows = {r["id"]: r for r in await _all(engine)}
    assert rows["t1"] == _thing(1, name="one", data={"x": 1})
    assert rows["t2"] == _thing(2, at=later, flag=True)
    assert rows["t3"] == _thing(3, name="three", data=None)


async def test_a_failed_statement_changes_nothing(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await insert_many(conn, THINGS, [_thing(1)])
    with pytest.raises(IntegrityError):
        async with engine.begin() as conn:
            await insert_many(conn, THINGS, [_thing(2), _thing(1)])
    assert [r["id"] for r in await _all(engine)] == ["t1"]
