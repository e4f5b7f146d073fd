"""A fixed path answers every method itself: a templated path never takes it over.

Routes are tried in order and the first that fits the path and the method wins, so
``GET /api/v1/messages/bulk`` (only POST is routed there) fell through to
``GET /api/v1/messages/{message_id}`` and answered 404 for a message named "bulk", while a
405 listed the methods of both paths. OpenAPI reads a fixed path before the templated ones
that also fit it, and so do clients: each fixed path gets a route, tried first, that takes
the methods it has no route for and answers 405.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Match, NoMatchFound
from starlette.types import Receive, Scope, Send


class OtherMethods(BaseRoute):
    """The methods a fixed path has no route for: 405, whatever route comes after."""

    def __init__(self, path: str, methods: frozenset[str]) -> None:
        self.path = path
        self.methods = methods

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if (
            scope["type"] == "http"
            and scope["path"] == self.path
            and scope["method"] not in self.methods
        ):
            return Match.FULL, {}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Rendered, with its Allow header, by the app's handler (herald.api.errors).
        raise HTTPException(405)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)


def fixed_paths_own_their_methods(app: FastAPI) -> None:
    """Put an :class:`OtherMethods` first for each fixed path; call once every route is in."""
    methods: dict[str, set[str]] = {}
    for route in iter_route_contexts(app.router.routes):
        path = route.path_format
        if path and "{" not in path and route.methods:
            methods.setdefault(path, set()).update(route.methods)
    app.router.routes[:0] = [OtherMethods(path, frozenset(m)) for path, m in methods.items()]
