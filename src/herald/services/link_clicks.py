"""Following a short link: the ``GET /{code}`` redirect, its click counting and group commit.

Making links (shortening text, storing them, listing them) is ``short_links.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald.clock import Clock
from herald.errors import Gone, HeraldError, NotFound
from herald.store.short_links import add_clicks, count_click, link_target, links_by_code


@dataclass(frozen=True)
class Click:
    """One tap on a short link, with the browser that made it."""

    code: str
    user_agent: str | None


def _link_error(code: str, expired: bool) -> HeraldError:
    if expired:
        return Gone(f"The short link {code!r} has expired.", code="short_link_expired")
    return NotFound(f"No short link {code!r}.", code="short_link_not_found")


async def resolve_click(
    session: AsyncSession, code: str, user_agent: str | None, now: datetime
) -> str:
    """Count a click on ``code`` and return where it leads; the caller commits."""
    url = await count_click(session, code, user_agent, now)
    if url is None:
        await target_of(session, code, now)  # raises the right 404 or 410
        raise AssertionError("unreachable: the link exists and has not expired")
    return url


async def record_clicks(
    session: AsyncSession, clicks: Sequence[Click], now: datetime
) -> list[str | HeraldError]:
    """Count many clicks in one transaction (the caller commits): one result per click.

    Each result is the target URL, or the 404/410 error for that click.
    """
    found = await links_by_code(session, list(dict.fromkeys(click.code for click in clicks)))
    results: list[str | HeraldError] = []
    counts: dict[str, int] = {}
    counted: list[tuple[str, str | None]] = []
    for click in clicks:
        link = found.get(click.code)
        if link is None or (link[2] is not None and link[2] <= now):
            results.append(_link_error(click.code, expired=link is not None))
            continue
        counts[link[0]] = counts.get(link[0], 0) + 1
        counted.append((link[0], click.user_agent))
        results.append(link[1])
    await add_clicks(session, counts, counted, now)
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
    found = await link_target(session, code)
    if found is None:
        raise _link_error(code, expired=False)
    url, expires_at = found
    if expires_at is not None and expires_at <= now:
        raise _link_error(code, expired=True)
    return url
