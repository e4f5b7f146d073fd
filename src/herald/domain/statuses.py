"""Message and delivery statuses, and the one table of moves between them.

Every status change in Herald goes through :func:`can_move`, so a provider callback that
arrives late or out of order (``sent`` after ``delivered``) cannot move a message backwards.
What one channel's status does to the message's other channels is :mod:`herald.domain.cascade`.
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Where a message (or one channel delivery of it) stands."""

    PENDING = "pending"  # a later channel of a cascade, not reached (yet)
    SCHEDULED = "scheduled"  # accepted, waiting for its sendAt
    QUEUED = "queued"  # accepted, due now or waiting for a retry
    SENDING = "sending"  # handed to a provider (or being handed), no report yet
    SENT = "sent"  # the provider passed it on to the carrier/network
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # a cascade channel left unused: delivered elsewhere (or in its group)


FINAL: frozenset[Status] = frozenset(
    {
        Status.READ,
        Status.UNDELIVERED,
        Status.FAILED,
        Status.CANCELLED,
        Status.EXPIRED,
        Status.SKIPPED,
    }
)
"""Statuses nothing moves out of. ``delivered`` is not here only because ``read`` may follow."""

SUCCESS: frozenset[Status] = frozenset({Status.DELIVERED, Status.READ})

_ENDINGS = {Status.UNDELIVERED, Status.FAILED, Status.EXPIRED}

TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.PENDING: frozenset({Status.QUEUED, Status.SCHEDULED, Status.SKIPPED, Status.CANCELLED}),
    # scheduled/queued -> skipped: a fallback the cascade reached, left unused because the
    # person's other device (same groupId) was delivered before it went out.
    Status.SCHEDULED: frozenset(
        {Status.QUEUED, Status.SENDING, Status.CANCELLED, Status.SKIPPED, *_ENDINGS}
    ),
    Status.QUEUED: frozenset(
        {Status.SCHEDULED, Status.SENDING, Status.CANCELLED, Status.SKIPPED, *_ENDINGS}
    ),
    # sending -> queued is a retry after a transient failure; every later report may also
    # arrive before the provider's answer to the send call itself has been recorded.
    Status.SENDING: frozenset(
        {Status.QUEUED, Status.SENT, Status.DELIVERED, Status.READ, *_ENDINGS}
    ),
    Status.SENT: frozenset({Status.DELIVERED, Status.READ, *_ENDINGS}),
    Status.DELIVERED: frozenset({Status.READ}),
    Status.READ: frozenset(),
    Status.UNDELIVERED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.EXPIRED: frozenset(),
    Status.SKIPPED: frozenset(),
}


def can_move(current: Status, new: Status) -> bool:
    """Whether a message in ``current`` may move to ``new`` (same status is not a move)."""
    return new in TRANSITIONS[current]


def is_final(status: Status) -> bool:
    """Whether nothing more will happen to a message in this status (bar delivered→read)."""
    return status in FINAL or status is Status.DELIVERED


def is_cancellable(status: Status) -> bool:
    """Whether a message can still be cancelled: it has not been handed to a provider."""
    return status in (Status.SCHEDULED, Status.QUEUED, Status.PENDING)


def message_status(deliveries: list[tuple[Status, int]], *, cancelled: bool = False) -> Status:
    """A message's status from its channels' ``(status, step)``: the cascade's overall state.

    Delivered (or read) on any channel wins; otherwise the furthest active channel speaks;
    a cascade still holding pending channels is queued; when every channel has ended, the
    last one's ending is the message's. A message the client ``cancelled`` while a channel
    was already with a provider ends cancelled, unless that channel is reported delivered.
    """
    statuses = {status for status, _ in deliveries}
    if Status.READ in statuses:
        return Status.READ
    if Status.DELIVERED in statuses:
        return Status.DELIVERED
    active = [
        (step, status)
        for status, step in deliveries
        if status not in FINAL and status is not Status.PENDING
    ]
    if active:
        return max(active, key=lambda a: (a[0], _PROGRESS.index(a[1])))[1]
    if cancelled:
        return Status.CANCELLED
    if Status.PENDING in statuses:
        return Status.QUEUED
    ended = [(step, status) for status, step in deliveries if status is not Status.SKIPPED]
    if not ended:
        return Status.CANCELLED
    return max(ended, key=lambda e: e[0])[1]


_PROGRESS = [Status.SCHEDULED, Status.QUEUED, Status.SENDING, Status.SENT, Status.DELIVERED]
