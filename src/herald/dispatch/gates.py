"""The send-time gates: what may stop a claimed delivery before any provider is called.

Each gate is checked in the claim transaction, where every send (first, retry, after
downtime) passes, so no path can hand a message to a provider that a gate would stop. A gate
that stops a delivery records why in its history and releases its lease.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import Settings
from herald.domain import cascade
from herald.domain.allowed_time_ranges import TimeRange, is_allowed, parse_ranges
from herald.domain.scheduling import first_due
from herald.domain.statuses import Status
from herald.services.delivery.outcomes import expire
from herald.services.delivery.suppressions import refuse_suppressed
from herald.services.delivery.tracking import Changes, ErrorInfo, apply_status
from herald.store.bots import last_inbound_at
from herald.store.queue import SENDABLE, Claimed
from herald.store.rows import DeliveryRow, MessageRow, delivered_in_groups

WHATSAPP_WINDOW = timedelta(hours=24)


async def refuse_opted_out(
    session: AsyncSession, changes: Changes, claimed: list[Claimed], now: datetime
) -> list[Claimed]:
    """Fail sends to people who opted out of the sender; returns the claims left to send."""
    sendable = [c for c in claimed if c.delivery.status in SENDABLE]
    refused = await refuse_suppressed(
        session,
        [
            (
                c.delivery.project_id,
                c.delivery.channel,
                c.delivery.from_address,
                c.delivery.to_address,
            )
            for c in sendable
        ],
    )
    if not refused:
        return claimed
    out = {id(sendable[i]) for i in refused}
    for c in claimed:
        if id(c) in out:
            apply_status(
                changes,
                c.message,
                c.delivery,
                Status.FAILED,
                source="dispatcher",
                at=now,
                error=ErrorInfo(
                    "recipient_opted_out",
                    "The recipient opted out of messages from this sender "
                    "(they replied STOP); send START to opt back in.",
                ),
            )
            c.delivery.lease_owner = None
    return [c for c in claimed if id(c) not in out]


async def skip_delivered_in_group(
    session: AsyncSession, changes: Changes, claimed: list[Claimed], now: datetime
) -> list[Claimed]:
    """Skip fallbacks whose client-given group (one person's devices) was delivered.

    The skip made when the delivery was recorded passes over rows another writer holds
    (see ``load_group_waiting``), such as one this worker has just claimed: this is the
    last gate before the provider. One query per batch, and only for batches that hold
    such fallbacks: most hold none.
    """
    fallbacks = [
        c
        for c in claimed
        if c.delivery.status in SENDABLE
        and c.message.group_given
        and not c.delivery.required
        and c.siblings
        and c.delivery.step > min(s.step for s in c.siblings)
    ]
    if not fallbacks:
        return claimed
    delivered = await delivered_in_groups(
        session, {(c.message.project_id, c.message.group_id) for c in fallbacks}
    )
    if not delivered:
        return claimed
    out: set[int] = set()
    for c in fallbacks:
        found = delivered.get((c.message.project_id, c.message.group_id), [])
        other = next(((m, ch) for m, ch in found if m != c.message.id), None)
        if other is None:
            continue
        message_id, channel = other
        detail = cascade.group_skip_detail(channel, message_id)
        # The channels after it too: nothing would ever move the cascade on to them.
        for d in (c.delivery, *cascade.waiting_fallbacks(c.siblings)):
            apply_status(
                changes, c.message, d, Status.SKIPPED, source="group", at=now, detail=detail
            )
        c.delivery.next_attempt_at = None
        c.delivery.lease_owner = None
        out.add(id(c))
    return [c for c in claimed if id(c) not in out]


def expire_unsent(changes: Changes, d: DeliveryRow, m: MessageRow, now: datetime) -> bool:
    """Expire a due delivery whose validity ended before it could go; True if expired."""
    if d.expires_at is None or now < d.expires_at:
        return False
    expire(changes, d, m, now, "it could not be sent within its validity period")
    return True


def expire_unreported(changes: Changes, d: DeliveryRow, m: MessageRow, now: datetime) -> bool:
    """Expire a delivery still with the provider once its validity ended; True if expired."""
    if d.status not in (Status.SENDING, Status.SENT) or not d.expires_at or now < d.expires_at:
        return False
    waited = f" ({d.validity_minutes} min)" if d.validity_minutes else ""
    expire(changes, d, m, now, f"no delivery report within its validity{waited}")
    return True


@lru_cache(maxsize=1024)
def _ranges(raw: tuple[tuple[str, ...], ...]) -> list[TimeRange]:
    # Parsed once per distinct set: a bulk send repeats the same ranges on every message.
    return parse_ranges([list(r) for r in raw])


def hold_outside_allowed_ranges(
    changes: Changes, d: DeliveryRow, m: MessageRow, now: datetime, settings: Settings
) -> bool:
    """Push a due delivery to its recipient's next allowed time; True if it was pushed."""
    if not m.allowed_time_ranges:
        return False
    ranges = _ranges(tuple(tuple(r) for r in m.allowed_time_ranges))
    zone = ZoneInfo(m.timezone or settings.default_timezone)
    if is_allowed(now, ranges, zone):
        return False
    if settings.allowed_time_ranges_pause_validity:
        due = first_due(now, ranges, zone, None)
        if d.expires_at is not None:
            d.expires_at += due.at - now  # the night does not count against validity
    else:
        due = first_due(now, ranges, zone, d.expires_at)
    d.next_attempt_at = due.at
    d.lease_owner = None
    changes.touch(d)
    local = due.at.astimezone(zone)
    apply_status(
        changes,
        m,
        d,
        Status.SCHEDULED,
        source="dispatcher",
        at=now,
        detail=f"outside the allowed hours in {zone.key} ({m.timezone_source or 'default'} "
        f"time zone); waiting until {local:%Y-%m-%d %H:%M %Z}",
    )
    return True


async def outside_whatsapp_window(session: AsyncSession, d: DeliveryRow, now: datetime) -> bool:
    """Whether WhatsApp's 24-hour customer-service window is closed for this person."""
    # Only a message the person sent in WhatsApp opens it (Meta's policy): an inbound SMS
    # from the same number does not, and free text sent on it would fail with 131047.
    last = await last_inbound_at(session, d.project_id, "whatsapp", d.to_address)
    return last is None or now - last >= WHATSAPP_WINDOW


def refuse_without_template(changes: Changes, d: DeliveryRow, m: MessageRow, now: datetime) -> bool:
    """Fail a WhatsApp send outside the window that has no approved template; True if failed."""
    content = d.content or {}
    if content.get("contentSid") or content.get("templateName"):
        return False
    apply_status(
        changes,
        m,
        d,
        Status.FAILED,
        source="dispatcher",
        at=now,
        error=ErrorInfo(
            "whatsapp_outside_window",
            "The person has not written in the last 24 hours, so WhatsApp "
            "only allows an approved template, and this channel has none "
            "(give channels.whatsapp.contentSid or templateName).",
        ),
    )
    d.lease_owner = None
    return True
