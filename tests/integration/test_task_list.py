"""The task list reads one snapshot, so its count, page and message counts agree."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import text

from herald.bootstrap import Herald, build
from herald.config import Settings
from herald.services.projects import create_project
from herald.services.tasks.listing import list_tasks


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[Herald]:
    graph = build(settings)
    yield graph
    await graph.aclose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_the_task_list_reads_one_snapshot_on_postgresql(herald: Herald) -> None:
    # SQLite needs no test: a reader holds the database's one connection, so no commit
    # lands between its queries. PostgreSQL's default gives each query its own snapshot.
    async with herald.sessions() as session, session.begin():
        project = await create_project(session, herald.vault, "tasks")
    async with herald.sessions() as session:
        listed = await list_tasks(session, project.project_id)
        level = await session.scalar(text("SHOW transaction_isolation"))
    assert listed == {"count": 0, "items": []}
    assert level == "repeatable read"
