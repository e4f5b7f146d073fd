"""Messages (TWIN's "Message view"): the filtered list, live statuses, one message's timeline,
and Cancel. Every read and the cancel are ``services.messages.reading``'s, as the API's are."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from herald.cabinet.readers import Reader, allowed, herald_of, posted
from herald.cabinet.rendering import N_, final, page, render, status_label, translate
from herald.cabinet.security import HEADERS
from herald.cabinet.timeline import timeline
from herald.domain.statuses import Status
from herald.domain.templates import CHANNEL_FIELDS
from herald.errors import HeraldError, NotFound
from herald.services.messages import callback_log
from herald.services.messages import reading as service
from herald.services.templates.resource import list_templates
from herald.store.messages import MessageFilter

router = APIRouter(include_in_schema=False)

Viewing = Annotated[Reader, Depends(allowed("view"))]
Cancelling = Annotated[Reader, Depends(posted("cancel"))]

PAGE_SIZE = 50
# The most rows one live-status stream follows (a page shows PAGE_SIZE).
MAX_WATCHED = 200
# How often a stream reads the statuses of the rows it follows.
POLL_SECONDS = 1.0
# A stream ends after this long and the browser opens a new one (EventSource reconnects by
# itself): a server stopping waits for no stream longer than this.
STREAM_SECONDS = 60.0
# Templates the filter offers (the newest first).
TEMPLATE_CHOICES = 200


@dataclass
class Filters:
    """The list's filters as the form sent them (kept as text to fill the form back)."""

    status: str = ""
    channel: str = ""
    to: str = ""
    from_: str = ""
    until: str = ""
    task: str = ""
    group: str = ""
    template: str = ""

    def query(self, **extra: str) -> str:
        """The query string that asks for this list again (``extra``: the cursor)."""
        values = {
            "status": self.status,
            "channel": self.channel,
            "to": self.to,
            "from": self.from_,
            "until": self.until,
            "task": self.task,
            "group": self.group,
            "template": self.template,
            **extra,
        }
        return urlencode({k: v for k, v in values.items() if v})

    @property
    def any(self) -> bool:
        """Whether any filter is set."""
        return any(getattr(self, name) for name in self.__dataclass_fields__)


class BadFilter(Exception):
    """A filter the list cannot use; ``message`` is marked for the catalogs."""


def _local_time(value: str, who: Reader) -> datetime | None:
    if not value:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError as e:
        raise BadFilter(N_("Give the time as a date and a time, e.g. 2026-12-07 14:05.")) from e
    if at.tzinfo is None:
        at = at.replace(tzinfo=who.zone)  # what the reader typed is their own zone's time
    return at.astimezone(UTC)


def message_filter(f: Filters, who: Reader) -> MessageFilter:
    """The store's filter for the form's fields (phone or e-mail by the '@')."""
    to = f.to.strip()
    return MessageFilter(
        statuses=[f.status] if f.status else [],
        channel=f.channel or None,
        phone=to if to and "@" not in to else None,
        email=to if "@" in to else None,
        task_ids=[f.task.strip()] if f.task.strip() else [],
        group_ids=[f.group.strip()] if f.group.strip() else [],
        template_ids=[f.template] if f.template else [],
        created_from=_local_time(f.from_, who),
        created_to=_local_time(f.until, who),
    )


def destination(item: dict[str, Any]) -> str:
    """Who a message is for, as one line: the phone, else the address, else the chat."""
    dest = item.get("destination") or {}
    for key in ("phone", "email", "address", "chatId", "messengerUserId"):
        value = dest.get(key)
        if isinstance(value, str) and value:
            return value
    return next((v for v in dest.values() if isinstance(v, str) and v), "—")


async def _templates(request: Request, who: Reader) -> list[dict[str, Any]]:
    async with herald_of(request).sessions() as session:
        listed = await list_templates(session, who.project_id, limit=TEMPLATE_CHOICES)
    return [{"id": t["id"], "name": t["name"]} for t in listed["items"]]


def filters(
    status: str = "",
    channel: str = "",
    to: str = "",
    from_: Annotated[str, Query(alias="from")] = "",
    until: str = "",
    task: str = "",
    group: str = "",
    template: str = "",
) -> Filters:
    """The list's filters from the query string (the page's and the live stream's)."""
    return Filters(status, channel, to, from_, until, task, group, template)


FiltersDep = Annotated[Filters, Depends(filters)]


@router.get("/messages", response_class=HTMLResponse)
async def messages_page(
    request: Request, who: Viewing, f: FiltersDep, cursor: str = ""
) -> HTMLResponse:
    """The list, newest first, a page at a time; an htmx request gets only the results."""
    items: list[dict[str, Any]] = []
    next_cursor = None
    problem = None
    try:
        query = message_filter(f, who)
        async with herald_of(request).sessions() as session:
            listed = await service.list_messages(
                session,
                who.project_id,
                query,
                limit=PAGE_SIZE,
                cursor=cursor or None,
                with_count=False,
            )
        items, next_cursor = listed["items"], listed["nextCursor"]
    except BadFilter as e:
        problem = translate(who.language, str(e))
    except HeraldError as e:
        # The service's sentence is English; say in the reader's language what to fix.
        problem = translate(who.language, _PROBLEMS.get(e.code, N_("This filter cannot be used.")))
    context: dict[str, Any] = {
        "filters": f,
        "items": items,
        "next_cursor": next_cursor,
        "cursor": cursor,
        "problem": problem,
        "destination": destination,
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "results":
        return HTMLResponse(render(request, who, "messages/_results.html", **context))
    return page(
        request,
        who,
        "messages/list.html",
        statuses=[s.value for s in Status],
        channels=list(CHANNEL_FIELDS),
        templates=await _templates(request, who),
        **context,
    )


_PROBLEMS = {
    "invalid_phone": N_("The phone number is not valid; write it with its country code."),
    "invalid_status": N_("Pick a status from the list."),
    "invalid_cursor": N_("That page no longer exists; start again from the newest."),
}


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"


@dataclass
class Watch:
    """What one live stream follows: rows on screen, and (on the first page) whether a newer
    message than the top row has come in under the same filters."""

    ids: list[str]
    newer_than: str | None
    query: MessageFilter | None


async def _read(request: Request, who: Reader, watch: Watch) -> tuple[dict[str, str], bool]:
    """The statuses of the watched rows, and whether a newer message matches."""
    statuses: dict[str, str] = {}
    newer = False
    sessions = herald_of(request).sessions
    # A session each: a list read takes its own snapshot (store.db.read_snapshot).
    if watch.ids:
        async with sessions() as session:
            listed = await service.list_messages(
                session,
                who.project_id,
                MessageFilter(ids=watch.ids),
                limit=len(watch.ids),
                with_count=False,
            )
        statuses = {item["id"]: item["status"] for item in listed["items"]}
    if watch.query is not None:
        async with sessions() as session:
            top = await service.list_messages(
                session, who.project_id, watch.query, limit=1, with_count=False
            )
        newer = bool(top["items"]) and top["items"][0]["id"] != watch.newer_than
    return statuses, newer


async def _changes(request: Request, who: Reader, watch: Watch) -> AsyncIterator[str]:
    """Server-Sent Events: each row's status when it differs from what the browser shows;
    ``new`` when the list has a newer message (the browser then reloads the list)."""
    yield "retry: 2000\n\n"
    shown: dict[str, str] = {}
    loop = asyncio.get_running_loop()
    ends = loop.time() + STREAM_SECONDS
    while loop.time() < ends and not await request.is_disconnected():
        try:
            current, newer = await _read(request, who, watch)
        except HeraldError:
            return  # a filter the list itself refused: the page already says why
        for message_id, status in current.items():
            if shown.get(message_id) != status:
                shown[message_id] = status
                yield _event(
                    "status",
                    {
                        "id": message_id,
                        "status": status,
                        "label": status_label(who.language, status),
                        "final": final(status),
                    },
                )
        if newer:
            yield _event("new", {})
            return
        if watch.query is None and all(final(status) for status in current.values()):
            yield _event("done", {})
            return
        await asyncio.sleep(POLL_SECONDS)


@router.get("/messages/events")
async def status_events(
    request: Request,
    who: Viewing,
    f: FiltersDep,
    id: Annotated[list[str] | None, Query()] = None,
    live: bool = False,
    newest: str = "",
) -> StreamingResponse:
    """The statuses of the rows on screen, live (Server-Sent Events; see cabinet.js).
    ``live``: the first page, also told when a newer message than ``newest`` matches."""
    ids = list(dict.fromkeys(id or []))[:MAX_WATCHED]
    try:
        query = message_filter(f, who) if live else None
    except BadFilter:
        query = None
    watch = Watch(ids=ids, newer_than=newest or None, query=query)
    headers = {**HEADERS, "X-Accel-Buffering": "no"}  # a proxy must not hold events back
    if not ids and query is None:
        return StreamingResponse(iter(()), media_type="text/event-stream", headers=headers)
    return StreamingResponse(
        _changes(request, who, watch), media_type="text/event-stream", headers=headers
    )


async def _message(request: Request, who: Reader, message_id: str) -> dict[str, Any]:
    async with herald_of(request).sessions() as session:
        message = await service.get_message(session, who.project_id, message_id)
        callbacks = await callback_log.callback_log(session, who.project_id, message_id)
    message["timeline"] = timeline(message, callbacks)
    return message


@router.get("/messages/{message_id}", response_class=HTMLResponse)
async def message_page(request: Request, who: Viewing, message_id: str) -> HTMLResponse:
    """One message: its channels in cascade order and its timeline; Cancel while it can be."""
    try:
        message = await _message(request, who, message_id)
    except NotFound:
        return page(request, who, "error.html", status_code=404, reason="message_not_found")
    fragment = request.headers.get("hx-request") and request.headers.get("hx-target") == "life"
    if fragment:
        return HTMLResponse(render(request, who, "messages/_life.html", message=message))
    return page(request, who, "messages/detail.html", message=message)


@router.post("/messages/{message_id}/cancel")
async def cancel(request: Request, who: Cancelling, message_id: str) -> Response:
    """Cancel the message (what is not yet with a provider), then show it again."""
    herald = herald_of(request)
    try:
        async with herald.sessions() as session, session.begin():
            await service.cancel_message(
                session, who.project_id, message_id, now=herald.clock.now()
            )
    except NotFound:
        return page(request, who, "error.html", status_code=404, reason="message_not_found")
    except HeraldError as e:
        if e.code != "not_cancellable":
            raise
        message = await _message(request, who, message_id)
        notice = translate(who.language, N_("The message can no longer be cancelled."))
        return page(
            request, who, "messages/detail.html", status_code=409, message=message, notice=notice
        )
    return RedirectResponse(f"/messages/{message_id}", status_code=303)
