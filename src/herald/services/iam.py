"""TWIN's IAM: sign in for a JWT and a refresh token, refresh them, check a token.

TWIN's SDK signs in with ``auth/login`` and sends the JWT as a bearer; when a call answers
401 "Token is expired." it refreshes with ``auth/refresh`` and repeats the call. It decides
that a token is expired from the token's own ``exp`` only, so Herald must not call a token
expired before its ``exp`` has passed by the client's clock (twin-api.md §1): Herald accepts
a token up to ``CLOCK_SKEW`` past its ``exp``.

Each sign-in is an :class:`IamSession`; its access tokens name it (``sid``), so revoking it
(sign-out everywhere, a disabled user, a reused refresh token) stops them at once. Refresh
tokens rotate: each works once. A refresh token presented a second time means two parties
hold it, so the whole session is revoked.
"""

from __future__ import annotations

import base64
import secrets
import weakref
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald.errors import Unauthorized, ValidationFailed
from herald.services.users import authenticate, token_hash
from herald.services.vault import Vault
from herald.store.users import (
    IamSession,
    RefreshToken,
    SigningKey,
    User,
    refresh_token_by_hash,
    signing_key,
    spend_refresh_token,
)

DEFAULT_TTL = 3600
MAX_TTL = 30 * 24 * 3600
# How far past its exp a token is still accepted: the client's clock may be behind ours.
CLOCK_SKEW = 30
REFRESH_TTL = timedelta(days=30)
EXPIRED = "Token is expired."  # exactly what TWIN's SDK compares with
ALGORITHM = "HS256"
KEY_PURPOSE = "iam"

# The signing key per vault, read (or made) once per process.
_KEYS: weakref.WeakKeyDictionary[Vault, bytes] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, slots=True)
class TokenPair:
    token: str
    refresh_token: str


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a valid token speaks for."""

    user_id: str
    project_id: str
    role: str


def checked_ttl(ttl: object) -> int:
    """The token lifetime asked for, in seconds (None: the default), or a 422."""
    if ttl is None:
        return DEFAULT_TTL
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 1 <= ttl <= MAX_TTL:
        raise ValidationFailed(
            f"'ttl' must be a whole number of seconds from 1 to {MAX_TTL} (30 days); "
            f"leave it out for {DEFAULT_TTL}.",
            code="invalid_ttl",
        )
    return ttl


async def _key(session: AsyncSession, vault: Vault) -> bytes:
    """The installation's JWT signing key: 256 random bits kept sealed by the vault, made
    by the first process that needs it."""
    cached = _KEYS.get(vault)
    if cached is not None:
        return cached
    stored = await signing_key(session, KEY_PURPOSE)
    if stored is None:
        fresh = base64.b64encode(secrets.token_bytes(32)).decode()
        try:
            async with session.begin_nested():
                session.add(SigningKey(purpose=KEY_PURPOSE, key_encrypted=vault.encrypt(fresh)))
        except IntegrityError:
            pass  # another process made it first: use theirs
        stored = await signing_key(session, KEY_PURPOSE)
        assert stored is not None
    key = base64.b64decode(vault.decrypt(stored.key_encrypted))
    _KEYS[vault] = key
    return key


async def _issue(
    session: AsyncSession, vault: Vault, user: User, iam: IamSession, ttl: int, now: datetime
) -> TokenPair:
    refresh = secrets.token_urlsafe(32)
    session.add(
        RefreshToken(
            iam_session_id=iam.id,
            token_hash=token_hash(refresh),
            created_at=now,
            expires_at=now + REFRESH_TTL,
        )
    )
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "sub": user.id,
        "sid": iam.id,
        "pid": user.project_id,
        "iat": issued,
        "exp": issued + ttl,
    }
    token = jwt.encode(claims, await _key(session, vault), algorithm=ALGORITHM)
    await session.flush()
    return TokenPair(token, refresh)


async def login(
    session: AsyncSession,
    vault: Vault,
    email: str,
    password: str,
    *,
    ttl: int,
    now: datetime,
) -> TokenPair:
    """``auth/login``: a JWT valid for ``ttl`` seconds and a refresh token."""
    user = await authenticate(session, email, password)
    iam = IamSession(user_id=user.id, created_at=now)
    session.add(iam)
    await session.flush()
    return await _issue(session, vault, user, iam, ttl, now)


_REFRESH_REFUSED = "The refresh token is not valid (used, expired or revoked); sign in again."


async def refresh(
    session: AsyncSession, vault: Vault, refresh_token: str, *, ttl: int, now: datetime
) -> TokenPair:
    """``auth/refresh``: spend a refresh token for a new pair; the old token stops working."""
    found = await refresh_token_by_hash(session, token_hash(refresh_token))
    if found is None:
        raise Unauthorized(_REFRESH_REFUSED, code="invalid_refresh_token")
    iam = await session.get(IamSession, found.iam_session_id)
    user = await session.get(User, iam.user_id) if iam else None
    if iam is None or user is None or iam.revoked_at is not None or user.disabled_at:
        raise Unauthorized(_REFRESH_REFUSED, code="invalid_refresh_token")
    if found.expires_at <= now:
        raise Unauthorized(_REFRESH_REFUSED, code="invalid_refresh_token")
    if not await spend_refresh_token(session, found.id, now):
        # Used before: someone else holds a copy. End the whole chain (RFC 9700 §4.14.2).
        iam.revoked_at = now
        await session.flush()
        raise Unauthorized(_REFRESH_REFUSED, code="invalid_refresh_token")
    iam.refreshed_at = now
    return await _issue(session, vault, user, iam, ttl, now)


async def caller(session: AsyncSession, vault: Vault, token: str, *, now: datetime) -> Caller:
    """Who a bearer JWT speaks for; 401 "Token is expired." only once ``exp`` (plus the
    clock skew) has passed, another 401 for any other bad token."""
    invalid = Unauthorized(
        "The token is not valid; sign in again with auth/login.", code="invalid_token"
    )
    try:
        claims = jwt.decode(
            token,
            await _key(session, vault),
            algorithms=[ALGORITHM],
            # exp is compared below with Herald's clock (tests move it), not PyJWT's.
            options={"require": ["exp", "sub", "sid"], "verify_exp": False, "verify_iat": False},
        )
    except jwt.InvalidTokenError as e:
        raise invalid from e
    expires = claims["exp"]
    if isinstance(expires, bool) or not isinstance(expires, int | float):
        raise invalid
    # Checked after the signature: only a token Herald made can be "expired".
    if expires + CLOCK_SKEW <= now.timestamp():
        raise Unauthorized(EXPIRED, code="token_expired")
    iam = await session.get(IamSession, str(claims["sid"]))
    user = await session.get(User, str(claims["sub"]))
    if iam is None or user is None or iam.user_id != user.id:
        raise invalid
    if iam.revoked_at is not None or user.disabled_at is not None:
        raise Unauthorized(
            "The token was revoked (signed out or user disabled); sign in again.",
            code="token_revoked",
        )
    return Caller(user.id, user.project_id, user.role)
