"""Short links: shortening SMS text, storing the links, following them, counting clicks.

The flow for a message with ``useShortLinks``:

1. :func:`shorten_text` rewrites every http(s) link in the rendered text to
   ``{base}/{code}`` (random 8-character base62 codes) before segments are counted, so the
   client pays for the short text;
2. :func:`save_short_links` stores the links with the message in the same transaction and
   returns the (almost always empty) codes it had to change because they were taken;
3. ``GET /{code}`` calls :func:`resolve_click`, which counts the click and answers the target.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.clock import Clock
from herald.config import Settings
from herald.domain.links import new_code, rewrite_urls
from herald.errors import Conflict, Gone, HeraldError, NotFound
from herald.store.base import UTCDateTime, new_id
from herald.store.short_links import LinkClick, ShortLink

CODE_LENGTH = 8
# Rounds of "which of these codes are taken?" before giving up. With 62**8 codes a second
# round is already a once-in-a-lifetime event.
_MAX_ROUNDS = 5
# Bound on bind parameters per IN (...) query, well under SQLite's and asyncpg's limits.
_CHUNK = 1000


@dataclass(frozen=True)
class PlannedLink:
    """A short link decided on while rendering: ``code`` stands for ``url``."""

    code: str
    url: str


@dataclass(frozen=True)
class LinkBatch:
    """The links of one message (or one task-level text), for :func:`save_short_links_many`."""

    message_id: str | None
    task_id: str | None
    links: Sequence[PlannedLink]


def short_link_base(settings: Settings) -> str:
    """The base URL short links start with: the short-link domain, else the public URL."""
    return (settings.short_link_base_url or settings.public_url).rstrip("/")


def retention_of(settings: Settings) -> timedelta | None:
    """How long a new short link works; ``None`` (never expires) when the setting is <= 0."""
    days = settings.short_link_retention_days
    return timedelta(days=days) if days > 0 else None


def shorten_text(text: str, base_url: str) -> tuple[str, list[PlannedLink]]:
    """Replace every http(s) link in ``text`` by ``{base_url}/{code}`` with a fresh code."""
    links: list[PlannedLink] = []
    used: set[str] = set()

    def make_short(url: str) -> str:
        code = new_code(CODE_LENGTH)
        while code in used:
            code = new_code(CODE_LENGTH)
        used.add(code)
        links.append(PlannedLink(code, url))
        return f"{base_url}/{code}"

    shortened, _ = rewrite_urls(text, make_short)
    return shortened, links


def replace_codes(text: str, base_url: str, renamed: dict[str, str]) -> str:
    """Apply the code changes :func:`save_short_links` reported to an already shortened text.

    Codes keep their length, so the text's length, encoding and segments do not change.
    """
    for old, new in renamed.items():
        text = text.replace(f"{base_url}/{old}", f"{base_url}/{new}")
    return text


async def _taken(session: AsyncSession, codes: Sequence[str]) -> set[str]:
    taken: set[str] = set()
    for i in range(0, len(codes), _CHUNK):
        chunk = codes[i : i + _CHUNK]
        taken.update(await session.scalars(select(ShortLink.code).where(ShortLink.code.in_(chunk))))
    return taken


async def save_short_links_many(
    session: AsyncSession,
    project_id: str,
    batches: Sequence[LinkBatch],
    *,
    now: datetime,
    retention: timedelta | None,
) -> dict[str, str]:
    """Insert the links of many messages at once; the caller owns the transaction.

    Codes already in the database (or repeated within the batch) are replaced by fresh ones
    before the insert, so a collision never reaches the unique index. Returns
    ``{old_code: new_code}`` for every code that changed (in practice: empty); the caller must
    then fix the stored text with :func:`replace_codes`.
    """
    planned = [(batch, link) for batch in batches for link in batch.links]
    if not planned:
        return {}
    codes = [link.code for _, link in planned]
    for _ in range(_MAX_ROUNDS):
        taken = await _taken(session, codes)
        seen: set[str] = set()
        clashes = False
        for i, code in enumerate(codes):
            if code in taken or code in seen:
                codes[i] = new_code(CODE_LENGTH)
                clashes = True
            seen.add(codes[i])
        if not clashes:
            break
    else:
        raise Conflict(
            "Could not find free short-link codes; try again.", code="short_link_codes_exhausted"
        )
    expires_at = now + retention if retention is not None else None
    await session.execute(
        insert(ShortLink),
        [
            {
                "id": new_id(),
                "code": code,
                "project_id": project_id,
                "message_id": batch.message_id,
                "task_id": batch.task_id,
                "url": link.url,
                "created_at": now,
                "expires_at": expires_at,
                "clicks": 0,
            }
            for (batch, link), code in zip(planned, codes, strict=True)
        ],
    )
    return {
        link.code: code for (_, link), code in zip(planned, codes, strict=True) if code != link.code
    }


async def save_short_links(
    session: AsyncSession,
    project_id: str,
    message_id: str | None,
    task_id: str | None,
    links: Sequence[PlannedLink],
    *,
    now: datetime,
    retention: timedelta | None,
) -> dict[str, str]:
    """Insert one message's links (see :func:`save_short_links_many` for the return value)."""
    return await save_short_links_many(
        session, project_id, [LinkBatch(message_id, task_id, links)], now=now, retention=retention
    )


async def resolve_click(
    session: AsyncSession, code: str, user_agent: str | None, now: datetime
) -> str:
    """Count a click on ``code`` and return where it leads; the caller commits.

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
        await target_of(session, code, now)  # raises the right 404 or 410
        raise AssertionError("unreachable: the link exists and has not expired")
    link_id, url = hit
    await session.execute(
        insert(LinkClick).values(
            link_id=link_id, at=now, user_agent=user_agent[:500] if user_agent else None
        )
    )
    return str(url)


@dataclass(frozen=True)
class Click:
    code: str
    user_agent: str | None


def _link_error(code: str, expired: bool) -> HeraldError:
    if expired:
        return Gone(f"The short link {code!r} has expired.", code="short_link_expired")
    return NotFound(f"No short link {code!r}.", code="short_link_not_found")


async def record_clicks(
    session: AsyncSession, clicks: Sequence[Click], now: datetime
) -> list[str | HeraldError]:
    """Count many clicks in one transaction (the caller commits): one result per click.

    Each result is the target URL, or the 404/410 error for that click. Counters are
    incremented in SQL (``clicks = clicks + n``), so concurrent processes never lose a click.
    """
    codes = list(dict.fromkeys(click.code for click in clicks))
    found: dict[str, tuple[str, str, datetime | None]] = {}
    for i in range(0, len(codes), _CHUNK):
        rows = await session.execute(
            select(ShortLink.code, ShortLink.id, ShortLink.url, ShortLink.expires_at).where(
                ShortLink.code.in_(codes[i : i + _CHUNK])
            )
        )
        found.update({code: (link_id, url, expires) for code, link_id, url, expires in rows})
    results: list[str | HeraldError] = []
    counts: dict[str, int] = {}
    rows_out: list[dict[str, Any]] = []
    for click in clicks:
        link = found.get(click.code)
        if link is None or (link[2] is not None and link[2] <= now):
            results.append(_link_error(click.code, expired=link is not None))
            continue
        counts[link[0]] = counts.get(link[0], 0) + 1
        ua = click.user_agent[:500] if click.user_agent else None
        rows_out.append({"link_id": link[0], "at": now, "user_agent": ua})
        results.append(link[1])
    if counts:
        # Core, not ORM: the ORM's bulk UPDATE by primary key cannot add to a column.
        table = cast(Table, ShortLink.__table__)
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("link"))
            .values(
                clicks=table.c.clicks + bindparam("n"),
                first_clicked_at=func.coalesce(
                    table.c.first_clicked_at, literal(now, UTCDateTime())
                ),
                last_clicked_at=literal(now, UTCDateTime()),
            ),
            [{"link": link_id, "n": n} for link_id, n in counts.items()],
        )
        await session.execute(insert(LinkClick), rows_out)
    return results


class ClickRecorder:
    """Group commit for the redirect: clicks arriving together share one transaction.

    Every click is still committed before its 302 goes out; while one transaction runs, the
    clicks that arrive meanwhile queue up and go in the next one. A lone click waits for
    nothing, and under load one commit (one fsync) serves hundreds of taps.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        *,
        max_batch: int = 500,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._max_batch = max_batch
        self._pending: list[tuple[Click, asyncio.Future[str]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def click(self, code: str, user_agent: str | None) -> str:
        """Record a click once it is committed; return the target (or raise 404/410)."""
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._pending.append((Click(code, user_agent), future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="short-link-clicks")
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                async with self._sessions() as session, session.begin():
                    results = await record_clicks(
                        session, [click for click, _ in batch], self._clock.now()
                    )
            except Exception as e:  # every waiting request answers the same failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue  # the client went away; its click still counts
                if isinstance(result, HeraldError):
                    future.set_exception(result)
                else:
                    future.set_result(result)


async def target_of(session: AsyncSession, code: str, now: datetime) -> str:
    """Where ``code`` leads, without counting a click; 404 unknown, 410 expired."""
    row = (
        await session.execute(
            select(ShortLink.url, ShortLink.expires_at).where(ShortLink.code == code)
        )
    ).first()
    if row is None:
        raise _link_error(code, expired=False)
    url, expires_at = row
    if expires_at is not None and expires_at <= now:
        raise _link_error(code, expired=True)
    return str(url)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def short_link_item(link: ShortLink, base_url: str) -> dict[str, Any]:
    """A short link in TWIN's shape (``content`` is the original URL)."""
    item: dict[str, Any] = {
        "id": link.id,
        "messageId": link.message_id,
        "taskId": link.task_id,
        "companyId": 0,
        "content": link.url,
        "shortcut": f"{base_url}/{link.code}",
        "code": link.code,
        "clicks": link.clicks,
        "createdAt": link.created_at.isoformat(),
        "updatedAt": (link.last_clicked_at or link.created_at).isoformat(),
        "firstVisitedAt": _iso(link.first_clicked_at),
        "lastVisitedAt": _iso(link.last_clicked_at),
        "expiresAt": _iso(link.expires_at),
    }
    if item["messageId"] is None:
        # TWIN's SDK types messageId as a non-null string: leave it out rather than send null.
        del item["messageId"]
    return item


async def list_short_links(
    session: AsyncSession,
    project_id: str,
    message_ids: Sequence[str],
    task_ids: Sequence[str],
    limit: int,
    offset: int,
    *,
    base_url: str = "",
    sort: tuple[str, bool] = ("createdAt", True),
) -> dict[str, Any]:
    """TWIN's ``{count, items}`` of the project's short links, newest first unless ``sort`` (a
    key of :data:`SORT_KEYS`, and whether descending) says otherwise."""
    where = [ShortLink.project_id == project_id]
    if message_ids:
        where.append(ShortLink.message_id.in_(message_ids))
    if task_ids:
        where.append(ShortLink.task_id.in_(task_ids))
    count = await session.scalar(select(func.count()).select_from(ShortLink).where(*where))
    links = await session.scalars(
        select(ShortLink)
        .where(*where)
        .order_by(ShortLink.created_at.desc() if sort[1] else ShortLink.created_at, ShortLink.id)
        .limit(limit)
        .offset(offset)
    )
    return {"count": count or 0, "items": [short_link_item(link, base_url) for link in links]}


# TWIN's sort keys for the short-link list: links have no status.
SORT_KEYS = ("createdAt",)


async def link_stats_for_messages(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``message_id -> {"clicks", "firstClickedAt"}`` for the messages that have short links."""
    ids = list(dict.fromkeys(message_ids))
    stats: dict[str, dict[str, Any]] = {}
    for i in range(0, len(ids), _CHUNK):
        rows = await session.execute(
            select(
                ShortLink.message_id,
                func.sum(ShortLink.clicks),
                func.min(ShortLink.first_clicked_at),
            )
            .where(ShortLink.message_id.in_(ids[i : i + _CHUNK]))
            .group_by(ShortLink.message_id)
        )
        for message_id, clicks, first in rows:
            if message_id is not None:
                stats[message_id] = {
                    "clicks": int(clicks or 0),
                    "firstClickedAt": _iso(first),
                }
    return stats
