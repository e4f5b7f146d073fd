"""Short links in SMS text, and the clicks on them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class ShortLink(Base):
    """``{base}/{code}`` redirects to ``url``; counters are kept on the row for cheap reads."""

    __tablename__ = "short_links"
    __table_args__ = (
        Index(None, "code", unique=True),
        Index(None, "project_id", "message_id"),
        Index(None, "project_id", "task_id"),
        # The message list reads its 50 rows' clicks by message id alone.
        Index(None, "message_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # No foreign key: links are inserted in the same bulk as their messages, and the order of
    # the two inserts must not matter.
    message_id: Mapped[str | None] = mapped_column(String(36))
    task_id: Mapped[str | None] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    first_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LinkClick(Base):
    __tablename__ = "link_clicks"
    __table_args__ = (Index(None, "link_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    link_id: Mapped[str] = mapped_column(ForeignKey("short_links.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    user_agent: Mapped[str | None] = mapped_column(String(500))


# Bound on bind parameters per IN (...) query, well under SQLite's and asyncpg's limits.
CHUNK = 1000


def _short(user_agent: str | None) -> str | None:
    return user_agent[:500] if user_agent else None


async def count_click(
    session: AsyncSession, code: str, user_agent: str | None, now: datetime
) -> str | None:
    """Count one click on a live link and log it; its target, or None (unknown or expired).

    One UPDATE (counters) and one INSERT (the click): the redirect path stays two statements.
    """
    hit = (
        await session.execute(
            update(ShortLink)
            .where(
                ShortLink.code == code,
                or_(ShortLink.expires_at.is_(None), ShortLink.expires_at > now),
            )
            .values(
                clicks=ShortLink.clicks + 1,
                first_clicked_at=func.coalesce(
                    ShortLink.first_clicked_at, literal(now, UTCDateTime())
                ),
                last_clicked_at=now,
            )
            .returning(ShortLink.id, ShortLink.url)
            .execution_options(synchronize_session=False)
        )
    ).first()
    if hit is None:
        return None
    link_id, url = hit
    await session.execute(
        insert(LinkClick).values(link_id=link_id, at=now, user_agent=_short(user_agent))
    )
    return str(url)


async def links_by_code(
    session: AsyncSession, codes: Sequence[str]
) -> dict[str, tuple[str, str, datetime | None]]:
    """Each known code's link id, target and expiry."""
    found: dict[str, tuple[str, str, datetime | None]] = {}
    for i in range(0, len(codes), CHUNK):
        rows = await session.execute(
            select(ShortLink.code, ShortLink.id, ShortLink.url, ShortLink.expires_at).where(
                ShortLink.code.in_(codes[i : i + CHUNK])
            )
        )
        found.update({code: (link_id, url, expires) for code, link_id, url, expires in rows})
    return found


async def add_clicks(
    session: AsyncSession,
    counts: Mapping[str, int],
    clicks: Sequence[tuple[str, str | None]],
    now: datetime,
) -> None:
    """Add ``counts`` (link id → clicks) to the links' counters and log each (link id, agent).

    Counters are incremented in SQL (``clicks = clicks + n``), so concurrent processes never
    lose a click.
    """
    if not counts:
        return
    # Core, not ORM: the ORM's bulk UPDATE by primary key cannot add to a column.
    table = cast(Table, ShortLink.__table__)
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("link"))
        .values(
            clicks=table.c.clicks + bindparam("n"),
            first_clicked_at=func.coalesce(table.c.first_clicked_at, literal(now, UTCDateTime())),
            last_clicked_at=literal(now, UTCDateTime()),
        ),
        [{"link": link_id, "n": n} for link_id, n in counts.items()],
    )
    await session.execute(
        insert(LinkClick),
        [{"link_id": link_id, "at": now, "user_agent": _short(ua)} for link_id, ua in clicks],
    )


async def link_target(session: AsyncSession, code: str) -> tuple[str, datetime | None] | None:
    """Where ``code`` leads and until when, without counting a click."""
    row = (
        await session.execute(
            select(ShortLink.url, ShortLink.expires_at).where(ShortLink.code == code)
        )
    ).first()
    return None if row is None else (str(row[0]), row[1])


async def taken_codes(session: AsyncSession, codes: Sequence[str]) -> set[str]:
    """Which of ``codes`` some link already has."""
    taken: set[str] = set()
    for i in range(0, len(codes), CHUNK):
        chunk = codes[i : i + CHUNK]
        taken.update(await session.scalars(select(ShortLink.code).where(ShortLink.code.in_(chunk))))
    return taken


async def insert_links(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert short links given as column values, in one statement."""
    await session.execute(insert(ShortLink), rows)


async def page_of_links(
    session: AsyncSession,
    project_id: str,
    *,
    limit: int,
    offset: int,
    newest_first: bool,
    **any_of: Sequence[str],
) -> tuple[int, list[ShortLink]]:
    """How many of the project's links match, and one page of them; ``any_of`` maps a column
    (message_id, task_id) to the values it may hold, an empty list matching every link."""
    where = [ShortLink.project_id == project_id]
    for column, values in any_of.items():
        if values:
            where.append(getattr(ShortLink, column).in_(values))
    count = await session.scalar(select(func.count()).select_from(ShortLink).where(*where))
    links = await session.scalars(
        select(ShortLink)
        .where(*where)
        .order_by(
            ShortLink.created_at.desc() if newest_first else ShortLink.created_at, ShortLink.id
        )
        .limit(limit)
        .offset(offset)
    )
    return count or 0, list(links)


async def clicks_by_message(
    session: AsyncSession, message_ids: Sequence[str]
) -> list[tuple[str, int, datetime | None]]:
    """(message id, clicks, first click) for each of the messages that has short links."""
    ids = list(dict.fromkeys(message_ids))
    found: list[tuple[str, int, datetime | None]] = []
    for i in range(0, len(ids), CHUNK):
        rows = await session.execute(
            select(
                ShortLink.message_id,
                func.sum(ShortLink.clicks),
                func.min(ShortLink.first_clicked_at),
            )
            .where(ShortLink.message_id.in_(ids[i : i + CHUNK]))
            .group_by(ShortLink.message_id)
        )
        found.extend(
            (message_id, int(clicks or 0), first)
            for message_id, clicks, first in rows
            if message_id is not None
        )
    return found
