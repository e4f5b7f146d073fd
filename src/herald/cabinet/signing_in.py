"""Signing in and out: ``/`` and ``/sign-in``, the one-time links the CLI prints,
``/sign-out``, and the language switch every page carries."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from herald.api.deps import sign_in_failures
from herald.api.docs_pages import has_readme
from herald.api.throttle import address_key
from herald.cabinet import i18n
from herald.cabinet.readers import AnyReader, Reader, check_csrf, herald_of, signed_in
from herald.cabinet.rendering import N_, page, translate
from herald.cabinet.security import (
    LANGUAGE_COOKIE,
    LANGUAGE_COOKIE_AGE,
    SESSION_COOKIE,
    clear_cookie,
    form_text,
    local_path,
    set_cookie,
)
from herald.errors import HeraldError, Unauthorized
from herald.services import users, web_sessions
from herald.store.users import User

router = APIRouter(include_in_schema=False)


async def _start(request: Request, user: User, target: str) -> Response:
    """Sign ``user`` in on this browser and send it to ``target``."""
    herald = herald_of(request)
    async with herald.sessions() as session, session.begin():
        token = await web_sessions.start(
            session,
            user,
            user_agent=request.headers.get("user-agent"),
            ip=request.client.host if request.client else None,
            now=herald.clock.now(),
        )
    response = RedirectResponse(target, status_code=303)
    set_cookie(
        response,
        request,
        herald.settings,
        SESSION_COOKIE,
        token,
        max_age=int(web_sessions.SESSION_TTL.total_seconds()),
    )
    return response


def _sign_in_page(
    request: Request, who: Reader, *, next_path: str, status_code: int = 200, **context: object
) -> HTMLResponse:
    return page(
        request,
        who,
        "sign_in.html",
        status_code=status_code,
        next_path=local_path(next_path),
        has_readme=has_readme(),
        **context,
    )


@router.get("/", response_class=HTMLResponse)
async def home(request: Request, who: AnyReader) -> Response:
    """Messages for a signed-in user; the sign-in form (and the API's docs) for anyone else."""
    if who.user is not None:
        return RedirectResponse("/messages", status_code=303)
    return _sign_in_page(request, who, next_path="/messages")


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_form(request: Request, who: AnyReader, next: str = "/messages") -> Response:
    """The sign-in form (a signed-in user goes straight on)."""
    if who.user is not None:
        return RedirectResponse(local_path(next), status_code=303)
    return _sign_in_page(request, who, next_path=next)


@router.post("/sign-in")
async def sign_in(request: Request, who: AnyReader) -> Response:
    """Check the e-mail and password; failures are throttled per address."""
    await check_csrf(request, who)
    form = await request.form()
    email, password = form_text(form.get("email")), form_text(form.get("password"))
    target = local_path(form_text(form.get("next")))
    # The same brake as TWIN IAM's logins: one budget of failures per address.
    throttle = sign_in_failures(request.app)
    address = address_key(request.client.host if request.client else None)
    wait = throttle.take(address, time.monotonic())
    if wait is not None:
        error = translate(
            who.language,
            N_("Too many failed sign-ins from your address; try again in %(seconds)s seconds."),
            seconds=i18n.number(wait, who.language),
        )
        response = _sign_in_page(
            request, who, next_path=target, status_code=429, error=error, email=email
        )
        response.headers["Retry-After"] = str(wait)
        return response
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            user = await users.authenticate(session, email, password)
    except Unauthorized:
        error = translate(who.language, N_("The e-mail address or the password is wrong."))
        return _sign_in_page(
            request, who, next_path=target, status_code=401, error=error, email=email
        )
    throttle.give_back(address, time.monotonic())
    return await _start(request, user, target)


@router.get("/sign-in/link/{token}", response_class=HTMLResponse)
async def sign_in_link(request: Request, who: AnyReader, token: str) -> HTMLResponse:
    """A one-time link's page: a button spends it (a mail scanner's GET must not)."""
    return page(request, who, "sign_in_link.html", token=token)


@router.post("/sign-in/link/{token}")
async def redeem_link(request: Request, who: AnyReader, token: str) -> Response:
    """Spend the link: sign in, then ask for a password."""
    await check_csrf(request, who)
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            user = await users.redeem_sign_in_link(session, token, now=herald.clock.now())
    except HeraldError:
        return page(request, who, "error.html", status_code=410, reason="link_used")
    return await _start(request, user, "/account/password")


@router.post("/sign-out")
async def sign_out(request: Request, who: Annotated[Reader, Depends(signed_in)]) -> Response:
    """End this browser's session."""
    await check_csrf(request, who)
    herald = herald_of(request)
    if who.session_token:
        async with herald.sessions() as session, session.begin():
            await web_sessions.end(session, who.session_token, now=herald.clock.now())
    response = RedirectResponse("/sign-in", status_code=303)
    clear_cookie(response, request, herald.settings, SESSION_COOKIE)
    return response


@router.post("/language")
async def switch_language(request: Request, who: AnyReader) -> Response:
    """The switch in every page's header: a user's choice is kept with the user, anyone
    else's in a cookie."""
    await check_csrf(request, who)
    form = await request.form()
    language = form_text(form.get("language"))
    if language not in i18n.LANGUAGES:
        language = ""
    herald = herald_of(request)
    if who.user is not None:
        async with herald.sessions() as session, session.begin():
            user = await session.get(User, who.user.id)
            if user is not None:
                await users.set_language(session, user, language or None)
    response = RedirectResponse(local_path(form_text(form.get("next"))), status_code=303)
    if language:
        set_cookie(
            response,
            request,
            herald.settings,
            LANGUAGE_COOKIE,
            language,
            max_age=LANGUAGE_COOKIE_AGE,
        )
    else:
        clear_cookie(response, request, herald.settings, LANGUAGE_COOKIE)
    return response
