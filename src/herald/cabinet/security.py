"""Cookies, CSRF tokens and the headers every cabinet page carries.

A form's CSRF token is the SHA-256 of the browser's session token (or, before it signs in, of
a random ``herald_csrf`` cookie): another site can neither read the cookie nor compute the
hash, and knowing the token tells nothing about the session. It needs no server secret, so
every Herald process sharing a database accepts the others' forms.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from herald.config import Settings

SESSION_COOKIE = "herald_session"
# Before signing in: the basis of the sign-in form's CSRF token.
CSRF_COOKIE = "herald_csrf"
# The language a signed-out reader picked with the switch.
LANGUAGE_COOKIE = "herald_lang"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600

# Pages load Herald's own files only: no inline script, no other origin, never in a frame.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "Referrer-Policy": "same-origin",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def csrf_token(basis: str) -> str:
    """The CSRF token of forms whose browser holds ``basis`` (a session or CSRF cookie)."""
    return hashlib.sha256(b"herald-csrf\0" + basis.encode()).hexdigest()


def new_csrf_basis() -> str:
    """A fresh value for the ``herald_csrf`` cookie."""
    return secrets.token_urlsafe(32)


def csrf_valid(basis: str | None, token: str | None) -> bool:
    """Whether ``token`` is the CSRF token of ``basis`` (compared in constant time)."""
    if not basis or not token:
        return False
    return hmac.compare_digest(csrf_token(basis), token)


async def posted_csrf(request: Request) -> str | None:
    """The CSRF token a request carries: htmx's header, else the form's hidden field."""
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


def form_text(value: object) -> str:
    """A form field as text ("" when missing, or when a file came instead)."""
    return value if isinstance(value, str) else ""


def is_https(request: Request, settings: Settings) -> bool:
    """Whether the browser reaches Herald over https (directly or through a proxy)."""
    return request.url.scheme == "https" or settings.public_url.startswith("https://")


def set_cookie(
    response: Response,
    request: Request,
    settings: Settings,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    samesite: Literal["lax", "strict"] = "lax",
) -> None:
    """A cabinet cookie: HttpOnly, SameSite, and Secure whenever the page came over https."""
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite=samesite,
        secure=is_https(request, settings),
    )


def clear_cookie(response: Response, request: Request, settings: Settings, name: str) -> None:
    """Tell the browser to forget a cabinet cookie."""
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=is_https(request, settings)
    )


def local_path(target: str | None, default: str = "/messages") -> str:
    """``target`` when it is a path of this site, else ``default``: a ``next=`` parameter must
    not send a person who just signed in to another site."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target
