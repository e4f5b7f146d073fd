"""Two-way bots: the bot, its conversations and their messages, opt-out suppressions, and
each person's last inbound time per channel (the WhatsApp 24-hour window); with the queries
that find and add conversations, their messages and that inbound time."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.domain.addresses import bare
from herald.store.base import Base, UTCDateTime, new_id, utcnow


class Bot(Base):
    __tablename__ = "bots"
    __table_args__ = (Index(None, "project_id", "phone", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    account_sid: Mapped[str] = mapped_column(String(100))
    # Fernet token of {"authToken": ...}; inbound signatures are checked against it.
    credentials_encrypted: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(String(32))
    base_url: Mapped[str | None] = mapped_column(String(500))
    webhook_url: Mapped[str | None] = mapped_column(String(1000))
    reply_timeout: Mapped[float] = mapped_column(Float, default=3.0)
    # [{"match": "exact"|"regex", "pattern": str, "reply": str}], tried in order.
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    default_reply: Mapped[str | None] = mapped_column(Text)
    help_text: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Conversation(Base):
    """One person talking to one bot; closing it only marks it, the next text reopens it."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index(None, "bot_id", "channel", "address", unique=True),
        Index(None, "bot_id", "last_message_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    bot_id: Mapped[str] = mapped_column(ForeignKey("bots.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    address: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")
    unread: Mapped[int] = mapped_column(Integer, default=0)
    last_message_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_direction: Mapped[str | None] = mapped_column(String(10))
    last_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConversationMessage(Base):
    __tablename__ = "conversation_messages"
    __table_args__ = (
        Index(None, "provider_sid", unique=True),
        Index(None, "conversation_id", "id"),
        Index(None, "message_id"),
    )

    # An integer key keeps insertion order even when an inbound text and its TwiML reply
    # share a timestamp.
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    direction: Mapped[str] = mapped_column(String(10))
    body: Mapped[str] = mapped_column(Text, default="")
    media: Mapped[list[str] | None] = mapped_column(JSON)
    # Twilio's MessageSid for inbound texts: the idempotency key.
    provider_sid: Mapped[str | None] = mapped_column(String(64))
    # For replies sent through the messages pipeline: its message, whose status is shown.
    message_id: Mapped[str | None] = mapped_column(String(36))
    # "received" (inbound), "twiml" (answered in the webhook response), "api" (pipeline),
    # "webchat" (shown in the web chat widget).
    via: Mapped[str] = mapped_column(String(10))
    # Web chat only: image and button shown with the text, and the widget's receipts
    # (sent, delivered, read), which also hold for replies that have no pipeline message.
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    status: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Suppression(Base):
    """A person who opted out of texts from one sender on one channel."""

    __tablename__ = "suppressions"
    __table_args__ = (
        Index(None, "project_id", "channel", "to_address", "from_address", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(20))
    from_address: Mapped[str] = mapped_column(String(200))
    to_address: Mapped[str] = mapped_column(String(200))
    # "keyword:STOP", "twilio-21610", ...
    source: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ContactActivity(Base):
    __tablename__ = "contact_activity"

    project_id: Mapped[str] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    address: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_inbound_at: Mapped[datetime] = mapped_column(UTCDateTime())


# -- conversations ---------------------------------------------------------------------------


def add_message(
    session: AsyncSession,
    conversation: Conversation,
    direction: str,
    body: str,
    via: str,
    at: datetime,
    *,
    media: list[str] | None = None,
    provider_sid: str | None = None,
    message_id: str | None = None,
    content: dict[str, Any] | None = None,
    status: str | None = None,
    automatic: bool = False,
) -> ConversationMessage:
    """Add a text to the conversation; an ``automatic`` reply (the bot's rules or backend)
    leaves the person's texts unread, since no person has seen or answered them."""
    message = ConversationMessage(
        conversation_id=conversation.id,
        direction=direction,
        body=body,
        media=media or None,
        provider_sid=provider_sid,
        message_id=message_id,
        via=via,
        content=content or None,
        status=status,
        created_at=at,
    )
    session.add(message)
    conversation.last_message_at = at
    conversation.last_direction = direction
    conversation.last_body = body[:500]
    if direction == "inbound":
        conversation.unread += 1
    elif not automatic:
        conversation.unread = 0
    return message


async def conversation_for(
    session: AsyncSession, bot: Bot, channel: str, address: str, at: datetime
) -> Conversation:
    """The person's conversation with the bot on ``channel``, made or reopened."""
    query = select(Conversation).where(
        Conversation.bot_id == bot.id,
        Conversation.channel == channel,
        Conversation.address == address,
    )
    conversation = await session.scalar(query)
    if conversation is None:
        try:
            async with session.begin_nested():
                conversation = Conversation(
                    project_id=bot.project_id,
                    bot_id=bot.id,
                    channel=channel,
                    address=address,
                    status="open",
                    unread=0,
                    created_at=at,
                )
                session.add(conversation)
                await session.flush()
        except IntegrityError:
            # The same person's previous text created it a moment ago.
            conversation = await session.scalar(query)
            assert conversation is not None
    if conversation.status != "open":
        conversation.status, conversation.closed_at = "open", None
    return conversation


async def inbound_seen(session: AsyncSession, provider_sid: str) -> int | None:
    """The id of the inbound message already stored under this provider id, if any."""
    return await session.scalar(
        select(ConversationMessage.id).where(ConversationMessage.provider_sid == provider_sid)
    )


# -- contact activity (the WhatsApp 24-hour window) ------------------------------------------


async def record_inbound_activity(
    session: AsyncSession, project_id: str, channel: str, address: str, at: datetime
) -> None:
    """Remember that the person wrote to the project on ``channel`` at ``at``."""
    channel, address = channel.lower(), bare(address)
    where = (
        ContactActivity.project_id == project_id,
        ContactActivity.channel == channel,
        ContactActivity.address == address,
    )
    result = await session.execute(
        update(ContactActivity)
        .where(*where, ContactActivity.last_inbound_at < at)
        .values(last_inbound_at=at)
    )
    if getattr(result, "rowcount", 0):
        return
    if await session.scalar(select(ContactActivity.address).where(*where)) is not None:
        return  # already as recent
    try:
        async with session.begin_nested():
            session.add(
                ContactActivity(
                    project_id=project_id, channel=channel, address=address, last_inbound_at=at
                )
            )
            await session.flush()
    except IntegrityError:
        await session.execute(
            update(ContactActivity)
            .where(*where, ContactActivity.last_inbound_at < at)
            .values(last_inbound_at=at)
        )


async def last_inbound_at(
    session: AsyncSession, project_id: str, channel: str, address: str
) -> datetime | None:
    """When the person last wrote to the project on ``channel`` (any prefix form), if ever."""
    return await session.scalar(
        select(ContactActivity.last_inbound_at).where(
            ContactActivity.project_id == project_id,
            ContactActivity.channel == channel.lower(),
            ContactActivity.address == bare(address),
        )
    )


# -- inbound texts -----------------------------------------------------------------------------
