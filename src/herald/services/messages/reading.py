"""Messages: reading them back, cancelling them (accepting them: ``accepting.py``)."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.phones import InvalidPhone, to_e164
from herald.domain.statuses import SUCCESS, Status, is_cancellable, is_final, message_status
from herald.errors import Conflict, InvalidRequest, NotFound, ValidationFailed
from herald.schemas.messages import (
    CancelMessagesIn,
    id_list,
)
from herald.services.delivery.tracking import Changes, apply_status
from herald.services.messages.views import delivery_item, iso, message_item
from herald.services.short_links import (
    link_stats_for_messages,
)
from herald.store.db import is_postgres, read_snapshot
from herald.store.messages import (
    SORT_COLUMNS,
    Delivery,
    Message,
    MessageFilter,
    StatusEvent,
    attempts_of,
    count_messages,
    deliveries_of,
    events_of,
    find_message,
    group_members,
    messages_with_deliveries,
    page_of_messages,
    template_names,
)
from herald.store.rows import DeliveryRow, MessageRow, rows_of


def _primary(deliveries: list[Delivery]) -> Delivery:
    """The channel that speaks for the message: where it was delivered, else the furthest
    one the cascade reached."""
    for delivery in deliveries:
        if delivery.status in SUCCESS:
            return delivery
    reached = [d for d in deliveries if d.status not in (Status.PENDING, Status.SKIPPED)]
    return max(reached or deliveries, key=lambda d: d.step)


async def get_message(session: AsyncSession, project_id: str, message_id: str) -> dict[str, Any]:
    """One message with every channel's delivery, its attempts, and the whole history."""
    await read_snapshot(session)
    message = await find_message(session, project_id, message_id)
    if message is None:
        raise NotFound(f"No message with id {message_id}.", code="message_not_found")
    rows = await deliveries_of(session, [message.id])
    providers = {d.id: p for d, p in rows}
    deliveries = [d for d, _ in rows]
    events = await events_of(session, [message.id])
    attempts = await attempts_of(session, providers)
    links = (await link_stats_for_messages(session, [message.id])).get(message.id)
    primary = _primary(deliveries)
    item = message_item(
        message,
        primary,
        provider=providers[primary.id],
        events=events,
        attempts=[a for a in attempts if a.delivery_id == primary.id],
        links=links,
        channel_of={d.id: d.channel for d in deliveries},
        template_name=(await _template_names(session, [message])).get(message.template_id or ""),
    )
    item["deliveries"] = [
        delivery_item(d, providers[d.id], [a for a in attempts if a.delivery_id == d.id])
        for d in deliveries
    ]
    return item


def _encode_cursor(message: Message) -> str:
    raw = f"{message.created_at.isoformat()}|{message.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, message_id = raw.split("|", 1)
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:  # every cursor Herald gives out has its offset
            raise ValueError(created)
        return at, message_id
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidRequest(
            "The cursor is not one Herald gave out; start again without it.", code="invalid_cursor"
        ) from e


def _checked(f: MessageFilter) -> MessageFilter:
    """The filter with its statuses known, its phone in E.164 and its channel in lower case."""
    unknown = [s for s in f.statuses if s not in Status.__members__.values()]
    if unknown:
        raise InvalidRequest(
            f"Unknown status {unknown[0]!r}; use one of: {', '.join(s.value for s in Status)}.",
            code="invalid_status",
        )
    phone = f.phone
    if phone:
        try:
            phone = to_e164(phone)
        except InvalidPhone as e:
            raise InvalidRequest(
                f"The phone filter is not a valid number: {e}", code="invalid_phone"
            ) from e
    return replace(f, phone=phone, channel=f.channel.lower() if f.channel else None)


async def list_messages(
    session: AsyncSession,
    project_id: str,
    f: MessageFilter,
    *,
    limit: int = 50,
    cursor: str | None = None,
    offset: int = 0,
    with_count: bool = True,
    with_items: bool = True,
    sort: tuple[str, bool] = ("createdAt", True),
) -> dict[str, Any]:
    """A page of messages, newest first, in TWIN's ``{count, items}`` shape plus a cursor.

    ``sort``: a key of :data:`SORT_KEYS` and whether descending; the cursor pages the default
    order only (another order pages by offset).

    TWIN's SDK reads a single message through this list (``?id=``), so each item is what
    the single view says of the message: the channel that speaks for it, and its history.
    """
    if not 1 <= limit <= 1000:
        raise InvalidRequest("'limit' must be between 1 and 1000.", code="invalid_limit")
    await read_snapshot(session)  # the count and the page agree
    f = _checked(f)
    by_default = sort == ("createdAt", True)
    if cursor and not by_default:
        raise ValidationFailed(
            "A cursor pages the default order (newest first): leave 'sort' out, or page "
            "with 'offset' or 'page'.",
            code="conflicting_parameters",
        )
    after = _decode_cursor(cursor) if cursor else None
    rows: Sequence[Message] = []
    if with_items:
        rows = await page_of_messages(
            session, project_id, f, limit=limit + 1, after=after, offset=offset, sort=sort
        )
    page = rows[:limit]
    count = await count_messages(session, project_id, f) if with_count else len(page)
    return {
        "count": count,
        "items": await _items(session, page),
        "nextCursor": _encode_cursor(page[-1]) if len(rows) > limit and by_default else None,
    }


# TWIN's sort keys for the message list.
SORT_KEYS = tuple(SORT_COLUMNS)


async def _items(session: AsyncSession, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """List items for ``messages``, each channel, history and name read in one query a kind."""
    if not messages:
        return []
    ids = [m.id for m in messages]
    deliveries: dict[str, list[Delivery]] = {}
    providers: dict[str, str] = {}
    for delivery, provider in await deliveries_of(session, ids):
        deliveries.setdefault(delivery.message_id, []).append(delivery)
        providers[delivery.id] = provider
    events: dict[str, list[StatusEvent]] = {}
    for event in await events_of(session, ids):
        events.setdefault(event.message_id, []).append(event)
    names = await _template_names(session, messages)
    links = await link_stats_for_messages(session, ids)
    items = []
    for message in messages:
        primary = _primary(deliveries[message.id])
        items.append(
            message_item(
                message,
                primary,
                provider=providers[primary.id],
                events=events.get(message.id, []),
                links=links.get(message.id),
                channel_of={d.id: d.channel for d in deliveries[message.id]},
                template_name=names.get(message.template_id or ""),
            )
        )
    return items


async def _template_names(session: AsyncSession, messages: Sequence[Message]) -> dict[str, str]:
    return await template_names(session, {m.template_id for m in messages if m.template_id})


async def cancel_messages(
    session: AsyncSession, project_id: str, request: CancelMessagesIn, *, now: datetime
) -> list[dict[str, Any]]:
    """Cancel every addressed message that is not final yet: one result per message found.

    Every channel not yet handed to a provider is cancelled; one already with a provider
    keeps its reports, and the message ends cancelled unless that channel is delivered. A
    message already final is left as it is, its result carrying the error. The status check
    is part of the locked read, so a worker claiming a channel at the same moment either
    wins (it is sent, and counts as with a provider) or loses (it is never sent).
    """
    ids, bulk_ids = id_list(request.id), id_list(request.bulk_id)
    group_ids = id_list(request.group_id) + id_list(request.flow_id)
    task_ids = id_list(request.task_id)
    if not (ids or bulk_ids or group_ids or task_ids):
        raise InvalidRequest(
            "Say which messages to cancel: give 'id', 'bulkId', 'groupId' or 'taskId'.",
            code="nothing_to_cancel",
        )
    f = MessageFilter(ids=ids, bulk_ids=bulk_ids, group_ids=group_ids, task_ids=task_ids)
    # The dispatcher claims with SKIP LOCKED: while we hold these rows (PostgreSQL) it cannot
    # take them, and if it holds them we wait and then see that they are already sending.
    found = await messages_with_deliveries(session, project_id, f, lock=is_postgres(session))
    rows = rows_of((d, m) for m, d in found)
    family: dict[str, tuple[MessageRow, list[DeliveryRow]]] = {}
    for delivery, message in rows:
        family.setdefault(message.id, (message, []))[1].append(delivery)
    results: list[dict[str, Any]] = []
    changes = Changes(siblings={mid: ds for mid, (_, ds) in family.items() if len(ds) > 1})
    for message, deliveries in family.values():
        error = None
        if is_final(Status(message.status)):
            error = {
                "code": "not_cancellable",
                "message": f"Message {message.id} is already {message.status} and can no "
                "longer be cancelled.",
                # TWIN's SDK reads an error as a PHP exception dump: every key present.
                "file": "",
                "line": 0,
                "trace": [],
            }
        else:
            message.cancelled_at = message.cancelled_at or now
            changes.touch(message)
            for delivery in deliveries:
                if is_cancellable(Status(delivery.status)):
                    apply_status(
                        changes,
                        message,
                        delivery,
                        Status.CANCELLED,
                        source="api",
                        at=now,
                        detail="cancelled by the client",
                    )
        results.append(
            {
                "id": message.id,
                "bulkId": message.bulk_id,
                "groupId": message.group_id,
                "flowId": message.group_id,
                "status": message.status,
                "channel": message.channel,
                "error": error,
            }
        )
    await changes.write(session)
    return results


async def cancel_message(
    session: AsyncSession, project_id: str, message_id: str, *, now: datetime
) -> dict[str, Any]:
    """Cancel one message (see ``cancel_messages``); 404 if unknown, 409 if already final."""
    results = await cancel_messages(session, project_id, CancelMessagesIn(id=message_id), now=now)
    if not results:
        raise NotFound(f"No message with id {message_id}.", code="message_not_found")
    [result] = results
    if result["error"] is not None:
        raise Conflict(
            f"The message is already {result['status']} and can no longer be cancelled.",
            code="not_cancellable",
            details={"results": results},
        )
    return result


async def get_group(session: AsyncSession, project_id: str, group_id: str) -> dict[str, Any]:
    """A group's overall status: delivered as soon as any member (device, address) is."""
    members = await group_members(session, project_id, group_id)
    if not members:
        raise NotFound(f"No message belongs to group {group_id}.", code="group_not_found")
    status = message_status([(Status(m.status), 0) for m in members])
    delivered = next((m for m in members if m.status in SUCCESS), None)
    return {
        "groupId": group_id,
        "status": status.value,
        "deliveredMessageId": delivered.id if delivered else None,
        "deliveredAt": iso(delivered.delivered_at) if delivered else None,
        "messages": [
            {"id": m.id, "status": m.status, "channel": m.channel, "destination": m.destination}
            for m in members
        ],
    }
