"""API keys checked before FastAPI reads a request body.

FastAPI reads and parses a route's body before it solves the route's dependencies, the API
key among them: a request with a wrong key had its whole body read, and parsed, before its
401. This middleware checks the key of every ``/api/v1`` request first, through the same
:class:`herald.api.deps.ApiKeys`, and hands the project it found to the ``ProjectId``
dependency, so a refused request has none of its body read. A user's TWIN IAM token is
checked here the same way (``deps.authorize``); TWIN's two IAM routes, which hand the tokens
out, take none.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from herald.api.deps import PROJECT_SCOPE_KEY, api_keys, authorize
from herald.api.limits import refusal
from herald.errors import HeraldError

API_PREFIX = "/api/v1/"
# Signing in needs no key; refresh's Authorization header holds a token that has usually
# expired already (twin-api.md §2), so it is not checked either.
OPEN_PATHS = frozenset({"/api/v1/auth/login", "/api/v1/auth/refresh"})


def _authorization(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return None


class KeyFirst:
    """ASGI middleware: ``/api/v1`` requests without a valid API key go no further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        if not path.startswith(API_PREFIX) or path in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        client = scope.get("client")
        try:
            scope[PROJECT_SCOPE_KEY] = await authorize(
                scope,
                app.state.herald,
                api_keys(app),
                _authorization(scope),
                client[0] if client else None,
            )
        except HeraldError as e:
            await refusal(e, scope)(scope, receive, send)
            return
        await self.app(scope, receive, send)
