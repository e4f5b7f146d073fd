"""Applying status changes: the only place a message's status is written.

Each change goes through the domain's transition table, is recorded in the message's
history with its time and cause, and, when the client asked for it, queues a signed callback.
What a change does to the message's other channels is decided in :mod:`herald.domain.cascade`;
this module applies that decision.

Changes are collected in a :class:`Changes` and written with a few bulk statements, because
the dispatcher touches hundreds of rows per batch: row-by-row ORM flushes cost a statement
per row and column set, which capped throughput.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from herald.domain.cascade import decide, group_skip_detail, handover_deadline
from herald.domain.statuses import FINAL, SUCCESS, Status, can_move, is_final, message_status
from herald.services.delivery.suppressions import record_suppression
from herald.services.messages.views import callback_payload
from herald.store.base import new_id
from herald.store.bulk import insert_many, update_many
from herald.store.callbacks import ClientCallback, last_callbacks
from herald.store.messages import StatusEvent
from herald.store.rows import (
    ATTEMPTS,
    DELIVERIES,
    MESSAGES,
    AnyRow,
    AttemptRow,
    DeliveryRow,
    MessageRow,
    column_names,
    load_group_waiting,
    load_siblings,
    mark_written,
    take_changes,
    values_of,
)
from herald.store.tasks import settle_tasks

_EVENTS = cast(Table, StatusEvent.__table__)
_CALLBACKS = cast(Table, ClientCallback.__table__)


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A provider's (or Herald's) error, kept on the delivery and the message."""

    code: str
    message: str
    more_info: str | None = None


def _values(row: AttemptRow) -> dict[str, Any]:
    return dict(zip(column_names(AttemptRow), values_of(row), strict=True))


@dataclass
class Changes:
    """Rows changed while handling a batch, written together by :meth:`write`."""

    deliveries: dict[str, DeliveryRow] = field(default_factory=dict)
    messages: dict[str, MessageRow] = field(default_factory=dict)
    attempts: dict[str, AttemptRow] = field(default_factory=dict)
    new_attempts: list[AttemptRow] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[dict[str, Any]] = field(default_factory=list)
    # Every delivery of each cascading message, so a status change can move the cascade on.
    siblings: dict[str, list[DeliveryRow]] = field(default_factory=dict)
    # Destinations a provider said opted out: (delivery, suppression source, when).
    suppressions: list[tuple[DeliveryRow, str, datetime]] = field(default_factory=list)
    # Client-given groups (one person's devices) a member was just delivered in:
    # (project, group) -> (the delivered delivery, when).
    delivered_groups: dict[tuple[str, str], tuple[DeliveryRow, datetime]] = field(
        default_factory=dict
    )
    # (project, task) of messages that just became final: the task may be done.
    tasks_reached_end: set[tuple[str, str]] = field(default_factory=set)

    def touch(self, obj: AnyRow) -> None:
        """Mark a row as changed."""
        if isinstance(obj, DeliveryRow):
            self.deliveries[obj.id] = obj
        elif isinstance(obj, MessageRow):
            self.messages[obj.id] = obj
        else:
            self.attempts[obj.id] = obj

    def suppress(self, delivery: DeliveryRow, source: str, at: datetime) -> None:
        """Suppress the delivery's sender-to-person pair when the changes are written."""
        self.suppressions.append((delivery, source, at))

    def new_attempt(self, delivery: DeliveryRow, at: datetime) -> AttemptRow:
        """A new in-flight attempt for ``delivery`` (its attempt_count is incremented)."""
        delivery.attempt_count += 1
        # Every column by name, like tests/unit/test_rows.py's: a plain row has no defaults.
        attempt = AttemptRow(
            id=new_id(),
            delivery_id=delivery.id,
            number=delivery.attempt_count,
            state="in_flight",
            started_at=at,
            finished_at=None,
            provider_message_id=None,
            http_status=None,
            error_code=None,
            error_message=None,
            error_more_info=None,
        )
        self.new_attempts.append(attempt)
        self.touch(delivery)
        return attempt

    async def write(self, session: AsyncSession) -> None:
        """Write everything: parents before children, only the columns that changed.

        Executemany on the session's connection through ``store.bulk``, not the ORM's bulk
        operations: per row those cost several times more CPU, and the dispatcher and status
        callbacks write every row they touch. Rows changed in the same columns share one
        statement.
        """
        connection = await session.connection()
        if self.new_attempts:
            await insert_many(connection, ATTEMPTS, [_values(a) for a in self.new_attempts])
            for attempt in self.new_attempts:
                mark_written(attempt)
        for table, rows in (
            (DELIVERIES, self.deliveries.values()),
            (MESSAGES, self.messages.values()),
            (ATTEMPTS, self.attempts.values()),
        ):
            by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
            for row in rows:
                diff = take_changes(row)
                if diff:
                    by_columns.setdefault(tuple(diff), []).append({"_id": row.id, **diff})
            for params in by_columns.values():
                await update_many(connection, table, params)
        await insert_many(connection, _EVENTS, self.events)
        if self.callbacks:
            await _number_callbacks(connection, self.callbacks)
            await insert_many(connection, _CALLBACKS, self.callbacks)
        # Rare (an opt-out), so one at a time: each must survive a concurrent duplicate.
        for delivery, source, at in self.suppressions:
            await record_suppression(
                session,
                delivery.project_id,
                delivery.channel,
                delivery.from_address,
                delivery.to_address,
                source,
                at=at,
            )
        if self.delivered_groups:
            await _skip_in_groups(session, self.delivered_groups)
        if self.tasks_reached_end:
            await settle_tasks(session, self.tasks_reached_end)


async def _number_callbacks(connection: AsyncConnection, callbacks: list[dict[str, Any]]) -> None:
    """Give each callback its message's next sequence number, and freeze its body.

    Read after the messages were updated: a concurrent change to the same message waits on
    that row, so it sees these callbacks once it may go on, and numbers after them. Each
    ``previousStatus`` is the status of the callback before it, whoever wrote that one.
    """
    last = await last_callbacks(connection, list({cb["message_id"] for cb in callbacks}))
    for cb in callbacks:
        sequence, previous = last.get(cb["message_id"], (0, None))
        payload = cb["body"]
        payload["sequence"] = cb["sequence"] = sequence + 1
        if previous is not None:
            payload["previousStatus"] = previous
        cb["body"] = json.dumps(payload, separators=(",", ":"))
        last[cb["message_id"]] = (sequence + 1, cb["status"])


@dataclass(frozen=True, slots=True)
class _Cause:
    """Why and when a delivery moved, as its history records it."""

    source: str
    at: datetime
    attempt_id: str | None = None
    error: ErrorInfo | None = None
    detail: str | None = None


# The same keywords as twilio_reports.apply_reported on purpose: that one maps Twilio's word
# to a status and hands over here.
def apply_status(
    changes: Changes,
    message: MessageRow,
    delivery: DeliveryRow,
    new: Status,
    *,
    source: str,
    at: datetime,
    attempt_id: str | None = None,
    error: ErrorInfo | None = None,
    detail: str | None = None,
) -> bool:
    """Move ``delivery`` to ``new`` if the table allows; record it; apply the cascade's move.

    The cascade's decision (hand over to the next channel, or leave the pending ones
    unused) is :func:`herald.domain.cascade.decide`. The message's status follows its channels.
    """
    if not can_move(Status(delivery.status), new):
        return False
    _set_delivery(changes, message, delivery, new, _Cause(source, at, attempt_id, error, detail))
    siblings = changes.siblings.get(message.id) or [delivery]
    decision = decide(delivery, new, siblings, group_given=message.group_given)
    if decision.next is not None:
        following = decision.next
        following.next_attempt_at = at
        deadline = handover_deadline(at, following.validity_minutes)
        if deadline is not None:
            following.expires_at = deadline
        cause = _Cause("cascade", at, detail=decision.handover_detail)
        _set_delivery(changes, message, following, Status.QUEUED, cause)
    for other in decision.skipped:
        cause = _Cause("cascade", at, detail=decision.skip_detail)
        _set_delivery(changes, message, other, Status.SKIPPED, cause)
    if decision.group_delivered:
        changes.delivered_groups.setdefault((message.project_id, message.group_id), (delivery, at))
    _set_message(changes, message, delivery, siblings, at, error)
    return True


def _set_delivery(
    changes: Changes, message: MessageRow, delivery: DeliveryRow, new: Status, cause: _Cause
) -> None:
    at, error = cause.at, cause.error
    delivery.status = new
    delivery.updated_at = at
    if new in FINAL:
        delivery.next_attempt_at = None
    if error is not None:
        delivery.error_code = error.code
        delivery.error_message = error.message
        delivery.error_more_info = error.more_info
    if new is Status.SENT and delivery.sent_at is None:
        delivery.sent_at = at
    if new in SUCCESS and delivery.delivered_at is None:
        delivery.delivered_at = at
        delivery.sent_at = delivery.sent_at or at
    changes.touch(delivery)
    changes.events.append(
        {
            "message_id": message.id,
            "delivery_id": delivery.id,
            "attempt_id": cause.attempt_id,
            "status": new.value,
            "source": cause.source,
            "detail": cause.detail,
            "error_code": error.code if error else None,
            "at": at,
        }
    )


def _set_message(
    changes: Changes,
    message: MessageRow,
    delivery: DeliveryRow,
    siblings: list[DeliveryRow],
    at: datetime,
    error: ErrorInfo | None,
) -> None:
    status = message_status(
        [(Status(d.status), d.step) for d in siblings], cancelled=message.cancelled_at is not None
    )
    if error is not None:
        message.error_code, message.error_message = error.code, error.message
    if status in SUCCESS:
        message.delivered_at = message.delivered_at or at
        message.sent_at = message.sent_at or at
        # A later failure report elsewhere must not hide where it was delivered.
        message.error_code = message.error_message = None
    elif status is Status.SENT:
        message.sent_at = message.sent_at or at
    changes.touch(message)
    if status == message.status:
        return
    previous = message.status
    message.status = status
    message.status_at = at
    if message.task_id and is_final(status):
        changes.tasks_reached_end.add((message.project_id, message.task_id))
    if message.callback_url:
        changes.callbacks.append(
            {
                "id": new_id(),
                "project_id": message.project_id,
                "message_id": message.id,
                "url": message.callback_url,
                "status": status.value,
                "body": callback_payload(message, delivery, previous=previous, at=at),
                "state": "pending",
                "attempts": 0,
                "next_attempt_at": at,
                "created_at": at,
            }
        )


async def _skip_in_groups(
    session: AsyncSession, groups: dict[tuple[str, str], tuple[DeliveryRow, datetime]]
) -> None:
    """Skip the channels of a person's other devices not yet handed to a provider.

    The person has the news on one device (issue 18): an e-mail after their phone already
    showed the SMS is noise. Channels already with a provider keep their reports.
    """
    changes = Changes()
    for (project_id, group_id), (delivered, at) in groups.items():
        waiting = await load_group_waiting(session, project_id, group_id, delivered.message_id)
        changes.siblings.update(await load_siblings(session, waiting))
        for delivery, message in waiting:
            apply_status(
                changes,
                message,
                delivery,
                Status.SKIPPED,
                source="group",
                at=at,
                detail=group_skip_detail(delivered.channel, delivered.message_id),
            )
    await changes.write(session)
