"""Account: the user's language, password and signed-in browsers ("sign out everywhere")."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from herald.cabinet import i18n
from herald.cabinet.readers import Reader, allowed, herald_of, posted
from herald.cabinet.rendering import N_, page, translate
from herald.cabinet.security import SESSION_COOKIE, clear_cookie, form_text
from herald.errors import HeraldError, Unauthorized
from herald.services import users, web_sessions
from herald.store.users import User

router = APIRouter(include_in_schema=False)

# Every signed-in user may manage their own account: "view" is the least any role has.
Viewing = Annotated[Reader, Depends(allowed("view"))]
Signed = Annotated[Reader, Depends(posted("view"))]


async def _account(
    request: Request, who: Reader, *, status_code: int = 200, **context: object
) -> HTMLResponse:
    herald = herald_of(request)
    assert who.user is not None
    async with herald.sessions() as session:
        browsers = await web_sessions.list_for(session, who.user.id, now=herald.clock.now())
    return page(
        request,
        who,
        "account.html",
        status_code=status_code,
        browsers=browsers,
        **context,
    )


@router.get("/account", response_class=HTMLResponse)
async def account_page(request: Request, who: Viewing) -> HTMLResponse:
    """The user's language, password and browsers."""
    return await _account(request, who)


@router.post("/account/language")
async def set_language(request: Request, who: Signed) -> Response:
    """Keep a language with the user ("" follows the browser)."""
    language = form_text((await request.form()).get("language"))
    herald = herald_of(request)
    async with herald.sessions() as session, session.begin():
        user = await session.get(User, who.user_id)
        if user is not None:
            await users.set_language(
                session, user, language if language in i18n.LANGUAGES else None
            )
    return RedirectResponse("/account", status_code=303)


@router.get("/account/password", response_class=HTMLResponse)
async def password_form(request: Request, who: Viewing) -> HTMLResponse:
    """The password form (after a sign-in link: the first password)."""
    return page(request, who, "password.html", first=who.user_password_unset)


@router.post("/account/password")
async def change_password(request: Request, who: Signed) -> Response:
    """A new password; the current one is asked for when there is one."""
    form = await request.form()
    current = form_text(form.get("current"))
    new, again = form_text(form.get("password")), form_text(form.get("again"))
    herald = herald_of(request)
    error = None
    if new != again:
        error = N_("The two new passwords differ; type the same one twice.")
    else:
        try:
            async with herald.sessions() as session, session.begin():
                user = await session.get(User, who.user_id)
                assert user is not None
                if user.password_hash is not None:
                    await users.authenticate(session, user.email, current)
                await users.set_password(session, user, new)
        except Unauthorized:
            error = N_("The current password is wrong.")
        except HeraldError as e:
            error = _PASSWORD_PROBLEMS.get(e.code, N_("This password cannot be used."))
    if error is not None:
        message = translate(who.language, error, length=str(users.MIN_PASSWORD_LENGTH))
        return page(
            request,
            who,
            "password.html",
            status_code=422,
            error=message,
            first=who.user_password_unset,
        )
    return RedirectResponse("/account?saved=password", status_code=303)


_PASSWORD_PROBLEMS = {
    "password_too_short": N_("A password must be at least %(length)s characters long."),
    "password_too_long": N_("This password is too long."),
}


@router.post("/account/sign-out-everywhere")
async def sign_out_everywhere(request: Request, who: Signed) -> Response:
    """End every session of the user, this browser's too (and TWIN IAM tokens)."""
    herald = herald_of(request)
    async with herald.sessions() as session, session.begin():
        await web_sessions.end_all(session, who.user_id, now=herald.clock.now())
    response = RedirectResponse("/sign-in", status_code=303)
    clear_cookie(response, request, herald.settings, SESSION_COOKIE)
    return response
