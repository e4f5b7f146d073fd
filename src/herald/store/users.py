"""People who sign in: users, their web sessions, sign-in links and TWIN IAM refresh tokens.

Every token a person holds (a session cookie, a sign-in link, a refresh token) is stored
only as its SHA-256: the tokens are 256 random bits, so a fast hash is as safe as a slow one,
and a leaked table opens nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from herald.store.base import Base, UTCDateTime, new_id, utcnow


class User(Base):
    """A person of one project, with a role; e-mail addresses are unique across Herald."""

    __tablename__ = "users"
    __table_args__ = (Index(None, "email", unique=True), Index(None, "project_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"))
    # Stored lower-cased, so look-ups need no case folding.
    email: Mapped[str] = mapped_column(String(320))
    # argon2id, None until the user sets one (signed in by link so far).
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    # "en" | "ru"; None means "from the browser's Accept-Language".
    language: Mapped[str | None] = mapped_column(String(8))
    time_zone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class WebSession(Base):
    """One signed-in browser of a user (the cabinet's cookie)."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "token_hash", unique=True), Index(None, "user_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    user_agent: Mapped[str | None] = mapped_column(String(500))
    ip: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SignInLink(Base):
    """A one-time sign-in link (first sign-in, invitations): spent when used."""

    __tablename__ = "sign_in_links"
    __table_args__ = (Index(None, "token_hash", unique=True), Index(None, "user_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class IamSession(Base):
    """One TWIN IAM sign-in (``auth/login``) and the chain of refresh tokens it grew.

    Its access tokens name it (claim ``sid``), so revoking it stops them at once, not only
    its refresh tokens.
    """

    __tablename__ = "iam_sessions"
    __table_args__ = (Index(None, "user_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RefreshToken(Base):
    """A refresh token of an IAM session; each works once (rotation)."""

    __tablename__ = "refresh_tokens"
    __table_args__ = (Index(None, "token_hash", unique=True), Index(None, "iam_session_id"))

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    iam_session_id: Mapped[str] = mapped_column(ForeignKey("iam_sessions.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SigningKey(Base):
    """A random key for one purpose (``"iam"``: the JWTs), sealed with the vault.

    Every Herald process sharing the database signs and checks with the same key, and the
    key is as safe as the installation's other secrets.
    """

    __tablename__ = "signing_keys"

    purpose: Mapped[str] = mapped_column(String(40), primary_key=True)
    key_encrypted: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    """The user with this (already lower-cased) e-mail address."""
    return await session.scalar(select(User).where(User.email == email))


async def users_of(session: AsyncSession, project_id: str) -> list[User]:
    """Every user of a project, oldest first."""
    return list(
        await session.scalars(
            select(User).where(User.project_id == project_id).order_by(User.created_at, User.id)
        )
    )


async def count_users(session: AsyncSession, project_id: str) -> int:
    """How many users a project has."""
    found = await session.scalar(
        select(func.count()).select_from(User).where(User.project_id == project_id)
    )
    return int(found or 0)


async def web_session_by_hash(session: AsyncSession, token_hash: str) -> WebSession | None:
    """The web session whose cookie token has this hash."""
    return await session.scalar(select(WebSession).where(WebSession.token_hash == token_hash))


async def web_sessions_of(session: AsyncSession, user_id: str, now: datetime) -> list[WebSession]:
    """A user's live web sessions, most recently seen first."""
    return list(
        await session.scalars(
            select(WebSession)
            .where(
                WebSession.user_id == user_id,
                WebSession.revoked_at.is_(None),
                WebSession.expires_at > now,
            )
            .order_by(WebSession.last_seen_at.desc(), WebSession.id)
        )
    )


async def revoke_web_sessions(session: AsyncSession, user_id: str, now: datetime) -> None:
    """End every web session of a user."""
    await session.execute(
        update(WebSession)
        .where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def sign_in_link_by_hash(session: AsyncSession, token_hash: str) -> SignInLink | None:
    """The sign-in link whose token has this hash."""
    return await session.scalar(select(SignInLink).where(SignInLink.token_hash == token_hash))


async def refresh_token_by_hash(session: AsyncSession, token_hash: str) -> RefreshToken | None:
    """The refresh token with this hash."""
    return await session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))


async def revoke_iam_sessions(session: AsyncSession, user_id: str, now: datetime) -> None:
    """End every IAM session of a user: its refresh tokens and access tokens stop working."""
    await session.execute(
        update(IamSession)
        .where(IamSession.user_id == user_id, IamSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def signing_key(session: AsyncSession, purpose: str) -> SigningKey | None:
    """The sealed signing key for ``purpose``, if one was made."""
    return await session.get(SigningKey, purpose)


async def spend_refresh_token(session: AsyncSession, token_id: str, now: datetime) -> bool:
    """Mark a refresh token used; False when it already was (two requests raced for it, or
    it was stolen and replayed): one statement, so only one of them wins."""
    result = await session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == token_id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(getattr(result, "rowcount", 0) == 1)
