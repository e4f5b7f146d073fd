"""Messages, their per-channel deliveries (the job queue), provider attempts and history.

A ``Delivery`` row with a ``next_attempt_at`` *is* the job: the dispatcher claims rows whose
time has come. While a worker holds a row, ``next_attempt_at`` is pushed to the end of its
lease, so a worker that dies simply lets the row come due again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class Message(Base):
    """One message to one destination, as the client asked for it."""

    __tablename__ = "messages"
    __table_args__ = (
        Index(None, "project_id", "created_at", "id"),
        Index(None, "project_id", "status", "created_at", "id"),
        Index(None, "project_id", "phone"),
        Index(None, "project_id", "group_id"),
        # With status: whether a task has a message still in progress is a few index probes.
        Index(None, "project_id", "task_id", "status"),
        Index(None, "project_id", "bulk_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    bulk_id: Mapped[str] = mapped_column(String(36))
    group_id: Mapped[str] = mapped_column(String(100))
    # Whether the client gave groupId (one person's devices) rather than Herald making one up
    # for the destinations of one message, who may be different people.
    group_given: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    task_id: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32))
    destination: Mapped[dict[str, Any]] = mapped_column(JSON)
    channels: Mapped[dict[str, Any]] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    status_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    callback_url: Mapped[str | None] = mapped_column(String(2000))
    callback_data: Mapped[str | None] = mapped_column(Text)
    send_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Quiet hours: the recipient's zone, how it was chosen, and the allowed local ranges.
    timezone: Mapped[str | None] = mapped_column(String(64))
    timezone_source: Mapped[str | None] = mapped_column(String(20))
    allowed_time_ranges: Mapped[list[list[str]] | None] = mapped_column(JSON)
    # The template version the text was rendered from, so history stays true after edits.
    template_id: Mapped[str | None] = mapped_column(String(36))
    template_version: Mapped[int | None] = mapped_column(Integer)
    template_variables: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the client cancelled it: channels not yet with a provider are cancelled then, and
    # one already with a provider may still be delivered; anything else ends it cancelled.
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Delivery(Base):
    """The message on one channel through one sender: the unit of work the dispatcher claims."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index(None, "next_attempt_at"),
        Index(None, "message_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(20))
    sender_id: Mapped[str] = mapped_column(ForeignKey("senders.id"))
    to_address: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # Rich channels' other fields (subject, html, imageUrl, buttonUrl, buttonText).
    content: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Place in the message's cascade; required channels go out whatever the others did.
    step: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    required: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # How long this channel waits for a delivery report before the cascade moves on.
    validity_minutes: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # End of the validity period: never handed to the provider after it, and expired if no
    # delivery report has come by then.
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    provider_status: Mapped[str | None] = mapped_column(String(30))
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_more_info: Mapped[str | None] = mapped_column(String(500))
    num_segments: Mapped[int | None] = mapped_column(Integer)
    price: Mapped[str | None] = mapped_column(String(20))
    price_unit: Mapped[str | None] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Attempt(Base):
    """One hand-over of a delivery to its provider.

    ``state``: ``in_flight`` (claimed; the call may or may not have reached the provider),
    ``accepted`` (the provider took it), ``failed`` (the provider or the transport refused it),
    ``not_sent`` (reconciled: the provider never received it), ``unknown`` (given up on).
    """

    __tablename__ = "attempts"
    __table_args__ = (
        Index(None, "delivery_id", "number", unique=True),
        Index(None, "provider_message_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_message_id: Mapped[str | None] = mapped_column(String(100))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error_code: Mapped[str | None] = mapped_column(String(50))
    error_message: Mapped[str | None] = mapped_column(Text)
    error_more_info: Mapped[str | None] = mapped_column(String(500))


class StatusEvent(Base):
    """A status change of a message, with its time and cause: the message's history."""

    __tablename__ = "status_events"
    __table_args__ = (Index(None, "message_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    delivery_id: Mapped[str | None] = mapped_column(String(36))
    attempt_id: Mapped[str | None] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(String(30))
    detail: Mapped[str | None] = mapped_column(Text)
    error_code: Mapped[str | None] = mapped_column(String(50))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
