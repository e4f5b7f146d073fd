"""Caps on request bodies, enforced before and while a body is read.

FastAPI reads a route's whole body before anything else runs, and Starlette keeps it in
memory; a client could make Herald hold any amount. Here every request gets a cap by route:
a ``Content-Length`` over it is refused at once, unread, and a body without one (chunked)
is counted as it streams and cut off when it passes the cap. Uploads are streamed to disk
by Starlette's multipart parser past 1 MB, so their own, larger cap bounds disk, not memory.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from herald.api.errors import herald_error_response
from herald.config import Settings
from herald.errors import ContentTooLarge, HeraldError

# Meta sends WhatsApp notifications in batches of up to 3 MB; Telegram's updates are a few KB.
WEBHOOK_MAX_BODY = 4 * 1024 * 1024
# Everything else without an API key (the web chat, short links) takes no body at all.
PUBLIC_MAX_BODY = 64 * 1024
# The send-task file uploads: POST /api/v1/tasks/{id} and POST /api/v1/messages/bulk.
_UPLOAD = re.compile(r"/api/v1/(?:tasks/[^/]+|messages/bulk)/?")
# The cabinet's send-task upload (herald.cabinet.tasks), signed in by its session cookie.
_CABINET_UPLOAD = re.compile(r"/tasks/[^/]+/file")


@dataclass(frozen=True, slots=True)
class Limit:
    size: int
    setting: str | None  # the variable that changes it, if any
    advice: str


def _upload_limit(settings: Settings) -> Limit:
    return Limit(
        settings.max_upload_bytes,
        "HERALD_MAX_UPLOAD_BYTES",
        "Split the file into smaller ones, a task each.",
    )


def limit_for(method: str, path: str, settings: Settings) -> Limit:
    """The largest body a request to ``path`` may carry."""
    if path.startswith("/api/v1/"):
        if method == "POST" and _UPLOAD.fullmatch(path):
            return _upload_limit(settings)
        return Limit(
            settings.max_json_body_bytes,
            "HERALD_MAX_JSON_BODY_BYTES",
            "Split it into smaller requests, or send a file with POST /api/v1/messages/bulk.",
        )
    if method == "POST" and _CABINET_UPLOAD.fullmatch(path):
        return _upload_limit(settings)
    if path.startswith("/webhooks/"):
        return Limit(WEBHOOK_MAX_BODY, None, "No provider's notification is this large.")
    return Limit(PUBLIC_MAX_BODY, None, "The web chat and short links take no larger body.")


def _size(n: int) -> str:
    mib, kib = 1024 * 1024, 1024
    if n >= mib:
        return f"{n / mib:.3g} MiB"
    return f"{n / kib:.3g} KiB" if n >= kib else f"{n} bytes"


def too_large(limit: Limit) -> ContentTooLarge:
    setting = f", set by {limit.setting}" if limit.setting else ""
    return ContentTooLarge(
        f"The request body is larger than {_size(limit.size)} ({limit.size:,} bytes), the "
        f"most Herald takes here{setting}. {limit.advice}",
        details={"limit": limit.size, **({"setting": limit.setting} if limit.setting else {})},
    )


def announces_body(scope: Scope) -> bool:
    """Whether the request says a body follows (which nobody may have read yet)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip() != b"0"):
            return True
    return False


def refusal(error: HeraldError, scope: Scope) -> JSONResponse:
    """The answer to a request refused before its body was read.

    With a body still on its way, the connection is closed after the answer: uvicorn would
    otherwise read and drop the rest, however long, to keep the connection for another
    request. Clients that ask before sending (``Expect: 100-continue``: curl, Guzzle) never
    send it at all.
    """
    headers = {"Connection": "close"} if announces_body(scope) else None
    return herald_error_response(error, headers)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server has refused it already
    return None


class BodyLimits:
    """ASGI middleware applying :func:`limit_for` to every HTTP request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings: Settings = scope["app"].state.herald.settings
        limit = limit_for(scope["method"], scope["path"], settings)
        declared = _content_length(scope)
        if declared is not None and declared > limit.size:
            await refusal(too_large(limit), scope)(scope, receive, send)
            return
        if declared is not None:
            # The server delivers exactly the declared length, never more.
            await self.app(scope, receive, send)
            return
        await _Counted(self.app, limit)(scope, receive, send)


class _Counted:
    """One request whose body comes without a length, counted as it is read."""

    def __init__(self, app: ASGIApp, limit: Limit) -> None:
        self.app, self.limit = app, limit
        self.received = 0
        self.cut = False
        self.answered = False  # the 413 went out
        self.started = False  # the app began its own answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted_receive() -> Message:
            if self.cut:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                self.received += len(message.get("body", b""))
                if self.received > self.limit.size:
                    self.cut = True
                    if not self.started:
                        await refusal(too_large(self.limit), scope)(scope, receive, send)
                        self.answered = True
                    # To the app the client went away: its readers stop as they do then.
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if self.answered:
                return  # the app's own answer to a body it never got whole
            if message["type"] == "http.response.start":
                self.started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            # What the app raises after the cut (a client disconnect) is the cut itself,
            # which the 413 already told the client.
            if not self.cut:
                raise
