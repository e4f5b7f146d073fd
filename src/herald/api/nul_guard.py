"""Requests whose address holds a NUL character are refused before anything reads them.

Every id in a path, and every filter in a query, ends up in a database query, and PostgreSQL
refuses NUL in text: the query fails and the caller saw a 500 (for a status callback, its
whole group commit batch failed with it). No valid address holds one.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from herald.api.errors import error_response


def has_nul(scope: Scope) -> bool:
    """Whether the request's path or query string holds a NUL character."""
    if scope["type"] not in ("http", "websocket"):
        return False
    query: bytes = scope.get("query_string", b"")
    return "\x00" in scope["path"] or b"%00" in query or b"\x00" in query


async def refuse(scope: Scope, receive: Receive, send: Send) -> None:
    """400 in Herald's error shape; a WebSocket is closed before it is accepted (HTTP 403)."""
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008})
        return
    response = error_response(
        400,
        "The address contains a NUL character (%00), which no Herald address or parameter "
        "holds; remove it.",
        "invalid_request",
    )
    await response(scope, receive, send)
