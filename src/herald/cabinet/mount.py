"""Puts the cabinet into Herald's app: its pages, its static files, its error pages."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from herald.cabinet import account, messages, send, signing_in, tasks, template_pages
from herald.cabinet.readers import NotAllowed, SignInRequired, reader
from herald.cabinet.rendering import page


async def _to_sign_in(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    target = "/sign-in?" + urlencode({"next": exc.next_path})
    if request.headers.get("hx-request"):
        # htmx would swap the sign-in page into the part it asked for: the whole page goes.
        return Response(status_code=200, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


async def _forbidden(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NotAllowed)
    return page(request, await reader(request), "error.html", status_code=403, reason=exc.reason)


# Each page's router (a page added to the cabinet adds its module here).
PAGES = (signing_in, messages, account, tasks, send, template_pages)


def install(app: FastAPI) -> None:
    """Route the cabinet's pages (``/``, ``/messages``, …) and ``/static/`` in ``app``."""
    app.add_exception_handler(SignInRequired, _to_sign_in)
    app.add_exception_handler(NotAllowed, _forbidden)
    for module in PAGES:
        app.include_router(module.router)
    app.mount(
        "/static", StaticFiles(packages=[("herald.cabinet", "static")]), name="cabinet-static"
    )
