"""Who reads a cabinet page: their language, zone, CSRF token and (once signed in) user.

The dependencies a page route takes:

- ``AnyReader``: anybody, signed in or not (the sign-in page);
- ``SignedIn``: a signed-in user, else a redirect to ``/sign-in``;
- ``allowed(action)``: a signed-in user whose role may do ``action``
  (``services.users.can``), else 403;
- ``posted(action)``: the same, for a POST, with its CSRF token checked first (403 without).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, Request

from herald.bootstrap import Herald
from herald.cabinet import i18n
from herald.cabinet.security import (
    CSRF_COOKIE,
    LANGUAGE_COOKIE,
    SESSION_COOKIE,
    csrf_token,
    csrf_valid,
    new_csrf_basis,
    posted_csrf,
)
from herald.domain.timezones import InvalidTimeZone, load_zone
from herald.services import users, web_sessions
from herald.store.projects import Project
from herald.store.users import User, WebSession


class SignInRequired(Exception):
    """The page needs a signed-in user; the browser is sent to ``/sign-in``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class NotAllowed(Exception):
    """The user's role may not do this, or a POST came without its CSRF token: 403."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Reader:
    """The person a page is rendered for."""

    language: str
    zone: ZoneInfo
    csrf: str
    # Set when the browser has no herald_csrf cookie yet: the page's response sets it.
    new_csrf_basis: str | None = None
    user: User | None = None
    web_session: WebSession | None = None
    session_token: str | None = None

    @property
    def project_id(self) -> str:
        """The signed-in user's project (only asked of a signed-in reader)."""
        assert self.user is not None
        return self.user.project_id

    @property
    def user_id(self) -> str:
        """The signed-in user's id."""
        assert self.user is not None
        return self.user.id

    @property
    def user_password_unset(self) -> bool:
        """Whether the signed-in user has no password yet (signed in by a link)."""
        return self.user is not None and self.user.password_hash is None

    def can(self, action: str) -> bool:
        """Whether the reader's role allows ``action``; nothing is allowed signed out."""
        return self.user is not None and users.can(self.user.role, action)


def herald_of(request: Request) -> Herald:
    """The Herald graph serving this request."""
    herald: Herald = request.app.state.herald
    return herald


def _zone(*names: str | None) -> ZoneInfo:
    for name in names:
        if name:
            try:
                return load_zone(name)
            except InvalidTimeZone:
                continue  # a zone this system no longer knows: the next one
    return ZoneInfo("UTC")


async def _signed_in(herald: Herald, token: str) -> tuple[User, WebSession, Project] | None:
    async with herald.sessions() as session, session.begin():
        found = await web_sessions.current(session, token, now=herald.clock.now())
        if found is None:
            return None
        project = await session.get(Project, found[0].project_id)
        if project is None:
            return None
        return found[0], found[1], project


async def reader(request: Request) -> Reader:
    """Whoever opened the page (signed in or not), cached for the request."""
    cached: Reader | None = getattr(request.state, "cabinet_reader", None)
    if cached is not None:
        return cached
    herald = herald_of(request)
    settings = herald.settings
    token = request.cookies.get(SESSION_COOKIE)
    found = await _signed_in(herald, token) if token else None
    accept = request.headers.get("accept-language")
    cookie_language = request.cookies.get(LANGUAGE_COOKIE)
    if found is not None:
        user, web_session, project = found
        assert token is not None
        result = Reader(
            language=i18n.choose(user.language, cookie_language, accept),
            zone=_zone(user.time_zone, project.default_timezone, settings.default_timezone),
            csrf=csrf_token(token),
            user=user,
            web_session=web_session,
            session_token=token,
        )
    else:
        basis = request.cookies.get(CSRF_COOKIE)
        fresh = None if basis else new_csrf_basis()
        result = Reader(
            language=i18n.choose(None, cookie_language, accept),
            zone=_zone(settings.default_timezone),
            csrf=csrf_token(basis or fresh or ""),
            new_csrf_basis=fresh,
        )
    request.state.cabinet_reader = result
    return result


AnyReader = Annotated[Reader, Depends(reader)]


async def signed_in(request: Request, who: AnyReader) -> Reader:
    """A signed-in reader; anyone else is sent to sign in, and brought back after."""
    if who.user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path if request.method == "GET" else "/messages")
    return who


SignedIn = Annotated[Reader, Depends(signed_in)]


async def check_csrf(request: Request, who: Reader) -> None:
    """Refuse (403) a POST whose CSRF token is missing or not this browser's."""
    basis = who.session_token or request.cookies.get(CSRF_COOKIE)
    if not csrf_valid(basis, await posted_csrf(request)):
        raise NotAllowed("csrf")


def allowed(action: str) -> Callable[[Request, Reader], Awaitable[Reader]]:
    """A dependency: a signed-in reader whose role allows ``action``, else 403."""

    async def dependency(request: Request, who: SignedIn) -> Reader:
        if not who.can(action):
            raise NotAllowed("role")
        return who

    return dependency


def posted(action: str) -> Callable[[Request, Reader], Awaitable[Reader]]:
    """A dependency for a POST: its CSRF token first, then the role's ``action``."""

    async def dependency(request: Request, who: SignedIn) -> Reader:
        await check_csrf(request, who)
        if not who.can(action):
            raise NotAllowed("role")
        return who

    return dependency
