"""Senders: a provider account and address a project sends from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, false, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class Sender(Base):
    __tablename__ = "senders"
    __table_args__ = (Index(None, "project_id", "channel", "from_address", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    provider: Mapped[str] = mapped_column(String(30))
    from_address: Mapped[str] = mapped_column(String(200))
    account_id: Mapped[str | None] = mapped_column(String(100))
    # Fernet token of a JSON object holding the provider secrets (e.g. Twilio's auth token).
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    base_url: Mapped[str | None] = mapped_column(String(500))
    rate_limit: Mapped[float | None] = mapped_column(Float)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    # Transliterate typographic look-alikes to GSM-7 before sending (Twilio's Smart Encoding).
    smart_encoding: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # GCRA state for rateLimit: the earliest time the next segment may go out. It lives in
    # the database so every worker process shares one limit.
    rate_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # Set when a sender with message history is removed: it is no longer listed or chosen,
    # while the row stays for that history and for the reports still to come about it.
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


async def default_sender(session: AsyncSession, project_id: str, channel: str) -> Sender | None:
    """The project's default sender of ``channel``, if it has one."""
    return await session.scalar(
        select(Sender).where(
            Sender.project_id == project_id, Sender.channel == channel, Sender.is_default.is_(True)
        )
    )


async def removed_sender(
    session: AsyncSession, project_id: str, channel: str, from_address: str
) -> Sender | None:
    """The removed sender of ``channel`` from ``from_address``, kept for its history."""
    return await session.scalar(
        select(Sender).where(
            Sender.project_id == project_id,
            Sender.channel == channel,
            Sender.from_address == from_address,
            Sender.removed_at.is_not(None),
        )
    )


async def clear_default(session: AsyncSession, project_id: str, channel: str) -> None:
    """No sender of the channel is the default (one is about to become it)."""
    await session.execute(
        update(Sender)
        .where(Sender.project_id == project_id, Sender.channel == channel)
        .values(is_default=False)
    )


async def senders_of(
    session: AsyncSession, project_id: str, *, newest_first: bool = False, **equal: str
) -> list[Sender]:
    """The project's senders not removed whose columns hold ``equal``, oldest first unless told."""
    query = select(Sender).where(Sender.project_id == project_id, Sender.removed_at.is_(None))
    for column, value in equal.items():
        query = query.where(getattr(Sender, column) == value)
    order = Sender.created_at.desc() if newest_first else Sender.created_at
    return list(await session.scalars(query.order_by(order, Sender.id)))


async def newest_real_sender(session: AsyncSession, other_than: Sender) -> Sender | None:
    """The newest sender of ``other_than``'s channel besides it, neither removed nor sandbox."""
    return await session.scalar(
        select(Sender)
        .where(
            Sender.project_id == other_than.project_id,
            Sender.channel == other_than.channel,
            Sender.id != other_than.id,
            Sender.removed_at.is_(None),
            Sender.provider != "sandbox",
        )
        .order_by(Sender.created_at.desc())
        .limit(1)
    )
