"""The job queue's claim: due deliveries, taken under a lease, paced per sender.

On PostgreSQL, ``FOR UPDATE SKIP LOCKED`` lets many workers claim side by side without
waiting for each other; SQLite has one writer at a time, so the same query is simply serial.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.statuses import Status
from herald.store.bulk import update_many
from herald.store.db import is_postgres
from herald.store.messages import Delivery, Message
from herald.store.projects import Project
from herald.store.rows import (
    DELIVERIES,
    DeliveryRow,
    MessageRow,
    load_deliveries,
    load_siblings,
    mark_written,
)
from herald.store.senders import Sender

SENDABLE = (Status.QUEUED, Status.SCHEDULED)


@dataclass(slots=True)
class Claimed:
    delivery: DeliveryRow
    message: MessageRow
    # When a rate-limited sender's turn comes for this delivery (None: right away).
    slot: datetime | None = None
    # All deliveries of a cascading message (empty for a single-channel one).
    siblings: list[DeliveryRow] = field(default_factory=list)


async def claim_due(
    session: AsyncSession,
    *,
    now: datetime,
    limit: int,
    lease_until: datetime,
    owner: str,
    pace_horizon: timedelta = timedelta(seconds=1),
    pace_margin: timedelta = timedelta(milliseconds=250),
) -> list[Claimed]:
    """Claim up to ``limit`` due deliveries; the caller writes the claimed rows and commits.

    Each claimed row's ``next_attempt_at`` moves to ``lease_until`` (and ``lease_owner`` to
    ``owner``): once written, if this worker dies, the row simply comes due again then.
    Deliveries of a sender with a ``rateLimit`` get a send slot between ``pace_margin`` and
    ``pace_horizon`` ahead; later ones are pushed back (and written here).
    """
    ids_query = (
        select(Delivery.id)
        .join(Message, Message.id == Delivery.message_id)
        .where(Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(session):
        # Every writer locks a message together with its deliveries; skipping rows where
        # either is locked keeps claimers from waiting on each other or on callbacks.
        ids_query = ids_query.with_for_update(skip_locked=True, of=(Delivery, Message))
    ids = list(await session.scalars(ids_query))
    if not ids:
        return []
    loaded = await load_deliveries(session, ids)
    rows = sorted(loaded.values(), key=lambda pair: (pair[0].next_attempt_at or now, pair[0].id))

    sendable = [d for d, _ in rows if d.status in SENDABLE]
    senders: dict[str, Sender] = {}
    projects: dict[str, Project] = {}
    if sendable:
        sender_query = select(Sender).where(
            Sender.id.in_({d.sender_id for d in sendable}), Sender.rate_limit.is_not(None)
        )
        project_query = select(Project).where(
            Project.id.in_({d.project_id for d in sendable}), Project.rate_limit.is_not(None)
        )
        if is_postgres(session):
            # Serialises pacing decisions for one sender or project across all workers.
            sender_query = sender_query.order_by(Sender.id).with_for_update()
            project_query = project_query.order_by(Project.id).with_for_update()
        senders = {s.id: s for s in await session.scalars(sender_query)}
        projects = {p.id: p for p in await session.scalars(project_query)}

    claimed: list[Claimed] = []
    for delivery, message in rows:
        slot: datetime | None = None
        sender = senders.get(delivery.sender_id)
        project = projects.get(delivery.project_id)
        if delivery.status in SENDABLE and (sender or project):
            # GCRA: each send books 1/rate seconds of the sender's (and project's) time line;
            # the send waits for the later of the two slots. Booking at least pace_margin
            # ahead means the time between this claim and its sends (a cold worker opening
            # its first connection) never pushes them into the next batch's slots.
            earliest = now + pace_margin
            slot = max(earliest, *(p.rate_next_at or earliest for p in (sender, project) if p))
            if slot > now + pace_horizon:
                delivery.next_attempt_at = slot - pace_horizon
                continue
            if sender is not None and sender.rate_limit:
                # Twilio counts a sender's rate in segments, not messages.
                cost = max(1, delivery.num_segments or 1)
                sender.rate_next_at = slot + timedelta(seconds=cost / sender.rate_limit)
            if project is not None and project.rate_limit:
                project.rate_next_at = slot + timedelta(seconds=1 / project.rate_limit)
        delivery.next_attempt_at = lease_until
        delivery.lease_owner = owner
        claimed.append(Claimed(delivery, message, slot))
    siblings = await load_siblings(session, rows)
    for c in claimed:
        c.siblings = siblings.get(c.message.id, [])
    # Senders and projects are ORM objects: their pacing state flushes with the transaction.
    # Claimed rows are left to the caller, which changes them further in this transaction
    # (one UPDATE a row instead of two); only the ones put off for pacing are written here.
    taken = {c.delivery.id for c in claimed}
    deferred = [d for d, _ in rows if d.id not in taken]
    if deferred:
        await update_many(
            await session.connection(),
            DELIVERIES,
            [{"_id": d.id, "next_attempt_at": d.next_attempt_at} for d in deferred],
        )
        for d in deferred:
            mark_written(d)
    return claimed
