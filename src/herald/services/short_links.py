"""Short links: shortening SMS text, storing the links, listing them (following them and
counting clicks: ``link_clicks.py``).

The flow for a message with ``useShortLinks``:

1. :func:`shorten_text` rewrites every http(s) link in the rendered text to
   ``{base}/{code}`` (random 8-character base62 codes) before segments are counted, so the
   client pays for the short text;
2. :func:`save_short_links` stores the links with the message in the same transaction and
   returns the (almost always empty) codes it had to change because they were taken;
3. ``GET /{code}`` counts the click and answers the target (``link_clicks.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from herald.config import Settings
from herald.domain.links import new_code, rewrite_urls
from herald.errors import Conflict
from herald.store.base import new_id
from herald.store.short_links import (
    ShortLink,
    clicks_by_message,
    insert_links,
    page_of_links,
    taken_codes,
)

CODE_LENGTH = 8
# Rounds of "which of these codes are taken?" before giving up. With 62**8 codes a second
# round is already a once-in-a-lifetime event.
_MAX_ROUNDS = 5


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
        taken = await taken_codes(session, codes)
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
    await insert_links(
        session,
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
    count, links = await page_of_links(
        session,
        project_id,
        limit=limit,
        offset=offset,
        newest_first=sort[1],
        message_id=message_ids,
        task_id=task_ids,
    )
    return {"count": count, "items": [short_link_item(link, base_url) for link in links]}


# TWIN's sort keys for the short-link list: links have no status.
SORT_KEYS = ("createdAt",)


async def link_stats_for_messages(
    session: AsyncSession, message_ids: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """``message_id -> {"clicks", "firstClickedAt"}`` for the messages that have short links."""
    return {
        message_id: {"clicks": clicks, "firstClickedAt": _iso(first)}
        for message_id, clicks, first in await clicks_by_message(session, message_ids)
    }
