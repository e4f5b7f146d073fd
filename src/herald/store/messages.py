"""Messages, their per-channel deliveries (the job queue), provider attempts and history.

A ``Delivery`` row with a ``next_attempt_at`` *is* the job: the dispatcher claims rows whose
time has come. While a worker holds a row, ``next_attempt_at`` is pushed to the end of its
lease, so a worker that dies simply lets the row come due again.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Select,
    String,
    Text,
    exists,
    false,
    func,
    select,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import InstrumentedAttribute, Mapped, aliased, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from herald.domain.statuses import Status
from herald.store.base import Base, UTCDateTime, new_id, utcnow
from herald.store.senders import Sender
from herald.store.templates import Template

SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


class Message(Base):
    """One message to one destination, as the client asked for it."""

    __tablename__ = "messages"
    __table_args__ = (
        # The message list, newest first: each filter the cabinet offers has an index that
        # ends in (created_at, id), so a page is read in order and stops after 50 rows
        # (bench/cabinet_messages.py). On SQLite without ANALYZE statistics, the planner
        # otherwise walks the whole project by time when that avoids a sort.
        Index(None, "project_id", "created_at", "id"),
        Index(None, "project_id", "status", "created_at", "id"),
        Index(None, "project_id", "phone", "created_at", "id"),
        Index(None, "project_id", "group_id", "created_at", "id"),
        Index(None, "project_id", "task_id", "created_at", "id"),
        Index(None, "project_id", "template_id", "created_at", "id"),
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
    # The moments of its life, one column each (alike tasks' and other tables': their own).
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
        # Whether a channel is rare in a project (``few_on_channel``), and its deliveries.
        Index(None, "project_id", "channel"),
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


# The list's e-mail filter, which matches an address whatever its case (an expression, so
# declared once the columns exist).
Index(
    "ix_deliveries_project_id_lower_to_address",
    Delivery.project_id,
    func.lower(Delivery.to_address),
)


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


async def deliveries_through(
    session: AsyncSession, sender_id: str, statuses: Collection[str] | None = None
) -> int:
    """How many deliveries go through the sender (in one of ``statuses``, when given)."""
    query = select(func.count()).select_from(Delivery).where(Delivery.sender_id == sender_id)
    if statuses is not None:
        query = query.where(Delivery.status.in_(statuses))
    return await session.scalar(query) or 0


async def sender_has_history(session: AsyncSession, sender_id: str) -> bool:
    """Whether any delivery ever went through the sender (cheaper than counting them)."""
    return bool(await session.scalar(select(exists().where(Delivery.sender_id == sender_id))))


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """Which of a project's messages a list or a cancel means; empty parts match all."""

    ids: Sequence[str] = ()
    statuses: Sequence[str] = ()
    phone: str | None = None
    group_ids: Sequence[str] = ()
    task_ids: Sequence[str] = ()
    bulk_ids: Sequence[str] = ()
    channel: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    # The cabinet's filters: an e-mail address any channel went to, and templates.
    email: str | None = None
    template_ids: Sequence[str] = ()


# Deliveries that never reached their channel: a channel filter does not find them.
_NOT_REACHED = (Status.PENDING, Status.SKIPPED)


class _Unindexed(FunctionElement[str]):
    """A column as it is, except that SQLite is told not to look it up in an index (its
    unary +, https://sqlite.org/optoverview.html#disqualifying_where_clause_terms_using_unary_).

    Without ANALYZE statistics SQLite takes ``project_id = ?`` for a rare value and walks the
    project's messages by time to spare a sort, even for three ids: at 1,000,000 messages
    that read the whole project for an old message. PostgreSQL plans from statistics.
    """

    type = String()
    inherit_cache = True


@compiles(_Unindexed)
def _plain(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(_Unindexed, "sqlite")
def _unary_plus(element: _Unindexed, compiler: SQLCompiler, **kw: Any) -> str:
    return "+" + compiler.process(element.clauses, **kw)


# Up to this many deliveries on a channel, a channel filter starts from them (see
# ``page_of_messages``); more, and walking the messages by time finds a page soon enough.
FEW_ON_CHANNEL = 5000


def _matching(
    query: SelectT, project_id: str, f: MessageFilter, *, few_on_channel: bool = False
) -> SelectT:
    # Messages picked by id, by address or on a rare channel are few: read them by key,
    # then sort them.
    by_key = bool(f.ids) or bool(f.email) or (bool(f.channel) and few_on_channel)
    project = _Unindexed(Message.project_id) if by_key else Message.project_id
    query = query.where(project == project_id)
    if f.ids:
        query = query.where(Message.id.in_(f.ids))
    if f.statuses:
        query = query.where(Message.status.in_(f.statuses))
    if f.phone:
        query = query.where(Message.phone == f.phone)
    if f.group_ids:
        query = query.where(Message.group_id.in_(f.group_ids))
    if f.task_ids:
        query = query.where(Message.task_id.in_(f.task_ids))
    if f.bulk_ids:
        query = query.where(Message.bulk_id.in_(f.bulk_ids))
    if f.channel and few_on_channel:
        on = aliased(Delivery)
        query = query.where(
            Message.id.in_(
                select(on.message_id).where(
                    on.project_id == project_id,
                    on.channel == f.channel,
                    on.status.not_in(_NOT_REACHED),
                )
            )
        )
    elif f.channel:
        # Any channel the cascade reached, so a message delivered by its second channel is
        # found under that channel too.
        query = query.where(
            select(Delivery.id)
            .where(
                Delivery.message_id == Message.id,
                Delivery.channel == f.channel,
                Delivery.status.not_in(_NOT_REACHED),
            )
            .exists()
        )
    if f.email:
        # The messages that had a channel to the address, from the address's index (a
        # correlated EXISTS would be probed once per message of the project).
        to = aliased(Delivery)
        query = query.where(
            Message.id.in_(
                select(to.message_id).where(
                    to.project_id == project_id, func.lower(to.to_address) == f.email.lower()
                )
            )
        )
    if f.template_ids:
        query = query.where(Message.template_id.in_(f.template_ids))
    if f.created_from:
        query = query.where(Message.created_at >= f.created_from)
    if f.created_to:
        query = query.where(Message.created_at < f.created_to)
    return query


# TWIN's sort keys for the message list, as columns.
SORT_COLUMNS: dict[str, InstrumentedAttribute[Any]] = {
    "createdAt": Message.created_at,
    "status": Message.status,
}


def page_query(
    project_id: str,
    f: MessageFilter,
    *,
    limit: int,
    after: tuple[datetime, str] | None,
    offset: int,
    sort: tuple[str, bool],
    few_on_channel: bool = False,
) -> Select[Message]:
    """The statement ``page_of_messages`` runs (bench/cabinet_messages.py explains it)."""
    query = _matching(select(Message), project_id, f, few_on_channel=few_on_channel)
    if after is not None:
        created, last_id = after
        # The bound on created_at alone lets either database start the index walk there.
        query = query.where(
            Message.created_at <= created,
            (Message.created_at < created) | (Message.id < last_id),
        )
    elif offset:
        query = query.offset(offset)
    key, descending = sort
    column = SORT_COLUMNS[key]
    # Newest first within a status; the id keeps equal times in one order from page to page.
    first = column.desc() if descending else column.asc()
    # By time, the time is not repeated: SQLite then sorted each run of equal times again.
    then = (
        [Message.id.desc()]
        if key == "createdAt"
        else [Message.created_at.desc(), Message.id.desc()]
    )
    return query.order_by(first, *then).limit(limit)


async def page_of_messages(
    session: AsyncSession,
    project_id: str,
    f: MessageFilter,
    *,
    limit: int,
    after: tuple[datetime, str] | None,
    offset: int,
    sort: tuple[str, bool],
) -> list[Message]:
    """Up to ``limit`` matching messages in ``sort``'s order (a key of SORT_COLUMNS, and
    whether descending), after the (created_at, id) ``after`` or skipping ``offset``."""
    few = bool(f.channel) and await few_on_channel(session, project_id, f.channel or "")
    query = page_query(
        project_id, f, limit=limit, after=after, offset=offset, sort=sort, few_on_channel=few
    )
    return list(await session.scalars(query))


async def few_on_channel(session: AsyncSession, project_id: str, channel: str) -> bool:
    """Whether the project has at most FEW_ON_CHANNEL deliveries on ``channel`` (an index
    range, read no further than that).

    Walking the messages by time and probing each for the channel finds a page at once when
    the channel is common, and reads the whole project when it is rare or unused (a channel
    the project never sent on: 6 s at 1,000,000 messages on SQLite); starting from a rare
    channel's deliveries is the other way round.
    """
    some = (
        select(Delivery.channel)  # in the index: no table row is read
        .where(Delivery.project_id == project_id, Delivery.channel == channel)
        .limit(FEW_ON_CHANNEL + 1)
        .subquery()
    )
    found = await session.scalar(select(func.count()).select_from(some))
    return (found or 0) <= FEW_ON_CHANNEL


async def count_messages(session: AsyncSession, project_id: str, f: MessageFilter) -> int:
    """How many of the project's messages match."""
    query = _matching(select(func.count()).select_from(Message), project_id, f)
    return await session.scalar(query) or 0


async def messages_with_deliveries(
    session: AsyncSession, project_id: str, f: MessageFilter, *, lock: bool
) -> list[tuple[Message, Delivery]]:
    """Each matching message with each of its deliveries; ``lock``: held FOR UPDATE."""
    query = _matching(
        select(Message, Delivery).join(Delivery, Delivery.message_id == Message.id), project_id, f
    ).order_by(Message.id, Delivery.id)
    if lock:
        query = query.with_for_update(of=(Message, Delivery))
    return [(m, d) for m, d in await session.execute(query)]


async def find_message(session: AsyncSession, project_id: str, message_id: str) -> Message | None:
    """The project's message ``message_id``."""
    return await session.scalar(
        select(Message).where(Message.id == message_id, Message.project_id == project_id)
    )


async def deliveries_of(
    session: AsyncSession, message_ids: Collection[str]
) -> list[tuple[Delivery, str]]:
    """The messages' deliveries in cascade order, each with its sender's provider."""
    rows = await session.execute(
        select(Delivery, Sender.provider)
        .join(Sender, Sender.id == Delivery.sender_id)
        .where(Delivery.message_id.in_(message_ids))
        .order_by(Delivery.step)
    )
    return [(delivery, provider) for delivery, provider in rows]


async def events_of(session: AsyncSession, message_ids: Collection[str]) -> list[StatusEvent]:
    """The messages' status history, oldest first."""
    query = select(StatusEvent).where(StatusEvent.message_id.in_(message_ids))
    return list(await session.scalars(query.order_by(StatusEvent.id)))


async def attempts_of(session: AsyncSession, delivery_ids: Collection[str]) -> list[Attempt]:
    """The deliveries' attempts, by delivery then number."""
    query = select(Attempt).where(Attempt.delivery_id.in_(delivery_ids))
    return list(await session.scalars(query.order_by(Attempt.delivery_id, Attempt.number)))


async def template_names(session: AsyncSession, template_ids: Collection[str]) -> dict[str, str]:
    """The name of each template the messages were rendered from."""
    if not template_ids:
        return {}
    rows = await session.execute(
        select(Template.id, Template.name).where(Template.id.in_(template_ids))
    )
    return {template_id: name for template_id, name in rows}


async def group_members(session: AsyncSession, project_id: str, group_id: str) -> list[Message]:
    """The project's messages of one group, oldest first."""
    query = select(Message).where(Message.project_id == project_id, Message.group_id == group_id)
    return list(await session.scalars(query.order_by(Message.created_at, Message.id)))


async def message_exists(session: AsyncSession, project_id: str, message_id: str) -> bool:
    """Whether the project has a message ``message_id`` (reads its id only)."""
    found = await session.scalar(
        select(Message.id).where(Message.id == message_id, Message.project_id == project_id)
    )
    return found is not None
