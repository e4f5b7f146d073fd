"""Senders: a provider account and address a project sends from."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, String, Text, false
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
