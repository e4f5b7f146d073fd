"""The web chat: the widget script, its WebSocket, visitors, and a hosted chat page.

The public routes (``/chat/...``) are called from visitors' browsers on other sites, so they
carry no API key: a visitor proves who they are with the token of :mod:`herald.domain.webchat`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from datetime import datetime, timedelta
from html import escape
from importlib import resources
from typing import Any

import httpx
from fastapi import APIRouter, Query, Response, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from pydantic import Field

from herald.api.deps import HeraldDep, ProjectId
from herald.api.responses import API, JSON_BODY, body, errors
from herald.bootstrap import Herald, bot_backend_client
from herald.domain import webchat as rules
from herald.errors import Forbidden, HeraldError, NotFound
from herald.schemas.messages import WireModel
from herald.schemas.out.bots import VisitorOut, VisitorSnippet
from herald.services.bots import webchat as service

log = logging.getLogger("herald.webchat")

router = APIRouter(tags=["web chat"])

_WIDGET = resources.files("herald.api").joinpath("static/webchat.js").read_text("utf-8")
# Browsers on any site may call the visitor routes; the token, not the origin, is the guard.
_CORS = {"Access-Control-Allow-Origin": "*"}


def script_url(public_url: str) -> str:
    """Where the widget script is served."""
    return f"{public_url.rstrip('/')}/chat/widget.js"


def snippet(public_url: str, bot_id: str) -> str:
    """The tag a site adds to its pages for an anonymous visitor chat."""
    return f'<script src="{script_url(public_url)}" data-bot="{escape(bot_id)}" async></script>'


class VisitorIn(WireModel):
    visitor_id: str | None = Field(default=None, alias="visitorId")


@router.get("/chat/widget.js", include_in_schema=False)
async def widget() -> Response:
    return Response(
        _WIDGET,
        media_type="application/javascript",
        headers={"Cache-Control": "public, max-age=300", **_CORS},
    )


@router.post(
    "/chat/{bot_id}/visitors",
    summary="A new anonymous web chat visitor",
    response_model=None,
    responses={**body(VisitorOut), **errors(400, 404)},
)
async def anonymous_visitor(bot_id: str, herald: HeraldDep) -> Response:
    async with herald.sessions() as session:
        credentials = await service.anonymous_visitor(
            session, herald.vault, bot_id, expires=_token_expiry(herald)
        )
    return Response(json.dumps(credentials), media_type="application/json", headers=_CORS)


@router.post(
    "/api/v1/bots/{bot_id}/webchat/visitors",
    summary="The token for one of your users to chat as themselves (or a new anonymous visitor)",
    response_model=VisitorSnippet,
    responses=errors(API, JSON_BODY, 404),
)
async def visitor_credentials(
    bot_id: str, herald: HeraldDep, project: ProjectId, payload: VisitorIn | None = None
) -> dict[str, Any]:
    async with herald.sessions() as session:
        credentials = await service.visitor_credentials(
            session,
            herald.vault,
            project,
            bot_id,
            payload.visitor_id if payload else None,
            expires=_token_expiry(herald),
        )
    url = herald.settings.public_url
    tag = (
        f'<script src="{script_url(url)}" data-bot="{escape(credentials["botId"])}" '
        f'data-visitor="{escape(credentials["visitorId"])}" '
        f'data-token="{credentials["token"]}" async></script>'
    )
    return {**credentials, "scriptUrl": script_url(url), "snippet": tag}


@router.get(
    "/chat/{bot_id}",
    response_class=HTMLResponse,
    summary="A hosted web chat page",
    responses=errors(400, 404),
)
async def chat_page(bot_id: str, herald: HeraldDep) -> HTMLResponse:
    async with herald.sessions() as session:
        # 404 for a wrong bot
        await service.anonymous_visitor(
            session, herald.vault, bot_id, expires=_token_expiry(herald)
        )
    return HTMLResponse(
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width, initial-scale=1">'
        '<title>Chat</title></head><body style="font-family:system-ui;margin:2rem">'
        "<p>Chat with us using the button in the corner.</p>"
        f'<script src="/chat/widget.js" data-bot="{escape(bot_id)}" data-open="true"></script>'
        "</body></html>"
    )


def _token_expiry(herald: Herald) -> datetime:
    return herald.clock.now() + timedelta(days=herald.settings.webchat_token_days)


class _Socket:
    """One visitor's WebSocket: frames from the hub and from the handler never interleave."""

    # A person types a few messages a minute; a script hammering a bot's backend does not.
    BURST, WINDOW = 10, 10.0

    def __init__(self, ws: WebSocket) -> None:
        self.ws, self._lock = ws, asyncio.Lock()
        self._texts: deque[float] = deque()

    def may_send(self, now: float) -> bool:
        """Whether one more text fits in the socket's allowance."""
        while self._texts and now - self._texts[0] > self.WINDOW:
            self._texts.popleft()
        if len(self._texts) >= self.BURST:
            return False
        self._texts.append(now)
        return True

    async def send(self, frame: dict[str, Any]) -> None:
        async with self._lock:
            await self.ws.send_text(json.dumps(frame))


@router.websocket("/chat/{bot_id}/ws")
async def chat_socket(
    ws: WebSocket,
    bot_id: str,
    visitor: str = "",
    token: str = "",
    after: int = Query(default=0, ge=0, le=2**63 - 1),  # a larger one fits no database
) -> None:
    herald: Herald = ws.app.state.herald
    try:
        async with herald.sessions() as session:
            who = await service.check_visitor(
                session, herald.vault, bot_id, visitor, token, now=herald.clock.now()
            )
    except HeraldError as e:
        # Accepted and then closed, so the widget sees why: 4403/4404 mean "stop retrying"
        # (a refused handshake reaches the page only as a bare 1006).
        await ws.accept()
        await ws.close(code=4403 if isinstance(e, Forbidden) else 4404, reason=e.message[:120])
        return
    await ws.accept()
    socket = _Socket(ws)
    await socket.send({"type": "ready", "visitorId": who.visitor_id})
    async with (
        herald.webchat.subscribe(who, after) as queue,
        bot_backend_client(herald.settings) as client,
    ):

        async def forward() -> None:
            while True:
                await socket.send(service.frame_of(await queue.get()))

        forwarding = asyncio.create_task(forward())
        try:
            while True:
                await _handle(herald, client, socket, who, await ws.receive_text())
        except WebSocketDisconnect:
            pass
        except NotFound as e:  # the bot was deleted meanwhile
            await ws.close(code=4404, reason=e.message[:120])
        finally:
            forwarding.cancel()


async def _handle(
    herald: Herald, client: httpx.AsyncClient, socket: _Socket, who: service.Visitor, raw: str
) -> None:
    try:
        frame = rules.parse_frame(json.loads(raw))
    except (ValueError, RecursionError) as e:  # RecursionError: nested too deep to parse
        if isinstance(e, rules.FrameError):
            error, code = e.message, e.code
        else:
            error, code = "A frame must be JSON.", "malformed_json"
        await socket.send({"type": "error", "code": code, "error": error})
        return
    now = herald.clock.now()
    if isinstance(frame, rules.VisitorText):
        if not socket.may_send(time.monotonic()):
            await socket.send(
                {
                    "type": "error",
                    "code": "too_many_messages",
                    "error": "Too many messages at once; wait a moment and send again.",
                    "clientId": frame.client_id,
                }
            )
            return
        stored = await service.handle_visitor_text(
            herald.sessions, herald.vault, client, who, frame, now
        )
        herald.webchat.wake()
        await socket.send({"type": "ack", "clientId": frame.client_id, "id": stored})
        return
    async with herald.sessions() as session, session.begin():
        await service.record_receipt(session, who, frame, now)
