"""Outbound client callbacks: an outbox the callback sender drains, and its attempt log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, Select, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Mapped, aliased, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class ClientCallback(Base):
    __tablename__ = "client_callbacks"
    __table_args__ = (
        Index(None, "next_attempt_at"),
        Index(None, "message_id"),
        Index(None, "message_id", "sequence", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(String(36))
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # 1, 2, 3 … per message: the order the client receives them in, one at a time.
    sequence: Mapped[int] = mapped_column(Integer)
    # The message's status this callback reports (the next one's previousStatus).
    status: Mapped[str] = mapped_column(String(20))
    url: Mapped[str] = mapped_column(String(2000))
    # The exact bytes that get signed and sent, fixed when the status changed.
    body: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=utcnow)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ClientCallbackAttempt(Base):
    __tablename__ = "client_callback_attempts"
    __table_args__ = (Index(None, "callback_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    callback_id: Mapped[str] = mapped_column(ForeignKey("client_callbacks.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    http_status: Mapped[int | None] = mapped_column(Integer)
    # Truncated: enough to debug a receiver, never a copy of whatever it sent back.
    response_excerpt: Mapped[str | None] = mapped_column(String(500))
    error: Mapped[str | None] = mapped_column(String(500))


async def last_callbacks(
    connection: AsyncConnection, message_ids: Sequence[str]
) -> dict[str, tuple[int, str]]:
    """The sequence and status of each message's latest callback, for those that have one."""
    latest = aliased(ClientCallback)
    newest = (
        select(func.max(latest.sequence))
        .where(latest.message_id == ClientCallback.message_id)
        .scalar_subquery()
    )
    rows = await connection.execute(
        select(ClientCallback.message_id, ClientCallback.sequence, ClientCallback.status).where(
            ClientCallback.message_id.in_(message_ids), ClientCallback.sequence == newest
        )
    )
    return {message_id: (sequence, status) for message_id, sequence, status in rows}


async def callbacks_of(
    session: AsyncSession, message_id: str
) -> list[tuple[ClientCallback, list[ClientCallbackAttempt]]]:
    """A message's callbacks in their order, each with its delivery attempts in theirs."""
    callbacks = list(
        await session.scalars(
            select(ClientCallback)
            .where(ClientCallback.message_id == message_id)
            .order_by(ClientCallback.sequence)
        )
    )
    attempts: dict[str, list[ClientCallbackAttempt]] = {cb.id: [] for cb in callbacks}
    if callbacks:
        for attempt in await session.scalars(
            select(ClientCallbackAttempt)
            .where(ClientCallbackAttempt.callback_id.in_(list(attempts)))
            .order_by(ClientCallbackAttempt.id)
        ):
            attempts[attempt.callback_id].append(attempt)
    return [(cb, attempts[cb.id]) for cb in callbacks]


def due_heads(now: datetime, limit: int) -> Select[ClientCallback]:
    """Callbacks due now that are the oldest still pending of their message.

    Callback N+1 of a message waits while N is pending (retrying, or held by a sender), so a
    client never receives a message's statuses out of order.
    """
    earlier = aliased(ClientCallback)
    waiting_before = (
        select(earlier.id)
        .where(
            earlier.message_id == ClientCallback.message_id,
            earlier.state == "pending",
            earlier.sequence < ClientCallback.sequence,
        )
        .exists()
    )
    return (
        select(ClientCallback)
        .where(
            ClientCallback.state == "pending",
            ClientCallback.next_attempt_at <= now,
            ~waiting_before,
        )
        .order_by(ClientCallback.next_attempt_at, ClientCallback.id)
        .limit(limit)
    )
