"""Status tracking on plain rows, against real SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select, update

from herald.bootstrap import Herald, build
from herald.config import Settings
from herald.domain.statuses import Status
from herald.schemas.messages import CreateMessagesIn
from herald.services.delivery.tracking import Changes, apply_status
from herald.services.messages.accepting import CreationPolicy, create_messages
from herald.services.projects import create_project
from herald.store.messages import Delivery, Message
from herald.store.rows import load_deliveries, rows_of


@pytest.fixture
async def herald(settings: Settings) -> AsyncIterator[Herald]:
    graph = build(settings)
    yield graph
    await graph.aclose()


async def _one_message(herald: Herald, phones: list[str]) -> list[str]:
    """Delivery ids of one message per phone, through the sandbox sender."""
    async with herald.sessions() as session, session.begin():
        project = await create_project(session, herald.vault, "rows")
        body = {
            "messages": [
                {"destinations": [{"phone": p}], "channels": {"sms": {"text": "hi"}}}
                for p in phones
            ]
        }
        await create_messages(
            session,
            project.project_id,
            CreateMessagesIn.model_validate(body),
            now=herald.clock.now(),
            policy=CreationPolicy.from_settings(herald.settings),
        )
        return list(await session.scalars(select(Delivery.id).order_by(Delivery.id)))


async def test_a_write_leaves_columns_it_did_not_change_alone(herald: Herald) -> None:
    [delivery_id] = await _one_message(herald, ["+33612345678"])
    async with herald.sessions() as session, session.begin():
        [(delivery, message)] = (await load_deliveries(session, [delivery_id], lock=True)).values()
        # Someone else prices the delivery after we read it.
        await session.execute(
            update(Delivery).where(Delivery.id == delivery_id).values(price="0.0079")
        )
        changes = Changes()
        apply_status(
            changes, message, delivery, Status.CANCELLED, source="test", at=herald.clock.now()
        )
        await changes.write(session)
    async with herald.sessions() as session:
        stored = await session.get_one(Delivery, delivery_id)
        assert (stored.status, stored.price) == ("cancelled", "0.0079")
        assert (await session.get_one(Message, delivery.message_id)).status == "cancelled"


async def test_rows_of_keeps_one_row_per_object(herald: Herald) -> None:
    ids = await _one_message(herald, ["+33612345678", "+33612345679"])
    async with herald.sessions() as session:
        pairs = [
            (d, m)
            for d, m in await session.execute(
                select(Delivery, Message).join(Message, Message.id == Delivery.message_id)
            )
        ]
        rows = rows_of([*pairs, pairs[0]])
    assert [d.id for d, _ in rows] == [*[d.id for d, _ in pairs], pairs[0][0].id]
    # The same delivery twice is one row: a change through either is seen through both.
    assert rows[0][0] is rows[2][0] and rows[0][1] is rows[2][1]
    assert rows[0][0] is not rows[1][0]
    assert sorted(ids) == sorted(d.id for d, _ in rows[:2])
