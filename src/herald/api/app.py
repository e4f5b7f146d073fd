"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI
from starlette.types import Receive, Scope, Send

from herald import __version__
from herald.api import docs_pages, errors, nul_guard, openapi, routing
from herald.api.early_auth import KeyFirst
from herald.api.limits import BodyLimits
from herald.api.query import no_ignored_parameters
from herald.api.routes import (
    auth,
    bots,
    messages,
    project,
    senders,
    short_links,
    suppressions,
    templates,
    webchat,
)
from herald.api.routes import tasks as task_routes
from herald.api.webhooks import meta as meta_webhooks
from herald.api.webhooks import telegram as telegram_webhooks
from herald.api.webhooks import twilio_inbound, twilio_status
from herald.bootstrap import Herald, build, settle_after_start
from herald.cabinet import mount as cabinet
from herald.dispatch.callbacks import CallbackSender
from herald.dispatch.loop import Dispatcher
from herald.services.tasks.context import TaskContext
from herald.services.tasks.importing import TaskImports


class HeraldApp(FastAPI):
    """FastAPI, with Twilio's status callbacks taken before routing (see api.twilio_status)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if nul_guard.has_nul(scope):
            await nul_guard.refuse(scope, receive, send)
            return
        attempt_id = twilio_status.attempt_of(scope)
        if attempt_id is not None:
            await twilio_status.handle(self.state.herald, attempt_id, scope, receive, send)
            return
        await super().__call__(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        return openapi.complete(super().openapi())


def create_app(herald: Herald | None = None, *, run_workers: bool | None = None) -> FastAPI:
    """The API, with the dispatcher and callback sender running inside it unless told not to."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        graph = herald or build()
        app.state.herald = graph
        stop = asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        callbacks: CallbackSender | None = None
        workers = graph.settings.run_dispatcher if run_workers is None else run_workers
        if workers:
            callbacks = CallbackSender(graph)
            tasks = [
                asyncio.create_task(Dispatcher(graph).run(stop), name="dispatcher"),
                asyncio.create_task(callbacks.run(stop), name="client-callbacks"),
            ]
        # Imports a stopped process left half done continue here; rows never repeat.
        imports = app.state.task_imports = TaskImports(
            TaskContext(graph.sessions, graph.settings, graph.clock, graph.work_available)
        )
        await imports.resume_pending()
        if herald is None:  # a process of its own (herald serve), not a test's app
            settle_after_start()
        try:
            yield
        finally:
            await imports.aclose()
            stop.set()
            graph.work_available.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            if callbacks:
                await callbacks.aclose()
            if herald is None:
                await graph.aclose()

    app = HeraldApp(
        title="Herald",
        version=__version__,
        description="Self-hosted multi-channel notifications, wire-compatible with TWIN's "
        "Messaging API v1.",
        lifespan=lifespan,
        dependencies=[Depends(no_ignored_parameters)],
        # A 307 to the path without its '/' is not followed by every client (nor for every
        # method); such a path is a 404 that says why (api.errors).
        redirect_slashes=False,
        # Served by api.docs_pages from the package's own files (no CDN).
        docs_url=None,
        redoc_url=None,
    )
    errors.install(app)
    # The last added runs first: the API key is checked, then the body's size, then FastAPI
    # reads the body.
    app.add_middleware(BodyLimits)
    app.add_middleware(KeyFirst)
    app.include_router(auth.router)
    app.include_router(task_routes.router)  # before messages: /messages/bulk vs /messages/{id}
    app.include_router(messages.router)
    app.include_router(messages.groups_router)
    app.include_router(senders.router)
    app.include_router(project.router)
    app.include_router(meta_webhooks.router)
    app.include_router(telegram_webhooks.router)
    app.include_router(templates.router)
    app.include_router(short_links.router)
    app.include_router(bots.router)
    app.include_router(suppressions.router)
    app.include_router(twilio_inbound.router)
    app.include_router(webchat.router)
    app.include_router(docs_pages.router)
    cabinet.install(app)  # the web cabinet: /, /sign-in, /messages, …, /static/

    @app.get("/healthz", tags=["health"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    # Keep last: GET /{code} would otherwise shadow any 7-16 character path such as /healthz.
    app.router.routes.append(short_links.redirect_route)
    routing.fixed_paths_own_their_methods(app)
    return app
