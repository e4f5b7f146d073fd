"""The cabinet's signed-in browsers: one random cookie token each, stored only as its hash."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from herald.services.users import token_hash
from herald.store.base import utcnow
from herald.store.users import (
    User,
    WebSession,
    revoke_iam_sessions,
    revoke_web_sessions,
    web_session_by_hash,
    web_sessions_of,
)

COOKIE = "herald_session"
# How long a sign-in lasts, however active the browser: then the person signs in again.
SESSION_TTL = timedelta(days=14)
# last_seen_at is written at most this often: a page load should not always be a write.
TOUCH_EVERY = timedelta(minutes=1)


async def start(
    session: AsyncSession,
    user: User,
    *,
    user_agent: str | None,
    ip: str | None,
    now: datetime,
) -> str:
    """Sign ``user`` in from one browser; returns the token to set as the cookie."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            user_id=user.id,
            token_hash=token_hash(token),
            created_at=now,
            last_seen_at=now,
            expires_at=now + SESSION_TTL,
            user_agent=user_agent[:500] if user_agent else None,
            ip=ip[:64] if ip else None,
        )
    )
    await session.flush()
    return token


async def current(
    session: AsyncSession, token: str, *, now: datetime
) -> tuple[User, WebSession] | None:
    """The user and session a cookie token opens; None when unknown, ended, expired or the
    user is disabled."""
    found = await web_session_by_hash(session, token_hash(token))
    if found is None or found.revoked_at is not None or found.expires_at <= now:
        return None
    user = await session.get(User, found.user_id)
    if user is None or user.disabled_at is not None:
        return None
    if now - found.last_seen_at >= TOUCH_EVERY:
        found.last_seen_at = now
        await session.flush()
    return user, found


async def end(session: AsyncSession, token: str, *, now: datetime | None = None) -> None:
    """Sign out this browser (nothing happens for an unknown token)."""
    found = await web_session_by_hash(session, token_hash(token))
    if found is not None and found.revoked_at is None:
        found.revoked_at = now or utcnow()
        await session.flush()


async def end_one(
    session: AsyncSession, user_id: str, session_id: str, *, now: datetime | None = None
) -> None:
    """Sign out one of the user's own sessions by its id (the Account page's list)."""
    found = await session.get(WebSession, session_id)
    if found is not None and found.user_id == user_id and found.revoked_at is None:
        found.revoked_at = now or utcnow()
        await session.flush()


async def end_all(session: AsyncSession, user_id: str, *, now: datetime | None = None) -> None:
    """Sign out everywhere: every web session, and every IAM refresh and access token."""
    at = now or utcnow()
    await revoke_web_sessions(session, user_id, at)
    await revoke_iam_sessions(session, user_id, at)


async def list_for(
    session: AsyncSession, user_id: str, *, now: datetime | None = None
) -> list[WebSession]:
    """The user's live sessions, most recently seen first."""
    return await web_sessions_of(session, user_id, now or utcnow())
