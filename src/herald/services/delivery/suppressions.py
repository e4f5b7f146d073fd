"""Opt-out suppressions: who asked one sender to stop texting them, and the checks every
outbound send makes against that list before a provider sees it.

Addresses are stored without a channel prefix (``whatsapp:+1…`` is kept as ``+1…`` on the
``whatsapp`` channel), so a check can be made with either form.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.addresses import bare
from herald.errors import NotFound
from herald.store.base import utcnow
from herald.store.bots import Suppression

# Checked at once per query; keeps the IN list well inside every database's limits.
_CHUNK = 500

# Provider error codes meaning the person does not want messages from this sender, with the
# suppression source each records: Twilio's 21610 (they replied STOP, reported when sending
# or later in a status report), Telegram's blocked bot.
OPT_OUT_CODES = {"21610": "twilio-21610", "telegram_blocked": "telegram-blocked"}


async def suppressed_pairs(
    session: AsyncSession, project_id: str, channel: str, pairs: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these ``(from_address, to_address)`` pairs are suppressed, as given."""
    wanted: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    for from_address, to_address in pairs:
        wanted[(bare(from_address), bare(to_address))].append((from_address, to_address))
    found: set[tuple[str, str]] = set()
    keys = list(wanted)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        rows = await session.execute(
            select(Suppression.from_address, Suppression.to_address).where(
                Suppression.project_id == project_id,
                Suppression.channel == channel.lower(),
                tuple_(Suppression.from_address, Suppression.to_address).in_(chunk),
            )
        )
        for from_address, to_address in rows:
            found.update(wanted.get((from_address, to_address), ()))
    return found


async def is_suppressed(
    session: AsyncSession, project_id: str, channel: str, from_address: str, to_address: str
) -> bool:
    """Whether ``to_address`` opted out of ``from_address`` on ``channel``."""
    pair = (from_address, to_address)
    return pair in await suppressed_pairs(session, project_id, channel, [pair])


async def refuse_suppressed(
    session: AsyncSession, claimed: Sequence[tuple[str, str, str, str]]
) -> set[int]:
    """Indexes of claimed ``(project_id, channel, from_address, to_address)`` sends that must
    be refused (code ``recipient_opted_out``) because the person opted out."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, (project_id, channel, _, _) in enumerate(claimed):
        groups[(project_id, channel.lower())].append(i)
    refused: set[int] = set()
    for (project_id, channel), indexes in groups.items():
        pairs = [(claimed[i][2], claimed[i][3]) for i in indexes]
        found = await suppressed_pairs(session, project_id, channel, pairs)
        refused.update(i for i in indexes if (claimed[i][2], claimed[i][3]) in found)
    return refused


async def record_suppression(
    session: AsyncSession,
    project_id: str,
    channel: str,
    from_address: str,
    to_address: str,
    source: str,
    *,
    at: datetime | None = None,
) -> bool:
    """Suppress the pair; True if it was new (so the opt-out is confirmed only once)."""
    channel, from_address, to_address = channel.lower(), bare(from_address), bare(to_address)
    existing = await session.scalar(
        select(Suppression.id).where(
            Suppression.project_id == project_id,
            Suppression.channel == channel,
            Suppression.from_address == from_address,
            Suppression.to_address == to_address,
        )
    )
    if existing is not None:
        return False
    try:
        # A concurrent STOP (or 21610) for the same pair may win the race: that is fine.
        async with session.begin_nested():
            session.add(
                Suppression(
                    project_id=project_id,
                    channel=channel,
                    from_address=from_address,
                    to_address=to_address,
                    source=source[:50],
                    created_at=at or utcnow(),
                )
            )
            await session.flush()
    except IntegrityError:
        return False
    return True


async def lift_suppression(
    session: AsyncSession, project_id: str, channel: str, from_address: str, to_address: str
) -> bool:
    """Remove the pair's suppression (START); True if there was one."""
    result = await session.execute(
        delete(Suppression).where(
            Suppression.project_id == project_id,
            Suppression.channel == channel.lower(),
            Suppression.from_address == bare(from_address),
            Suppression.to_address == bare(to_address),
        )
    )
    return bool(getattr(result, "rowcount", 0))


async def list_suppressions(
    session: AsyncSession,
    project_id: str,
    *,
    channel: str | None = None,
    to_address: str | None = None,
    from_address: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Suppression]:
    """The project's suppressions, newest first."""
    query = select(Suppression).where(Suppression.project_id == project_id)
    if channel:
        query = query.where(Suppression.channel == channel.lower())
    if to_address:
        query = query.where(Suppression.to_address == bare(to_address))
    if from_address:
        query = query.where(Suppression.from_address == bare(from_address))
    query = query.order_by(Suppression.created_at.desc(), Suppression.id).limit(limit)
    return list(await session.scalars(query.offset(offset)))


async def add_suppression(
    session: AsyncSession,
    project_id: str,
    channel: str,
    from_address: str,
    to_address: str,
    *,
    at: datetime,
) -> Suppression:
    """Suppress the pair at a client's request; the suppression, new or already there."""
    await record_suppression(session, project_id, channel, from_address, to_address, "api", at=at)
    [found] = await list_suppressions(
        session,
        project_id,
        channel=channel,
        to_address=to_address,
        from_address=from_address,
        limit=1,
    )
    return found


async def remove_suppression(session: AsyncSession, project_id: str, suppression_id: str) -> None:
    """Delete one suppression by id, so the person can be texted again."""
    row = await session.get(Suppression, suppression_id)
    if row is None or row.project_id != project_id:
        raise NotFound(f"No suppression with id {suppression_id}.", code="suppression_not_found")
    await session.delete(row)
