"""Jinja2 pages in the reader's language, with the cabinet's headers and cookies.

Templates are autoescaped; their strings go through ``_()`` (``gettext``) and ``ngettext``,
which read the catalog of the page being rendered. Strings made in Python are marked with
:func:`N_` and translated with :func:`translate` where they are shown.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from babel.support import Translations
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from herald.cabinet import i18n
from herald.cabinet.readers import Reader, herald_of
from herald.cabinet.security import (
    CSRF_COOKIE,
    CSRF_FIELD,
    HEADERS,
    set_cookie,
)
from herald.domain.statuses import Status, is_final

_catalog: ContextVar[Translations] = ContextVar("cabinet_catalog")


def N_(message: str) -> str:  # gettext's name for "mark now, translate where shown"
    """Mark ``message`` for the catalogs; it is translated where it is shown."""
    return message


def translate(language: str, message: str, **values: Any) -> str:
    """``message`` in ``language``, with ``%(name)s`` filled from ``values``."""
    text = i18n.translations(language).gettext(message)
    return text % values if values else text


def _gettext(message: str) -> str:
    return _catalog.get().gettext(message)


def _ngettext(singular: str, plural: str, n: int) -> str:
    return _catalog.get().ngettext(singular, plural, n)


ENV = Environment(
    loader=PackageLoader("herald.cabinet", "templates"),
    autoescape=select_autoescape(["html"], default_for_string=True),
    extensions=["jinja2.ext.i18n"],
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.install_gettext_callables(_gettext, _ngettext, newstyle=True)  # type: ignore[attr-defined]

STATUS_LABELS: dict[str, str] = {
    Status.QUEUED: N_("Queued"),
    Status.SCHEDULED: N_("Scheduled"),
    Status.SENDING: N_("Sending"),
    Status.SENT: N_("Sent"),
    Status.DELIVERED: N_("Delivered"),
    Status.READ: N_("Read"),
    Status.UNDELIVERED: N_("Undelivered"),
    Status.FAILED: N_("Failed"),
    Status.CANCELLED: N_("Cancelled"),
    Status.EXPIRED: N_("Expired"),
    Status.PENDING: N_("Waiting for its turn"),
    Status.SKIPPED: N_("Not needed"),
}

CHANNEL_LABELS: dict[str, str] = {
    "sms": N_("SMS"),
    "email": N_("E-mail"),
    "whatsapp": N_("WhatsApp"),
    "telegram": N_("Telegram"),
    "viber": N_("Viber"),
    "vk": N_("VK"),
    "ok": N_("OK"),
    "push": N_("Push"),
    "chat": N_("Web chat"),
    "webchat": N_("Web chat"),
}


def status_label(language: str, status: str) -> str:
    """A status as the reader's language names it."""
    return translate(language, STATUS_LABELS.get(status, status))


def channel_label(language: str, channel: str | None) -> str:
    """A channel as the reader's language names it."""
    if not channel:
        return "—"
    return translate(language, CHANNEL_LABELS.get(channel, channel))


def final(status: str) -> bool:
    """Whether a message in ``status`` will change no more (its row needs no live updates)."""
    try:
        return is_final(Status(status))
    except ValueError:
        return True


@dataclass(frozen=True, slots=True)
class NavItem:
    """One entry of the navigation: shown when the route exists and the role allows it."""

    path: str
    label: str
    action: str


# The cabinet's sections, in the order the navigation shows them.
NAV: tuple[NavItem, ...] = (
    NavItem("/messages", N_("Messages"), "view"),
    NavItem("/send", N_("Send"), "send"),
    NavItem("/templates", N_("Templates"), "templates"),
    NavItem("/tasks", N_("Send tasks"), "view"),  # viewers see tasks, without the buttons
    NavItem("/account", N_("Account"), "view"),
)


def _routed_paths(request: Request) -> set[str]:
    paths: set[str] | None = getattr(request.app.state, "cabinet_paths", None)
    if paths is None:
        paths = {getattr(r, "path", "") for r in request.app.router.routes}
        request.app.state.cabinet_paths = paths
    return paths


def navigation(request: Request, who: Reader) -> list[dict[str, Any]]:
    """The sections this reader may open, the current one marked."""
    if who.user is None:
        return []
    routed = _routed_paths(request)
    here = request.url.path
    return [
        {
            "path": item.path,
            "label": translate(who.language, item.label),
            "current": here == item.path or here.startswith(item.path + "/"),
        }
        for item in NAV
        if item.path in routed and who.can(item.action)
    ]


def safe_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) address, else None: a provider's "help" link must not
    become a ``javascript:`` link on our page."""
    if not url:
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def _helpers(who: Reader) -> dict[str, Callable[..., Any]]:
    def when(value: datetime | str | None, short: bool = False) -> str:
        return i18n.when(value, who.language, who.zone, short=short)

    return {
        "when": when,
        "number": lambda value: i18n.number(value, who.language),
        "status_label": lambda status: status_label(who.language, status),
        "channel_label": lambda channel: channel_label(who.language, channel),
        "final": final,
        "safe_url": safe_url,
    }


def render(request: Request, who: Reader, template: str, **context: Any) -> str:
    """A template rendered in the reader's language (pages and htmx fragments alike)."""
    token = _catalog.set(i18n.translations(who.language))
    try:
        return ENV.get_template(template).render(
            reader=who,
            request=request,
            csrf_field=CSRF_FIELD,
            nav=navigation(request, who),
            languages=i18n.LANGUAGE_NAMES,
            path=request.url.path,
            **_helpers(who),
            **context,
        )
    finally:
        _catalog.reset(token)


def page(
    request: Request, who: Reader, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """A whole response: the rendered template, the cabinet's headers, its CSRF cookie."""
    response = HTMLResponse(
        render(request, who, template, **context), status_code=status_code, headers=HEADERS
    )
    if who.new_csrf_basis is not None:
        set_cookie(
            response,
            request,
            herald_of(request).settings,
            CSRF_COOKIE,
            who.new_csrf_basis,
            samesite="strict",
        )
    return response
