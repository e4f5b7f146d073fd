"""Two-way bots: the bot, its conversations and their messages, opt-out suppressions, and
each person's last inbound time per channel (the WhatsApp 24-hour window)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
