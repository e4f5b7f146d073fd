"""Users of a project: roles, passwords (argon2id), one-time sign-in links and invitations."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.domain.email import validate_email_address
from herald.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from herald.store.base import utcnow
from herald.store.projects import Project, projects_named
from herald.store.users import (
    SignInLink,
    User,
    revoke_iam_sessions,
    revoke_web_sessions,
    sign_in_link_by_hash,
    user_by_email,
    users_of,
)


class Role(StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    VIEWER = "viewer"


# What each role may do; an admin may do everything.
_ALLOWED: dict[str, frozenset[str]] = {
    Role.VIEWER: frozenset({"view"}),
    Role.OPERATOR: frozenset({"view", "send", "cancel", "templates", "tasks"}),
    Role.ADMIN: frozenset(
        {"view", "send", "cancel", "templates", "tasks", "senders", "keys", "users"}
    ),
}
ACTIONS = _ALLOWED[Role.ADMIN]
LANGUAGES = ("en", "ru")
MIN_PASSWORD_LENGTH = 10
# argon2 reads at most this much; a longer "password" is a way to burn CPU, not a password.
MAX_PASSWORD_LENGTH = 1024
SIGN_IN_LINK_TTL = timedelta(days=7)

_HASHER = PasswordHasher()  # argon2id with the library's (RFC 9106 low-memory) parameters
# Checked against when the e-mail is unknown, so a wrong address takes as long as a wrong
# password and the answer's timing does not tell which addresses have accounts.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))
_WRONG = "The e-mail address or the password is wrong."


def can(role: str, action: str) -> bool:
    """Whether a user with ``role`` may do ``action`` ("view", "send", "users", …)."""
    return action in _ALLOWED.get(role, frozenset())


def token_hash(token: str) -> str:
    """The SHA-256 a token (cookie, link, refresh token) is stored and looked up by."""
    return hashlib.sha256(token.encode()).hexdigest()


def normal_email(email: str) -> str:
    """The address as users are stored by (lower-cased), or a 422 saying what is wrong."""
    try:
        return validate_email_address(email.strip()).lower()
    except ValueError as e:
        raise ValidationFailed(str(e), code="invalid_email") from e


def checked_role(role: str) -> Role:
    """``role`` as a Role, or a 422 naming the roles there are."""
    try:
        return Role(role)
    except ValueError as e:
        raise ValidationFailed(
            f"{role!r} is not a role; use admin, operator or viewer.", code="invalid_role"
        ) from e


async def hash_password(password: str) -> str:
    """The argon2id hash of a password, computed off the event loop (it takes tens of ms)."""
    return await asyncio.to_thread(_HASHER.hash, password)


async def _verify(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return _HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def check_password_rules(password: str) -> None:
    """Refuse a password too short (or absurdly long) with a 422."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"A password must be at least {MIN_PASSWORD_LENGTH} characters long.",
            code="password_too_short",
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            f"A password may be at most {MAX_PASSWORD_LENGTH} characters long.",
            code="password_too_long",
        )


async def authenticate(session: AsyncSession, email: str, password: str) -> User:
    """The user these credentials open; one 401 for a wrong address, password or a disabled
    user, so the answer does not tell which addresses have accounts."""
    try:
        address = validate_email_address(email.strip()).lower()
    except ValueError:
        address = None
    user = await user_by_email(session, address) if address else None
    if user is None or user.password_hash is None:
        await _verify(_DUMMY_HASH, password)
        raise Unauthorized(_WRONG, code="invalid_credentials")
    if not await _verify(user.password_hash, password) or user.disabled_at is not None:
        raise Unauthorized(_WRONG, code="invalid_credentials")
    if _HASHER.check_needs_rehash(user.password_hash):
        user.password_hash = await hash_password(password)
    return user


async def create_user(
    session: AsyncSession,
    project_id: str,
    email: str,
    role: str,
    password: str | None = None,
) -> User:
    """A new user of the project; 409 when the address already has an account."""
    address = normal_email(email)
    checked = checked_role(role)
    if password is not None:
        check_password_rules(password)
    if await session.get(Project, project_id) is None:
        raise NotFound(f"There is no project {project_id!r}.", code="project_not_found")
    if await user_by_email(session, address) is not None:
        raise Conflict(
            f"{address} already has an account (e-mail addresses are unique in Herald).",
            code="user_exists",
        )
    user = User(
        project_id=project_id,
        email=address,
        role=checked.value,
        password_hash=await hash_password(password) if password is not None else None,
    )
    session.add(user)
    await session.flush()
    return user


async def set_password(session: AsyncSession, user: User, password: str) -> None:
    """Give the user a new password (at least 10 characters, else a 422)."""
    check_password_rules(password)
    user.password_hash = await hash_password(password)
    await session.flush()


async def set_language(session: AsyncSession, user: User, language: str | None) -> None:
    """The user's language ("en", "ru"), or None to follow the browser's Accept-Language."""
    if language is not None and language not in LANGUAGES:
        raise ValidationFailed(
            f"{language!r} is not a language Herald speaks; use en or ru.",
            code="invalid_language",
        )
    user.language = language
    await session.flush()


async def set_role(session: AsyncSession, user: User, role: str) -> None:
    """Change a user's role."""
    user.role = checked_role(role).value
    await session.flush()


async def disable(session: AsyncSession, user: User, *, now: datetime | None = None) -> None:
    """Stop a user from signing in; their sessions and IAM tokens end at once."""
    at = now or utcnow()
    if user.disabled_at is None:
        user.disabled_at = at
    await revoke_web_sessions(session, user.id, at)
    await revoke_iam_sessions(session, user.id, at)


async def sign_in_link(
    session: AsyncSession,
    user: User,
    *,
    ttl: timedelta = SIGN_IN_LINK_TTL,
    now: datetime | None = None,
) -> str:
    """A one-time token for ``/sign-in/link/<token>``, valid for ``ttl``."""
    token = secrets.token_urlsafe(32)
    at = now or utcnow()
    session.add(
        SignInLink(
            user_id=user.id, token_hash=token_hash(token), created_at=at, expires_at=at + ttl
        )
    )
    await session.flush()
    return token


async def redeem_sign_in_link(
    session: AsyncSession, token: str, *, now: datetime | None = None
) -> User:
    """The user a sign-in link opens, spending it: 404 unknown, 401 used, expired or disabled."""
    link = await sign_in_link_by_hash(session, token_hash(token))
    if link is None:
        raise NotFound(
            "This sign-in link is not known; ask your administrator for a new one.",
            code="sign_in_link_not_found",
        )
    at = now or utcnow()
    user = await session.get(User, link.user_id)
    if link.used_at is not None or link.expires_at <= at or user is None or user.disabled_at:
        raise Unauthorized(
            "This sign-in link was already used or has expired; ask your administrator for a "
            "new one.",
            code="sign_in_link_expired",
        )
    link.used_at = at
    await session.flush()
    return user


async def invite(
    session: AsyncSession, project_id: str, email: str, role: str, *, now: datetime | None = None
) -> str:
    """Create a user without a password and return their one-time sign-in link token."""
    user = await create_user(session, project_id, email, role)
    return await sign_in_link(session, user, now=now)


async def find_user(session: AsyncSession, email: str) -> User:
    """The user with this e-mail address, or a 404."""
    user = await user_by_email(session, email.strip().lower())
    if user is None:
        raise NotFound(f"There is no user {email.strip()!r}.", code="user_not_found")
    return user


async def list_users(session: AsyncSession, project_id: str) -> list[User]:
    """Every user of a project, oldest first."""
    return await users_of(session, project_id)


async def find_project(session: AsyncSession, name_or_id: str) -> Project:
    """The project with this id, else the one project with this name (404 / 409 otherwise)."""
    wanted = name_or_id.strip()
    by_id = await session.get(Project, wanted)
    if by_id is not None:
        return by_id
    named = await projects_named(session, wanted)
    if not named:
        raise NotFound(
            f"There is no project named {wanted!r}; 'herald projects list' shows them.",
            code="project_not_found",
        )
    if len(named) > 1:
        raise Conflict(
            f"{len(named)} projects are named {wanted!r}; give the project's id instead.",
            code="ambiguous_project_name",
        )
    return named[0]
