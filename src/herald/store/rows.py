"""Plain rows of messages, deliveries and attempts, for the paths that track status.

The dispatcher and the delivery reports read and change hundreds of these rows a second.
Loading them as ORM objects (identity map, instrumented attributes, per-instance state) cost
more CPU than everything else those paths do; these slotted dataclasses, filled straight from
Core selects, cost a fraction. Their changes are written by ``services.tracking.Changes``.

Each class has exactly its table's columns, under the same names as the ORM model, so code
that reads a row reads it the same way whichever it is given. A row also keeps the values it
was read with, so only what changed is written back: fewer values to convert and bind, and
an index whose columns did not change is not touched.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from operator import attrgetter
from typing import Any, ClassVar, TypeVar, cast

from sqlalchemy import ColumnElement, Select, Table, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from herald.store.base import Base
from herald.store.db import is_postgres
from herald.store.messages import Attempt, Delivery, Message

MESSAGES = cast(Table, Message.__table__)
DELIVERIES = cast(Table, Delivery.__table__)
ATTEMPTS = cast(Table, Attempt.__table__)


# MessageRow, DeliveryRow and AttemptRow are alike in shape on purpose: each lists its
# table's columns, in order, so a Core row fills one positionally.
@dataclass(slots=True, eq=False)
class MessageRow:
    table: ClassVar[Table] = MESSAGES

    id: str
    project_id: str
    bulk_id: str
    group_id: str
    group_given: bool
    task_id: str | None
    phone: str | None
    destination: dict[str, Any]
    channels: dict[str, Any]
    channel: str
    status: str
    status_at: datetime
    error_code: str | None
    error_message: str | None
    callback_url: str | None
    callback_data: str | None
    send_at: datetime | None
    timezone: str | None
    timezone_source: str | None
    allowed_time_ranges: list[list[str]] | None
    template_id: str | None
    template_version: int | None
    template_variables: dict[str, Any] | None
    created_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    cancelled_at: datetime | None
    # The column values as read; empty for a row not yet in the database.
    read_as: tuple[Any, ...] = field(default=(), init=False, repr=False)


@dataclass(slots=True, eq=False)
class DeliveryRow:
    table: ClassVar[Table] = DELIVERIES

    id: str
    message_id: str
    project_id: str
    channel: str
    sender_id: str
    to_address: str
    from_address: str
    body: str
    content: dict[str, Any] | None
    step: int
    required: bool
    validity_minutes: int | None
    status: str
    next_attempt_at: datetime | None
    expires_at: datetime | None
    lease_owner: str | None
    attempt_count: int
    provider_message_id: str | None
    provider_status: str | None
    error_code: str | None
    error_message: str | None
    error_more_info: str | None
    num_segments: int | None
    price: str | None
    price_unit: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
    delivered_at: datetime | None
    # The column values as read; empty for a row not yet in the database.
    read_as: tuple[Any, ...] = field(default=(), init=False, repr=False)


@dataclass(slots=True, eq=False)
class AttemptRow:
    table: ClassVar[Table] = ATTEMPTS

    id: str
    delivery_id: str
    number: int
    state: str
    started_at: datetime
    finished_at: datetime | None
    provider_message_id: str | None
    http_status: int | None
    error_code: str | None
    error_message: str | None
    error_more_info: str | None
    # The column values as read; empty for a row not yet in the database.
    read_as: tuple[Any, ...] = field(default=(), init=False, repr=False)


AnyRow = MessageRow | DeliveryRow | AttemptRow
R = TypeVar("R", MessageRow, DeliveryRow, AttemptRow)


_COLUMNS: dict[type[AnyRow], tuple[str, ...]] = {
    cls: tuple(f.name for f in fields(cls) if f.name != "read_as")
    for cls in (MessageRow, DeliveryRow, AttemptRow)
}
# Reads every column of a row into a tuple in one C call: rows are compared on every write.
_GETTERS = {cls: attrgetter(*names) for cls, names in _COLUMNS.items()}


def column_names(cls: type[AnyRow]) -> tuple[str, ...]:
    return _COLUMNS[cls]


def values_of(row: AnyRow) -> tuple[Any, ...]:
    values: tuple[Any, ...] = _GETTERS[type(row)](row)
    return values


def take_changes(row: AnyRow) -> dict[str, Any]:
    """The columns changed since the row was read or last taken; from now on, written."""
    values = values_of(row)
    before = row.read_as
    if values == before:
        return {}
    row.read_as = values
    return {
        name: value
        for name, value, old in zip(column_names(type(row)), values, before, strict=True)
        if value != old
    }


def mark_written(row: AnyRow) -> None:
    row.read_as = values_of(row)


async def load(
    session: AsyncSession,
    cls: type[R],
    *where: ColumnElement[bool],
    order_by: Sequence[str] = ("id",),
) -> list[R]:
    """The rows of ``cls``'s table matching ``where``."""
    query = _select(cls).where(*where).order_by(*(cls.table.c[name] for name in order_by))
    return _rows(cls, await session.execute(query))


def _select(cls: type[AnyRow]) -> Select[Any]:
    return select(*(cls.table.c[name] for name in column_names(cls)))


def _rows(cls: type[R], result: Iterable[Any]) -> list[R]:
    rows = []
    for values in result:
        row = cls(*values)
        row.read_as = tuple(values)
        rows.append(row)
    return rows


def by_ids(column: ColumnElement[Any] | InstrumentedAttribute[Any]) -> ColumnElement[bool]:
    """``column IN :ids``, for statements built once: give ``ids`` a list when executing.

    Building a select with ``in_(values)`` anew for every batch, and its cache key, cost
    more CPU than running it: ~115 µs a statement, measured on a 30-id batch.
    """
    return column.in_(bindparam("ids", expanding=True))


_BY_IDS = {
    cls: _select(cls).where(by_ids(cls.table.c.id)) for cls in (MessageRow, DeliveryRow, AttemptRow)
}


async def load_by_id(session: AsyncSession, cls: type[R], ids: Iterable[str]) -> dict[str, R]:
    wanted = list(set(ids))
    if not wanted:
        return {}
    result = await session.execute(_BY_IDS[cls], {"ids": wanted})
    return {row.id: row for row in _rows(cls, result)}


def row_of(cls: type[R], obj: Base) -> R:
    """A plain row holding an ORM object's current values."""
    row = cls(*(getattr(obj, name) for name in column_names(cls)))
    mark_written(row)
    return row


def rows_of(pairs: Iterable[tuple[Delivery, Message]]) -> list[tuple[DeliveryRow, MessageRow]]:
    """Plain rows for deliveries and messages found with the ORM, one row per object.

    A message shared by two deliveries stays one row, as the cascade logic needs.
    """
    deliveries: dict[str, DeliveryRow] = {}
    messages: dict[str, MessageRow] = {}
    out = []
    for d, m in pairs:
        if d.id not in deliveries:
            deliveries[d.id] = row_of(DeliveryRow, d)
        if m.id not in messages:
            messages[m.id] = row_of(MessageRow, m)
        out.append((deliveries[d.id], messages[m.id]))
    return out


async def _lock(session: AsyncSession, delivery_ids: list[str]) -> None:
    # Every writer locks in the same order (message id, then delivery id), so two writers of
    # one message wait for each other instead of deadlocking. SQLite has one writer at a
    # time and needs none.
    await session.execute(
        select(DELIVERIES.c.id)
        .join(MESSAGES, MESSAGES.c.id == DELIVERIES.c.message_id)
        .where(DELIVERIES.c.id.in_(delivery_ids))
        .order_by(MESSAGES.c.id, DELIVERIES.c.id)
        .with_for_update(of=(DELIVERIES, MESSAGES))
    )


async def load_deliveries(
    session: AsyncSession, delivery_ids: Iterable[str], *, lock: bool = False
) -> dict[str, tuple[DeliveryRow, MessageRow]]:
    """Deliveries with their messages, by delivery id; a message shared by two is one object.

    ``lock``: on PostgreSQL, lock them and their messages first, to change them.
    """
    wanted = list(set(delivery_ids))
    if lock and wanted and is_postgres(session):
        await _lock(session, wanted)
    deliveries = await load_by_id(session, DeliveryRow, wanted)
    messages = await load_by_id(session, MessageRow, {d.message_id for d in deliveries.values()})
    return {d.id: (d, messages[d.message_id]) for d in deliveries.values()}


async def load_siblings(
    session: AsyncSession, in_hand: Iterable[tuple[DeliveryRow, MessageRow]]
) -> dict[str, list[DeliveryRow]]:
    """Every delivery of each cascading message (more than one channel), by message id.

    Rows already in hand are reused, not loaded again: a change made through one is then
    seen by the cascade logic through the other.
    """
    known: dict[str, DeliveryRow] = {}
    cascading: set[str] = set()
    for delivery, message in in_hand:
        known[delivery.id] = delivery
        if len(message.channels or {}) > 1:
            cascading.add(message.id)
    if not cascading:
        return {}
    siblings: dict[str, list[DeliveryRow]] = {}
    for delivery in await load(
        session, DeliveryRow, DELIVERIES.c.message_id.in_(cascading), order_by=("step", "id")
    ):
        siblings.setdefault(delivery.message_id, []).append(known.get(delivery.id, delivery))
    return siblings


async def load_group_waiting(
    session: AsyncSession, project_id: str, group_id: str, delivered_message_id: str
) -> list[tuple[DeliveryRow, MessageRow]]:
    """The fallback channels of a client-given group's other messages not yet handed to a
    provider: pending ones, and queued or scheduled ones after their message's first channel.

    On PostgreSQL they are locked, skipping rows another writer holds: waiting for them could
    deadlock with a report for that other message, which locks its own group in turn.
    """
    query = (
        select(DELIVERIES.c.id)
        .join(MESSAGES, MESSAGES.c.id == DELIVERIES.c.message_id)
        .where(
            MESSAGES.c.project_id == project_id,
            MESSAGES.c.group_id == group_id,
            MESSAGES.c.group_given.is_(True),
            MESSAGES.c.id != delivered_message_id,
            DELIVERIES.c.status.in_(("pending", "queued", "scheduled")),
            DELIVERIES.c.required.is_(False),
        )
        .order_by(MESSAGES.c.id, DELIVERIES.c.id)
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=(DELIVERIES, MESSAGES))
    ids = list(await session.scalars(query))
    if not ids:
        return []
    rows = list((await load_deliveries(session, ids)).values())
    first_step: dict[str, int] = {}
    for message_id, step in await session.execute(
        select(DELIVERIES.c.message_id, func.min(DELIVERIES.c.step))
        .where(DELIVERIES.c.message_id.in_({m.id for _, m in rows}))
        .group_by(DELIVERIES.c.message_id)
    ):
        first_step[message_id] = step
    return [(d, m) for d, m in rows if d.status == "pending" or d.step > first_step[m.id]]


async def delivered_in_groups(
    session: AsyncSession, groups: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], list[tuple[str, str]]]:
    """The delivered (or read) channels of client-given groups, one query for them all:
    (project, group) -> [(message id, channel)]."""
    wanted = set(groups)
    if not wanted:
        return {}
    query = (
        select(
            MESSAGES.c.project_id,
            MESSAGES.c.group_id,
            DELIVERIES.c.message_id,
            DELIVERIES.c.channel,
        )
        .join(MESSAGES, MESSAGES.c.id == DELIVERIES.c.message_id)
        .where(
            # Narrowed per column, then exactly below: a tuple IN is not portable to every
            # backend, and a person's groups are few.
            MESSAGES.c.project_id.in_({p for p, _ in wanted}),
            MESSAGES.c.group_id.in_({g for _, g in wanted}),
            MESSAGES.c.group_given.is_(True),
            DELIVERIES.c.status.in_(("delivered", "read")),
        )
    )
    found: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for project_id, group_id, message_id, channel in await session.execute(query):
        if (project_id, group_id) in wanted:
            found.setdefault((project_id, group_id), []).append((message_id, channel))
    return found
